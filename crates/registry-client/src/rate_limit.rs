//! Rate limits: a `429`, or a `503` with a `Retry-After` (delay-seconds or an HTTP date).
//!
//! REF: <https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3>

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::UpstreamError;

/// Longest wait believed: the header is the upstream's word, and a wait added to a clock
/// must never overflow it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long the upstream asks us to wait, relative to `now`, at most [`MAX_RETRY_AFTER`]; a
/// date in the past is zero. `None` when the header is absent or unreadable.
#[must_use]
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits beyond u64 are still a (very long) delay, not garbage.
        value
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The rate limit an answer says, if it says one: every `429`, and a `503` that names when to
/// come back (a registry shedding load); a `503` without a readable `Retry-After` is a failure.
#[must_use]
pub(crate) fn rate_limit(status: StatusCode, headers: &HeaderMap) -> Option<UpstreamError> {
    let retry_after = retry_after(headers, SystemTime::now());
    match status {
        StatusCode::TOO_MANY_REQUESTS => Some(UpstreamError::RateLimited { retry_after }),
        StatusCode::SERVICE_UNAVAILABLE if retry_after.is_some() => {
            Some(UpstreamError::RateLimited { retry_after })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn seconds_dates_and_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        // 1994-11-06T08:49:37Z is `now`; one minute later:
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:50:37 GMT"), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-5"), now), None);
        assert_eq!(retry_after(&headers("1.5"), now), None);
        assert_eq!(retry_after(&headers("+5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn a_429_and_a_503_naming_a_wait_are_rate_limits() {
        let limited = |status: u16, headers: &HeaderMap| {
            rate_limit(StatusCode::from_u16(status).unwrap(), headers)
        };
        assert_eq!(
            limited(429, &HeaderMap::new()),
            Some(UpstreamError::RateLimited { retry_after: None })
        );
        assert_eq!(
            limited(503, &headers("30")),
            Some(UpstreamError::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            })
        );
        assert_eq!(limited(503, &HeaderMap::new()), None);
        assert_eq!(limited(503, &headers("soon")), None);
        assert_eq!(limited(500, &headers("30")), None);
    }

    #[test]
    fn huge_waits_are_clamped() {
        let now = SystemTime::UNIX_EPOCH;
        for huge in [
            u64::MAX.to_string(),
            "99999999999999999999999999".to_owned(),
            "Fri, 31 Dec 9999 23:59:59 GMT".to_owned(),
        ] {
            assert_eq!(
                retry_after(&headers(&huge), now),
                Some(MAX_RETRY_AFTER),
                "{huge}"
            );
        }
        assert_eq!(
            retry_after(&headers("86399"), now),
            Some(Duration::from_secs(86399))
        );
    }
}
