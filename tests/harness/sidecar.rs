//! The sidecar as a real process: its own config file, loopback ports, logs captured.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use referrers_sidecar::config::Settings;

use crate::users::User;

/// Where `cargo build -p referrers-sidecar` put the binary (override: `REFERRERS_SIDECAR_BIN`).
#[must_use]
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REFERRERS_SIDECAR_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target.join("debug/referrers-sidecar");
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p referrers-sidecar` (`make test` does)",
        path.display()
    );
    path
}

pub struct Sidecar {
    child: Child,
    pub port: u16,
    pub metrics_port: u16,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts the sidecar with `config` and waits until it listens.
    pub fn start(config: &Settings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, crate::config::to_yaml(config)).expect("write config");
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start referrers-sidecar");

        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ports_tx, ports_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && event["message"] == "referrers-sidecar listening"
                {
                    let port = |key: &str| event[key].as_u64().map(|p| p as u16);
                    let _ = ports_tx.send((port("port"), port("metrics_port")));
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let mut ports = None;
        crate::wait::blocking("referrers-sidecar listening", || {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!(
                    "referrers-sidecar exited ({status}) before listening:\n{}",
                    logs.lock().expect("logs").join("\n")
                );
            }
            ports = match ports_rx.try_recv() {
                Ok((Some(port), Some(metrics_port))) => Some((port, metrics_port)),
                Ok(_) => panic!("listening line without ports"),
                Err(_) => None,
            };
            ports.is_some()
        });
        let (port, metrics_port) = ports.expect("ports");
        Self {
            child,
            port,
            metrics_port,
            logs,
            _dir: dir,
        }
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the process so far (`VmHWM`), in bytes.
    #[must_use]
    pub fn peak_rss_bytes(&self) -> u64 {
        self.memory("VmHWM:")
    }

    /// Resident memory of the process now (`VmRSS`), in bytes.
    #[must_use]
    pub fn rss_bytes(&self) -> u64 {
        self.memory("VmRSS:")
    }

    /// A memory line of `/proc/<pid>/status` (`field` with its colon), in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{}/status", self.pid()));
        kib * 1024
    }

    /// Everything the sidecar logged so far.
    #[must_use]
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// `GET path` with `user`'s basic credentials, as docker and oras send them to Harbor.
    pub async fn get_as(&self, path: &str, user: User) -> reqwest::Response {
        crate::http_client()
            .get(self.url(path))
            .basic_auth(user.name, Some(user.password))
            .send()
            .await
            .expect("request")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        crate::get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one series of `/metrics` (`name{labels}` as exported).
    pub async fn metric(&self, series: &str) -> f64 {
        crate::metric(&self.metrics().await, series)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut exited = None;
        crate::wait::blocking("the sidecar exiting", || {
            exited = self.child.try_wait().expect("wait");
            exited.is_some()
        });
        exited.expect("exit status")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
