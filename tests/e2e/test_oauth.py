"""SPEC §6.2 OAuth client credentials, §7 token endpoint failures.

Against a real OAuth server (oidc-provider, oauth/server.js): clients registered for
client_secret_basic only or client_secret_post only, which refuse the original's "secret twice"
form (400 invalid_request) and the other method (401 invalid_client); the gateway must fall back
and remember what worked. Against authmock.py: the exact token request, Secret headers and query
parameters, and every failure mode of a token endpoint.

Every API gets a token URL of its own (?v=... for oidc-provider, a realm for authmock), since the
gateway keys its token cache and the remembered method by URL."""
import base64
import os
from urllib.parse import parse_qs

import pytest

import auth_helpers as A
import helpers as H

APP = "oa"
PROXY_TIMEOUT = 2  # seconds; the slow token endpoint test relies on it
MOCK_ID = "mock-client-7"
MOCK_SECRET = "mock-SECRET-oauth-61f0c2"
CALLER_AUTHZ = "Bearer caller-AUTHZ-oauth-3321"
ACCESS = "Bearer caller-ACCESS-oauth-9120"


def realm(name):
    return "oa-" + name


def _config(op, mock, closed):
    e, svc = H.entry, H.service
    secrets = []

    def op_api(display, client, variant, secret_value=None, method=None, tls=False):
        sname = "op-" + H.service(display, [])["name"]
        secrets.append(A.oauth_secret(sname, client, secret_value or A.OP_SECRETS.get(client, "nope"), method=method))
        url = op.token_url(tls=tls, variant=variant, host="localhost" if tls else "127.0.0.1")
        return svc(display, [e(mock.url(realm(variant), "api"), creds=A.creds("OAuth", sname, url))])

    def mock_api(display, name, auth_url=None, client=MOCK_ID, secret_value=MOCK_SECRET, **kw):
        sname = "mock-" + H.service(display, [])["name"]
        secrets.append(A.oauth_secret(sname, client, secret_value, **kw))
        url = auth_url if auth_url is not None else mock.url(realm(name), "token")
        return svc(display, [e(mock.url(realm(name), "api"), creds=A.creds("OAuth", sname, url))])

    services = [
        op_api("Op Basic", "gw-basic", "basic"),
        op_api("Op Post", "gw-post", "post"),
        op_api("Op Basic Set", "gw-basic", "basic-set", method="client_secret_basic"),
        op_api("Op Post Set", "gw-post", "post-set", method="client_secret_post"),
        op_api("Op Method Mismatch", "gw-post", "mismatch", method="client_secret_basic"),
        op_api("Op Wrong Secret", "gw-basic", "wrong-secret", secret_value="not-the-SECRET-4471"),
        op_api("Op Wrong Secret Post", "gw-post", "wrong-secret-post", secret_value="not-the-SECRET-4472"),
        op_api("Op Unknown Client", "gw-nobody", "unknown", secret_value="nobody-SECRET-1"),
        op_api("Op Https", "gw-post2", "https", tls=True),
        op_api("Op Shared Basic", "gw-basic2", "shared"),
        op_api("Op Shared Post", "gw-post", "shared"),
        mock_api("Shape", "shape", headers={"X-Tenant": ["t1"], "X-Multi": ["a", "b"]},
                 query={"tenant": ["t1"], "scope x": ["a b"]},
                 auth_url=mock.url(realm("shape"), "token", "?fixed=1")),
        mock_api("Fallback A", "fb", client="fb-a"),
        mock_api("Fallback B", "fb", client="fb-b", auth_url=mock.url(realm("fb"), "token"),
                 secret_value=MOCK_SECRET + "-b"),
        mock_api("Plain 400", "plain400"),
        mock_api("Json 500", "json500"),
        mock_api("Down", "down", auth_url="http://127.0.0.1:%d/token" % closed),
        mock_api("Status 503", "s503"),
        mock_api("Bad Json", "badjson"),
        mock_api("No Access Token", "noaccess"),
        mock_api("Empty Body", "empty"),
        mock_api("Slow", "slow"),
        mock_api("Cached", "cached"),
        mock_api("No Expiry", "noexpiry"),
        mock_api("Access", "access"),
        mock_api("Bad Headers", "badheaders"),
        svc("Missing Secret", [e(mock.url(realm("missing"), "api"),
                                 creds=A.creds("OAuth", "no-such-oauth-secret", mock.url(realm("missing"), "token")))]),
    ]
    # the Secret of "Bad Headers" carries broken JSON in headers
    for s in secrets:
        if s["metadata"]["name"] == "mock-bad-headers":
            s["stringData"]["headers"] = "{not json"
    return [H.application(APP, services)], secrets


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, oauth_server, authmock, closed_port):
    authmock.configure(realm("fb"), auth_methods=["post"])
    authmock.configure(realm("plain400"), token_status=400, token_error_body="plain bad request")
    authmock.configure(realm("json500"), token_status=500)
    authmock.configure(realm("s503"), token_status=503)
    authmock.configure(realm("badjson"), token_body="badjson")
    authmock.configure(realm("noaccess"), token_body="noaccess")
    authmock.configure(realm("empty"), token_body="empty")
    authmock.configure(realm("slow"), token_delay_ms=int(PROXY_TIMEOUT * 2500))
    authmock.configure(realm("noexpiry"), expires_in=None)
    apps, secrets = _config(oauth_server, authmock, closed_port)
    with A.auth_gateway(tmp_path_factory, "gw-oauth", certs, apps, secrets,
                        flags={"proxyTimeout": PROXY_TIMEOUT}) as g:
        yield g


call, ok = A.api_calls(APP)


def op_seq(op, client, variant):
    """(auth method, status) of every token request oidc-provider saw for client on ?v=variant."""
    return [(r["auth"], r["status"]) for r in op.requests_of(client) if r["query"] == "v=" + variant]


# --------------------------------------------------------------------------- oidc-provider

def test_basic_only_client_falls_back_and_remembers(gw, oauth_server, authmock):
    doc = ok(gw, "op-basic")
    tok = A.bearer_of(doc)
    assert tok in oauth_server.tokens_of("gw-basic")
    assert oauth_server.introspect(tok)["active"] is True
    # the combined form first (the original's request), refused as RFC 6749 §2.3 demands,
    # then client_secret_basic
    assert op_seq(oauth_server, "gw-basic", "basic") == [("both", 400), ("basic", 200)]
    # cached: no new token request
    assert A.bearer_of(ok(gw, "op-basic")) == tok
    assert len(op_seq(oauth_server, "gw-basic", "basic")) == 2
    # a 401 from the upstream drops the token; the refetch uses the remembered method directly
    authmock.configure(realm("basic"), fail_next=1)
    tok2 = A.bearer_of(ok(gw, "op-basic"))
    assert tok2 != tok and tok2 in oauth_server.tokens_of("gw-basic")
    assert op_seq(oauth_server, "gw-basic", "basic") == [("both", 400), ("basic", 200), ("basic", 200)]


def test_post_only_client_falls_back_and_remembers(gw, oauth_server, authmock):
    doc = ok(gw, "op-post")
    tok = A.bearer_of(doc)
    assert tok in oauth_server.tokens_of("gw-post")
    assert op_seq(oauth_server, "gw-post", "post") == [("both", 400), ("basic", 401), ("post", 200)]
    assert A.bearer_of(ok(gw, "op-post")) == tok
    authmock.configure(realm("post"), fail_next=1)
    tok2 = A.bearer_of(ok(gw, "op-post"))
    assert tok2 != tok and tok2 in oauth_server.tokens_of("gw-post")
    assert op_seq(oauth_server, "gw-post", "post")[3:] == [("post", 200)]


def test_method_set_basic_uses_only_basic(gw, oauth_server):
    tok = A.bearer_of(ok(gw, "op-basic-set"))
    assert tok in oauth_server.tokens_of("gw-basic")
    assert op_seq(oauth_server, "gw-basic", "basic-set") == [("basic", 200)]


def test_method_set_post_uses_only_post(gw, oauth_server):
    tok = A.bearer_of(ok(gw, "op-post-set"))
    assert tok in oauth_server.tokens_of("gw-post")
    assert op_seq(oauth_server, "gw-post", "post-set") == [("post", 200)]


def test_method_set_but_not_registered_is_502_without_fallback(gw, oauth_server):
    r = call(gw, "op-method-mismatch")
    H.assert_gw_error(r, 502, contains="token")
    seq = op_seq(oauth_server, "gw-post", "mismatch")
    assert seq and all(s == ("basic", 401) for s in seq), seq


def test_wrong_client_secret_is_502(gw, oauth_server):
    H.assert_gw_error(call(gw, "op-wrong-secret"), 502, contains="token")
    seq = op_seq(oauth_server, "gw-basic", "wrong-secret")
    assert 1 <= len(seq) <= 3 and all(st != 200 for _, st in seq), seq
    H.assert_gw_error(call(gw, "op-wrong-secret-post"), 502, contains="token")


def test_wrong_client_id_is_502(gw, oauth_server):
    H.assert_gw_error(call(gw, "op-unknown-client"), 502, contains="token")
    assert oauth_server.tokens_of("gw-nobody") == []


def test_https_token_endpoint_verified_with_test_ca(gw, oauth_server):
    tok = A.bearer_of(ok(gw, "op-https"))
    assert tok in oauth_server.tokens_of("gw-post2")
    assert op_seq(oauth_server, "gw-post2", "https")[-1] == ("post", 200)


def test_basic_only_and_post_only_clients_on_one_token_endpoint(gw, oauth_server):
    """Two APIs, one token URL, clients registered for different methods: what the endpoint
    accepted for the first client must not stop the second from getting its token."""
    t1 = A.bearer_of(ok(gw, "op-shared-basic"))
    t2 = A.bearer_of(ok(gw, "op-shared-post"))
    assert t1 in oauth_server.tokens_of("gw-basic2")
    assert t2 in oauth_server.tokens_of("gw-post")
    assert A.bearer_of(ok(gw, "op-shared-basic")) == t1
    assert A.bearer_of(ok(gw, "op-shared-post")) == t2


def test_oauth_on_compass_port(gw, oauth_server):
    r = H.get(gw.compass, "/%s/op-basic-set/api/c" % APP)
    assert r.status == 200, r
    assert A.bearer_of(r.json()) in oauth_server.tokens_of("gw-basic")


# --------------------------------------------------------------------------- the token request

def test_token_request_shape_headers_and_query(gw, authmock):
    doc = ok(gw, "shape", "/p?q=1", [("Authorization", CALLER_AUTHZ)])
    st = authmock.state(realm("shape"))
    assert st["counts"]["token"] == 1, st["token_requests"]
    t = st["token_requests"][0]
    assert t["method"] == "POST"
    assert (t["content_type"] or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded", t
    assert t["form"] == {"client_id": MOCK_ID, "client_secret": MOCK_SECRET,
                         "grant_type": "client_credentials"}, t["body"]
    assert t["authorization"] == "Basic " + base64.b64encode(
        ("%s:%s" % (MOCK_ID, MOCK_SECRET)).encode()).decode(), t
    assert H.hvals(t["headers"], "X-Tenant") == ["t1"], t["headers"]
    assert H.hvals(t["headers"], "X-Multi") in (["a", "b"], ["a, b"], ["a,b"]), t["headers"]
    assert parse_qs(t["query"] or "") == {"fixed": ["1"], "tenant": ["t1"], "scope x": ["a b"]}, t["query"]
    # the upstream call: Bearer replaces the caller's Authorization, nothing of the token
    # request (its headers, its query) leaks into it
    assert H.hvals(doc["headers"], "Authorization") == ["Bearer " + t["token"]], doc["headers"]
    assert doc["query"] == "q=1", doc
    assert H.hvals(doc["headers"], "X-Tenant") == [], doc["headers"]


def test_fallback_with_bespoke_server_and_memory_per_endpoint(gw, authmock):
    """authmock accepts only client_secret_post: combined → 400 invalid_request, basic → 401
    invalid_client, post → 200. A second client on the same token URL starts with post."""
    ok(gw, "fallback-a")
    seq = [(t["auth"], t["status"]) for t in authmock.state(realm("fb"))["token_requests"]]
    assert seq == [("both", 400), ("basic", 401), ("post", 200)], seq
    ok(gw, "fallback-b")
    reqs = authmock.state(realm("fb"))["token_requests"]
    assert [(t["auth"], t["status"], t["client_id"]) for t in reqs[3:]] == [("post", 200, "fb-b")], reqs[3:]


def test_no_fallback_on_non_oauth_400(gw, authmock):
    H.assert_gw_error(call(gw, "plain-400"), 502, contains="token")
    assert authmock.counts(realm("plain400"))["token"] == 1


def test_no_fallback_on_500(gw, authmock):
    H.assert_gw_error(call(gw, "json-500"), 502, contains="token")
    assert authmock.counts(realm("json500"))["token"] == 1


# --------------------------------------------------------------------------- failures (§7)

def test_token_endpoint_unreachable_is_502(gw):
    H.assert_gw_error(call(gw, "down"), 502, contains="token")


def test_token_endpoint_non_200_is_502(gw, authmock):
    H.assert_gw_error(call(gw, "status-503"), 502, contains="token")
    assert authmock.counts(realm("s503"))["api"] == 0


def test_token_endpoint_bad_json_is_502(gw, authmock):
    H.assert_gw_error(call(gw, "bad-json"), 502, contains="token")
    assert authmock.counts(realm("badjson"))["api"] == 0


def test_token_response_without_access_token_is_502(gw, authmock):
    H.assert_gw_error(call(gw, "no-access-token"), 502, contains="token")
    H.assert_gw_error(call(gw, "empty-body"), 502, contains="token")
    assert authmock.counts(realm("noaccess"))["api"] == 0


def test_token_endpoint_slower_than_proxy_timeout_is_502(gw, authmock):
    r, took = A.timed(call, gw, "slow")
    H.assert_gw_error(r, 502, contains="token")
    assert took < PROXY_TIMEOUT + 2.0, "answered after %.2fs (proxyTimeout %ds)" % (took, PROXY_TIMEOUT)
    assert took >= PROXY_TIMEOUT - 0.5, "answered after %.2fs, before proxyTimeout" % took
    assert authmock.counts(realm("slow"))["api"] == 0


def test_missing_oauth_secret_is_500(gw):
    H.assert_gw_error(call(gw, "missing-secret"), 500, prefix="failed to read API for ")


def test_bad_headers_json_in_oauth_secret_is_500(gw, authmock):
    H.assert_gw_error(call(gw, "bad-headers"), 500, prefix="failed to read API for ")
    assert authmock.counts(realm("badheaders"))["token"] == 0


# --------------------------------------------------------------------------- cache, override

def test_token_cached_until_expiry(gw, authmock):
    toks = {A.bearer_of(ok(gw, "cached", "/c%d" % i)) for i in range(5)}
    assert len(toks) == 1
    assert authmock.counts(realm("cached"))["token"] == 1


def test_token_without_expires_in_stays_cached(gw, authmock):
    toks = {A.bearer_of(ok(gw, "no-expiry", "/c%d" % i)) for i in range(3)}
    assert len(toks) == 1
    assert authmock.counts(realm("noexpiry"))["token"] == 1


def test_access_token_overrides_oauth_without_fetching(gw, authmock):
    doc = ok(gw, "access", headers=[("Access-Token", ACCESS), ("Authorization", CALLER_AUTHZ)])
    assert H.hvals(doc["headers"], "Authorization") == [ACCESS], doc["headers"]
    assert H.hvals(doc["headers"], "Access-Token") == [], doc["headers"]
    assert authmock.counts(realm("access"))["token"] == 0


# --------------------------------------------------------------------------- logs (§9)

def test_zz_no_secrets_in_log(gw, oauth_server, authmock):
    """Runs last in this module: nothing secret that passed through the gateway is logged."""
    values = list(A.OP_SECRETS.values()) + [MOCK_SECRET, MOCK_SECRET + "-b", "not-the-SECRET-4471",
                                            "not-the-SECRET-4472", "nobody-SECRET-1",
                                            CALLER_AUTHZ.split()[1], ACCESS.split()[1]]
    for toks in oauth_server.stats()["tokens"].values():
        values += toks
    for name in ("shape", "fb", "cached", "noexpiry", "basic", "post"):
        values += [t["token"] for t in authmock.state(realm(name))["tokens"]]
    values.append(base64.b64encode(("%s:%s" % (MOCK_ID, MOCK_SECRET)).encode()).decode())
    text = gw.log_text()
    assert text.strip()
    A.check_no_secrets(text, values)
    assert os.path.getsize(gw.log_path) > 0
