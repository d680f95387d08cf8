//! The one accept loop every listener uses (the S3 listener, the admin listener, the embedded
//! store): a cap on open connections, a header read timeout, TLS, graceful shutdown; and the
//! request body wrapper that tells whether a reply left the body unread.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

impl crate::ops::admin::Admin {
    /// Serves the admin listener until `shutdown` completes, on the same accept loop as the S3
    /// listener (header read timeout, connection cap).
    ///
    /// # Errors
    /// Never for a single bad connection.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let service = service_fn(move |req| {
            let admin = self.clone();
            async move { Ok::<_, std::convert::Infallible>(admin.handle(req).await) }
        });
        serve(
            listener,
            None,
            service,
            shutdown,
            Duration::from_secs(1),
            Limits {
                max_connections: 64,
                ..Limits::DEFAULT
            },
        )
        .await
    }
}

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request's headers: from the connection's start
    /// to its first request, and on HTTP/1 from the end of one request to the whole header of
    /// the next (so an idle keep-alive connection is closed after it too).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one ends.
    pub max_connections: usize,
}

impl Limits {
    /// The defaults: 30 s to send headers, 1 024 connections.
    pub const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 1024,
    };
}

/// Accept loop shared by the gateway and the embedded store.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new clients wait in the backlog, not in memory.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.as_mut() => break,
        };
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let _ = stream.set_nodelay(true);
        // hyper times out the headers of each HTTP/1 request once it reads them; before the
        // first request (the protocol is not known yet, or an HTTP/2 preface never ends) the
        // connection is cut here if no request has begun in time.
        let asked = Arc::new(AtomicBool::new(false));
        let service = {
            let asked = Arc::clone(&asked);
            let service = service.clone();
            service_fn(move |req: http::Request<Incoming>| {
                asked.store(true, Ordering::Release);
                service.call(req)
            })
        };
        let deadline = limits.header_read_timeout;
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let acceptor = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let until_first_request = async {
                tokio::time::sleep(deadline).await;
                if asked.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            };
            let served = async {
                match acceptor {
                    None => {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => {
                        let stream = match acceptor.accept(stream).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return Ok(());
                            }
                        };
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                }
            };
            tokio::select! {
                res = served => if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                () = until_first_request => {
                    tracing::debug!(%peer, "no request within the header read timeout: connection cut");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests did not finish within the grace period"
        );
    }
    Ok(())
}

/// A request body that notes when it has been read to its end.
pub(super) struct ReadThrough {
    inner: Incoming,
    done: Arc<AtomicBool>,
}

impl ReadThrough {
    /// The request for s3s, and for a request with a body, the flag its end sets.
    pub(super) fn track(
        req: http::Request<Incoming>,
    ) -> (http::Request<s3s::Body>, Option<Arc<AtomicBool>>) {
        use http_body::Body as _;
        if req.body().is_end_stream() {
            return (req.map(s3s::Body::from), None);
        }
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        (
            req.map(|inner| s3s::Body::http_body(Self { inner, done })),
            Some(flag),
        )
    }

    fn note_end(&self) -> bool {
        use http_body::Body as _;
        let end = self.inner.is_end_stream();
        if end {
            self.done.store(true, Ordering::Release);
        }
        end
    }
}

impl http_body::Body for ReadThrough {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => self.done.store(true, Ordering::Release),
            std::task::Poll::Ready(Some(Ok(_))) => {
                self.note_end();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.note_end()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
