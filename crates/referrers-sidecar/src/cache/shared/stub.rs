//! A shared store in process, with failure injection.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::stream::BoxStream;

use super::*;

/// How the stub store misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Refuses every call, as a stopped Redis does.
    Down,
    /// Every call runs into the timeout, as a frozen or black-holed Redis does.
    Slow,
    /// Every read returns bytes that are not an entry.
    Corrupt,
    /// Reads never answer: their caller gives up or goes away first.
    Hang,
}

#[derive(Default)]
struct State {
    values: HashMap<String, Vec<u8>>,
    ttls: HashMap<String, Duration>,
    /// Sorted sets: each member's score, by index.
    indexes: HashMap<String, HashMap<String, u64>>,
    calls: HashMap<&'static str, usize>,
    published: Vec<(String, Vec<u8>)>,
    fault: Option<Fault>,
}

#[derive(Default)]
pub struct StubStore {
    state: Mutex<State>,
}

impl StubStore {
    pub fn inject(&self, fault: Fault) {
        self.lock().fault = Some(fault).filter(|f| *f != Fault::None);
    }

    /// What `index` lists, whatever the members' scores, sorted.
    pub fn index(&self, index: &str) -> Vec<String> {
        let mut members: Vec<String> = self
            .lock()
            .indexes
            .get(index)
            .map(|members| members.keys().cloned().collect())
            .unwrap_or_default();
        members.sort();
        members
    }

    /// Calls of a command so far (`get`, `set`, `try_lock`, `unlock`, `listed`, `unlist`).
    pub fn calls(&self, command: &'static str) -> usize {
        self.lock().calls.get(command).copied().unwrap_or(0)
    }

    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().values.get(key).cloned()
    }

    pub fn ttl(&self, key: &str) -> Option<Duration> {
        self.lock().ttls.get(key).copied()
    }

    /// Writes as another replica would.
    pub fn put(&self, key: &str, value: &[u8]) {
        self.lock().values.insert(key.to_owned(), value.to_vec());
    }

    /// Messages published so far, by channel.
    pub fn published(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().published.clone()
    }

    pub fn remove(&self, key: &str) {
        self.lock().values.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, command: &'static str) -> Result<std::sync::MutexGuard<'_, State>, RedisError> {
        let mut state = self.lock();
        *state.calls.entry(command).or_default() += 1;
        match state.fault {
            Some(Fault::Down) => Err(RedisError::Pool("connection refused".into())),
            Some(Fault::Slow) => Err(RedisError::Timeout),
            _ => Ok(state),
        }
    }
}

// Each call does its work when polled, as Redis calls do: one the breaker stops never
// reaches the store.
impl SharedStore for StubStore {
    fn get<'a>(
        &'a self,
        key: &'a str,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>> {
        async move {
            let found = {
                let state = self.enter("get")?;
                match state.fault {
                    Some(Fault::Hang) => None,
                    Some(Fault::Corrupt) => Some(Some(b"RS\x02 not deflate".to_vec())),
                    _ => Some(state.values.get(key).cloned()),
                }
            };
            match found {
                // As Redis's GETRANGE reads it: at most `max_bytes` + 1 bytes.
                Some(value) => Ok(value.map(|mut value| {
                    value.truncate(max_bytes.saturating_add(1));
                    value
                })),
                None => futures_util::future::pending().await,
            }
        }
        .boxed()
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        index: &'a ListIndex,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        async move {
            let mut state = self.enter("set")?;
            state.values.insert(key.to_owned(), value.to_vec());
            state.ttls.insert(key.to_owned(), ttl);
            let expires = now_ms + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            for (index, member) in [
                (&index.repository_index, key),
                (&index.registry_index, index.repository.as_str()),
            ] {
                let score = state
                    .indexes
                    .entry(index.clone())
                    .or_default()
                    .entry(member.to_owned())
                    .or_default();
                *score = (*score).max(expires);
            }
            Ok(())
        }
        .boxed()
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, RedisError>> {
        async move {
            let mut state = self.enter("try_lock")?;
            if state.values.contains_key(key) {
                return Ok(false);
            }
            state
                .values
                .insert(key.to_owned(), token.as_bytes().to_vec());
            state.ttls.insert(key.to_owned(), ttl);
            Ok(true)
        }
        .boxed()
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), RedisError>> {
        async move {
            let mut state = self.enter("unlock")?;
            if state
                .values
                .get(key)
                .is_some_and(|held| held == token.as_bytes())
            {
                state.values.remove(key);
            }
            Ok(())
        }
        .boxed()
    }

    fn listed<'a>(
        &'a self,
        index: &'a str,
        now_ms: u64,
        offset: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RedisError>> {
        async move {
            let state = self.enter("listed")?;
            // As Redis orders a sorted set: by score, then by member.
            let mut members: Vec<(u64, String)> = state
                .indexes
                .get(index)
                .into_iter()
                .flatten()
                .filter(|(_, expires)| **expires >= now_ms)
                .map(|(member, expires)| (*expires, member.clone()))
                .collect();
            members.sort();
            Ok(members
                .into_iter()
                .skip(offset)
                .take(count)
                .map(|(_, member)| member)
                .collect())
        }
        .boxed()
    }

    fn unlist<'a>(
        &'a self,
        index: &'a ListIndex,
        lists: &'a [String],
    ) -> BoxFuture<'a, Result<u64, RedisError>> {
        async move {
            let mut state = self.enter("unlist")?;
            let existed = lists
                .iter()
                .filter(|key| state.values.remove(key.as_str()).is_some())
                .count() as u64;
            let indexes = &mut state.indexes;
            if let Some(members) = indexes.get_mut(&index.repository_index) {
                members.retain(|member, _| !lists.contains(member));
                if members.is_empty() {
                    indexes.remove(&index.repository_index);
                    if let Some(repositories) = indexes.get_mut(&index.registry_index) {
                        repositories.remove(&index.repository);
                    }
                }
            }
            Ok(existed)
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        async move {
            let mut state = self.enter("publish")?;
            state.published.push((channel.to_owned(), message.to_vec()));
            Ok(())
        }
        .boxed()
    }

    fn subscribe<'a>(
        &'a self,
        _channel: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, RedisError>> {
        async move {
            drop(self.enter("subscribe")?);
            Ok(futures_util::StreamExt::boxed(
                futures_util::stream::pending::<Vec<u8>>(),
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        "redis://stub:6379/10".into()
    }
}
