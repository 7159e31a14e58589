"""SPEC §6.3 OAuthWithCert (RFC 8705 tls_client_auth), §7: its failures answer 500.

The real server is oidc-provider's HTTPS listener (client certificates verified against
client-ca.pem, subject DN matched to the client's tls_client_auth_subject_dn). The exact token
request is checked on authmock behind the mTLS nginx (which passes the verified DN on)."""
import os
from urllib.parse import parse_qs

import pytest

import auth_helpers as A
import helpers as H

APP = "oc"
UNUSED_SECRET = "oc-unused-SECRET-5f31"
PREFIX_CRT = "notBefore=Jan  1 00:00:00 2020 GMT\nnotAfter=Dec 31 23:59:59 2099 GMT\nsubject=/CN=appgw-e2e-client\n"
PREFIX_KEY = "Bag Attributes\n    localKeyID: 01 02 03\nKey Attributes: <No Attributes>\n"
BAD_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


def realm(name):
    return "oc-" + name


@pytest.fixture(scope="module")
def pems(auth_certs):
    return {k: H.read_text(v) for k, v in auth_certs.items()}


def _config(op, mock, ngx, pems, closed):
    e, svc = H.entry, H.service
    secrets = []

    def api(display, client, crt, key, auth_url=None, variant=None, upstream_realm=None, **kw):
        name = H.service(display, [])["name"]
        variant = variant or name
        secrets.append(A.cert_secret("oc-" + name, pems[crt] if crt in pems else crt,
                                     pems[key] if key in pems else key, client_id=client, **kw))
        url = auth_url or op.token_url(tls=True, variant=variant, host="localhost")
        return svc(display, [e(mock.url(realm(upstream_realm or name), "api"),
                               creds=A.creds("OAuthWithCert", "oc-" + name, url))])

    services = [
        api("Mtls", "gw-mtls", "client.pem", "client.key"),
        api("Mtls Rsa1", "gw-mtls", "client.pem", "client-rsa1.key"),
        api("Mtls Ec", "gw-mtls-ec", "client-ec.pem", "client-ec.key"),
        api("Mtls Prefixed", "gw-mtls", PREFIX_CRT + pems["client.pem"], PREFIX_KEY + pems["client.key"]),
        api("Mtls Retry", "gw-mtls", "client.pem", "client.key"),
        api("Mtls Cache", "gw-mtls", "client.pem", "client.key"),
        api("Shape", "oc-shape-client", "client.pem", "client.key",
            auth_url=ngx.url("/%s/token?fixed=1" % realm("shape")), client_secret=UNUSED_SECRET,
            headers={"X-Tenant": ["t1"]}, query={"tenant": ["t1"]}),
        api("Other Ca", "gw-mtls", "client-other.pem", "client-other.key"),
        api("Expired", "gw-mtls", "client-expired.pem", "client-expired.key"),
        api("Wrong Dn", "gw-mtls", "client-ec.pem", "client-ec.key"),
        api("Unknown Client", "gw-nobody", "client.pem", "client.key"),
        api("Down", "gw-mtls", "client.pem", "client.key", auth_url="https://127.0.0.1:%d/token" % closed),
        api("Status 503", "gw-mtls", "client.pem", "client.key", auth_url=ngx.url("/%s/token" % realm("s503"))),
        api("Bad Json", "gw-mtls", "client.pem", "client.key", auth_url=ngx.url("/%s/token" % realm("badjson"))),
        api("Bad Pem", "gw-mtls", BAD_PEM, "client.key"),
        api("Garbage Key", "gw-mtls", "client.pem", "this is not a key"),
        api("Key Mismatch", "gw-mtls", "client.pem", "client-other.key"),
        svc("Missing Secret", [e(mock.url(realm("missing"), "api"),
                                 creds=A.creds("OAuthWithCert", "no-such-cert-secret",
                                               op.token_url(tls=True, host="localhost")))]),
    ]
    return [H.application(APP, services)], secrets


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, pems, oauth_server, authmock, mtls_nginx, closed_port):
    authmock.configure(realm("s503"), token_status=503)
    authmock.configure(realm("badjson"), token_body="badjson")
    apps, secrets = _config(oauth_server, authmock, mtls_nginx, pems, closed_port)
    with A.auth_gateway(tmp_path_factory, "gw-oauthcert", certs, apps, secrets) as g:
        yield g


call, ok = A.api_calls(APP)


def op_reqs(op, variant):
    return [r for r in op.stats()["requests"] if r["query"] == "v=" + variant]


def assert_cert_token(op, variant, client, dn=H.CLIENT_DN):
    reqs = op_reqs(op, variant)
    assert reqs, "no token request on ?v=%s" % variant
    last = reqs[-1]
    assert (last["client"], last["auth"], last["status"]) == (client, "tls", 200), reqs
    assert last["tls_subject"] == dn and last["tls_authorized"] is True, last
    assert all(r["auth"] == "tls" for r in reqs), reqs  # never a secret, never a Basic header


# --------------------------------------------------------------------------- success

def test_tls_client_auth_with_oidc_provider(gw, oauth_server):
    tok = A.bearer_of(ok(gw, "mtls"))
    assert tok in oauth_server.tokens_of("gw-mtls")
    assert oauth_server.introspect(tok)["active"] is True
    assert_cert_token(oauth_server, "mtls", "gw-mtls")


def test_pkcs1_rsa_key(gw, oauth_server):
    assert A.bearer_of(ok(gw, "mtls-rsa1")) in oauth_server.tokens_of("gw-mtls")
    assert_cert_token(oauth_server, "mtls-rsa1", "gw-mtls")


def test_ec_certificate(gw, oauth_server):
    assert A.bearer_of(ok(gw, "mtls-ec")) in oauth_server.tokens_of("gw-mtls-ec")
    assert_cert_token(oauth_server, "mtls-ec", "gw-mtls-ec", dn=H.CLIENT_EC_DN)


def test_pem_with_text_before_begin(gw, oauth_server):
    assert A.bearer_of(ok(gw, "mtls-prefixed")) in oauth_server.tokens_of("gw-mtls")
    assert_cert_token(oauth_server, "mtls-prefixed", "gw-mtls")


def test_token_cached(gw, oauth_server):
    toks = {A.bearer_of(ok(gw, "mtls-cache", "/c%d" % i)) for i in range(4)}
    assert len(toks) == 1
    assert len(op_reqs(oauth_server, "mtls-cache")) == 1


def test_upstream_401_refetches_with_certificate_and_retries(gw, oauth_server, authmock):
    t1 = A.bearer_of(ok(gw, "mtls-retry"))
    authmock.configure(realm("mtls-retry"), fail_next=1)
    t2 = A.bearer_of(ok(gw, "mtls-retry", method="POST", body=b"replay me"))
    assert t2 != t1 and t2 in oauth_server.tokens_of("gw-mtls")
    assert len(op_reqs(oauth_server, "mtls-retry")) == 2
    api = authmock.state(realm("mtls-retry"))["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200], api
    assert api[1]["body_sha256"] == api[2]["body_sha256"] and api[2]["body_len"] == len(b"replay me")
    assert_cert_token(oauth_server, "mtls-retry", "gw-mtls")


def test_token_request_shape(gw, authmock):
    """client_id + grant_type only (no client_secret, even when the Secret has one; no Basic
    header), over TLS with the client certificate, plus the Secret's headers and query."""
    doc = ok(gw, "shape")
    st = authmock.state(realm("shape"))
    assert st["counts"]["token"] == 1, st["token_requests"]
    t = st["token_requests"][0]
    assert t["method"] == "POST"
    assert (t["content_type"] or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded", t
    assert t["form"] == {"client_id": "oc-shape-client", "grant_type": "client_credentials"}, t["body"]
    assert t["authorization"] is None, t
    assert t["client_dn"] == H.CLIENT_DN, t
    assert H.hvals(t["headers"], "X-Tenant") == ["t1"], t["headers"]
    assert parse_qs(t["query"] or "") == {"fixed": ["1"], "tenant": ["t1"]}, t["query"]
    assert H.hvals(doc["headers"], "Authorization") == ["Bearer " + t["token"]], doc["headers"]


# --------------------------------------------------------------------------- failures → 500

@pytest.mark.parametrize("svc", ["other-ca", "expired", "wrong-dn", "unknown-client"])
def test_refused_certificate_or_client_is_500(gw, oauth_server, svc):
    H.assert_gw_error(call(gw, svc), 500, contains="token")
    reqs = op_reqs(oauth_server, svc)
    assert reqs and all(r["status"] == 401 for r in reqs), reqs


def test_token_endpoint_unreachable_is_500(gw):
    H.assert_gw_error(call(gw, "down"), 500, contains="token")


def test_token_endpoint_non_200_is_500(gw, authmock):
    H.assert_gw_error(call(gw, "status-503"), 500, contains="token")
    st = authmock.state(realm("s503"))
    assert st["counts"]["token"] >= 1 and st["counts"]["api"] == 0
    assert st["token_requests"][0]["client_dn"] == H.CLIENT_DN


def test_token_endpoint_bad_json_is_500(gw, authmock):
    H.assert_gw_error(call(gw, "bad-json"), 500, contains="token")


@pytest.mark.parametrize("svc,display", [("bad-pem", "Bad Pem"), ("garbage-key", "Garbage Key"),
                                         ("key-mismatch", "Key Mismatch")])
def test_invalid_certificate_or_key_in_secret_is_500(gw, authmock, svc, display):
    H.assert_gw_error(call(gw, svc), 500, prefix="failed to read API for %s service, " % display)
    assert authmock.counts(realm(svc))["api"] == 0


def test_missing_secret_is_500(gw):
    H.assert_gw_error(call(gw, "missing-secret"), 500, prefix="failed to read API for ")


# --------------------------------------------------------------------------- logs (§9)

def test_zz_no_secrets_in_log(gw, oauth_server, authmock, pems):
    values = [UNUSED_SECRET]
    for toks in oauth_server.stats()["tokens"].values():
        values += toks
    values += [t["token"] for t in authmock.state(realm("shape"))["tokens"]]
    for k in ("client.key", "client-rsa1.key", "client-ec.key"):
        # a line from the middle of each private key
        lines = [ln for ln in pems[k].splitlines() if ln and not ln.startswith("-----")]
        values.append(lines[len(lines) // 2])
    text = gw.log_text()
    assert text.strip()
    A.check_no_secrets(text, values)
    assert os.path.getsize(gw.log_path) > 0
