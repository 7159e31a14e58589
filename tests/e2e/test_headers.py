"""SPEC §5.3 and §7: forwarded request headers and returned response headers."""
import helpers as H


def echo(port, path, headers, host=True):
    r = H.http(port, "GET", path, headers, host=host)
    assert r.status == 200, r
    return H.echo_headers(r)


def test_hop_by_hop_request_headers_removed(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/hop", [
        ("Connection", "keep-alive, X-Custom-Hop"),
        ("X-Custom-Hop", "must-not-pass"),
        ("Keep-Alive", "timeout=55"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic cHJveHk6cHc="),
        ("TE", "trailers, deflate"),
        ("Trailer", "X-Trail"),
        ("Upgrade", "e2e-proto/1"),
        ("X-Kept", "kept-value"),
    ])
    assert H.hvals(hdrs, "X-Custom-Hop") == [], hdrs
    assert H.hvals(hdrs, "Keep-Alive") == [], hdrs
    assert H.hvals(hdrs, "Proxy-Connection") == [], hdrs
    assert H.hvals(hdrs, "Proxy-Authorization") == [], hdrs
    assert H.hvals(hdrs, "Trailer") == [], hdrs
    assert H.hvals(hdrs, "Upgrade") == [], hdrs
    for v in H.hvals(hdrs, "Connection"):  # the gateway may set its own
        assert "x-custom-hop" not in v.lower(), hdrs
    te = H.hvals(hdrs, "TE")
    assert te in ([], ["trailers"]), hdrs
    assert H.hvals(hdrs, "X-Kept") == ["kept-value"], hdrs
    assert H.hvals(hdrs, "Transfer-Encoding") == [], hdrs


def test_connection_listed_header_removed_case_insensitive(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/hop2", [
        ("Connection", "x-LOWER-hop"),
        ("Connection", "X-Second-Hop"),
        ("X-Lower-Hop", "1"),
        ("X-Second-Hop", "2"),
        ("X-Other", "3"),
    ])
    assert H.hvals(hdrs, "X-Lower-Hop") == [], hdrs
    assert H.hvals(hdrs, "X-Second-Hop") == [], hdrs
    assert H.hvals(hdrs, "X-Other") == ["3"], hdrs


def test_x_forwarded_for_set(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/xff", [])
    assert H.hvals(hdrs, "X-Forwarded-For") == ["127.0.0.1"], hdrs


def test_x_forwarded_for_appended(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/xff", [("X-Forwarded-For", "203.0.113.7")])
    assert H.hvals(hdrs, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"], hdrs


def test_x_forwarded_for_multiple_headers_appended(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/xff", [("X-Forwarded-For", "203.0.113.7"),
                                                  ("X-Forwarded-For", "198.51.100.1, 10.0.0.1")])
    joined = ", ".join(H.hvals(hdrs, "X-Forwarded-For"))
    assert joined == "203.0.113.7, 198.51.100.1, 10.0.0.1, 127.0.0.1", hdrs


def test_x_forwarded_proto_host_client_cert_passed_through(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/xf", [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "gateway.example.org:8443"),
        ("X-Forwarded-Client-Cert", 'By=spiffe://x;Hash=abc;Subject="CN=e2e"'),
    ])
    assert H.hvals(hdrs, "X-Forwarded-Proto") == ["https"], hdrs
    assert H.hvals(hdrs, "X-Forwarded-Host") == ["gateway.example.org:8443"], hdrs
    assert H.hvals(hdrs, "X-Forwarded-Client-Cert") == ['By=spiffe://x;Hash=abc;Subject="CN=e2e"'], hdrs


def test_user_agent_forwarded_when_sent(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/ua", [("User-Agent", "e2e-agent/1.0 (test)")])
    assert H.hvals(hdrs, "User-Agent") == ["e2e-agent/1.0 (test)"], hdrs


def test_user_agent_not_added(main_gw):
    # RawConn sends only the headers given: no User-Agent at all
    hdrs = echo(main_gw.proxy, "/e2e/echo/noua", [])
    assert H.hvals(hdrs, "User-Agent") == [], hdrs


def test_host_is_target_host_and_port(main_gw, upstream):
    hdrs = echo(main_gw.proxy, "/e2e/echo/host", [("Host", "caller.example.org")], host=False)
    assert H.hvals(hdrs, "Host") == ["127.0.0.1:%d" % upstream.port], hdrs


def test_ordinary_and_repeated_headers_forwarded(main_gw):
    hdrs = echo(main_gw.proxy, "/e2e/echo/rep", [
        ("X-Multi", "one"), ("X-Multi", "two"), ("Accept", "application/json"),
        ("X-Empty", ""), ("X-Mixed-Case-Name", "Value With Spaces"),
    ])
    multi = H.hvals(hdrs, "X-Multi")
    assert multi in (["one", "two"], ["one, two"], ["one,two"]), hdrs
    assert H.hvals(hdrs, "Accept") == ["application/json"], hdrs
    assert H.hvals(hdrs, "X-Mixed-Case-Name") == ["Value With Spaces"], hdrs


def test_hop_by_hop_response_headers_removed(main_gw):
    r = H.get(main_gw.proxy, "/e2e/root/hopresp")
    assert r.status == 200, r
    assert r.body == b"hop"
    assert not r.has_header("X-Resp-Hop"), r
    assert not r.has_header("Keep-Alive"), r
    assert not r.has_header("Proxy-Authenticate"), r
    for v in r.header_all("Connection"):
        assert "x-resp-hop" not in v.lower(), r
    assert r.header("X-Resp-Kept") == "kept", r


def test_response_headers_and_status_passed(main_gw):
    r = H.get(main_gw.proxy, "/e2e/root/status/418")
    assert r.status == 418, r
    assert r.body == b"status 418"
    assert r.header("Content-Type") == "text/plain"
    assert not r.has_header("Target-System-Status"), r


def test_nginx_upstream_sees_target_host_and_uri(main_gw, nginx):
    r = H.http(main_gw.proxy, "PUT", "/e2e/nginx/info?a=1", [("Host", "caller.example")], b"x", host=False)
    assert r.status == 200, r
    assert r.body == ("nginx method=PUT uri=/base/info?a=1 host=127.0.0.1:%d sni=\n" % nginx.http).encode(), r


def test_static_file_range_and_conditional(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/nginx-files/small.txt")
    assert (r.status, r.body) == (200, b"small file from nginx\n"), r
    etag = r.header("ETag")
    assert etag
    r = H.get(main_gw.proxy, "/e2e/nginx-files/small.txt", [("Range", "bytes=0-4")])
    assert r.status == 206, r
    assert r.body == b"small"
    assert r.header("Content-Range") == "bytes 0-4/22", r
    with H.RawConn(main_gw.proxy) as c:
        r = c.request("GET", "/e2e/nginx-files/small.txt", [("If-None-Match", etag)])
        assert r.status == 304, r
        assert r.body == b""
        r = c.request("HEAD", "/e2e/nginx-files/small.txt")
        assert r.status == 200 and r.header("Content-Length") == "22", r
        r = c.request("GET", "/e2e/nginx-files/missing.txt")
        assert r.status == 404, r
        r = c.request("GET", "/e2e/nginx-files/small.txt")
        assert r.body == b"small file from nginx\n"
