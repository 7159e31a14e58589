#!/usr/bin/env python3
"""tsan_storm.py: runs a ThreadSanitizer build of appgw (scripts/build.sh tsan) with --workers=2
under load for a bounded time and fails on any TSan report or an unclean exit.

While it runs: two keep-alive clients and one new-connection client send GETs and POSTs to a
plain, a Basic and an OAuth API (authmock's token endpoint, tokens living 4 s, so the broker
renews them while workers read them); the manifests are rewritten every 50-100 ms (in place and
by rename, alternating); the admin port is scraped (/metrics, GET and PUT /v1/loglevel,
/v1/ready). Then SIGTERM: the exit status must be 0 and TSan must have written nothing.

Debian's libuv closes descriptors with a raw syscall(SYS_close) TSan cannot see; the gateway
runs with close_shim.c preloaded (build-tsan/libappgw_tsan_shim.so), which routes that call
through close(). --no-shim leaves it out (to see what TSan reports without it).

  tests/tsan/tsan_storm.py [--bin build-tsan/appgw] [--shim build-tsan/libappgw_tsan_shim.so]
                           [--seconds 20] [--no-shim] [--keep]
"""
import argparse
import glob
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("APPGW_SANITIZE", "1")  # wider start-up and stop bounds in helpers
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

import auth_helpers as A  # noqa: E402
import helpers as H  # noqa: E402

REALM = "tsan"
CLIENT_ID, CLIENT_SECRET = "tsan-client", "tsan-secret-value"


def manifests(upstream, mock, version):
    e, svc = H.entry, H.service
    app = H.application("tsan", [
        svc("Plain", [e(upstream.url("/plain-%s" % version))]),
        svc("Basic", [e(upstream.url("/basic"), creds=A.creds("Basic", "tsan-basic"))]),
        svc("OAuth", [e(mock.url(REALM, "api"), creds=A.creds("OAuth", "tsan-oauth", mock.url(REALM, "token")))]),
    ] + ([svc("Extra", [e(upstream.url("/extra"))])] if version == "b" else []))
    secrets = [A.basic_secret("tsan-basic", "user", "pass-%s" % version),
               A.oauth_secret("tsan-oauth", CLIENT_ID, CLIENT_SECRET)]
    return "".join("---\n" + H.to_yaml(d) for d in [app] + secrets)


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, key):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + 1


def run(args):
    work = tempfile.mkdtemp(prefix="appgw-tsan-")
    cfg = os.path.join(work, "config")
    os.makedirs(cfg)
    upstream = mock = gw = None
    failures = []
    try:
        upstream = H.Upstream(work)
        mock = A.AuthMock(work)
        mock.configure(REALM, api_auth="bearer", expires_in=4)
        main = os.path.join(cfg, "tsan.yaml")
        H.write_atomic(main, manifests(upstream, mock, "a"))
        tsan_log = os.path.join(work, "tsan")
        env = {"TSAN_OPTIONS": "halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=" + tsan_log}
        if not args.no_shim:
            env["LD_PRELOAD"] = os.path.abspath(args.shim)
        gw = H.Gateway(cfg, os.path.join(work, "appgw.stderr"), workers=2, log_level="info", env=env,
                       flags={"proxyTimeout": 20})
        print("appgw pid %d, workdir %s, shim %s" % (gw.pid, work, "off" if args.no_shim else env["LD_PRELOAD"]))
        counts = Counts()
        t_end = time.monotonic() + args.seconds
        stop = threading.Event()

        def running():
            return time.monotonic() < t_end and not stop.is_set() and gw.alive()

        def record(kind, fn):
            try:
                r = fn()
                counts.add("%s %d" % (kind, r.status))
            except (OSError, EOFError, ValueError) as ex:
                counts.add("%s error %s" % (kind, type(ex).__name__))

        def keepalive_client(seed):
            rnd = random.Random(seed)
            c = None
            while running():
                try:
                    if c is None:
                        c = H.RawConn(gw.proxy, timeout=30)
                    kind = rnd.choice(("plain", "basic", "oauth"))
                    if rnd.random() < 0.5:
                        r = c.request("GET", "/tsan/%s/get" % kind)
                    else:
                        r = c.request("POST", "/tsan/%s/post" % kind, [("Content-Type", "text/plain")],
                                      b"x" * rnd.randint(0, 64 * 1024))
                    counts.add("keepalive %s %d" % (kind, r.status))
                except (OSError, EOFError, ValueError) as ex:
                    counts.add("keepalive error %s" % type(ex).__name__)
                    if c:
                        c.close()
                    c = None
            if c:
                c.close()

        def new_connection_client():
            rnd = random.Random(3)
            while running():
                kind = rnd.choice(("plain", "basic", "oauth"))
                if rnd.random() < 0.5:
                    record("newconn " + kind, lambda: H.http(gw.proxy, "GET", "/tsan/%s/new" % kind, timeout=30))
                else:
                    record("newconn " + kind, lambda: H.http(gw.proxy, "POST", "/tsan/%s/new" % kind,
                                                             [("Content-Type", "text/plain")], b"y" * 1000,
                                                             timeout=30))

        def reloader():
            rnd = random.Random(4)
            i = 0
            while running():
                i += 1
                text = manifests(upstream, mock, "b" if i % 2 else "a")
                if i % 2:
                    with open(main, "w") as f:  # in place
                        f.write(text)
                else:
                    H.write_atomic(main, text)
                counts.add("reloads")
                stop.wait(rnd.uniform(0.05, 0.1))

        def scraper():
            i = 0
            while running():
                i += 1
                record("admin metrics", lambda: H.http(gw.admin, "GET", "/metrics", timeout=30))
                record("admin loglevel get", lambda: H.http(gw.admin, "GET", "/v1/loglevel", timeout=30))
                level = ("debug", "info", "warn")[i % 3]
                record("admin loglevel put", lambda: H.http(gw.admin, "PUT", "/v1/loglevel",
                                                            [("Content-Type", "application/json")],
                                                            b'{"level": "%s"}' % level.encode(), timeout=30))
                record("admin ready", lambda: H.http(gw.admin, "GET", "/v1/ready", timeout=30))
                stop.wait(0.02)

        threads = [threading.Thread(target=keepalive_client, args=(s,), daemon=True) for s in (1, 2)]
        threads += [threading.Thread(target=f, daemon=True) for f in (new_connection_client, reloader, scraper)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 60)
        stop.set()
        if any(t.is_alive() for t in threads):
            failures.append("a load thread did not finish")
        gen = None
        if gw.alive():
            try:
                gen = H.metric(gw.admin, "appgw_config_generation")
            except (OSError, EOFError, ValueError, KeyError, AssertionError):
                pass
        alive_at_end = gw.alive()
        tokens = mock.counts(REALM)["token"]
        rc = gw.stop()
        print("requests (kind status: count):")
        for k in sorted(counts.c):
            print("  %-40s %d" % (k, counts.c[k]))
        print("config generation at the end: %s; token requests %d; appgw exit status %s" % (gen, tokens, rc))
        reports = sorted(glob.glob(tsan_log + "*"))
        for p in reports:
            with open(p, errors="replace") as f:
                text = f.read()
            print("==== TSan report %s (%d lines; first 120)" % (p, text.count("\n")))
            print("\n".join(text.splitlines()[:120]))
        if reports:
            failures.append("ThreadSanitizer reported (%d report file(s))" % len(reports))
        stderr = gw.log_text()
        if "ThreadSanitizer" in stderr:
            failures.append("ThreadSanitizer output in appgw's stderr")
            print("\n".join(ln for ln in stderr.splitlines() if "ThreadSanitizer" in ln)[:4000])
        if not alive_at_end:
            failures.append("appgw died during the run")
        if rc != 0:
            failures.append("appgw exit status %r (want 0)" % rc)
        for kind in ("plain", "basic", "oauth"):
            ok = sum(v for k, v in counts.c.items() if k.endswith(" %s 200" % kind) or k == "newconn %s 200" % kind)
            if ok < 20:
                failures.append("only %d successful %s requests: the load did not run" % (ok, kind))
        if tokens < 2 and alive_at_end:
            failures.append("the OAuth token was never renewed (%d token requests)" % tokens)
        if counts.c.get("reloads", 0) < 50 or (gen is not None and gen < 20):
            failures.append("too few reloads (%s rewrites, generation %s)" % (counts.c.get("reloads"), gen))
        if failures:
            print("appgw stderr tail:\n" + gw.log_tail(30))
    finally:
        if gw is not None:
            gw.stop()
        if mock is not None:
            mock.stop()
        if upstream is not None:
            upstream.stop()
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("TSAN STORM FAILED: " + "; ".join(failures) + " (workdir %s)" % work)
        return 1
    print("TSAN STORM OK: no ThreadSanitizer report, clean exit")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build-tsan", "appgw"))
    ap.add_argument("--shim", default=os.path.join(REPO, "build-tsan", "libappgw_tsan_shim.so"))
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--no-shim", action="store_true", help="run without the close() shim")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    os.environ["APPGW_BIN"] = os.path.abspath(args.bin)
    if not args.no_shim and not os.path.isfile(args.shim):
        print("no shim at %s (scripts/build.sh tsan builds it)" % args.shim)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
