"""SPEC §6: Basic, no credentials, Access-Token override, request parameters, and the
configuration errors around credentials Secrets."""
import helpers as H
from conftest import ACCESS_TOKEN, BASIC_PASS, BASIC_USER, CALLER_AUTHZ

BASIC = "Basic " + H.b64("%s:%s" % (BASIC_USER, BASIC_PASS))


def echo(port, path, headers=()):
    r = H.http(port, "GET", path, list(headers))
    assert r.status == 200, r
    return r.json()


def test_basic_sets_authorization(main_gw):
    doc = echo(main_gw.proxy, "/e2e/basic/x")
    assert doc["path"] == "/basic/x"
    assert H.hvals(doc["headers"], "Authorization") == [BASIC], doc


def test_basic_from_base64_data(main_gw):
    doc = echo(main_gw.proxy, "/e2e/basic-data/x")
    assert H.hvals(doc["headers"], "Authorization") == ["Basic " + H.b64("datauser:datapass")], doc


def test_basic_replaces_caller_authorization(main_gw):
    doc = echo(main_gw.proxy, "/e2e/basic/x", [("Authorization", CALLER_AUTHZ)])
    assert H.hvals(doc["headers"], "Authorization") == [BASIC], doc


def test_basic_on_compass_port(main_gw):
    doc = echo(main_gw.compass, "/e2e/basic/api/x")
    assert H.hvals(doc["headers"], "Authorization") == [BASIC], doc


def test_no_credentials_passes_caller_authorization(main_gw):
    doc = echo(main_gw.proxy, "/e2e/echo/x", [("Authorization", CALLER_AUTHZ)])
    assert H.hvals(doc["headers"], "Authorization") == [CALLER_AUTHZ], doc


def test_no_credentials_adds_nothing(main_gw):
    doc = echo(main_gw.proxy, "/e2e/echo/x")
    assert H.hvals(doc["headers"], "Authorization") == [], doc


def test_access_token_overrides_basic(main_gw):
    doc = echo(main_gw.proxy, "/e2e/basic/x", [("Access-Token", ACCESS_TOKEN), ("Authorization", CALLER_AUTHZ)])
    assert H.hvals(doc["headers"], "Authorization") == [ACCESS_TOKEN], doc
    assert H.hvals(doc["headers"], "Access-Token") == [], doc


def test_access_token_without_credentials(main_gw):
    doc = echo(main_gw.proxy, "/e2e/echo/x", [("Access-Token", "Basic dG9rOnRvaw==")])
    assert H.hvals(doc["headers"], "Authorization") == ["Basic dG9rOnRvaw=="], doc
    assert H.hvals(doc["headers"], "Access-Token") == [], doc


def test_request_parameters_added(main_gw):
    doc = echo(main_gw.proxy, "/e2e/params/x")
    hd = doc["headers"]
    assert H.hvals(hd, "X-Param") in (["p1", "p2"], ["p1, p2"]), hd
    assert H.hvals(hd, "X-Single") == ["only"], hd
    q = doc["query"] or ""
    pairs = q.split("&")
    assert pairs.count("qp=1") == 1 and pairs.count("qp=2") == 1, q
    assert pairs.index("qp=1") < pairs.index("qp=2"), q
    # keys/values URL-encoded like Go's url.QueryEscape
    assert "q+single=a+b%26c" in pairs, q


def test_request_parameters_do_not_override_caller(main_gw):
    doc = echo(main_gw.proxy, "/e2e/params/x?qp=9&z=1", [("X-Param", "mine"), ("x-single", "mine2")])
    hd = doc["headers"]
    assert H.hvals(hd, "X-Param") == ["mine"], hd
    assert H.hvals(hd, "X-Single") == ["mine2"], hd
    pairs = doc["query"].split("&")
    assert pairs[:2] == ["qp=9", "z=1"], doc["query"]
    assert "qp=1" not in pairs and "qp=2" not in pairs, doc["query"]
    assert "q+single=a+b%26c" in pairs, doc["query"]


def test_request_parameters_with_basic(main_gw):
    doc = echo(main_gw.proxy, "/e2e/params-basic/x")
    hd = doc["headers"]
    assert H.hvals(hd, "Authorization") == [BASIC], hd
    assert H.hvals(hd, "X-Single") == ["only"], hd


def test_missing_credentials_secret_is_500(main_gw):
    r = H.get(main_gw.proxy, "/e2e/missing-secret/x")
    H.assert_gw_error(r, 500, prefix="failed to read API for ")


def test_missing_request_parameters_secret_is_500(main_gw):
    r = H.get(main_gw.proxy, "/e2e/missing-params/x")
    H.assert_gw_error(r, 500, prefix="failed to read API for ")


def test_bad_json_request_parameters_is_500(main_gw):
    r = H.get(main_gw.proxy, "/e2e/bad-params/x")
    H.assert_gw_error(r, 500, prefix="failed to read API for ")


def test_secret_outside_namespace_is_ignored(main_gw):
    r = H.get(main_gw.proxy, "/e2e/other-ns-secret/x")
    H.assert_gw_error(r, 500, prefix="failed to read API for ")


def test_unknown_credentials_type_is_500_naming_type(main_gw):
    r = H.get(main_gw.proxy, "/e2e/unknown-cred/x")
    H.assert_gw_error(r, 500, contains="DigestMagic")


def test_missing_secret_on_compass_port(main_gw):
    H.assert_gw_error(H.get(main_gw.compass, "/e2e/missing-secret/api/x"), 500, prefix="failed to read API for ")
