//! Real Redis for tests: a `redis-server` on a free loopback port (killed, restarted, frozen at
//! will), a Sentinel set-up (master, replica, three sentinels) that can fail over, a black hole
//! that accepts connections and never answers, and a tiny RESP client to look inside.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::{start_on_free_port, wait_listening};
use crate::server::TestServer;
use crate::upstreams::tool;
use crate::wait::blocking;

/// The master name the sentinels monitor.
pub const SENTINEL_MASTER: &str = "mymaster";

/// One `redis-server` on 127.0.0.1, no persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A stand-alone server on a free port.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A replica of the server on `master_port`.
    #[must_use]
    pub fn start_replica_of(master_port: u16) -> Self {
        Self::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ])
    }

    fn start_with(extra_args: Vec<String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, port) = start_on_free_port(
            "redis-server",
            |port| spawn_server(port, dir.path(), &extra_args),
            answers_ping,
        );
        Self {
            child: Some(child),
            port,
            extra_args,
            dir,
        }
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    #[must_use]
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Kills the server (SIGKILL): connections drop, new ones are refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = spawn_server(self.port, self.dir.path(), &self.extra_args);
        if let Err(status) = wait_listening("redis-server", &mut child, self.port, answers_ping) {
            panic!(
                "redis-server exited ({status}) on restart: port {} taken",
                self.port
            );
        }
        self.child = Some(child);
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// A client on database `db`, to look at what the code under test stored.
    #[must_use]
    pub fn client(&self, db: u8) -> RedisClient {
        RedisClient {
            port: self.port,
            db: Some(db),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused (stopped) server too.
        self.kill();
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (simple or bulk string), if it is one.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(text) => Some(text.clone()),
            Self::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// A one-command-per-connection RESP client: enough to inspect a server from a test without
/// sharing the code under test.
#[derive(Debug, Clone, Copy)]
pub struct RedisClient {
    port: u16,
    db: Option<u8>,
}

impl RedisClient {
    /// A client for a sentinel (no `SELECT`).
    #[must_use]
    pub fn sentinel(port: u16) -> Self {
        Self { port, db: None }
    }

    /// Sends one command (after `SELECT db`), returns its reply; `None` when the server cannot
    /// be reached or does not answer within 5 s.
    #[must_use]
    pub fn try_command(&self, args: &[&[u8]]) -> Option<Reply> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut writer = stream.try_clone().ok()?;
        let mut reader = BufReader::new(stream);
        if let Some(db) = self.db {
            writer
                .write_all(&encode(&[b"SELECT", db.to_string().as_bytes()]))
                .ok()?;
            match read_reply(&mut reader)? {
                Reply::Simple(_) => {}
                other => panic!("SELECT {db}: {other:?}"),
            }
        }
        writer.write_all(&encode(args)).ok()?;
        read_reply(&mut reader)
    }

    /// Like [`try_command`](Self::try_command), for a server that must be up.
    #[must_use]
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        self.try_command(args)
            .unwrap_or_else(|| panic!("Redis on port {} did not answer", self.port))
    }

    /// The bytes stored under `key`.
    #[must_use]
    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        match self.command(&[b"GET", key.as_bytes()]) {
            Reply::Bulk(value) => value,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// Stores `value` under `key` (no expiry).
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        let reply = self.command(&[b"SET", key.as_bytes(), value]);
        assert_eq!(reply, Reply::Simple("OK".into()), "SET {key}");
    }

    /// Keys matching `pattern`, sorted.
    #[must_use]
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&[b"KEYS", pattern.as_bytes()]) {
            Reply::Array(Some(items)) => {
                let mut keys: Vec<String> = items.iter().filter_map(Reply::text).collect();
                keys.sort();
                keys
            }
            other => panic!("KEYS {pattern}: {other:?}"),
        }
    }

    /// How many times the server ran each command so far (`INFO commandstats`), by its
    /// lowercase name (`scan`, `unlink`, `eval`): compared before and after a call, what the
    /// call cost Redis.
    #[must_use]
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let info = self
            .command(&[b"INFO", b"commandstats"])
            .text()
            .expect("INFO commandstats is text");
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|stat| stat.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }

    /// Writes `count` keys `<prefix>0`, `<prefix>1`, … (value `x`, no expiry), ten thousand per
    /// `MSET`: a database full of keys that are not the sidecar's.
    pub fn fill(&self, prefix: &str, count: usize) {
        const BATCH: usize = 10_000;
        for start in (0..count).step_by(BATCH) {
            let keys: Vec<String> = (start..count.min(start + BATCH))
                .map(|n| format!("{prefix}{n}"))
                .collect();
            let mut args: Vec<&[u8]> = vec![b"MSET"];
            for key in &keys {
                args.extend([key.as_bytes(), b"x".as_slice()]);
            }
            assert_eq!(self.command(&args), Reply::Simple("OK".into()), "MSET");
        }
    }

    /// How many keys the database holds (`DBSIZE`).
    #[must_use]
    pub fn dbsize(&self) -> i64 {
        match self.command(&[b"DBSIZE"]) {
            Reply::Integer(size) => size,
            other => panic!("DBSIZE: {other:?}"),
        }
    }

    /// Remaining time to live of `key` in milliseconds (`-1` no expiry, `-2` no key).
    #[must_use]
    pub fn pttl(&self, key: &str) -> i64 {
        match self.command(&[b"PTTL", key.as_bytes()]) {
            Reply::Integer(ttl) => ttl,
            other => panic!("PTTL {key}: {other:?}"),
        }
    }

    /// `master` or `slave`, from `ROLE`.
    #[must_use]
    pub fn role(&self) -> Option<String> {
        match self.try_command(&[b"ROLE"])? {
            Reply::Array(Some(items)) => items.first().and_then(Reply::text),
            _ => None,
        }
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_reply(reader: &mut impl BufRead) -> Option<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1)?;
    Some(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(rest.parse().ok()?),
        "$" => {
            let len: i64 = rest.parse().ok()?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut bytes = vec![0; usize::try_from(len).ok()? + 2];
                reader.read_exact(&mut bytes).ok()?;
                bytes.truncate(bytes.len() - 2);
                Reply::Bulk(Some(bytes))
            }
        }
        "*" => {
            let len: i64 = rest.parse().ok()?;
            if len < 0 {
                Reply::Array(None)
            } else {
                let items = (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<Option<Vec<_>>>()?;
                Reply::Array(Some(items))
            }
        }
        _ => panic!("unexpected RESP line {line:?}"),
    })
}

fn spawn_server(port: u16, dir: &Path, extra_args: &[String]) -> Child {
    Command::new(tool("redis-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

/// Whether `PING` on the port answers `PONG` (a replica or sentinel answers too).
fn answers_ping(port: u16) -> bool {
    RedisClient::sentinel(port).try_command(&[b"PING"]) == Some(Reply::Simple("PONG".into()))
}
/// A Sentinel set-up as Harbor's HA installs have it: a master, one replica and three
/// sentinels (quorum 2) watching [`SENTINEL_MASTER`].
pub struct SentinelSetup {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<Child>,
    sentinel_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// Starts everything and waits until the sentinels know the replica and each other, so
    /// that a failover can happen.
    #[must_use]
    pub fn start() -> Self {
        let master = RedisServer::start();
        let replica = RedisServer::start_replica_of(master.port());
        let replica_client = replica.client(0);
        blocking("replication to the replica", || {
            replica_client
                .try_command(&[b"INFO", b"replication"])
                .and_then(|reply| reply.text())
                .is_some_and(|info| info.contains("master_link_status:up"))
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for index in 0..3 {
            let (child, port) = start_on_free_port(
                "redis-server --sentinel",
                |port| {
                    let config = write_sentinel_config(dir.path(), index, port, master.port());
                    Command::new(tool("redis-server"))
                        .arg(&config)
                        .arg("--sentinel")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start redis-server --sentinel")
                },
                answers_ping,
            );
            sentinels.push(child);
            sentinel_ports.push(port);
        }
        let setup = Self {
            master,
            replica,
            sentinels,
            sentinel_ports,
            _dir: dir,
        };
        for &port in &setup.sentinel_ports {
            blocking("sentinels seeing the replica and each other", || {
                let fields = sentinel_master_fields(port);
                fields.get("num-slaves").map(String::as_str) == Some("1")
                    && fields.get("num-other-sentinels").map(String::as_str) == Some("2")
            });
        }
        setup
    }

    /// `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster/<db>`.
    #[must_use]
    pub fn url(&self, db: u8) -> String {
        let hosts: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!(
            "redis+sentinel://{}/{SENTINEL_MASTER}/{db}",
            hosts.join(",")
        )
    }

    /// The port of the master the sentinels name now (asking the first that answers).
    #[must_use]
    pub fn master_port(&self) -> Option<u16> {
        self.sentinel_ports.iter().find_map(|&port| {
            match RedisClient::sentinel(port).try_command(&[
                b"SENTINEL",
                b"GET-MASTER-ADDR-BY-NAME",
                SENTINEL_MASTER.as_bytes(),
            ])? {
                Reply::Array(Some(items)) => items.get(1)?.text()?.parse().ok(),
                _ => None,
            }
        })
    }

    /// Kills the master and waits until every sentinel names the replica as master and the
    /// replica says it is one. Afterwards `self.replica` is the master.
    pub fn fail_over(&mut self) {
        self.master.kill();
        self.wait_for_promotion();
    }

    /// `SENTINEL FAILOVER`: the master stays up and is demoted to a replica of the replica
    /// (the sentinels kill its client connections). Waits like [`fail_over`](Self::fail_over).
    pub fn switch_over(&mut self) {
        let reply = RedisClient::sentinel(self.sentinel_ports[0]).command(&[
            b"SENTINEL",
            b"FAILOVER",
            SENTINEL_MASTER.as_bytes(),
        ]);
        assert_eq!(reply, Reply::Simple("OK".into()), "SENTINEL FAILOVER");
        self.wait_for_promotion();
        let old_master = self.master.client(0);
        blocking("the old master turning into a replica", || {
            old_master.role().as_deref() == Some("slave")
        });
    }

    fn wait_for_promotion(&self) {
        let new_port = self.replica.port();
        let replica = self.replica.client(0);
        blocking("the replica's promotion", || {
            replica.role().as_deref() == Some("master")
                && self.sentinel_ports.iter().all(|&port| {
                    RedisClient::sentinel(port)
                        .try_command(&[
                            b"SENTINEL",
                            b"GET-MASTER-ADDR-BY-NAME",
                            SENTINEL_MASTER.as_bytes(),
                        ])
                        .is_some_and(|reply| match reply {
                            Reply::Array(Some(items)) => items
                                .get(1)
                                .and_then(Reply::text)
                                .is_some_and(|port| port == new_port.to_string()),
                            _ => false,
                        })
                })
        });
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for child in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write_sentinel_config(dir: &Path, index: usize, port: u16, master_port: u16) -> PathBuf {
    let work = dir.join(format!("sentinel-{index}"));
    std::fs::create_dir_all(&work).expect("sentinel dir");
    let path = work.join("sentinel.conf");
    // Sentinels rewrite their config file, so each gets its own, writable one.
    let config = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
         sentinel failover-timeout {SENTINEL_MASTER} 5000\n\
         sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
        dir = work.display(),
    );
    std::fs::write(&path, config).expect("write sentinel config");
    path
}

/// `SENTINEL MASTER mymaster` as a field map (empty when the sentinel does not answer).
fn sentinel_master_fields(port: u16) -> std::collections::HashMap<String, String> {
    let reply = RedisClient::sentinel(port).try_command(&[
        b"SENTINEL",
        b"MASTER",
        SENTINEL_MASTER.as_bytes(),
    ]);
    let mut fields = std::collections::HashMap::new();
    if let Some(Reply::Array(Some(items))) = reply {
        for pair in items.chunks(2) {
            if let [key, value] = pair
                && let (Some(key), Some(value)) = (key.text(), value.text())
            {
                fields.insert(key, value);
            }
        }
    }
    fields
}

/// A "Redis" that accepts TCP connections and never answers: connections are held open,
/// nothing is read or written. Stopped (and its connections closed) on drop.
pub struct BlackHole(TestServer);

impl BlackHole {
    #[must_use]
    pub fn start() -> Self {
        Self(TestServer::black_hole())
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    #[must_use]
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.0.port)
    }
}
