//! The pool's set-up without a server: URLs, masking, TTLs.

use super::*;

fn tier(url: &str) -> RedisTier {
    RedisTier::new(&url.parse().expect(url), 4, Duration::from_millis(250)).expect(url)
}

#[test]
fn rediss_tier_builds_with_rustls() {
    assert_eq!(
        tier("rediss://redis.example:6380/10").describe(),
        "rediss://redis.example:6380/10"
    );
}

#[test]
fn describe_masks_passwords() {
    for (url, shown) in [
        (
            "redis://:s3cret@harbor-redis:6379/10",
            "redis://:*****@harbor-redis:6379/10",
        ),
        (
            "redis+sentinel://:s3cret@s1:26379,s2:26379/mymaster/10",
            "redis+sentinel://:*****@s1:26379,s2:26379/mymaster/10",
        ),
    ] {
        let tier = tier(url);
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
