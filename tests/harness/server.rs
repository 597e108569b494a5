//! A server on a free loopback port, on a thread of its own, stopped on drop: what every
//! stand-in of the suite (core, upstreams, fronts, a Redis that never answers) runs on. HTTP
//! servers record every request they receive (see [`crate::seen`]).

use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::{App, HttpServer, web};
use tokio::sync::watch;

use crate::seen::{Seen, SeenLog};

pub struct TestServer {
    pub port: u16,
    seen: Arc<SeenLog>,
    stop: Stop,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum Stop {
    Http(actix_web::dev::ServerHandle),
    /// Set to `true` to end the accept loop.
    Raw(watch::Sender<bool>),
}

impl TestServer {
    /// Serves the routes and data `configure` sets up, with `workers` workers.
    pub fn start(
        workers: usize,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(SeenLog::default());
        let log = Arc::clone(&seen);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let log = Arc::clone(&log);
                    App::new()
                        .wrap_fn(move |request, service| {
                            log.record(request.request());
                            service.call(request)
                        })
                        .configure(configure.clone())
                })
                .workers(workers)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("server handle");
                server.await.expect("test server");
            });
        });
        let handle = rx.recv().expect("server handle");
        Self {
            port,
            seen,
            stop: Stop::Http(handle),
            thread: Some(thread),
        }
    }

    /// Accepts TCP connections and never answers: connections are held open, nothing is read
    /// or written, until the server stops (then they close).
    #[must_use]
    pub fn black_hole() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let (stop, mut stopped) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut held = Vec::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                held.push(stream);
                            }
                        }
                        _ = stopped.wait_for(|stop| *stop) => return,
                    }
                }
            });
        });
        Self {
            port,
            seen: Arc::default(),
            stop: Stop::Raw(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.all()
    }

    /// Requests received whose target (path and query) contains `needle`.
    #[must_use]
    pub fn seen_with(&self, needle: &str) -> Vec<Seen> {
        self.seen.containing(needle)
    }

    /// Forgets the requests received so far.
    pub fn clear_seen(&self) {
        self.seen.clear();
    }

    /// Stops answering (connections are refused from here on).
    pub fn stop(&mut self) {
        match &self.stop {
            Stop::Http(handle) => {
                let handle = handle.clone();
                std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)))
                    .join()
                    .ok();
            }
            Stop::Raw(stop) => {
                stop.send_replace(true);
            }
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a stand-in's answers wait until the test lets them go: a request can be held in
/// flight while the test does something else (stops the sidecar, races replicas).
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(true)))
    }
}

impl Gate {
    /// Answers wait from now on.
    pub fn hold(&self) {
        self.0.send_replace(false);
    }

    /// Waiting answers go, and later ones do not wait.
    pub fn release(&self) {
        self.0.send_replace(true);
    }

    /// Waits while the gate is held.
    pub async fn pass(&self) {
        // Never fails: the sender lives as long as `self`.
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
}
