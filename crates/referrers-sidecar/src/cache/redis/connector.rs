//! deadpool's manager of Redis connections: where new ones go (one server, or whichever master
//! the Sentinels name now), with the configured connect and response timeouts, and when a
//! pooled one is checked before it is handed out again.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Role,
    aio::MultiplexedConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};

use super::RedisError;
use crate::config::{RedisServers, RedisUrl};

/// A pooled connection used this recently is handed out again without a check.
const RECENTLY_USED: Duration = Duration::from_secs(5);

/// Where new connections go: one fixed server, or whichever master the Sentinels name now.
enum Target {
    Direct(redis::Client),
    // The Sentinel client keeps its connections to the sentinels between look-ups and needs
    // `&mut` for them; creating connections one at a time is fine for a pool this small.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// deadpool's manager for both targets, so that plain and Sentinel set-ups share one pool type
/// with the same connect and command timeouts.
pub(super) struct Connector {
    target: Target,
    config: AsyncConnectionConfig,
}

impl Connector {
    /// Connections to `url` (plain, TLS with rustls, or Sentinel), each set up and each
    /// command answered within `timeout`. Connects to nothing yet.
    pub(super) fn new(url: &RedisUrl, timeout: Duration) -> Result<Self, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        // Harbor gives the database and credentials for the master only, not the sentinels.
        let mut node = RedisConnectionInfo::default().set_db(i64::from(url.db()));
        if let Some(username) = url.username() {
            node = node.set_username(username);
        }
        if let Some(password) = url.password() {
            node = node.set_password(password.expose());
        }
        let target = match url.servers() {
            RedisServers::Direct { host, port, tls } => {
                let addr = if *tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                let info = addr
                    .into_connection_info()
                    .map_err(|e| RedisError::Url(e.to_string()))?
                    .set_redis_settings(node);
                Target::Direct(
                    redis::Client::open(info).map_err(|e| RedisError::Url(e.to_string()))?,
                )
            }
            RedisServers::Sentinel { sentinels, master } => {
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
                let client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| RedisError::Url(e.to_string()))?;
                Target::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        Ok(Self { target, config })
    }

    /// A client for a connection of its own (a subscription): through Sentinel, to the
    /// current master.
    pub(super) async fn client(&self) -> Result<redis::Client, redis::RedisError> {
        match &self.target {
            Target::Direct(client) => Ok(client.clone()),
            Target::Sentinel(client) => client.lock().await.async_get_client().await,
        }
    }
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
