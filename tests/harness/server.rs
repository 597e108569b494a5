//! An actix-web server on a free loopback port, on a thread of its own, stopped on drop: what
//! every stand-in of the suite (core, upstreams, fronts) runs on.

use actix_web::{App, HttpServer, web};

pub struct TestServer {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serves the routes and data `configure` sets up, with `workers` workers.
    pub fn start(
        workers: usize,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || App::new().configure(configure.clone()))
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
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops answering (connections are refused from here on).
    pub fn stop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)))
            .join()
            .ok();
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
