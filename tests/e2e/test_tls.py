"""HTTPS upstreams via nginx: verification with the test CA (SSL_CERT_FILE), SNI, host name
check, and spec.skipVerify."""
import helpers as H


def test_https_by_host_name_verified_with_sni(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/tls/x?y=1")
    assert r.status == 200, r
    assert r.body == b"tls ok sni=localhost uri=/tls/x?y=1\n", r


def test_https_by_ip_verified_via_ip_san(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/tls-ip/x")
    assert r.status == 200, r
    # no SNI for an IP literal (RFC 6066 §3)
    assert r.body == b"tls ok sni= uri=/tls/x\n", r


def test_https_keep_alive_reuse(main_gw, nginx):
    with H.RawConn(main_gw.proxy) as c:
        for i in range(20):
            r = c.request("GET", "/e2e/tls/k%d" % i)
            assert r.status == 200, (i, r)
            assert r.body == ("tls ok sni=localhost uri=/tls/k%d\n" % i).encode()


def _metric(gw, name):
    body = H.get(gw.admin, "/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("metric %s missing" % name)


def test_https_upstream_connections_pooled_across_idle_gaps(main_gw, nginx):
    """Sequential HTTPS requests with idle gaps reuse pooled TLS connections instead of
    handshaking again."""
    import time
    before = _metric(main_gw, "appgw_upstream_connects_total")
    for i in range(10):
        r = H.get(main_gw.proxy, "/e2e/tls/pool%d" % i)
        assert r.status == 200, r
        time.sleep(0.05)
    new = _metric(main_gw, "appgw_upstream_connects_total") - before
    # one connection per worker at most (the gateway runs 2 workers)
    assert new <= 2, "%d new upstream connections for 10 sequential HTTPS requests" % new


def test_https_pooled_connection_serves_after_giving_its_buffers_back(main_gw, nginx):
    """A pooled TLS connection idle for 1 s gives OpenSSL's record buffers back; it stays
    pooled and carries the next requests (a download and an upload) with fresh buffers. One
    client connection, so every request is served by the same worker and its pool."""
    import time
    with H.RawConn(main_gw.proxy, timeout=10) as c:
        assert c.request("GET", "/e2e/tls/warm").status == 200
        before = _metric(main_gw, "appgw_upstream_connects_total")
        for i in range(2):
            time.sleep(1.3)  # past the 1 s after which an idle connection releases its buffers
            r = c.request("GET", "/e2e/tls/idle%d" % i)
            assert r.status == 200 and r.body == ("tls ok sni=localhost uri=/tls/idle%d\n" % i).encode(), r
            r = c.request("POST", "/e2e/tls/up-idle%d" % i, body=b"u" * 40000)
            assert r.status == 200 and r.body == ("tls ok sni=localhost uri=/tls/up-idle%d\n" % i).encode(), r
        new = _metric(main_gw, "appgw_upstream_connects_total") - before
    assert new == 0, "%d new upstream connections: the idle one was not kept" % new


def test_https_new_connections_resume_tls_sessions(main_gw, nginx):
    """nginx closes every connection of /tls-once after one request, so each request needs a
    new upstream connection; after the first per worker, the handshakes resume the session the
    server issued (TLS 1.3 tickets) instead of doing a full handshake."""
    hs0 = _metric(main_gw, "appgw_upstream_tls_handshakes_total")
    res0 = _metric(main_gw, "appgw_upstream_tls_resumed_total")
    bodies = []
    for i in range(8):
        r = H.get(main_gw.proxy, "/e2e/tls-once/r%d" % i)
        assert r.status == 200, r
        bodies.append(r.body)
    hs = _metric(main_gw, "appgw_upstream_tls_handshakes_total") - hs0
    res = _metric(main_gw, "appgw_upstream_tls_resumed_total") - res0
    # idle connections pooled by earlier /tls requests (same host and port) may serve the first
    # request of each worker; every later one needs a new connection
    assert hs >= 4, "expected new upstream connections, got %d handshakes" % hs
    # at most the first handshake of each of the 2 workers cannot resume
    assert res >= hs - 2, "only %d of %d handshakes resumed a session" % (res, hs)
    assert sum(b == b"once reused=r\n" for b in bodies) >= 4, bodies


def test_https_upload_streams_through_tls(main_gw, nginx):
    """A 4 MiB body goes through the TLS layer (encryption, queueing, backpressure). nginx may
    answer before it has read the whole body; then the gateway says "Connection: close" and
    closes cleanly after the answer (no reset destroying it), otherwise the connection is kept."""
    body = bytes(range(256)) * (4 * 4096)
    c = H.RawConn(main_gw.proxy, timeout=20)
    try:
        for i in range(3):
            r = c.request("POST", "/e2e/tls/up%d" % i, body=body)
            assert r.status == 200, r
            assert r.body == ("tls ok sni=localhost uri=/tls/up%d\n" % i).encode(), r
            if r.header("Connection", "").lower() == "close":
                assert c.wait_closed(12), "Connection: close announced but the connection stayed open"
                c.close()
                c = H.RawConn(main_gw.proxy, timeout=20)
    finally:
        c.close()


def test_skip_verify_accepts_untrusted_cert(main_gw, nginx):
    r = H.get(main_gw.proxy, "/skipverify/untrusted/x")
    assert r.status == 200, r
    assert r.body == b"untrusted ok /u/x\n", r


def test_skip_verify_accepts_wrong_host_name(main_gw, nginx):
    r = H.get(main_gw.proxy, "/skipverify/wrong-host/x")
    assert r.status == 200, r
    assert r.body == b"wronghost ok\n", r


def test_untrusted_without_skip_verify_is_502(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/tls-untrusted/x")
    assert r.status == 502, r


def test_wrong_host_without_skip_verify_is_502(main_gw, nginx):
    r = H.get(main_gw.proxy, "/e2e/tls-wrong-host/x")
    assert r.status == 502, r


def test_without_test_ca_trusted_cert_fails(tmpdir_str, nginx, certs):
    """Sanity check of the setup: without SSL_CERT_FILE the test CA is unknown → 502, so the
    200s above really come from verification against the test CA."""
    import os
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [
        H.application("t", [H.service("Tls", [H.entry("https://localhost:%d/tls" % nginx.https)])])])
    env = {"SSL_CERT_FILE": os.path.join(tmpdir_str, "no-such-ca.pem"), "SSL_CERT_DIR": tmpdir_str}
    with H.gateway(tmpdir_str, cfg, env=env) as gw:
        r = H.get(gw.proxy, "/t/tls/x")
        assert r.status == 502, r
