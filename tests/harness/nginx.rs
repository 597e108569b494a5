//! A real nginx in the foreground on loopback, with its prefix, pid, logs and temp files in a
//! temp dir of its own: the front proxy Harbor's offline installer runs, for route tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::ports::start_on_free_port;

/// The nginx binary: `$REFERRERS_SIDECAR_TOOLS/bin/nginx` (what `scripts/setup.sh` links), then
/// `~/.cache/referrers-sidecar/tools/bin/nginx`, then `/usr/sbin/nginx`.
#[must_use]
pub fn binary() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(tools) = std::env::var_os("REFERRERS_SIDECAR_TOOLS") {
        candidates.push(PathBuf::from(tools).join("bin/nginx"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/referrers-sidecar/tools/bin/nginx"));
    }
    candidates.push(PathBuf::from("/usr/sbin/nginx"));
    candidates
        .iter()
        .find(|path| path.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!("nginx not found in {candidates:?}: run `make setup` (scripts/setup.sh)")
        })
}

/// A loopback UDP port nothing listens on (a DNS server that does not exist).
#[must_use]
pub fn closed_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `nginx.conf` as the main configuration and `files` (paths relative to
    /// the prefix) beside it. In every text, `{prefix}` becomes the temp dir and `{port}` a free
    /// loopback port. Waits until nginx listens there; panics with its error log if it exits
    /// for any other reason than losing that port.
    pub fn start(nginx_conf: &str, files: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().to_str().expect("utf-8 temp dir").to_owned();
        let error_log = dir.path().join("error.log");
        let (child, port) = start_on_free_port(
            "nginx",
            |port| {
                // An earlier try that did not just lose its port failed for good.
                let failed = std::fs::read_to_string(&error_log).unwrap_or_default();
                assert!(
                    failed.is_empty() || failed.contains("Address already in use"),
                    "nginx exited before listening:\n{failed}"
                );
                let fill = |text: &str| {
                    text.replace("{prefix}", &prefix)
                        .replace("{port}", &port.to_string())
                };
                for (path, text) in files {
                    let path = dir.path().join(path);
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    std::fs::write(path, fill(text)).expect("write nginx file");
                }
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, fill(nginx_conf)).expect("write nginx.conf");
                let _ = std::fs::remove_file(&error_log);
                // One process in the foreground: killing the child stops nginx entirely.
                Command::new(binary())
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(&error_log)
                    .args(["-g", "daemon off; master_process off;"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start nginx")
            },
            |_| true,
        );
        Self { child, port, dir }
    }

    /// nginx's error log so far.
    #[must_use]
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    #[must_use]
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// Whether nginx is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait nginx").is_none()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
