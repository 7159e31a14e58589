"""The Kubernetes registry source against the fake kube-apiserver (kubeapi/server.js), one
gateway (--kubeConfig with a bearer token) for the whole module: changes of Applications and
Secrets reach the route table within 1 s of their watch event, only the Secrets namespace is
read, encodeUrl defaults to true, 410 (HTTP or ERROR event, on a watch or a continue token)
makes it relist, a watch stream with garbage or an oversized object is a logged relist, and an
API server outage under load loses no request and is logged once."""
import json
import os
import time

import pytest

import helpers as H
import kube_helpers as K

APPLY = 1.0 * H.SLOW    # contract: within 1 s of the watch event
SLACK = 0.2             # polling and admin round trips
RELIST = 6.0 * H.SLOW   # a relist or a reconnect (backoff capped at 5 s, plus jitter)

BASIC_USER = "kube-user"
BASIC_PASS = "kube-PASS-secret-4401aa"
SECRETS = [H.secret("live-basic", string_data={"username": BASIC_USER, "password": BASIC_PASS})]


@pytest.fixture(scope="module")
def kube(tmp_path_factory, certs, auth_certs):
    k = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-source")), certs, auth_certs)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, kube, certs, upstream):
    kube.reset()
    kube.config(fragmentEvents=True)  # events arrive in pieces: the decoder must reassemble them
    kube.apply(K.echo_app("live", upstream, services=[
        H.service("Basic", [H.entry(upstream.url("/basic"), creds=K.basic("live-basic"))])]), *SECRETS)
    d = str(tmp_path_factory.mktemp("kube-live"))
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    first = kube.mark()
    gw = K.start_gateway(d, flags={"kubeConfig": kc},
                         secrets=[BASIC_PASS, H.b64(BASIC_PASS), H.b64("%s:%s" % (BASIC_USER, BASIC_PASS))])
    gw.first_request = first
    try:
        gw.wait_ready()
        kube.wait_watching(first)
        yield gw
    finally:
        gw.close()


def applied_within(pred, what, limit=APPLY + SLACK):
    """Polls pred for up to 3x limit; asserts it became true within limit; returns the value."""
    v, took = K.until(pred, max(3 * limit, 3.0))
    assert v, "%s: not applied within %.1fs" % (what, max(3 * limit, 3.0))
    assert took <= limit, "%s: applied after %.2fs (limit %.2fs)" % (what, took, limit)
    return v


def auth_header(gw, path):
    r = K.try_get(gw.proxy, path)
    if r is None or r.status != 200:
        return None
    return H.hvals(r.json()["headers"], "Authorization")


def test_initial_state_served(live):
    r = H.get(live.proxy, "/live/echo/x")
    assert r.status == 200 and r.json()["path"] == "/live/x", r
    assert H.hvals(H.get(live.proxy, "/live/basic/x").json()["headers"], "Authorization") == [
        "Basic " + H.b64("%s:%s" % (BASIC_USER, BASIC_PASS))]
    r = H.get(live.admin, "/v1/ready")
    assert r.status == 200 and r.json() == {"status": "ready"}, r
    assert H.get(live.admin, "/v1/health").status == 200


def test_list_and_watch_requests(live, kube):
    """What the gateway asked for: lists with limit, watches from the list's resourceVersion with
    bookmarks and a timeout, Secrets of --applicationSecretsNamespace only, always authenticated."""
    reqs = kube.requests(live.first_request)
    apps = [r for r in reqs if r["resource"] == "applications"]
    secs = [r for r in reqs if r["resource"] == "secrets"]
    for group, path in ((apps, K.APPS_PATH), (secs, K.secrets_path())):
        lists = [r for r in group if r["verb"] == "list"]
        watches = [r for r in group if r["verb"] == "watch"]
        assert lists and watches, group
        assert all(r["path"] == path for r in group), group
        assert lists[0]["query"].get("limit") == "500" and lists[0]["status"] == 200, lists[0]
        assert "resourceVersion" not in lists[0]["query"] or lists[0]["query"]["resourceVersion"] == "", lists[0]
        w = watches[0]["query"]
        assert w.get("watch") in ("1", "true") and w.get("allowWatchBookmarks") == "true", w
        assert w.get("resourceVersion") == lists[-1]["listRv"], (w, lists[-1])
        assert int(w.get("timeoutSeconds", "0")) > 0, w
    assert {r["auth"] for r in reqs} == {"token"}, reqs
    assert all(r["status"] == 200 for r in reqs), [r for r in reqs if r["status"] != 200]


def test_application_add_modify_delete(live, kube, upstream):
    kube.apply(K.echo_app("chg", upstream, path="/v1"))
    applied_within(K.path_is(live.proxy, "/chg/echo/x", "/v1/x"), "new Application")
    kube.apply(K.echo_app("chg", upstream, path="/v2"))
    applied_within(K.path_is(live.proxy, "/chg/echo/x", "/v2/x"), "changed targetUrl")
    kube.apply(K.echo_app("chg", upstream, path="/v2", services=[H.service("Second", [H.entry(upstream.url("/s2"))])]))
    applied_within(K.path_is(live.proxy, "/chg/second/x", "/s2/x"), "added service")
    kube.delete("Application", "chg")
    r = applied_within(K.status_is(live.proxy, "/chg/echo/x", 404), "deleted Application")
    H.assert_gw_error(r, 404, "service with name echo not found")
    assert H.get(live.proxy, "/live/echo/x").status == 200


def test_secret_add_modify_delete(live, kube, upstream):
    live.secrets += ["p1-kube-secret", "p2-kube-secret", H.b64("p1-kube-secret"), H.b64("p2-kube-secret")]
    kube.apply(K.echo_app("sec", upstream, creds=K.basic("sec-basic")))
    applied_within(K.status_is(live.proxy, "/sec/echo/x", 500), "Application with a missing Secret")
    kube.apply(H.secret("sec-basic", string_data={"username": "u1", "password": "p1-kube-secret"}))
    applied_within(lambda: auth_header(live, "/sec/echo/x") == ["Basic " + H.b64("u1:p1-kube-secret")], "new Secret")
    kube.apply(H.secret("sec-basic", data={"username": "u2", "password": "p2-kube-secret"}))
    applied_within(lambda: auth_header(live, "/sec/echo/x") == ["Basic " + H.b64("u2:p2-kube-secret")], "changed Secret")
    # the same name in another namespace is not the gateway's business
    mark = kube.mark()
    kube.apply(H.secret("sec-basic", string_data={"username": "u3", "password": "p3"}, namespace="default"))
    time.sleep(0.5)
    assert auth_header(live, "/sec/echo/x") == ["Basic " + H.b64("u2:p2-kube-secret")]
    kube.delete("Secret", "sec-basic", namespace=H.NS)
    applied_within(K.status_is(live.proxy, "/sec/echo/x", 500), "deleted Secret")
    assert not [r for r in kube.requests(live.first_request)
                if r["resource"] == "secrets" and r["namespace"] != H.NS], "Secrets read outside %s" % H.NS
    assert not kube.requests(mark, verb="list"), "a change in another namespace caused a relist"
    kube.delete("Application", "sec")


def test_burst_of_changes(live, kube, upstream):
    """300 Applications and a change of the first in one burst: all there within 1 s of the last event."""
    objs = [K.echo_app("burst-%03d" % i, upstream, path="/b%d" % i) for i in range(300)]
    kube.ops([{"op": "apply", "objects": objs},
              {"op": "apply", "object": K.echo_app("burst-000", upstream, path="/b0-final")}])
    applied_within(lambda: K.path_is(live.proxy, "/burst-000/echo/x", "/b0-final/x")()
                   and K.path_is(live.proxy, "/burst-299/echo/x", "/b299/x")(), "burst")
    kube.ops([{"op": "delete", "objects": [{"kind": "Application", "name": o["metadata"]["name"]} for o in objs]}])
    applied_within(K.status_is(live.proxy, "/burst-150/echo/x", 404), "burst delete")
    assert H.get(live.proxy, "/live/echo/x").status == 200


ENC_REQ = "/%s/echo/a%%2Fb/it's/%%41%%7e/x%%20y/%%c3%%a9/$&+,:;=@/%%25/q"
ENC_EXPECTED = "/base/a/b/it%27s/A~/x%20y/%C3%A9/$&+,:;=@/%25/q"


def test_encode_url_defaults_to_true(live, kube, upstream):
    """An Application without spec.encodeUrl (a server that does not apply the CRD default)."""
    kube.config(applyCrdDefaults=False)
    try:
        kube.apply(K.echo_app("enc-absent", upstream, path="/base"),
                   K.echo_app("enc-false", upstream, path="/base", encode_url=False))
        assert all("encodeUrl" not in a["spec"] for a in kube.objects()["applications"]
                   if a["metadata"]["name"] == "enc-absent")
        applied_within(K.status_is(live.proxy, "/enc-false/echo/x", 200), "encodeUrl apps")
        r = H.get(live.proxy, ENC_REQ % "enc-absent")
        assert r.status == 200 and r.json()["path"] == ENC_EXPECTED, r
        raw = "/People('O''Neil')/a%2Fb/x%20y"
        r = H.get(live.proxy, "/enc-false/echo" + raw)
        assert r.status == 200 and r.json()["path"] == "/base" + raw, r
    finally:
        kube.config(applyCrdDefaults=True)


def test_bookmarks_and_watch_timeouts_are_harmless(live, kube, upstream):
    """Watches end (as after timeoutSeconds) and carry bookmarks; the gateway watches again and
    keeps applying changes."""
    kube.config(bookmarkSeconds=0.3)
    try:
        mark = kube.mark()
        kube.close_watches()
        kube.wait_watching(mark)
        # a Secret in another namespace moves the secrets' resourceVersion without an event in the
        # gateway's watch: the next bookmark carries it
        kube.apply(H.secret("bm-elsewhere", string_data={"k": "v"}, namespace="default"))
        ok, _ = H.wait_for(lambda: [w for w in kube.watches()
                                    if w["seq"] >= mark and w["resource"] == "secrets" and w["bookmarksSent"]], 3)
        assert ok, kube.watches()
        kube.apply(K.echo_app("bm", upstream))
        applied_within(K.path_is(live.proxy, "/bm/echo/x", "/bm/x"), "change after bookmarks")
    finally:
        kube.config(bookmarkSeconds=60)


@pytest.mark.parametrize("style", ["http", "event"])
def test_gone_on_rewatch_relists(live, kube, upstream, style):
    """The watches end, objects change and history is compacted before the gateway watches again:
    its watch gets 410 (an HTTP 410 Status, or 200 + ERROR event with code 410) and it relists;
    what changed in the gap (including a deletion) is there afterwards."""
    kube.apply(K.echo_app("gap-old-" + style, upstream), K.echo_app("gap-chg-" + style, upstream, path="/before"))
    applied_within(K.path_is(live.proxy, "/gap-chg-%s/echo/x" % style, "/before/x"), "setup")
    kube.config(goneStyle=style)
    try:
        mark = kube.mark()
        kube.ops([{"op": "closeWatches"},
                  {"op": "apply", "object": K.echo_app("gap-new-" + style, upstream)},
                  {"op": "apply", "object": K.echo_app("gap-chg-" + style, upstream, path="/after")},
                  {"op": "delete", "kind": "Application", "name": "gap-old-" + style},
                  {"op": "apply", "object": H.secret("gap-secret-" + style, string_data={"k": "v"})},
                  {"op": "compact"}])
        note = "gone-http" if style == "http" else "gone-event"
        gone = kube.wait_request(mark, RELIST, verb="watch", note=note)
        assert gone, "no watch answered 410 (%s): %r" % (style, kube.requests(mark))
        for res in ("applications", "secrets"):
            assert kube.wait_request(mark, RELIST, verb="list", resource=res, status=200), "no relist of " + res
        v, _ = K.until(lambda: K.path_is(live.proxy, "/gap-new-%s/echo/x" % style, "/gap-new-%s" % style + "/x")()
                       and K.path_is(live.proxy, "/gap-chg-%s/echo/x" % style, "/after/x")()
                       and K.status_is(live.proxy, "/gap-old-%s/echo/x" % style, 404)(), RELIST)
        assert v, "changes made in the gap not applied after the relist"
        kube.wait_watching(mark)
    finally:
        kube.config(goneStyle="event")
    kube.apply(K.echo_app("gap-after-" + style, upstream))
    applied_within(K.path_is(live.proxy, "/gap-after-%s/echo/x" % style, "/gap-after-%s/x" % style),
                   "change after the relist")


def test_error_event_in_open_watch_relists(live, kube, upstream):
    """An ERROR event with code 410 inside an open watch (a watcher that fell behind): relist."""
    mark = kube.mark()
    kube.ops([{"op": "expireWatches", "resource": "applications"},
              {"op": "apply", "object": K.echo_app("expired-new", upstream)}])
    assert kube.wait_request(mark, RELIST, verb="list", resource="applications", status=200), \
        "no relist after an ERROR 410 event: %r" % kube.requests(mark)
    v, _ = K.until(K.path_is(live.proxy, "/expired-new/echo/x", "/expired-new/x"), RELIST)
    assert v
    assert H.get(live.proxy, "/live/echo/x").status == 200


def test_paginated_relist_with_expired_continue(live, kube, upstream):
    """1100 Applications (3 pages of 500); the relist's continue token expires (410): the gateway
    starts the list again and ends with the full, current set."""
    objs = [K.echo_app("pg-%04d" % i, upstream, path="/pg%d" % i) for i in range(1100)]
    kube.ops([{"op": "apply", "objects": objs}])
    applied_within(K.path_is(live.proxy, "/pg-1099/echo/x", "/pg1099/x"), "1100 Applications", APPLY * 2 + SLACK)
    kube.config(failNextContinues=1)
    mark = kube.mark()
    kube.ops([{"op": "expireWatches", "resource": "applications"},
              {"op": "delete", "kind": "Application", "name": "pg-0700"}])
    assert kube.wait_request(mark, RELIST, verb="list", resource="applications", note="continue-expired"), \
        "no continue request: %r" % kube.requests(mark)
    done = kube.wait_request(mark, RELIST, verb="list", resource="applications", status=200, more=False)
    assert done, "list not completed after the expired continue token: %r" % kube.requests(mark)
    pages = kube.requests(mark, verb="list", resource="applications")
    assert all(p["query"].get("limit") == "500" for p in pages), pages
    v, _ = K.until(lambda: K.status_is(live.proxy, "/pg-0700/echo/x", 404)()
                   and K.path_is(live.proxy, "/pg-0000/echo/x", "/pg0/x")()
                   and K.path_is(live.proxy, "/pg-1099/echo/x", "/pg1099/x")(), RELIST)
    assert v, "route table after the paginated relist is not the current set"
    kube.ops([{"op": "delete", "objects": [{"kind": "Application", "name": o["metadata"]["name"]} for o in objs]}])
    applied_within(K.status_is(live.proxy, "/pg-1099/echo/x", 404), "deleting 1100", APPLY * 2 + SLACK)


@pytest.mark.parametrize("what", ["garbage", "oversized"])
def test_bad_watch_stream_is_a_logged_relist(live, kube, upstream, what):
    """Garbage (not JSON) or a 64 MiB event in the Applications watch: the gateway logs it,
    relists, keeps serving every request, and applies changes afterwards."""
    hwm = H.proc_status(live.pid, "VmHWM")
    log0 = live.log_mark()
    mark = kube.mark()
    with K.SteadyLoad(live.proxy, "/live/echo/x") as load:
        kube.inject(what, resource="applications")
        relist = kube.wait_request(mark, RELIST, verb="list", resource="applications", status=200)
        assert relist, "no relist after %s in the watch stream: %r" % (what, kube.requests(mark))
        kube.wait_watching(relist["seq"], resources=("applications",))
        time.sleep(0.3)
    ok, failures = load.stop()
    assert live.alive(), "gateway died:\n%s" % live.log_tail()
    assert not failures and ok > 10, "failed requests while the watch stream was bad: %d ok, %r" % (ok, failures[:5])
    warn = [r for r in live.records(log0) if str(r.get("level", "")).lower() in ("warn", "warning", "error")
            and ("watch" in json.dumps(r).lower() or "relist" in json.dumps(r).lower())]
    assert warn, "nothing logged at warn/error about the bad watch stream (a line naming the watch or the relist)"
    kube.apply(K.echo_app("after-" + what, upstream))
    applied_within(K.path_is(live.proxy, "/after-%s/echo/x" % what, "/after-%s/x" % what), "change after relist")
    if what == "oversized" and not H.SANITIZE and hwm:
        grown = H.proc_status(live.pid, "VmHWM") - hwm
        assert grown < 60 * 1024, "peak RSS grew by %d kB: the 64 MiB event was buffered" % grown


def test_api_server_outage_under_load(live, kube, upstream):
    """The API server goes away (its port refuses connections) and comes back with a compacted
    history while clients keep calling an unchanged route: no failed request, routes kept, the
    outage logged once, readiness kept, and changes (made during and after the outage) applied."""
    log0 = live.log_mark()
    with K.SteadyLoad(live.proxy, "/live/basic/x") as load:
        time.sleep(0.3)
        kube.outage_start()
        assert kube.port_refuses()
        assert live.wait_msg(K.UNREACHABLE_MSG, 5 * H.SLOW, since=log0), \
            "no %r log line; tail:\n%s" % (K.UNREACHABLE_MSG, live.log_tail())
        kube.apply(K.echo_app("during-outage", upstream))   # etcd changes while this apiserver is down
        time.sleep(1.5)                                      # several reconnect attempts
        r = live.ready()
        assert r is not None and r.status == 200, "not ready during an API server outage: %r" % r
        mark = kube.mark()
        kube.outage_end()                                    # restarted: the watch cache is compacted
        assert live.wait_msg(K.REACHABLE_MSG, RELIST + 1, since=log0), \
            "no %r log line; tail:\n%s" % (K.REACHABLE_MSG, live.log_tail())
        v, _ = K.until(K.path_is(live.proxy, "/during-outage/echo/x", "/during-outage/x"), RELIST)
        assert v, "change made during the outage not applied after recovery"
        kube.wait_watching(mark)
        time.sleep(0.3)
    ok, failures = load.stop()
    assert not failures, "%d failed requests (of %d) during the outage: %r" % (len(failures), ok + len(failures),
                                                                              failures[:5])
    assert ok > 50, ok
    assert len(live.msgs(K.UNREACHABLE_MSG, since=log0)) == 1, "outage not logged exactly once"
    assert len(live.msgs(K.REACHABLE_MSG, since=log0)) == 1, "recovery not logged exactly once"
    kube.apply(K.echo_app("after-outage", upstream))
    applied_within(K.path_is(live.proxy, "/after-outage/echo/x", "/after-outage/x"), "change after recovery")


def test_no_secrets_in_log(live):
    text = live.log_text()
    assert text.strip()
    import auth_helpers as A
    A.check_no_secrets(text, live.secrets)
