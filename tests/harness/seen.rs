//! What a stand-in server received: every request is recorded on arrival, before it is
//! answered, so a test can wait for a request to be in flight and assert what reached whom.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::HttpRequest;

/// One request as a stand-in received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path as sent (not percent-decoded).
    pub path: String,
    /// The raw query, empty when there is none.
    pub query: String,
    pub headers: BTreeMap<String, String>,
}

impl Seen {
    fn of(request: &HttpRequest) -> Self {
        Self {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|(name, value)| {
                    let value = value.to_str().unwrap_or("<binary>");
                    (name.as_str().to_owned(), value.to_owned())
                })
                .collect(),
        }
    }

    /// Path and query, as in the request line.
    #[must_use]
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The `Authorization` header, if one was sent.
    #[must_use]
    pub fn authorization(&self) -> Option<&str> {
        self.headers.get("authorization").map(String::as_str)
    }
}

/// The requests a server received, in order of arrival.
#[derive(Debug, Default)]
pub struct SeenLog(Mutex<Vec<Seen>>);

impl SeenLog {
    pub fn record(&self, request: &HttpRequest) {
        self.lock().push(Seen::of(request));
    }

    /// Every request so far.
    #[must_use]
    pub fn all(&self) -> Vec<Seen> {
        self.lock().clone()
    }

    /// Requests whose target (path and query) contains `needle`.
    #[must_use]
    pub fn containing(&self, needle: &str) -> Vec<Seen> {
        self.lock()
            .iter()
            .filter(|seen| seen.target().contains(needle))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.0.lock().expect("seen requests")
    }
}
