//! Loopback ports for the processes the suite starts (registries, Redis, nginx). A port is
//! picked free and then bound by the child, so another process may take it in between (tests
//! run in parallel and open many client connections): a child counts as started only once it
//! is itself listening on its port, and one that lost its port is started again on another.

use std::collections::HashSet;
use std::process::Child;

use crate::wait::blocking;

/// How many ports a start tries before giving up.
const TRIES: usize = 5;

/// A loopback port that was free a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Starts `spawn(port)` on a free port and waits until that child listens on it and `ready`
/// holds; tries another port when the child exits first (it lost the port, most likely).
pub fn start_on_free_port(
    name: &str,
    mut spawn: impl FnMut(u16) -> Child,
    ready: impl Fn(u16) -> bool,
) -> (Child, u16) {
    let mut exits = Vec::new();
    for _ in 0..TRIES {
        let port = free_port();
        let mut child = spawn(port);
        match wait_listening(name, &mut child, port, &ready) {
            Ok(()) => return (child, port),
            Err(status) => exits.push(format!("port {port}: {status}")),
        }
    }
    panic!("{name} exited before listening, {TRIES} times: {exits:?}");
}

/// Waits until `child` listens on `port` and `ready` holds; the exit status if it exits first.
pub fn wait_listening(
    name: &str,
    child: &mut Child,
    port: u16,
    ready: impl Fn(u16) -> bool,
) -> Result<(), std::process::ExitStatus> {
    let mut exited = None;
    blocking(&format!("{name} listening on port {port}"), || {
        exited = child.try_wait().expect("child status");
        exited.is_some() || (listens(child.id(), port) && ready(port))
    });
    exited.map_or(Ok(()), Err)
}

/// Whether process `pid` holds a socket listening on TCP `port` (from `/proc`).
#[must_use]
pub fn listens(pid: u32, port: u16) -> bool {
    let listening = listening_inodes(port);
    if listening.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).ok().is_some_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .is_some_and(|inode: u64| listening.contains(&inode))
        })
    })
}

/// Inodes of the sockets listening on TCP `port`, any address.
fn listening_inodes(port: u16) -> HashSet<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port)
                && *state == LISTEN
                && let Ok(inode) = inode.parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}
