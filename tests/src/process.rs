//! `wormgate serve` as a process of its own, for what only a process shows: signals, kill -9,
//! a clock moved with faketime. And a plain s3s-fs store for it to stand in front of.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{ACCESS_KEY, ADMIN_KEY, ADMIN_SECRET, ADMIN_TOKEN, SECRET_KEY};

/// The `wormgate` binary: `$WORMGATE_BIN`, or the workspace's debug build.
///
/// # Panics
/// When it is not there (build it with `cargo build -p wormgate`).
#[must_use]
pub fn wormgate_bin() -> PathBuf {
    let path = std::env::var_os("WORMGATE_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wormgate"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p wormgate` first (tests/run.sh does)",
        path.display()
    );
    path
}

/// An s3s-fs store on 127.0.0.1, in this process, with the test backend's keys. `skew_secs`
/// is how far a request's signing time may be from this store's clock (s3s's default is 900).
/// `stop` is a hard outage: the listener and every open connection go at once.
pub struct Store {
    pub addr: SocketAddr,
    root: PathBuf,
    skew_secs: u32,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tasks: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
    /// How far the `Date` of its replies is ahead of the host's clock, in seconds.
    offset_secs: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Store {
    /// Starts the store over `root` on `addr` (`127.0.0.1:0` for a free port).
    ///
    /// # Panics
    /// When the directory or the port cannot be used.
    pub async fn start(root: &Path, addr: SocketAddr, skew_secs: u32) -> Self {
        Self::start_with_tls(root, addr, skew_secs, None).await
    }

    /// A store in `dir/store` on a free port, accepting s3s's default skew.
    ///
    /// # Panics
    /// As for [`Store::start`].
    pub async fn start_in(dir: &Path) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start(&dir.join("store"), any_port, 900).await
    }

    /// As [`Store::start`], speaking https with `tls` when given.
    ///
    /// # Panics
    /// When the directory or the port cannot be used.
    pub async fn start_with_tls(
        root: &Path,
        addr: SocketAddr,
        skew_secs: u32,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        Self::serve(root, addr, skew_secs, tls, std::sync::Arc::default()).await
    }

    async fn serve(
        root: &Path,
        addr: SocketAddr,
        skew_secs: u32,
        tls: Option<tokio_rustls::TlsAcceptor>,
        offset_secs: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> Self {
        std::fs::create_dir_all(root).expect("store dir");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(BACKEND_KEY, BACKEND_SECRET));
        let mut config = s3s::config::S3Config::default();
        config.presigned_url_max_skew_time_secs = skew_secs;
        builder.set_config(std::sync::Arc::new(s3s::config::StaticConfigProvider::new(
            std::sync::Arc::new(config),
        )));
        let s3 = builder.build();
        // Its `Date` follows its own clock, which `advance` moves (a store whose host clock
        // is days ahead, for a gateway run under faketime as far ahead).
        let offset = std::sync::Arc::clone(&offset_secs);
        let service = hyper::service::service_fn(move |req| {
            let s3 = s3.clone();
            let offset = offset.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut resp = hyper::service::Service::call(&s3, req).await?;
                if offset != 0 {
                    let now = chrono::Utc::now() + chrono::TimeDelta::seconds(offset);
                    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                    if let Ok(v) = http::HeaderValue::from_str(&date) {
                        resp.headers_mut().insert(http::header::DATE, v);
                    }
                }
                Ok::<_, s3s::HttpError>(resp)
            }
        });
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("bind store");
        let addr = listener.local_addr().expect("addr");
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let conns = std::sync::Arc::clone(&tasks);
        let acceptor = tls.clone();
        tasks.lock().expect("tasks").spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                let acceptor = acceptor.clone();
                conns.lock().expect("tasks").spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            root: root.to_owned(),
            skew_secs,
            tls,
            tasks,
            offset_secs,
        }
    }

    /// Moves the clock of its replies' `Date` forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_secs
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// A hard outage: the listener and every connection close now.
    pub fn stop(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    /// The store again, on the same port and directory (after `stop`).
    pub async fn restart(&self) -> Self {
        Self::serve(
            &self.root,
            self.addr,
            self.skew_secs,
            self.tls.clone(),
            std::sync::Arc::clone(&self.offset_secs),
        )
        .await
    }

    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// The environment that runs a process under libfaketime (Debian package faketime) with its
/// clock `offset` away, e.g. `+365d`. The library is preloaded into the gateway itself (not
/// through the `faketime` command, which would stand between the test and the gateway's pid).
///
/// # Panics
/// When libfaketime is not installed.
#[must_use]
pub fn faketime(offset: &str) -> Vec<(String, String)> {
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime is missing (Debian package faketime; tests/run.sh installs it)");
    vec![
        ("LD_PRELOAD".to_owned(), lib.display().to_string()),
        ("FAKETIME".to_owned(), offset.to_owned()),
        ("FAKETIME_NO_CACHE".to_owned(), "1".to_owned()),
    ]
}

/// As [`faketime`], with the offset read from `file` on every clock reading, so that a running
/// process's clock can be moved (write `+SECONDS` into it). The monotonic clock is left alone:
/// timers and timeouts run in real time.
///
/// # Panics
/// When libfaketime is not installed.
#[must_use]
pub fn faketime_file(file: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = faketime("+0")
        .into_iter()
        .filter(|(k, _)| k != "FAKETIME")
        .collect();
    env.push((
        "FAKETIME_TIMESTAMP_FILE".to_owned(),
        file.display().to_string(),
    ));
    env.push(("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()));
    env
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `wormgate <args>` to its end: exit success, stdout and stderr.
///
/// # Panics
/// When the binary cannot be run.
pub async fn run_args(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(wormgate_bin())
        .args(args)
        .env("WORMGATE_LOG", "warn")
        .output()
        .await
        .expect("run wormgate");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs `wormgate <args> --config config` to its end: exit success, stdout and stderr.
///
/// # Panics
/// When the binary cannot be run.
pub async fn run_cli(args: &[&str], config: &Path) -> (bool, String) {
    let config = config.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", config.as_str()]);
    run_args(&all).await
}

/// The keys of the store behind the gateway (only the gateway holds them).
pub const BACKEND_KEY: &str = "BACKENDPROCESSKEY0001";
pub const BACKEND_SECRET: &str = "backend-process-secret-0000000000000001";

/// A gateway configuration for `backend_url`, with the tests' users and admin token, state
/// under `dir`, both listeners on free ports; `extra` is appended (more sections or keys of
/// `[locks]`, which comes last).
///
/// # Panics
/// When the file cannot be written.
#[must_use]
pub fn write_config(dir: &Path, backend_url: &str, extra: &str) -> PathBuf {
    write_config_with(dir, backend_url, "", extra)
}

/// As [`write_config`], with `server_extra` added to `[server]` (e.g. `tls_cert`, `tls_key`).
///
/// # Panics
/// When the file cannot be written.
#[must_use]
pub fn write_config_with(
    dir: &Path,
    backend_url: &str,
    server_extra: &str,
    extra: &str,
) -> PathBuf {
    let data = dir.join("data");
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
shutdown_grace_secs = 20
{server_extra}

[admin]
listen = "127.0.0.1:0"
token = "{ADMIN_TOKEN}"

[backend]
url = "{backend_url}"
access_key = "{BACKEND_KEY}"
secret_key = "{BACKEND_SECRET}"

[[users]]
access_key = "{ACCESS_KEY}"
secret_key = "{SECRET_KEY}"

[[users]]
access_key = "{ADMIN_KEY}"
secret_key = "{ADMIN_SECRET}"
permissions = ["read", "write", "extend-retention", "bypass-governance", "legal-hold", "admin"]

[locks]
index_dir = "{index}"
{extra}
"#,
        data = data.display(),
        index = dir.join("index").display(),
    );
    let path = dir.join("wormgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running `wormgate serve`.
pub struct Gateway {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT` of the S3 listener.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// Where its log (stderr) goes.
    pub log: PathBuf,
}

impl Gateway {
    /// Starts `wormgate serve --config config` with `env` added (e.g. `faketime("+365d")`),
    /// and waits until both listeners are up.
    ///
    /// # Panics
    /// When it does not start within 60 s; its log is printed.
    pub async fn start(config: &Path, env: &[(String, String)]) -> Self {
        let bin = wormgate_bin();
        let log = config.with_extension(format!(
            "{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("WORMGATE_LOG", "info,s3s=off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn wormgate");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut admin) = (None, None);
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(u) = line.strip_prefix("wormgate listening on ") {
                    url = Some(u.trim().to_owned());
                }
                if let Some(rest) = line.strip_prefix("admin listening on ") {
                    admin = rest.split_whitespace().next().map(str::to_owned);
                }
                if url.is_some() && admin.is_some() {
                    return true;
                }
            }
            false
        })
        .await;
        if started != Ok(true) {
            let _ = child.start_kill();
            panic!(
                "wormgate did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // Keep draining stdout so that the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            url: url.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
            log,
        }
    }

    /// The process id.
    ///
    /// # Panics
    /// When the process has already been reaped.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends a signal by name (`TERM`, `KILL`, `HUP`, `INT`).
    ///
    /// # Panics
    /// When `kill` cannot be run.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to end, at most `within`.
    pub async fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// kill -9, and reap it.
    pub async fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.wait(Duration::from_secs(10)).await;
    }

    /// SIGTERM, and asserts that the gateway exits 0 within 30 s.
    ///
    /// # Panics
    /// When it does not; its log is printed.
    pub async fn stop_cleanly(&mut self) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}\n{}",
            self.log_text()
        );
    }

    /// The log so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An aws-sdk-s3 client for it, signing as the tests' backup agent.
    #[must_use]
    pub fn client(&self) -> aws_sdk_s3::Client {
        crate::s3_client(&self.url, ACCESS_KEY, SECRET_KEY)
    }

    /// GET on the admin listener with the tests' token; the body whole.
    pub async fn admin_get(&self, path: &str) -> crate::Reply {
        let req = http::Request::builder()
            .uri(format!("{}{path}", self.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(crate::empty_raw_body())
            .expect("request");
        crate::send(req).await
    }
}

/// The value of a counter or gauge in a Prometheus text page (0 when absent).
#[must_use]
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// A clock `offset` away from the host's, for a client that must agree with a gateway run
/// under faketime (the gateway checks the signing time against its own clock).
#[derive(Debug)]
struct OffsetTime(chrono::TimeDelta);

impl aws_smithy_async::time::TimeSource for OffsetTime {
    fn now(&self) -> std::time::SystemTime {
        let now = std::time::SystemTime::now();
        match self.0.to_std() {
            Ok(ahead) => now + ahead,
            Err(_) => now - (-self.0).to_std().unwrap_or_default(),
        }
    }
}

/// An aws-sdk-s3 client for `url` whose clock is `offset` from the host's, signing as `key`,
/// without retries (a refusal is the answer, not a reason to try again).
#[must_use]
pub fn client_at(url: &str, key: (&str, &str), offset: chrono::TimeDelta) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(crate::REGION))
        .force_path_style(true)
        .credentials_provider(Credentials::new(key.0, key.1, None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .time_source(aws_smithy_async::time::SharedTimeSource::new(OffsetTime(
            offset,
        )))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
