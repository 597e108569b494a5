//! The composition root: builds every part from the settings (clients, the cache and its
//! tiers, the serving decision, the workers in the background, the HTTP servers) and runs them
//! until a signal stops them. The only module that sees the whole service.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use futures_util::future::{FutureExt, LocalBoxFuture};
use harbor_client::{BasicAuth, CoreClient, CoreTransport};
use registry_client::RegistryClient;
use tracing_actix_web::TracingLogger;

use crate::cache::{CacheConfig, ReferrersCache, shared_store};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::http::{self, AppState, Forwarder};
use crate::metrics::Metrics;
use crate::operator::{OperatorAccess, OperatorBudgets};
use crate::referrers::{AnswerMemo, CoreCalls};
use crate::replicas::Replicas;
use crate::serving::Serving;
use crate::store_in_harbor::{self, StoreWorker, WorkerParts};
use crate::telemetry::RequestSpan;
use crate::upstream::{Manifests, Upstream, UpstreamFetcher, UpstreamRequestMetrics};
use crate::warming::Warming;
use crate::webhook::{WarmQueue, warm};

/// How long an idle client connection is kept open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(75);

/// Connections to core of the store's own pool: each registry's lane pulls one referrer at a
/// time, and a pull from a slow registry (core fetching from it) holds its connection, so the
/// other lanes need some of their own.
const STORE_CORE_CONNECTIONS: usize = 8;

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Transport(#[from] harbor_client::TransportError),
    #[error("cannot set up the upstream client: {0}")]
    Upstream(#[from] registry_client::ClientError),
    #[error("cannot set up the Redis cache tier: {0}")]
    Redis(#[from] crate::cache::RedisError),
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
    version_probe: CoreClient,
    /// The warm fetches of pulled artifacts Harbor's webhooks queue.
    warming: LocalBoxFuture<'static, ()>,
    replicas: Arc<Replicas>,
    /// Pulls upstream referrers into Harbor, in the background (`projects.store_in_harbor`).
    store_worker: Option<StoreWorker>,
}

impl Application {
    /// Binds both listeners (port 0 picks a free one) and prepares the servers.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let listener = bind(settings.listen)?;
        let metrics_listener = bind(settings.metrics_listen)?;
        let port = local_port(&listener)?;
        let metrics_port = local_port(&metrics_listener)?;

        let core_url = settings.harbor.url.clone();
        let transport = CoreTransport::new(
            settings.harbor.ca_file.as_deref(),
            settings.harbor.connect_timeout,
        )?;
        // One TLS provider for every rustls client in the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry_labels: Vec<String> = settings.registries.keys().cloned().collect();
        let metrics = Arc::new(Metrics::new(&registry_labels)?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let upstream = Arc::new(UpstreamFetcher::new(
            RegistryClient::new(
                settings
                    .upstream
                    .client_config(Some(Arc::new(UpstreamRequestMetrics(Arc::clone(&metrics))))),
            )?,
            &settings.upstream,
            Arc::clone(&clock),
            Arc::clone(&metrics),
        ));
        let cache_config = CacheConfig::new(
            &settings.cache,
            settings.upstream.timeout,
            &settings.harbor.url,
        );
        let cache = Arc::new(ReferrersCache::new(
            cache_config,
            shared_store(&settings.cache)?,
            Arc::clone(&upstream) as Arc<dyn Upstream>,
            Arc::clone(&clock),
            Arc::clone(&metrics),
        ));
        let replicas = Arc::new(Replicas::new(
            Arc::clone(&cache),
            Arc::clone(&clock),
            Arc::clone(&metrics),
        ));
        let operator_budgets = OperatorBudgets::new(&settings.operator, &clock);
        let core_credentials = core_credentials(&settings);
        let (warm_queue, warm_receiver) =
            WarmQueue::new(settings.webhook.queue_size, Arc::clone(&metrics));
        let core_timeout = settings.harbor.timeout;
        let serving = Arc::new(Serving::new(
            settings.projects.clone(),
            settings.registries.clone(),
            settings.harbor.project_info_ttl,
            Arc::clone(&metrics),
        ));
        // Its own small pool: pulls never take a request's connection.
        let (store, store_worker) = if settings.projects.may_store_in_harbor() {
            let (store, worker) = store_in_harbor::channel(
                &settings.store,
                settings.cache.keep_stale_for,
                WorkerParts {
                    core: CoreClient::new(
                        transport.connections(STORE_CORE_CONNECTIONS, core_timeout),
                        core_url.clone(),
                        core_timeout,
                        core_credentials.clone(),
                    ),
                    serving: Arc::clone(&serving),
                    upstream: Arc::clone(&upstream) as Arc<dyn Manifests>,
                    claims: cache.claims(),
                    clock,
                    metrics: Arc::clone(&metrics),
                    facts_ttl: settings.harbor.project_info_ttl,
                },
            );
            (Some(Arc::new(store)), Some(worker))
        } else {
            (None, None)
        };
        let state = web::Data::new(AppState {
            serving,
            cache: Arc::clone(&cache),
            memo: AnswerMemo::new(settings.cache.answer_memo_bytes),
            replicas: Arc::clone(&replicas),
            upstream,
            operator: OperatorAccess::default(),
            operator_budgets,
            store,
            settings,
            metrics: Arc::clone(&metrics),
        });
        // actix's own default: one worker per CPU the process may run on.
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let per_worker = state.settings.harbor.max_connections.div_ceil(workers);
        tracing::info!(
            workers,
            core_connections_per_worker = per_worker,
            "connections to Harbor core pooled per worker"
        );
        let version_probe = CoreClient::new(
            transport.connections(1, core_timeout),
            core_url.clone(),
            core_timeout,
            core_credentials.clone(),
        );
        let warming = warm::run(
            warm_receiver,
            Arc::clone(&warm_queue),
            Warming {
                serving: Arc::clone(&state.serving),
                cache: Arc::clone(&state.cache),
                store: state.store.clone(),
                metrics: Arc::clone(&state.metrics),
            },
            CoreClient::new(
                transport.connections(warm::CONCURRENCY, core_timeout),
                core_url.clone(),
                core_timeout,
                core_credentials.clone(),
            ),
        )
        .boxed_local();
        let warm_queue = web::Data::from(warm_queue);

        let metrics_state = state.clone();
        let server = HttpServer::new(move || {
            // Pass-through and the calls to core's API and referrers share one pool per worker.
            let connections = transport.connections(per_worker, core_timeout);
            let forwarder = Forwarder::new(connections.clone(), &core_url);
            let core = CoreClient::new(
                connections,
                core_url.clone(),
                core_timeout,
                core_credentials.clone(),
            );
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .app_data(web::Data::new(forwarder))
                .app_data(web::Data::new(core))
                .app_data(web::Data::new(CoreCalls::default()))
                .app_data(warm_queue.clone())
                // Bodies are streamed to core; the sidecar itself reads only webhooks, bounded.
                .app_data(web::PayloadConfig::new(usize::MAX))
                .configure(http::configure)
        })
        .workers(workers)
        .shutdown_timeout(SHUTDOWN_GRACE_SECONDS)
        // Longer than the front proxy's idle time for upstream connections (ingress-nginx keeps
        // them 60 s): a proxy must never reuse a connection the sidecar has just closed, or a
        // non-idempotent request (a layer upload passed through) fails.
        .keep_alive(KEEP_ALIVE)
        // A connection not used yet is kept as long: a pooling client or proxy opens one for a
        // request that another connection then takes, and keeps it for the next. After actix's
        // default of 5 s the sidecar would send it an unasked 408 and close it, and a request
        // sent on it meanwhile fails (hyper's clients report an unexpected message).
        .client_request_timeout(KEEP_ALIVE)
        // Signals are handled in `run_until_stopped`: actix's own handling stops the whole
        // runtime as soon as the first of the two servers is done, cutting off the other's
        // in-flight requests.
        .disable_signals()
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();

        let metrics_server = HttpServer::new(move || {
            App::new()
                .app_data(metrics_state.clone())
                .configure(http::configure_metrics)
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
            version_probe,
            warming,
            replicas,
            store_worker,
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
        actix_web::rt::spawn(log_harbor_version(self.version_probe));
        actix_web::rt::spawn(self.warming);
        // Purges other replicas publish reach this one's in-process tier (Redis tier only).
        actix_web::rt::spawn(self.replicas.listen_for_purges());
        if let Some(worker) = self.store_worker {
            actix_web::rt::spawn(worker.run());
        }
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

/// Reads Harbor's version once at start and logs what the sidecar adapts to.
async fn log_harbor_version(core: CoreClient) {
    match core.system_info().await {
        Ok(info) => match (info.harbor_version.as_deref(), info.version()) {
            (Some(text), Some((2, minor))) if minor < 10 => tracing::info!(
                harbor_version = text,
                "Harbor < 2.10: robots cannot read registries; registry facts come from the configuration, and upstream descriptors replace core's (wrong sizes and artifactTypes before 2.11)"
            ),
            (Some(text), Some((2, minor))) if minor < 11 => tracing::info!(
                harbor_version = text,
                "Harbor 2.10: core pages its referrers and reports wrong sizes and artifactTypes; upstream descriptors replace them"
            ),
            (Some(text), _) => tracing::info!(harbor_version = text, "Harbor core answers"),
            (None, _) => tracing::warn!(
                "Harbor did not report its version: are harbor.username and the password right?"
            ),
        },
        Err(error) => tracing::warn!(error = %error, "cannot read Harbor's systeminfo at start"),
    }
}

/// The robot account for Harbor's API, when configured.
fn core_credentials(settings: &Settings) -> Option<BasicAuth> {
    Some(BasicAuth {
        username: settings.harbor.username.clone()?,
        password: settings.harbor.password.as_ref()?.expose().to_owned(),
    })
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

/// Binds `address`; where IPv6 is unavailable, `[::]` falls back to `0.0.0.0`.
fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    match TcpListener::bind(address) {
        Ok(listener) => Ok(listener),
        Err(e) if address.ip().is_unspecified() && address.is_ipv6() => {
            let fallback = SocketAddr::from(([0, 0, 0, 0], address.port()));
            tracing::warn!(%address, error = %e, %fallback, "IPv6 unavailable, listening on IPv4 only");
            TcpListener::bind(fallback).map_err(|source| StartupError::Bind {
                address: fallback.to_string(),
                source,
            })
        }
        Err(source) => Err(StartupError::Bind {
            address: address.to_string(),
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
