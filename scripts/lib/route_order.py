"""The sidecar's route ranks above harbor-helm's `/v2/` where it should, on each controller the
docs name, and takes nothing else; run by scripts/check-helm.sh.

    route_order.py RENDERED FIXTURES_DIR NGINX

RENDERED is the chart's output; FIXTURES_DIR holds harbor-helm's own Ingress and HTTPRoute as it
renders them (tests/fixtures/harbor-helm), put on the chart's routing.host. For each model below,
a set of request paths goes to the sidecar exactly when the chart means it to: referrers requests
(scope referrers), `/v2/<project>/` of a named project (scope allOfV2 with an Ingress), GET/HEAD
`/v2/` (allOfV2 with a Gateway or Traefik), `/referrers-sidecar/v1/` (routing.operatorApi).
Where two rules tie, the model gives the request to Harbor's (the older object, as nginx-based
controllers and Gateway API order ties): a tie is a failure.

Models:
  ingress-nginx   its locations, put in its order (path length, longest first) with use-regex
                  when any Ingress of the host asks for it, run by a real nginx on loopback
  Ingress API     longest matching Prefix path (element-wise) first, for any conformant controller
  Traefik         Ingress provider: priority = rule length; IngressRoute: its explicit priority
  Gateway API     the HTTPRoute precedence of the spec: Exact, longest PathPrefix, method, headers
Exits 1 naming each request that goes the wrong way.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

OURS, HARBOR = "sidecar", "harbor"
REFERRERS = re.compile(r"^/v2/.+/referrers/[^/]+$")
DIGEST = "sha256:" + "ab" * 32


def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


rendered, fixtures, nginx = sys.argv[1], sys.argv[2], sys.argv[3]
docs = load(rendered)
config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
projects = config["projects"]["enabled"]
routes = [d for d in docs if d["kind"] in ("Ingress", "HTTPRoute", "IngressRoute")]
if not routes:
    print("    note no route object (routing.mode none)")
    sys.exit(0)
ours = routes[0]
kind = ours["kind"]
dump = yaml.safe_dump(ours)
operator_api = "/referrers-sidecar/v1/" in dump
if kind == "Ingress":
    host = ours["spec"]["rules"][0]["host"]
    scope = "referrers" if any(p["pathType"] == "ImplementationSpecific" and "referrers/" in p["path"]
                               for p in ours["spec"]["rules"][0]["http"]["paths"]) else "allOfV2"
elif kind == "HTTPRoute":
    host = ours["spec"]["hostnames"][0]
    scope = "referrers" if "RegularExpression" in dump else "allOfV2"
else:
    host = re.search(r"Host\(`([^`]+)`\)", ours["spec"]["routes"][0]["match"]).group(1)
    scope = "referrers" if "PathRegexp" in dump else "allOfV2"

served = next((p for p in projects if p != "*"), "dockerhub-proxy")
paths = [
    f"/v2/{served}/library/nginx/referrers/{DIGEST}",
    f"/v2/{served}/nginx/referrers/sha256:1234",
    f"/v2/{served}/referrers/x/manifests/latest",
    f"/v2/{served}/library/nginx/manifests/latest",
    f"/v2/{served}/library/nginx/blobs/{DIGEST}",
    f"/v2/{served}-other/nginx/manifests/latest",
    f"/v2/elsewhere/nginx/referrers/{DIGEST}",
    "/v2/",
    "/v2/_catalog",
    "/api/v2.0/projects",
    "/service/token",
    "/c/login",
    "/",
    "/referrers-sidecar/v1/status",
]


def expected(path):
    if path.startswith("/referrers-sidecar/v1/"):
        return OURS if operator_api else HARBOR
    if scope == "referrers":
        return OURS if REFERRERS.match(path) else HARBOR
    if kind == "Ingress":
        return OURS if any(path.startswith(f"/v2/{p}/") for p in projects) else HARBOR
    return OURS if path.startswith("/v2/") else HARBOR


def harbor(name):
    doc = load(os.path.join(fixtures, name))[0]
    text = yaml.safe_dump(doc).replace("harbor.example.com", host)
    return yaml.safe_load(text)


failures = []


def verdict(model, route):
    wrong = [(p, route(p), expected(p)) for p in paths if route(p) != expected(p)]
    for path, got, want in wrong:
        failures.append(f"{model}: {path} reaches {got}, should reach {want}")
    if not wrong:
        print(f"    ok   {model}: {kind} ({scope}{', operator API' if operator_api else ''}) "
              f"ranks as meant over harbor-helm's {'HTTPRoute' if kind == 'HTTPRoute' else 'Ingress'} "
              f"for {len(paths)} request paths")


# ---------------------------------------------------------------- Ingress
def ingress_paths(doc, who):
    return [(p["path"], p["pathType"], who) for rule in doc["spec"]["rules"]
            if rule.get("host") == host for p in rule["http"]["paths"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ingress_nginx(harbor_ingress):
    """Locations as ingress-nginx writes them for one host, run by nginx."""
    entries = ingress_paths(harbor_ingress, HARBOR) + ingress_paths(ours, OURS)
    regex = any((d["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/use-regex") == "true"
                for d in (harbor_ingress, ours))
    # One location per path; of two Ingresses with the same path the older one (Harbor's) stays.
    seen, locations = set(), []
    for path, path_type, who in entries:
        if path not in seen:
            seen.add(path)
            locations.append((path, path_type, who))
    # ingress-nginx: sorted by path, then (stable) by path length, longest first.
    locations.sort(key=lambda l: l[0], reverse=True)
    locations.sort(key=lambda l: len(l[0]), reverse=True)
    blocks = []
    for path, path_type, who in locations:
        if regex:
            head = f'location ~* "^{path}"'
        elif path_type == "Exact":
            head = f"location = {path}"
        else:
            head = f"location {path}"
        blocks.append(f'{head} {{ return 200 "{who}"; }}')
    with tempfile.TemporaryDirectory() as prefix:
        port = free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    server_name {host};
    default_type text/plain;
    {chr(10).join('    ' + b for b in blocks)}
  }}
}}
""")
        proc = subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-e", f"{prefix}/error.log",
                                 "-g", "daemon off; master_process off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            answers = {}
            for attempt in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        sys.exit("nginx did not start:\n" + open(f"{prefix}/error.log").read())
                    time.sleep(0.05)
            for path in paths:
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
                try:
                    answers[path] = urllib.request.urlopen(req, timeout=5).read().decode()
                except urllib.error.HTTPError as e:
                    answers[path] = f"status {e.code}"
        finally:
            proc.kill()
            proc.wait()
    return answers.get


def prefix_match(prefix, path):
    """The Ingress API's Prefix: element-wise, a trailing slash ignored."""
    elements = [e for e in prefix.split("/") if e]
    return path.split("/")[1:len(elements) + 1] == elements


def ingress_api(harbor_ingress):
    entries = ingress_paths(harbor_ingress, HARBOR) + ingress_paths(ours, OURS)
    def route(path):
        best = None
        for prefix, path_type, who in entries:
            if path_type == "Prefix" and prefix_match(prefix, path):
                # Longest first; a tie goes to the older Ingress (Harbor's, first in the list).
                if best is None or len(prefix.rstrip("/")) > len(best[0].rstrip("/")):
                    best = (prefix, who)
        return best[1] if best else None
    return route


def traefik_ingress_provider(harbor_ingress):
    # Traefik's Kubernetes Ingress provider: Host(`h`) && PathPrefix(`p`), priority = its length.
    entries = [(f"Host(`{host}`) && PathPrefix(`{p}`)", p, who)
               for p, path_type, who in ingress_paths(harbor_ingress, HARBOR) + ingress_paths(ours, OURS)
               if path_type == "Prefix"]
    def route(path):
        best = None
        for rule, prefix, who in entries:
            if path.startswith(prefix) and (best is None or len(rule) > best[0]):
                best = (len(rule), who)
        return best[1] if best else None
    return route


# ---------------------------------------------------------------- Traefik IngressRoute
def traefik_ingressroute(harbor_ingress):
    harbor_rules = [(len(f"Host(`{host}`) && PathPrefix(`{p}`)"), p, HARBOR)
                    for p, path_type, _ in ingress_paths(harbor_ingress, HARBOR) if path_type == "Prefix"]
    our_rules = []
    for r in ours["spec"]["routes"]:
        m = r["match"]
        regexp = re.search(r"PathRegexp\(`([^`]+)`\)", m)
        prefix = re.search(r"PathPrefix\(`([^`]+)`\)", m)
        methods = re.findall(r"Method\(`([A-Z]+)`\)", m)
        our_rules.append((r["priority"], regexp.group(1) if regexp else None,
                          prefix.group(1) if prefix else None, methods))
    def route(path):
        best = None
        for priority, prefix, who in harbor_rules:
            if path.startswith(prefix) and (best is None or priority > best[0]):
                best = (priority, who)
        for priority, regexp, prefix, methods in our_rules:
            hit = (re.search(regexp, path) if regexp else path.startswith(prefix)) and \
                (not methods or "GET" in methods)
            if hit and (best is None or priority > best[0]):
                best = (priority, OURS)
        return best[1] if best else None
    return route


# ---------------------------------------------------------------- Gateway API
def gateway_api(harbor_route):
    def matches(doc, who):
        if host not in doc["spec"]["hostnames"]:
            return []
        return [(m, who) for rule in doc["spec"]["rules"] for m in rule["matches"]]
    entries = matches(harbor_route, HARBOR) + matches(ours, OURS)
    def key(m):
        # The spec's order: Exact, then the longest PathPrefix, then a method, headers, queries.
        path = m.get("path", {"type": "PathPrefix", "value": "/"})
        return (path["type"] == "Exact", len(path["value"]) if path["type"] == "PathPrefix" else 0,
                "method" in m, len(m.get("headers", [])), len(m.get("queryParams", [])))
    def hit(m, path):
        p = m.get("path", {"type": "PathPrefix", "value": "/"})
        if m.get("method", "GET") != "GET":
            return False
        if p["type"] == "Exact":
            return path == p["value"]
        return prefix_match(p["value"], path)
    def route(path):
        best = None
        for m, who in entries:
            if hit(m, path) and (best is None or key(m) > best[0]):
                best = (key(m), who)
        return best[1] if best else None
    return route


if kind == "Ingress":
    harbor_ingress = harbor("ingress.yaml")
    verdict("ingress-nginx (nginx on loopback)", ingress_nginx(harbor_ingress))
    if scope == "allOfV2":
        verdict("Ingress API longest path", ingress_api(harbor_ingress))
        verdict("Traefik Ingress provider", traefik_ingress_provider(harbor_ingress))
elif kind == "IngressRoute":
    verdict("Traefik IngressRoute", traefik_ingressroute(harbor("ingress.yaml")))
elif scope == "allOfV2":
    verdict("Gateway API precedence", gateway_api(harbor("httproute.yaml")))
else:
    print("    note Gateway API leaves a RegularExpression's rank to each implementation: "
          "nothing to assert (docs/operations.md, \"Checking that the route ranks as intended\")")

for failure in failures:
    print(f"    FAIL {failure}")
sys.exit(1 if failures else 0)
