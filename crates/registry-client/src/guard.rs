//! Address and origin checks for targets the upstream chooses: token realms, `Link` pages and
//! redirects.

use std::net::IpAddr;

use url::{Host, Url};

/// Host names of cloud metadata services that answer on a routable name.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata"];

/// Whether `a` and `b` share scheme, host and port (default ports made explicit).
#[must_use]
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Whether an address must never receive a token request unless private realms are
/// allowed: loopback, unspecified, link-local (which holds 169.254.169.254) and the AWS
/// IPv6 metadata address; IPv4-mapped IPv6 addresses are judged as their IPv4 address.
#[must_use]
pub fn is_private_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            const AWS_METADATA_V6: [u16; 8] = [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || v6.segments() == AWS_METADATA_V6
        }
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
        Err(format!(
            "{address} is a loopback, link-local or metadata address"
        ))
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
    fn private_addresses() {
        for private in [
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_private_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(!is_private_address(public.parse().unwrap()), "{public}");
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
            "https://[fd00:ec2::254]/",
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
