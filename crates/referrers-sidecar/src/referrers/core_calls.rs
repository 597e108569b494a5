//! Identical calls to core share one while it is in flight: a burst of admission checks (a
//! rollout of hundreds of pods, each verified with the same service credentials) costs core one
//! call per worker, not one per request.
//!
//! Two requests share a call only when everything core's answer can depend on is byte for byte
//! the same: the method, the raw path and query, and the caller's `Authorization`, `Cookie`,
//! `Host` and `X-Forwarded-Host`/`-Port`/`-Proto` (core builds its token realm from the last
//! ones). Different credentials never share. Nothing is kept once the call has answered, and a
//! caller that gives up (its own time budget) does not cancel the call for those still waiting.
//! A shared call carries the first caller's request id and client address to core.

use std::cell::RefCell;
use std::collections::HashMap;

use actix_web::http::header::HeaderMap;
use futures_util::FutureExt as _;
use futures_util::future::{LocalBoxFuture, Shared, WeakShared};
use harbor_client::{CoreReferrers, HarborError};

use super::key_bytes::KeyBytes;

/// The headers core's answer depends on; the key holds each byte for byte.
const KEYED_HEADERS: [&str; 6] = [
    "authorization",
    "cookie",
    "host",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
];

/// Past this many remembered calls, those that have ended are swept on the next call.
const SWEEP_ABOVE: usize = 1024;

/// What one call to core gives every request that shares it.
pub type CoreResult = Result<CoreReferrers, HarborError>;

/// Everything of a request core's answer can depend on, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey(Box<[u8]>);

impl CallKey {
    /// The key of a `method` request for `raw_path` and `raw_query` (as they came, not
    /// decoded) with the caller's `headers`. Every part is length-prefixed, so no two different
    /// requests make the same bytes; a header sent twice is keyed with every value in order.
    #[must_use]
    pub fn new(method: &str, raw_path: &str, raw_query: Option<&str>, headers: &HeaderMap) -> Self {
        let mut key = KeyBytes::with_capacity(256);
        key.part(method.as_bytes())
            .part(raw_path.as_bytes())
            .query(raw_query);
        for name in KEYED_HEADERS {
            let values = headers.get_all(name);
            key.part(&values.clone().count().to_le_bytes());
            for value in values {
                key.part(value.as_bytes());
            }
        }
        Self(key.finish())
    }
}

type SharedCall = Shared<LocalBoxFuture<'static, CoreResult>>;

/// One worker's calls to core in flight, by key.
#[derive(Default)]
pub struct CoreCalls {
    in_flight: RefCell<HashMap<CallKey, WeakShared<LocalBoxFuture<'static, CoreResult>>>>,
}

/// A call to core this request waits for.
pub struct Joined {
    pub call: SharedCall,
    /// Another request started it: this one shares it.
    pub shared: bool,
}

impl CoreCalls {
    /// The call in flight for `key`, or a new one made by `start`.
    pub fn join(
        &self,
        key: CallKey,
        start: impl FnOnce() -> LocalBoxFuture<'static, CoreResult>,
    ) -> Joined {
        let mut in_flight = self.in_flight.borrow_mut();
        if let Some(call) = in_flight.get(&key).and_then(WeakShared::upgrade)
            && call.peek().is_none()
        {
            return Joined { call, shared: true };
        }
        if in_flight.len() >= SWEEP_ABOVE {
            in_flight.retain(|_, call| call.upgrade().is_some_and(|c| c.peek().is_none()));
        }
        let call = start().shared();
        if let Some(weak) = call.downgrade() {
            in_flight.insert(key, weak);
        }
        Joined {
            call,
            shared: false,
        }
    }

    /// Forgets `key` once its call has answered or every request waiting for it has gone.
    pub fn settle(&self, key: &CallKey) {
        let mut in_flight = self.in_flight.borrow_mut();
        let ended = in_flight
            .get(key)
            .is_some_and(|call| call.upgrade().is_none_or(|c| c.peek().is_some()));
        if ended {
            in_flight.remove(key);
        }
    }

    /// Calls remembered (in flight, or ended and not yet forgotten).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.in_flight.borrow().len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use actix_web::http::header::{HeaderName, HeaderValue};
    use harbor_client::CoreAnswer;
    use tokio::sync::oneshot;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    const PATH: &str = "/v2/p/r/referrers/sha256:aa";

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("authorization", "Basic dTpw"),
            ("cookie", "sid=1"),
            ("host", "harbor.example"),
            ("x-forwarded-host", "harbor.example"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-proto", "https"),
        ]
    }

    #[test]
    fn the_same_request_makes_the_same_key_and_any_differing_byte_another() {
        let key = |method, path, query, pairs: &[(&str, &str)]| {
            CallKey::new(method, path, query, &headers(pairs))
        };
        let same = key("GET", PATH, Some("n=1"), &base());
        // Headers core's answer does not depend on are not keyed.
        let mut other_client = base();
        other_client.push(("x-forwarded-for", "10.0.0.9"));
        other_client.push(("user-agent", "cosign"));
        assert_eq!(key("GET", PATH, Some("n=1"), &other_client), same);

        assert_ne!(key("HEAD", PATH, Some("n=1"), &base()), same, "method");
        assert_ne!(
            key("GET", "/v2/p/r/referrers/sha256:ab", Some("n=1"), &base()),
            same,
            "path"
        );
        assert_ne!(key("GET", PATH, Some("n=2"), &base()), same, "query");
        assert_ne!(key("GET", PATH, None, &base()), same, "no query");
        assert_ne!(
            key("GET", PATH, Some(""), &base()),
            key("GET", PATH, None, &base()),
            "an empty query is not no query"
        );
        for (i, (name, value)) in base().into_iter().enumerate() {
            let mut changed = base();
            let mut altered = value.to_owned();
            altered.push('x');
            changed[i] = (name, Box::leak(altered.into_boxed_str()));
            assert_ne!(key("GET", PATH, Some("n=1"), &changed), same, "{name}");
            let mut missing = base();
            missing.remove(i);
            assert_ne!(
                key("GET", PATH, Some("n=1"), &missing),
                same,
                "{name} absent"
            );
            let mut twice = base();
            twice.push((name, value));
            assert_ne!(key("GET", PATH, Some("n=1"), &twice), same, "{name} twice");
        }
        // Length prefixes: moving a byte from one part to the next changes the key.
        assert_ne!(
            key("GET", "/v2/a", Some("b"), &[]),
            key("GET", "/v2/", Some("ab"), &[])
        );
    }

    fn answer(body: &str) -> CoreResult {
        Ok(CoreReferrers::Relayed(CoreAnswer {
            status: actix_web::http::StatusCode::OK,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
        }))
    }

    fn body(result: &CoreResult) -> String {
        match result {
            Ok(CoreReferrers::Relayed(answer)) => String::from_utf8_lossy(&answer.body).into(),
            other => panic!("{other:?}"),
        }
    }

    /// A call that answers when told, counting how many were started.
    fn held(
        started: &Rc<Cell<usize>>,
    ) -> (
        oneshot::Sender<&'static str>,
        impl FnOnce() -> LocalBoxFuture<'static, CoreResult>,
    ) {
        let (tx, rx) = oneshot::channel();
        let started = Rc::clone(started);
        (tx, move || {
            started.set(started.get() + 1);
            async move { answer(rx.await.unwrap_or("dropped")) }.boxed_local()
        })
    }

    #[tokio::test]
    async fn requests_in_flight_share_one_call_and_a_later_one_makes_its_own() {
        let calls = CoreCalls::default();
        let started = Rc::new(Cell::new(0));
        let key = CallKey::new("GET", PATH, None, &headers(&base()));

        let (answer_first, start) = held(&started);
        let first = calls.join(key.clone(), start);
        let (_, start) = held(&started);
        let second = calls.join(key.clone(), start);
        assert!(!first.shared && second.shared);
        assert_eq!(started.get(), 1, "one call for both");

        answer_first.send("listed").unwrap();
        assert_eq!(body(&first.call.await), "listed");
        assert_eq!(body(&second.call.await), "listed");
        calls.settle(&key);
        assert!(calls.is_empty(), "nothing kept once it answered");

        let (answer_third, start) = held(&started);
        let third = calls.join(key.clone(), start);
        assert!(!third.shared, "a call that answered is not joined");
        assert_eq!(started.get(), 2);
        answer_third.send("again").unwrap();
        assert_eq!(body(&third.call.await), "again");
    }

    #[tokio::test]
    async fn other_credentials_never_share() {
        let calls = CoreCalls::default();
        let started = Rc::new(Cell::new(0));
        let mut other = base();
        other[0] = ("authorization", "Basic b3RoZXI6cA==");
        let (_a, start) = held(&started);
        let one = calls.join(CallKey::new("GET", PATH, None, &headers(&base())), start);
        let (_b, start) = held(&started);
        let two = calls.join(CallKey::new("GET", PATH, None, &headers(&other)), start);
        assert!(!one.shared && !two.shared);
        assert_eq!(started.get(), 2);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_cancel_the_call_for_the_others() {
        let calls = CoreCalls::default();
        let started = Rc::new(Cell::new(0));
        let key = CallKey::new("GET", PATH, None, &headers(&base()));
        let (answer_call, start) = held(&started);
        let first = calls.join(key.clone(), start);
        let (_, start) = held(&started);
        let second = calls.join(key.clone(), start);
        // The first caller's budget runs out: it stops waiting.
        drop(first);
        calls.settle(&key);
        assert_eq!(calls.len(), 1, "still in flight for the second");
        answer_call.send("listed").unwrap();
        assert_eq!(body(&second.call.await), "listed");
        calls.settle(&key);
        assert!(calls.is_empty());

        // When every caller has gone, the call is dropped and forgotten.
        let (_never, start) = held(&started);
        let alone = calls.join(key.clone(), start);
        drop(alone);
        calls.settle(&key);
        assert!(calls.is_empty());
    }
}
