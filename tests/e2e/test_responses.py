"""SPEC §7: status mapping, Location rewriting, bodiless responses, chunked, 100-continue."""
import hashlib
import json
import time
from urllib.parse import quote

import pytest

import helpers as H
import upstream as U


@pytest.mark.parametrize("code", [500, 501, 503, 504, 599])
def test_5xx_becomes_502_with_target_system_status(main_gw, code):
    r = H.get(main_gw.proxy, "/e2e/root/status/%d" % code)
    assert r.status == 502, r
    assert r.header("Target-System-Status") == str(code), r
    assert r.body == ("status %d" % code).encode(), r
    assert r.header("Content-Type") == "text/plain", r


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 429])
def test_4xx_passed_through(main_gw, code):
    r = H.get(main_gw.proxy, "/e2e/root/status/%d" % code)
    assert r.status == code, r
    assert r.body == ("status %d" % code).encode()
    assert not r.has_header("Target-System-Status"), r


@pytest.mark.parametrize("code", [200, 202, 203])
def test_2xx_passed_through(main_gw, code):
    r = H.get(main_gw.proxy, "/e2e/root/status/%d" % code)
    assert r.status == code, r
    assert r.body == ("status %d" % code).encode()


def redirect_path(up, code, to, prefix="/e2e/redir"):
    return "%s/redirect?code=%d&to=%s" % (prefix, code, quote(to, safe=""))


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_location_same_host_rewritten(main_gw, upstream, code):
    to = "http://127.0.0.1:%d/base/target/x?q=1&r=2#frag" % upstream.port
    r = H.get(main_gw.proxy, redirect_path(upstream, code, to))
    assert r.status == code, r
    assert r.header("Location") == "/e2e/redir/target/x?q=1&r=2#frag", r


def test_location_same_host_other_port_rewritten(main_gw, upstream):
    """Only the host *name* is compared (SPEC §7)."""
    r = H.get(main_gw.proxy, redirect_path(upstream, 302, "http://127.0.0.1:1/base/p?x=1"))
    assert r.header("Location") == "/e2e/redir/p?x=1", r
    r = H.get(main_gw.proxy, redirect_path(upstream, 302, "https://127.0.0.1/base/s"))
    assert r.header("Location") == "/e2e/redir/s", r


def test_location_relative_resolved_and_rewritten(main_gw, upstream):
    r = H.get(main_gw.proxy, redirect_path(upstream, 302, "/base/rel"))
    assert r.status == 302, r
    assert r.header("Location") == "/e2e/redir/rel", r
    # relative to the request URL /base/redirect -> /base/sibling
    r = H.get(main_gw.proxy, redirect_path(upstream, 307, "sibling?a=b"))
    assert r.header("Location") == "/e2e/redir/sibling?a=b", r


def test_location_exact_target_path(main_gw, upstream):
    r = H.get(main_gw.proxy, redirect_path(upstream, 301, "http://127.0.0.1:%d/base" % upstream.port))
    assert r.header("Location") in ("/e2e/redir", "/e2e/redir/"), r


def test_location_other_host_unchanged(main_gw, upstream):
    for to in ("http://other.example.invalid/base/target",
               "http://localhost:%d/base/target" % upstream.port,  # different host *name*
               "https://example.org/x"):
        r = H.get(main_gw.proxy, redirect_path(upstream, 302, to))
        assert r.status == 302
        assert r.header("Location") == to, (to, r)


def test_location_same_host_outside_target_path_unchanged(main_gw, upstream):
    for to in ("http://127.0.0.1:%d/elsewhere/x" % upstream.port,
               "http://127.0.0.1:%d/basement/x" % upstream.port):
        r = H.get(main_gw.proxy, redirect_path(upstream, 302, to))
        assert r.header("Location") == to, (to, r)


def test_location_non_http_scheme_unchanged(main_gw, upstream):
    to = "ftp://127.0.0.1/base/x"
    r = H.get(main_gw.proxy, redirect_path(upstream, 302, to))
    assert r.header("Location") == to, r


def test_location_on_compass_port_uses_entry_prefix(main_gw, upstream):
    to = "http://127.0.0.1:%d/base/target" % upstream.port
    r = H.get(main_gw.compass, redirect_path(upstream, 301, to, prefix="/e2e/redir/api"))
    assert r.status == 301, r
    assert r.header("Location") == "/e2e/redir/api/target", r


def test_location_201_rewritten(main_gw, upstream):
    to = "http://127.0.0.1:%d/base/items/42" % upstream.port
    r = H.http(main_gw.proxy, "POST", "/e2e/redir/created?location=%s" % quote(to, safe=""), body=b"{}")
    assert r.status == 201, r
    assert r.header("Location") == "/e2e/redir/items/42", r
    assert r.body == b"created"


def test_location_200_not_rewritten(main_gw, upstream):
    to = "http://127.0.0.1:%d/base/items/42" % upstream.port
    r = H.get(main_gw.proxy, "/e2e/redir/status/200?location=%s" % quote(to, safe=""))
    assert r.status == 200
    assert r.header("Location") == to, r


def test_location_from_nginx_redirect(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/nginx/redir")
    assert r.status == 301, r
    assert r.header("Location") == "/e2e/nginx/target", r
    r = H.get(main_gw.proxy, "/e2e/nginx/redir-other")
    assert r.status == 302, r
    assert r.header("Location") == "http://other.example.invalid/base/target", r


def test_head_has_no_body(main_gw):
    with H.RawConn(main_gw.proxy) as c:
        c.send(H.build_request("HEAD", "/e2e/echo/head", host="127.0.0.1"))
        r = c.read_response("HEAD")
        assert r.status == 200, r
        # If the gateway sent a body after the HEAD answer, it would be parsed as the next
        # response here and fail.
        r2 = c.request("GET", "/e2e/echo/after-head")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/base/after-head"
        assert r2.json()["method"] == "GET"


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_status(main_gw, code):
    with H.RawConn(main_gw.proxy) as c:
        r = c.request("GET", "/e2e/root/status/%d" % code)
        assert r.status == code, r
        assert r.body == b""
        assert r.header("Transfer-Encoding") is None, r
        r2 = c.request("GET", "/e2e/echo/after")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/base/after"


def test_chunked_response(main_gw):
    with H.RawConn(main_gw.proxy) as c:
        r = c.request("GET", "/e2e/root/chunked?n=7&size=3000")
        assert r.status == 200, r
        assert r.body == U.pattern_bytes(0, 21000)
        r2 = c.request("GET", "/e2e/root/chunked?n=1&size=10")
        assert r2.body == U.pattern_bytes(0, 10)


def test_slow_body_streamed(main_gw):
    r = H.get(main_gw.proxy, "/e2e/root/slowbody?ms=150&parts=4")
    assert r.status == 200
    assert r.body == b"part0part1part2part3"


def test_post_body_forwarded(main_gw):
    body = b"x" * 100000
    r = H.http(main_gw.proxy, "POST", "/e2e/echo/post", [("Content-Type", "application/octet-stream")], body)
    assert r.status == 200, r
    doc = r.json()
    assert doc["method"] == "POST"
    assert doc["body_len"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_forwarded(main_gw):
    parts = [b"a" * 10, b"b" * 70000, b"c"]
    data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with H.RawConn(main_gw.proxy) as c:
        c.send(H.build_request("PUT", "/e2e/echo/chunk-upload", [("Transfer-Encoding", "chunked")],
                               host="127.0.0.1") + data)
        r = c.read_response("PUT")
        assert r.status == 200, r
        doc = r.json()
        assert doc["body_len"] == sum(map(len, parts))
        assert doc["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS", "PUT"])
def test_methods_forwarded(main_gw, method):
    r = H.http(main_gw.proxy, method, "/e2e/echo/m", body=b"{}" if method in ("PATCH", "PUT") else None)
    assert r.status == 200, r
    assert r.json()["method"] == method


def test_expect_100_continue_upload(main_gw):
    body = b"0123456789" * 50000
    with H.RawConn(main_gw.proxy, timeout=10) as c:
        c.send(H.build_request("POST", "/e2e/root/upload", [
            ("Content-Type", "application/octet-stream"), ("Expect", "100-continue"),
            ("Content-Length", str(len(body)))], host="127.0.0.1"))
        c.sock.settimeout(5)
        status, reason, headers, head = c.read_head()
        assert status == 100, "expected an interim 100 Continue before sending the body, got %r" % head
        c.sock.settimeout(15)
        c.send(body)
        r = c.read_response("POST")
        assert r.status == 200, r
        doc = json.loads(r.body)
        assert doc == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_expect_100_continue_error_without_body(main_gw):
    """A request that fails routing gets its final answer without the body being sent."""
    with H.RawConn(main_gw.proxy, timeout=10) as c:
        c.send(H.build_request("POST", "/e2e/nosvc/upload", [
            ("Expect", "100-continue"), ("Content-Length", "1000000")], host="127.0.0.1"))
        c.sock.settimeout(5)
        t0 = time.monotonic()
        r = c.read_response("POST")
        assert r.status == 404, r
        assert time.monotonic() - t0 < 4
