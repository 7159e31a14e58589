"""The fake kube-apiserver itself (kubeapi/server.js), with curl as the client and no gateway:
when one of these fails, the Kubernetes-source tests say nothing about the gateway.

TLS with HTTP/2 and HTTP/1.1, bearer-token and client-certificate authentication, the kubectl
proxy port, paginated lists, chunked watch streams with 410 in both styles, bookmarks only after
changes, get-only RBAC, outage (connection refused), injected garbage, token rotation."""
import json
import queue
import subprocess
import threading
import time

import pytest

import helpers as H
import kube_helpers as K

SEC = K.secrets_path()


@pytest.fixture(scope="module")
def kube(tmp_path_factory, certs, auth_certs):
    k = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-self")), certs, auth_certs)
    yield k
    k.stop()


@pytest.fixture
def fresh(kube):
    kube.reset()
    return kube


def curl(kube, path, *args, token=K.TOKEN_A, plain=False):
    """(status, http_version, body) of one curl call."""
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", kube.certs["ca.pem"], "-o", "-",
           "-w", "\n%{http_code} %{http_version}"]
    if token:
        cmd += ["-H", "Authorization: Bearer " + token]
    r = subprocess.run(cmd + list(args) + [kube.url(plain=plain) + path], capture_output=True, text=True,
                       timeout=30)
    body, _, tail = r.stdout.rpartition("\n")
    code, _, ver = tail.partition(" ")
    return int(code or 0), ver, body


def jcurl(kube, path, *args, **kw):
    code, ver, body = curl(kube, path, *args, **kw)
    return code, (json.loads(body) if body.startswith("{") else body)


class Watch:
    """curl -N on a watch URL; lines (headers and events) arrive in a queue with their time."""

    def __init__(self, kube, path, *args, token=K.TOKEN_A):
        cmd = ["curl", "-sSN", "--max-time", "20", "--cacert", kube.certs["ca.pem"], "-D", "-",
               "-H", "Authorization: Bearer " + token] + list(args) + [kube.url() + path]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for ln in self.p.stdout:
            self.q.put((time.monotonic(), ln.decode("utf-8", "replace").rstrip("\r\n")))
        self.q.put((time.monotonic(), None))

    def line(self, timeout=5.0):
        try:
            return self.q.get(timeout=timeout)[1]
        except queue.Empty:
            return "<timeout>"

    def head(self):
        lines = []
        while True:
            ln = self.line()
            if ln in ("", None, "<timeout>"):
                return lines
            lines.append(ln)

    def event(self, timeout=5.0):
        ln = self.line(timeout)
        return json.loads(ln) if ln and ln.startswith("{") else ln

    def close(self):
        H.stop_process(self.p, timeout=5)


def test_tls_http2_http1_and_authentication(fresh, auth_certs):
    kube = fresh
    kube.apply(H.application("a1", []))
    p = K.APPS_PATH
    assert curl(kube, p, "--http2")[:2] == (200, "2")
    assert curl(kube, p, "--http1.1")[:2] == (200, "1.1")
    assert curl(kube, p, token=K.TOKEN_B)[0] == 200
    code, doc = jcurl(kube, p, token=K.TOKEN_WRONG)
    assert code == 401 and doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401}, doc
    assert curl(kube, p, token=None)[0] == 401
    for crt, key in (("client.pem", "client.key"), ("client-ec.pem", "client-ec.key")):
        assert curl(kube, p, "--cert", auth_certs[crt], "--key", auth_certs[key], token=None)[0] == 200
    assert curl(kube, p, "--cert", auth_certs["client-other.pem"], "--key", auth_certs["client-other.key"],
                token=None)[0] == 401
    assert curl(kube, p, token=None, plain=True)[0] == 200          # the kubectl-proxy port
    auths = [(r["auth"], r["proto"], r["status"]) for r in kube.requests()]
    assert auths[:3] == [("token", "h2", 200), ("token", "http/1.1", 200), ("token", "h2", 200)], auths
    assert [a for a, _, _ in auths[3:]] == ["bad-token", "none", "cert", "cert", "bad-cert", "proxy"], auths
    code, ver, body = curl(kube, "/version")
    assert code == 200 and json.loads(body)["minor"] == "26"


def test_http1_only_mode(tmp_path, certs, auth_certs):
    k = K.KubeAPI(str(tmp_path), certs, auth_certs, http1_only=True)
    try:
        assert curl(k, K.APPS_PATH, "--http2")[:2] == (200, "1.1")
        assert k.requests()[0]["alpn"] == "http/1.1"
    finally:
        k.stop()


def test_list_pagination_and_resource_version_zero(fresh):
    kube = fresh
    kube.apply(*[H.application("p%d" % i, []) for i in range(7)])
    kube.apply(H.secret("s1", string_data={"k": "v"}), H.secret("s2", data={"k": "v"}),
               H.secret("elsewhere", string_data={"k": "v"}, namespace="default"))
    code, d1 = jcurl(kube, K.APPS_PATH + "?limit=3")
    rv = d1["metadata"]["resourceVersion"]
    assert code == 200 and d1["kind"] == "ApplicationList" and len(d1["items"]) == 3, d1
    assert d1["metadata"]["remainingItemCount"] == 4 and d1["metadata"]["continue"]
    kube.apply(H.application("p00-new", []))  # not in the consistent snapshot of the next pages
    code, d2 = jcurl(kube, K.APPS_PATH + "?limit=3&continue=" + d1["metadata"]["continue"])
    assert code == 200 and d2["metadata"]["resourceVersion"] == rv and d2["metadata"]["remainingItemCount"] == 1
    code, d3 = jcurl(kube, K.APPS_PATH + "?limit=3&continue=" + d2["metadata"]["continue"])
    assert code == 200 and len(d3["items"]) == 1 and "continue" not in d3["metadata"], d3
    names = [i["metadata"]["name"] for d in (d1, d2, d3) for i in d["items"]]
    assert names == ["p%d" % i for i in range(7)]
    assert all(i["kind"] == "Application" and i["spec"]["encodeUrl"] is True for i in d1["items"])
    code, d0 = jcurl(kube, K.APPS_PATH + "?limit=3&resourceVersion=0")
    assert len(d0["items"]) == 8 and "continue" not in d0["metadata"], d0
    # an expired continue token: 410 Expired
    kube.compact()
    code, dx = jcurl(kube, K.APPS_PATH + "?limit=3&continue=" + d1["metadata"]["continue"])
    assert code == 410 and dx["reason"] == "Expired", dx
    # Secrets: namespace only, typed list items without kind, stringData → data
    code, sl = jcurl(kube, SEC)
    assert sl["kind"] == "SecretList" and [i["metadata"]["name"] for i in sl["items"]] == ["s1", "s2"], sl
    assert "kind" not in sl["items"][0] and sl["items"][0]["data"] == {"k": H.b64("v")} and "stringData" not in sl["items"][0]
    code, one = jcurl(kube, SEC + "/s1")
    assert code == 200 and one["kind"] == "Secret" and one["metadata"]["uid"]
    code, nf = jcurl(kube, SEC + "/nope")
    assert code == 404 and nf["reason"] == "NotFound" and nf["message"] == 'secrets "nope" not found', nf


@pytest.mark.parametrize("proto", ["--http2", "--http1.1"])
def test_watch_stream(fresh, proto):
    kube = fresh
    kube.apply(H.application("w0", []))
    rv = kube.state()["rv"]
    w = Watch(kube, K.APPS_PATH + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion=" + rv, proto)
    try:
        head = w.head()
        assert head and head[0].split()[1] == "200", head  # the head comes before any event
        kube.wait_watching(resources=("applications",))
        kube.apply(H.application("w1", []))
        kube.apply(H.application("w1", [H.service("S", [])]))
        kube.delete("Application", "w0")
        evs = [w.event() for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w0")], evs
        assert all(e["object"]["kind"] == "Application" for e in evs)
        assert int(evs[0]["object"]["metadata"]["resourceVersion"]) > int(rv)
        # timeoutSeconds=2 ends the stream (no bookmark: nothing changed since the last event)
        t0 = time.monotonic()
        assert w.line(5) is None
        assert time.monotonic() - t0 < 3
    finally:
        w.close()
    # a watch from an older rv replays the changes since; without rv: ADDED for what exists
    w = Watch(kube, K.APPS_PATH + "?watch=true&timeoutSeconds=1&resourceVersion=" + rv)
    try:
        w.head()
        assert [w.event()["type"] for _ in range(3)] == ["ADDED", "MODIFIED", "DELETED"]
    finally:
        w.close()
    w = Watch(kube, K.APPS_PATH + "?watch=true&timeoutSeconds=1")
    try:
        w.head()
        e = w.event()
        assert (e["type"], e["object"]["metadata"]["name"]) == ("ADDED", "w1"), e
    finally:
        w.close()


def test_watch_gone_both_styles_and_bookmarks(fresh):
    kube = fresh
    kube.apply(H.application("g0", []))
    old = kube.state()["rv"]
    kube.apply(H.application("g1", []))
    kube.compact()
    w = Watch(kube, K.APPS_PATH + "?watch=1&resourceVersion=" + old)   # default: the watch cache's way
    try:
        assert w.head()[0].split()[1] == "200"
        e = w.event()
        assert e["type"] == "ERROR" and e["object"]["code"] == 410 and e["object"]["reason"] == "Expired", e
        assert w.line() is None
    finally:
        w.close()
    kube.config(goneStyle="http")
    code, doc = jcurl(kube, K.APPS_PATH + "?watch=1&resourceVersion=" + old)
    assert code == 410 and doc["kind"] == "Status" and doc["code"] == 410, doc
    # bookmarks only after a change, carrying the resource's latest rv
    kube.config(bookmarkSeconds=0.4)
    rv = kube.state()["rv"]
    w = Watch(kube, SEC + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=10&resourceVersion=" + rv)
    try:
        w.head()
        assert w.line(1.0) == "<timeout>"  # nothing changed: no bookmark
        kube.apply(H.secret("other-ns", string_data={"a": "b"}, namespace="default"))
        e = w.event(3.0)
        assert e["type"] == "BOOKMARK" and e["object"]["kind"] == "Secret", e
        assert int(e["object"]["metadata"]["resourceVersion"]) == int(rv) + 1, e
    finally:
        w.close()


def test_get_only_rbac_hold_lists_and_tokens(fresh):
    kube = fresh
    kube.apply(H.application("r1", []))
    kube.config(rbac="get-only")
    code, doc = jcurl(kube, K.APPS_PATH + "?limit=500")
    assert code == 403 and doc["reason"] == "Forbidden" and "cannot list resource" in doc["message"], doc
    code, doc = jcurl(kube, SEC + "?watch=1")
    assert code == 403 and "cannot watch resource \"secrets\"" in doc["message"], doc
    assert jcurl(kube, K.APPS_PATH + "/r1")[0] == 200
    kube.config(rbac="full", holdLists=True)
    p = subprocess.Popen(["curl", "-sS", "--max-time", "10", "--cacert", kube.certs["ca.pem"], "-o", "/dev/null",
                          "-w", "%{http_code}", "-H", "Authorization: Bearer " + K.TOKEN_A, kube.url() + K.APPS_PATH],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert kube.wait_request(0, 5, verb="list", status=None)
        time.sleep(0.3)
        assert p.poll() is None, "held list answered"
        kube.config(holdLists=False)
        assert p.communicate(timeout=10)[0] == "200"
    finally:
        H.stop_process(p)
    kube.set_tokens([K.TOKEN_C])
    assert curl(kube, K.APPS_PATH, token=K.TOKEN_A)[0] == 401
    assert curl(kube, K.APPS_PATH, token=K.TOKEN_C)[0] == 200


def test_outage_refuses_connections_and_inject(fresh):
    kube = fresh
    kube.apply(H.application("o1", []))
    rv = kube.state()["rv"]
    w = Watch(kube, K.APPS_PATH + "?watch=1&resourceVersion=" + rv)
    try:
        w.head()
        kube.wait_watching(resources=("applications",))
        kube.inject("garbage")
        assert not w.line().startswith("{\"type\""), "garbage is not an event"
        kube.inject("oversized", bytes=3 * 1024 * 1024)
        big = w.line(10)
        assert len(big) == 3 * 1024 * 1024 - 1 and json.loads(big)["type"] == "MODIFIED"
        kube.outage_start()
        assert w.line() is None  # the open stream is cut
    finally:
        w.close()
    assert kube.port_refuses()
    assert curl(kube, K.APPS_PATH)[0] == 0 and curl(kube, K.APPS_PATH, plain=True)[0] == 0
    kube.apply(H.application("o2", []))  # the store (etcd) lives on
    kube.outage_end()
    code, doc = jcurl(kube, K.APPS_PATH + "?watch=1&timeoutSeconds=1&resourceVersion=" + rv)
    assert code == 200 and '"code":410' in json.dumps(doc, separators=(",", ":")), doc  # restart compacts
    code, doc = jcurl(kube, K.APPS_PATH)
    assert [i["metadata"]["name"] for i in doc["items"]] == ["o1", "o2"]
