//! Address and origin checks for targets the upstream chooses: token realms, `Link` pages and
//! redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Host names of cloud metadata services that answer on a routable name.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata"];

/// Whether `a` and `b` share scheme, host and port (default ports made explicit).
#[must_use]
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// IPv4 addresses of cloud metadata services outside link-local: Alibaba Cloud's and
/// Azure's wire server.
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];

/// AWS's IPv6 metadata address.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Whether an address must never receive a token request unless private realms are
/// allowed: it reaches the sidecar's own host or a cloud metadata service. That is loopback,
/// unspecified and "this network" (`0.0.0.0/8`), link-local (which holds 169.254.169.254),
/// and the metadata addresses elsewhere; IPv6 addresses that carry an IPv4 address
/// (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) are judged
/// by that IPv4 address. Site networks (10/8, 192.168/16, ULAs) are allowed: registries and
/// their token servers live there.
#[must_use]
pub fn is_private_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.octets()[0] == 0
                || METADATA_V4.contains(&v4)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || v6 == METADATA_V6
                || embedded_ipv4(v6).is_some_and(|v4| is_private_address(IpAddr::V4(v4)))
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where the address says so.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc4291#section-2.5.5> (IPv4-compatible, -mapped)
/// REF: <https://www.rfc-editor.org/rfc/rfc6052#section-2.1> (NAT64 well-known prefix)
/// REF: <https://www.rfc-editor.org/rfc/rfc3056#section-2> (6to4)
/// REF: <https://www.rfc-editor.org/rfc/rfc4380#section-4> (Teredo)
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = v6.segments();
    let last_32 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match segments {
        // IPv4-compatible and IPv4-mapped.
        [0, 0, 0, 0, 0, 0 | 0xffff, high, low] => Some(last_32(high, low)),
        // NAT64 (DNS64 synthesizes these for public hosts too, so only the embedded address
        // decides).
        [0x0064, 0xff9b, 0, 0, 0, 0, high, low] => Some(last_32(high, low)),
        [0x2002, high, low, ..] => Some(last_32(high, low)),
        // Teredo carries the client's address inverted.
        [0x2001, 0, .., high, low] => Some(last_32(!high, !low)),
        _ => None,
    }
}

/// Checks a token realm before anything is sent to it: `https` unless the registry is
/// insecure, and (unless `allow_private`) no loopback, link-local or metadata target, by
/// literal address, by well-known name, or by any address its name resolves to.
///
/// # Errors
///
/// A human-readable reason when the realm is refused.
pub async fn check_realm(realm: &Url, insecure: bool, allow_private: bool) -> Result<(), String> {
    match realm.scheme() {
        "https" => {}
        "http" if insecure => {}
        "http" => return Err("plain http realm for a registry not marked insecure".into()),
        other => return Err(format!("scheme {other:?} is not http(s)")),
    }
    if allow_private {
        return Ok(());
    }
    let port = realm.port_or_known_default().unwrap_or(443);
    match realm.host() {
        None => Err("realm has no host".into()),
        Some(Host::Ipv4(v4)) => refuse_if_private(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => refuse_if_private(IpAddr::V6(v6)),
        Some(Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if domain == "localhost"
                || domain.ends_with(".localhost")
                || METADATA_HOSTS.contains(&domain.as_str())
            {
                return Err(format!("{domain} is a local or metadata host"));
            }
            // Resolving here and again when connecting leaves a rebinding window; it still
            // stops every realm whose name plainly points inside the host or at metadata.
            let addresses = tokio::net::lookup_host((domain.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve {domain}: {e}"))?;
            for address in addresses {
                refuse_if_private(address.ip())?;
            }
            Ok(())
        }
    }
}

fn refuse_if_private(address: IpAddr) -> Result<(), String> {
    if is_private_address(address) {
        Err(format!("{address} reaches this host or a metadata service"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    #[test]
    fn internal_and_metadata_addresses_are_refused_in_every_disguise() {
        for (address, refused) in [
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("169.254.169.254", true),
            ("169.254.0.1", true),
            ("100.100.100.200", true),
            ("168.63.129.16", true),
            ("10.0.0.1", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("100.100.100.201", false),
            ("8.8.8.8", false),
            ("::1", true),
            ("::", true),
            ("fe80::1", true),
            ("fd00:ec2::254", true),
            ("fd00::1", false),
            ("2001:db8::1", false),
            ("2606:4700::1111", false),
            // IPv4-mapped
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:100.100.100.200", true),
            ("::ffff:8.8.8.8", false),
            // IPv4-compatible
            ("::127.0.0.1", true),
            ("::169.254.169.254", true),
            ("::8.8.8.8", false),
            // NAT64
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::169.254.169.254", true),
            ("64:ff9b::100.100.100.200", true),
            ("64:ff9b::8.8.8.8", false),
            // 6to4
            ("2002:7f00:1::", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:808:808::1", false),
            // Teredo: client 169.254.169.254 inverted is 5601:5601
            ("2001:0:4136:e378:8000:63bf:5601:5601", true),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false),
        ] {
            assert_eq!(
                is_private_address(address.parse().unwrap()),
                refused,
                "{address}"
            );
        }
    }

    #[tokio::test]
    async fn realm_checks() {
        assert!(
            check_realm(&url("https://8.8.8.8/token"), false, false)
                .await
                .is_ok()
        );
        assert!(
            check_realm(&url("http://8.8.8.8/token"), false, false)
                .await
                .is_err()
        );
        assert!(
            check_realm(&url("http://8.8.8.8/token"), true, false)
                .await
                .is_ok()
        );
        assert!(
            check_realm(&url("ftp://8.8.8.8/token"), true, true)
                .await
                .is_err()
        );
        for refused in [
            "https://169.254.169.254/latest",
            "https://100.100.100.200/latest/meta-data",
            "https://[fd00:ec2::254]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/token",
            "https://[::ffff:7f00:1]/token",
            "https://127.0.0.1:9/token",
            "https://[::1]/token",
            "https://metadata.google.internal/computeMetadata",
            "https://localhost/token",
        ] {
            assert!(
                check_realm(&url(refused), false, false).await.is_err(),
                "{refused}"
            );
            assert!(
                check_realm(&url(refused), false, true).await.is_ok(),
                "{refused}"
            );
        }
    }

    #[test]
    fn origins() {
        assert!(same_origin(&url("https://a/x"), &url("https://a:443/y?z")));
        assert!(!same_origin(&url("https://a/x"), &url("http://a/x")));
        assert!(!same_origin(&url("https://a/x"), &url("https://a:444/x")));
        assert!(!same_origin(&url("https://a/x"), &url("https://b/x")));
    }
}
