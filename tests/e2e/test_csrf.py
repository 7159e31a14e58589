"""SPEC §6.5 CSRF tokens (with Basic, OAuth, CertificateGen and the Access-Token override),
§6.8 retry after 403, §7 CSRF endpoint failures → 502.

authmock's CSRF endpoint issues a token plus a session cookie (Set-Cookie) bound to the caller's
identity (Basic user, OAuth client, or client-certificate DN); its API answers 403 unless
X-CSRF-Token is the token of the session the SAP_SESSIONID_E2E cookie names, for the same
identity."""
import hashlib
import os

import pytest

import auth_helpers as A
import helpers as H

APP = "cs"
CS_USER, CS_PASS = "cs-user", "cs-SECRET-basic-2291"
SHARED = {"a": ("shared-a", "cs-SECRET-shared-a-40"), "b": ("shared-b", "cs-SECRET-shared-b-41")}
MOCK_ID, MOCK_SECRET = "cs-client", "cs-SECRET-oauth-7310"
ACCESS = "Bearer cs-ACCESS-token-5820"
SESSION = "SAP_SESSIONID_E2E"


def realm(name):
    return "cs-" + name


def basic(user, pw):
    return "Basic " + H.b64("%s:%s" % (user, pw))


def _config(mock, ngx, pems, closed):
    e, svc = H.entry, H.service
    secrets = [A.basic_secret("cs-basic", CS_USER, CS_PASS),
               A.basic_secret("cs-shared-a", *SHARED["a"]), A.basic_secret("cs-shared-b", *SHARED["b"]),
               A.oauth_secret("cs-oauth", MOCK_ID, MOCK_SECRET),
               A.oauth_secret("cs-access", MOCK_ID, MOCK_SECRET),
               A.oauth_secret("cs-access-post", MOCK_ID, MOCK_SECRET, method="client_secret_post"),
               A.cert_secret("cs-cert", pems["client.pem"], pems["client.key"])]

    def basic_api(display, name, csrf_url=None, secret="cs-basic"):
        csrf_url = csrf_url or mock.url(realm(name), "csrf")
        return svc(display, [e(mock.url(realm(name), "api"), creds=A.creds("Basic", secret, csrf_url=csrf_url))])

    services = [
        basic_api("Basic Csrf", "basic"),
        basic_api("Csrf Retry", "retry"),
        basic_api("Csrf Always 403", "always403"),
        basic_api("Csrf Down", "down", csrf_url="http://127.0.0.1:%d/csrf" % closed),
        basic_api("Csrf 500", "c500"),
        basic_api("Csrf No Token", "notoken"),
        basic_api("Shared A", "shared", secret="cs-shared-a"),
        basic_api("Shared B", "shared", secret="cs-shared-b"),
        svc("Oauth Csrf", [e(mock.url(realm("oauth"), "api"),
                             creds=A.creds("OAuth", "cs-oauth", mock.url(realm("oauth"), "token"),
                                           csrf_url=mock.url(realm("oauth"), "csrf")))]),
        svc("Access Csrf", [e(mock.url(realm("access"), "api"),
                              creds=A.creds("OAuth", "cs-access", mock.url(realm("access"), "token"),
                                            csrf_url=mock.url(realm("access"), "csrf")))]),
        svc("Access Csrf Post", [e(mock.url(realm("accpost"), "api"),
                                   creds=A.creds("OAuth", "cs-access-post", mock.url(realm("accpost"), "token"),
                                                 csrf_url=mock.url(realm("accpost"), "csrf")))]),
        svc("Cert Csrf", [e(ngx.url("/%s/api" % realm("cert")),
                            creds=A.creds("CertificateGen", "cs-cert", csrf_url=ngx.url("/%s/csrf" % realm("cert"))))]),
    ]
    return [H.application(APP, services)], secrets


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, auth_certs, authmock, mtls_nginx, closed_port):
    pems = {k: H.read_text(v) for k, v in auth_certs.items()}
    b = basic(CS_USER, CS_PASS)
    for name in ("basic", "retry", "always403", "down", "c500", "notoken"):
        authmock.configure(realm(name), expect_authorization=b, api_csrf=True)
    authmock.configure(realm("c500"), csrf_status=500)
    authmock.configure(realm("notoken"), csrf_send_token=False)
    authmock.configure(realm("shared"), api_csrf=True)
    authmock.configure(realm("oauth"), api_auth="bearer", api_csrf=True)
    authmock.configure(realm("access"), api_csrf=True, csrf_bind_identity=False)
    authmock.configure(realm("cert"), api_csrf=True)
    authmock.configure(realm("accpost"), api_csrf=True, csrf_bind_identity=False, auth_methods=["post"])
    apps, secrets = _config(authmock, mtls_nginx, pems, closed_port)
    with A.auth_gateway(tmp_path_factory, "gw-csrf", certs, apps, secrets) as g:
        yield g


call, ok = A.api_calls(APP)


def assert_csrf_fetch(rec, authorization=None, dn=None):
    assert rec["method"] == "GET", rec
    assert (rec["x_csrf_token"] or "").lower() == "fetch", rec
    assert rec["accept"] == "*/*", rec
    assert (rec["cache_control"] or "").lower() == "no-cache", rec
    if authorization is not None:
        assert rec["authorization"] == authorization, rec
    if dn is not None:
        assert rec["client_dn"] == dn, rec


def assert_carries(doc, fetch):
    """The upstream request carries the token and the session cookies of CSRF fetch `fetch`."""
    assert H.hvals(doc["headers"], "X-CSRF-Token") == [fetch["token"]], doc["headers"]
    ck = A.cookies_of(doc)
    assert ck.get(SESSION) == [fetch["session"]], ck
    assert ck.get("sap-usercontext") == ["sap-client=100"], ck
    return ck


# --------------------------------------------------------------------------- with each strategy

def test_basic_with_csrf_token_and_cookie_merge(gw, authmock):
    doc = ok(gw, "basic-csrf", "/p?q=1", [("Cookie", "mine=1; %s=stale-from-caller" % SESSION),
                                          ("X-CSRF-Token", "caller-bogus")])
    st = authmock.state(realm("basic"))
    assert st["counts"]["csrf"] == 1, st["csrf_requests"]
    fetch = st["csrf_requests"][0]
    assert_csrf_fetch(fetch, authorization=basic(CS_USER, CS_PASS))
    ck = assert_carries(doc, fetch)
    assert ck.get("mine") == ["1"], ck  # the caller's other cookies stay
    assert H.hvals(doc["headers"], "Authorization") == [basic(CS_USER, CS_PASS)]
    assert doc["path"] == "/%s/api/p" % realm("basic") and doc["query"] == "q=1", doc
    # cached: the next requests reuse token and cookies
    for i in range(3):
        assert_carries(ok(gw, "basic-csrf", "/n%d" % i), fetch)
    assert authmock.counts(realm("basic"))["csrf"] == 1


def test_csrf_on_compass_port(gw, authmock):
    doc = ok(gw, "basic-csrf", "/api/c", port=gw.compass)
    assert H.hvals(doc["headers"], "X-CSRF-Token"), doc["headers"]


def test_oauth_with_csrf(gw, authmock):
    doc = ok(gw, "oauth-csrf")
    st = authmock.state(realm("oauth"))
    assert st["counts"]["token"] == 1 and st["counts"]["csrf"] == 1, st["counts"]
    tok = st["tokens"][0]["token"]
    assert_csrf_fetch(st["csrf_requests"][0], authorization="Bearer " + tok)
    assert_carries(doc, st["csrf_requests"][0])
    assert A.bearer_of(doc) == tok


def test_certificate_gen_with_csrf(gw, authmock):
    doc = ok(gw, "cert-csrf")
    st = authmock.state(realm("cert"))
    assert st["counts"]["csrf"] == 1, st["csrf_requests"]
    assert_csrf_fetch(st["csrf_requests"][0], dn=H.CLIENT_DN)
    assert_carries(doc, st["csrf_requests"][0])
    assert H.hvals(doc["headers"], "X-Client-DN") == [H.CLIENT_DN]


def test_access_token_override_keeps_csrf(gw, authmock):
    """The upstream call carries the caller's Access-Token as Authorization, never an OAuth
    token, and still the CSRF token. (How the CSRF fetch itself authenticates is left open: the
    original applies the API's own strategy there, fetching an OAuth token for it.)"""
    doc = ok(gw, "access-csrf", headers=[("Access-Token", ACCESS)])
    st = authmock.state(realm("access"))
    assert st["counts"]["csrf"] == 1, st["csrf_requests"]
    assert_csrf_fetch(st["csrf_requests"][0])
    assert_carries(doc, st["csrf_requests"][0])
    assert H.hvals(doc["headers"], "Authorization") == [ACCESS], doc["headers"]
    assert H.hvals(doc["headers"], "Access-Token") == [], doc["headers"]


def test_token_fetched_for_a_csrf_fetch_uses_the_secrets_auth_method(gw, authmock):
    """With Access-Token only the CSRF fetch needs the API's OAuth token; that token request
    must use tokenEndpointAuthMethod too (client_secret_post here: the endpoint refuses the rest)."""
    doc = ok(gw, "access-csrf-post", headers=[("Access-Token", ACCESS)])
    st = authmock.state(realm("accpost"))
    assert [t["auth"] for t in st["token_requests"]] == ["post"], st["token_requests"]
    assert st["counts"]["csrf"] == 1, st["csrf_requests"]
    assert H.hvals(doc["headers"], "Authorization") == [ACCESS], doc["headers"]


# --------------------------------------------------------------------------- cache key

def test_apis_sharing_a_csrf_endpoint_get_their_own_tokens(gw, authmock):
    """Two APIs, one CSRF endpoint, different users: each gets a token and session of its own
    (the original shared one and the API of the other user refused it)."""
    for i in range(2):
        ok(gw, "shared-a", "/a%d" % i)
        ok(gw, "shared-b", "/b%d" % i)
    st = authmock.state(realm("shared"))
    fetches = st["csrf_requests"]
    assert len(fetches) == 2, fetches
    by_auth = {f["authorization"]: f for f in fetches}
    assert set(by_auth) == {basic(*SHARED["a"]), basic(*SHARED["b"])}, fetches
    api = st["api_requests"]
    assert [a["status"] for a in api] == [200] * 4, [(a["status"], a["reason"]) for a in api]
    for a in api:
        assert a["x_csrf_token"] == by_auth[a["authorization"]]["token"], a


# --------------------------------------------------------------------------- retry after 403 (§6.8)

def test_invalid_csrf_token_is_refetched_and_request_retried(gw, authmock):
    ok(gw, "csrf-retry")
    authmock.revoke(realm("retry"), tokens=False, csrf=True)
    body = os.urandom(3000)
    doc = ok(gw, "csrf-retry", "/post", [("X-Trace", "t-1")], method="POST", body=body)
    st = authmock.state(realm("retry"))
    assert st["counts"]["csrf"] == 2, st["csrf_requests"]
    api = st["api_requests"]
    assert [a["status"] for a in api] == [200, 403, 200], [(a["status"], a["reason"]) for a in api]
    assert api[1]["x_csrf_token"] == st["csrf_requests"][0]["token"]
    assert api[2]["x_csrf_token"] == st["csrf_requests"][1]["token"]
    assert_carries(doc, st["csrf_requests"][1])
    for a in api[1:]:
        assert a["method"] == "POST" and a["body_len"] == len(body), a
        assert a["body_sha256"] == hashlib.sha256(body).hexdigest(), a
        assert H.hvals(a["headers"], "X-Trace") == ["t-1"], a["headers"]
    assert api[1]["body_b64"] == api[2]["body_b64"]


def test_second_403_is_returned_without_a_third_try(gw, authmock):
    ok(gw, "csrf-always-403")
    authmock.configure(realm("always403"), fail_next=2, fail_status=403)
    r = call(gw, "csrf-always-403", "/again", method="PUT", body=b"payload")
    assert r.status == 403, r
    assert r.body == b"forced 403", r
    st = authmock.state(realm("always403"))
    assert [a["status"] for a in st["api_requests"]] == [200, 403, 403]
    assert st["counts"]["csrf"] == 2, st["csrf_requests"]


# --------------------------------------------------------------------------- failures → 502 (§7)

@pytest.mark.parametrize("svc,name", [("csrf-down", "down"), ("csrf-500", "c500"), ("csrf-no-token", "notoken")])
def test_csrf_endpoint_failure_is_502(gw, authmock, svc, name):
    H.assert_gw_error(call(gw, svc), 502, contains="CSRF")
    assert authmock.counts(realm(name))["api"] == 0


# --------------------------------------------------------------------------- logs (§9)

def test_zz_no_csrf_secrets_in_log(gw, authmock):
    values = [CS_PASS, SHARED["a"][1], SHARED["b"][1], MOCK_SECRET, ACCESS.split()[1],
              basic(CS_USER, CS_PASS).split()[1], "stale-from-caller", "caller-bogus"]
    for name in ("basic", "retry", "always403", "shared", "oauth", "access", "cert"):
        st = authmock.state(realm(name))
        values += [f["token"] for f in st["csrf_requests"] if f["token"]]
        values += [f["session"] for f in st["csrf_requests"] if f["session"]]
        values += [t["token"] for t in st["tokens"]]
    text = gw.log_text()
    assert text.strip()
    A.check_no_secrets(text, values)
