"""Connecting to the Kubernetes API (fake kube-apiserver, kubeapi/server.js), one fresh gateway per
test: readiness only after the first full (paginated) sync, every kubeconfig form the original
accepts (token, tokenFile, client certificate files and data, CA file and data,
insecure-skip-tls-verify, SSL_CERT_FILE, --apiServerURL overriding the server, a plain-http
`kubectl proxy`), refused credentials and untrusted servers (not ready, logged, nothing secret in
the log), token-file rotation in-cluster and via kubeconfig, startup while the API server is down,
SIGTERM during an outage, and --configDir winning over the API server flags."""
import os
import threading
import time

import pytest

import helpers as H
import kube_helpers as K

RELIST = 6.0 * H.SLOW   # reconnect backoff is capped at 5 s (plus jitter)


@pytest.fixture(scope="module")
def kube(tmp_path_factory, certs, auth_certs):
    k = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-connect")), certs, auth_certs)
    yield k
    k.stop()


@pytest.fixture
def world(kube, upstream):
    """One Application with a Basic Secret, default server settings, tokens A and B accepted."""
    kube.reset()
    kube.apply(K.echo_app("kc", upstream, creds=K.basic("kc-basic")),
               H.secret("kc-basic", string_data={"username": "kcu", "password": "kc-PASS-8812"}))
    return kube


def key_secrets(auth_certs):
    out = ["kc-PASS-8812", H.b64("kc-PASS-8812")]
    for k in ("client.key", "client-ec.key", "client-rsa1.key", "client-other.key", "client-expired.key"):
        out += K.key_fragments(auth_certs[k])
    return out


def kc_served(gw):
    r = K.try_get(gw.proxy, "/kc/echo/x")
    return r is not None and r.status == 200 and H.hvals(r.json()["headers"], "Authorization") == [
        "Basic " + H.b64("kcu:kc-PASS-8812")]


# --------------------------------------------------------------------------- first sync and readiness

def test_ready_only_after_first_full_sync(kube, upstream, certs, auth_certs, tmp_path):
    """1203 Applications (3 pages of limit=500): /v1/ready is 503 with a JSON reason while the lists
    are held by the server, 200 {"status":"ready"} once both are complete; the watches start at
    the list's resourceVersion."""
    kube.reset()
    kube.ops([{"op": "apply", "objects": [K.echo_app("many-%04d" % i, upstream, path="/m%d" % i)
                                          for i in range(1203)]}])
    kube.apply(K.echo_app("kc", upstream, creds=K.basic("kc-basic")),
               H.secret("kc-basic", string_data={"username": "kcu", "password": "kc-PASS-8812"}))
    kube.config(holdLists=True)
    d = str(tmp_path)
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    mark = kube.mark()
    gw = K.start_gateway(d, flags={"kubeConfig": kc}, secrets=key_secrets(auth_certs))
    try:
        assert kube.wait_request(mark, 5 * H.SLOW, verb="list"), "no list request: %r" % kube.requests(mark)
        for _ in range(2):
            r = gw.ready()
            assert r is not None and r.status == 503, "ready before the first sync: %r" % r
            doc = r.json()
            assert doc.get("code") == 503 and isinstance(doc.get("error"), str) and doc["error"], doc
            assert H.get(gw.admin, "/v1/health").status == 200
            time.sleep(0.3)
        kube.config(holdLists=False)
        gw.wait_ready(5 * H.SLOW)
        r = H.get(gw.admin, "/v1/ready")
        assert r.status == 200 and r.json() == {"status": "ready"}, r
        for name, p in (("many-0000", "/m0"), ("many-0601", "/m601"), ("many-1202", "/m1202")):
            r = H.get(gw.proxy, "/%s/echo/x" % name)
            assert r.status == 200 and r.json()["path"] == p + "/x", (name, r)
        assert kc_served(gw)
        pages = [p for p in kube.requests(mark, verb="list", resource="applications") if p["status"] == 200]
        assert [p["items"] for p in pages] == [500, 500, 204], pages
        assert all(p["query"].get("limit") == "500" for p in pages), pages
        assert "continue" not in pages[0]["query"] and all(p["query"].get("continue") for p in pages[1:]), pages
        ws = kube.wait_watching(mark)
        w = [x for x in ws if x["resource"] == "applications"][0]
        assert w["fromRv"] == pages[0]["listRv"], (w, pages[0])
    finally:
        gw.close()


# --------------------------------------------------------------------------- kubeconfig forms

def variant(name, kube, certs, auth_certs, d):
    """(flags, env, expected auth kind at the server) of one way of connecting."""
    ca = certs["ca.pem"]
    kcp = os.path.join(d, "kubeconfig")
    srv = kube.url()

    def kc(**kw):
        return {"kubeConfig": K.write_kubeconfig(kcp, kw.pop("server", srv), **kw)}
    if name == "token+ca-file":
        return kc(ca_file=ca, token=K.TOKEN_A), {}, "token"
    if name == "token+ca-data":
        return kc(ca_data=H.read_text(ca), token=K.TOKEN_B), {}, "token"
    if name == "tokenFile+ca-data":
        tf = os.path.join(d, "token")
        H.write_atomic(tf, K.TOKEN_A + "\n")
        return kc(ca_data=H.read_text(ca), token_file=tf), {}, "token"
    if name == "client-cert-files":
        return kc(ca_file=ca, cert_file=auth_certs["client.pem"], key_file=auth_certs["client.key"]), {}, "cert"
    if name == "client-cert-data-ec":
        return kc(ca_data=H.read_text(ca), cert_data=H.read_text(auth_certs["client-ec.pem"]),
                  key_data=H.read_text(auth_certs["client-ec.key"])), {}, "cert"
    if name == "client-cert-pkcs1-key":
        return kc(ca_data=H.read_text(ca), cert_file=auth_certs["client.pem"],
                  key_file=auth_certs["client-rsa1.key"]), {}, "cert"
    if name == "insecure-skip-tls-verify":
        return kc(insecure=True, token=K.TOKEN_A), {}, "token"
    if name == "ssl-cert-file":
        return kc(token=K.TOKEN_A), {"SSL_CERT_FILE": ca}, "token"
    if name == "localhost-name":
        return kc(server=kube.url(host="localhost"), ca_file=ca, token=K.TOKEN_A), {}, "token"
    if name == "apiServerURL-overrides-server":
        f = kc(server="https://127.0.0.1:%d" % H.free_port(), ca_file=ca, token=K.TOKEN_A)
        f["apiServerURL"] = srv + "/"  # a trailing slash, as users write it
        return f, {}, "token"
    if name == "relative-paths":
        # kubectl resolves certificate-authority, client-certificate, client-key and tokenFile
        # relative to the kubeconfig's directory (not the working directory)
        for src, dst in ((ca, "ca.pem"), (auth_certs["client.pem"], "client.pem"), (auth_certs["client.key"], "client.key")):
            H.write_atomic(os.path.join(d, dst), H.read_text(src))
        return kc(ca_file="ca.pem", cert_file="client.pem", key_file="client.key"), {}, "cert"
    if name == "apiServerURL-plain-http-proxy":
        return {"apiServerURL": kube.url(plain=True)}, {}, "proxy"
    raise ValueError(name)


VARIANTS = ["token+ca-file", "token+ca-data", "tokenFile+ca-data", "client-cert-files", "client-cert-data-ec",
            "client-cert-pkcs1-key", "insecure-skip-tls-verify", "ssl-cert-file", "localhost-name",
            "apiServerURL-overrides-server", "apiServerURL-plain-http-proxy", "relative-paths"]


@pytest.mark.parametrize("name", VARIANTS)
def test_connect(world, certs, auth_certs, tmp_path, name):
    kube = world
    flags, env, auth = variant(name, kube, certs, auth_certs, str(tmp_path))
    mark = kube.mark()
    gw = K.start_gateway(str(tmp_path), flags=flags, env=env, secrets=key_secrets(auth_certs))
    try:
        gw.wait_ready(8 * H.SLOW)
        assert kc_served(gw), H.get(gw.proxy, "/kc/echo/x")
        kube.wait_watching(mark)
        reqs = kube.requests(mark)
        assert reqs and {r["auth"] for r in reqs} == {auth}, [(r["auth"], r["status"], r["path"]) for r in reqs]
        assert not [r for r in reqs if r["status"] not in (200, None)], reqs
        if auth == "cert":
            assert {r["user"] for r in reqs} <= {"appgw-e2e-client", "appgw-e2e-client-ec"}, reqs
    finally:
        gw.close()


@pytest.mark.parametrize("name", ["wrong-token", "untrusted-server-ca", "client-cert-other-ca", "client-cert-expired",
                                  "https-server-as-plain-http"])
def test_refused_connection_not_ready(world, certs, auth_certs, tmp_path, name):
    """Credentials the server refuses (401) or a server the gateway must not trust: never ready,
    the cause logged (401 with the Status message), no token or key in the log, still alive."""
    kube = world
    d = str(tmp_path)
    kcp = os.path.join(d, "kubeconfig")
    if name == "wrong-token":
        flags = {"kubeConfig": K.write_kubeconfig(kcp, kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_WRONG)}
    elif name == "untrusted-server-ca":
        flags = {"kubeConfig": K.write_kubeconfig(kcp, kube.url(), ca_file=auth_certs["other-ca.pem"], token=K.TOKEN_A)}
    elif name == "https-server-as-plain-http":
        flags = {"apiServerURL": "http://127.0.0.1:%d" % kube.https}
    else:
        stem = "client-other" if name == "client-cert-other-ca" else "client-expired"
        flags = {"kubeConfig": K.write_kubeconfig(kcp, kube.url(), ca_file=certs["ca.pem"],
                                                  cert_file=auth_certs[stem + ".pem"], key_file=auth_certs[stem + ".key"])}
    mark = kube.mark()
    log0 = 0
    gw = K.start_gateway(d, flags=flags, secrets=key_secrets(auth_certs))
    try:
        if name in ("wrong-token", "client-cert-other-ca", "client-cert-expired"):
            r = kube.wait_request(mark, 5 * H.SLOW, status=401)
            assert r, "no request reached the server: %r" % kube.requests(mark)
            assert r["auth"] == ("bad-token" if name == "wrong-token" else "bad-cert"), r

            def logged():
                return [x for x in gw.records(log0) if "401" in str(x) and "Unauthorized" in str(x)]
            lines, _ = H.wait_for(logged, 3 * H.SLOW)
            assert lines, "no log line with the 401 and the Status message; tail:\n%s" % gw.log_tail()
        else:
            lines, _ = H.wait_for(lambda: [x for x in gw.records(log0) if str(x.get("level")).lower()
                                           in ("warn", "warning", "error")], 5 * H.SLOW)
            assert lines, "nothing logged at warn/error; tail:\n%s" % gw.log_tail()
            assert not [r for r in kube.requests(mark) if r["status"] == 200], kube.requests(mark)
        time.sleep(0.5)
        r = gw.ready()
        assert r is not None and r.status == 503, r
        assert gw.alive() and H.get(gw.admin, "/v1/health").status == 200
        r = K.try_get(gw.proxy, "/kc/echo/x")
        assert r is not None and r.status != 200, r
    finally:
        gw.close()


# --------------------------------------------------------------------------- token rotation

@pytest.mark.parametrize("mode", ["in-cluster", "kubeconfig-tokenFile"])
def test_token_file_rotation(kube, upstream, certs, auth_certs, tmp_path, mode):
    """The token file is rotated (in-cluster: the kubelet's atomic symlink swap of a projected
    volume; kubeconfig tokenFile: rename over), the server then accepts only the new token and
    ends the open watches: the gateway keeps syncing with the new token."""
    kube.reset()
    kube.set_tokens([K.TOKEN_A])
    kube.apply(K.echo_app("rot", upstream))
    d = str(tmp_path)
    if mode == "in-cluster":
        sa = K.service_account_dir(os.path.join(d, "sa"), certs, K.TOKEN_A)
        flags, env = None, K.in_cluster_env(kube, sa)

        def rotate(tok):
            K.projected_write(sa, {"token": tok, "ca.crt": H.read_text(certs["ca.pem"]), "namespace": H.NS})
    else:
        tf = os.path.join(d, "token")
        H.write_atomic(tf, K.TOKEN_A)
        flags = {"kubeConfig": K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"],
                                                  token_file=tf)}
        env = {}

        def rotate(tok):
            H.write_atomic(tf, tok)
    mark = kube.mark()
    gw = K.start_gateway(d, flags=flags, env=env)
    try:
        gw.wait_ready(8 * H.SLOW)
        kube.wait_watching(mark)
        assert {r["token"] for r in kube.requests(mark)} == {K.TOKEN_A}
        kube.set_tokens([K.TOKEN_A, K.TOKEN_C])      # the new token is valid before it is handed out
        rotate(K.TOKEN_C)
        time.sleep(0.2)
        mark2 = kube.mark()
        kube.ops([{"op": "tokens", "tokens": [K.TOKEN_C]},  # the old one is revoked ...
                  {"op": "closeWatches"},                 # ... and the watches end
                  {"op": "apply", "object": K.echo_app("rot-after", upstream)}])
        v, _ = K.until(K.path_is(gw.proxy, "/rot-after/echo/x", "/rot-after/x"), RELIST + 2)
        assert v, "no sync after the token rotation; requests: %r" % [
            (r["verb"], r["auth"], r["status"]) for r in kube.requests(mark2)]
        assert kube.requests(mark2, token=K.TOKEN_C, status=200), kube.requests(mark2)
        kube.wait_watching(mark2)
    finally:
        gw.close()


# --------------------------------------------------------------------------- outages around start and stop

def test_startup_does_not_wait_for_the_api_server(world, certs, tmp_path):
    """The API server is down (connection refused) when the gateway starts: it starts anyway
    (health 200, ready 503), keeps trying with backoff, logs the outage at most once, and is
    ready soon after the server is back."""
    kube = world
    d = str(tmp_path)
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    kube.outage_start()
    try:
        gw = K.start_gateway(d, flags={"kubeConfig": kc})
    except Exception:
        kube.outage_end()
        raise
    try:
        try:
            r = gw.ready()
            assert r is not None and r.status == 503, r
            time.sleep(1.5)
            r = gw.ready()
            assert r is not None and r.status == 503 and gw.alive(), r
            assert len(gw.msgs(K.UNREACHABLE_MSG)) <= 1, "outage logged more than once"
        finally:
            kube.outage_end()
        gw.wait_ready(RELIST + 2)
        assert kc_served(gw)
    finally:
        gw.close()


def test_sigterm_during_outage_exits_promptly(world, certs, tmp_path):
    kube = world
    d = str(tmp_path)
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    mark = kube.mark()
    gw = K.start_gateway(d, flags={"kubeConfig": kc})
    try:
        gw.wait_ready()
        kube.wait_watching(mark)
        log0 = gw.log_mark()
        kube.outage_start()
        try:
            assert gw.wait_msg(K.UNREACHABLE_MSG, 5 * H.SLOW, since=log0), gw.log_tail()
            time.sleep(0.5)  # in the middle of reconnect attempts
            t0 = time.monotonic()
            rc = gw.gw.stop(timeout=10 * H.SLOW)
            took = time.monotonic() - t0
        finally:
            kube.outage_end()
        assert rc == 0, "exit code %r; tail:\n%s" % (rc, gw.log_tail())
        assert took < 2.0 * H.SLOW, "SIGTERM took %.2fs during an API server outage" % took
    finally:
        gw.close()


def test_config_dir_wins_over_api_server_flags(world, upstream, certs, tmp_path):
    """--configDir with --kubeConfig and --apiServerURL: file mode, the API server is never asked,
    and /v1/ready is 200 after the first load."""
    kube = world
    d = str(tmp_path)
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [K.echo_app("filed", upstream)])
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    mark = kube.mark()
    gw = K.start_gateway(d, flags={"kubeConfig": kc, "apiServerURL": kube.url()}, config_dir=cfg)
    try:
        gw.wait_ready(5 * H.SLOW)
        assert H.get(gw.proxy, "/filed/echo/x").status == 200
        assert H.get(gw.proxy, "/kc/echo/x").status == 404
        time.sleep(0.5)
        assert kube.requests(mark) == [], "the API server was asked in file mode"
    finally:
        gw.close()


def test_concurrent_requests_during_first_sync_do_not_block(world, certs, tmp_path):
    """While the first list is held by the server, requests are answered at once (no route yet:
    404, or 503), not queued behind the API server."""
    kube = world
    kube.config(holdLists=True)
    d = str(tmp_path)
    kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
    mark = kube.mark()
    gw = K.start_gateway(d, flags={"kubeConfig": kc})
    try:
        assert kube.wait_request(mark, 5 * H.SLOW, verb="list")
        results = []

        def one():
            t0 = time.monotonic()
            r = K.try_get(gw.proxy, "/kc/echo/x")
            results.append((r.status if r is not None else None, time.monotonic() - t0))
        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert len(results) == 4 and all(s in (404, 503) for s, _ in results), results
        assert max(t for _, t in results) < 1.0 * H.SLOW, results
        kube.config(holdLists=False)
        gw.wait_ready(5 * H.SLOW)
        assert kc_served(gw)
    finally:
        kube.config(holdLists=False)
        gw.close()


def test_http1_only_api_server(tmp_path_factory, upstream, certs, auth_certs):
    """An API server reached over HTTP/1.1 only (no h2 in ALPN, e.g. behind an HTTP/1 load
    balancer): chunked watch streams, events split across chunks, garbage → relist."""
    kube = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-h1")), certs, auth_certs, http1_only=True)
    try:
        kube.config(fragmentEvents=True)
        kube.apply(K.echo_app("h1", upstream))
        d = str(tmp_path_factory.mktemp("kube-h1-gw"))
        kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
        mark = kube.mark()
        gw = K.start_gateway(d, flags={"kubeConfig": kc})
        try:
            gw.wait_ready()
            kube.wait_watching(mark)
            assert {r["proto"] for r in kube.requests(mark)} == {"http/1.1"}, kube.requests(mark)
            kube.apply(K.echo_app("h1", upstream, path="/h1-v2"))
            v, took = K.until(K.path_is(gw.proxy, "/h1/echo/x", "/h1-v2/x"), 3.0 * H.SLOW)
            assert v and took <= 1.2 * H.SLOW, "change over HTTP/1.1 applied after %.2fs" % took
            mark2 = kube.mark()
            kube.inject("garbage", resource="applications")
            assert kube.wait_request(mark2, RELIST, verb="list", resource="applications", status=200)
            kube.wait_watching(mark2, resources=("applications",))
            kube.apply(K.echo_app("h1-after", upstream))
            v, _ = K.until(K.path_is(gw.proxy, "/h1-after/echo/x", "/h1-after/x"), 3.0 * H.SLOW)
            assert v
        finally:
            gw.close()
    finally:
        kube.stop()
