//! Building the application from settings: listeners, workers, routes, and the run loop.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use harbor_client::CoreTransport;
use tracing_actix_web::TracingLogger;
use url::Url;

use crate::config::{ConfigError, Settings, parse_listen};
use crate::metrics::Metrics;
use crate::routes::{self, passthrough::Forwarder};
use crate::telemetry::RequestSpan;

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE_SECONDS: u64 = 30;

/// State shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Transport(#[from] harbor_client::TransportError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the HTTP server: {0}")]
    Server(std::io::Error),
}

pub struct Application {
    port: u16,
    metrics_port: u16,
    server: Server,
    metrics_server: Server,
}

impl Application {
    /// Binds both listeners (port 0 picks a free one) and prepares the servers.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let listener = bind("listen", &settings.listen)?;
        let metrics_listener = bind("metrics_listen", &settings.metrics_listen)?;
        let port = local_port(&listener)?;
        let metrics_port = local_port(&metrics_listener)?;

        let core_url = Url::parse(&settings.harbor.url).map_err(|e| ConfigError::Invalid {
            key: "harbor.url".into(),
            message: e.to_string(),
        })?;
        let transport = CoreTransport::new(
            settings.harbor.ca_file.as_deref(),
            settings.harbor.connect_timeout,
        )?;
        let metrics = Arc::new(Metrics::new()?);
        let state = web::Data::new(AppState {
            settings,
            metrics: Arc::clone(&metrics),
        });

        let server = HttpServer::new(move || {
            let forwarder = Forwarder::new(transport.client(None), &core_url);
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .app_data(web::Data::new(forwarder))
                // Bodies are streamed to core; the sidecar itself reads none.
                .app_data(web::PayloadConfig::new(usize::MAX))
                .route("/healthz", web::get().to(routes::health::healthz))
                .route("/readyz", web::get().to(routes::health::readyz))
                .default_service(web::to(routes::dispatch))
        })
        .shutdown_timeout(SHUTDOWN_GRACE_SECONDS)
        // Signals are handled in `run_until_stopped`: actix's own handling stops the whole
        // runtime as soon as the first of the two servers is done, cutting off the other's
        // in-flight requests.
        .disable_signals()
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();

        let metrics_data = web::Data::from(metrics);
        let metrics_server = HttpServer::new(move || {
            App::new()
                .app_data(metrics_data.clone())
                .route("/metrics", web::get().to(render_metrics))
        })
        .workers(1)
        .shutdown_timeout(SHUTDOWN_GRACE_SECONDS)
        .disable_signals()
        .listen(metrics_listener)
        .map_err(StartupError::Server)?
        .run();

        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    #[must_use]
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// Serves until SIGTERM/SIGINT, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(
            port = self.port,
            metrics_port = self.metrics_port,
            "referrers-sidecar listening"
        );
        let server_handle = self.server.handle();
        let metrics_handle = self.metrics_server.handle();
        // Each server's future drives its own command loop, so both run as tasks of their own
        // while this one waits for a signal and then asks them to stop.
        let server = actix_web::rt::spawn(self.server);
        let metrics_server = actix_web::rt::spawn(self.metrics_server);
        let mut servers = std::pin::pin!(futures_util::future::try_join(server, metrics_server));
        tokio::select! {
            result = &mut servers => return flatten(result),
            signal = shutdown_signal() => {
                tracing::info!(signal, "stopping: in-flight requests may finish");
            }
        }
        // Referrers and pass-through first, so metrics stay scrapeable while they drain.
        server_handle.stop(true).await;
        metrics_handle.stop(true).await;
        flatten(servers.await)?;
        tracing::info!("referrers-sidecar stopped");
        Ok(())
    }
}

fn flatten(
    joined: Result<(std::io::Result<()>, std::io::Result<()>), tokio::task::JoinError>,
) -> std::io::Result<()> {
    let (server, metrics_server) = joined.map_err(std::io::Error::other)?;
    server.and(metrics_server)
}

/// Resolves on SIGTERM or SIGINT, naming the signal.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            tracing::error!("cannot listen for SIGTERM/SIGINT; stop the process with SIGKILL");
            std::future::pending().await
        }
    }
}

async fn render_metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

/// Binds `address`; where IPv6 is unavailable, `[::]` falls back to `0.0.0.0`.
fn bind(key: &str, address: &str) -> Result<TcpListener, StartupError> {
    let parsed = parse_listen(key, address)?;
    match TcpListener::bind(parsed) {
        Ok(listener) => Ok(listener),
        Err(e) if parsed.ip().is_unspecified() && parsed.is_ipv6() => {
            let fallback = SocketAddr::from(([0, 0, 0, 0], parsed.port()));
            tracing::warn!(%address, error = %e, %fallback, "IPv6 unavailable, listening on IPv4 only");
            TcpListener::bind(fallback).map_err(|source| StartupError::Bind {
                address: fallback.to_string(),
                source,
            })
        }
        Err(source) => Err(StartupError::Bind {
            address: address.to_owned(),
            source,
        }),
    }
}

fn local_port(listener: &TcpListener) -> Result<u16, StartupError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(StartupError::Server)
}
