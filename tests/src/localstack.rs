//! LocalStack, the reference for S3's behaviour and the native-lock backend of the tests.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use wormgate::config::{RemoteBackend, Secret};

use crate::{REGION, RawBody, full};

/// LocalStack, started for a test on a free loopback port and killed when dropped.
pub struct LocalStack {
    pid: u32,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LocalStack {
    /// Installs LocalStack if needed (`tests/localstack.sh`), starts it, and waits until its S3
    /// answers.
    ///
    /// # Panics
    /// When it cannot be installed or does not come up within two minutes.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack.sh");
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .await
            .expect("run localstack.sh");
        assert!(
            out.status.success(),
            "localstack.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("localstack pid");
        let me = Self {
            pid,
            port,
            _dir: dir,
        };
        let health = format!("http://127.0.0.1:{port}/_localstack/health");
        let client: Client<HttpConnector, RawBody> =
            Client::builder(TokioExecutor::new()).build_http();
        for _ in 0..240 {
            let req = http::Request::get(&health).body(full("")).expect("request");
            if let Ok(resp) = client.request(req).await {
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(body) = body
                    && String::from_utf8_lossy(&body).contains("\"s3\": \"running\"")
                {
                    return me;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("LocalStack did not come up on port {port}");
    }

    /// The backend settings for the gateway (LocalStack takes any keys).
    #[must_use]
    pub fn backend(&self) -> RemoteBackend {
        RemoteBackend {
            url: format!("http://127.0.0.1:{}", self.port)
                .parse()
                .expect("url"),
            access_key: "wormgate-backend".into(),
            secret_key: Secret::new("wormgate-backend-secret"),
            region: REGION.into(),
            ca_file: None,
            connect_timeout_secs: 5,
            response_timeout_secs: 60,
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // SIGTERM can hang LocalStack: kill it outright.
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
    }
}
