"""SPEC §7: upstream failures → 502/504."""
import os
import time

import helpers as H


def test_connection_refused_is_502_empty(main_gw):
    r = H.get(main_gw.proxy, "/e2e/refused/x")
    assert r.status == 502, r
    assert r.body == b"", r
    assert not r.has_header("Target-System-Status"), r


def test_garbage_response_is_502(main_gw):
    r = H.get(main_gw.proxy, "/e2e/root/broken")
    assert r.status == 502, r
    assert b"NOT HTTP" not in r.body


def test_reset_is_502(main_gw):
    r = H.get(main_gw.proxy, "/e2e/root/reset")
    assert r.status == 502, r
    assert r.body == b"", r


def test_connection_usable_after_upstream_error(main_gw):
    with H.RawConn(main_gw.proxy) as c:
        assert c.request("GET", "/e2e/refused/x").status == 502
        assert c.request("GET", "/e2e/root/reset").status == 502
        r = c.request("GET", "/e2e/echo/ok")
        assert r.status == 200, r


def test_untrusted_https_without_skip_verify_is_502(main_gw):
    r = H.get(main_gw.proxy, "/e2e/tls-untrusted/x")
    assert r.status == 502, r
    assert r.body == b""


def test_https_hostname_mismatch_is_502(main_gw):
    """CA-signed cert, but for another host name: verification must check the name."""
    r = H.get(main_gw.proxy, "/e2e/tls-wrong-host/x")
    assert r.status == 502, r


def test_proxy_timeout_is_504(tmpdir_str, upstream):
    cfg = tmpdir_str + "/config"
    os.makedirs(cfg)
    H.write_yaml_docs(cfg + "/a.yaml", [H.application("t", [H.service("Slow", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, flags={"proxyTimeout": 1}) as gw:
        t0 = time.monotonic()
        r = H.get(gw.proxy, "/t/slow/slow?ms=3000", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert took < 2.8, "504 came after %.2fs, proxyTimeout is 1s" % took
        assert took >= 0.9, "504 came after %.2fs, before proxyTimeout of 1s" % took
        # a response within the timeout still works
        r = H.get(gw.proxy, "/t/slow/slow?ms=200", timeout=10)
        assert r.status == 200, r
        assert r.body == b"slow ok"
        assert gw.alive()
