//! The docker-compose add-on's nginx route, proved with real nginx in a configuration shaped like
//! the one Harbor's installer writes: referrers requests reach the sidecar, every other `/v2/`
//! request reaches core, and with the sidecar stopped or unresolvable core still answers.
//!
//! The shipped location files are used as they are, with only their two addresses rendered
//! for loopback (Docker's resolver and the sidecar's service name).

use e2e::config::for_core;
use e2e::metrics;
use e2e::nginx::{Nginx, closed_udp_port};
use e2e::{RawResponse, Sidecar, StandinCore, raw_get};

const HTTP_ROUTE: &str = include_str!("../../deploy/compose/harbor.http.referrers.conf");
const HTTPS_ROUTE: &str = include_str!("../../deploy/compose/harbor.https.referrers.conf");

/// What the shipped files say, and so what the rendering below replaces.
const SHIPPED_SIDECAR: &str = "\"http://referrers-sidecar:8080\"";
const SHIPPED_RESOLVER: &str = "resolver 127.0.0.11 ";

/// nginx.conf as Harbor's installer renders it for HTTP (`nginx.http.conf.jinja`): the same
/// upstreams, locations and `include` line, with the upstreams on loopback ports and the paths
/// under nginx's temp prefix.
const HARBOR_NGINX_HTTP_CONF: &str = r#"
worker_processes auto;
pid {prefix}/nginx.pid;

events {
  worker_connections 1024;
  use epoll;
  multi_accept on;
}

http {
  client_body_temp_path {prefix}/client_body_temp;
  proxy_temp_path {prefix}/proxy_temp;
  fastcgi_temp_path {prefix}/fastcgi_temp;
  uwsgi_temp_path {prefix}/uwsgi_temp;
  scgi_temp_path {prefix}/scgi_temp;
  tcp_nodelay on;

  proxy_http_version 1.1;

  upstream core {
    server 127.0.0.1:{core_port};
  }

  upstream portal {
    server 127.0.0.1:{core_port};
  }

  access_log off;

  server {
    listen 127.0.0.1:{port};
    server_tokens off;
    client_max_body_size 0;

    include /etc/nginx/conf.d/harbor.http.*.conf;

    location / {
      proxy_pass http://portal/;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
    }

    location /api/ {
      proxy_pass http://core/api/;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
    }

    location /v1/ {
      return 404;
    }

    location /v2/ {
      proxy_pass http://core/v2/;
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
    }

    location /service/ {
      proxy_pass http://core/service/;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_request_buffering off;
    }

    location /service/notifications {
      return 404;
    }
  }
}
"#;

/// Where the sidecar is, as nginx is told.
enum SidecarAddress {
    /// A loopback port (the name resolved).
    Port(u16),
    /// The shipped service name, with a DNS server that does not exist.
    Unresolvable,
}

/// The shipped HTTP route with its addresses rendered for loopback.
fn rendered_route(sidecar: &SidecarAddress) -> String {
    assert!(
        HTTP_ROUTE.contains(SHIPPED_SIDECAR) && HTTP_ROUTE.contains(SHIPPED_RESOLVER),
        "the shipped route no longer names {SHIPPED_SIDECAR} and {SHIPPED_RESOLVER:?}: update this test"
    );
    // Never Docker's resolver: a DNS server on a closed loopback port, so names never resolve.
    let route = HTTP_ROUTE.replace(
        SHIPPED_RESOLVER,
        &format!("resolver 127.0.0.1:{} ", closed_udp_port()),
    );
    match sidecar {
        SidecarAddress::Port(port) => {
            route.replace(SHIPPED_SIDECAR, &format!("\"http://127.0.0.1:{port}\""))
        }
        SidecarAddress::Unresolvable => route,
    }
}

fn start_nginx(core: &StandinCore, sidecar: &SidecarAddress) -> Nginx {
    let conf = HARBOR_NGINX_HTTP_CONF
        .replace("{core_port}", &core.port.to_string())
        // Harbor's include line, pointed at the temp prefix.
        .replace("/etc/nginx/", "{prefix}/");
    Nginx::start(
        &conf,
        &[("conf.d/harbor.http.referrers.conf", rendered_route(sidecar))],
    )
}

fn start_sidecar(core: &StandinCore) -> Sidecar {
    Sidecar::start(&for_core(&core.url()))
}

fn digest() -> String {
    format!("sha256:{}", "ab".repeat(32))
}

fn header<'a>(response: &'a RawResponse, name: &str) -> Option<&'a str> {
    response.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn json(response: &RawResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            response.head,
            String::from_utf8_lossy(&response.body)
        )
    })
}

/// The sidecar answered (an OCI error of its own for an invalid referrers request).
fn assert_sidecar_answered(response: &RawResponse, code: &str) {
    assert_eq!(response.status, 400, "{}", response.head);
    assert_eq!(header(response, "x-core"), None, "{}", response.head);
    assert_eq!(json(response)["errors"][0]["code"], code);
}

/// Core answered, directly or through the fall-back, and saw the request target unchanged.
fn assert_core_answered(response: &RawResponse, target: &str) {
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(
        header(response, "x-core"),
        Some("standin"),
        "{}",
        response.head
    );
    assert_eq!(json(response)["target"], target);
}

/// The sum of every series of `name` on the sidecar's `/metrics`.
fn metric_sum(sidecar: &Sidecar, name: &str) -> f64 {
    let metrics = raw_get(sidecar.metrics_port, b"/metrics");
    assert_eq!(metrics.status, 200);
    metrics::family_sum(&String::from_utf8_lossy(&metrics.body), name)
}

#[test]
fn referrers_requests_reach_the_sidecar_and_every_other_v2_request_reaches_core() {
    let core = StandinCore::start();
    let sidecar = start_sidecar(&core);
    let nginx = start_nginx(&core, &SidecarAddress::Port(sidecar.port));

    // Only the sidecar answers these with an OCI error: core would echo them.
    let referrers = [
        ("/v2/proxy/nginx/referrers/sha256:1234", "DIGEST_INVALID"),
        (
            "/v2/proxy/library/nginx/referrers/sha256:12",
            "DIGEST_INVALID",
        ),
        // A repository may itself have a component named `referrers`.
        (
            "/v2/proxy/referrers/referrers/sha256:1234",
            "DIGEST_INVALID",
        ),
        (
            "/v2/proxy/nginx/referrers/sha256:1234?artifactType=application%2Fx",
            "DIGEST_INVALID",
        ),
    ];
    for (target, code) in referrers {
        assert_sidecar_answered(&raw_get(nginx.port, target.as_bytes()), code);
    }
    let name_invalid = format!("/v2/Proxy/nginx/referrers/{}", digest());
    assert_sidecar_answered(
        &raw_get(nginx.port, name_invalid.as_bytes()),
        "NAME_INVALID",
    );
    assert!(metric_sum(&sidecar, metrics::REQUESTS) >= 5.0);

    let d = digest();
    let others = [
        "/v2/".to_owned(),
        "/v2/_catalog".to_owned(),
        "/v2/proxy/nginx/manifests/latest".to_owned(),
        format!("/v2/proxy/nginx/manifests/{d}"),
        format!("/v2/proxy/nginx/blobs/{d}"),
        "/v2/proxy/nginx/tags/list?n=10".to_owned(),
        // Not the referrers API: something after the digest, or no digest at all.
        format!("/v2/proxy/nginx/referrers/{d}/more"),
        "/v2/proxy/nginx/referrers/".to_owned(),
        "/v2/referrers".to_owned(),
        "/api/v2.0/projects/proxy".to_owned(),
        "/service/token?service=harbor-registry".to_owned(),
    ];
    for target in &others {
        assert_core_answered(&raw_get(nginx.port, target.as_bytes()), target);
    }
    // None of them went through the sidecar's pass-through.
    assert_eq!(metric_sum(&sidecar, metrics::PASSTHROUGH), 0.0);
}

#[test]
fn with_the_sidecar_stopped_referrers_requests_get_cores_answer() {
    let core = StandinCore::start();
    let sidecar = start_sidecar(&core);
    let nginx = start_nginx(&core, &SidecarAddress::Port(sidecar.port));
    let invalid = "/v2/proxy/nginx/referrers/sha256:1234";
    assert_sidecar_answered(&raw_get(nginx.port, invalid.as_bytes()), "DIGEST_INVALID");

    drop(sidecar);
    let valid = format!("/v2/proxy/nginx/referrers/{}?artifactType=x", digest());
    for target in [invalid, valid.as_str()] {
        assert_core_answered(&raw_get(nginx.port, target.as_bytes()), target);
    }
    assert_core_answered(&raw_get(nginx.port, b"/v2/"), "/v2/");
}

#[test]
fn nginx_starts_and_core_answers_when_the_sidecars_name_does_not_resolve() {
    let core = StandinCore::start();
    let mut nginx = start_nginx(&core, &SidecarAddress::Unresolvable);
    assert!(nginx.is_running());
    assert_core_answered(&raw_get(nginx.port, b"/v2/"), "/v2/");
    let target = format!("/v2/proxy/nginx/referrers/{}", digest());
    assert_core_answered(&raw_get(nginx.port, target.as_bytes()), &target);
    assert!(
        nginx.error_log().contains("referrers-sidecar"),
        "nginx should have logged the name it could not resolve:\n{}",
        nginx.error_log()
    );
}

#[test]
fn the_http_and_https_files_carry_the_same_route() {
    let directives = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(directives(HTTP_ROUTE), directives(HTTPS_ROUTE));
    assert!(HTTP_ROUTE.contains("location ~ ^/v2/.+/referrers/[^/]+$ {"));
}
