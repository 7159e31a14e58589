"""Issue 10: HTTP/2 to HTTPS upstreams (ALPN h2, --upstreamHTTP2). Against nginx with http2 on
(its access log names $server_protocol and $connection): requests arrive as HTTP/2.0,
concurrent requests of one worker share one connection, flow control bounds memory for a slow
client, uploads and chunked bodies arrive intact, HEAD/204/304, headers and 5xx -> 502 as over
HTTP/1.1; an mTLS upstream over h2; HTTP/1.1 fallback (server without h2, or the flag off).
Against tests/e2e/h2_server.js (Node's http2): stream resets before/after the head,
REFUSED_STREAM and GOAWAY (resend on a pooled session, else 502), and a WebSocket upgrade to an
h2-capable server, which goes over HTTP/1.1."""
import base64
import concurrent.futures
import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

import auth_helpers as A
import helpers as H
import upstream as U

BIG = 16 * 1024 * 1024
UPLOAD = 8 * 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


class H2Nginx:
    """nginx (master + 1 worker) over HTTPS: `h2` with http2, `h1` the same server without it,
    `mtls` with http2 and ssl_verify_client on. Access log: protocol, connection, request."""

    def __init__(self, workdir, certs, auth_certs, upstream_port):
        self.dir = workdir
        self.h2, self.h1, self.mtls = H.free_ports(3)
        files = os.path.join(workdir, "files")
        os.makedirs(files, exist_ok=True)
        with open(os.path.join(files, "big16.bin"), "wb") as f:
            for _ in range(BIG // len(U.PATTERN_BLOCK)):
                f.write(U.PATTERN_BLOCK)
        self.access = os.path.join(workdir, "access.log")
        conf = H.nginx_conf_head(workdir, "info", 1024, "off") + """
  log_format proto '$server_protocol $connection $request_method $request_uri $status';
  default_type text/plain;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:%(h2)d ssl http2;
    listen 127.0.0.1:%(h1)d ssl;
    server_name localhost;
    access_log %(access)s proto;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    client_max_body_size 0;
    location /files/ { alias %(d)s/files/; }
    location = /s/204 { return 204; }
    location = /s/304 { return 304; }
    location = /s/503 { return 503 "down\\n"; }
    location = /hdr { add_header X-Custom "custom value" always; return 201 "made\\n"; }
    location /up/ {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_pass http://127.0.0.1:%(up)d/;
    }
    location / { return 200 "ok $server_protocol $request_uri\\n"; }
  }
  server {
    listen 127.0.0.1:%(mtls)d ssl http2;
    server_name localhost;
    access_log %(access)s proto;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    ssl_client_certificate %(cca)s;
    ssl_verify_client on;
    location / { return 200 "mtls $server_protocol verify=$ssl_client_verify dn=$ssl_client_s_dn\\n"; }
  }
}
""" % dict(d=workdir, h2=self.h2, h1=self.h1, mtls=self.mtls, access=self.access, crt=certs["server.pem"],
           key=certs["server.key"], cca=auth_certs["client-ca.pem"], up=upstream_port)
        self.conf = os.path.join(workdir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(workdir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen([H.NGINX_BIN, "-c", self.conf, "-p", workdir], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for p in (self.h2, self.h1, self.mtls):
            if not H.wait_port(p, 10, self.proc):
                self.stop()
                raise RuntimeError("h2 nginx did not start: %s" % A._tail(os.path.join(workdir, "error.log")))

    def lines(self, needle):
        """Access log lines (protocol, connection, method, uri, status) whose uri contains needle."""
        out = []
        with open(self.access) as f:
            for ln in f:
                parts = ln.split()
                if len(parts) == 5 and needle in parts[3]:
                    out.append(parts)
        return out

    def last(self, needle, n=1):
        """The last access log line for needle, once there are n of them (nginx logs a proxied
        request when it finalises it, which may be a moment after the client has the answer)."""
        got = H.wait_for(lambda: len(self.lines(needle)) >= n, 5)[0]
        assert got, "nginx logged %d request(s) for %s" % (len(self.lines(needle)), needle)
        return self.lines(needle)[-1]

    def stop(self):
        H.stop_process(self.proc, timeout=10)
        self.log.close()


class NodeH2:
    """tests/e2e/h2_server.js on 127.0.0.1 (HTTPS, h2 + HTTP/1.1)."""

    def __init__(self, workdir, certs, max_streams=None, port=None, h1_only=False, name="node"):
        self.out_path = os.path.join(workdir, name + ".stdout")
        self.out = open(self.out_path, "wb")
        self.err = open(os.path.join(workdir, name + ".stderr"), "wb")
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "h2_server.js"), "--cert", certs["server.pem"],
                                      "--key", certs["server.key"]]
                                     + (["--max-streams", str(max_streams)] if max_streams else [])
                                     + (["--port", str(port)] if port else [])
                                     + (["--h1-only", "1"] if h1_only else []),
                                     stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        try:
            self.port = int(A._wait_file_line(self.out_path, "ready ", self.proc, 20, "h2_server.js"))
        except Exception:
            self.stop()
            raise

    def stats(self):
        import ssl
        import http.client
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        try:
            c.request("GET", "/__stats")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def seen(self, path):
        return [s for s in self.stats()["seen"] if s["path"].split("?")[0] == path]

    def stop(self):
        H.stop_process(self.proc, timeout=5)
        self.out.close()
        self.err.close()


@pytest.fixture(scope="module")
def h2nginx(tmp_path_factory, certs, auth_certs, upstream):
    n = H2Nginx(str(tmp_path_factory.mktemp("h2nginx")), certs, auth_certs, upstream.port)
    yield n
    n.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory, certs):
    n = NodeH2(str(tmp_path_factory.mktemp("h2node")), certs)
    yield n
    n.stop()


def _apps(ngx, node):
    e, svc = H.entry, H.service
    return [H.application("h2", [
        svc("Ngx", [e("https://localhost:%d" % ngx.h2)]),
        svc("Ngx H1", [e("https://localhost:%d" % ngx.h1)]),
        svc("Mtls", [e("https://localhost:%d/m" % ngx.mtls, creds=A.creds("CertificateGen", "h2-mtls"))]),
        svc("Node", [e("https://localhost:%d" % node.port)]),
    ])]


def _secrets(auth_certs):
    return [A.cert_secret("h2-mtls", H.read_text(auth_certs["client.pem"]), H.read_text(auth_certs["client.key"]))]


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, auth_certs, h2nginx, node):
    with A.auth_gateway(tmp_path_factory, "gw-h2", certs, _apps(h2nginx, node), _secrets(auth_certs),
                        flags={"proxyTimeout": 30, "requestTimeout": 60}, workers=1) as g:
        yield g


def get(gw, path, **kw):
    return H.http(gw.proxy, "GET", "/h2" + path, **kw)


# --------------------------------------------------------------------------- nginx with http2

def _concurrent_gets(g, paths):
    """GETs of paths sent at the same moment, each on its own client connection; the responses."""
    conns = [H.RawConn(g.proxy) for _ in paths]
    go = threading.Barrier(len(paths), timeout=10)

    def one(i):
        go.wait()
        conns[i].send(H.build_request("GET", paths[i]))
        return conns[i].read_response()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as ex:
            return list(ex.map(one, range(len(paths))))
    finally:
        for c in conns:
            c.close()


def test_request_reaches_nginx_as_http2(gw, h2nginx):
    r = get(gw, "/ngx/first?q=1")
    assert r.status == 200, r
    assert r.body == b"ok HTTP/2.0 /first?q=1\n", r
    line = h2nginx.last("/first?q=1")
    assert len(h2nginx.lines("/first?q=1")) == 1
    assert line[0] == "HTTP/2.0", line
    # the response head reaches the HTTP/1.1 client with Go's canonical names
    assert r.header("Content-Type") == "text/plain" and any(k == "Content-Type" for k, _ in r.headers), r


def test_concurrent_requests_share_one_connection(tmpdir_str, certs, auth_certs, h2nginx, node):
    """20 requests at once through a fresh gateway with one worker: one TLS connection, one
    HTTP/2 session, 20 streams (the 19 that arrive while it is being made wait for it)."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), _apps(h2nginx, node))
    with H.gateway(tmpdir_str, config_dir=cfg, workers=1, env={"SSL_CERT_FILE": certs["ca.pem"]}) as g:
        rs = _concurrent_gets(g, ["/h2/ngx/c20/%d" % i for i in range(20)])
        assert [r.status for r in rs] == [200] * 20, rs
        h2nginx.last("/c20/", 20)
        lines = h2nginx.lines("/c20/")
        assert len(lines) == 20, lines
        assert {ln[0] for ln in lines} == {"HTTP/2.0"}, lines
        assert len({ln[1] for ln in lines}) == 1, "upstream connections used: %s" % sorted({ln[1] for ln in lines})
        m = H.settled_metrics(g.admin)
        assert m["appgw_upstream_connections_open"] == 1, m
        # one request made the connection; the 19 that waited for it count as reused
        assert m["appgw_upstream_connects_total"] == 1, m
        assert m["appgw_upstream_requests_reused_total"] == 19, m
    assert g.exit_code == 0 and not g.sanitizer_reports(), g.log_tail()


def test_download_16mib_slow_reader_flow_control(gw, h2nginx):
    """The client stops reading after 1 MiB for 1 s: the gateway must stop reopening the
    stream's window instead of buffering the 15 MiB nginx would send meanwhile."""
    before = H.proc_status(gw.pid, "VmRSS")
    peak = [0]
    h = hashlib.sha256()
    n = [0]

    def sink(d):
        h.update(d)
        n[0] += len(d)
        if n[0] >= 1024 * 1024 and not peak[0]:
            import time
            time.sleep(1.0)  # a slow reader (not synchronisation): nginx gets a second to overrun us
            peak[0] = H.proc_status(gw.pid, "VmRSS")
    with H.RawConn(gw.proxy, timeout=60) as c:
        c.send(H.build_request("GET", "/h2/ngx/files/big16.bin"))
        r = c.read_response("GET", sink=sink)
    assert r.status == 200, r
    assert n[0] == BIG and h.hexdigest() == U.pattern_sha256(BIG)
    assert h2nginx.last("/files/big16.bin")[0] == "HTTP/2.0"
    if not H.SANITIZE:
        grown = peak[0] - before
        assert grown < 6 * 1024, "gateway RSS grew by %.1f MiB while the client did not read" % (grown / 1024.0)


def _upload(gw, path, chunked):
    block = U.PATTERN_BLOCK
    h = hashlib.sha256()
    with H.RawConn(gw.proxy, timeout=60) as c:
        te = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(UPLOAD))]
        c.send(H.build_request("POST", path, te))
        sent = 0
        while sent < UPLOAD:
            d = block[: min(len(block), UPLOAD - sent)]
            h.update(d)
            c.send(b"%x\r\n%s\r\n" % (len(d), d) if chunked else d)
            sent += len(d)
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json() == {"bytes": UPLOAD, "sha256": h.hexdigest()}, r


def test_upload_8mib(gw, h2nginx):
    _upload(gw, "/h2/ngx/up/upload?n=cl", chunked=False)
    assert h2nginx.last("/up/upload?n=cl")[0] == "HTTP/2.0"


def test_chunked_request_body_arrives_decoded(gw, h2nginx):
    _upload(gw, "/h2/ngx/up/upload?n=chunked", chunked=True)
    assert h2nginx.last("/up/upload?n=chunked")[0] == "HTTP/2.0"


def test_request_headers_converted(gw, h2nginx):
    """Host becomes :authority (nginx passes it on as Host), hop-by-hop fields do not travel,
    TE: trailers does, other fields arrive with their values."""
    r = get(gw, "/ngx/up/echo", headers=[("X-Custom-Req", "abc"), ("TE", "trailers"), ("Keep-Alive", "5")])
    assert r.status == 200, r
    doc = r.json()
    assert H.hvals(doc["headers"], "X-Custom-Req") == ["abc"], doc
    assert H.hvals(doc["headers"], "Host") == ["localhost:%d" % h2nginx.h2], doc
    assert H.hvals(doc["headers"], "Keep-Alive") == [], doc
    assert h2nginx.last("/up/echo")[0] == "HTTP/2.0"


def test_head_204_304(gw, h2nginx):
    r = H.http(gw.proxy, "HEAD", "/h2/ngx/head-check")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == str(len("ok HTTP/2.0 /head-check\n")), r
    r = get(gw, "/ngx/s/204")
    assert r.status == 204 and r.body == b"", r
    r = get(gw, "/ngx/s/304")
    assert r.status == 304 and r.body == b"", r
    assert h2nginx.last("/s/304")[0] == "HTTP/2.0"
    assert h2nginx.last("/s/204")[0] == "HTTP/2.0"
    # the connection to the client still works after each of them
    with H.RawConn(gw.proxy) as c:
        for p in ("/h2/ngx/s/204", "/h2/ngx/s/304", "/h2/ngx/after"):
            c.send(H.build_request("GET", p))
            r = c.read_response()
        assert r.status == 200 and r.body == b"ok HTTP/2.0 /after\n", r


def test_response_status_and_headers_pass_through(gw, h2nginx):
    r = get(gw, "/ngx/hdr")
    assert r.status == 201, r
    assert r.header("X-Custom") == "custom value", r
    assert r.body == b"made\n", r
    assert h2nginx.last("/hdr")[0] == "HTTP/2.0"


def test_upstream_5xx_becomes_502(gw, h2nginx):
    r = get(gw, "/ngx/s/503")
    assert r.status == 502, r
    assert r.header("Target-System-Status") == "503", r
    assert r.body == b"down\n", r
    assert h2nginx.last("/s/503")[0] == "HTTP/2.0"


def test_chunked_response_from_http2(gw, h2nginx):
    """nginx proxies a chunked upstream answer without a length: over HTTP/2 it has none, the
    gateway presents it chunked to the HTTP/1.1 client."""
    n, size = 50, 10000
    with H.RawConn(gw.proxy, timeout=30) as c:
        c.send(H.build_request("GET", "/h2/ngx/up/chunked?n=%d&size=%d" % (n, size)))
        r = c.read_response()
    assert r.status == 200, r
    assert r.header("Transfer-Encoding") == "chunked", r
    assert len(r.body) == n * size, len(r.body)
    assert h2nginx.last("/up/chunked")[0] == "HTTP/2.0"


def test_mtls_upstream_over_http2(gw, h2nginx):
    r = get(gw, "/mtls/x")
    assert r.status == 200, r
    assert r.body == ("mtls HTTP/2.0 verify=SUCCESS dn=%s\n" % H.CLIENT_DN).encode(), r


def test_fallback_to_http1_without_h2(gw, h2nginx):
    r = get(gw, "/ngx-h1/fallback")
    assert r.status == 200, r
    assert r.body == b"ok HTTP/1.1 /fallback\n", r
    assert h2nginx.last("/fallback")[0] == "HTTP/1.1"


def test_flag_off_speaks_http1(tmpdir_str, certs, auth_certs, h2nginx, node):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), _apps(h2nginx, node))
    with H.gateway(tmpdir_str, config_dir=cfg, workers=1, env={"SSL_CERT_FILE": certs["ca.pem"]},
                   flags={"upstreamHTTP2": "false"}) as g:
        r = H.http(g.proxy, "GET", "/h2/ngx/flag-off")
        assert r.status == 200, r
        assert r.body == b"ok HTTP/1.1 /flag-off\n", r
    assert g.exit_code == 0 and not g.sanitizer_reports(), g.log_tail()


# --------------------------------------------------------------------------- Node's http2: resets, GOAWAY

def test_peer_stream_limit_respected(tmpdir_str, certs):
    """A server allowing 2 concurrent streams per connection, 6 requests at once through one
    worker: no stream is refused (streams wait for the server's SETTINGS before sharing a new
    session, and a full session makes the next request open another connection)."""
    node2 = NodeH2(tmpdir_str, certs, max_streams=2)
    try:
        cfg = os.path.join(tmpdir_str, "config")
        os.makedirs(cfg)
        H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), [H.application("lim", [
            H.service("Node", [H.entry("https://localhost:%d" % node2.port)])])])
        with H.gateway(tmpdir_str, config_dir=cfg, workers=1, env={"SSL_CERT_FILE": certs["ca.pem"]}) as g:
            rs = _concurrent_gets(g, ["/lim/node/slow/%d" % i for i in range(6)])
            assert [r.status for r in rs] == [200] * 6, rs
        assert g.exit_code == 0 and not g.sanitizer_reports(), g.log_tail()
        st = node2.stats()
        slow = [x for x in st["seen"] if x["path"].startswith("/slow/")]
        assert sorted(x["path"] for x in slow) == ["/slow/%d" % i for i in range(6)], slow  # none refused, none resent
        assert {x["proto"] for x in slow} == {"HTTP/2.0"}, slow
        assert max(st["peak"].values()) <= 2, st["peak"]
        assert len({x["conn"] for x in slow}) == 3, slow
    finally:
        node2.stop()


def test_upstream_that_starts_then_stops_offering_h2(tmpdir_str, certs):
    """One host:port served in turn by a server without HTTP/2, one with it, and one without it
    again (an upstream upgraded, then rolled back): each request uses what the server of the
    moment offers. Being known as HTTP/1.1 must not stick once a new connection picks h2."""
    servers = [NodeH2(tmpdir_str, certs, h1_only=True, name="node-h1")]
    try:
        port = servers[0].port
        cfg = os.path.join(tmpdir_str, "config")
        os.makedirs(cfg)
        H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), [H.application("sw", [
            H.service("Node", [H.entry("https://localhost:%d" % port)])])])
        with H.gateway(tmpdir_str, config_dir=cfg, workers=1, env={"SSL_CERT_FILE": certs["ca.pem"]}) as g:
            def proto_of(path):
                r = H.http(g.proxy, "GET", "/sw/node" + path)
                assert r.status == 200, r
                seen = servers[-1].seen(path)
                assert len(seen) == 1, seen
                return seen[0]["proto"], seen[0]["conn"]

            assert proto_of("/a")[0] == "HTTP/1.1"
            assert proto_of("/b")[0] == "HTTP/1.1"
            servers[-1].stop()
            servers.append(NodeH2(tmpdir_str, certs, port=port, name="node-h2"))
            c, d = proto_of("/c"), proto_of("/d")
            assert c[0] == d[0] == "HTTP/2.0", (c, d)
            assert c[1] == d[1], (c, d)  # the second request was a stream on the first's session
            servers[-1].stop()
            servers.append(NodeH2(tmpdir_str, certs, port=port, h1_only=True, name="node-h1-again"))
            assert proto_of("/e")[0] == "HTTP/1.1"
            assert proto_of("/f")[0] == "HTTP/1.1"
        assert g.exit_code == 0 and not g.sanitizer_reports(), g.log_tail()
    finally:
        for s in servers:
            s.stop()


def test_reset_before_head_is_502(gw, node):
    r = get(gw, "/node/rst-before")
    assert r.status == 502, r
    assert node.seen("/rst-before")[-1]["proto"] == "HTTP/2.0"


def test_reset_after_head_cuts_the_body(gw, node):
    with H.RawConn(gw.proxy, timeout=20) as c:
        c.send(H.build_request("GET", "/h2/node/rst-after"))
        status, reason, headers, _ = c.read_head()
        assert status == 200, (status, headers)
        assert dict((k.lower(), v) for k, v in headers).get("transfer-encoding") == "chunked", headers
        rest = c.read_to_eof()
    assert b"a" * 1000 in rest, rest[:200]
    assert not rest.endswith(b"0\r\n\r\n"), "the cut body must not look complete"
    assert len(rest) < 64 * 1024 + 200


def test_refused_stream_on_a_pooled_session_is_resent(gw, node):
    assert get(gw, "/node/warm").status == 200  # the session exists: the next stream is "reused"
    r = get(gw, "/node/refuse-once")
    assert r.status == 200, r
    assert r.body.startswith(b"node /refuse-once n=2"), r
    assert [s["proto"] for s in node.seen("/refuse-once")] == ["HTTP/2.0", "HTTP/2.0"]


def test_always_refused_is_502(gw, node):
    assert get(gw, "/node/warm").status == 200
    r = get(gw, "/node/refuse-always")
    assert r.status == 502, r
    assert len(node.seen("/refuse-always")) == 3  # the request and its two resends


def test_goaway_below_the_stream_resends_on_a_new_connection(gw, node):
    assert get(gw, "/node/warm").status == 200
    r = get(gw, "/node/goaway-once")
    assert r.status == 200, r
    seen = node.seen("/goaway-once")
    assert len(seen) == 2 and seen[0]["conn"] != seen[1]["conn"], seen
    assert get(gw, "/node/after-goaway").status == 200


def test_websocket_upgrade_goes_over_http1(gw, node):
    key = base64.b64encode(os.urandom(16)).decode()
    with H.RawConn(gw.proxy, timeout=20) as c:
        c.send(H.build_request("GET", "/h2/node/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                                      ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        status, _, headers, _ = c.read_head()
        assert status == 101, (status, headers)
        c.send(b"raw tunnel bytes")
        assert c.read_exact(len(b"raw tunnel bytes")) == b"raw tunnel bytes"
    assert node.seen("/ws")[-1]["proto"] == "HTTP/1.1 upgrade"
    # ordinary requests to the same server still use HTTP/2
    assert get(gw, "/node/plain").body.startswith(b"node /plain")
    assert node.seen("/plain")[-1]["proto"] == "HTTP/2.0"


def test_protocol_error_is_502(tmpdir_str, certs):
    """A server that picks h2 and then breaks the protocol (DATA on stream 0 instead of its
    SETTINGS): 502, logged as a malformed upstream response."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    ctx.set_alpn_protocols(["h2"])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(20)
    port = ls.getsockname()[1]
    protos = []

    def serve():
        try:
            s, _ = ls.accept()
        except OSError:
            return
        try:
            t = ctx.wrap_socket(s, server_side=True)
            protos.append(t.selected_alpn_protocol())
            t.recv(65536)  # the client preface (and maybe more)
            t.sendall(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00oops")  # DATA, stream 0
            t.settimeout(10)
            while t.recv(65536):  # until the gateway closes
                pass
        except OSError:
            pass
        finally:
            s.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        cfg = os.path.join(tmpdir_str, "config")
        os.makedirs(cfg)
        H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), [H.application("bad", [
            H.service("H2", [H.entry("https://localhost:%d" % port)])])])
        with H.gateway(tmpdir_str, config_dir=cfg, workers=1, env={"SSL_CERT_FILE": certs["ca.pem"]}) as g:
            r = H.http(g.proxy, "GET", "/bad/h2/x")
            assert r.status == 502, r
            assert H.wait_for(lambda: "malformed upstream response" in g.log_text(), 5)[0], g.log_tail()
            assert "HTTP/2 protocol error" in g.log_text(), g.log_tail()
        assert g.exit_code == 0 and not g.sanitizer_reports(), g.log_tail()
        th.join(10)
        assert protos == ["h2"], protos
    finally:
        ls.close()
