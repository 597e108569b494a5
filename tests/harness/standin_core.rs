//! A stand-in for Harbor core's generic HTTP behaviour, for pass-through tests: it echoes what
//! it received, streams large bodies both ways, redirects, and holds answers on demand.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::seen::Seen;
use crate::server::{Gate, TestServer};

/// Deterministic bytes: byte `i` of any generated body is `pattern_byte(i)`.
#[must_use]
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

/// Order-sensitive checksum of a byte stream (FNV-1a, 64 bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(pub u64);

impl Default for Checksum {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The checksum of `size` pattern bytes.
#[must_use]
pub fn pattern_checksum(size: u64) -> Checksum {
    let mut sum = Checksum::default();
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut i = 0;
    while i < size {
        chunk.clear();
        let end = (i + 64 * 1024).min(size);
        chunk.extend((i..end).map(pattern_byte));
        sum.update(&chunk);
        i = end;
    }
    sum
}

/// A stream of `size` pattern bytes in 64 KiB chunks.
pub fn pattern_stream(
    size: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    const CHUNK: u64 = 64 * 1024;
    futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= size {
            return None;
        }
        let end = (offset + CHUNK).min(size);
        let chunk: Vec<u8> = (offset..end).map(pattern_byte).collect();
        Some((Ok(Bytes::from(chunk)), end))
    })
}

pub struct StandinCore {
    pub port: u16,
    /// Where `GET /slow` waits.
    gate: Gate,
    server: TestServer,
}

impl StandinCore {
    pub fn start() -> Self {
        let gate = Gate::default();
        let data = web::Data::new(gate.clone());
        let server = TestServer::start(2, move |app| {
            app.app_data(web::PayloadConfig::new(usize::MAX))
                .app_data(data.clone())
                .route("/download/{size}", web::get().to(download))
                .route("/download/{size}", web::head().to(download))
                .route("/upload", web::to(upload))
                .route("/redirect", web::get().to(redirect))
                .route("/slow", web::get().to(slow))
                .route("/gzip", web::get().to(gzip))
                .default_service(web::to(echo));
        });
        Self {
            port: server.port,
            gate,
            server,
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `GET /slow` is held, unanswered, from now on until [`release`](Self::release).
    pub fn hold_slow(&self) {
        self.gate.hold();
    }

    /// Held `GET /slow` requests get their answer.
    pub fn release_slow(&self) {
        self.gate.release();
    }

    /// Requests received whose target contains `needle`.
    #[must_use]
    pub fn seen_with(&self, needle: &str) -> Vec<Seen> {
        self.server.seen_with(needle)
    }
}

fn headers_json(request: &HttpRequest) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, value) in request.headers() {
        let entry = map
            .entry(name.as_str().to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(value.to_str().unwrap_or("<binary>").into());
        }
    }
    serde_json::Value::Object(map)
}

/// Echoes method, raw target, headers and body size.
async fn echo(request: HttpRequest, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Core", "standin"))
        .json(serde_json::json!({
            "method": request.method().as_str(),
            "target": request.uri().to_string(),
            "version": format!("{:?}", request.version()),
            "headers": headers_json(&request),
            "body_bytes": body.len(),
        }))
}

/// Counts and checksums a streamed request body without keeping it.
async fn upload(request: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let mut bytes = 0u64;
    let mut sum = Checksum::default();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
        };
        bytes += chunk.len() as u64;
        sum.update(&chunk);
    }
    HttpResponse::Created().json(serde_json::json!({
        "method": request.method().as_str(),
        "bytes": bytes,
        "checksum": sum.0,
        "headers": headers_json(&request),
    }))
}

async fn download(size: web::Path<u64>) -> HttpResponse {
    let size = size.into_inner();
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(actix_web::body::SizedStream::new(
            size,
            pattern_stream(size),
        ))
}

async fn redirect() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "http://127.0.0.1:9/elsewhere"))
        .finish()
}

async fn slow(gate: web::Data<Gate>) -> HttpResponse {
    gate.pass().await;
    HttpResponse::Ok().body("slow answer")
}

/// A body that claims gzip encoding: the bytes must reach the client as sent.
async fn gzip() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_ENCODING, "gzip"))
        .content_type("application/octet-stream")
        .body(GZIP_BYTES)
}

/// `gzip` of "hello\n".
pub const GZIP_BYTES: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7,
    0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00,
];
