"""Sanity checks of the test servers behind the credential tests (no gateway involved), with
curl as the client: when one of these fails, the gateway tests that use the server say nothing
about the gateway.

- oidc-provider (oauth/server.js) issues tokens to each client type, refuses the secret sent two
  ways at once and the method a client is not registered for, and accepts tls_client_auth only
  with a client-ca certificate of the registered subject;
- the mTLS nginx accepts the good client certificates and refuses the others with 400;
- authmock's token and CSRF endpoints answer as documented."""
import json
import subprocess

import pytest

import auth_helpers as A
import helpers as H


def curl(certs, *args):
    """(status, body) of one curl call."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", certs["ca.pem"],
                        "-o", "-", "-w", "\n%{http_code}"] + list(args),
                       capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def token(certs, url, *args):
    code, body = curl(certs, "-d", "grant_type=client_credentials", *args, url)
    return code, (json.loads(body) if body.startswith("{") else body)


def test_oidc_provider_client_secret_basic(certs, oauth_server):
    sec = A.OP_SECRETS["gw-basic"]
    code, doc = token(certs, oauth_server.token_url(), "-u", "gw-basic:" + sec)
    assert code == 200 and doc["token_type"] == "Bearer" and doc["expires_in"] == 3600, doc
    assert oauth_server.introspect(doc["access_token"])["active"] is True
    # the same secret also in the form: refused as RFC 6749 §2.3 demands
    code, doc = token(certs, oauth_server.token_url(), "-u", "gw-basic:" + sec,
                      "-d", "client_id=gw-basic", "-d", "client_secret=" + sec)
    assert (code, doc["error"]) == (400, "invalid_request"), doc
    # client_secret_post for a client registered for client_secret_basic: refused
    code, doc = token(certs, oauth_server.token_url(), "-d", "client_id=gw-basic", "-d", "client_secret=" + sec)
    assert (code, doc["error"]) == (401, "invalid_client"), doc
    code, doc = token(certs, oauth_server.token_url(), "-u", "gw-basic:wrong")
    assert (code, doc["error"]) == (401, "invalid_client"), doc


def test_oidc_provider_client_secret_post_over_https(certs, oauth_server):
    sec = A.OP_SECRETS["gw-post"]
    url = oauth_server.token_url(tls=True, host="localhost")
    code, doc = token(certs, url, "-d", "client_id=gw-post", "-d", "client_secret=" + sec)
    assert code == 200 and doc["access_token"], doc
    code, doc = token(certs, url, "-u", "gw-post:" + sec)
    assert (code, doc["error"]) == (401, "invalid_client"), doc


def test_oidc_provider_short_ttl_client(certs, oauth_server):
    code, doc = token(certs, oauth_server.token_url(), "-u", "gw-short:" + A.OP_SECRETS["gw-short"])
    assert code == 200 and doc["expires_in"] == A.SHORT_TTL, doc


@pytest.mark.parametrize("crt,key,client,want", [
    ("client.pem", "client.key", "gw-mtls", 200),
    ("client.pem", "client-rsa1.key", "gw-mtls", 200),
    ("client-ec.pem", "client-ec.key", "gw-mtls-ec", 200),
    ("client-ec.pem", "client-ec.key", "gw-mtls", 401),       # subject DN not the registered one
    ("client-other.pem", "client-other.key", "gw-mtls", 401),  # another CA
    ("client-expired.pem", "client-expired.key", "gw-mtls", 401),
    (None, None, "gw-mtls", 401),                              # no certificate
])
def test_oidc_provider_tls_client_auth(certs, auth_certs, oauth_server, crt, key, client, want):
    args = ["-d", "client_id=" + client]
    if crt:
        args += ["--cert", auth_certs[crt], "--key", auth_certs[key]]
    code, doc = token(certs, oauth_server.token_url(tls=True, host="localhost"), *args)
    assert code == want, doc
    if want == 200:
        assert oauth_server.introspect(doc["access_token"])["client_id"] == client
    else:
        assert doc["error"] == "invalid_client", doc


@pytest.mark.parametrize("crt,key,want", [
    ("client.pem", "client.key", "200 dn=" + H.CLIENT_DN),
    ("client.pem", "client-rsa1.key", "200 dn=" + H.CLIENT_DN),
    ("client-ec.pem", "client-ec.key", "200 dn=" + H.CLIENT_EC_DN),
    ("client-other.pem", "client-other.key", "400"),
    ("client-expired.pem", "client-expired.key", "400"),
    (None, None, "400"),
])
def test_mtls_nginx_client_certificates(certs, auth_certs, mtls_nginx, crt, key, want):
    args = ["--cert", auth_certs[crt], "--key", auth_certs[key]] if crt else []
    code, body = curl(certs, *args, mtls_nginx.url("/mtls/x"))
    if want.startswith("200"):
        assert code == 200 and body == "mtls ok verify=SUCCESS %s uri=/mtls/x\n" % want[4:], body
    else:
        assert code == 400 and "nginx" in body, body


def test_mtls_nginx_proxies_to_authmock_with_dn(certs, auth_certs, mtls_nginx, authmock):
    code, body = curl(certs, "--cert", auth_certs["client.pem"], "--key", auth_certs["client.key"],
                      mtls_nginx.url("/sanity-proxy/api/p?q=1"))
    assert code == 200, body
    doc = json.loads(body)
    assert doc["realm"] == "sanity-proxy" and doc["query"] == "q=1", doc
    assert H.hvals(doc["headers"], "X-Client-DN") == [H.CLIENT_DN], doc


def test_expired_server_certificate_refused_by_curl(certs, mtls_nginx):
    code, body = curl(certs, mtls_nginx.expired_url("/x"))
    assert code == 0, body  # curl: (60) certificate has expired
    code, body = curl(certs, "-k", mtls_nginx.expired_url("/x"))
    assert code == 200 and body.startswith("expired server ok"), body


def test_authmock_token_csrf_and_api(certs, authmock):
    realm = "sanity-mock"
    authmock.configure(realm, api_auth="bearer", api_csrf=True, clients={"c1": "s1"})
    code, doc = token(certs, authmock.url(realm, "token"), "-u", "c1:s1", "-d", "client_id=c1", "-d", "client_secret=s1")
    assert code == 200 and doc["expires_in"] == 3600, doc
    tok = doc["access_token"]
    code, doc = token(certs, authmock.url(realm, "token"), "-u", "c1:nope")
    assert (code, doc["error"]) == (401, "invalid_client"), doc
    code, body = curl(certs, "-D", "-", "-H", "X-CSRF-Token: fetch", "-H", "Authorization: Bearer " + tok,
                      authmock.url(realm, "csrf"))
    assert code == 200, body
    hdrs = {}
    for ln in body.splitlines():
        k, sep, v = ln.partition(":")
        if sep:
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    csrf = hdrs["x-csrf-token"][0]
    sess = [c.split(";")[0] for c in hdrs["set-cookie"]]
    # API: no CSRF → 403; right token and cookies → 200; stale bearer → 401
    code, _ = curl(certs, "-H", "Authorization: Bearer " + tok, authmock.url(realm, "api", "/x"))
    assert code == 403
    code, body = curl(certs, "-H", "Authorization: Bearer " + tok, "-H", "X-CSRF-Token: " + csrf,
                      "-H", "Cookie: " + "; ".join(sess), authmock.url(realm, "api", "/x"))
    assert code == 200, body
    authmock.revoke(realm, tokens=True, csrf=False)
    code, _ = curl(certs, "-H", "Authorization: Bearer " + tok, "-H", "X-CSRF-Token: " + csrf,
                   "-H", "Cookie: " + "; ".join(sess), authmock.url(realm, "api", "/x"))
    assert code == 401
    assert authmock.counts(realm) == {"token": 2, "csrf": 1, "api": 3, "issued": 1}
