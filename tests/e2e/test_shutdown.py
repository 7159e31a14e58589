"""Graceful shutdown on SIGTERM: in-flight requests finish, listeners close, exit 0."""
import os
import signal
import socket
import threading
import time

import helpers as H


def _connect_refused(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def _upstream_calls(gw):
    """Upstream requests the gateway has started (new connections + pooled reuses)."""
    m = H.metrics(gw.admin)
    return m["appgw_upstream_connects_total"] + m["appgw_upstream_requests_reused_total"]


def _wait_upstream_call(gw, before):
    """Waits until the gateway has started one more upstream request than before."""
    ok, _ = H.wait_for(lambda: _upstream_calls(gw) > before, 5 * H.SLOW, 0.02)
    assert ok, "the slow request did not reach the upstream"


def test_graceful_shutdown(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    gw = H.Gateway(cfg, os.path.join(tmpdir_str, "appgw.stderr"), flags={"shutdownGrace": 10})
    try:
        # an idle keep-alive connection that has been served once
        idle = H.RawConn(gw.proxy, timeout=10)
        assert idle.request("GET", "/t/up/echo").status == 200
        result = {}
        calls0 = _upstream_calls(gw)

        def slow():
            try:
                t0 = time.monotonic()
                r = H.get(gw.proxy, "/t/up/slow?ms=1500", timeout=20)
                result["resp"] = r
                result["t"] = time.monotonic() - t0
            except Exception as ex:  # noqa: BLE001 - reported below
                result["err"] = repr(ex)
        th = threading.Thread(target=slow)
        th.start()
        _wait_upstream_call(gw, calls0)  # the request is at the upstream now
        t_sig = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        # new connections are refused soon after the signal, while the slow request still runs
        refused = {}
        for name, port in (("proxy", gw.proxy), ("compass", gw.compass)):
            ok, took = H.wait_for(lambda: _connect_refused(port), 1.0, 0.02)
            refused[name] = (ok, took)
        assert th.is_alive() or "resp" in result
        for name, (ok, took) in refused.items():
            assert ok, "%s port still accepts connections after SIGTERM" % name
        th.join(20)
        assert not th.is_alive(), "slow request did not finish"
        assert "err" not in result, "in-flight request failed during shutdown: %s" % result.get("err")
        r = result["resp"]
        assert r.status == 200, r
        assert r.body == b"slow ok"
        try:
            rc = gw.proc.wait(timeout=10 * H.SLOW)
        except Exception:  # noqa: BLE001
            rc = None
        assert rc == 0, "gateway exit code %r after SIGTERM (expected 0)\n%s" % (rc, gw.log_tail())
        assert time.monotonic() - t_sig < 10, "shutdown took longer than the grace period"
        # the idle keep-alive connection was closed
        assert idle.wait_closed(1), "idle keep-alive connection left open after exit"
        idle.close()
        assert not gw.sanitizer_reports(), "\n".join(gw.sanitizer_reports()[:20])
    finally:
        gw.stop()


def test_shutdown_grace_bounds_wait(tmpdir_str, upstream):
    """A request slower than shutdownGrace does not keep the process alive past the grace."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    gw = H.Gateway(cfg, os.path.join(tmpdir_str, "appgw.stderr"), flags={"shutdownGrace": 1, "proxyTimeout": 30})
    try:
        calls0 = _upstream_calls(gw)
        th = threading.Thread(target=lambda: _swallow(lambda: H.get(gw.proxy, "/t/up/slow?ms=8000", timeout=20)))
        th.start()
        _wait_upstream_call(gw, calls0)
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        try:
            rc = gw.proc.wait(timeout=6 * H.SLOW)
        except Exception:  # noqa: BLE001
            rc = None
        took = time.monotonic() - t0
        assert rc is not None, "gateway still running 6 s after SIGTERM with shutdownGrace=1"
        assert took < 4 * H.SLOW, "exit took %.1fs with shutdownGrace=1" % took
        th.join(20)
    finally:
        gw.stop()


def _swallow(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the connection is expected to be cut
        pass
