//! Where the command line may send credentials, or have Harbor send a secret, over plain
//! `http://`: this machine, or a name inside the cluster or the compose network (a single-label
//! name such as `harbor-core`, or a Kubernetes service name with its `svc` label). Anywhere else
//! it takes `https://`, or `--insecure` said out loud.

use std::net::IpAddr;

use url::{Host, Url};

/// Why a URL is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to send {what} over plain http:// to {host}, outside this machine and the cluster: use https://, or pass --insecure"
)]
pub struct PlainHttp {
    what: &'static str,
    host: String,
}

/// `url` when `what` may go to it: over `https://`, to a local or in-cluster name, or with
/// `insecure`.
pub fn check(url: &Url, what: &'static str, insecure: bool) -> Result<(), PlainHttp> {
    if insecure || url.scheme() != "http" || stays_inside(url) {
        return Ok(());
    }
    Err(PlainHttp {
        what,
        host: url.host_str().unwrap_or_default().to_owned(),
    })
}

/// Whether `url`'s host is this machine or a name inside the cluster or the compose network.
fn stays_inside(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost"
                || !name.contains('.')
                || name.ends_with(".svc")
                || name.contains(".svc.")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_stays_on_this_machine_or_inside_the_cluster_unless_told() {
        let allowed = |url: &str, insecure| check(&url.parse().unwrap(), "x", insecure).is_ok();
        for inside in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://harbor-core",
            "http://referrers-sidecar:8080",
            "http://harbor-core.harbor.svc",
            "http://harbor-core.harbor.svc.cluster.local:80",
            "https://harbor.example.com",
        ] {
            assert!(allowed(inside, false), "{inside}");
        }
        for outside in [
            "http://harbor.example.com",
            "http://10.0.0.5:8080",
            "http://svc.example.com",
        ] {
            assert!(!allowed(outside, false), "{outside}");
            assert!(allowed(outside, true), "{outside} with --insecure");
        }
    }
}
