//! A test stand-in for Alibaba OSS, since no real OSS is reachable from the tests.
//!
//! What it follows (Alibaba Cloud's OSS documentation of BucketWorm and of the V4 signature):
//! - BucketWorm: `POST /?worm` with `InitiateWormConfiguration` (1–25550 days) starts an
//!   InProgress policy and answers `x-oss-worm-id`; `POST /?wormId=ID` locks it; `POST
//!   /?wormExtend&wormId=ID` with `ExtendWormConfiguration` raises a Locked policy's period and
//!   refuses anything not longer; `GET /?worm` answers `WormConfiguration` (WormId, State,
//!   RetentionPeriodInDays, CreationDate) or 404 `NoSuchWORMConfiguration`; `DELETE /?worm`
//!   aborts an InProgress policy and refuses a Locked one (409 `WORMConfigurationLocked`).
//! - An InProgress policy already protects and lapses 24 hours after creation unless locked.
//! - Protection: every object, existing ones too, from its last modification for the period.
//!   Deleting or overwriting (PUT, copy onto it, completing a multipart upload onto it) a
//!   protected object answers 409 `FileImmutable`.
//! - BucketWorm requests must carry the V4 authorization form: `OSS4-HMAC-SHA256
//!   Credential=<AK>/<YYYYMMDD>/<region>/oss/aliyun_v4_request,[AdditionalHeaders=...,]
//!   Signature=<64 hex>`, with `x-oss-date` matching the credential's date and
//!   `x-oss-content-sha256`; anything else is 403. The bucket is the first label of `Host`
//!   (virtual-hosted style).
//!
//! What it leaves out: it does not recompute the V4 signature (the signer is tested against
//! Alibaba's published vectors instead); it does not model OSS's S3-compatible endpoint beyond
//! what an s3s-fs store does (object traffic is passed to one, SigV4 and all); DeleteObjects is
//! refused whole with 409 `FileImmutable` when any key it names is protected (OSS's per-key
//! behaviour there is not documented); object last-modified is the stored file's mtime; its
//! clock can be moved forward (`advance`) to play out days in a test, and every reply's `Date`
//! header follows that clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wormgate::server::embedded::Embedded;

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone)]
struct Worm {
    id: String,
    locked: bool,
    days: u32,
    created: DateTime<Utc>,
}

struct State {
    root: PathBuf,
    access_key: String,
    store: SocketAddr,
    endpoint_host: String,
    offset_secs: AtomicI64,
    worms: Mutex<HashMap<String, Worm>>,
    extends: AtomicUsize,
    next_id: AtomicUsize,
    client: Client<HttpConnector, Body>,
}

/// The OSS stand-in: one address for both the S3-compatible traffic and BucketWorm.
pub struct OssBackend {
    pub addr: SocketAddr,
    /// The store underneath (its keys are the ones to sign with).
    pub store: Embedded,
    state: Arc<State>,
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.offset_secs.load(Ordering::SeqCst))
    }

    /// The bucket's policy, if it has one that still stands.
    fn worm(&self, bucket: &str) -> Option<Worm> {
        let mut worms = self.worms.lock().expect("worms");
        let w = worms.get(bucket)?.clone();
        if !w.locked && self.now() >= w.created + TimeDelta::hours(24) {
            worms.remove(bucket);
            return None;
        }
        Some(w)
    }

    fn protected(&self, bucket: &str, key: &str) -> bool {
        let Some(w) = self.worm(bucket) else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(self.root.join(bucket).join(key)) else {
            return false;
        };
        let Ok(modified) = meta.modified() else {
            return true;
        };
        let modified: DateTime<Utc> = modified.into();
        self.now() < modified + TimeDelta::days(i64::from(w.days))
    }
}

fn xml(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>0</RequestId></Error>"
        ),
    )
}

fn immutable() -> Response<Body> {
    error(
        StatusCode::CONFLICT,
        "FileImmutable",
        "Object is protected by the bucket's WORM policy.",
    )
}

fn element<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{name}>"))? + start;
    Some(s[start..end].trim())
}

/// The V4 authorization form, for the expected access key.
fn v4_form_ok(req: &Request<Incoming>, access_key: &str) -> bool {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let (Some(auth), Some(date), Some(_)) = (
        h("authorization"),
        h("x-oss-date"),
        h("x-oss-content-sha256"),
    ) else {
        return false;
    };
    let Some(rest) = auth.strip_prefix("OSS4-HMAC-SHA256 Credential=") else {
        return false;
    };
    let mut parts = rest.split(',');
    let credential = parts.next().unwrap_or("");
    let fields: Vec<&str> = credential.split('/').collect();
    let signature = parts
        .find_map(|p| p.trim().strip_prefix("Signature="))
        .unwrap_or("");
    fields.len() == 5
        && fields[0] == access_key
        && date.len() == 16
        && fields[1] == &date[..8]
        && fields[3] == "oss"
        && fields[4] == "aliyun_v4_request"
        && signature.len() == 64
        && signature.bytes().all(|b| b.is_ascii_hexdigit())
}

impl OssBackend {
    /// Starts the store and the stand-in in front of it.
    ///
    /// # Panics
    /// When either cannot start.
    pub async fn start(dir: &std::path::Path) -> Self {
        let root = dir.join("oss-store");
        let store_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind store");
        let store_addr = store_listener.local_addr().expect("addr");
        let store = Embedded::start_on(&root, store_listener).expect("s3s-fs");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind oss");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            root,
            access_key: store.access_key.clone(),
            store: store_addr,
            endpoint_host: addr.to_string(),
            offset_secs: AtomicI64::new(0),
            worms: Mutex::new(HashMap::new()),
            extends: AtomicUsize::new(0),
            next_id: AtomicUsize::new(1),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move {
                            let mut resp = handle(&state, req).await;
                            // Its `Date` follows its own (movable) clock, as a real store's
                            // follows the real one.
                            let date = state.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                            if let Ok(v) = http::HeaderValue::from_str(&date) {
                                resp.headers_mut().insert(http::header::DATE, v);
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, store, state }
    }

    /// `http://127.0.0.1:PORT`: the S3-compatible endpoint and OSS's own API both.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Moves the stand-in's clock forward.
    pub fn advance(&self, by: TimeDelta) {
        self.state
            .offset_secs
            .fetch_add(by.num_seconds(), Ordering::SeqCst);
    }

    /// Creates a bucket on the store and gives it a WORM policy of `days`, locked (through
    /// wormgate's own BucketWorm client, so its signature is checked by the stand-in).
    ///
    /// # Panics
    /// When either step fails.
    pub async fn bucket_with_worm(&self, prefix: &str, days: u32) -> String {
        let bucket = crate::unique_bucket(prefix);
        crate::s3_client(
            &self.endpoint(),
            &self.store.access_key,
            self.store.secret_key.expose(),
        )
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket on the store");
        let worm = wormgate::backend::oss::worm::WormClient::new(
            &crate::oss_settings(self),
            std::time::Duration::from_secs(5),
        )
        .expect("BucketWorm client");
        let id = worm
            .initiate(&bucket, days)
            .await
            .expect("InitiateBucketWorm");
        worm.complete(&bucket, &id)
            .await
            .expect("CompleteBucketWorm");
        bucket
    }

    /// How many ExtendBucketWorm calls succeeded.
    #[must_use]
    pub fn extends(&self) -> usize {
        self.state.extends.load(Ordering::SeqCst)
    }

    /// The period of the bucket's policy, if it has one.
    #[must_use]
    pub fn period(&self, bucket: &str) -> Option<u32> {
        self.state.worm(bucket).map(|w| w.days)
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let has = |n: &str| params.iter().any(|(k, _)| *k == n);
    if has("worm") || has("wormId") || has("wormExtend") {
        return worm_api(state, req, &params).await;
    }
    // S3-compatible traffic: the bucket's retention first, then the store.
    let path = percent_decode(req.uri().path());
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let bucket = segments.next().unwrap_or("").to_owned();
    let key = segments.next().unwrap_or("").to_owned();
    let method = req.method().clone();
    if !key.is_empty() {
        let overwrites = method == http::Method::PUT && !has("partNumber")
            || method == http::Method::POST && has("uploadId");
        if (method == http::Method::DELETE && !has("uploadId") || overwrites)
            && state.protected(&bucket, &key)
        {
            return immutable();
        }
    } else if method == http::Method::POST && has("delete") {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
        else {
            return error(StatusCode::BAD_REQUEST, "InvalidRequest", "body");
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut rest = text.as_str();
        while let Some(k) = element(rest, "Key") {
            if state.protected(&bucket, &xml_unescape(k)) {
                return immutable();
            }
            rest = &rest[rest.find("</Key>").map_or(rest.len(), |i| i + 6)..];
        }
        let req = Request::from_parts(parts, Full::new(bytes).map_err(|e| match e {}).boxed());
        return pass(state, req).await;
    }
    let req = req.map(|b| b.map_err(|e| Box::new(e) as _).boxed());
    pass(state, req).await
}

/// To the store, as it came (the Host the client signed stays).
async fn pass(state: &State, req: Request<Body>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    parts.uri = format!("http://{}{pq}", state.store).parse().expect("uri");
    match state.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as _).boxed()),
        Err(e) => error(StatusCode::BAD_GATEWAY, "InternalError", &e.to_string()),
    }
}

async fn worm_api(
    state: &State,
    req: Request<Incoming>,
    params: &[(&str, &str)],
) -> Response<Body> {
    if !v4_form_ok(&req, &state.access_key) {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "BucketWorm requests must carry an OSS V4 signature.",
        );
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(bucket) = host
        .strip_suffix(&format!(".{}", state.endpoint_host))
        .map(str::to_owned)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "no bucket in Host",
        );
    };
    let get = |n: &str| params.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| String::from_utf8_lossy(&c.to_bytes()).into_owned())
        .unwrap_or_default();
    let days = element(&body, "RetentionPeriodInDays").and_then(|d| d.parse::<u32>().ok());
    let current = state.worm(&bucket);
    match (method, get("wormExtend"), get("wormId")) {
        (http::Method::GET, None, None) => match current {
            None => error(
                StatusCode::NOT_FOUND,
                "NoSuchWORMConfiguration",
                "The WORM Configuration does not exist.",
            ),
            Some(w) => xml(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WormConfiguration><WormId>{}</WormId><State>{}</State><RetentionPeriodInDays>{}</RetentionPeriodInDays><CreationDate>{}</CreationDate></WormConfiguration>",
                    w.id,
                    if w.locked { "Locked" } else { "InProgress" },
                    w.days,
                    w.created.format("%Y-%m-%dT%H:%M:%S")
                ),
            ),
        },
        (http::Method::POST, None, None) => {
            if current.is_some() {
                return error(
                    StatusCode::CONFLICT,
                    "WORMConfigurationAlreadyExist",
                    "exists",
                );
            }
            let Some(days) = days.filter(|d| (1..=25_550).contains(d)) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "RetentionPeriodInDays",
                );
            };
            let id = format!("worm-{}", state.next_id.fetch_add(1, Ordering::SeqCst));
            state.worms.lock().expect("worms").insert(
                bucket,
                Worm {
                    id: id.clone(),
                    locked: false,
                    days,
                    created: state.now(),
                },
            );
            let mut r = xml(StatusCode::OK, String::new());
            r.headers_mut().insert(
                "x-oss-worm-id",
                http::HeaderValue::from_str(&id).expect("id"),
            );
            r
        }
        (http::Method::POST, None, Some(id)) => match current {
            Some(w) if w.id == id => {
                if let Some(w) = state.worms.lock().expect("worms").get_mut(&bucket) {
                    w.locked = true;
                }
                xml(StatusCode::OK, String::new())
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "NoSuchWORMConfiguration",
                "no such policy",
            ),
        },
        (http::Method::POST, Some(_), Some(id)) => match current {
            Some(w) if w.id == id && w.locked => match days {
                Some(d) if d > w.days && d <= 25_550 => {
                    if let Some(w) = state.worms.lock().expect("worms").get_mut(&bucket) {
                        w.days = d;
                    }
                    state.extends.fetch_add(1, Ordering::SeqCst);
                    xml(StatusCode::OK, String::new())
                }
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "The retention period can only be extended.",
                ),
            },
            Some(w) if w.id == id => error(
                StatusCode::CONFLICT,
                "WORMConfigurationNotLocked",
                "Only a locked policy can be extended.",
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "NoSuchWORMConfiguration",
                "no such policy",
            ),
        },
        (http::Method::DELETE, None, None) => match current {
            Some(w) if w.locked => error(
                StatusCode::CONFLICT,
                "WORMConfigurationLocked",
                "A locked policy cannot be removed.",
            ),
            Some(_) => {
                state.worms.lock().expect("worms").remove(&bucket);
                xml(StatusCode::NO_CONTENT, String::new())
            }
            None => error(StatusCode::NOT_FOUND, "NoSuchWORMConfiguration", "none"),
        },
        _ => error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "unknown WORM call",
        ),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
