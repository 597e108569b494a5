//! The shared Redis tier: a bounded connection pool to a plain, TLS or Sentinel-managed Redis,
//! with get/set, a cross-replica lock, and every call cut off after `cache.redis_timeout`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, Timeouts};
use percent_encoding::percent_decode_str;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, Role,
    aio::MultiplexedConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};
use tokio::time::{Instant, timeout_at};

/// Port a sentinel listens on when the URL names none (Redis' own default).
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Deletes the lock only while it still holds the caller's token, so a caller whose lock
/// expired (and was taken by another replica) cannot release the other replica's lock.
const COMPARE_AND_DELETE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// A pooled connection used this recently is handed out again without a check.
const RECENTLY_USED: Duration = Duration::from_secs(5);

/// Why a Redis call failed. The cache treats every one of them as "no shared tier right now".
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// `cache.redis_url` is not a URL this tier can use (the message never holds the password).
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
    described: Arc<str>,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.described)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// Parses `cache.redis_url`: `redis://[user:pw@]host:port/db`, `rediss://…` (TLS, rustls),
    /// or Harbor's Sentinel form `redis+sentinel://[user:pw@]h1:26379,h2:26379/<master>/<db>`.
    /// Connects lazily: a Redis that is down at start is not an error here.
    ///
    /// `timeout` bounds the pool wait, connection set-up, recycling and each command, and each
    /// call as a whole.
    pub fn new(url: &str, pool_size: usize, timeout: Duration) -> Result<Self, RedisError> {
        let described = mask_password(url);
        if pool_size == 0 {
            return Err(RedisError::Pool(
                "cache.redis_pool_size must be at least 1".into(),
            ));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let target = match parse(url)? {
            Endpoint::Direct(info) => Target::Direct(
                redis::Client::open(info).map_err(|e| RedisError::Url(e.to_string()))?,
            ),
            Endpoint::Sentinel(sentinel) => {
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(sentinel.node.clone());
                let client = SentinelClient::build(
                    sentinel.sentinels.clone(),
                    sentinel.master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| RedisError::Url(e.to_string()))?;
                Target::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        let pool = Pool::builder(Connector { target, config })
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
            described: described.into(),
        })
    }

    /// The value under `key`, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    /// Stores `value` under `key` for `ttl` (`SET … PX`, millisecond precision, at least 1 ms).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        self.run(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_millis(ttl)),
        )
        .await
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

    /// `cache.redis_url` with any password masked, for logs and `/readyz`.
    #[must_use]
    pub fn describe(&self) -> String {
        self.described.to_string()
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

/// Where new connections go: one fixed server, or whichever master the Sentinels name now.
enum Target {
    Direct(redis::Client),
    // The Sentinel client keeps its connections to the sentinels between look-ups and needs
    // `&mut` for them; creating connections one at a time is fine for a pool this small.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// deadpool's manager for both targets, so that plain and Sentinel set-ups share one pool type
/// with the same connect and command timeouts.
struct Connector {
    target: Target,
    config: AsyncConnectionConfig,
}

impl managed::Manager for Connector {
    type Type = MultiplexedConnection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        match &self.target {
            Target::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
            }
            // Asks the sentinels for the master each time, and checks its ROLE: after a
            // failover, new connections reach the new master.
            Target::Sentinel(client) => {
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(&self.config)
                    .await
            }
        }
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> managed::RecycleResult<redis::RedisError> {
        // A connection in steady use is known good: checking it on every checkout would double
        // every call's round trips on the hot path. One whose command fails is dropped anyway.
        if metrics.last_used() < RECENTLY_USED {
            return Ok(());
        }
        match &self.target {
            Target::Direct(_) => {
                let _pong: String = redis::cmd("PING").query_async(conn).await?;
                Ok(())
            }
            // A master demoted by a failover may keep its clients connected; reads would still
            // work but writes fail, so a pooled connection must still be talking to a master.
            Target::Sentinel(_) => match redis::cmd("ROLE").query_async(conn).await? {
                Role::Primary { .. } => Ok(()),
                _ => Err(RecycleError::message("no longer connected to the master")),
            },
        }
    }
}

/// `cache.redis_url` taken apart.
#[derive(Debug)]
enum Endpoint {
    Direct(ConnectionInfo),
    Sentinel(SentinelEndpoint),
}

#[derive(Debug)]
struct SentinelEndpoint {
    sentinels: Vec<(String, u16)>,
    master: String,
    /// Database and credentials for the master (Harbor uses them for the master only).
    node: RedisConnectionInfo,
}

fn parse(url: &str) -> Result<Endpoint, RedisError> {
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .ok_or_else(|| bad_url(url, "expected redis://, rediss:// or redis+sentinel://"))?;
    match scheme.as_str() {
        "redis" | "rediss" => parse_direct(url),
        "redis+sentinel" => parse_sentinel(url).map(Endpoint::Sentinel),
        _ => Err(bad_url(
            url,
            "expected redis://, rediss:// or redis+sentinel://",
        )),
    }
}

fn parse_direct(url: &str) -> Result<Endpoint, RedisError> {
    let parsed = url::Url::parse(url).map_err(|e| bad_url(url, &e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad_url(url, "no host"));
    }
    let db = parsed.path().trim_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(bad_url(url, "the path must be a database index"));
    }
    let info = url
        .into_connection_info()
        .map_err(|e| bad_url(url, &e.to_string()))?;
    Ok(Endpoint::Direct(info))
}

/// Harbor's form, which `url` cannot parse (several `host:port` in the authority):
/// `redis+sentinel://[user:pw@]h1:26379,h2:26379/<master>[/<db>][?…]`. Query options Harbor
/// understands (`idle_timeout_seconds`, …) are ignored: the pool has its own settings.
fn parse_sentinel(url: &str) -> Result<SentinelEndpoint, RedisError> {
    let rest = url
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| bad_url(url, "no /<master> after the sentinels"))?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let sentinels = hosts
        .split(',')
        .map(|host| parse_host_port(host).ok_or_else(|| bad_url(url, "bad sentinel address")))
        .collect::<Result<Vec<_>, _>>()?;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (master, db) = match segments.as_slice() {
        [master] => (*master, 0),
        [master, db] => (
            *master,
            db.parse::<u16>()
                .map_err(|_| bad_url(url, "the database index must be a number"))?,
        ),
        _ => return Err(bad_url(url, "the path must be /<master> or /<master>/<db>")),
    };
    let mut node = RedisConnectionInfo::default().set_db(i64::from(db));
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad_url(url, "credentials are not UTF-8"))
        };
        if !user.is_empty() {
            node = node.set_username(decode(user)?);
        }
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            node = node.set_password(decode(password)?);
        }
    }
    Ok(SentinelEndpoint {
        sentinels,
        master: percent_decode_str(master).decode_utf8_lossy().into_owned(),
        node,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok().filter(|p| *p != 0)?,
        None => DEFAULT_SENTINEL_PORT,
    };
    Some((host.to_owned(), port))
}

fn bad_url(url: &str, why: &str) -> RedisError {
    RedisError::Url(format!("{}: {why}", mask_password(url)))
}

/// The URL with the password in its user info replaced by `***`; works for Harbor's Sentinel
/// form too, which a URL parser rejects.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ConnectionAddr;

    fn direct(url: &str) -> ConnectionInfo {
        match parse(url).expect("parses") {
            Endpoint::Direct(info) => info,
            other => panic!("not direct: {other:?}"),
        }
    }

    fn sentinel(url: &str) -> SentinelEndpoint {
        match parse(url).expect("parses") {
            Endpoint::Sentinel(endpoint) => endpoint,
            other => panic!("not sentinel: {other:?}"),
        }
    }

    #[test]
    fn plain_url_with_password_and_db() {
        let info = direct("redis://:s3cr%40t@harbor-redis:6379/10");
        assert_eq!(
            info.addr(),
            &ConnectionAddr::Tcp("harbor-redis".into(), 6379)
        );
        assert_eq!(info.redis_settings().db(), 10);
        assert_eq!(info.redis_settings().password(), Some("s3cr@t"));
        assert_eq!(info.redis_settings().username(), None);
    }

    #[test]
    fn harbor_query_options_are_accepted() {
        let info = direct("redis://redis:6379/10?idle_timeout_seconds=30");
        assert_eq!(info.redis_settings().db(), 10);
    }

    #[test]
    fn rediss_is_tls_with_verification() {
        let info = direct("rediss://user:pw@redis.example:6380/3");
        match info.addr() {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                assert_eq!(
                    (host.as_str(), *port, *insecure),
                    ("redis.example", 6380, false)
                );
            }
            other => panic!("not TLS: {other:?}"),
        }
        assert_eq!(info.redis_settings().username(), Some("user"));
        assert_eq!(info.redis_settings().db(), 3);
    }

    #[test]
    fn rediss_tier_builds_with_rustls() {
        let tier = RedisTier::new(
            "rediss://redis.example:6380/10",
            4,
            Duration::from_millis(250),
        )
        .expect("TLS tier");
        assert_eq!(tier.describe(), "rediss://redis.example:6380/10");
    }

    #[test]
    fn sentinel_url_with_password_and_db() {
        let endpoint =
            sentinel("redis+sentinel://:p%3Ass@s1:26379,10.0.0.2:26380,[::1]/mymaster/10");
        assert_eq!(
            endpoint.sentinels,
            vec![
                ("s1".to_owned(), 26379),
                ("10.0.0.2".to_owned(), 26380),
                ("::1".to_owned(), 26379),
            ]
        );
        assert_eq!(endpoint.master, "mymaster");
        assert_eq!(endpoint.node.db(), 10);
        assert_eq!(endpoint.node.password(), Some("p:ss"));
        assert_eq!(endpoint.node.username(), None);
    }

    #[test]
    fn sentinel_url_without_db_or_credentials() {
        let endpoint = sentinel("redis+sentinel://s1:26379/mymaster?idle_timeout_seconds=30");
        assert_eq!(endpoint.sentinels, vec![("s1".to_owned(), 26379)]);
        assert_eq!(endpoint.master, "mymaster");
        assert_eq!(endpoint.node.db(), 0);
        assert_eq!(endpoint.node.password(), None);
    }

    #[test]
    fn bad_urls_are_url_errors_without_the_password() {
        for url in [
            "",
            "harbor-redis:6379",
            "http://harbor-redis:6379/10",
            "redis://:pw@harbor-redis:6379/ten",
            "redis://:pw@/10",
            "redis+sentinel://:pw@s1:26379",
            "redis+sentinel://:pw@s1:26379/",
            "redis+sentinel://:pw@s1:26379/mymaster/ten",
            "redis+sentinel://:pw@s1:26379/mymaster/10/extra",
            "redis+sentinel://:pw@s1:notaport/mymaster/10",
            "redis+sentinel://:pw@s1:26379,,s2/mymaster/10",
            "redis+sentinel://:pw@/mymaster/10",
        ] {
            match RedisTier::new(url, 4, Duration::from_millis(250)) {
                Err(RedisError::Url(message)) => {
                    assert!(!message.contains("pw@"), "{url}: {message}");
                }
                other => panic!("{url}: expected a Url error, got {other:?}"),
            }
        }
    }

    #[test]
    fn describe_masks_passwords() {
        for (url, shown) in [
            (
                "redis://:s3cret@harbor-redis:6379/10",
                "redis://:***@harbor-redis:6379/10",
            ),
            (
                "rediss://user:s3cret@harbor-redis:6380/10",
                "rediss://user:***@harbor-redis:6380/10",
            ),
            (
                "redis+sentinel://:s3cret@s1:26379,s2:26379/mymaster/10",
                "redis+sentinel://:***@s1:26379,s2:26379/mymaster/10",
            ),
            (
                "redis://harbor-redis:6379/10",
                "redis://harbor-redis:6379/10",
            ),
        ] {
            let tier = RedisTier::new(url, 4, Duration::from_millis(250)).expect(url);
            assert_eq!(tier.describe(), shown);
            assert!(!format!("{tier:?}").contains("s3cret"));
        }
    }

    #[test]
    fn ttl_has_millisecond_precision_and_a_floor() {
        assert_eq!(ttl_millis(Duration::from_micros(10)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }
}
