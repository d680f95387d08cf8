//! The process's life: start, print where to reach it, serve until a signal, drain, stop.
//! SIGHUP reloads the TLS certificate; a second SIGTERM or Ctrl-C stops at once.

use anyhow::Context as _;

use super::{Server, endpoint};
use crate::config::{BackendSettings, Settings};

/// Runs the gateway with `settings` until SIGTERM or Ctrl-C, printing the endpoint, the keys it
/// generated (if any) and the admin token to stdout.
///
/// # Errors
/// The gateway cannot start (settings, backend, probe) or cannot listen.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let server = Server::new(&settings).await.context("cannot start")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let url = endpoint(addr, server.is_tls());
    match &settings.backend {
        BackendSettings::Embedded => tracing::info!(
            data = %settings.data_dir.display(),
            "backend: embedded local store (no object lock of its own)"
        ),
        BackendSettings::Remote(r) => tracing::info!(url = %r.url, region = %r.region, "backend"),
    }
    // The endpoint and the keys go to stdout, so that a person or a script can read them.
    println!("wormgate listening on {url}");
    if settings.users.is_empty()
        && let Some(user) = server.users.first()
    {
        println!(
            "credentials (kept in {}):",
            settings.data_dir.join("credentials.toml").display()
        );
        println!("  AWS_ACCESS_KEY_ID={}", user.access_key);
        println!("  AWS_SECRET_ACCESS_KEY={}", user.secret_key.expose());
    } else {
        let keys: Vec<&str> = server.users.iter().map(|u| u.access_key.as_str()).collect();
        println!("users: {}", keys.join(", "));
    }
    println!("try: aws --endpoint-url {url} s3 ls");

    let token = match &settings.admin.token {
        Some(t) => t.clone(),
        None => {
            let (token, _) = crate::config::credentials::admin_token(&settings.data_dir)
                .context("cannot keep the admin token")?;
            println!(
                "admin token (kept in {}): {}",
                settings.data_dir.join("admin-token").display(),
                token.expose()
            );
            token
        }
    };
    let admin_listener = tokio::net::TcpListener::bind(settings.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", settings.admin.listen))?;
    println!(
        "admin listening on http://{} (/healthz, /readyz, /metrics, /audit/...)",
        admin_listener.local_addr()?
    );
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(server.admin(token).run(admin_listener, async {
        let _ = admin_stopped.await;
    }));
    reload_on_hangup(server.certificate());
    let closer = server.closer();
    let first_signal = async move {
        shutdown_signal().await;
        // A second signal: stop now. Every acknowledged lock is already durable; flush the
        // rest and leave without waiting for the uploads still in flight.
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::warn!("second signal: stopping at once, in-flight requests are cut off");
            closer.close();
            std::process::exit(1);
        });
    };
    server.run(listener, first_signal).await?;
    let _ = stop_admin.send(());
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP reads the listener's certificate and key again (after a renewal); connections
/// already open keep theirs. Without TLS there is nothing to reload, and a SIGHUP still does not
/// stop the gateway.
fn reload_on_hangup(certificate: Option<std::sync::Arc<super::tls::ReloadableCert>>) {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: the certificate is not reloadable");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match &certificate {
                    None => tracing::info!("SIGHUP: no TLS certificate to reload"),
                    Some(cert) => match cert.reload() {
                        Ok(()) => tracing::info!(
                            "SIGHUP: TLS certificate reloaded; new connections use it"
                        ),
                        Err(e) => {
                            tracing::error!(error = %e, "SIGHUP: cannot reload the TLS certificate; the current one stays")
                        }
                    },
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = certificate;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!(
        "shutting down: no new connections, draining in-flight requests (a second signal stops at once)"
    );
}
