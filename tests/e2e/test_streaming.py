"""100 MiB uploads and downloads stream through the gateway with bounded memory."""
import hashlib
import json
import os
import time

import pytest

import helpers as H
import upstream as U

SIZE = 100 * 1024 * 1024
RSS_LIMIT_KB = 64 * 1024


@pytest.fixture(scope="module")
def stream_gw(tmp_path_factory, upstream, nginx, certs):
    d = str(tmp_path_factory.mktemp("streamgw"))
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("st", [
        H.service("Up", [H.entry(upstream.url())]),
        H.service("Files", [H.entry("http://127.0.0.1:%d/files" % nginx.http)]),
        H.service("Nginx Upload", [H.entry("http://127.0.0.1:%d/upload" % nginx.http)]),
        H.service("Tls Files", [H.entry("https://localhost:%d/files" % nginx.https)]),
        H.service("Tls Upload", [H.entry("https://localhost:%d/upload" % nginx.https)]),
    ])])
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"), flags={"proxyTimeout": 60, "requestTimeout": 120},
                   env={"SSL_CERT_FILE": certs["ca.pem"]})
    yield gw
    gw.stop()


def check_rss(gw, what):
    hwm = H.proc_status(gw.pid, "VmHWM")
    assert hwm is not None, "cannot read VmHWM of pid %d" % gw.pid
    if H.SANITIZE:
        return hwm
    assert hwm < RSS_LIMIT_KB, "gateway peak RSS %.1f MiB after %s (limit 64 MiB)" % (hwm / 1024.0, what)
    return hwm


def upload(gw, path, chunked, pause_after=None):
    block = U.PATTERN_BLOCK
    h = hashlib.sha256()
    with H.RawConn(gw.proxy, timeout=120) as c:
        te = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(SIZE))]
        c.send(H.build_request("POST", path, [("Content-Type", "application/octet-stream")] + te, host="a"))
        sent = 0
        while sent < SIZE:
            d = block[: min(len(block), SIZE - sent)]
            h.update(d)
            c.send(b"%x\r\n%s\r\n" % (len(d), d) if chunked else d)
            sent += len(d)
            if pause_after is not None and sent == pause_after:
                time.sleep(1.0)
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
    assert r.status == 200, r
    doc = json.loads(r.body)
    assert doc == {"bytes": SIZE, "sha256": h.hexdigest()}, doc


def download(gw, path, expect_sha, pause_after=None):
    h = hashlib.sha256()
    n = [0]
    paused = [False]

    def sink(d):
        h.update(d)
        n[0] += len(d)
        if pause_after is not None and not paused[0] and n[0] >= pause_after:
            paused[0] = True
            time.sleep(1.0)  # a slow reader: the gateway must apply back-pressure, not buffer
    with H.RawConn(gw.proxy, timeout=120) as c:
        c.send(H.build_request("GET", path, host="a"))
        r = c.read_response("GET", sink=sink)
    assert r.status == 200, r
    assert n[0] == SIZE, "got %d bytes" % n[0]
    assert h.hexdigest() == expect_sha


def test_upload_100mib_content_length(stream_gw):
    # the upstream waits 1 s before reading: the gateway must not buffer the body meanwhile
    upload(stream_gw, "/st/up/upload?delay_ms=1000", chunked=False)
    check_rss(stream_gw, "Content-Length upload")


def test_upload_100mib_chunked(stream_gw):
    upload(stream_gw, "/st/up/upload", chunked=True, pause_after=8 * 1024 * 1024)
    check_rss(stream_gw, "chunked upload")


def test_upload_100mib_via_nginx(stream_gw):
    upload(stream_gw, "/st/nginx-upload", chunked=False)
    check_rss(stream_gw, "upload through nginx")


def test_upload_100mib_over_tls(stream_gw):
    """The request head and the body's first bytes share a TLS record, the rest follows in
    records of its own: the upstream behind nginx sees every byte, in order."""
    upload(stream_gw, "/st/tls-upload", chunked=False)
    check_rss(stream_gw, "upload over TLS")


def test_download_100mib_static_from_nginx(stream_gw, nginx):
    download(stream_gw, "/st/files/big.bin", nginx.big_sha, pause_after=4 * 1024 * 1024)
    check_rss(stream_gw, "nginx download")


def test_download_100mib_static_over_tls(stream_gw, nginx):
    """Records arrive split across reads and several per read; the decrypted bytes come out
    whole and in order, and a slow reader holds the download back instead of the gateway
    buffering it."""
    download(stream_gw, "/st/tls-files/big.bin", nginx.big_sha, pause_after=4 * 1024 * 1024)
    check_rss(stream_gw, "download over TLS")


def test_download_100mib_streamed_chunked(stream_gw):
    download(stream_gw, "/st/up/download?size=%d&chunked=1" % SIZE, U.pattern_sha256(SIZE),
             pause_after=4 * 1024 * 1024)
    check_rss(stream_gw, "chunked download")


def test_download_100mib_content_length(stream_gw):
    download(stream_gw, "/st/up/download?size=%d" % SIZE, U.pattern_sha256(SIZE))
    hwm = check_rss(stream_gw, "all streaming tests")
    print("gateway VmHWM after streaming: %.1f MiB" % (hwm / 1024.0))


def test_early_answer_during_upload_reaches_the_client(main_gw):
    """The upstream answers (401) before reading a large upload: the client gets that answer
    intact with "Connection: close", and the connection then closes cleanly (the gateway
    discards the rest of the upload instead of resetting the connection)."""
    import socket
    import threading
    s = socket.create_connection(("127.0.0.1", main_gw.proxy), timeout=20)
    size = 64 << 20
    head = b"POST /e2e/root/early HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size
    sent = [0]

    def pump():
        try:
            s.sendall(head)
            chunk = b"u" * 65536
            while sent[0] < size:
                s.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < len(b"answered before the upload"):
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
        t.join(10)
    head_out, _, body = data.partition(b"\r\n\r\n")
    assert head_out.startswith(b"HTTP/1.1 401"), data[:200]
    assert b"\r\nConnection: close" in head_out, head_out
    assert body.startswith(b"answered before the upload"), body[:100]
    assert H.get(main_gw.proxy, "/e2e/echo/after-early").status == 200
