"""Egress proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, Go's ProxyFromEnvironment rules) through a
real forward proxy: squid, started here on 127.0.0.1 with a configuration written here.

Loopback targets never go through a proxy (Go's rule), so the proxied targets are named
gw-e2e-upstream.invalid (and other-name.invalid, blocked.invalid): names that resolve nowhere
except in squid, whose hosts_file maps them to 127.0.0.1. A request that reaches such a target
went through squid: the gateway never resolves a proxied host itself. squid requires Basic proxy
authentication (pxuser / PX_PASS) and refuses CONNECT to blocked.invalid with 403.

The HTTPS target is a small TLS server in this process with a certificate for
gw-e2e-upstream.invalid from the test CA (verified by the gateway through SSL_CERT_FILE); it
records the SNI it saw, asks for an optional client certificate, and serves a token endpoint."""
import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import auth_helpers as A
import helpers as H

SQUID_BIN = shutil.which("squid") or "/usr/sbin/squid"
NAME = "gw-e2e-upstream.invalid"
PX_USER = "pxuser"
PX_PASS = "px-SECRET-pass-5521"
PX_SECRETS = [PX_PASS, base64.b64encode(("%s:%s" % (PX_USER, PX_PASS)).encode()).decode()]
TOKEN = "tok-via-proxy-8830"

pytestmark = pytest.mark.skipif(not os.path.exists(SQUID_BIN), reason="squid is not installed (scripts/setup.sh)")


# --------------------------------------------------------------------------- squid

AUTH_HELPER = r'''
import sys
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ")
    ok = len(parts) == 2 and parts[0] == %r and parts[1] == %r
    sys.stdout.write("OK\n" if ok else "ERR\n")
    sys.stdout.flush()
''' % (PX_USER, PX_PASS)


class Squid:
    """squid -N (no daemon) with its own config, hosts file and logs in a world-readable temp
    directory (squid started as root runs as the 'proxy' user)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="appgw-e2e-squid-")
        os.chmod(self.dir, 0o777)
        self.port = H.free_port()
        with open(os.path.join(self.dir, "auth.py"), "w") as f:
            f.write(AUTH_HELPER)
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("127.0.0.1 %s other-name.invalid blocked.invalid\n" % NAME)
        self.access_log = os.path.join(self.dir, "access.log")
        conf = """
http_port 127.0.0.1:%(port)d
pid_filename %(d)s/squid.pid
cache_log %(d)s/cache.log
access_log stdio:%(d)s/access.log
cache deny all
hosts_file %(d)s/hosts
dns_nameservers 127.0.0.1
netdb_filename none
pinger_enable off
coredump_dir %(d)s
shutdown_lifetime 0 seconds
strip_query_terms off
auth_param basic program %(py)s %(d)s/auth.py
auth_param basic children 2 startup=1
auth_param basic realm appgw-e2e
acl authed proxy_auth REQUIRED
acl blocked dstdomain blocked.invalid
http_access deny blocked
http_access allow authed
http_access deny all
""" % dict(port=self.port, d=self.dir, py="/usr/bin/python3")
        self.conf = os.path.join(self.dir, "squid.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.out = open(os.path.join(self.dir, "squid.out"), "wb")
        self.proc = subprocess.Popen([SQUID_BIN, "-N", "-f", self.conf], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if not H.wait_port(self.port, 20, self.proc):
            err = self.text("cache.log") + self.text("squid.out")
            self.stop()
            raise RuntimeError("squid did not start:\n" + err[-3000:])

    def text(self, name):
        try:
            with open(os.path.join(self.dir, name), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def access(self):
        return self.text("access.log")

    def url(self, creds=True):
        return "http://%s127.0.0.1:%d" % ("%s:%s@" % (PX_USER, PX_PASS) if creds else "", self.port)

    def stop(self):
        H.stop_process(self.proc, timeout=10)
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def squid():
    s = Squid()
    yield s
    s.stop()


# --------------------------------------------------------------------------- the HTTPS target

class TlsTarget:
    """A threaded HTTPS server on 127.0.0.1 with a certificate for NAME from the test CA:
    POST .../token answers an OAuth token, anything else a JSON echo of the request with the SNI
    and the client certificate's subject CN."""

    def __init__(self, workdir, certs, auth_certs):
        d = os.path.dirname(certs["ca.pem"])
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        H._openssl(["req"] + key + ["-keyout", "t.key", "-out", "t.csr", "-subj", "/CN=" + NAME], workdir)
        with open(os.path.join(workdir, "t.ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % NAME)
        H._openssl(["x509", "-req", "-in", "t.csr", "-CA", certs["ca.pem"], "-CAkey", os.path.join(d, "ca.key"),
                    "-set_serial", "4242", "-out", "t.pem", "-days", "3", "-extfile", "t.ext"], workdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(workdir, "t.pem"), os.path.join(workdir, "t.key"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(auth_certs["client-ca.pem"])
        self.snis = []
        ctx.sni_callback = lambda sock, name, c: self.snis.append(name)
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, doc):
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                if self.command == "POST" and self.path.split("?")[0].endswith("/token"):
                    target.token_requests += 1
                    self._send({"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600})
                    return
                peer = self.request.getpeercert() or {}
                cn = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
                self._send({"path": self.path, "sni": target.snis[-1] if target.snis else None,
                            "client_cn": cn[0] if cn else None,
                            "headers": [[k, v] for k, v in self.headers.items()]})

            do_GET = do_POST = _handle

        self.token_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory, certs, auth_certs):
    t = TlsTarget(str(tmp_path_factory.mktemp("tlstarget")), certs, auth_certs)
    yield t
    t.stop()


# --------------------------------------------------------------------------- gateways

def _apps(upstream, tls, mock, closed):
    e, svc = H.entry, H.service
    T = "https://%s:%d" % (NAME, tls.port)
    return [H.application("eg", [
        svc("Plain", [e("http://%s:%d/base" % (NAME, upstream.port))]),
        svc("Tls", [e(T + "/tls")]),
        svc("Tls Wrong Name", [e("https://other-name.invalid:%d/x" % tls.port)]),
        svc("Blocked", [e("https://blocked.invalid:%d/x" % tls.port)]),
        svc("Tls Closed", [e("https://%s:%d/x" % (NAME, closed))]),
        svc("Loopback", [e("http://127.0.0.1:%d/loop" % upstream.port)]),
        svc("No Proxy", [e("http://a.direct.invalid:%d/x" % upstream.port)]),
        svc("OAuth Tls", [e(T + "/api", creds=A.creds("OAuth", "eg-oauth-tls", T + "/oauth/token"))]),
        svc("OAuth Plain", [e(mock.url("eg-plain", "api").replace("127.0.0.1", NAME),
                              creds=A.creds("OAuth", "eg-oauth-plain",
                                            mock.url("eg-plain", "token").replace("127.0.0.1", NAME)))]),
        svc("Cert", [e(T + "/cert", creds=A.creds("CertificateGen", "eg-cert"))]),
    ])]


def _secrets(auth_certs):
    with open(auth_certs["client.pem"]) as f:
        crt = f.read()
    with open(auth_certs["client.key"]) as f:
        key = f.read()
    return [A.oauth_secret("eg-oauth-tls", "eg-client", "eg-SECRET-1"),
            A.oauth_secret("eg-oauth-plain", "mock-client-7", "mock-SECRET-oauth-61f0c2"),
            A.cert_secret("eg-cert", crt, key)]


def _start(workdir, certs, apps, secrets, env, wait=True):
    cfg = os.path.join(workdir, "config")
    os.makedirs(cfg, exist_ok=True)
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), apps)
    H.write_yaml_docs(os.path.join(cfg, "secrets.yaml"), secrets)
    full = {"SSL_CERT_FILE": certs["ca.pem"], "HTTP_PROXY": "", "HTTPS_PROXY": "", "NO_PROXY": "",
            "http_proxy": "", "https_proxy": "", "no_proxy": ""}
    full.update(env)
    return H.Gateway(cfg, os.path.join(workdir, "appgw.stderr"), env=full, wait=wait)


def _close(gw):
    rc = gw.stop()
    reports = gw.sanitizer_reports()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])
    assert rc == 0, "gateway exited with %r; tail:\n%s" % (rc, gw.log_tail())
    text = gw.log_text()
    for s in PX_SECRETS:
        assert s not in text, "proxy credentials in the gateway log"


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, auth_certs, squid, upstream, tls_target, authmock, closed_port):
    g = _start(str(tmp_path_factory.mktemp("egress-gw")), certs, _apps(upstream, tls_target, authmock, closed_port),
               _secrets(auth_certs),
               {"HTTP_PROXY": squid.url(), "https_proxy": squid.url(), "no_proxy": "other.example, .direct.invalid"})
    yield g
    _close(g)


def _json(r):
    assert r.status == 200, r
    return json.loads(r.body)


# --------------------------------------------------------------------------- tests

def test_start_logs_the_proxy_without_credentials(gw, squid):
    line = [ln for ln in gw.log_text().splitlines() if "egress proxy in use" in ln]
    assert line, gw.log_tail()
    assert "http://127.0.0.1:%d" % squid.port in line[0], line[0]
    assert PX_USER not in line[0] and PX_PASS not in line[0], line[0]


def test_http_target_through_the_proxy_in_absolute_form(gw, squid, upstream):
    """The upstream got the request from squid (Via), squid got it in absolute form with our
    credentials (its access log names the user); keep-alive towards the proxy is kept."""
    before = H.metric(gw.admin, "appgw_upstream_connects_total")
    with H.RawConn(gw.proxy) as c:
        for i in range(6):
            r = c.request("GET", "/eg/plain/x%d?q=%d" % (i, i))
            doc = _json(r)
            assert doc["target"] == "/base/x%d?q=%d" % (i, i), doc
            hdrs = {k.lower(): v for k, v in doc["headers"]}
            assert "squid" in hdrs.get("via", ""), doc
            assert hdrs.get("host") == "%s:%d" % (NAME, upstream.port), doc
            assert "proxy-authorization" not in hdrs, doc
    assert H.metric(gw.admin, "appgw_upstream_connects_total") - before <= 2
    want = "GET http://%s:%d/base/x5?q=5 %s" % (NAME, upstream.port, PX_USER)
    H.wait_for(lambda: want in squid.access(), 10)
    assert want in squid.access(), squid.access()[-2000:]


def test_https_target_through_a_connect_tunnel(gw, squid, tls_target):
    """TLS to the target inside the tunnel: SNI is the target's name, its certificate is
    verified against the test CA; the pool keeps the tunnelled connections."""
    before = H.metric(gw.admin, "appgw_upstream_connects_total")
    for i in range(6):
        doc = _json(H.get(gw.proxy, "/eg/tls/t%d" % i))
        assert doc["path"] == "/tls/t%d" % i, doc
        assert doc["sni"] == NAME, doc
    assert H.metric(gw.admin, "appgw_upstream_connects_total") - before <= 2


def test_https_verification_applies_through_the_tunnel(gw, squid):
    """other-name.invalid reaches the same server through squid, but its certificate names
    NAME only: the handshake fails verification and the request gets 502."""
    r = H.get(gw.proxy, "/eg/tls-wrong-name/x")
    assert r.status == 502, r
    H.wait_for(lambda: "upstream TLS handshake failed" in gw.log_text(), 5)
    assert "upstream TLS handshake failed" in gw.log_text()


def test_client_certificate_through_the_tunnel(gw, tls_target):
    doc = _json(H.get(gw.proxy, "/eg/cert/c"))
    assert doc["client_cn"] == "appgw-e2e-client", doc
    assert doc["sni"] == NAME, doc


def test_connect_refused_by_the_proxy_is_502_with_the_reason(gw, squid):
    r = H.get(gw.proxy, "/eg/blocked/x")
    assert r.status == 502, r
    H.wait_for(lambda: "proxy refused CONNECT: 403" in gw.log_text(), 5)
    assert "proxy refused CONNECT: 403" in gw.log_text(), gw.log_tail()


def test_target_unreachable_behind_the_proxy_is_502(gw, squid):
    r = H.get(gw.proxy, "/eg/tls-closed/x")
    assert r.status == 502, r
    H.wait_for(lambda: "proxy refused CONNECT: 503" in gw.log_text(), 5)
    assert "proxy refused CONNECT: 503" in gw.log_text(), gw.log_tail()


def test_loopback_and_no_proxy_targets_go_direct(gw, squid, upstream):
    doc = _json(H.get(gw.proxy, "/eg/loopback/l1"))
    assert doc["target"] == "/loop/l1", doc
    assert not any(k.lower() == "via" for k, _ in doc["headers"]), doc
    # a.direct.invalid matches ".direct.invalid": the gateway resolves it itself, and fails
    r = H.get(gw.proxy, "/eg/no-proxy/x")
    assert r.status == 502, r
    H.wait_for(lambda: "a.direct.invalid" in gw.log_text(), 5)
    assert any("DNS lookup failed" in ln and "a.direct.invalid" in ln for ln in gw.log_text().splitlines())
    # squid never saw either
    H.get(gw.proxy, "/eg/plain/marker")  # a proxied request after them, to flush its log line
    H.wait_for(lambda: "/base/marker" in squid.access(), 10)
    assert "/base/marker" in squid.access()
    assert "direct.invalid" not in squid.access() and "/loop/" not in squid.access()


def test_token_fetch_through_the_proxy_tunnel(gw, squid, tls_target):
    """The OAuth token request (libcurl) goes through CONNECT with the proxy credentials."""
    before = tls_target.token_requests
    doc = _json(H.get(gw.proxy, "/eg/oauth-tls/o1"))
    hdrs = {k.lower(): v for k, v in doc["headers"]}
    assert hdrs.get("authorization") == "Bearer " + TOKEN, doc
    assert tls_target.token_requests == before + 1


def test_token_fetch_through_the_proxy_plain(gw, squid, authmock):
    r = H.get(gw.proxy, "/eg/oauth-plain/p1")
    assert r.status == 200, r
    assert authmock.counts("eg-plain")["token"] == 1, authmock.state("eg-plain")
    want = "POST http://%s:%d/eg-plain/token %s" % (NAME, authmock.port, PX_USER)
    H.wait_for(lambda: want in squid.access(), 10)
    assert want in squid.access(), squid.access()[-2000:]


def test_proxy_without_credentials_gets_407_and_502(tmp_path_factory, certs, auth_certs, squid, upstream,
                                                    tls_target, authmock, closed_port):
    g = _start(str(tmp_path_factory.mktemp("egress-noauth")), certs,
               _apps(upstream, tls_target, authmock, closed_port), _secrets(auth_certs),
               {"HTTPS_PROXY": squid.url(creds=False)})
    try:
        r = H.get(g.proxy, "/eg/tls/x")
        assert r.status == 502, r
        H.wait_for(lambda: "proxy refused CONNECT: 407" in g.log_text(), 5)
        assert "proxy refused CONNECT: 407" in g.log_text(), g.log_tail()
        # the token fetch fails the same way (502, as an unreachable token endpoint)
        r = H.get(g.proxy, "/eg/oauth-tls/x")
        assert r.status == 502, r
    finally:
        _close(g)


def test_unreachable_proxy_is_502_with_the_reason(tmp_path_factory, certs, auth_certs, upstream, tls_target,
                                                  authmock, closed_port):
    g = _start(str(tmp_path_factory.mktemp("egress-closed")), certs,
               _apps(upstream, tls_target, authmock, closed_port), _secrets(auth_certs),
               {"HTTPS_PROXY": "127.0.0.1:%d" % closed_port})
    try:
        r = H.get(g.proxy, "/eg/tls/x")
        assert r.status == 502, r
        want = "cannot reach proxy http://127.0.0.1:%d" % closed_port
        H.wait_for(lambda: want in g.log_text(), 5)
        assert want in g.log_text(), g.log_tail()
    finally:
        _close(g)


@pytest.mark.parametrize("var,value,why", [
    ("HTTPS_PROXY", "socks5://u:%s@127.0.0.1:1080" % PX_PASS, "unsupported proxy scheme"),
    ("http_proxy", "http://u:%s@:3128" % PX_PASS, "invalid or missing proxy host"),
])
def test_bad_proxy_url_stops_the_start(tmp_path_factory, certs, var, value, why):
    g = _start(str(tmp_path_factory.mktemp("egress-bad")), certs, [], [], {var: value}, wait=False)
    try:
        rc = g.proc.wait(timeout=10 * H.SLOW)
    finally:
        g.stop()
    assert rc == 1, rc
    text = g.log_text()
    assert "invalid egress proxy configuration" in text and why in text and var in text, text
    assert PX_PASS not in text, text


# --------------------------------------------------------------------------- a misbehaving proxy

class FakeProxy:
    """A raw TCP 'proxy' on 127.0.0.1 that reads one request head per connection, keeps it, and
    answers with self.answer (bytes, or None: close at once; "hang": say nothing)."""

    def __init__(self):
        import socket
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.answer = None
        self.heads = []
        self.conns = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(20)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                b = c.recv(4096)
                if not b:
                    return
                data += b
            self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
            if self.answer == "hang":
                self.stopped.wait(20)
                return
            if self.answer is not None:
                c.sendall(self.answer)
        except OSError:
            pass
        finally:
            if self.answer != "hang":
                try:
                    c.close()
                except OSError:
                    pass

    def stop(self):
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(5)


@pytest.fixture(scope="module")
def fake_proxy():
    p = FakeProxy()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def fake_gw(tmp_path_factory, certs, auth_certs, fake_proxy, upstream, tls_target, authmock, closed_port):
    workdir = str(tmp_path_factory.mktemp("egress-fake"))
    cfg = os.path.join(workdir, "config")
    os.makedirs(cfg, exist_ok=True)
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), _apps(upstream, tls_target, authmock, closed_port))
    H.write_yaml_docs(os.path.join(cfg, "secrets.yaml"), _secrets(auth_certs))
    env = {"SSL_CERT_FILE": certs["ca.pem"], "HTTP_PROXY": "", "NO_PROXY": "", "http_proxy": "", "no_proxy": "",
           "HTTPS_PROXY": "http://%s:%s@127.0.0.1:%d" % (PX_USER, PX_PASS, fake_proxy.port), "https_proxy": ""}
    g = H.Gateway(cfg, os.path.join(workdir, "appgw.stderr"), env=env, flags={"proxyTimeout": 2})
    yield g
    _close(g)


def test_connect_request_bytes(fake_gw, fake_proxy, tls_target):
    fake_proxy.answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    n = len(fake_proxy.heads)
    r = H.get(fake_gw.proxy, "/eg/tls/x")
    assert r.status == 502, r
    head = fake_proxy.heads[n]
    auth = base64.b64encode(("%s:%s" % (PX_USER, PX_PASS)).encode()).decode()
    assert head.split("\r\n") == ["CONNECT %s:%d HTTP/1.1" % (NAME, tls_target.port),
                                  "Host: %s:%d" % (NAME, tls_target.port),
                                  "Proxy-Authorization: Basic " + auth], head
    H.wait_for(lambda: "proxy refused CONNECT: 407 Proxy Authentication Required" in fake_gw.log_text(), 5)
    assert "proxy refused CONNECT: 407 Proxy Authentication Required" in fake_gw.log_text()


@pytest.mark.parametrize("answer,reason", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed CONNECT response"),
    (b"HTTP/1.1 200 OK\r\n\r\nEARLY", "unexpected bytes after the CONNECT response"),
    (None, "closed the connection before answering CONNECT"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20000, "CONNECT response head too large"),
])
def test_bad_connect_answers_are_502_with_the_reason(fake_gw, fake_proxy, answer, reason):
    fake_proxy.answer = answer
    r = H.get(fake_gw.proxy, "/eg/tls/x")
    assert r.status == 502, r
    H.wait_for(lambda: reason in fake_gw.log_text(), 5)
    assert reason in fake_gw.log_text(), fake_gw.log_tail()


def test_silent_proxy_is_bounded_by_proxy_timeout(fake_gw, fake_proxy):
    fake_proxy.answer = "hang"
    r = H.get(fake_gw.proxy, "/eg/tls/x", timeout=15)
    assert r.status == 504, r


# --------------------------------------------------------------------------- Kubernetes API

def test_kubernetes_api_through_the_proxy_tunnel(tmp_path, squid, certs, auth_certs, upstream):
    """The Kubernetes source (list + watch through libcurl) reaches an API server whose name
    only squid can resolve: readiness and routing prove the tunnel; squid logs the CONNECT when
    the gateway stops."""
    import kube_helpers as K
    kdir = os.path.join(str(tmp_path), "kubeapi")
    os.makedirs(kdir)
    kube = K.KubeAPI(kdir, certs, auth_certs)
    try:
        kube.apply(K.echo_app("kp", upstream))
        kc = os.path.join(str(tmp_path), "kubeconfig")
        K.write_kubeconfig(kc, "https://%s:%d" % (NAME, kube.https), insecure=True, token=K.TOKEN_A)
        gw = K.start_gateway(os.path.join(str(tmp_path), "gw"), flags={"kubeConfig": kc},
                             env={"HTTPS_PROXY": squid.url(), "NO_PROXY": "", "no_proxy": ""})
        try:
            gw.wait_ready()
            r, _ = K.until(K.path_is(gw.proxy, "/kp/echo/x", "/kp/x"), 10 * H.SLOW)
            assert r, gw.log_tail()
        finally:
            gw.close(extra_secrets=PX_SECRETS)
        want = "CONNECT %s:%d %s" % (NAME, kube.https, PX_USER)
        H.wait_for(lambda: want in squid.access(), 10)
        assert want in squid.access(), squid.access()[-2000:]
    finally:
        kube.stop()
