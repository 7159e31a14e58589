"""SPEC §6.4 CertificateGen: crt/key from the Secret are the TLS client certificate towards the
API itself (nginx with `ssl_verify_client on`); §7: invalid PEM → 500, an mTLS upstream's own
400 for a refused certificate passes through, an expired upstream server certificate → 502."""
import os

import pytest

import auth_helpers as A
import helpers as H

APP = "cg"
PREFIX_CRT = "notBefore=Jan  1 00:00:00 2020 GMT\nnotAfter=Dec 31 23:59:59 2099 GMT\n"
PREFIX_KEY = "Bag Attributes\n    localKeyID: 01 02 03\n"
BAD_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
CALLER_AUTHZ = "Bearer caller-AUTHZ-certgen-6620"


def realm(name):
    return "cg-" + name


@pytest.fixture(scope="module")
def pems(auth_certs):
    return {k: H.read_text(v) for k, v in auth_certs.items()}


def _config(ngx, mock, pems):
    e, svc = H.entry, H.service
    secrets = []

    def cg(display, crt, key, url):
        name = H.service(display, [])["name"]
        secrets.append(A.cert_secret("cg-" + name, pems.get(crt, crt), pems.get(key, key)))
        return svc(display, [e(url, creds=A.creds("CertificateGen", "cg-" + name))])

    services = [
        cg("Mtls", "client.pem", "client.key", ngx.url("/mtls/base")),
        cg("Mtls Ip", "client.pem", "client.key", ngx.url("/mtls/ip", host="127.0.0.1")),
        cg("Rsa1", "client.pem", "client-rsa1.key", ngx.url("/mtls/rsa1")),
        cg("Ec", "client-ec.pem", "client-ec.key", ngx.url("/mtls/ec")),
        cg("Prefixed", PREFIX_CRT + pems["client.pem"], PREFIX_KEY + pems["client.key"], ngx.url("/mtls/pre")),
        cg("Echo", "client.pem", "client.key", ngx.url("/%s/api" % realm("echo"))),
        cg("Other Ca", "client-other.pem", "client-other.key", ngx.url("/mtls/other")),
        cg("Expired", "client-expired.pem", "client-expired.key", ngx.url("/mtls/expired")),
        cg("Bad Pem", BAD_PEM, "client.key", ngx.url("/mtls/badpem")),
        cg("Garbage Key", "client.pem", "not a key at all", ngx.url("/mtls/garbage")),
        cg("Key Mismatch", "client.pem", "client-other.key", ngx.url("/mtls/mismatch")),
        cg("Expired Server", "client.pem", "client.key", ngx.expired_url("/x")),
        cg("Rotating", "client.pem", "client.key", ngx.url("/mtls/rot")),
        cg("Once A", "client.pem", "client.key", ngx.url("/mtls-once/a")),
        cg("Once B", "client-ec.pem", "client-ec.key", ngx.url("/mtls-once/b")),
        svc("Once None", [e(ngx.url("/mtls-once/n"))]),
        svc("No Cert", [e(ngx.url("/mtls/nocert"))]),
        svc("Expired Server Plain", [e(ngx.expired_url("/plain"))]),
        svc("Missing Secret", [e(ngx.url("/mtls/ms"), creds=A.creds("CertificateGen", "no-such-certgen-secret"))]),
    ]
    return [H.application(APP, services)], secrets


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, pems, authmock, mtls_nginx):
    apps, secrets = _config(mtls_nginx, authmock, pems)
    with A.auth_gateway(tmp_path_factory, "gw-certgen", certs, apps, secrets) as g:
        yield g


call, _ = A.api_calls(APP)


def mtls_ok(gw, svc, uri, dn=H.CLIENT_DN, path="/x"):
    r = call(gw, svc, path)
    assert r.status == 200, r
    assert r.body == ("mtls ok verify=SUCCESS dn=%s uri=%s\n" % (dn, uri)).encode(), r


# --------------------------------------------------------------------------- success

def test_client_certificate_presented_to_upstream(gw, mtls_nginx):
    mtls_ok(gw, "mtls", "/mtls/base/x")
    mtls_ok(gw, "mtls", "/mtls/base/y?q=1", path="/y?q=1")


def test_upstream_by_ip(gw, mtls_nginx):
    mtls_ok(gw, "mtls-ip", "/mtls/ip/x")


def test_pkcs1_rsa_key(gw, mtls_nginx):
    mtls_ok(gw, "rsa1", "/mtls/rsa1/x")


def test_ec_certificate(gw, mtls_nginx):
    mtls_ok(gw, "ec", "/mtls/ec/x", dn=H.CLIENT_EC_DN)


def test_pem_with_text_before_begin(gw, mtls_nginx):
    mtls_ok(gw, "prefixed", "/mtls/pre/x")


def test_keep_alive_reuse_with_certificate(gw, mtls_nginx):
    with H.RawConn(gw.proxy) as c:
        for i in range(10):
            r = c.request("GET", "/%s/mtls/k%d" % (APP, i))
            assert r.status == 200, (i, r)
            assert r.body == ("mtls ok verify=SUCCESS dn=%s uri=/mtls/base/k%d\n" % (H.CLIENT_DN, i)).encode()


def test_caller_authorization_passes_and_no_retry_without_csrf(gw, authmock):
    r = call(gw, "echo", "/p", [("Authorization", CALLER_AUTHZ)])
    assert r.status == 200, r
    doc = r.json()
    assert H.hvals(doc["headers"], "Authorization") == [CALLER_AUTHZ], doc["headers"]
    assert H.hvals(doc["headers"], "X-Client-DN") == [H.CLIENT_DN], doc["headers"]
    # a 401 from the API is the caller's: nothing would change on a second try
    authmock.configure(realm("echo"), fail_next=1)
    r = call(gw, "echo", "/p", [("Authorization", CALLER_AUTHZ)], method="POST", body=b"once")
    assert r.status == 401, r
    assert [a["status"] for a in authmock.state(realm("echo"))["api_requests"]] == [200, 401]


def test_connections_and_sessions_not_shared_between_certificates(gw, mtls_nginx):
    """Same upstream host:port, different client certificates (and none): a pooled connection
    or a resumed TLS session of one API must never serve another (nginx would take the other
    API's certificate for this one's). /mtls-once/ closes every connection after one request."""
    for i in range(4):
        r = call(gw, "once-a")
        assert r.status == 200 and r.body.startswith(
            ("mtls once verify=SUCCESS dn=%s " % H.CLIENT_DN).encode()), (i, r)
        r = call(gw, "once-none")
        assert r.status == 400, (i, r)  # nginx: "No required SSL certificate was sent"
        r = call(gw, "once-b")
        assert r.status == 200 and r.body.startswith(
            ("mtls once verify=SUCCESS dn=%s " % H.CLIENT_EC_DN).encode()), (i, r)
    for i in range(4):  # the same over keep-alive connections on /mtls/
        mtls_ok(gw, "mtls", "/mtls/base/x")
        r = call(gw, "no-cert")
        assert r.status == 400, (i, r)
        mtls_ok(gw, "ec", "/mtls/ec/x", dn=H.CLIENT_EC_DN)


# --------------------------------------------------------------------------- refused by the upstream

@pytest.mark.parametrize("svc", ["other-ca", "expired", "no-cert"])
def test_mtls_upstream_refusal_400_passes_through(gw, mtls_nginx, svc):
    r = call(gw, svc)
    assert r.status == 400, r
    assert b"nginx" in r.body and (b"SSL certificate" in r.body or b"certificate" in r.body), r
    assert r.header("Content-Type", "").startswith("text/html"), r


@pytest.mark.parametrize("svc", ["expired-server", "expired-server-plain"])
def test_expired_upstream_server_certificate_is_502_empty(gw, mtls_nginx, svc):
    r = call(gw, svc)
    assert r.status == 502, r
    assert r.body == b"", r


# --------------------------------------------------------------------------- bad Secrets → 500

@pytest.mark.parametrize("svc,display", [("bad-pem", "Bad Pem"), ("garbage-key", "Garbage Key"),
                                         ("key-mismatch", "Key Mismatch")])
def test_invalid_certificate_or_key_is_500(gw, svc, display):
    H.assert_gw_error(call(gw, svc), 500, prefix="failed to read API for %s service, " % display)


def test_missing_secret_is_500(gw):
    H.assert_gw_error(call(gw, "missing-secret"), 500, prefix="failed to read API for ")


# --------------------------------------------------------------------------- rotation

def test_secret_rotation_changes_the_certificate(gw, pems, mtls_nginx):
    mtls_ok(gw, "rotating", "/mtls/rot/x")
    gw.replace_secret(A.cert_secret("cg-rotating", pems["client-ec.pem"], pems["client-ec.key"]))
    want = ("mtls ok verify=SUCCESS dn=%s uri=/mtls/rot/x\n" % H.CLIENT_EC_DN).encode()
    seen = []

    def rotated():
        r = call(gw, "rotating")
        seen.append((r.status, r.body[:80]))
        return r.status == 200 and r.body == want
    done, took = H.wait_for(rotated, 5 * H.SLOW, interval=0.1)
    assert done, "rotated certificate not used within %.1fs: %r" % (took, seen[-3:])
    for _ in range(5):  # and the old one never again (pooled connections included)
        mtls_ok(gw, "rotating", "/mtls/rot/x", dn=H.CLIENT_EC_DN)
    gw.replace_secret(A.cert_secret("cg-rotating", BAD_PEM, pems["client-ec.key"]))
    done, took = H.wait_for(lambda: call(gw, "rotating").status == 500, 5 * H.SLOW, interval=0.1)
    assert done, "broken certificate Secret not noticed within %.1fs" % took
    H.assert_gw_error(call(gw, "rotating"), 500, prefix="failed to read API for Rotating service, ")


# --------------------------------------------------------------------------- logs (§9)

def test_zz_no_key_material_in_log(gw, pems):
    values = [CALLER_AUTHZ.split()[1]]
    for k in ("client.key", "client-rsa1.key", "client-ec.key", "client-other.key", "client-expired.key"):
        lines = [ln for ln in pems[k].splitlines() if ln and not ln.startswith("-----")]
        values += [lines[1], lines[len(lines) // 2]]
    text = gw.log_text()
    assert text.strip()
    A.check_no_secrets(text, values)
    assert os.path.getsize(gw.log_path) > 0
