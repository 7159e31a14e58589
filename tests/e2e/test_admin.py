"""SPEC §8: admin API on externalAPIPort."""
import json
import os
import re

import pytest

import helpers as H


def test_health(main_gw):
    r = H.get(main_gw.admin, "/v1/health")
    assert r.status == 200, r
    assert r.body == b""


def set_level(gw, level):
    return H.http(gw.admin, "PUT", "/v1/loglevel", [("Content-Type", "application/json")],
                  json.dumps({"level": level}).encode())


def test_loglevel_get_put(main_gw):
    r = H.get(main_gw.admin, "/v1/loglevel")
    assert r.status == 200, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert r.json() == {"level": "debug"}
    try:
        r = set_level(main_gw, "info")
        assert r.status in (200, 204), r
        assert H.get(main_gw.admin, "/v1/loglevel").json() == {"level": "info"}
        r = set_level(main_gw, "warn")
        assert r.status in (200, 204), r
        assert H.get(main_gw.admin, "/v1/loglevel").json() == {"level": "warn"}
    finally:
        assert set_level(main_gw, "debug").status in (200, 204)
    assert H.get(main_gw.admin, "/v1/loglevel").json() == {"level": "debug"}


def test_loglevel_affects_logging(tmpdir_str, upstream):
    """At error level a burst of requests (incl. a 404) logs nothing below error."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, log_level="debug") as gw:
        assert set_level(gw, "error").status in (200, 204)
        mark = len(gw.log_text())
        for _ in range(5):
            assert H.get(gw.proxy, "/t/up/echo").status == 200
            assert H.get(gw.proxy, "/t/nosvc/x").status == 404
        quiet = gw.log_text()[mark:]
        levels = re.findall(r'"level":"(\w+)"', quiet)
        assert not [lv for lv in levels if lv in ("debug", "info", "warn")], quiet[-2000:]
        assert set_level(gw, "debug").status in (200, 204)
        assert H.get(gw.admin, "/v1/loglevel").json() == {"level": "debug"}


@pytest.mark.parametrize("body", [b"not json", b'{"level":"verbose"}', b"{}", b'{"level":5}', b""])
def test_loglevel_bad_body_is_400(main_gw, body):
    r = H.http(main_gw.admin, "PUT", "/v1/loglevel", [("Content-Type", "application/json")], body)
    assert r.status == 400, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    doc = r.json()
    assert doc.get("code") == 400 and isinstance(doc.get("error"), str) and doc["error"], doc
    assert H.get(main_gw.admin, "/v1/loglevel").json() == {"level": "debug"}


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/healthz", "/v2/health", "/v1/health/x", "/e2e/echo/x"])
def test_unknown_path_404(main_gw, path):
    r = H.get(main_gw.admin, path)
    assert r.status == 404, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert r.json() == {"code": 404, "error": "Requested resource could not be found."}


@pytest.mark.parametrize("method,path", [("POST", "/v1/health"), ("DELETE", "/v1/health"),
                                         ("PUT", "/v1/health"), ("DELETE", "/v1/loglevel"),
                                         ("POST", "/v1/loglevel")])
def test_wrong_method_405(main_gw, method, path):
    r = H.http(main_gw.admin, method, path, body=b"{}")
    assert r.status == 405, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert r.json() == {"code": 405, "error": "Method not allowed."}


def test_metrics_prometheus_text(main_gw):
    assert H.get(main_gw.proxy, "/e2e/echo/for-metrics").status == 200
    r = H.get(main_gw.admin, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type", "").startswith("text/plain"), r
    text = r.body.decode("utf-8")
    samples = 0
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            assert not ln or re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", ln), ln
            continue
        assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
                        r'[-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|\+?Inf|-Inf)( -?\d+)?$', ln), ln
        samples += 1
    assert samples > 0, text
    assert "# TYPE" in text


def test_metrics_count_requests_and_durations(main_gw):
    """Counts move exactly with the requests sent, under the API's labels (the session's
    gateway: other tests' requests may still be in flight, so wait until none is)."""
    before = H.settled_metrics(main_gw.admin)
    for i in range(5):
        assert H.get(main_gw.proxy, "/e2e/echo/m%d" % i).status == 200
    assert H.get(main_gw.proxy, "/e2e/no-such-service/x").status == 404
    after = H.settled_metrics(main_gw.admin)
    d = lambda name: after.get(name, 0.0) - before.get(name, 0.0)
    api = 'app="e2e",service="Echo"'
    un = 'app="(unmatched)",service="(unmatched)"'
    assert d('appgw_requests_total{%s,code="200",outcome="proxied"}' % api) == 5
    assert d('appgw_requests_total{%s,code="404",outcome="gateway_error"}' % un) == 1
    assert d("appgw_request_duration_seconds_count{%s}" % api) == 5
    assert d('appgw_request_duration_seconds_bucket{%s,le="+Inf"}' % api) == 5
    assert d("appgw_upstream_duration_seconds_count{%s}" % api) == 5
    assert d("appgw_request_duration_seconds_count{%s}" % un) == 1
    assert d("appgw_upstream_duration_seconds_count{%s}" % un) == 0
    assert d("appgw_request_duration_seconds_sum{%s}" % api) > 0
    # buckets are cumulative
    les = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in after.items()
                 if k.startswith("appgw_request_duration_seconds_bucket{%s," % api))
    assert len(les) == 18 and [v for _, v in les] == sorted(v for _, v in les), les


def test_admin_keep_alive(main_gw):
    with H.RawConn(main_gw.admin) as c:
        for _ in range(10):
            assert c.request("GET", "/v1/health").status == 200
            assert c.request("GET", "/v1/loglevel").json() == {"level": "debug"}
