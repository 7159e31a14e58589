"""Malformed and hostile clients, on raw sockets."""
import os
import re
import resource
import select
import socket
import time

import pytest

import helpers as H


def bad_request(port, data, expect, timeout=5):
    with H.RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == expect, "sent %r, got %r" % (data[:200], r)
        assert c.wait_closed(3), "connection not closed after %d for %r" % (expect, data[:200])
        return r


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /e2e/echo/x\r\n\r\n",
    b"GET /e2e/echo/x HTTP/1.1 extra\r\nHost: a\r\n\r\n",
    b"GET /e2e/echo/x HTTX/1.1\r\nHost: a\r\n\r\n",
    b"GET /e2e/echo/x HTTP/1.1\r\nNo-Colon-Header\r\n\r\n",
    b"GET /e2e/echo/x HTTP/1.1\r\nBad Name: v\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # TLS hello on plain port
])
def test_malformed_request_is_400_and_closed(main_gw, data):
    bad_request(main_gw.proxy, data, 400)


def test_http11_without_host_is_400(main_gw):
    """RFC 9112 §3.2: an HTTP/1.1 request without Host (or with two) gets 400, as in the original."""
    r = H.http(main_gw.proxy, "GET", "/e2e/echo/x", host=False)
    assert r.status == 400, r
    r = H.http(main_gw.proxy, "GET", "/e2e/echo/x", [("Host", "a"), ("Host", "b")], host=False)
    assert r.status == 400, r


def test_malformed_request_on_admin_port(main_gw):
    bad_request(main_gw.admin, b"GARBAGE\r\n\r\n", 400)


def test_head_over_64k_is_431(main_gw):
    big = "a" * 1024
    hdrs = "".join("X-Big-%d: %s\r\n" % (i, big) for i in range(70))
    data = ("GET /e2e/echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + hdrs + "\r\n").encode()
    bad_request(main_gw.proxy, data, 431)


def test_single_huge_header_is_431(main_gw):
    data = b"GET /e2e/echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " + b"b" * (66 * 1024) + b"\r\n\r\n"
    bad_request(main_gw.proxy, data, 431)


def test_head_under_64k_accepted(main_gw):
    hdrs = [("X-Big-%d" % i, "c" * 1000) for i in range(40)]
    r = H.http(main_gw.proxy, "GET", "/e2e/echo/x", hdrs)
    assert r.status == 200, r
    assert len(H.echo_headers(r)) >= 40


@pytest.fixture
def strict_gw(tmpdir_str, strict_upstream):
    """A gateway whose one API (/t/up/...) is the strict recording upstream (gw.up)."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [
        H.entry(strict_upstream.url("/x"))])])])
    with H.gateway(tmpdir_str, cfg) as gw:
        gw.up = strict_upstream
        yield gw


def nothing_went_upstream(gw):
    """After requests the gateway refused: a good one reaches the strict upstream, and it is
    all the upstream ever got (no bytes on any other connection, no violation)."""
    r = H.http(gw.proxy, "POST", "/t/up/marker", body=b"marker")
    assert r.status == 200, r
    up = gw.up
    assert up.wait_requests(1, 5 * H.SLOW)
    marker = up.requests[-1].conn
    assert up.wait(lambda: all(c.done.is_set() for c in up.conns if c.index != marker) or None, 5 * H.SLOW)
    assert [(q.method, q.target) for q in up.requests] == [("POST", "/x/marker")], up.requests
    assert all(not c.raw for c in up.conns if c.index != marker), [bytes(c.raw[:80]) for c in up.conns]
    assert up.violations == []


def test_content_length_and_transfer_encoding_is_400(strict_gw):
    bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400)
    nothing_went_upstream(strict_gw)


def test_conflicting_content_length_is_400(strict_gw):
    bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                b"Content-Length: 6\r\n\r\nhello!", 400)
    bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400)
    nothing_went_upstream(strict_gw)


def test_invalid_content_length_is_400(strict_gw):
    for v in (b"-1", b"abc", b"0x10", b"99999999999999999999999", b"+5", b" "):
        bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + v +
                    b"\r\n\r\n", 400)
    nothing_went_upstream(strict_gw)


def test_transfer_encoding_other_than_chunked_is_400(strict_gw):
    for te in (b"gzip", b"chunked, chunked", b"gzip, chunked", b"identity"):
        bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te +
                    b"\r\n\r\n0\r\n\r\n", 400)
    nothing_went_upstream(strict_gw)


def test_bad_chunk_framing_is_400(strict_gw):
    bad_request(strict_gw.proxy, b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\nhello\r\n0\r\n\r\n", 400)
    nothing_went_upstream(strict_gw)


def test_duplicate_identical_content_length_goes_upstream_once(strict_gw):
    """Identical repeated values are accepted (as Go does); the upstream gets one header."""
    with H.RawConn(strict_gw.proxy) as c:
        c.send(b"POST /t/up/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response("POST")
    assert r.status == 200, r
    q = strict_gw.up.requests[-1]
    assert [v for k, v in q.headers if k.lower() == "content-length"] == ["5"], q.headers
    assert q.raw_body == b"hello"
    assert strict_gw.up.violations == []


def test_request_timeout_is_408_and_closed(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, flags={"requestTimeout": 1}) as gw:
        with H.RawConn(gw.proxy, timeout=10) as c:
            t0 = time.monotonic()
            c.send(b"POST /t/up/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            r = c.read_response("POST")
            took = time.monotonic() - t0
            assert r.status == 408, r
            assert took < 3.5, "408 after %.2fs with requestTimeout=1" % took
            assert c.wait_closed(3), "connection still open after 408"
        # a slow but complete head within the timeout works
        with H.RawConn(gw.proxy, timeout=10) as c:
            c.send(b"GET /t/up/echo HTTP/1.1\r\n")
            time.sleep(0.3)
            c.send(b"Host: a\r\n\r\n")
            r = c.read_response()
            assert r.status == 200, r
        # an incomplete head is also bounded by requestTimeout
        with H.RawConn(gw.proxy, timeout=10) as c:
            t0 = time.monotonic()
            c.send(b"GET /t/up/echo HTTP/1.1\r\nHost: a\r\n")
            try:
                r = c.read_response()
                assert r.status == 408, r
            except EOFError:
                pass  # closing without an answer is acceptable for an unfinished head
            assert time.monotonic() - t0 < 3.5
        assert gw.alive()


def _fd_settled(pid, baseline, slack, timeout):
    v, _ = H.wait_for(lambda: H.count_fds(pid) <= baseline + slack, timeout)
    return bool(v)


def _conn_metrics(port):
    """Gauges from /metrics that look like open-connection counts, if exposed."""
    try:
        r = H.get(port, "/metrics", timeout=5)
    except (OSError, EOFError):
        return {}
    if r.status != 200:
        return {}
    out = {}
    for ln in r.body.decode("utf-8", "replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$", ln)
        if m and "conn" in m.group(1) and re.search(r"open|active|current|inflight|in_flight", m.group(1)) \
                and not m.group(1).endswith(("_total", "_count", "_sum", "_bucket")):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_client_disconnect_mid_upload_no_leak(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg) as gw:
        # warm up (upstream keep-alive pool etc.), then take the baseline
        for _ in range(3):
            assert H.get(gw.proxy, "/t/up/echo").status == 200
        # the warm-up client connections are closed on the gateway's side too
        idle, _ = H.wait_for(lambda: H.metric(gw.admin, "appgw_connections_active") == 0, 5 * H.SLOW)
        assert idle, "warm-up connections still open: %r" % H.metric(gw.admin, "appgw_connections_active")
        base_fds = H.count_fds(gw.pid)
        base_metrics = _conn_metrics(gw.admin)
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", gw.proxy), timeout=5)
            s.sendall(b"POST /t/up/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
            s.sendall(b"x" * 300000)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            s.close()
        # chunked upload aborted mid-chunk
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", gw.proxy), timeout=5)
            s.sendall(b"POST /t/up/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n" + b"y" * 1000)
            s.close()
        r = H.get(gw.proxy, "/t/up/echo/next")
        assert r.status == 200, r
        assert _fd_settled(gw.pid, base_fds, 4, 5 * H.SLOW), \
            "gateway fds did not return to baseline: %d before, %d after 25 aborted uploads" % (
                base_fds, H.count_fds(gw.pid))
        if base_metrics:
            def settled():
                now = _conn_metrics(gw.admin)
                return all(now.get(k, 0) <= v + 2 for k, v in base_metrics.items())
            ok, _ = H.wait_for(settled, 5 * H.SLOW, 0.2)
            assert ok, "connection gauges did not settle: before %r after %r" % (base_metrics, _conn_metrics(gw.admin))
        assert gw.alive()


def _open_many(port, n, deadline):
    socks = []
    while len(socks) < n:
        if time.monotonic() > deadline:
            raise AssertionError("opened only %d of %d connections in time" % (len(socks), n))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            raise
        socks.append(s)
    return socks


def test_10k_idle_keepalive_connections(tmpdir_str, upstream):
    n = 10000
    soft, hard = H.raise_nofile()
    if soft < n + 500:
        pytest.skip("RLIMIT_NOFILE hard limit %d too small for %d connections in this environment" % (hard, n))
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    # start the gateway with a low soft limit: it must raise its own up to the hard limit
    with H.gateway(tmpdir_str, cfg, flags={"requestTimeout": 60},
                   rlimit_nofile=(min(1024, soft), soft)) as gw:
        socks = []
        try:
            deadline = time.monotonic() + 60 * H.SLOW
            # half of them have served one request (kept alive), half never sent anything
            socks = _open_many(gw.proxy, n, deadline)
            used = socks[: n // 2:25]
            for s in used:
                s.sendall(b"GET /t/up/echo/first HTTP/1.1\r\nHost: a\r\n\r\n")
            for s in used:
                c = H.RawConn(gw.proxy, sock=s, timeout=30)
                r = c.read_response()
                assert r.status == 200, r
                assert not c.buf
            # a normal request on a new connection still works
            r = H.get(gw.proxy, "/t/up/echo/fresh", timeout=30)
            assert r.status == 200, r
            assert r.json()["path"] == "/echo/fresh"
            # nothing was closed by the gateway: no socket is readable (EOF would be)
            p = select.poll()
            for s in socks:
                p.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
            ready = p.poll(500)
            closed = [fd for fd, ev in ready]
            assert not closed, "%d of %d idle connections were closed/readable" % (len(closed), n)
            # and a sample of them still answers
            sample = socks[::97]
            for s in sample:
                s.sendall(b"GET /t/up/echo/sample HTTP/1.1\r\nHost: a\r\n\r\n")
            for s in sample:
                c = H.RawConn(gw.proxy, sock=s, timeout=30)
                r = c.read_response()
                assert r.status == 200, r
            assert gw.alive()
        finally:
            for s in socks:
                s.close()
        r = H.get(gw.admin, "/v1/health")
        assert r.status == 200


def test_fd_exhaustion_survives(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, rlimit_nofile=(64, 64)) as gw:
        # a few established keep-alive connections that have been served once
        existing = []
        for _ in range(4):
            c = H.RawConn(gw.proxy, timeout=15)
            r = c.request("GET", "/t/up/echo/before")
            assert r.status == 200, r
            existing.append(c)
        flood = []
        try:
            for _ in range(150):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(3)
                try:
                    s.connect(("127.0.0.1", gw.proxy))
                except OSError:
                    s.close()
                    break
                flood.append(s)
            # the gateway has run out of fds on the flood (it logs that it refuses connections)
            exhausted, _ = H.wait_for(lambda: "out of file descriptors" in gw.log_text(), 5 * H.SLOW)
            assert exhausted, "flood of %d connections did not exhaust fds:\n%s" % (len(flood), gw.log_tail())
            assert gw.alive(), "gateway died under fd exhaustion:\n" + gw.log_tail()
            print("flood: %d connections, gateway fds %d" % (len(flood), H.count_fds(gw.pid)))
            # existing connections still get an answer (the upstream call itself may fail for
            # lack of fds, but the client must get a well-formed response, not a hang)
            for i, c in enumerate(existing):
                c.send(b"GET /t/up/echo/during HTTP/1.1\r\nHost: a\r\n\r\n")
                c.sock.settimeout(10)
                try:
                    r = c.read_response()
                except socket.timeout:
                    raise AssertionError("existing keep-alive connection #%d got no answer within 10 s while "
                                         "the gateway was out of fds; stderr tail:\n%s" % (i, gw.log_tail(8)))
                assert r.status in (200, 502, 503), r
        finally:
            for s in flood:
                s.close()
        # once the flood is gone, everything works again
        def ok():
            try:
                return H.get(gw.proxy, "/t/up/echo/after", timeout=5).status == 200
            except (OSError, EOFError):
                return False
        good, _ = H.wait_for(ok, 10 * H.SLOW, 0.2)
        assert good, "gateway does not serve new connections after the flood:\n" + gw.log_tail()
        for c in existing:
            r = c.request("GET", "/t/up/echo/after")
            assert r.status == 200, r
            c.close()
        assert H.get(gw.admin, "/v1/health").status == 200
        assert gw.alive()
