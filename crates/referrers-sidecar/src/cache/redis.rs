//! The shared Redis tier: a bounded connection pool to a plain, TLS or Sentinel-managed Redis,
//! with get/set, the indexes purges find lists by, a cross-replica lock, and every call cut off
//! after `cache.redis_timeout`.

mod connector;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Object, Pool, PoolError, Timeouts};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::{Instant, timeout_at};

use super::keys::ListIndex;
use crate::config::RedisUrl;
use connector::Connector;

/// Deletes the lock only while it still holds the caller's token, so a caller whose lock
/// expired (and was taken by another replica) cannot release the other replica's lock.
const COMPARE_AND_DELETE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Stores a list (`KEYS[1]`, `ARGV[1]` for `ARGV[2]` ms) and lists it in its repository's index
/// (`KEYS[2]`) and the repository (`ARGV[5]`) in its registry's (`KEYS[3]`): each index scores
/// a member by when it expires at the latest (`ARGV[3]`), drops the members that expired
/// before now (`ARGV[4]`), and lives as long as its last member. One call, whatever else the
/// database holds.
const SET_AND_LIST: &str = "
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local function list(index, member)
  local score = redis.call('ZSCORE', index, member)
  if not score or tonumber(score) < tonumber(ARGV[3]) then
    redis.call('ZADD', index, ARGV[3], member)
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. ARGV[4])
  if redis.call('PTTL', index) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', index, ARGV[2])
  end
end
list(KEYS[2], KEYS[1])
list(KEYS[3], ARGV[5])
return 1
";

/// Deletes lists of one repository (`KEYS[3..]`) and takes them out of its index (`KEYS[1]`),
/// and the repository (`ARGV[1]`) out of its registry's index (`KEYS[2]`) once it lists no
/// more; returns how many of the lists existed.
const UNLINK_AND_UNLIST: &str = "
local lists = {unpack(KEYS, 3)}
local dropped = redis.call('UNLINK', unpack(lists))
redis.call('ZREM', KEYS[1], unpack(lists))
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return dropped
";

/// How long a subscription may go without a message before a `PING` checks the connection.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(10);

/// Lists deleted per call: each call is short, so that Redis (Harbor's own) serves others in
/// between.
const UNLINK_BATCH: usize = 500;

/// Why a Redis call failed. The cache treats every one of them as "no shared tier right now".
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The Redis client refused `cache.redis_url` (the message never holds the password).
    #[error("invalid cache.redis_url: {0}")]
    Url(String),
    /// The call (pool wait, connect and command together) took longer than `cache.redis_timeout`.
    #[error("Redis did not answer within the configured timeout")]
    Timeout,
    /// No connection could be had: Redis refused, the Sentinels named no usable master, …
    #[error("no Redis connection: {0}")]
    Pool(String),
    /// Redis answered the command with an error, or the connection broke during it.
    #[error("Redis command failed: {0}")]
    Command(String),
}

/// A pool of connections to the shared Redis tier. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct RedisTier {
    pool: Pool<Connector>,
    timeout: Duration,
    url: Arc<RedisUrl>,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A pool for `url` (plain, TLS with rustls, or Sentinel). Connects lazily: a Redis that is
    /// down at start is not an error here.
    ///
    /// `timeout` bounds the pool wait, connection set-up, recycling and each command, and each
    /// call as a whole.
    pub fn new(url: &RedisUrl, pool_size: usize, timeout: Duration) -> Result<Self, RedisError> {
        if pool_size == 0 {
            return Err(RedisError::Pool(
                "cache.redis_pool_size must be at least 1".into(),
            ));
        }
        let pool = Pool::builder(Connector::new(url, timeout)?)
            .max_size(pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            })
            .build()
            .map_err(|e| RedisError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            timeout,
            url: Arc::new(url.clone()),
        })
    }

    /// The value under `key`, read bounded: at most `max_bytes` + 1 bytes come back
    /// (`GETRANGE key 0 max_bytes`), so a longer value, planted or another writer's, costs no
    /// more memory than that and is told by its length. `None` when there is none (the tier
    /// never stores an empty value, and `GETRANGE` reads a missing key as one).
    pub async fn get(&self, key: &str, max_bytes: usize) -> Result<Option<Vec<u8>>, RedisError> {
        let value: Vec<u8> = self
            .run(redis::cmd("GETRANGE").arg(key).arg(0).arg(max_bytes))
            .await?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// Stores the list `value` under `key` for `ttl` (millisecond precision, at least 1 ms),
    /// and lists it in `index` (see [`SET_AND_LIST`]); `now_ms` is the caller's clock.
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        index: &ListIndex,
        now_ms: u64,
    ) -> Result<(), RedisError> {
        let ttl = ttl_millis(ttl);
        let _stored: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(SET_AND_LIST)
                    .arg(3)
                    .arg(key)
                    .arg(&index.repository_index)
                    .arg(&index.registry_index)
                    .arg(value)
                    .arg(ttl)
                    .arg(now_ms.saturating_add(ttl))
                    .arg(now_ms)
                    .arg(&index.repository),
            )
            .await?;
        Ok(())
    }

    /// `SET key token NX PX ttl`: true when this caller now holds the lock.
    pub async fn try_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let answer: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_millis(ttl)),
            )
            .await?;
        Ok(answer.is_some())
    }

    /// Releases the lock only if it still holds `token` (a Lua compare-and-delete).
    pub async fn unlock(&self, key: &str, token: &str) -> Result<(), RedisError> {
        let _deleted: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(COMPARE_AND_DELETE)
                    .arg(1)
                    .arg(key)
                    .arg(token),
            )
            .await?;
        Ok(())
    }

    /// The members of the sorted set `index` that expire at `now_ms` or later, soonest first,
    /// `count` of them from the `offset`th on (`ZRANGEBYSCORE … LIMIT`): what one index lists,
    /// a page at a time, and nothing else of the database.
    pub async fn listed(
        &self,
        index: &str,
        now_ms: u64,
        offset: usize,
        count: usize,
    ) -> Result<Vec<String>, RedisError> {
        self.run(
            redis::cmd("ZRANGEBYSCORE")
                .arg(index)
                .arg(now_ms)
                .arg("+inf")
                .arg("LIMIT")
                .arg(offset)
                .arg(count),
        )
        .await
    }

    /// Deletes `lists` of one repository (`UNLINK`: Redis frees their memory in the
    /// background) and takes them out of `index` (see [`UNLINK_AND_UNLIST`]), in batches;
    /// returns how many existed.
    pub async fn unlist(&self, index: &ListIndex, lists: &[String]) -> Result<u64, RedisError> {
        let mut deleted = 0;
        for batch in lists.chunks(UNLINK_BATCH) {
            let count: u64 = self
                .run(
                    redis::cmd("EVAL")
                        .arg(UNLINK_AND_UNLIST)
                        .arg(2 + batch.len())
                        .arg(&index.repository_index)
                        .arg(&index.registry_index)
                        .arg(batch)
                        .arg(&index.repository),
                )
                .await?;
            deleted += count;
        }
        Ok(deleted)
    }

    /// `PUBLISH channel message`.
    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), RedisError> {
        let _receivers: i64 = self
            .run(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    /// A connection of its own subscribed to `channel` (through Sentinel: on the current
    /// master), and the stream of its messages' payloads. The stream ends when the connection
    /// does (Redis restarted, a failover), or when a `PING` sent after [`SUBSCRIPTION_PING`]
    /// without a message gets no answer within the timeout (a connection left open by a
    /// frozen Redis or a dropped network path): subscribe again.
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<BoxStream<'static, Vec<u8>>, RedisError> {
        let connect = async {
            let client = self.pool.manager().client().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(self.timeout, connect).await {
            Err(_elapsed) => return Err(RedisError::Timeout),
            Ok(Err(error)) => return Err(command_error(&error)),
            Ok(Ok(pubsub)) => pubsub,
        };
        let timeout = self.timeout;
        let (sink, messages) = pubsub.split();
        Ok(futures_util::stream::unfold(
            (sink, messages),
            move |(mut sink, mut messages)| async move {
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let payload = message?.get_payload_bytes().to_vec();
                            return Some((payload, (sink, messages)));
                        }
                        () = tokio::time::sleep(SUBSCRIPTION_PING) => {
                            // Subscribed, Redis answers a PING with an array: any answer will do.
                            let ping = sink.ping::<redis::Value>();
                            if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_))) {
                                return None;
                            }
                        }
                    }
                }
            },
        )
        .boxed())
    }

    /// `cache.redis_url` with any password masked, for logs and `/readyz`.
    #[must_use]
    pub fn describe(&self) -> String {
        self.url.to_string()
    }

    /// Runs one command on a pooled connection, pool wait and command together bounded by
    /// the timeout: a black-holed Redis costs each caller at most that long.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let deadline = Instant::now() + self.timeout;
        let mut conn = match timeout_at(deadline, self.pool.get()).await {
            Err(_elapsed) => return Err(RedisError::Timeout),
            Ok(Err(error)) => return Err(pool_error(error)),
            Ok(Ok(conn)) => conn,
        };
        let failure = match timeout_at(deadline, cmd.query_async::<T>(&mut *conn)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => command_error(&error),
            Err(_elapsed) => RedisError::Timeout,
        };
        // A connection that timed out or failed may be dead, half-read or talking to a demoted
        // master: take it out of the pool so the next caller gets a fresh one (after a
        // Sentinel failover, one to the new master).
        drop(Object::take(conn));
        Err(failure)
    }
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn pool_error(error: PoolError<redis::RedisError>) -> RedisError {
    match error {
        PoolError::Timeout(_) => RedisError::Timeout,
        PoolError::Backend(error) if error.is_timeout() => RedisError::Timeout,
        PoolError::Backend(error) => RedisError::Pool(error.to_string()),
        other => RedisError::Pool(other.to_string()),
    }
}

fn command_error(error: &redis::RedisError) -> RedisError {
    if error.is_timeout() {
        RedisError::Timeout
    } else {
        RedisError::Command(error.to_string())
    }
}
