"""Session fixtures for the appgw end-to-end tests.

Processes: one python test upstream, one nginx (HTTP + 3 HTTPS servers), one "main" gateway
with the configuration below; tests that need special flags start their own gateway with
helpers.gateway(...).  Every process is stopped by PID at teardown.

Environment: APPGW_BIN (default <repo>/build/appgw), APPGW_SANITIZE=1 for an ASan build
(longer waits, no RSS assertion).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers as H  # noqa: E402

# Secret values the gateway must never log (checked by test_logs.py).
BASIC_USER = "e2e-user"
BASIC_PASS = "s3cr3t-Basic-Pa55-7781"
ACCESS_TOKEN = "Bearer tok-SECRET-access-4711"
CALLER_AUTHZ = "Bearer caller-AUTHZ-secret-0042"
COOKIE = "session=COOKIE-secret-9931"
SECRET_VALUES = [BASIC_PASS, ACCESS_TOKEN.split(" ", 1)[1], CALLER_AUTHZ.split(" ", 1)[1],
                 COOKIE.split("=", 1)[1], H.b64("%s:%s" % (BASIC_USER, BASIC_PASS))]

LONG_NAME = "A" * 70  # normalises to 57 x "a"
CUT_NAME = "B" * 56 + " tail"  # "bbb…-tail" cut to 57 → ends in "-", which stays (drop happens before the cut)


@pytest.fixture(scope="session", autouse=True)
def _nofile():
    H.raise_nofile()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return H.make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    u = H.Upstream(str(tmp_path_factory.mktemp("upstream")))
    yield u
    u.stop()


@pytest.fixture(scope="session")
def nginx(tmp_path_factory, certs, upstream):
    n = H.Nginx(str(tmp_path_factory.mktemp("nginx")), certs, upstream.port)
    yield n
    n.stop()


@pytest.fixture(scope="session")
def closed_port():
    """A port nobody listens on (connection refused)."""
    return H.free_port()


def main_config(up, ngx, closed):
    U = "http://127.0.0.1:%d" % up
    N = "http://127.0.0.1:%d" % ngx.http
    e, svc, app = H.entry, H.service, H.application
    basic = {"type": "Basic", "secretName": "basic-secret"}
    apps = [
        app("e2e", [
            svc("Echo", [e(U + "/base")]),
            svc("Root", [e(U)]),
            svc("Slash Base", [e(U + "/base/")]),
            svc("With Query", [e(U + "/base?fixed=1&f2=two")]),
            svc("My Service!", [e(U + "/myservice")]),
            svc("code 500", [e(U + "/code500")]),
            svc("!Lead Trail--", [e(U + "/leadtrail")]),
            svc(LONG_NAME, [e(U + "/long")]),
            svc(CUT_NAME, [e(U + "/cut")]),
            svc("Bad Dns", [e("http://appgw-e2e-nonexistent.invalid/x")]),
            svc("Dup", [e(U + "/dup1")], name="dup-a", id_="dup-1"),
            svc("dup!", [e(U + "/dup2")], name="dup-b", id_="dup-2"),
            svc("Events Mixed", [e(U + "/events", name="ev", type_="Events"), e(U + "/mixed", name="api")]),
            svc("Events Only", [e(U + "/eventsonly", name="ev", type_="Events")]),
            svc("Multi Entry", [e(U + "/one", name="Entry One"), e(U + "/two", name="Entry Two")]),
            svc("Basic", [e(U + "/basic", creds=basic)]),
            svc("Basic Data", [e(U + "/basicdata", creds={"type": "Basic", "secretName": "basic-data-secret"})]),
            svc("Params", [e(U + "/params", params="params-secret")]),
            svc("Params Basic", [e(U + "/pb", creds=basic, params="params-secret")]),
            svc("Missing Secret", [e(U + "/ms", creds={"type": "Basic", "secretName": "does-not-exist"})]),
            svc("Missing Params", [e(U + "/mp", params="no-such-params")]),
            svc("Bad Params", [e(U + "/bp", params="bad-params-secret")]),
            svc("Unknown Cred", [e(U + "/uc", creds={"type": "DigestMagic", "secretName": "basic-secret"})]),
            svc("Other NS Secret", [e(U + "/ons", creds={"type": "Basic", "secretName": "other-ns-secret"})]),
            svc("Redir", [e(U + "/base")]),
            svc("Refused", [e("http://127.0.0.1:%d/x" % closed)]),
            svc("Nginx", [e(N + "/base")]),
            svc("Nginx Files", [e(N + "/files")]),
            svc("Nginx Upload", [e(N + "/upload")]),
            svc("Tls", [e("https://localhost:%d/tls" % ngx.https)]),
            svc("Tls Ip", [e("https://127.0.0.1:%d/tls" % ngx.https)]),
            svc("Tls Once", [e("https://localhost:%d/tls-once" % ngx.https)]),
            svc("Tls Untrusted", [e("https://127.0.0.1:%d/u" % ngx.untrusted)]),
            svc("Tls Wrong Host", [e("https://localhost:%d/w" % ngx.wronghost)]),
        ]),
        app("raw", [svc("Echo", [e(U + "/base")])], encode_url=False),
        app("encexplicit", [svc("Echo", [e(U + "/base")])], encode_url=True),
        app("skipverify", [svc("Untrusted", [e("https://127.0.0.1:%d/u" % ngx.untrusted)]),
                           svc("Wrong Host", [e("https://localhost:%d/w" % ngx.wronghost)])],
            skip_verify=True),
    ]
    secrets = [
        H.secret("basic-secret", string_data={"username": BASIC_USER, "password": BASIC_PASS}),
        H.secret("basic-data-secret", data={"username": "datauser", "password": "datapass"}),
        H.secret("params-secret", string_data={
            "headers": '{"X-Param": ["p1", "p2"], "X-Single": ["only"]}',
            "queryParameters": '{"qp": ["1", "2"], "q single": ["a b&c"]}'}),
        H.secret("bad-params-secret", string_data={"headers": "{not json", "queryParameters": "{}"}),
        H.secret("other-ns-secret", string_data={"username": "u", "password": "p"}, namespace="default"),
    ]
    return apps, secrets


@pytest.fixture(scope="session")
def main_gw(tmp_path_factory, upstream, nginx, closed_port, certs):
    d = str(tmp_path_factory.mktemp("maingw"))
    cfg = os.path.join(d, "config")
    os.makedirs(os.path.join(cfg, "sub"))
    apps, secrets = main_config(upstream.port, nginx, closed_port)
    # exercise several formats: multi-doc YAML, .yml in a subdirectory, a kubectl List JSON
    H.write_yaml_docs(os.path.join(cfg, "apps.yaml"), apps[:1])
    H.write_yaml_docs(os.path.join(cfg, "sub", "more.yml"), apps[1:] + secrets[3:])
    H.write_json_list(os.path.join(cfg, "secrets.json"), secrets[:3])
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"), env={"SSL_CERT_FILE": certs["ca.pem"]})
    yield gw
    rc = gw.stop()
    reports = gw.sanitizer_reports()
    assert not reports, "sanitizer reports in main gateway stderr:\n" + "\n".join(reports[:20])
    assert rc == 0, "main gateway exited with %r on SIGTERM; stderr tail:\n%s" % (rc, gw.log_tail())


# --- credential types OAuth / OAuthWithCert / CertificateGen / CSRF (auth_helpers.py)

@pytest.fixture(scope="session")
def auth_certs(tmp_path_factory, certs):
    return H.make_auth_certs(str(tmp_path_factory.mktemp("authcerts")), certs)


@pytest.fixture(scope="session")
def authmock(tmp_path_factory):
    import auth_helpers as A
    m = A.AuthMock(str(tmp_path_factory.mktemp("authmock")))
    yield m
    m.stop()


@pytest.fixture(scope="session")
def oauth_server(tmp_path_factory, certs, auth_certs):
    import auth_helpers as A
    s = A.OAuthServer(str(tmp_path_factory.mktemp("oauth")), certs, auth_certs)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def mtls_nginx(tmp_path_factory, certs, auth_certs, authmock):
    import auth_helpers as A
    n = A.MtlsNginx(str(tmp_path_factory.mktemp("mtlsnginx")), certs, auth_certs, authmock.port)
    yield n
    n.stop()


@pytest.fixture
def strict_upstream():
    """A strict recording upstream (strict_upstream.py): raw bytes per connection, RFC 9112
    parsing, 400 and a recorded violation on anything off."""
    import strict_upstream as S
    u = S.StrictUpstream()
    yield u
    u.stop()


@pytest.fixture
def tmpdir_str(tmp_path):
    return str(tmp_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the stderr tail of every gateway that logged during the test."""
    if call.when == "setup":
        item._gw_marks = {id(g): len(g.log_text()) for g in H.ALL_GATEWAYS}
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("call", "teardown"):
        marks = getattr(item, "_gw_marks", {})
        for g in H.ALL_GATEWAYS:
            new = g.log_text()[marks.get(id(g), 0):]
            if new.strip():
                lines = new.splitlines()[-25:]
                rep.sections.append(("appgw pid %d stderr (during test)" % g.pid, "\n".join(lines)))
