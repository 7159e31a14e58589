"""Hostile input and failure modes that once slipped through (issue 7): oversized Content-Length,
many Connection headers, dot-segments and // targets, duplicate upstream Content-Length,
malformed or stalled upstream bodies, a second gateway on our ports, resends after an upstream
reload; on the request side, checked against a strict recording upstream: canonical chunked
framing, malformed chunk lines, no second POST after a dropped pooled connection, the minimum
body rate, and the CPU cost of a head trickled in small pieces."""
import os
import socket
import time
import threading

import helpers as H


def test_content_length_beyond_int63_is_400_and_close(main_gw):
    for v in ("9223372036854775808", "9999999999999999999", "18446744073709551616"):
        c = H.RawConn(main_gw.proxy)
        try:
            c.send(("POST /e2e/echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\nabc" % v).encode())
            r = c.read_response()
            assert r.status == 400, (v, r)
            assert c.wait_closed(5 * H.SLOW), v
        finally:
            c.close()
    # the largest value Go accepts is still a valid (if unfinished) request: not a 400
    c = H.RawConn(main_gw.proxy)
    try:
        c.send(b"POST /e2e/echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\nabc")
        assert not c.wait_closed(0.5), "a valid Content-Length was refused"
    finally:
        c.close()


def test_every_connection_listed_header_is_stripped(main_gw):
    names = ["X-Hop-%02d" % i for i in range(24)]
    headers = [("Connection", n) for n in names] + [(n, "secret-%s" % n) for n in names] + [("X-Kept", "yes")]
    r = H.http(main_gw.proxy, "GET", "/e2e/echo/many-connection", headers)
    assert r.status == 200, r
    got = H.echo_headers(r)
    for n in names:
        assert H.hvals(got, n) == [], (n, got)
    assert H.hvals(got, "X-Kept") == ["yes"], got


class RawUpstream:
    """Answers every request on 127.0.0.1 with fixed bytes (one connection at a time)."""

    def __init__(self, answer):
        self.answer = answer
        self.hold = False  # keep the connection open (silent) after answering
        self.requests = []  # raw request heads received
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.2 if self.hold else 5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.requests.append(data)
                    conn.sendall(self.answer)
                    while self.hold and not self.stop:  # silent until the gateway gives up
                        try:
                            if not conn.recv(4096):
                                break
                        except socket.timeout:
                            continue
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_duplicate_content_length_from_upstream_reaches_client_once(tmpdir_str):
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello")
    bad = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    try:
        cfg = tmpdir_str + "/config"
        import os
        os.makedirs(cfg)
        apps = [H.application("hard", [H.service("Dup", [H.entry("http://127.0.0.1:%d/x" % up.port)]),
                                       H.service("Bad", [H.entry("http://127.0.0.1:%d/x" % bad.port)])])]
        H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), apps)
        with H.gateway(tmpdir_str, config_dir=cfg) as gw:
            c = H.RawConn(gw.proxy)
            try:
                c.send(b"GET /hard/dup/a HTTP/1.1\r\nHost: h\r\n\r\n")
                r = c.read_response()
            finally:
                c.close()
            assert r.status == 200, r
            assert r.body == b"hello", r
            assert [v for k, v in r.headers if k.lower() == "content-length"] == ["5"], r.headers
            r = H.get(gw.proxy, "/hard/bad/a")
            assert r.status == 502, r
    finally:
        up.close()
        bad.close()


def test_second_gateway_on_the_same_ports_refuses_to_start(tmpdir_str):
    import os
    import time
    adir = os.path.join(tmpdir_str, "a")
    os.makedirs(adir)
    with H.gateway(adir) as a:
        for clash in ({"proxyPort": a.proxy}, {"proxyPortCompass": a.compass}, {"externalAPIPort": a.admin}):
            d = os.path.join(tmpdir_str, "b%d" % len(os.listdir(tmpdir_str)))
            os.makedirs(os.path.join(d, "config"))
            b = H.Gateway(os.path.join(d, "config"), os.path.join(d, "appgw.stderr"), flags=clash, wait=False)
            try:
                deadline = time.monotonic() + 10 * H.SLOW
                while b.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not b.alive(), "a second gateway started on port %r" % clash
                assert b.proc.returncode == 1, b.proc.returncode
                assert "port already in use by another process" in b.log_text(), b.log_tail()
            finally:
                b.stop()
        assert H.http(a.admin, "GET", "/v1/health").status == 200


def _gateway_for(tmpdir_str, name, upstreams, **flags):
    import os
    cfg = os.path.join(tmpdir_str, name, "config")
    os.makedirs(cfg)
    apps = [H.application("hard", [H.service(svc, [H.entry("http://127.0.0.1:%d/x" % u.port)])
                                   for svc, u in upstreams.items()])]
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), apps)
    return H.gateway(os.path.join(tmpdir_str, name), config_dir=cfg, flags=flags or None)


def test_malformed_chunked_body_before_anything_was_sent_is_502(tmpdir_str):
    bad = RawUpstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    try:
        with _gateway_for(tmpdir_str, "g", {"Bad": bad}) as gw:
            r = H.get(gw.proxy, "/hard/bad/a")
            H.assert_gw_error(r, 502)
    finally:
        bad.close()


def test_upstream_silent_in_the_body_is_cut_after_proxy_timeout(tmpdir_str):
    import time
    stall = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    stall.hold = True
    try:
        with _gateway_for(tmpdir_str, "g", {"Stall": stall}, proxyTimeout=2) as gw:
            c = H.RawConn(gw.proxy, timeout=20)
            try:
                t0 = time.monotonic()
                c.send(b"GET /hard/stall/a HTTP/1.1\r\nHost: h\r\n\r\n")
                status, _, _, _ = c.read_head()
                assert status == 200
                c.sock.settimeout(15 * H.SLOW)
                got = c.buf
                c.buf = b""
                while True:  # the body bytes that came, then the close
                    try:
                        d = c.sock.recv(65536)
                    except (ConnectionResetError, socket.timeout):
                        break
                    if not d:
                        break
                    got += d
                elapsed = time.monotonic() - t0
                assert got == b"partial", got
                assert 1.5 < elapsed < 6 * H.SLOW, elapsed
            finally:
                c.close()
    finally:
        stall.close()


ESCAPES = [
    ("e2e", "/e2e/echo/..%2f..%2fbeta%2fsecret"),     # %2F decoded under encodeUrl: true
    ("e2e", "/e2e/echo/../../beta/secret"),
    ("e2e", "/e2e/echo/%2e%2e/%2E%2e/beta/secret"),
    ("e2e", "/e2e/echo/x/../../y"),
    ("raw", "/raw/echo/%2e%2e/%2e%2e/beta/secret"),   # encodeUrl: false
    ("raw", "/raw/echo/.%2E/x"),
]


def test_dot_segments_never_leave_the_target_path(main_gw, upstream):
    for _, path in ESCAPES:
        r = H.get(main_gw.proxy, path)
        H.assert_gw_error(r, 400, "path escapes the target API")


def test_dot_segments_inside_the_target_path_are_resolved(main_gw):
    for path, want in (("/e2e/echo/a/../b", "/base/b"), ("/e2e/echo/./a/%2e/b", "/base/a/b"),
                       ("/raw/echo/a/%2e%2e/b", "/base/b")):
        r = H.get(main_gw.proxy, path)
        assert r.status == 200, (path, r)
        assert r.json()["path"] == want, (path, r.json()["path"])


def test_request_target_never_starts_with_double_slash(tmpdir_str):
    """Python's http.server hides a leading '//' (it strips it), so a raw upstream records the bytes."""
    import os
    up = RawUpstream(b"HTTP/1.1 204 No Content\r\n\r\n")
    try:
        cfg = os.path.join(tmpdir_str, "config")
        os.makedirs(cfg)
        H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), [H.application("hard", [
            H.service("Root", [H.entry("http://127.0.0.1:%d" % up.port)])])])
        with H.gateway(tmpdir_str, config_dir=cfg) as gw:
            for p in ("/hard/root///evil.example/x", "/hard/root//%2Fevil.example/x", "/hard/root/%2F%2Fevil.example/x"):
                r = H.get(gw.proxy, p)
                assert r.status == 204, (p, r)
                line = up.requests[-1].split(b"\r\n", 1)[0]
                assert line.startswith(b"GET /") and not line.startswith(b"GET //"), (p, line)
    finally:
        up.close()


class ReloadingUpstream:
    """Keep-alive HTTP/1.1 upstream, one thread per connection. After reload(), connections
    accepted before it read the next request and close without answering (what a server's old
    workers do to idle keep-alive connections on a graceful reload); new ones answer."""

    def __init__(self):
        self.gen = 0
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def reload(self):
        self.gen += 1

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(conn, self.gen), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn, gen):
        conn.settimeout(0.2)
        data = b""
        with conn:
            while not self.stop:
                try:
                    chunk = conn.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    _, data = data.split(b"\r\n\r\n", 1)
                    if gen != self.gen:
                        return  # closed unanswered
                    time.sleep(0.05)  # let concurrent requests overlap: several pooled connections
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self):
        self.stop = True
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()


def test_resend_after_a_dead_pooled_connection_uses_a_fresh_one(tmpdir_str):
    """Three pooled connections die together (upstream reload): the request must not fail by
    being resent on the dead siblings."""
    import concurrent.futures
    up = ReloadingUpstream()
    try:
        with _gateway_for(tmpdir_str, "g", {"Rl": up}, workers=1) as gw:
            for _ in range(3):
                with concurrent.futures.ThreadPoolExecutor(4) as ex:
                    rs = list(ex.map(lambda _: H.get(gw.proxy, "/hard/rl/a"), range(4)))
                assert all(r.status == 200 for r in rs), rs
            assert up.accepted >= 3, up.accepted  # several idle pooled connections now
            up.reload()
            r = H.get(gw.proxy, "/hard/rl/a")
            assert r.status == 200, r
    finally:
        up.close()


# --------------------------------------------------------------------------- request side (issue 7)
# A strict recording upstream (strict_upstream.py) shows exactly what the gateway sent.

def _post_chunked(port, body, path="/hard/up/c", split=0):
    """Sends a chunked POST with the raw framing body (one write, or split-byte pieces)."""
    c = H.RawConn(port, timeout=10 * H.SLOW)
    data = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    if split:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), split):
            c.send(data[i:i + split])
    else:
        c.send(data)
    return c


CANONICAL = [
    # as received when already canonical (leading zeros are hex digits every parser reads alike)
    (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
    (b"000005\r\nhello\r\n0\r\n\r\n", b"000005\r\nhello\r\n0\r\n\r\n"),
    # BWS, extensions and trailers are never forwarded
    (b"5 \r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    (b"5\t\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    (b"5;a=b\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    (b'5 ; a = "x;y\\"z" ; b\r\nhello\r\n1;c=d\r\n!\r\n0;last\r\nX-Trailer: t\r\nY: 2\r\n\r\n',
     b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"),
]


def test_chunk_framing_reaches_the_upstream_canonical(tmpdir_str, strict_upstream):
    up = strict_upstream
    with _gateway_for(tmpdir_str, "g", {"Up": up}) as gw:
        for body, want in CANONICAL:
            for split in (0, 1, 3):
                up.reset()
                with _post_chunked(gw.proxy, body, split=split) as c:
                    r = c.read_response("POST")
                assert r.status == 200, (body, split, r)
                assert up.wait_requests(1), (body, split, up.requests)
                got = up.requests[0]
                assert up.violations == [], (body, up.violations)
                assert got.raw_body == want, (body, split, got.raw_body)
                assert got.header("Transfer-Encoding") == "chunked", got.headers
                assert got.trailers == [], got.trailers


MALFORMED = [
    b"5;\r\nhello\r\n0\r\n\r\n",                 # empty extension name
    b'5;a="x\r\nhello\r\n0\r\n\r\n',             # unterminated quoted string
    b"5;a=b c\r\nhello\r\n0\r\n\r\n",            # junk after a value
    b"5;a\x01\r\nhello\r\n0\r\n\r\n",            # CTL
    b"zz\r\nhello\r\n0\r\n\r\n",                 # bad hex
    b"5\nhello\r\n0\r\n\r\n",                    # bare LF
    b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",  # overflow
    b"00000000000000005\r\nhello\r\n0\r\n\r\n",   # 17 digits (Go and others refuse them)
    b"5\r\nhello\r\n0\r\nX : t\r\n\r\n",         # malformed trailer
]


def test_malformed_chunk_lines_are_400_and_nothing_goes_upstream(tmpdir_str, strict_upstream):
    up = strict_upstream
    with _gateway_for(tmpdir_str, "g", {"Up": up}) as gw:
        for body in MALFORMED:
            with _post_chunked(gw.proxy, body) as c:
                r = c.read_response("POST")
                H.assert_gw_error(r, 400, "invalid chunked request body")
                assert c.wait_closed(3 * H.SLOW), body
        # a good request afterwards: the upstream saw it, and nothing else
        r = H.http(gw.proxy, "POST", "/hard/up/marker", body=b"marker")
        assert r.status == 200, r
        assert up.wait_requests(1)
        marker = up.requests[-1].conn
        assert up.wait(lambda: all(c.done.is_set() for c in up.conns if c.index != marker) or None, 5 * H.SLOW)
        assert [(q.method, q.target) for q in up.requests] == [("POST", "/x/marker")], up.requests
        assert all(not c.raw for c in up.conns if c.index != marker)
        assert up.violations == []


def test_post_dropped_unanswered_on_a_pooled_connection_is_not_resent(tmpdir_str):
    """Issue 7: a POST the upstream read and then closed on without answering (a strict server
    refusing it, or one that crashed) was sent again on a fresh connection: never for a
    non-idempotent request whose bytes went out. Idempotent ones still are."""
    import strict_upstream as S
    for method, resent in (("POST", False), ("PATCH", False), ("PUT", True), ("DELETE", True)):
        up = S.StrictUpstream(drop={1})  # the second request is read, then dropped
        try:
            with _gateway_for(tmpdir_str, "g-" + method, {"Up": up}, workers=1) as gw:
                with H.RawConn(gw.proxy, timeout=10 * H.SLOW) as c:
                    r = c.request("GET", "/hard/up/first")
                    assert r.status == 200, r
                    r = c.request(method, "/hard/up/second", body=b"p" * 5000)
                # the client has its answer: any resend happened before it
                got = [(q.method, q.target, len(q.body)) for q in up.requests]
                if resent:
                    assert r.status == 200, (method, r)
                    assert got == [("GET", "/x/first", 0)] + [(method, "/x/second", 5000)] * 2, got
                else:
                    assert r.status == 502, (method, r)
                    assert got == [("GET", "/x/first", 0), (method, "/x/second", 5000)], got
                assert up.violations == []
        finally:
            up.stop()


def _wait_readable(sock, timeout):
    import select
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def _trickle(c, n, every):
    """Sends one body byte every `every` seconds, n at most, until the gateway answers (or
    closes). Returns the number of bytes sent."""
    sent = 0
    while sent < n:
        try:
            c.send(b"x")
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        if _wait_readable(c.sock, every):
            break
    return sent


def test_trickled_body_is_408_and_the_upstream_connection_closed(tmpdir_str, strict_upstream):
    """Issue 7 item 5: one byte every 0.5 s never trips the inactivity timeout; the minimum
    average rate over requestTimeout windows (after the first) does."""
    up = strict_upstream
    with _gateway_for(tmpdir_str, "g", {"Up": up}, requestTimeout=2, minBodyRate=1024) as gw:
        with H.RawConn(gw.proxy, timeout=20 * H.SLOW) as c:
            t0 = time.monotonic()
            c.send(b"POST /hard/up/trickle HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
            sent = _trickle(c, 40, 0.5)
            r = c.read_response("POST")
            took = time.monotonic() - t0
            H.assert_gw_error(r, 408, "request body too slow")
            assert took < 7 * H.SLOW, "408 after %.1fs (%d bytes sent)" % (took, sent)
            assert 3.5 < took, "408 after %.1fs: the first window is exempt" % took
            assert c.wait_closed(3 * H.SLOW)
        # the upstream had the head and the first bytes, then its connection was closed
        assert up.wait(lambda: up.conns and up.conns[0].closed_by_peer.is_set(), 5 * H.SLOW), up.conns
        assert len(up.requests) == 1 and not up.requests[0].complete, up.requests
        assert "request body slower than minBodyRate" in gw.log_text()


def test_large_upload_across_rate_windows_passes(tmpdir_str, strict_upstream):
    """8 MiB sent in paced pieces over more than two requestTimeout windows: far above the rate."""
    up = strict_upstream
    size, piece = 8 << 20, 64 << 10
    with _gateway_for(tmpdir_str, "g", {"Up": up}, requestTimeout=2, minBodyRate=1024) as gw:
        with H.RawConn(gw.proxy, timeout=30 * H.SLOW) as c:
            t0 = time.monotonic()
            c.send(b"POST /hard/up/big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
            for i in range(size // piece):
                c.send(b"u" * piece)
                if i < size // piece - 1:
                    assert not _wait_readable(c.sock, 0.04), "answered before the upload ended"
            r = c.read_response("POST")
            took = time.monotonic() - t0
        assert r.status == 200, r
        assert r.json()["body_len"] == size, r.json()
        assert took > 4.0, "upload took %.1fs: did not span two windows" % took


def test_min_body_rate_zero_disables_the_check(tmpdir_str, strict_upstream):
    up = strict_upstream
    with _gateway_for(tmpdir_str, "g", {"Up": up}, requestTimeout=2, minBodyRate=0) as gw:
        with H.RawConn(gw.proxy, timeout=20 * H.SLOW) as c:
            c.send(b"POST /hard/up/slow HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
            sent = _trickle(c, 12, 0.5)  # 6 s: three windows
            assert sent == 12, "the gateway answered while the body trickled in"
            c.send(b"x" * (1000 - sent))
            r = c.read_response("POST")
        assert r.status == 200, r
        assert r.json()["body_len"] == 1000, r.json()


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _long_head(size):
    """A request head of exactly size bytes: long header names and one long value of "a<TAB>"
    pairs (legal, and the slowest bytes for the head parser: no 16-byte skips)."""
    parts = [b"GET /hard/up/head HTTP/1.1\r\nHost: h\r\n"]
    for i in range(20):
        parts.append(b"X-%03d-%s: %d\r\n" % (i, b"n" * 300, i))
    n = sum(len(p) for p in parts)
    fill = size - n - len(b"X-Fill: ") - 4
    parts.append(b"X-Fill: " + (b"a\t" * fill)[:fill] + b"\r\n\r\n")
    return b"".join(parts)


def _trickle_cpu(gw, data, piece):
    """Gateway CPU seconds while data goes out in paced pieces (most arrive in reads of their
    own), until the response."""
    with H.RawConn(gw.proxy, timeout=60 * H.SLOW) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cpu0 = _cpu_seconds(gw.pid)
        for i in range(0, len(data), piece):
            c.send(data[i:i + piece])
            time.sleep(0.0001)
        r = c.read_response()
        cpu = _cpu_seconds(gw.pid) - cpu0
    assert r.status == 200, r
    return cpu


def test_head_trickled_in_small_pieces_costs_linear_cpu(tmpdir_str, strict_upstream):
    """Issue 7 item 6: a 60 KiB head sent in 2-byte pieces (~30 000 reads). Re-parsing the head
    from byte 0 on every read cost ~N^2/2 byte steps (about 2 s of CPU for this head); now each
    read checks only its own bytes, and what remains is the cost of the reads themselves."""
    up = strict_upstream
    head = _long_head(60 * 1024)
    with _gateway_for(tmpdir_str, "g", {"Up": up}, workers=1, logLevel="info") as gw:
        assert H.get(gw.proxy, "/hard/up/warm").status == 200
        cpu = _trickle_cpu(gw, head, 2)
        assert up.requests[-1].header("X-Fill") is not None
        print("gateway CPU, 60 KiB head in 2-byte pieces: %.3f s" % cpu)
        assert cpu < 0.6 * H.SLOW, "%.3f s of CPU for one trickled head" % cpu


def test_response_chunk_framing_reaches_the_client_canonical(tmpdir_str):
    """Chunk extensions and trailer fields from the upstream never reach the client: it gets
    the same body in plain chunked framing (sizes, data, CRLFs), as the request side does."""
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=\"a;b\"\r\nhello\r\n6 ; q=1\r\n world\r\n0;last\r\nX-Trailer: secret-ish\r\n\r\n")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        c, _ = srv.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.recv(4096)
        c.sendall(raw)
        c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("S", [
        H.entry("http://127.0.0.1:%d" % srv.getsockname()[1])])])])
    try:
        with H.gateway(tmpdir_str, cfg) as gw:
            c = socket.create_connection(("127.0.0.1", gw.proxy), timeout=10)
            c.sendall(b"GET /t/s/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
            c.close()
    finally:
        srv.close()
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), got
    assert body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", body
