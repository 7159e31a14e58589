"""Hostile input and failure modes that once slipped through (issue 7): oversized Content-Length,
many Connection headers, dot-segments and // targets, duplicate upstream Content-Length,
malformed or stalled upstream bodies, a second gateway on our ports, resends after an upstream
reload."""
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
