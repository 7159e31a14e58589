"""SPEC §9: logs are JSON lines and never contain secrets, even at debug level."""
import json
import os

import helpers as H
from conftest import ACCESS_TOKEN, BASIC_PASS, BASIC_USER, CALLER_AUTHZ, COOKIE, SECRET_VALUES

TOKEN_IN_FILE = "Bearer file-TOKEN-secret-5150"


def traffic(gw, app="e2e"):
    """Requests that carry every kind of secret through the gateway, on both ports, incl. errors."""
    for port, pre in ((gw.proxy, "/%s/basic" % app), (gw.compass, "/%s/basic/api" % app)):
        H.http(port, "GET", pre + "/x", [("Authorization", CALLER_AUTHZ), ("Cookie", COOKIE)])
        H.http(port, "GET", pre + "/x", [("Access-Token", ACCESS_TOKEN), ("Cookie", COOKIE)])
        H.http(port, "POST", pre + "/status/500", [("Authorization", CALLER_AUTHZ), ("Cookie", COOKIE)], b"{}")
        H.http(port, "GET", pre + "/redirect?code=302&to=/x", [("Access-Token", ACCESS_TOKEN)])
    H.http(gw.proxy, "GET", "/%s/echo/x" % app, [("Authorization", CALLER_AUTHZ), ("Cookie", COOKIE),
                                                 ("Proxy-Authorization", CALLER_AUTHZ)])
    H.http(gw.proxy, "GET", "/%s/nosvc/x" % app, [("Authorization", CALLER_AUTHZ), ("Access-Token", ACCESS_TOKEN)])
    H.http(gw.proxy, "GET", "/%s/refused/x" % app, [("Access-Token", ACCESS_TOKEN), ("Cookie", COOKIE)])
    # a malformed request that contains a secret
    try:
        with H.RawConn(gw.proxy, timeout=5) as c:
            c.send("GET /%s/echo/x HTTP/1.1\r\nAuthorization: %s\r\nCookie: %s\r\nBad Header\r\n\r\n"
                   % (app, CALLER_AUTHZ, COOKIE))
            c.read_response()
    except (OSError, EOFError, ValueError):
        pass


def check_log(text, extra=()):
    leaks = []
    for ln in text.splitlines():
        for s in list(SECRET_VALUES) + list(extra):
            if s in ln:
                leaks.append((s, ln[:400]))
    assert not leaks, "secrets in gateway stderr:\n" + "\n".join("%s in: %s" % x for x in leaks[:20])


def check_json_lines(text):
    bad = []
    for ln in text.splitlines():
        if not ln.strip():
            continue
        try:
            doc = json.loads(ln)
            assert isinstance(doc, dict) and "level" in doc and "msg" in doc
        except (ValueError, AssertionError):
            bad.append(ln[:300])
    assert not bad, "non-JSON log lines on stderr:\n" + "\n".join(bad[:10])


def test_no_secrets_in_main_gateway_log(main_gw):
    assert H.get(main_gw.admin, "/v1/loglevel").json() == {"level": "debug"}
    traffic(main_gw)
    text = main_gw.log_text()
    assert text.strip(), "debug-level gateway wrote nothing to stderr"
    check_log(text)


def test_logs_are_json_lines(main_gw):
    if H.SANITIZE:
        # sanitizer reports are plain text by nature; only check the JSON lines part
        text = "\n".join(ln for ln in main_gw.log_text().splitlines() if ln.startswith("{"))
    else:
        text = main_gw.log_text()
    check_json_lines(text)


def test_no_secrets_in_dedicated_debug_gateway(tmpdir_str, upstream, closed_port):
    """A fresh gateway at debug level: start-up + config loading + reload of Secrets + traffic."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    basic = {"type": "Basic", "secretName": "basic-secret"}
    apps = [H.application("lg", [
        H.service("Basic", [H.entry(upstream.url("/b"), creds=basic)]),
        H.service("Echo", [H.entry(upstream.url("/e"), params="params-secret")]),
        H.service("Refused", [H.entry("http://127.0.0.1:%d/" % closed_port)]),
    ])]
    secrets = [H.secret("basic-secret", data={"username": BASIC_USER, "password": BASIC_PASS}),
               H.secret("params-secret", string_data={"headers": '{"Authorization": ["%s"]}' % TOKEN_IN_FILE,
                                                      "queryParameters": "{}"})]
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), apps + secrets)
    with H.gateway(tmpdir_str, cfg, log_level="debug") as gw:
        traffic(gw, app="lg")
        r = H.get(gw.proxy, "/lg/echo/x")
        assert r.status == 200
        assert H.hvals(r.json()["headers"], "Authorization") == [TOKEN_IN_FILE]
        # a broken secrets file (its content contains the password) must not be echoed in the error
        with open(os.path.join(cfg, "broken.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: kyma-system}\n"
                    "stringData:\n  password: \"%s\n  more: [\n" % BASIC_PASS)
        logged, _ = H.wait_for(lambda: "broken.yaml" in gw.log_text(), 2 * H.SLOW)
        assert logged, "broken.yaml was not reported in the log"
        # secret rotation
        secrets[0] = H.secret("basic-secret", data={"username": BASIC_USER, "password": BASIC_PASS + "-rotated"})
        H.write_yaml_docs(os.path.join(cfg, "a.yaml"), apps + secrets)
        rotated = ["Basic " + H.b64("%s:%s-rotated" % (BASIC_USER, BASIC_PASS))]

        def seen_auth():
            return H.hvals(H.get(gw.proxy, "/lg/basic/x").json()["headers"], "Authorization")
        ok, _ = H.wait_for(lambda: seen_auth() == rotated, 2 * H.SLOW)
        assert ok, "rotated secret not applied: upstream saw %r" % (seen_auth(),)
        traffic(gw, app="lg")
    text = gw.log_text()
    assert text.strip()
    check_log(text, extra=[TOKEN_IN_FILE.split(" ", 1)[1], H.b64("%s:%s-rotated" % (BASIC_USER, BASIC_PASS))])
