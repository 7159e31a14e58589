"""Issue 10: the rest of a large Content-Length body from a plain-HTTP upstream moves by
splice(2) (appgw_spliced_bytes_total), byte-exact, with keep-alive on both sides, bounded memory
for a slow reader, and the failures of the copying path (client gone, upstream cut)."""
import hashlib
import os
import socket
import threading
import time

import pytest

import helpers as H
import upstream as U

MIB = 1024 * 1024
SIZES = {"1m.bin": MIB, "16m.bin": 16 * MIB, "40k.bin": 40 * 1024}
CUT_TOTAL = 4 * MIB   # what the cutting upstream announces
CUT_SENT = MIB        # what it sends before closing
RSS_LIMIT_KB = 64 * 1024


class SpliceNginx:
    """nginx serving static files (sendfile) over HTTP and HTTPS; every response names its
    connection ($connection), so a test sees which upstream connection carried it."""

    def __init__(self, workdir, certs):
        self.dir = workdir
        self.http, self.https = H.free_ports(2)
        files = os.path.join(workdir, "files")
        os.makedirs(files, exist_ok=True)
        self.sha = {}
        for name, size in SIZES.items():
            with open(os.path.join(files, name), "wb") as f:
                left = size
                while left:
                    d = U.PATTERN_BLOCK[:min(left, len(U.PATTERN_BLOCK))]
                    f.write(d)
                    left -= len(d)
            self.sha[name] = U.pattern_sha256(size)
        conf = H.nginx_conf_head(workdir, "warn", 256, "off") + """
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:%(http)d;
    listen 127.0.0.1:%(https)d ssl;
    server_name localhost;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    location /files/ { alias %(d)s/files/; add_header X-Conn $connection always; }
  }
}
""" % dict(d=workdir, http=self.http, https=self.https, crt=certs["server.pem"], key=certs["server.key"])
        conf_path = os.path.join(workdir, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(workdir, "nginx.stderr"), "wb")
        self.proc = H.subprocess.Popen([H.NGINX_BIN, "-c", conf_path, "-p", workdir], stdout=self.log,
                                       stderr=H.subprocess.STDOUT, stdin=H.subprocess.DEVNULL)
        for p in (self.http, self.https):
            if not H.wait_port(p, 10, self.proc):
                self.stop()
                raise RuntimeError("nginx did not start")

    def stop(self):
        H.stop_process(self.proc, sig=H.signal.SIGQUIT, timeout=10)
        self.log.close()


class CuttingUpstream:
    """Answers every request with Content-Length CUT_TOTAL and sends CUT_SENT bytes; then closes,
    or, for a path with "stall", keeps the connection open and silent (at most 15 s)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        break
                    buf += d
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % CUT_TOTAL)
                c.sendall(U.PATTERN_BLOCK[:CUT_SENT])
                if b"stall" in buf.split(b"\r\n", 1)[0]:
                    c.settimeout(15)
                    c.recv(1)  # until the gateway closes (or 15 s)
                else:
                    time.sleep(0.2)  # the gateway has started on the body before the close
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture(scope="module")
def sp(tmp_path_factory, certs):
    d = str(tmp_path_factory.mktemp("splice"))
    ngx = SpliceNginx(os.path.join(d), certs)
    cut = CuttingUpstream()
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("sp", [
        H.service("Files", [H.entry("http://127.0.0.1:%d/files" % ngx.http)]),
        H.service("Tls Files", [H.entry("https://localhost:%d/files" % ngx.https)]),
        H.service("Cut", [H.entry("http://127.0.0.1:%d/cut" % cut.port)]),
    ])])
    # one worker: the upstream pool the tests look at is that worker's
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"), workers=1, log_level="info",
                   flags={"proxyTimeout": 30, "requestTimeout": 30}, env={"SSL_CERT_FILE": certs["ca.pem"]})
    gw.ngx = ngx
    gw.cfg = cfg
    yield gw
    rc = gw.stop()
    ngx.stop()
    cut.stop()
    assert not gw.sanitizer_reports(), gw.sanitizer_reports()[:10]
    assert rc == 0


FILES = 'app="sp",service="Files"'


def fetch(c, path, method="GET", sink=None):
    h = hashlib.sha256()
    n = [0]

    def put(d):
        h.update(d)
        n[0] += len(d)
        if sink:
            sink(n[0])
    c.send(H.build_request(method, path, host="a"))
    r = c.read_response(method, sink=put)
    return r, n[0], h.hexdigest()


def small_window_conn(port):
    """A client connection with a 16 KiB receive buffer, so the gateway's writes to it block early."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", port))
    return H.RawConn(port, sock=s, timeout=60)


def once_past(limit, action):
    """A fetch sink that runs action once, when limit body bytes have arrived."""
    done = [False]

    def sink(n):
        if not done[0] and n >= limit:
            done[0] = True
            action()
    return sink


def delta(before, after, key):
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_large_downloads_are_spliced_exactly_and_both_connections_kept(sp):
    before = H.settled_metrics(sp.admin)
    with H.RawConn(sp.proxy, timeout=60) as c:
        r1, n1, sha1 = fetch(c, "/sp/files/1m.bin")
        r2, n2, sha2 = fetch(c, "/sp/files/16m.bin")  # same client connection
    assert r1.status == 200 and r2.status == 200, (r1, r2)
    assert (n1, sha1) == (MIB, sp.ngx.sha["1m.bin"])
    assert (n2, sha2) == (16 * MIB, sp.ngx.sha["16m.bin"])
    assert r1.header("Connection") is None and r2.header("Connection") is None
    # the second request went over the upstream connection the first one gave back
    assert r1.header("X-Conn") == r2.header("X-Conn"), (r1.header("X-Conn"), r2.header("X-Conn"))
    after = H.settled_metrics(sp.admin)
    spliced = delta(before, after, "appgw_spliced_bytes_total")
    # what arrived with the head (a read or two) is copied, the rest spliced
    assert 17 * MIB - 1 * MIB <= spliced <= 17 * MIB, spliced
    assert delta(before, after, "appgw_response_body_bytes_total{%s}" % FILES) == 17 * MIB
    assert delta(before, after, 'appgw_requests_total{%s,code="200",outcome="proxied"}' % FILES) == 2
    assert delta(before, after, "appgw_upstream_connects_total") <= 1
    assert after["appgw_upstream_connections_idle"] == after["appgw_upstream_connections_open"]


def test_access_log_counts_spliced_bytes(sp):
    with H.RawConn(sp.proxy, timeout=60) as c:
        r, n, _ = fetch(c, "/sp/files/1m.bin")
        rid = r.header("X-Request-Id")
    assert r.status == 200 and n == MIB

    def line():
        for ln in sp.log_text().splitlines():
            if rid in ln and '"bytes_out":' in ln:
                return ln
    ln, _ = H.wait_for(line, 5)
    assert ln and '"bytes_out":%d' % MIB in ln, ln


def test_small_bodies_and_head_are_not_spliced(sp):
    before = H.settled_metrics(sp.admin)
    with H.RawConn(sp.proxy, timeout=30) as c:
        r, n, sha = fetch(c, "/sp/files/40k.bin")
        assert r.status == 200 and (n, sha) == (40 * 1024, sp.ngx.sha["40k.bin"])
        r, n, _ = fetch(c, "/sp/files/16m.bin", method="HEAD")
        assert r.status == 200 and n == 0 and r.header("Content-Length") == str(16 * MIB)
        r, n, sha = fetch(c, "/sp/files/40k.bin")  # the connection still speaks HTTP
        assert r.status == 200 and sha == sp.ngx.sha["40k.bin"]
    after = H.settled_metrics(sp.admin)
    assert delta(before, after, "appgw_spliced_bytes_total") == 0


def test_tls_upstream_is_not_spliced(sp):
    before = H.settled_metrics(sp.admin)
    with H.RawConn(sp.proxy, timeout=60) as c:
        r, n, sha = fetch(c, "/sp/tls-files/1m.bin")
    assert r.status == 200 and (n, sha) == (MIB, sp.ngx.sha["1m.bin"]), r
    after = H.settled_metrics(sp.admin)
    assert delta(before, after, "appgw_spliced_bytes_total") == 0
    assert delta(before, after, 'appgw_response_body_bytes_total{app="sp",service="Tls Files"}') == MIB


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_slow_reader_completes_with_bounded_memory(sp):
    before = H.settled_metrics(sp.admin)
    ticks = cpu_ticks(sp.pid)
    # the pipe and the socket buffers fill during the pause: the pump must wait, not spin
    with small_window_conn(sp.proxy) as c:
        r, n, sha = fetch(c, "/sp/files/16m.bin", sink=once_past(2 * MIB, lambda: time.sleep(1.5)))
    assert r.status == 200 and (n, sha) == (16 * MIB, sp.ngx.sha["16m.bin"])
    after = H.settled_metrics(sp.admin)
    assert delta(before, after, "appgw_spliced_bytes_total") >= 15 * MIB
    hwm = H.proc_status(sp.pid, "VmHWM")
    if not H.SANITIZE:
        assert hwm < RSS_LIMIT_KB, "peak RSS %.1f MiB" % (hwm / 1024.0)
    # a stalled client costs no CPU (the pump waits for it, it does not spin): well under the
    # 1.5 s pause
    used = cpu_ticks(sp.pid) - ticks
    assert used < 50 * H.SLOW, "gateway used %d ticks" % used


def test_client_gone_mid_body_closes_the_upstream_connection(sp):
    # a pooled connection to take
    with H.RawConn(sp.proxy, timeout=30) as c:
        assert fetch(c, "/sp/files/40k.bin")[0].status == 200
    before = H.settled_metrics(sp.admin)
    assert before["appgw_upstream_connections_idle"] >= 1
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", sp.proxy))
    s.sendall(H.build_request("GET", "/sp/files/16m.bin", host="a"))
    got = 0
    while got < 2 * MIB:
        d = s.recv(65536)
        assert d
        got += len(d)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST: the gateway's next splice to it fails
    after = H.settled_metrics(sp.admin)
    assert delta(before, after, "appgw_spliced_bytes_total") > 0
    assert delta(before, after, 'appgw_requests_total{%s,code="200",outcome="client_gone"}' % FILES) == 1
    # the connection that carried the cut response was not given back to the pool
    assert after["appgw_upstream_connections_idle"] == before["appgw_upstream_connections_idle"] - 1
    assert after["appgw_upstream_connections_open"] == after["appgw_upstream_connections_idle"]
    with H.RawConn(sp.proxy, timeout=30) as c:
        r, n, sha = fetch(c, "/sp/files/1m.bin")
    assert r.status == 200 and sha == sp.ngx.sha["1m.bin"]


def test_upstream_cut_mid_body_cuts_the_client(sp):
    before = H.settled_metrics(sp.admin)
    with H.RawConn(sp.proxy, timeout=30) as c:
        c.send(H.build_request("GET", "/sp/cut/x", host="a"))
        status, _, headers, _ = c.read_head()
        assert status == 200 and dict(headers)["Content-Length"] == str(CUT_TOTAL)
        body = c.read_to_eof()  # the gateway closes the connection
    # fewer bytes than announced (bytes still in flight when the gateway closes may be lost, as
    # on the copying path), and those are the upstream's
    assert 0 < len(body) <= CUT_SENT, len(body)
    assert body == U.PATTERN_BLOCK[:len(body)]
    after = H.settled_metrics(sp.admin)
    assert delta(before, after, "appgw_spliced_bytes_total") > 0
    cut = 'app="sp",service="Cut"'
    assert delta(before, after, 'appgw_requests_total{%s,code="200",outcome="upstream_error"}' % cut) == 1
    assert delta(before, after, "appgw_upstream_failures_total") == 1
    assert sp.alive()


def test_proxy_timeout_applies_to_a_silent_upstream_not_to_a_slow_client(sp, tmp_path):
    with H.gateway(str(tmp_path), config_dir=sp.cfg, workers=1, flags={"proxyTimeout": 1}) as gw:
        # the upstream goes silent mid-body: after proxyTimeout both connections are closed
        before = H.settled_metrics(gw.admin)
        t0 = time.monotonic()
        with H.RawConn(gw.proxy, timeout=30) as c:
            c.send(H.build_request("GET", "/sp/cut/stall", host="a"))
            status, _, _, _ = c.read_head()
            body = c.read_to_eof()
        took = time.monotonic() - t0
        assert status == 200 and 0 < len(body) <= CUT_SENT
        assert 0.9 < took < 5 * H.SLOW, took
        after = H.settled_metrics(gw.admin)
        assert delta(before, after, "appgw_spliced_bytes_total") > 0
        cut = 'app="sp",service="Cut"'
        assert delta(before, after, 'appgw_requests_total{%s,code="200",outcome="timeout"}' % cut) == 1
        # a client that stops reading for longer than proxyTimeout is not the upstream's fault
        with small_window_conn(gw.proxy) as c:
            r, n, sha = fetch(c, "/sp/files/16m.bin", sink=once_past(MIB, lambda: time.sleep(2.5)))
        assert r.status == 200 and (n, sha) == (16 * MIB, sp.ngx.sha["16m.bin"])
        assert delta(after, H.settled_metrics(gw.admin), "appgw_spliced_bytes_total") >= 14 * MIB


def test_sigterm_lets_a_spliced_download_finish(sp, tmp_path):
    with H.gateway(str(tmp_path), config_dir=sp.cfg, workers=1, flags={"shutdownGrace": 10}) as gw:
        def term():
            gw.proc.send_signal(H.signal.SIGTERM)  # the rest arrives during the grace period
            time.sleep(0.5)
        with small_window_conn(gw.proxy) as c:
            r, n, sha = fetch(c, "/sp/files/16m.bin", sink=once_past(2 * MIB, term))
            assert r.status == 200 and (n, sha) == (16 * MIB, sp.ngx.sha["16m.bin"])
            assert c.wait_closed(5), "the draining gateway keeps no connection alive"
        assert gw.proc.wait(10 * H.SLOW) == 0
