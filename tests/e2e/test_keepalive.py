"""Client-side keep-alive and pipelining."""
import hashlib
import json
import threading
import time

import helpers as H


def test_many_requests_on_one_connection(main_gw):
    accepted_before = H.metric(main_gw.admin, "appgw_connections_accepted_total")
    with H.RawConn(main_gw.proxy) as c:
        for i in range(300):
            if i % 3 == 0:
                r = c.request("GET", "/e2e/echo/k/%d?i=%d" % (i, i))
                assert r.status == 200, (i, r)
                doc = r.json()
                assert doc["path"] == "/base/k/%d" % i and doc["query"] == "i=%d" % i
            elif i % 3 == 1:
                body = (b"%d" % i) * 100
                r = c.request("POST", "/e2e/echo/p", body=body)
                assert r.status == 200, (i, r)
                assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
            else:
                r = c.request("GET", "/e2e/nosvc/x")  # gateway's own error keeps the connection
                assert r.status == 404, (i, r)
            assert r.header("Connection", "").lower() != "close", (i, r)
            assert not c.eof, i
        # all 300 requests were served on the one client connection: the gateway accepted
        # exactly one connection meanwhile (a reconnect would show up here)
        accepted = H.metric(main_gw.admin, "appgw_connections_accepted_total") - accepted_before
        assert accepted == 1, "gateway accepted %d connections for 300 keep-alive requests" % accepted


def test_http10_client_gets_close(main_gw):
    with H.RawConn(main_gw.proxy) as c:
        c.send(b"GET /e2e/echo/x HTTP/1.0\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["path"] == "/base/x"
        assert c.wait_closed(3), "HTTP/1.0 request without keep-alive must end with close"


def _read_all(c, timeout=10):
    import socket, time
    data = c.buf
    c.buf = b""
    c.sock.settimeout(timeout)
    end = time.time() + timeout
    while time.time() < end:
        try:
            d = c.sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            return data, True
        data += d
    return data, False


def test_http10_client_gets_chunked_upstream_body_decoded(main_gw):
    """An HTTP/1.0 client cannot read chunked framing: the body arrives decoded, delimited by
    the close of the connection."""
    from upstream import pattern_bytes
    with H.RawConn(main_gw.proxy) as c:
        c.send(b"GET /e2e/root/chunked?n=40&size=3000 HTTP/1.0\r\nHost: a\r\n\r\n")
        data, closed = _read_all(c)
    assert closed, "connection not closed after a close-delimited body"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 200"), head
    names = [ln.split(b":", 1)[0].strip().lower() for ln in lines[1:]]
    assert b"transfer-encoding" not in names, head
    assert b"content-length" not in names, head
    assert body == pattern_bytes(0, 40 * 3000), (len(body), body[:40])


def test_connection_close_honoured(main_gw):
    with H.RawConn(main_gw.proxy) as c:
        r = c.request("GET", "/e2e/echo/x", [("Connection", "close")])
        assert r.status == 200, r
        assert c.wait_closed(3), "connection not closed after Connection: close"


def test_pipelined_requests_answered_in_order(main_gw):
    reqs = []
    for i in range(10):
        if i == 3:
            reqs.append(H.build_request("GET", "/e2e/root/slow?ms=300&n=%d" % i, host="a"))
        elif i == 5:
            reqs.append(H.build_request("POST", "/e2e/echo/pipe?n=%d" % i, body=b"body-%d" % i, host="a"))
        elif i == 7:
            reqs.append(H.build_request("GET", "/e2e/nosvc/x?n=%d" % i, host="a"))
        else:
            reqs.append(H.build_request("GET", "/e2e/echo/pipe?n=%d" % i, host="a"))
    with H.RawConn(main_gw.proxy) as c:
        c.send(b"".join(reqs))
        for i in range(10):
            r = c.read_response("POST" if i == 5 else "GET")
            if i == 3:
                assert (r.status, r.body) == (200, b"slow ok"), (i, r)
            elif i == 7:
                assert r.status == 404, (i, r)
            else:
                assert r.status == 200, (i, r)
                doc = json.loads(r.body)
                assert doc["query"] == "n=%d" % i, (i, doc)
                if i == 5:
                    assert doc["body_len"] == len(b"body-%d" % i)
        # connection still usable afterwards
        r = c.request("GET", "/e2e/echo/end")
        assert r.status == 200


def test_pipelined_across_ports_and_apps(main_gw):
    with H.RawConn(main_gw.compass) as c:
        c.send(H.build_request("GET", "/e2e/echo/api/a", host="a") + H.build_request("GET", "/raw/echo/api/b%2Fc", host="a"))
        r1 = c.read_response()
        r2 = c.read_response()
        assert r1.json()["path"] == "/base/a"
        assert r2.json()["path"] == "/base/b%2Fc"


def test_concurrent_slow_requests_do_not_block_each_other(main_gw):
    """40 requests that each wait 700 ms upstream, in parallel: an event-driven gateway
    finishes them all in about 700 ms, not 40 x 700 ms / workers."""
    n = 40
    results = [None] * n

    def one(i):
        try:
            results[i] = H.get(main_gw.proxy, "/e2e/root/slow?ms=700&i=%d" % i, timeout=30).status
        except Exception as ex:  # noqa: BLE001 - reported below
            results[i] = repr(ex)
    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    took = time.monotonic() - t0
    assert results == [200] * n, results
    assert took < 3.5 * H.SLOW, "40 parallel 700 ms requests took %.1fs" % took
