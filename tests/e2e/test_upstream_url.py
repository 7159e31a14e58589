"""SPEC §5.1 and §5.2: upstream path, query and encodeUrl, observed via the echo upstream."""
import pytest

import helpers as H


def echo(port, path):
    r = H.get(port, path)
    assert r.status == 200, r
    return r.json()


@pytest.mark.parametrize("req,expected", [
    ("/e2e/echo/x/y", "/base/x/y"),
    ("/e2e/echo", "/base"),
    ("/e2e/echo/", "/base"),
    ("/e2e/echo/x/", "/base/x"),
    ("/e2e/slash-base/x", "/base/x"),
    ("/e2e/slash-base", "/base/"),
    ("/e2e/root/x/y", "/x/y"),
    ("/e2e/root", "/"),
    ("//e2e/echo/x", "/base/x"),
])
def test_path_joining(main_gw, req, expected):
    doc = echo(main_gw.proxy, req)
    assert doc["path"] == expected, (req, doc)


def test_path_joining_8082(main_gw):
    assert echo(main_gw.compass, "/e2e/echo/api/x/y")["path"] == "/base/x/y"
    assert echo(main_gw.compass, "/e2e/echo/api")["path"] == "/base"


@pytest.mark.parametrize("req,expected", [
    ("/e2e/with-query/x", "fixed=1&f2=two"),
    ("/e2e/with-query/x?a=2", "fixed=1&f2=two&a=2"),
    ("/e2e/with-query/x?", "fixed=1&f2=two"),
    ("/e2e/with-query/x?a=2&b=%20c", "fixed=1&f2=two&a=2&b=%20c"),
    ("/e2e/echo/x?a=2&a=3", "a=2&a=3"),
])
def test_query_joining(main_gw, req, expected):
    doc = echo(main_gw.proxy, req)
    assert doc["query"] == expected, (req, doc)
    assert doc["path"].endswith("/x")


def test_no_query_sends_no_question_mark(main_gw):
    doc = echo(main_gw.proxy, "/e2e/echo/x")
    assert doc["query"] is None, doc
    assert doc["target"] == "/base/x"


ENC_REQ = "/%s/echo/a%%2Fb/it's/%%41%%7e/x%%20y/%%c3%%a9/$&+,:;=@/%%25/q"
ENC_EXPECTED = "/base/a/b/it%27s/A~/x%20y/%C3%A9/$&+,:;=@/%25/q"


@pytest.mark.parametrize("app", ["e2e", "encexplicit"])
def test_encode_url_true(main_gw, app):
    """Default (absent) and explicit true: decode, then re-encode per §5.2."""
    doc = echo(main_gw.proxy, ENC_REQ % app)
    assert doc["path"] == ENC_EXPECTED, doc


def test_encode_url_true_8082(main_gw):
    doc = echo(main_gw.compass, "/e2e/echo/api/a%2Fb/O'Neil")
    assert doc["path"] == "/base/a/b/O%27Neil", doc


def test_encode_url_false_is_byte_for_byte(main_gw):
    raw = "/People('O''Neil')/a%2Fb/x%20y/%c3%a9/~%7E"
    doc = echo(main_gw.proxy, "/raw/echo" + raw)
    assert doc["path"] == "/base" + raw, doc


def test_encode_url_does_not_touch_query(main_gw):
    doc = echo(main_gw.proxy, "/e2e/echo/p?k=a%2Fb&q='x'")
    assert doc["query"] == "k=a%2Fb&q='x'", doc
