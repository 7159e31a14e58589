"""Issue 8: per-API metrics (exact counts, bounded labels, series lifetime, promtool), the
access log and request IDs."""
import json
import os
import random
import re
import shutil
import subprocess

import pytest

import helpers as H

UN = 'app="(unmatched)",service="(unmatched)"'


@pytest.fixture(scope="module")
def obs(tmp_path_factory, upstream, closed_port):
    d = str(tmp_path_factory.mktemp("obs"))
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), [
        H.application("shop", [H.service("Orders", [H.entry(upstream.url())]),
                               H.service("Broken", [H.entry("http://127.0.0.1:%d/" % closed_port)])]),
        H.application("crm", [H.service("Contacts \"EU\"", [H.entry(upstream.url())])]),
    ])
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"), log_level="info")
    yield gw
    assert gw.stop() == 0
    assert not gw.sanitizer_reports()


def labels(app, service):
    return 'app="%s",service="%s"' % (app, service.replace("\\", "\\\\").replace('"', '\\"'))


def test_counts_move_exactly_with_the_requests(obs, closed_port):
    before = H.settled_metrics(obs.admin)
    for i in range(3):
        assert H.get(obs.proxy, "/shop/orders/echo?i=%d" % i).status == 200
    for _ in range(2):
        assert H.get(obs.proxy, "/shop/orders/status/503").status == 502
    assert H.get(obs.proxy, "/crm/contacts-eu/status/404").status == 404
    for _ in range(2):
        assert H.get(obs.proxy, "/shop/broken/x").status == 502
    assert H.get(obs.proxy, "/shop/nosvc/x").status == 404
    body = b"x" * 1000
    r = H.http(obs.proxy, "POST", "/shop/orders/echo", [("Content-Type", "text/plain")], body)
    assert r.status == 200
    after = H.settled_metrics(obs.admin)
    d = lambda k: after.get(k, 0.0) - before.get(k, 0.0)
    shop, crm = labels("shop", "Orders"), labels("crm", 'Contacts "EU"')
    broken = labels("shop", "Broken")
    req = 'appgw_requests_total{%s,code="%s",outcome="%s"}'
    assert d(req % (shop, 200, "proxied")) == 4
    assert d(req % (shop, 502, "proxied")) == 2, "an upstream 503 is answered (as 502) by the upstream"
    assert d(req % (crm, 404, "proxied")) == 1
    assert d(req % (broken, 502, "upstream_error")) == 2
    assert d(req % (UN, 404, "gateway_error")) == 1
    # nothing else moved
    moved = {k: d(k) for k in after if k.startswith("appgw_requests_total{") and d(k)}
    assert len(moved) == 5, moved
    assert d("appgw_request_duration_seconds_count{%s}" % shop) == 6
    assert d("appgw_upstream_duration_seconds_count{%s}" % shop) == 6
    assert d("appgw_upstream_duration_seconds_count{%s}" % broken) == 0, "no upstream head, no upstream time"
    assert d("appgw_request_body_bytes_total{%s}" % shop) == 1000
    assert d("appgw_response_body_bytes_total{%s}" % crm) == len(b"status 404")
    host = 'host="127.0.0.1:%d",scheme="http"' % closed_port
    assert d("appgw_upstream_connect_errors_total{%s}" % host) == 2
    assert after["appgw_requests_in_flight"] == 0


def test_in_flight_gauge(obs):
    import threading
    done = []
    t = threading.Thread(target=lambda: done.append(H.get(obs.proxy, "/shop/orders/slow?ms=1500").status))
    t.start()
    try:
        v, _ = H.wait_for(lambda: H.metrics(obs.admin).get("appgw_requests_in_flight") == 1, 5)
        assert v, "the slow request is not seen in flight"
    finally:
        t.join(10)
    assert done == [200]
    assert H.settled_metrics(obs.admin)["appgw_requests_in_flight"] == 0


def _label_sets(text):
    return set(re.findall(r'^appgw_requests_total\{(app="(?:[^"\\]|\\.)*",service="(?:[^"\\]|\\.)*")',
                          text, re.M))


def test_garbage_paths_create_no_series(obs):
    rnd = random.Random(8)
    paths = ["/", "/x", "/x/y", "/%ff%fe/%00/z", "/shop/%2e%2e/x", "/../../etc/passwd", "/shop//x",
             "/" + "a" * 3000 + "/b/c", "/shop/orders%00/x", "/\xff".encode("latin-1").decode("latin-1")]
    paths += ["/%s/%s/p" % ("".join(rnd.choice("abcdefgh") for _ in range(8)),
                            "".join(rnd.choice("xyz123") for _ in range(6))) for _ in range(40)]
    for p in paths:
        try:
            H.get(obs.proxy, p)
        except (OSError, EOFError, ValueError):
            pass
    text = H.http(obs.admin, "GET", "/metrics").body.decode()
    H.settled_metrics(obs.admin)
    allowed = {UN, labels("shop", "Orders"), labels("shop", "Broken"), labels("crm", 'Contacts "EU"')}
    assert _label_sets(text) <= allowed, _label_sets(text) - allowed


def test_deleted_application_series_disappear(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    keep = os.path.join(cfg, "keep.yaml")
    gone = os.path.join(cfg, "gone.yaml")
    H.write_yaml_docs(keep, [H.application("keep", [H.service("K", [H.entry(upstream.url())])])])
    H.write_yaml_docs(gone, [H.application("gone", [H.service("G", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, log_level="info") as gw:
        assert H.get(gw.proxy, "/gone/g/echo").status == 200
        assert H.get(gw.proxy, "/keep/k/echo").status == 200
        m = H.settled_metrics(gw.admin)
        assert m['appgw_requests_total{app="gone",service="G",code="200",outcome="proxied"}'] == 1
        gen = m["appgw_config_generation"]
        os.unlink(gone)
        v, _ = H.wait_for(lambda: H.metrics(gw.admin)["appgw_config_generation"] > gen, 10)
        assert v, "the deletion was not loaded"
        # each worker lets go of the old route table as it takes the new one (asynchronously)
        text, _ = H.wait_for(lambda: (lambda t: t if 'app="gone"' not in t else None)(
            H.http(gw.admin, "GET", "/metrics").body.decode()), 5)
        assert text, "the deleted application's series are still there"
        assert 'appgw_requests_total{app="keep",service="K",code="200",outcome="proxied"} 1' in text
        assert H.get(gw.proxy, "/gone/g/echo").status == 404


def test_promtool_check_metrics(obs):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh installs Debian's prometheus package"
    for p in ("/shop/orders/echo", "/shop/broken/x", "/nope/x/y", "/crm/contacts-eu/status/201"):
        H.get(obs.proxy, p)
    text = H.http(obs.admin, "GET", "/metrics").body
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (r.stdout, r.stderr)


def _access_lines(gw, mark=0):
    out = []
    for ln in gw.log_text()[mark:].splitlines():
        doc = json.loads(ln)  # every line is JSON
        if doc.get("msg") == "request":
            out.append(doc)
    return out


def _wait_access(gw, mark, pred):
    v, _ = H.wait_for(lambda: [d for d in _access_lines(gw, mark) if pred(d)], 5)
    assert v, "no access log line matched; log tail:\n" + gw.log_tail()
    return v[0]


def test_access_log_and_request_id(obs):
    mark = len(obs.log_text())
    rid = "0af7651916cd43dd-b7ad6b7169203331:01"
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = H.http(obs.proxy, "POST", "/shop/orders/echo?token=qv-secret&x=1",
               [("X-Request-Id", rid), ("traceparent", tp), ("tracestate", "congo=t61rcWkgMzE"),
                ("Authorization", "Basic aGlkZGVuOmhpZGRlbg=="), ("Cookie", "session=ck-secret")], b"12345")
    assert r.status == 200
    assert r.header("X-Request-Id") == rid
    seen = dict((k.lower(), v) for k, v in r.json()["headers"])
    assert seen["x-request-id"] == rid
    assert seen["traceparent"] == tp and seen["tracestate"] == "congo=t61rcWkgMzE"
    doc = _wait_access(obs, mark, lambda d: d.get("request_id") == rid)
    assert doc["level"] == "info" and doc["method"] == "POST"
    assert doc["app"] == "shop" and doc["service"] == "Orders"
    assert doc["path"] == "/shop/orders/echo"
    assert doc["status"] == 200 and doc["upstream_status"] == 200
    assert doc["bytes_in"] == 5 and doc["bytes_out"] == len(r.body)
    assert doc["duration_ms"] >= doc["upstream_ms"] > 0
    assert doc["client"] == "127.0.0.1"
    new = obs.log_text()[mark:]
    for secret in ("qv-secret", "ck-secret", "aGlkZGVuOmhpZGRlbg==", tp):
        assert secret not in new, secret


@pytest.mark.parametrize("given", [None, "has space", "x" * 129, "a\"b", "caf\xc3\xa9"])
def test_request_id_generated_when_missing_or_unusable(obs, given):
    mark = len(obs.log_text())
    hdrs = [("X-Request-Id", given)] if given is not None else []
    r = H.get(obs.proxy, "/shop/orders/echo", hdrs)
    assert r.status == 200
    rid = r.header("X-Request-Id")
    assert rid and re.fullmatch(r"[0-9a-f]{32}", rid), rid
    seen = [v for k, v in r.json()["headers"] if k.lower() == "x-request-id"]
    assert seen == [rid], "the upstream sees exactly the ID the client gets back"
    _wait_access(obs, mark, lambda d: d.get("request_id") == rid)


def test_gateway_errors_carry_the_request_id(obs):
    mark = len(obs.log_text())
    r = H.get(obs.proxy, "/shop/broken/x", [("X-Request-Id", "err-42")])
    assert r.status == 502 and r.header("X-Request-Id") == "err-42"
    r = H.get(obs.proxy, "/nope/x/y", [("X-Request-Id", "err-43")])
    assert r.status == 404 and r.header("X-Request-Id") == "err-43"
    # the warning about the failed upstream names the request too
    v, _ = H.wait_for(lambda: [d for d in map(json.loads, obs.log_text()[mark:].splitlines())
                               if d.get("level") == "warn" and d.get("request_id") == "err-42"], 5)
    assert v, obs.log_tail()
    doc = _wait_access(obs, mark, lambda d: d.get("request_id") == "err-43")
    assert doc["status"] == 404 and "app" not in doc and "upstream_status" not in doc


def test_two_ids_in_a_row_differ(obs):
    a = H.get(obs.proxy, "/shop/orders/echo").header("X-Request-Id")
    b = H.get(obs.proxy, "/shop/orders/echo").header("X-Request-Id")
    assert a != b


def test_access_log_switch(tmpdir_str, upstream):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("S", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, log_level="info", flags={"accessLog": "false"}) as gw:
        for _ in range(3):
            assert H.get(gw.proxy, "/t/s/echo").status == 200
        assert H.get(gw.proxy, "/t/nosvc/x").status == 404
        H.settled_metrics(gw.admin)
    assert '"msg":"request"' not in gw.log_text()
    with H.gateway(tmpdir_str, cfg, log_level="info") as gw:
        assert H.get(gw.proxy, "/t/s/echo").status == 200
        H.settled_metrics(gw.admin)
        v, _ = H.wait_for(lambda: '"msg":"request"' in gw.log_text(), 5)
        assert v, "the access log is on by default"
