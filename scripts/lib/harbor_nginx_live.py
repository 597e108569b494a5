"""harbor-helm's bundled nginx after the post-renderer, live on loopback; run by
helm/referrers-sidecar/harbor-nginx/check.sh for each variant.

    harbor_nginx_live.py FIXTURE POST_RENDER SIDECAR_BIN NGINX WORK_DIR

FIXTURE is harbor-helm's nginx ConfigMap as it renders it (tests/fixtures/harbor-helm); its
nginx.conf, post-rendered, runs with only its addresses and paths moved to loopback and a temp
prefix: Harbor's core and portal are stand-ins that echo the request target, the sidecar is the
real binary. Proves, for the HTTP variant and the TLS one (internal TLS to core too):
  - referrers requests reach the sidecar; every other /v2/ request, `/v2/<p>/referrers/x/
    manifests/latest` included, and Harbor's other paths reach core with the target unchanged;
  - with the sidecar stopped, and with its name unresolvable, referrers requests reach core
    (nginx starts either way);
  - /referrers-sidecar/v1/ reaches the sidecar only with --operator-api (else Harbor's portal).
"""

import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import yaml

fixture, post_render, sidecar_bin, nginx_bin, work = sys.argv[1:6]
os.makedirs(work, exist_ok=True)
HOST = "harbor.example.com"
DIGEST = "sha256:" + "ab" * 32
failures = []


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{proc.args[0]} exited before listening:\n{open(log).read()}")
            time.sleep(0.05)
    sys.exit(f"{proc.args[0]} did not listen on {port}")


# ---------------------------------------------------------------- TLS material
cert, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}",
                "-days", "1", "-keyout", key, "-out", cert], check=True, capture_output=True)


# ---------------------------------------------------------------- Harbor's core and portal
def standin(name, tls):
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, body):
            data = json.dumps({"target": self.path}).encode() if body else b""
            self.send_response(200)
            self.send_header(f"X-{name}", "standin")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(json.dumps({"target": self.path}))))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer(True)

        def do_HEAD(self):
            self.answer(False)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


conf_in = next(d for d in yaml.safe_load_all(open(fixture)) if d)["data"]["nginx.conf"]
tls = "ssl_certificate" in conf_in
core_port, portal_port = standin("Core", tls), standin("Portal", tls)
# The sidecar reaches core over plain HTTP: it only answers requests it refuses by itself here.
core_http_port = standin("Core", False)


# ---------------------------------------------------------------- the sidecar
class Sidecar:
    def __init__(self):
        self.port, self.metrics = free_port(), free_port()
        config = os.path.join(work, "sidecar.yaml")
        with open(config, "w") as f:
            yaml.safe_dump({
                "listen": f"127.0.0.1:{self.port}", "metrics_listen": f"127.0.0.1:{self.metrics}",
                "harbor": {"url": f"http://127.0.0.1:{core_http_port}"},
                "log": {"format": "json", "level": "warn"}}, f)
        self.log = os.path.join(work, "sidecar.log")
        self.proc = subprocess.Popen([sidecar_bin, "--config", config], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"), stdin=subprocess.DEVNULL)
        wait_port(self.port, self.proc, self.log)

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if re.match(rf"{name}(\{{|\s)", line))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- Harbor's nginx, post-rendered
class Nginx:
    count = 0

    def __init__(self, sidecar_url, resolver, operator_api):
        Nginx.count += 1
        self.prefix = os.path.join(work, f"nginx-{Nginx.count}")
        os.makedirs(self.prefix, exist_ok=True)
        args = [post_render, f"--resolver={resolver}", f"--sidecar={sidecar_url}"]
        args += ["--operator-api"] if operator_api else []
        rendered = subprocess.run(args, stdin=open(fixture), capture_output=True, check=True, text=True).stdout
        conf = next(d for d in yaml.safe_load_all(rendered) if d)["data"]["nginx.conf"]
        self.port, redirect_port = free_port(), free_port()
        conf = re.sub(r'server "?harbor-core:\d+"?;', f"server 127.0.0.1:{core_port};", conf)
        conf = re.sub(r'server "?harbor-portal:\d+"?;', f"server 127.0.0.1:{portal_port};", conf)
        conf = re.sub(r"listen \[::\]:\d+( ssl)?;", "", conf)
        conf = conf.replace("listen 8443 ssl;", f"listen 127.0.0.1:{self.port} ssl;")
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{redirect_port if tls else self.port};")
        conf = conf.replace("/tmp/", self.prefix + "/").replace("/etc/nginx/cert/", os.path.dirname(cert) + "/")
        conf = conf.replace("access_log /dev/stdout", f"access_log {self.prefix}/access.log")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        open(self.conf, "w").write(conf)
        self.log = os.path.join(self.prefix, "error.log")
        test = subprocess.run([nginx_bin, "-t", "-q", "-p", self.prefix, "-c", self.conf, "-e", self.log],
                              capture_output=True, text=True)
        if test.returncode:
            sys.exit(f"nginx -t refused the post-rendered configuration:\n{test.stderr}")
        self.proc = subprocess.Popen([nginx_bin, "-p", self.prefix, "-c", self.conf, "-e", self.log,
                                      "-g", "daemon off; master_process off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, self.log)

    def get(self, target):
        scheme = "https" if tls else "http"
        context = ssl._create_unverified_context() if tls else None
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{self.port}{target}", headers={"Host": HOST})
        try:
            resp = urllib.request.urlopen(req, timeout=10, context=context)
            return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def who(response, target):
    """core, portal, or sidecar (with its OCI error code), as the answer shows."""
    status, headers, body = response
    headers = {k.lower(): v for k, v in headers.items()}
    for name in ("core", "portal"):
        if headers.get(f"x-{name}") == "standin":
            echoed = json.loads(body)["target"]
            return name if echoed == target else f"{name} (saw {echoed})"
    try:
        code = json.loads(body)["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        code = f"status {status}"
    return f"sidecar {code}"


def expect(label, nginx, target, want):
    got = who(nginx.get(target), target)
    if got != want:
        failures.append(f"{label}: {target} answered by {got}, expected {want}")


variant = "TLS" if tls else "HTTP"
others = ["/v2/", "/v2/_catalog", "/v2/proxy/nginx/manifests/latest", f"/v2/proxy/nginx/blobs/{DIGEST}",
          "/v2/proxy/referrers/x/manifests/latest", f"/v2/proxy/nginx/referrers/{DIGEST}/more",
          "/v2/proxy/nginx/tags/list?n=10", "/api/v2.0/projects/proxy", "/service/token?service=harbor-registry",
          "/c/login"]
invalid = ["/v2/proxy/nginx/referrers/sha256:1234", "/v2/proxy/library/nginx/referrers/sha256:12?artifactType=x",
           "/v2/proxy/referrers/referrers/sha256:1234"]
closed_udp = free_port(socket.SOCK_DGRAM)
sidecar = Sidecar()
try:
    # A: the sidecar up, no operator API.
    a = Nginx(f"http://127.0.0.1:{sidecar.port}", f"127.0.0.1:{closed_udp}", operator_api=False)
    before = sidecar.metric("harbor_referrers_requests_total")
    for target in invalid:
        expect(f"{variant}, sidecar up", a, target, "sidecar DIGEST_INVALID")
    expect(f"{variant}, sidecar up", a, f"/v2/Proxy/nginx/referrers/{DIGEST}", "sidecar NAME_INVALID")
    if sidecar.metric("harbor_referrers_requests_total") - before != len(invalid) + 1:
        failures.append(f"{variant}: the sidecar did not count each referrers request once")
    for target in others:
        expect(f"{variant}, sidecar up", a, target, "core")
    if sidecar.metric("harbor_referrers_passthrough_requests_total"):
        failures.append(f"{variant}: a request that is not a referrers request went through the sidecar")
    expect(f"{variant}, no --operator-api", a, "/referrers-sidecar/v1/no-such-endpoint", "portal")
    expect(f"{variant}, no --operator-api", a, "/referrers-sidecar/v1/projects/proxy", "portal")
    a.stop()

    # B: --operator-api, then the sidecar stopped.
    b = Nginx(f"http://127.0.0.1:{sidecar.port}", f"127.0.0.1:{closed_udp}", operator_api=True)
    # A path under it that is no endpoint: the sidecar's own OCI error, which neither stand-in sends.
    expect(f"{variant}, --operator-api", b, "/referrers-sidecar/v1/no-such-endpoint", "sidecar NOT_FOUND")
    sidecar.stop()
    for target in invalid + [f"/v2/proxy/nginx/referrers/{DIGEST}?artifactType=x"]:
        expect(f"{variant}, sidecar stopped", b, target, "core")
    expect(f"{variant}, sidecar stopped", b, "/v2/", "core")
    b.stop()

    # C: the sidecar's name does not resolve (no DNS server answers): nginx starts, core answers.
    c = Nginx("http://referrers-sidecar.harbor.svc.cluster.local:8080", f"127.0.0.1:{closed_udp}", operator_api=False)
    for target in invalid[:1] + [f"/v2/proxy/nginx/referrers/{DIGEST}"]:
        expect(f"{variant}, name unresolvable", c, target, "core")
    expect(f"{variant}, name unresolvable", c, "/v2/proxy/nginx/manifests/latest", "core")
    if "referrers-sidecar.harbor.svc.cluster.local could not be resolved" not in open(c.log).read():
        failures.append(f"{variant}: nginx did not log the name it could not resolve")
    c.stop()
finally:
    if sidecar.proc.poll() is None:
        sidecar.stop()

for failure in failures:
    print(f"    FAIL {failure}")
if not failures:
    print(f"    ok   {variant}: referrers to the sidecar, every other request to core (target unchanged), "
          "core when the sidecar is stopped or its name unresolvable, /referrers-sidecar/v1/ only with --operator-api")
sys.exit(1 if failures else 0)
