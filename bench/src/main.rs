//! The benchmark's parts, driven by `bench/run.sh`:
//!
//! - `wormgate-bench store`: an s3s-fs store (the one the gateway embeds) as a process of its
//!   own, so that its CPU is not counted against the proxy in front of it;
//! - `wormgate-bench load`: one workload against one endpoint (direct, nginx or wormgate),
//!   printing one JSON line: operations, bytes, seconds, latency percentiles, statuses.
//!
//! Bodies are generated as they are sent and read bodies are counted and dropped: the client
//! holds no object whole. Requests are signed with SigV4, `UNSIGNED-PAYLOAD` or the payload's
//! SHA-256 (`--payload signed`; for large objects the hash is computed once, before the clock
//! starts, since every object of a size has the same content).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Digest;

type Body = BoxBody<Bytes, std::convert::Infallible>;

#[derive(Parser)]
#[command(about = "wormgate's benchmark parts: a store process and a load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves an s3s-fs store over ROOT on ADDR until killed.
    Store {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        access_key: String,
        #[arg(long)]
        secret_key: String,
    },
    /// Runs one workload against ENDPOINT and prints one JSON line.
    Load(Load),
}

#[derive(Parser, Clone)]
struct Load {
    /// `http://host:port` of the target.
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    #[arg(long)]
    bucket: String,
    #[arg(long, value_enum)]
    op: Op,
    /// Object size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: u64,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Stop after this many requests per stream (transfers) ...
    #[arg(long)]
    count: Option<u64>,
    /// ... or after this many seconds (small operations).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Key prefix; stream `s` uses `<prefix>-<s>-<i>`, or `<prefix>-<i mod keys>` with `--keys`.
    #[arg(long, default_value = "obj")]
    prefix: String,
    /// Cycle over this many shared keys instead of one key per request.
    #[arg(long)]
    keys: Option<u64>,
    #[arg(long, value_enum, default_value_t = Payload::Unsigned)]
    payload: Payload,
    /// Put under a COMPLIANCE lock until this many days from now (with the body's Content-MD5,
    /// which the lock API requires).
    #[arg(long)]
    lock_days: Option<u32>,
    /// With `create-bucket`: ask for object lock on the new bucket.
    #[arg(long)]
    object_lock: bool,
    /// The status every request must get (e.g. 403 for deletes the locks refuse).
    #[arg(long, default_value_t = 200)]
    expect: u16,
    /// With `put`: write `key version-id` lines here for each version made.
    #[arg(long)]
    record_versions: Option<PathBuf>,
    /// With `get`, `head` or `delete`: name each key's version recorded in this file
    /// (`?versionId=`), as a delete of a version in a versioned bucket must.
    #[arg(long)]
    versions: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Put,
    Get,
    Head,
    Delete,
    /// Creates the bucket (once; 200 or 409 both fine).
    CreateBucket,
    /// Lists the whole bucket, page after page of 1000 (ListObjectsV2), in one stream.
    List,
    /// Lists every version and delete marker, page after page of 1000 (ListObjectVersions),
    /// in one stream.
    ListVersions,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Payload {
    Unsigned,
    Signed,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Store {
            root,
            addr,
            access_key,
            secret_key,
        } => runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let _store = wormgate::server::embedded::Embedded::start_with_keys(
                &root,
                listener,
                access_key,
                wormgate::config::Secret::new(&secret_key),
            )?;
            println!("store listening on http://{addr}");
            std::future::pending::<()>().await;
            Ok(())
        }),
        Command::Load(load) => runtime.block_on(run(load)),
    }
}

/// A block of pseudo-random bytes that bodies repeat (1 MiB).
fn block() -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(1 << 20);
    while out.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// A body of `size` bytes made of `block`, produced as it is sent.
fn body_of(block: &Bytes, size: u64) -> Body {
    let block = block.clone();
    let stream = futures::stream::unfold(size, move |left| {
        let block = block.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(block.len() as u64);
            #[allow(clippy::cast_possible_truncation)]
            let chunk = block.slice(..n as usize);
            Some((
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk)),
                left - n,
            ))
        }
    });
    http_body_util::StreamBody::new(stream).boxed()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The pieces `body_of(block, size)` sends, in order.
fn for_each_piece(block: &Bytes, size: u64, mut f: impl FnMut(&[u8])) {
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64);
        #[allow(clippy::cast_possible_truncation)]
        f(&block[..n as usize]);
        left -= n;
    }
}

/// SHA-256 (hex) of the body `body_of(block, size)` sends.
fn sha256_of(block: &Bytes, size: u64) -> String {
    let mut hasher = sha2::Sha256::new();
    for_each_piece(block, size, |piece| hasher.update(piece));
    hex(&hasher.finalize())
}

struct Shared {
    load: Load,
    /// Each key's version to name (`--versions`).
    versions: std::collections::HashMap<String, String>,
    /// The versions made (`--record-versions`).
    made: std::sync::Mutex<Vec<(String, String)>>,
    client: Client<HttpConnector, Body>,
    block: Bytes,
    /// The payload hash for signed PUTs (`UNSIGNED-PAYLOAD` otherwise).
    put_hash: Option<String>,
    /// Content-MD5 of the body, for locked PUTs.
    lock_md5: Option<String>,
    deadline: Instant,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    bytes: u64,
    statuses: BTreeMap<u16, u64>,
    unexpected: Vec<String>,
}

async fn run(load: Load) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(load.concurrency.max(1) * 2)
        .build(connector);
    let block = block();
    let put_hash = (load.payload == Payload::Signed && load.op == Op::Put)
        .then(|| sha256_of(&block, load.size));
    let lock_md5 = load.lock_days.map(|_| content_md5(&block, load.size));
    let versions = match &load.versions {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("{}", path.display()))?
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        None => std::collections::HashMap::new(),
    };
    if load.op == Op::CreateBucket {
        let shared = Shared {
            versions: std::collections::HashMap::new(),
            made: std::sync::Mutex::default(),
            load: load.clone(),
            client,
            block,
            put_hash: None,
            lock_md5: None,
            deadline: Instant::now(),
        };
        let status = request(&shared, 0, 0).await?.0;
        if status != 200 && status != 409 {
            bail!("create bucket {}: {status}", load.bucket);
        }
        return Ok(());
    }
    if matches!(load.op, Op::List | Op::ListVersions) {
        return list_all(&load, &client).await;
    }
    let started = Instant::now();
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let shared = Arc::new(Shared {
        deadline: started + Duration::from_millis((load.seconds * 1000.0) as u64),
        versions,
        made: std::sync::Mutex::default(),
        load: load.clone(),
        client,
        block,
        put_hash,
        lock_md5,
    });
    let mut streams = tokio::task::JoinSet::new();
    for s in 0..load.concurrency {
        let shared = Arc::clone(&shared);
        streams.spawn(async move { stream(&shared, s as u64).await });
    }
    let mut all = Tally::default();
    while let Some(done) = streams.join_next().await {
        let t = done.context("stream task")??;
        all.latencies_us.extend(t.latencies_us);
        all.bytes += t.bytes;
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.unexpected.extend(t.unexpected);
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(path) = &load.record_versions {
        let made = shared
            .made
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let lines: String = made.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        std::fs::write(path, lines).with_context(|| format!("{}", path.display()))?;
    }
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.latencies_us.is_empty() {
            return 0;
        }
        #[allow(
            clippy::cast_sign_loss,
            clippy::cast_possible_truncation,
            clippy::cast_precision_loss
        )]
        let i = ((all.latencies_us.len() - 1) as f64 * p).round() as usize;
        all.latencies_us[i]
    };
    let ops = all.latencies_us.len();
    #[allow(clippy::cast_precision_loss)]
    let line = serde_json::json!({
        "op": format!("{:?}", load.op).to_lowercase(),
        "size": load.size,
        "concurrency": load.concurrency,
        "payload": format!("{:?}", load.payload).to_lowercase(),
        "ops": ops,
        "bytes": all.bytes,
        "secs": secs,
        "ops_per_s": ops as f64 / secs,
        "mib_per_s": all.bytes as f64 / secs / 1_048_576.0,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "statuses": all.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "unexpected": all.unexpected.len(),
        "first_unexpected": all.unexpected.first(),
    });
    println!("{line}");
    if !all.unexpected.is_empty() {
        bail!("{} requests got an unexpected answer", all.unexpected.len());
    }
    Ok(())
}

async fn stream(shared: &Shared, s: u64) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut i = 0;
    loop {
        match shared.load.count {
            Some(count) if i >= count => break,
            None if Instant::now() >= shared.deadline => break,
            _ => {}
        }
        let started = Instant::now();
        let (status, bytes, detail) = request(shared, s, i).await?;
        #[allow(clippy::cast_possible_truncation)]
        tally
            .latencies_us
            .push(started.elapsed().as_micros() as u64);
        tally.bytes += bytes;
        *tally.statuses.entry(status).or_default() += 1;
        let expected = shared.load.expect;
        let ok = status == expected || (expected == 200 && status == 204);
        if !ok {
            tally.unexpected.push(format!("{status} {detail}"));
        }
        i += 1;
    }
    Ok(tally)
}

/// One request: its status, the body bytes moved (sent or read), and the start of an error
/// body.
async fn request(shared: &Shared, s: u64, i: u64) -> anyhow::Result<(u16, u64, String)> {
    let load = &shared.load;
    let key = match load.keys {
        Some(keys) => format!("{}-{}", load.prefix, (s * 7919 + i) % keys),
        None => format!("{}-{s}-{i}", load.prefix),
    };
    let (method, mut path) = match load.op {
        Op::CreateBucket => ("PUT", format!("/{}", load.bucket)),
        Op::Put => ("PUT", format!("/{}/{key}", load.bucket)),
        Op::Get => ("GET", format!("/{}/{key}", load.bucket)),
        // A listing walks its pages in `list_all`, never one request here.
        Op::List | Op::ListVersions => ("GET", format!("/{}", load.bucket)),
        Op::Head => ("HEAD", format!("/{}/{key}", load.bucket)),
        Op::Delete => ("DELETE", format!("/{}/{key}", load.bucket)),
    };
    if let Some(version) = shared.versions.get(&key) {
        path.push_str(&format!("?versionId={version}"));
    }
    let url = format!("{}{path}", load.endpoint);
    let mut builder = http::Request::builder().method(method).uri(&url);
    if load.op == Op::CreateBucket && load.object_lock {
        builder = builder.header("x-amz-bucket-object-lock-enabled", "true");
    }
    let mut sent = 0;
    let body = if load.op == Op::Put {
        sent = load.size;
        builder = builder.header("content-length", load.size.to_string());
        if let Some(days) = load.lock_days {
            let until = chrono::Utc::now() + chrono::TimeDelta::days(i64::from(days));
            builder = builder
                .header("x-amz-object-lock-mode", "COMPLIANCE")
                .header(
                    "x-amz-object-lock-retain-until-date",
                    until.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                )
                .header(
                    "content-md5",
                    shared.lock_md5.as_deref().unwrap_or_default(),
                );
        }
        body_of(&shared.block, load.size)
    } else {
        http_body_util::Empty::new().boxed()
    };
    let hash = shared
        .put_hash
        .clone()
        .unwrap_or_else(|| match load.payload {
            Payload::Signed => hex(&sha2::Sha256::digest(b"")),
            Payload::Unsigned => "UNSIGNED-PAYLOAD".to_owned(),
        });
    builder = builder.header("x-amz-content-sha256", &hash);
    let mut req = builder.body(body)?;
    sign_request(&mut req, &load.access_key, &load.secret_key, &hash)?;
    let resp = shared.client.request(req).await?;
    let status = resp.status().as_u16();
    if load.record_versions.is_some()
        && let Some(v) = resp.headers().get("x-amz-version-id")
        && let Ok(v) = v.to_str()
        && let Ok(mut made) = shared.made.lock()
    {
        made.push((key.clone(), v.to_owned()));
    }
    let mut body = resp.into_body();
    let mut read = 0u64;
    let mut start = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            read += data.len() as u64;
            if status >= 300 && start.len() < 300 {
                start.extend_from_slice(&data[..data.len().min(300)]);
            }
        }
    }
    Ok((
        status,
        if load.op == Op::Get { read } else { sent },
        String::from_utf8_lossy(&start).into_owned(),
    ))
}

/// The text of the first `<tag>` element of a listing page, its entities read.
fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find('<')?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `--op list` and `--op list-versions`: the whole listing, page by page, each page read
/// whole; prints one JSON line with the pages, the entries and the time.
async fn list_all(load: &Load, client: &Client<HttpConnector, Body>) -> anyhow::Result<()> {
    use wormgate::s3::target::encode_query_value as enc;
    let started = Instant::now();
    let (mut pages, mut entries) = (0u64, 0u64);
    let mut next = String::new();
    loop {
        let query = match load.op {
            Op::List => format!("list-type=2&max-keys=1000{next}"),
            _ => format!("versions=&max-keys=1000{next}"),
        };
        let url = format!("{}/{}?{query}", load.endpoint, load.bucket);
        let hash = "UNSIGNED-PAYLOAD";
        let mut req = http::Request::builder()
            .method("GET")
            .uri(&url)
            .header("x-amz-content-sha256", hash)
            .body(http_body_util::Empty::new().boxed())?;
        sign_request(&mut req, &load.access_key, &load.secret_key, hash)?;
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            bail!("page {pages}: {status} {}", &text[..text.len().min(300)]);
        }
        pages += 1;
        entries += match load.op {
            Op::List => text.matches("<Contents>").count(),
            _ => text.matches("<Version>").count() + text.matches("<DeleteMarker>").count(),
        } as u64;
        if !text.contains("<IsTruncated>true</IsTruncated>") {
            break;
        }
        let marker = |tag| element(&text, tag).with_context(|| format!("no {tag} in a page"));
        next = match load.op {
            Op::List => format!(
                "&continuation-token={}",
                enc(&marker("NextContinuationToken")?)
            ),
            _ => format!(
                "&key-marker={}&version-id-marker={}",
                enc(&marker("NextKeyMarker")?),
                enc(&marker("NextVersionIdMarker")?)
            ),
        };
    }
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let line = serde_json::json!({
        "op": format!("{:?}", load.op).to_lowercase(),
        "pages": pages,
        "entries": entries,
        "secs": secs,
        "entries_per_s": entries as f64 / secs,
    });
    println!("{line}");
    Ok(())
}

/// Content-MD5 of the body `body_of(block, size)` would send (the lock API requires a
/// checksum on a locked PUT), computed once.
fn content_md5(block: &Bytes, size: u64) -> String {
    use md5::Digest as _;
    let mut hasher = md5::Md5::new();
    for_each_piece(block, size, |piece| hasher.update(piece));
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        hasher.finalize(),
    )
}

fn sign_request(
    req: &mut http::Request<Body>,
    access_key: &str,
    secret_key: &str,
    hash: &str,
) -> anyhow::Result<()> {
    let identity: Identity = Credentials::new(access_key, secret_key, None, None, "bench").into();
    let settings = SigningSettings::default();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let url = req.uri().to_string();
    let body = if hash == "UNSIGNED-PAYLOAD" {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Precomputed(hash.to_owned())
    };
    let signable = SignableRequest::new(req.method().as_str(), &url, headers.into_iter(), body)?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}
