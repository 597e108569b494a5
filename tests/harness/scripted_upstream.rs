//! A small spec-following upstream registry whose behaviour a test sets: it serves a subject's
//! referrers through the referrers API in pages of one descriptor linked by `Link rel="next"`
//! (or, in bulk, many large pages of descriptors of its own per subject), holds referrers
//! requests on demand, or misbehaves as a hostile or broken registry does ([`UpstreamFault`]).

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::server::{Gate, TestServer};

/// How the upstream misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFault {
    /// Every request gets this status (and `Retry-After` when given), no list.
    Status {
        status: u16,
        retry_after: Option<&'static str>,
    },
    /// Referrers requests get `200` with an HTML page (a login page, a captive portal).
    Html,
    /// The first referrers page is an index of this many bytes, its length announced.
    OversizePage(usize),
    /// The first referrers page is an index whose body never ends.
    EndlessBody,
    /// The first page's `Link` names the first page again.
    LinkLoop,
    /// The first page's `Link` names a page on another origin.
    LinkToAnotherOrigin,
    /// Requests need a Bearer token, which the realm (on this upstream) hands out with this
    /// `expires_in`, written as is into the JSON.
    TokenExpiresIn(&'static str),
}

/// The token [`UpstreamFault::TokenExpiresIn`]'s realm hands out.
const TOKEN: &str = "scripted-token";

/// Many large pages per subject, for memory bounds.
#[derive(Debug, Clone)]
struct Bulk {
    pages: usize,
    page: Arc<BulkPage>,
}

#[derive(Default)]
struct Script {
    /// Descriptors served for every subject, one per page.
    descriptors: Vec<Value>,
    /// When set, referrers are served in bulk instead.
    bulk: Option<Bulk>,
    fault: Option<UpstreamFault>,
}

struct Shared {
    script: Mutex<Script>,
    /// Referrers requests wait here (a fetch held in flight).
    gate: Gate,
}

pub struct ScriptedUpstream {
    pub port: u16,
    shared: Arc<Shared>,
    server: TestServer,
}

impl ScriptedUpstream {
    /// Serves `count` referrers per subject, one per page.
    pub fn start(count: usize) -> Self {
        let descriptors = (0..count)
            .map(|i| {
                json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i + 0xabc0),
                    "size": 100 + i,
                    "artifactType": "application/vnd.example.page+json",
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                descriptors,
                ..Script::default()
            }),
            gate: Gate::default(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = TestServer::start(2, move |app| {
            app.app_data(data.clone()).default_service(web::to(answer));
        });
        Self {
            port: server.port,
            shared,
            server,
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Serves, for every subject, `pages` pages of descriptors of its own, each page an index
    /// of about `page_bytes` (never more), linked by `Link rel="next"`.
    pub fn start_bulk(pages: usize, page_bytes: usize) -> Self {
        let upstream = Self::start(0);
        upstream.shared.script.lock().expect("script").bulk = Some(Bulk {
            pages,
            page: Arc::new(BulkPage::new(page_bytes)),
        });
        upstream
    }

    /// Every request gets `status` from now on (`None`: serve the list again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.fail(status.map(|status| UpstreamFault::Status {
            status,
            retry_after: None,
        }));
    }

    /// Serves `descriptors` for every subject from now on, one per page.
    pub fn serve(&self, descriptors: Vec<Value>) {
        self.shared.script.lock().expect("script").descriptors = descriptors;
    }

    /// Misbehaves as `fault` says from now on (`None`: serve the list again).
    pub fn fail(&self, fault: Option<UpstreamFault>) {
        self.shared.script.lock().expect("script").fault = fault;
    }

    /// Stops answering: connections are refused from here on.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Referrers requests are held, unanswered, from now on until [`release`](Self::release).
    pub fn hold(&self) {
        self.shared.gate.hold();
    }

    /// Answers the held referrers requests, and every later one at once.
    pub fn release(&self) {
        self.shared.gate.release();
    }

    /// Requests of any kind received so far (held ones included).
    #[must_use]
    pub fn requests(&self) -> usize {
        self.server.seen().len()
    }

    /// The method and target of every request received so far, in order.
    #[must_use]
    pub fn targets(&self) -> Vec<String> {
        self.server
            .seen()
            .iter()
            .map(|seen| format!("{} {}", seen.method, seen.target()))
            .collect()
    }

    /// Referrers API requests (pages) received so far (held ones included).
    #[must_use]
    pub fn referrers_requests(&self) -> usize {
        self.server.seen_with("/referrers/").len()
    }
}

async fn answer(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let is_referrers = path.contains("/referrers/");
    if is_referrers {
        shared.gate.pass().await;
    }
    let (fault, bulk, descriptors) = {
        let script = shared.script.lock().expect("script");
        (
            script.fault,
            script.bulk.clone(),
            script.descriptors.clone(),
        )
    };
    if let Some(UpstreamFault::Status {
        status,
        retry_after,
    }) = fault
    {
        let mut response =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
        if let Some(after) = retry_after {
            response.insert_header(("Retry-After", after));
        }
        return response.finish();
    }
    if let Some(UpstreamFault::TokenExpiresIn(expires_in)) = fault {
        if path == "/token" {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body(format!(
                    r#"{{"token":"{TOKEN}","expires_in":{expires_in}}}"#
                ));
        }
        let bearer = format!("Bearer {TOKEN}");
        if request
            .headers()
            .get("authorization")
            .is_none_or(|value| value.as_bytes() != bearer.as_bytes())
        {
            let host = request.connection_info().host().to_owned();
            return HttpResponse::Unauthorized()
                .insert_header((
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="http://{host}/token",service="scripted""#),
                ))
                .finish();
        }
    }
    if path == "/v2/" {
        return HttpResponse::Ok().json(json!({}));
    }
    if !is_referrers {
        return HttpResponse::NotFound().finish();
    }
    let page: usize = request
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    match fault {
        Some(UpstreamFault::Html) => {
            return HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>Sign in</body></html>");
        }
        Some(UpstreamFault::OversizePage(bytes)) if page == 0 => {
            return index_response().body(BulkPage::new(bytes).of(&path, 0));
        }
        Some(UpstreamFault::EndlessBody) if page == 0 => {
            let head = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(INDEX_HEAD.as_bytes()))
            });
            // Batches of a thousand descriptors, for ever.
            let endless = futures_util::stream::iter((0u64..).map(|batch| {
                let descriptors: String = (batch * 1000..(batch + 1) * 1000)
                    .map(|i| {
                        format!(
                            r#"{{"mediaType":"{MANIFEST}","digest":"sha256:{i:064x}","size":1}},"#
                        )
                    })
                    .collect();
                Ok::<_, std::io::Error>(Bytes::from(descriptors))
            }));
            return index_response().streaming(head.chain(endless));
        }
        _ => {}
    }
    if let Some(bulk) = bulk {
        let mut response = index_response();
        if page + 1 < bulk.pages {
            response.insert_header(next_link(&path, page + 1));
        }
        return response.body(bulk.page.of(&path, page));
    }
    let manifests: Vec<Value> = descriptors.get(page).cloned().into_iter().collect();
    let more = page + 1 < descriptors.len();
    let mut response = index_response();
    match fault {
        Some(UpstreamFault::LinkLoop) => {
            response.insert_header(("Link", format!("<{path}>; rel=\"next\"")));
        }
        Some(UpstreamFault::LinkToAnotherOrigin) => {
            response.insert_header((
                "Link",
                format!("<http://127.0.0.2:9{path}?page=1>; rel=\"next\""),
            ));
        }
        _ if more => {
            response.insert_header(next_link(&path, page + 1));
        }
        _ => {}
    }
    response.body(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string(),
    )
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_HEAD: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#;
const INDEX_TAIL: &str = "]}";

fn index_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.content_type("application/vnd.oci.image.index.v1+json");
    response
}

fn next_link(path: &str, page: usize) -> (&'static str, String) {
    ("Link", format!("<{path}?page={page}>; rel=\"next\""))
}

/// An index of at most a given size, written once, whose descriptors' digests are made
/// distinct per subject and page by patching their first hex digits: pages of megabytes are
/// served as fast as they are copied.
struct BulkPage {
    body: Vec<u8>,
    /// Where each digest's patched digits start.
    digits: Vec<usize>,
}

impl std::fmt::Debug for BulkPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BulkPage({} bytes)", self.body.len())
    }
}

/// Hex digits patched per digest: 16 of the subject, 8 of the page.
const PATCHED_DIGITS: usize = 24;

impl BulkPage {
    fn new(bytes: usize) -> Self {
        let mut body = INDEX_HEAD.as_bytes().to_vec();
        let mut digits = Vec::new();
        for i in 0u64.. {
            let head = format!(r#"{{"mediaType":"{MANIFEST}","digest":"sha256:"#);
            let descriptor = format!(r#"{head}{:0PATCHED_DIGITS$}{i:040x}","size":1}}"#, 0);
            if body.len() + descriptor.len() + 1 + INDEX_TAIL.len() > bytes && i > 0 {
                break;
            }
            if i > 0 {
                body.push(b',');
            }
            digits.push(body.len() + head.len());
            body.extend_from_slice(descriptor.as_bytes());
        }
        body.extend_from_slice(INDEX_TAIL.as_bytes());
        Self { body, digits }
    }

    /// Page `page` of the subject at `path`: no other page or subject has its digests.
    fn of(&self, path: &str, page: usize) -> Vec<u8> {
        let subject = crate::upstreams::sha256_digest(path.as_bytes());
        let patch = format!("{}{page:08x}", &subject["sha256:".len()..][..16]);
        let mut body = self.body.clone();
        for &at in &self.digits {
            body[at..at + PATCHED_DIGITS].copy_from_slice(patch.as_bytes());
        }
        body
    }
}
