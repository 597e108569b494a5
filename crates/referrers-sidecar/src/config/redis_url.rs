//! `cache.redis_url`, parsed once at load: plain, TLS or Harbor's Sentinel form, shown with its
//! password masked wherever it is printed (check-config, `/readyz`, logs).

use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use url::Url;

use super::secret::{Secret, mask_password};

/// Redis' own default port.
const DEFAULT_PORT: u16 = 6379;
/// Port a sentinel listens on when the URL names none (Redis' own default).
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// `redis://[user:pw@]host:port/db`, `rediss://…` (TLS, verified), or Harbor's Sentinel form
/// `redis+sentinel://[user:pw@]h1:26379,h2:26379/<master>[/<db>]`. Query options Harbor
/// understands (`idle_timeout_seconds`, …) are ignored: the pool has its own settings.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RedisUrl {
    /// The URL as given with the password masked: what is ever shown.
    masked: String,
    servers: RedisServers,
    db: u16,
    username: Option<String>,
    password: Option<Secret>,
}

/// Where the Redis master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisServers {
    /// One server, over TLS for `rediss://`.
    Direct { host: String, port: u16, tls: bool },
    /// Whichever master the sentinels name `master`.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
    },
}

/// Why a Redis URL cannot be used (the message never holds the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{masked:?}: {reason}")]
pub struct InvalidRedisUrl {
    masked: String,
    reason: &'static str,
}

impl RedisUrl {
    #[must_use]
    pub fn servers(&self) -> &RedisServers {
        &self.servers
    }

    /// The database index (0 when the URL names none).
    #[must_use]
    pub fn db(&self) -> u16 {
        self.db
    }

    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, for the one place that connects.
    #[must_use]
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }
}

impl FromStr for RedisUrl {
    type Err = InvalidRedisUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let masked = mask_password(text);
        let invalid = |reason| InvalidRedisUrl {
            masked: masked.clone(),
            reason,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("expected redis://, rediss:// or redis+sentinel://"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (servers, db) = match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" => {
                // `Url` checks the host (and IPv6 brackets) the way clients expect.
                let url = Url::parse(text).map_err(|_| invalid("not a URL"))?;
                let host = match url.host() {
                    Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    _ => return Err(invalid("no host")),
                };
                let db = match segments.as_slice() {
                    [] => 0,
                    [db] => db
                        .parse()
                        .map_err(|_| invalid("the path must be a database index"))?,
                    _ => return Err(invalid("the path must be a database index")),
                };
                let servers = RedisServers::Direct {
                    host,
                    port: url.port().unwrap_or(DEFAULT_PORT),
                    tls: scheme.eq_ignore_ascii_case("rediss"),
                };
                (servers, db)
            }
            "redis+sentinel" => {
                let sentinels = hosts
                    .split(',')
                    .map(|host| {
                        parse_host_port(host).ok_or_else(|| invalid("bad sentinel address"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let (master, db) = match segments.as_slice() {
                    [master] => (*master, 0),
                    [master, db] => (
                        *master,
                        db.parse()
                            .map_err(|_| invalid("the database index must be a number"))?,
                    ),
                    _ => return Err(invalid("the path must be /<master> or /<master>/<db>")),
                };
                let servers = RedisServers::Sentinel {
                    sentinels,
                    master: percent_decode_str(master).decode_utf8_lossy().into_owned(),
                };
                (servers, db)
            }
            _ => return Err(invalid("expected redis://, rediss:// or redis+sentinel://")),
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("credentials are not UTF-8"))
        };
        let (username, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
            Some((user, password)) => (
                Some(decode(user)?).filter(|u| !u.is_empty()),
                Some(decode(password)?)
                    .filter(|p| !p.is_empty())
                    .map(Secret::new),
            ),
            None => (None, None),
        };
        Ok(Self {
            masked,
            servers,
            db,
            username,
            password,
        })
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = InvalidRedisUrl;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
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

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RedisUrl {
        text.parse().expect(text)
    }

    #[test]
    fn plain_url_with_password_and_db() {
        let url = parse("redis://:s3cr%40t@harbor-redis:6379/10?idle_timeout_seconds=30");
        assert_eq!(
            url.servers(),
            &RedisServers::Direct {
                host: "harbor-redis".into(),
                port: 6379,
                tls: false
            }
        );
        assert_eq!(url.db(), 10);
        assert_eq!(url.password().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(url.username(), None);
        assert_eq!(parse("redis://h").db(), 0);
    }

    #[test]
    fn rediss_is_tls() {
        let url = parse("rediss://user:pw@redis.example:6380/3");
        assert_eq!(
            url.servers(),
            &RedisServers::Direct {
                host: "redis.example".into(),
                port: 6380,
                tls: true
            }
        );
        assert_eq!(url.username(), Some("user"));
        assert_eq!(url.db(), 3);
    }

    #[test]
    fn sentinel_url_with_password_and_db() {
        let url = parse("redis+sentinel://:p%3Ass@s1:26379,10.0.0.2:26380,[::1]/mymaster/10");
        assert_eq!(
            url.servers(),
            &RedisServers::Sentinel {
                sentinels: vec![
                    ("s1".to_owned(), 26379),
                    ("10.0.0.2".to_owned(), 26380),
                    ("::1".to_owned(), 26379),
                ],
                master: "mymaster".into(),
            }
        );
        assert_eq!(url.db(), 10);
        assert_eq!(url.password().map(Secret::expose), Some("p:ss"));
        assert_eq!(url.username(), None);
        let bare = parse("redis+sentinel://s1:26379/mymaster?idle_timeout_seconds=30");
        assert_eq!(bare.db(), 0);
        assert_eq!(bare.password(), None);
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        for text in [
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
            let error = text.parse::<RedisUrl>().expect_err(text).to_string();
            assert!(!error.contains("pw@"), "{text}: {error}");
        }
    }

    #[test]
    fn passwords_are_masked_wherever_the_url_is_shown() {
        for (text, shown) in [
            (
                "redis+sentinel://:pw1@h1:26379,h2:26379/mymaster/10",
                "redis+sentinel://:*****@h1:26379,h2:26379/mymaster/10",
            ),
            ("rediss://user:pw1@h/3", "rediss://user:*****@h/3"),
            ("redis://h:6379/10", "redis://h:6379/10"),
        ] {
            let url = parse(text);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), shown);
            assert_eq!(serde_json::to_string(&url).unwrap(), format!("\"{shown}\""));
        }
    }
}
