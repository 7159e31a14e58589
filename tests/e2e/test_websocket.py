"""Issue 9: protocol upgrades (WebSocket) tunnelled through the gateway: a real WebSocket
echo over HTTP and HTTPS upstreams with credentials, large frames with a slow reader, refusals,
closes and half-closes, idle timeout, and many idle tunnels with bounded memory."""
import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
import time

import pytest

import helpers as H

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
USER, PASSWORD = "ws-user", "ws-pass-1"


# --------------------------------------------------------------------------- a WebSocket server

def _read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            raise EOFError("closed before the end of the head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], hdrs, rest


def _recv_exact(sock, n, buf):
    while len(buf) < n:
        d = sock.recv(max(65536, n - len(buf)))
        if not d:
            raise EOFError("closed in a frame")
        buf += d
    return buf[:n], buf[n:]


def read_frame(sock, buf=b""):
    """(opcode, payload, rest) of one WebSocket frame (unmasking if masked)."""
    h, buf = _recv_exact(sock, 2, buf)
    op, ln = h[0] & 0x0F, h[1] & 0x7F
    masked = h[1] & 0x80
    if ln == 126:
        x, buf = _recv_exact(sock, 2, buf)
        ln = struct.unpack(">H", x)[0]
    elif ln == 127:
        x, buf = _recv_exact(sock, 8, buf)
        ln = struct.unpack(">Q", x)[0]
    key = b""
    if masked:
        key, buf = _recv_exact(sock, 4, buf)
    payload, buf = _recv_exact(sock, ln, buf)
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if ln < 4096 else _unmask(payload, key)
    return op, payload, buf


def _unmask(p, key):
    k = (key * (len(p) // 4 + 1))[:len(p)]
    return (int.from_bytes(p, "big") ^ int.from_bytes(k, "big")).to_bytes(len(p), "big")


def frame(op, payload, mask):
    n = len(payload)
    h = bytes([0x80 | op])
    m = 0x80 if mask else 0
    if n < 126:
        h += bytes([m | n])
    elif n < 65536:
        h += bytes([m | 126]) + struct.pack(">H", n)
    else:
        h += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        return h + key + _unmask(payload, key)
    return h + payload


class WsServer:
    """Threaded server on 127.0.0.1. Paths: /echo (WebSocket echo), /raw (101, then reads to EOF
    and answers b"got N"), /hold (101, then holds the connection), /refuse (400), /plain
    (200), /wrongproto (101 with Upgrade: h2c). Records each handshake's headers."""

    def __init__(self, tls_ctx=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        self.tls = tls_ctx
        self.handshakes = []
        self.closed = 0
        self.lock = threading.Lock()
        self.conns = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tls:
                c = self.tls.wrap_socket(c, server_side=True)
            with self.lock:
                self.conns.append(c)
            line, hdrs, rest = _read_head(c)
            path = line.split(" ")[1].split("?")[0]
            with self.lock:
                self.handshakes.append((path, hdrs))
            if path.endswith("/refuse"):
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused")
                return
            if path.endswith("/plain"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
                return
            key = hdrs.get("sec-websocket-key", [""])[0].encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            proto = b"h2c" if path.endswith("/wrongproto") else b"websocket"
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + proto + b"\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept + b"\r\nX-Ws-Server: yes\r\n\r\n")
            if path.endswith("/raw"):
                got = len(rest)
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got += len(d)
                c.sendall(b"got %d" % got)
                return
            if path.endswith("/hold"):
                while c.recv(65536):
                    pass
                return
            buf = rest
            while True:
                op, payload, buf = read_frame(c, buf)
                if op == 8:
                    c.sendall(frame(8, payload, False))
                    return
                c.sendall(frame(op, payload, False))
        except (OSError, EOFError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass
            with self.lock:
                self.closed += 1

    def stop(self):
        self.stopping = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


@pytest.fixture(scope="module")
def ws(certs):
    s = WsServer()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    st = WsServer(ctx)
    yield s, st
    s.stop()
    st.stop()


@pytest.fixture(scope="module")
def wsgw(tmp_path_factory, ws, certs):
    s, st = ws
    d = str(tmp_path_factory.mktemp("wsgw"))
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    sec = H.secret("ws-basic", {"username": USER, "password": PASSWORD})
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [
        H.application("ws", [
            H.service("Plain", [H.entry("http://127.0.0.1:%d/base" % s.port, creds={"type": "Basic", "secretName": "ws-basic"})]),
            H.service("Secure", [H.entry("https://localhost:%d" % st.port)]),
        ]), sec])
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"), log_level="info",
                   env={"SSL_CERT_FILE": certs["ca.pem"]})
    yield gw
    assert gw.stop() == 0
    assert not gw.sanitizer_reports()


def open_tunnel(port, path, extra=b"", proto=b"websocket", timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, Upgrade\r\n"
              b"Upgrade: " + proto + b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n" +
              extra + b"\r\n")
    line, hdrs, rest = _read_head(s)
    return s, line, hdrs, rest, key


def test_websocket_echo_with_basic_credentials(wsgw, ws):
    s, line, hdrs, rest, key = open_tunnel(wsgw.proxy, "/ws/plain/echo")
    try:
        assert line.startswith("HTTP/1.1 101"), line
        assert hdrs["upgrade"] == ["websocket"] and hdrs["connection"] == ["Upgrade"]
        assert hdrs["sec-websocket-accept"] == [base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()]
        assert hdrs["x-ws-server"] == ["yes"] and hdrs["x-request-id"][0]
        buf = rest
        for msg in (b"hello", b"x" * 200, os.urandom(70000)):
            s.sendall(frame(2, msg, True))
            op, payload, buf = read_frame(s, buf)
            assert (op, payload) == (2, msg)
        s.sendall(frame(8, b"\x03\xe8bye", True))
        op, payload, buf = read_frame(s, buf)
        assert op == 8 and payload == b"\x03\xe8bye"
        assert s.recv(10) == b"", "the upstream's close reaches the client"
    finally:
        s.close()
    path, up = [h for h in ws[0].handshakes if h[0] == "/base/echo"][-1]
    assert up["authorization"] == ["Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()]
    assert up["upgrade"] == ["websocket"] and up["connection"] == ["Upgrade"]
    assert up["sec-websocket-key"] == [key.decode()]


def test_websocket_over_https_upstream(wsgw, ws):
    s, line, hdrs, rest, _ = open_tunnel(wsgw.proxy, "/ws/secure/echo")
    try:
        assert line.startswith("HTTP/1.1 101"), line
        buf = rest
        for i in range(20):
            msg = b"msg %d " % i * (i + 1)
            s.sendall(frame(1, msg, True))
            op, payload, buf = read_frame(s, buf)
            assert payload == msg
    finally:
        s.close()


def test_large_frames_with_a_slow_reader(wsgw):
    """8 MiB each way while the client reads slowly: backpressure, nothing lost or reordered."""
    s, line, _, rest, _ = open_tunnel(wsgw.proxy, "/ws/plain/echo", timeout=60)
    try:
        assert line.startswith("HTTP/1.1 101")
        big = os.urandom(8 << 20)
        sender = threading.Thread(target=s.sendall, args=(frame(2, big, True),))
        sender.start()
        got = bytearray(rest)
        want = len(frame(2, big, False))
        deadline = time.monotonic() + 60
        while len(got) < want and time.monotonic() < deadline:
            got += s.recv(32768)
            time.sleep(0.0005)  # a slow reader: the gateway must hold back, not buffer without end
        sender.join(30)
        assert len(got) == want
        assert hashlib.sha256(bytes(got[-len(big):])).digest() == hashlib.sha256(big).digest()
    finally:
        s.close()


@pytest.mark.parametrize("path,status,body", [("/ws/plain/refuse", 400, b"refused"), ("/ws/plain/plain", 200, b"plain")])
def test_upstream_refusing_the_upgrade_is_a_normal_response(wsgw, path, status, body):
    s, line, hdrs, rest, _ = open_tunnel(wsgw.proxy, path)
    try:
        assert line.startswith("HTTP/1.1 %d" % status), line
        assert "upgrade" not in hdrs
        while len(rest) < len(body):
            d = s.recv(100)
            if not d:
                break
            rest += d
        assert rest == body
    finally:
        s.close()


def test_switch_to_another_protocol_is_502(wsgw):
    s, line, _, _, _ = open_tunnel(wsgw.proxy, "/ws/plain/wrongproto")
    s.close()
    assert line.startswith("HTTP/1.1 502"), line


def test_client_half_close_is_passed_on(wsgw):
    """The client sends, then shuts its write side: the upstream sees EOF and still answers."""
    s, line, _, rest, _ = open_tunnel(wsgw.proxy, "/ws/plain/raw", extra=b"")
    try:
        assert line.startswith("HTTP/1.1 101")
        s.sendall(b"a" * 100000)
        s.shutdown(socket.SHUT_WR)
        got = rest
        while True:
            d = s.recv(100)
            if not d:
                break
            got += d
        assert got == b"got 100000"
    finally:
        s.close()


def test_client_closing_closes_the_upstream(wsgw, ws):
    before = ws[0].closed
    s, line, _, _, _ = open_tunnel(wsgw.proxy, "/ws/plain/hold")
    assert line.startswith("HTTP/1.1 101")
    s.close()
    v, _ = H.wait_for(lambda: ws[0].closed > before, 5)
    assert v, "the upstream connection was not closed after the client left"


def test_idle_tunnel_is_closed(tmpdir_str, ws):
    s0, _ = ws
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("ws", [H.service("Plain", [
        H.entry("http://127.0.0.1:%d" % s0.port)])])])
    with H.gateway(tmpdir_str, cfg, log_level="info", flags={"tunnelIdleTimeout": 1}) as gw:
        s, line, _, rest, _ = open_tunnel(gw.proxy, "/ws/plain/echo")
        try:
            assert line.startswith("HTTP/1.1 101")
            s.sendall(frame(1, b"ping", True))  # activity keeps it open...
            assert read_frame(s, rest)[1] == b"ping"
            t0 = time.monotonic()
            s.settimeout(10)
            assert s.recv(10) == b""  # ...silence closes it
            took = time.monotonic() - t0
            assert 0.8 <= took < 5, took
        finally:
            s.close()
        m = H.settled_metrics(gw.admin)
        assert m['appgw_requests_total{app="ws",service="Plain",code="101",outcome="timeout"}'] == 1


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def test_a_thousand_idle_tunnels_with_bounded_memory(wsgw):
    n = 1000
    socks = []
    try:
        # warm up the worker's allocators with a few tunnels first
        for _ in range(10):
            s, line, _, _, _ = open_tunnel(wsgw.proxy, "/ws/plain/hold")
            assert line.startswith("HTTP/1.1 101")
            s.close()
        H.settled_metrics(wsgw.admin)
        base = _rss_kib(wsgw.pid)
        for _ in range(n):
            s, line, _, _, _ = open_tunnel(wsgw.proxy, "/ws/plain/hold")
            assert line.startswith("HTTP/1.1 101"), line
            socks.append(s)
        assert H.metrics(wsgw.admin)["appgw_requests_in_flight"] == n
        grown = _rss_kib(wsgw.pid) - base
        per = grown * 1024 / n
        print("RSS growth for %d idle tunnels: %d KiB (%.0f bytes each)" % (n, grown, per))
        assert per < 16 * 1024, "%d bytes per idle tunnel" % per
        # all still alive: one echoes through the middle of the crowd
        s, line, _, rest, _ = open_tunnel(wsgw.proxy, "/ws/plain/echo")
        s.sendall(frame(1, b"still here", True))
        assert read_frame(s, rest)[1] == b"still here"
        s.close()
    finally:
        for s in socks:
            s.close()
    v, _ = H.wait_for(lambda: H.metrics(wsgw.admin)["appgw_requests_in_flight"] == 0, 20)
    assert v, "tunnels not ended after their clients closed"


def test_sigterm_closes_tunnels_at_the_end_of_the_grace_period(tmpdir_str, ws):
    """Draining waits for in-flight requests; a tunnel is one, so it lasts until the grace
    period ends, then it is closed and the gateway exits 0."""
    s0, _ = ws
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("ws", [H.service("Plain", [
        H.entry("http://127.0.0.1:%d" % s0.port)])])])
    gw = H.Gateway(cfg, os.path.join(tmpdir_str, "appgw.stderr"), log_level="info", flags={"shutdownGrace": 2})
    s, line, _, rest, _ = open_tunnel(gw.proxy, "/ws/plain/echo")
    try:
        assert line.startswith("HTTP/1.1 101")
        t0 = time.monotonic()
        gw.proc.send_signal(15)
        v, _ = H.wait_for(lambda: '"msg":"shutting down"' in gw.log_text(), 5)
        assert v, "no shutdown under way"
        # still relaying during the grace period
        s.sendall(frame(1, b"during drain", True))
        assert read_frame(s, rest)[1] == b"during drain"
        s.settimeout(10)
        assert s.recv(10) == b"", "the tunnel was not closed"
        took = time.monotonic() - t0
        assert 1.5 <= took < 6, took
        assert gw.proc.wait(10) == 0
    finally:
        s.close()
        gw.stop()


def test_websocket_with_an_oauth_token(tmpdir_str, ws, oauth_server):
    """The upgrade request carries a token fetched from a real OAuth server (oidc-provider)."""
    import auth_helpers as A
    s0, _ = ws
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [
        H.application("ws", [H.service("Oauth", [H.entry(
            "http://127.0.0.1:%d" % s0.port,
            creds=A.creds("OAuth", "ws-oauth", oauth_server.token_url(variant="ws")))])]),
        A.oauth_secret("ws-oauth", "gw-basic", A.OP_SECRETS["gw-basic"])])
    with H.gateway(tmpdir_str, cfg, log_level="info") as gw:
        s, line, _, rest, _ = open_tunnel(gw.proxy, "/ws/oauth/echo")
        try:
            assert line.startswith("HTTP/1.1 101"), line
            s.sendall(frame(1, b"with a token", True))
            assert read_frame(s, rest)[1] == b"with a token"
        finally:
            s.close()
    _, up = [h for h in s0.handshakes if h[0] == "/echo"][-1]
    token = up["authorization"][0]
    assert token.startswith("Bearer ") and len(token) > 20
    assert oauth_server.introspect(token[len("Bearer "):])["active"] is True
