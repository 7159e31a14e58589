"""The original's RBAC (only `get` on applications and secrets): list and watch answer 403, and
the gateway falls back (logged once) to on-demand GETs per Application and Secret, cached for
ACM_GATEWAY_APPCACHE_RETENTION / ACM_GATEWAY_SECRETCACHE_RETENTION, one GET per object however
many requests wait for it, and a slow GET delaying only the requests that need that object."""
import os
import threading
import time

import pytest

import helpers as H
import kube_helpers as K

PASS = "fb-PASS-secret-7a3c"
PASS2 = "fb-PASS-rotated-19e0"


def basic_auth(user, pw):
    return ["Basic " + H.b64("%s:%s" % (user, pw))]


@pytest.fixture(scope="module")
def kube(tmp_path_factory, certs, auth_certs, upstream):
    k = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-fallback")), certs, auth_certs)
    k.config(rbac="get-only")
    k.apply(K.echo_app("fb", upstream, creds=K.basic("fb-basic"),
                       services=[H.service("Plain", [H.entry(upstream.url("/fb-plain"))])]),
            K.echo_app("fb-slow", upstream),
            K.echo_app("fb-other", upstream),
            K.echo_app("fb-ret", upstream, path="/ret-v1", creds=K.basic("fb-ret-basic")),
            H.secret("fb-basic", string_data={"username": "fbu", "password": PASS}),
            H.secret("fb-ret-basic", string_data={"username": "ret", "password": PASS}))
    yield k
    k.stop()


def fallback_gateway(tmp_path_factory, kube, certs, name, env=None, flags=None):
    d = str(tmp_path_factory.mktemp(name))
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    f = {"kubeConfig": kc}
    f.update(flags or {})
    mark = kube.mark()
    gw = K.start_gateway(d, flags=f, env=env, secrets=[PASS, PASS2, H.b64(PASS), H.b64(PASS2)])
    gw.first_request = mark
    try:
        assert gw.wait_msg(K.FALLBACK_MSG, 8 * H.SLOW), "no %r log line; tail:\n%s" % (K.FALLBACK_MSG, gw.log_tail())
        gw.wait_ready(5 * H.SLOW)
    except Exception:
        gw.close()
        raise
    return gw


@pytest.fixture(scope="module")
def gw5m(tmp_path_factory, kube, certs):
    """Default retentions (5m)."""
    gw = fallback_gateway(tmp_path_factory, kube, certs, "kube-fb-5m")
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def gw1s(tmp_path_factory, kube, certs):
    gw = fallback_gateway(tmp_path_factory, kube, certs, "kube-fb-1s",
                          env={"ACM_GATEWAY_APPCACHE_RETENTION": "1s", "ACM_GATEWAY_SECRETCACHE_RETENTION": "1s"},
                          flags={"proxyCacheTTL": 1})
    yield gw
    gw.close()


def test_fallback_logged_once_and_ready(gw5m, kube):
    reqs = kube.requests(gw5m.first_request)
    forbidden = [r for r in reqs if r["status"] == 403]
    assert forbidden and all(r["verb"] in ("list", "watch") for r in forbidden), reqs
    assert not [r for r in reqs if r["verb"] in ("list", "watch") and r["status"] == 200], reqs
    r = H.get(gw5m.admin, "/v1/ready")
    assert r.status == 200 and r.json() == {"status": "ready"}, r
    time.sleep(1.0)
    assert len(gw5m.msgs(K.FALLBACK_MSG)) == 1, "fallback logged %d times" % len(gw5m.msgs(K.FALLBACK_MSG))


def test_on_demand_gets_single_flight_and_cached(gw5m, kube):
    """8 concurrent requests for an Application not fetched yet: one GET of the Application and
    one of its Secret (each answered after 400 ms); later requests use the cache."""
    kube.config(getDelayMs=400)
    mark = kube.mark()
    barrier = threading.Barrier(8)
    results = []

    def one():
        barrier.wait(5)
        r = K.try_get(gw5m.proxy, "/fb/echo/x", timeout=10)
        results.append(r)
    ts = [threading.Thread(target=one) for _ in range(8)]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
    finally:
        kube.config(getDelayMs=0)
    assert len(results) == 8 and all(r is not None and r.status == 200 for r in results), results
    assert all(H.hvals(r.json()["headers"], "Authorization") == basic_auth("fbu", PASS) for r in results)
    gets = kube.requests(mark, verb="get")
    assert [(g["resource"], g["name"]) for g in gets] == [("applications", "fb"), ("secrets", "fb-basic")], gets
    assert gets[1]["namespace"] == H.NS
    for path in ("/fb/echo/y", "/fb/plain/z", "/fb/echo/x"):
        r = H.get(gw5m.proxy, path)
        assert r.status == 200, r
    assert H.get(gw5m.proxy, "/fb/plain/z").json()["path"] == "/fb-plain/z"
    assert len(kube.requests(mark, verb="get")) == 2, "cached objects fetched again: %r" % kube.requests(mark, verb="get")


def test_slow_get_delays_only_requests_for_that_object(gw5m, kube):
    """A GET of one Application takes 2 s: a request for it waits; requests for a cached
    Application and for another not yet fetched one are answered meanwhile."""
    H.get(gw5m.proxy, "/fb/echo/x")  # cached
    kube.config(getDelayByName={"fb-slow": 2000})
    mark = kube.mark()
    slow = {}

    def call_slow():
        t0 = time.monotonic()
        slow["r"] = K.try_get(gw5m.proxy, "/fb-slow/echo/x", timeout=15)
        slow["t"] = time.monotonic() - t0
    t = threading.Thread(target=call_slow)
    try:
        t.start()
        assert kube.wait_request(mark, 3 * H.SLOW, verb="get", name="fb-slow"), "no GET of fb-slow"
        for path in ("/fb/echo/x", "/fb-other/echo/x"):
            t0 = time.monotonic()
            r = H.get(gw5m.proxy, path, timeout=10)
            took = time.monotonic() - t0
            assert r.status == 200, r
            assert took < 0.8 * H.SLOW, "%s waited %.2fs behind a slow GET of another Application" % (path, took)
        t.join(15)
    finally:
        kube.config(getDelayByName={})
    assert slow["r"] is not None and slow["r"].status == 200, slow
    assert slow["t"] >= 1.8, slow


def test_missing_application_is_404(gw5m, kube):
    mark = kube.mark()
    r = H.get(gw5m.proxy, "/fb-nope/echo/x")
    H.assert_gw_error(r, 404, "service with name echo not found")
    assert kube.requests(mark, verb="get", name="fb-nope", status=404)
    r = H.get(gw5m.proxy, "/fb/nosuch/x")
    H.assert_gw_error(r, 404, "service with name nosuch not found")


def test_retention_expiry_picks_up_changes(gw1s, kube, upstream):
    """ACM_GATEWAY_APPCACHE_RETENTION=1s, ACM_GATEWAY_SECRETCACHE_RETENTION=1s, proxyCacheTTL=1:
    a changed Application and Secret are used once the cached copies expire."""
    t0 = time.monotonic()
    r = H.get(gw1s.proxy, "/fb-ret/echo/x")
    assert r.status == 200 and r.json()["path"] == "/ret-v1/x", r
    mark = kube.mark()
    r = H.get(gw1s.proxy, "/fb-ret/echo/x")
    if time.monotonic() - t0 < 0.5:
        assert not kube.requests(mark, verb="get"), "fetched again within the retention"
    kube.apply(K.echo_app("fb-ret", upstream, path="/ret-v2", creds=K.basic("fb-ret-basic")),
               H.secret("fb-ret-basic", string_data={"username": "ret", "password": PASS2}))

    def changed():
        x = K.try_get(gw1s.proxy, "/fb-ret/echo/x")
        return (x is not None and x.status == 200 and x.json()["path"] == "/ret-v2/x"
                and H.hvals(x.json()["headers"], "Authorization") == basic_auth("ret", PASS2))
    ok, took = K.until(changed, 5 * H.SLOW, interval=0.1)
    assert ok, "changes not picked up after the retention expired"
    assert took <= 3.0 * H.SLOW, "changes picked up only after %.1fs" % took
    gets = kube.requests(mark, verb="get")
    assert {g["name"] for g in gets} >= {"fb-ret", "fb-ret-basic"}, gets
