//! Connections from callers: one opened and not used yet is kept as long as an idle one that
//! has served requests, and nothing is sent on it unasked (a pooling client or proxy opens
//! connections ahead of its requests and keeps the spare ones).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::Sidecar;
use e2e::config::for_core;

/// Past actix's default time for a connection's first request (5 s), after which it would
/// answer 408 unasked and close the connection.
const UNUSED_FOR: Duration = Duration::from_secs(7);

#[test]
fn a_connection_not_used_yet_is_sent_nothing_and_serves_its_first_request_later() {
    // Liveness asks core nothing: no core is needed.
    let sidecar = Sidecar::start(&for_core("http://127.0.0.1:9"));
    let mut connection = TcpStream::connect(("127.0.0.1", sidecar.port)).expect("connect");

    // The read ends when the sidecar sends anything or closes, or after UNUSED_FOR.
    connection
        .set_read_timeout(Some(UNUSED_FOR))
        .expect("read timeout");
    let mut unasked = [0u8; 256];
    match connection.read(&mut unasked) {
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("the sidecar closed a connection not used yet"),
        Ok(read) => panic!(
            "the sidecar sent unasked: {:?}",
            String::from_utf8_lossy(&unasked[..read])
        ),
        Err(error) => panic!("reading the connection: {error}"),
    }

    connection
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n")
        .expect("send the first request");
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut answer = [0u8; 64];
    let read = connection.read(&mut answer).expect("the answer");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
