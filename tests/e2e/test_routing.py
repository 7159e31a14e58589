"""SPEC §1 and §4: URL patterns, API lookup, gateway error responses."""
import pytest

import helpers as H

EXTRACT = "failed to extract API Identifier from path"


def test_proxy_port_routes_app_service_path(main_gw):
    r = H.get(main_gw.proxy, "/e2e/echo/some/path?x=1")
    assert r.status == 200, r
    doc = r.json()
    assert doc["path"] == "/base/some/path"
    assert doc["query"] == "x=1"
    assert doc["method"] == "GET"


def test_compass_port_routes_app_service_entry_path(main_gw):
    r = H.get(main_gw.compass, "/e2e/echo/api/some/path")
    assert r.status == 200, r
    assert r.json()["path"] == "/base/some/path"
    r = H.get(main_gw.compass, "/e2e/multi-entry/entry-two/x")
    assert r.status == 200, r
    assert r.json()["path"] == "/two/x"
    r = H.get(main_gw.compass, "/e2e/multi-entry/entry-one")
    assert r.status == 200, r
    assert r.json()["path"] == "/one"


@pytest.mark.parametrize("path", ["/", "/e2e", "/e2e/", "//", "/e2e?x=/a/b"])
def test_missing_segments_8080_is_400(main_gw, path):
    H.assert_gw_error(H.get(main_gw.proxy, path), 400, EXTRACT)


@pytest.mark.parametrize("path", ["/", "/e2e", "/e2e/echo", "/e2e/echo/"])
def test_missing_segments_8082_is_400(main_gw, path):
    H.assert_gw_error(H.get(main_gw.compass, path), 400, EXTRACT)


def test_unknown_application_is_404(main_gw):
    H.assert_gw_error(H.get(main_gw.proxy, "/no-such-app/echo/x"), 404, "service with name echo not found")


def test_unknown_service_is_404(main_gw):
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/nosvc/x"), 404, "service with name nosvc not found")
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/nosvc"), 404, "service with name nosvc not found")


def test_compass_unknown_entry_is_404(main_gw):
    H.assert_gw_error(H.get(main_gw.compass, "/e2e/echo/noentry/x"), 404,
                      "service with name echo and entry name noentry not found")
    H.assert_gw_error(H.get(main_gw.compass, "/no-such-app/echo/api/x"), 404,
                      "service with name echo and entry name api not found")


def test_ambiguous_service_is_400(main_gw):
    # "Dup" and "dup!" both normalise to "dup"
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/dup/x"), 400,
                      prefix="failed to get service with name 'dup': multiple services found")


def test_multiple_entries_ambiguous_on_8080(main_gw):
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/multi-entry/x"), 400,
                      prefix="failed to get service with name 'multi-entry': multiple services found")


def test_ambiguous_on_8082_with_same_entry_name(main_gw):
    # both Dup services have an entry named "api"
    H.assert_gw_error(H.get(main_gw.compass, "/e2e/dup/api/x"), 400,
                      prefix="failed to get service with name 'dup' and entry name 'api': multiple services found")


def test_events_entries_are_ignored(main_gw):
    r = H.get(main_gw.proxy, "/e2e/events-mixed/x")
    assert r.status == 200, r
    assert r.json()["path"] == "/mixed/x"
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/events-only/x"), 404, "service with name events-only not found")
    H.assert_gw_error(H.get(main_gw.compass, "/e2e/events-mixed/ev/x"), 404,
                      "service with name events-mixed and entry name ev not found")


@pytest.mark.parametrize("segment,base", [
    ("my-service", "/myservice"),       # "My Service!"
    ("code-500", "/code500"),           # "code 500"
    ("lead-trail", "/leadtrail"),       # "!Lead Trail--"
    ("a" * 57, "/long"),                # 70 x "A" cut to 57
    ("b" * 56 + "-", "/cut"),           # 56 x "B" + " tail": cut after the trailing-dash drop
])
def test_display_name_normalisation(main_gw, segment, base):
    r = H.get(main_gw.proxy, "/e2e/%s/p" % segment)
    assert r.status == 200, r
    assert r.json()["path"] == base + "/p"


def test_unnormalised_names_do_not_match(main_gw):
    for seg in ("My%20Service!", "my-service-", "a" * 58, "Echo", "b" * 56, "b" * 56 + "-tail"):
        r = H.get(main_gw.proxy, "/e2e/%s/p" % seg)
        assert r.status == 404, (seg, r)


def test_404_body_names_the_requested_service(main_gw):
    # the text uses the SERVICE segment as requested
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/zzz-top/a/b/c"), 404, "service with name zzz-top not found")


def test_error_response_is_keep_alive_safe(main_gw):
    """A gateway error answer is properly framed: the connection can carry another request."""
    with H.RawConn(main_gw.proxy) as c:
        r1 = c.request("GET", "/e2e/nosvc/x")
        assert r1.status == 404
        r2 = c.request("GET", "/e2e/echo/after")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/base/after"


def test_admin_paths_not_on_proxy_port(main_gw):
    H.assert_gw_error(H.get(main_gw.proxy, "/v1/health"), 404, "service with name health not found")


def test_split_works_on_escaped_path(main_gw):
    """%2F inside a segment does not split it (SPEC §1: split the raw path)."""
    H.assert_gw_error(H.get(main_gw.proxy, "/e2e/echo%2Fx/y"), 404, "service with name echo%2Fx not found")
    r = H.get(main_gw.proxy, "/e2e/echo/a%2Fb")
    assert r.status == 200 and r.json()["path"] == "/base/a/b", r


def test_absolute_form_request_target(main_gw):
    """RFC 9112 §3.2.2: a server must accept absolute-form (Go's net/http, the original, does)."""
    r = H.get(main_gw.proxy, "http://127.0.0.1:%d/e2e/echo/abs?q=1" % main_gw.proxy)
    assert r.status == 200, r
    doc = r.json()
    assert (doc["path"], doc["query"]) == ("/base/abs", "q=1"), doc
