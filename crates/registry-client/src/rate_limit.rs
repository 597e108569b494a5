//! `Retry-After` of a `429`: delay-seconds or an HTTP date.
//!
//! REF: <https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3>

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

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
