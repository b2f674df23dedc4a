#!/usr/bin/env python3
"""Behaviour of two builds compared over random configurations, for refactors that
must not change it (issue #31): `scripts/refactor-diff.py OLD NEW [--configs N]
[--served M] [--seed S]`, OLD and NEW being pingora-secgw binaries (build the old one
from a worktree of the base commit).

1. N random gw.yaml + policy files over every security key, header action, named
   policy with `extends`, vhost and route: `check --format json` of both binaries
   (findings, and the predicted grades, which come from the compiled plan) and their
   exit codes and load errors must be equal.
2. M of them that load are served by each binary in turn, in front of one loopback
   upstream whose responses carry headers the policies manage, strip or conflict with;
   72 requests each (4 hosts x 6 paths x plain GET, GET with Origin, preflight), and
   every status, response head and body must be equal (Date and nonce values aside).

Loopback only; exits 1 on the first differences it prints."""
import argparse
import http.client
import http.server
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("old")
ARGS.add_argument("new")
ARGS.add_argument("--configs", type=int, default=2000)
ARGS.add_argument("--served", type=int, default=100)
ARGS.add_argument("--seed", type=int, default=1)
OPTS = ARGS.parse_args()
RNG = random.Random(OPTS.seed)

B = [True, False]
POOLS = {
    "csp_enabled": B,
    "csp_policy": [{"default-src": ["'self'"]}, {"img-src": ["*"], "default-src": None},
                   {"script-src": ["'self'", "'unsafe-inline'"]}, {"script-src": ["*"]},
                   {"object-src": ["'none'"], "frame-ancestors": ["'none'"]},
                   {"style-src": ["http://x.example"], "default-src": ["'none'"]}],
    "csp_use_defaults": B, "csp_report_only": B, "csp_nonce": B, "csp_nonce_styles": B,
    "csp_strict_dynamic": B, "csp_report_collect": B, "csp_report_path": ["/csp-r", "/a/b"],
    "csp_report_uri": ["https://c.example/r", False],
    "csp_report_only_policy": [{"script-src": ["'self'"]}, {"img-src": None, "default-src": ["http:"]}],
    "hsts_enabled": B, "hsts_max_age": [0, 60, 31536000, 63072000],
    "hsts_include_subdomains": B, "hsts_preload": B,
    "xss_protection": B, "xss_mode": ["block", "filter", False],
    "frame_options": ["DENY", "SAMEORIGIN", False], "frame_options_allow_from": ["https://t.example", False],
    "content_type_options": B,
    "referrer_policy": ["no-referrer", "unsafe-url", False, "no-referrer, strict-origin-when-cross-origin"],
    "ssl_redirect": B, "ssl_host": ["app.test", "other.test", "x.elsewhere", False],
    "ssl_port": [8443, False], "ssl_permanent": B, "ssl_redirect_exempt": [["/health"], ["^/x"]],
    "cache_control": ["no-store", False], "clear_site_data": [["cache", "cookies"], ["*"], False],
    "cross_origin_opener_policy": ["same-origin", "unsafe-none", False],
    "cross_origin_embedder_policy": ["require-corp", "credentialless", False],
    "cross_origin_resource_policy": ["same-site", "cross-origin", False],
    "permissions_policy": [{"camera": "'none'"}, {"geolocation": ["'self'", "https://m.example"]}, False],
    "permissions_policy_use_defaults": B,
    "expect_ct": B, "expect_ct_max_age": [60, 86400], "expect_ct_enforce": B,
    "expect_ct_report_uri": ["https://r.example", False],
    "trusted_types": B, "trusted_types_policies": [["default"], ["a", "b"]],
    "hide_server": B, "cors_enabled": B,
    "allowed_origins": [["*"], ["https://a.example"], ["https://*.a.example", "http://b.example:8080"]],
    "allowed_methods": [["GET", "POST"], ["PUT"]], "allowed_headers": [["X-A"], ["Content-Type"]],
    "expose_headers": [["X-B"]], "max_age": [0, 600], "allow_credentials": B,
}
MANAGED = ["Strict-Transport-Security", "X-Frame-Options", "Content-Security-Policy",
           "Referrer-Policy", "X-Content-Type-Options", "Set-Cookie", "X-Custom", "Cache-Control",
           "Permissions-Policy", "Cross-Origin-Opener-Policy"]
VALUES = {"Strict-Transport-Security": ["max-age=60", "bogus"], "X-Frame-Options": ["DENY", "allowall"],
          "Referrer-Policy": ["unsafe-url", "never"], "X-Content-Type-Options": ["nosniff", "sniff"]}


def security():
    keys = RNG.sample(sorted(POOLS), RNG.randint(0, 9))
    s = {k: RNG.choice(POOLS[k]) for k in keys}
    # Mostly valid combinations, so that what is compared is served, not refused.
    if RNG.random() < 0.9:
        if s.get("csp_strict_dynamic") or s.get("csp_nonce_styles") or s.get("csp_nonce"):
            s.update(csp_nonce=True, csp_enabled=True)
        if s.get("cors_enabled") or "allowed_origins" in s:
            s.setdefault("allowed_origins", ["https://a.example"])
            if s["allowed_origins"] == ["*"]:
                s["allow_credentials"] = False
    return s


def headers():
    h = {}
    for action in ["set", "add", "default"]:
        if RNG.random() < 0.3:
            pool = MANAGED if action == "set" or RNG.random() < 0.1 else ["Set-Cookie", "X-Custom", "X-Other"]
            names = RNG.sample(pool, RNG.randint(1, 2))
            h[action] = {n: RNG.choice(VALUES.get(n, ["v1", "v2"])) for n in names}
    if RNG.random() < 0.3:
        h["remove"] = RNG.sample(["X-Powered-By", "Server", "X-Debug-*", "Set-Cookie"], 2)
    if RNG.random() < 0.3:
        h["conflict"] = {RNG.choice(MANAGED + ["*"]): RNG.choice(["override", "keep", "append"])}
    return h


def layer(policies, d):
    if policies and RNG.random() < 0.5:
        d["policy"] = RNG.choice(policies + ["missing"] if RNG.random() < 0.05 else policies)
    if RNG.random() < 0.8:
        d["security"] = security()
    if RNG.random() < 0.5:
        d["headers"] = headers()
    return d


def config():
    names = [f"p{i}" for i in range(RNG.randint(0, 3))]
    pols = {}
    for i, n in enumerate(names):
        d = layer([], {})
        if i and RNG.random() < 0.5:
            d["extends"] = RNG.choice(names[:i])
        pols[n] = d
    listeners = [{"address": "127.0.0.1:1"}]
    gw = {"listeners": listeners}
    if RNG.random() < 0.4:
        gw["trusted_proxies"] = [RNG.choice(["10.0.0.1", "0.0.0.0/0", "192.168.0.0/16"])]
    vhosts = []
    hosts_pool = [["app.test"], ["*.app.test"], ["*"], ["other.test", "www.other.test"]]
    RNG.shuffle(hosts_pool)
    for i in range(RNG.randint(1, 3)):
        v = {"name": f"v{i}", "hosts": hosts_pool[i], "upstreams": ["127.0.0.1:9"]}
        layer(names, v)
        routes = []
        for j in range(RNG.randint(0, 3)):
            kind = RNG.choice(["prefix", "exact", "regex"])
            r = {kind: {"prefix": f"/r{j}", "exact": f"/e{j}", "regex": f"^/x{j}/.*$"}[kind]}
            if RNG.random() < 0.3:
                r = {"prefix": "/"}
            if RNG.random() < 0.3:
                r["name"] = f"route{j}"
            layer(names, r)
            routes.append(r)
        if routes:
            v["routes"] = routes
        if RNG.random() < 0.2:
            v["check_ignore"] = ["SECGW-W021", "SECGW-W008"]
        vhosts.append(v)
    gw["vhosts"] = vhosts
    return gw, pols


def write(d, gw, pols):
    """gw.yaml (JSON is YAML) and its policy file in `d`."""
    if pols:
        os.makedirs(f"{d}/policies", exist_ok=True)
        with open(f"{d}/policies/p.yaml", "w") as f:
            json.dump({"policies": pols}, f)
        gw = dict(gw, policy_files="policies")
    with open(f"{d}/gw.yaml", "w") as f:
        json.dump(gw, f)
    return f"{d}/gw.yaml"


def check(binary, path):
    p = subprocess.run([binary, "check", "-c", path, "--format", "json", "--fail-on", "error"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.replace(binary, "BIN")


class Up(http.server.BaseHTTPRequestHandler):
    """The upstream: an HTML page whose headers the policies manage, strip or meet."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"<html><head><script>1</script><style>a{}</style></head></html>"
        self.send_response(200)
        for k, v in [("Content-Type", "text/html"), ("Server", "up"), ("X-Powered-By", "php"),
                     ("Set-Cookie", "a=b"), ("Content-Security-Policy", "default-src *"),
                     ("X-Frame-Options", "ALLOWALL"), ("Cache-Control", "public"),
                     ("X-Debug-Token", "t"), ("Content-Length", str(len(body)))]:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *a):
        pass


def free():
    """A loopback port free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


REQUESTS = [(m, h, p, o) for h in ["app.test", "www.app.test", "other.test", "x.test"]
            for p in ["/", "/r0/x", "/e1", "/x2/y", "/health", "/csp-r"]
            for m, o in [("GET", None), ("GET", "https://a.example"), ("OPTIONS", "https://a.example")]]


def serve(binary, gw, pols):
    """Every answer to REQUESTS of `binary` serving the configuration, or why it exited."""
    with tempfile.TemporaryDirectory() as d:
        port = free()
        conf = json.loads(json.dumps(gw))
        conf["listeners"] = [{"address": f"127.0.0.1:{port}"}]
        for v in conf["vhosts"]:
            v["upstreams"] = [f"127.0.0.1:{UP}"]
            for r in v.get("routes", []):
                r.pop("upstreams", None)
        if pols:
            os.makedirs(f"{d}/policies")
            json.dump({"policies": pols}, open(f"{d}/policies/p.yaml", "w"))
            conf["policy_files"] = "policies"
        # JSON is YAML: the Pingora keys first, then the gateway's object spread at the top.
        text = f"pid_file: {d}/gw.pid\nupgrade_sock: {d}/up.sock\nthreads: 1\n" + "\n".join(
            f"{json.dumps(k)}: {json.dumps(v)}" for k, v in conf.items())
        open(f"{d}/gw.yaml", "w").write(text)
        log = open(f"{d}/stderr", "w+")
        p = subprocess.Popen([binary, "-c", f"{d}/gw.yaml"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if p.poll() is not None:
                        log.seek(0)
                        return ["exited", log.read()[-300:]]
                    time.sleep(0.05)
            out = []
            for m, h, path, o in REQUESTS:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                hdrs = {"Host": h}
                if o:
                    hdrs["Origin"] = o
                if m == "OPTIONS":
                    hdrs["Access-Control-Request-Method"] = "PUT"
                c.request(m, path, headers=hdrs)
                r = c.getresponse()
                body = r.read()
                heads = sorted((k.lower(), re.sub(r"nonce-[A-Za-z0-9+/=_-]+", "nonce-N", v))
                               for k, v in r.getheaders() if k.lower() != "date")
                body = re.sub(rb'nonce="[^"]*"', b'nonce="N"', body)
                out.append((m, h, path, o, r.status, heads, body.decode("latin-1")))
                c.close()
            return out
        finally:
            log.close()
            p.kill()
            p.wait()


def main():
    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Up)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    global UP
    UP = up.server_address[1]
    checked = loadable = served = 0
    while checked < OPTS.configs or served < OPTS.served:
        gw, pols = config()
        with tempfile.TemporaryDirectory() as d:
            path = write(d, gw, pols)
            a, b = check(OPTS.old, path), check(OPTS.new, path)
        if a != b:
            sys.exit(f"check differs on\n{json.dumps(gw)}\n{json.dumps(pols)}\nold {a}\nnew {b}")
        checked += 1
        loadable += a[0] != 2
        if a[0] != 2 and served < OPTS.served:
            old, new = serve(OPTS.old, gw, pols), serve(OPTS.new, gw, pols)
            if old != new:
                x, y = next(((x, y) for x, y in zip(old, new) if x != y), (old, new))
                sys.exit(f"served differently:\n{json.dumps(gw)}\n{json.dumps(pols)}\nold {x}\nnew {y}")
            served += 1
    print(f"check: {checked} configurations alike ({loadable} load, {checked - loadable} refused "
          f"with the same errors); served: {served} alike, {served * len(REQUESTS)} responses")


main()
