//! A small forward proxy on loopback, as an egress proxy would be: `CONNECT` tunnels for
//! https and absolute-form requests for http. Host names in `hosts` resolve to 127.0.0.1 at
//! the proxy only, so an upstream named that way is reachable through the proxy and nowhere
//! else. Every request line is recorded.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts on the current tokio runtime.
    pub async fn start(hosts: &'static [&'static str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&lines);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let _ = serve(client, hosts, log).await;
                });
            }
        });
        Self { port, lines }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

async fn serve(
    mut client: TcpStream,
    hosts: &[&str],
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_owned();
    log.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let resolve = |authority: &str| {
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
        let host = if hosts.contains(&host) {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{port}")
    };
    if method == "CONNECT" {
        let mut upstream = match TcpStream::connect(resolve(target)).await {
            Ok(upstream) => upstream,
            Err(_) => {
                client
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                    .await?;
                return Ok(());
            }
        };
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // Absolute form: `GET http://host:port/path HTTP/1.1`.
    let Some(rest) = target.strip_prefix("http://") else {
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await?;
        return Ok(());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut upstream = TcpStream::connect(resolve(authority)).await?;
    let origin_form = text.replacen(target, path, 1);
    upstream.write_all(origin_form.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
