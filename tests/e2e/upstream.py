#!/usr/bin/env python3
"""Bespoke HTTP/1.1 test upstream for the appgw end-to-end tests (stdlib only).

Run as a script: ``upstream.py --port-file FILE`` binds 127.0.0.1:0 and writes the chosen
port to FILE once it is listening.  Keep-alive HTTP/1.1, one thread per connection.

Dispatch: the request path is split on '/'; the first segment that names a special endpoint
selects it (so ``/base/status/503`` works behind a targetUrl with a base path).  Everything
else is answered by the echo handler.

  status/NNN[?location=URL]   that status, body "status NNN" (none for 1xx/204/304)
  echo (default)              JSON: method, target, path, query, headers (pairs), body_len, body_sha256
  redirect?to=URL&code=NNN    redirect (default 302) with Location: URL
  created?location=URL        201 with Location
  slow?ms=N                   waits N ms before the response head
  slowbody?ms=N&parts=K       head at once, then K body parts N ms apart
  broken                      garbage instead of an HTTP response, then close
  reset                       closes the connection with RST without answering
  chunked?n=N&size=S          chunked response of N chunks of S bytes (pattern bytes)
  upload[?delay_ms=N]         streams the body (Content-Length or chunked), answers JSON
                              {"bytes": n, "sha256": hex}; waits N ms before reading
  download?size=N[&chunked=1] streams N pattern bytes
  hopresp                     answer carrying hop-by-hop response headers
  closeafter                  normal 200 (no "Connection: close"), then the connection is closed
  truncated?size=N&send=M     Content-Length N but only M bytes, then close
  eofbody                     HTTP/1.1 200 without Content-Length/chunked: body ends at close
  early                       401 at once, without reading the request body, then close
  dropnext                    normal 200 keeping the connection, but the next request on it is
                              read and then the connection is closed unanswered (a keep-alive
                              connection the server closed just as the client reused it)
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PATTERN_BLOCK = hashlib.shake_256(b"appgw-e2e-pattern").digest(1 << 20)

SPECIALS = {"status", "redirect", "created", "slow", "slowbody", "broken", "reset", "chunked",
            "upload", "download", "hopresp", "echo", "closeafter", "truncated", "eofbody", "dropnext", "early"}


def pattern_bytes(offset, n):
    """n bytes of the repeating pattern starting at offset."""
    out = bytearray()
    blk = len(PATTERN_BLOCK)
    while n > 0:
        o = offset % blk
        take = min(n, blk - o)
        out += PATTERN_BLOCK[o:o + take]
        offset += take
        n -= take
    return bytes(out)


def pattern_sha256(size):
    h = hashlib.sha256()
    blk = len(PATTERN_BLOCK)
    full, rest = divmod(size, blk)
    for _ in range(full):
        h.update(PATTERN_BLOCK)
    h.update(PATTERN_BLOCK[:rest])
    return h.hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "e2e-upstream"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- body reading -------------------------------------------------------------
    def iter_body(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return
                left = size
                while left > 0:
                    d = self.rfile.read(min(left, 1 << 16))
                    if not d:
                        raise ConnectionError("eof in chunk")
                    left -= len(d)
                    yield d
                self.rfile.readline(3)
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        left = int(cl)
        while left > 0:
            d = self.rfile.read(min(left, 1 << 16))
            if not d:
                raise ConnectionError("eof in body")
            left -= len(d)
            yield d

    def consume_body(self):
        h = hashlib.sha256()
        n = 0
        for d in self.iter_body():
            h.update(d)
            n += len(d)
        return n, h.hexdigest()

    # ---- response helpers ---------------------------------------------------------
    def send_simple(self, code, body=b"", headers=(), ctype="text/plain"):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        no_body = code < 200 or code in (204, 304)
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def qs(self):
        return parse_qs(self.raw_query or "", keep_blank_values=True)

    def q1(self, name, default=None):
        v = self.qs().get(name)
        return v[0] if v else default

    # ---- dispatch -----------------------------------------------------------------
    def dispatch(self):
        if getattr(self, "_drop_next", False):
            self.consume_body()
            self.close_connection = True
            return
        target = self.path
        path, sep, query = target.partition("?")
        self.raw_path = path
        self.raw_query = query if sep else None
        segs = path.split("/")
        for i, s in enumerate(segs):
            if s in SPECIALS:
                getattr(self, "h_" + s)(segs[i + 1:])
                return
        self.h_echo([])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch

    def h_echo(self, rest):
        n, sha = self.consume_body()
        doc = {
            "method": self.command,
            "target": self.path,
            "path": self.raw_path,
            "query": self.raw_query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": n,
            "body_sha256": sha,
        }
        body = json.dumps(doc).encode()
        self.send_simple(200, body, ctype="application/json")

    def h_status(self, rest):
        self.consume_body()
        code = int(rest[0]) if rest and rest[0].isdigit() else 200
        headers = []
        loc = self.q1("location")
        if loc is not None:
            headers.append(("Location", loc))
        self.send_simple(code, ("status %d" % code).encode(), headers)

    def h_redirect(self, rest):
        self.consume_body()
        code = int(self.q1("code", "302"))
        to = self.q1("to", "/")
        self.send_simple(code, b"redirecting", [("Location", to)])

    def h_created(self, rest):
        self.consume_body()
        self.send_simple(201, b"created", [("Location", self.q1("location", "/"))])

    def h_slow(self, rest):
        self.consume_body()
        time.sleep(int(self.q1("ms", "1000")) / 1000.0)
        self.send_simple(200, b"slow ok")

    def h_slowbody(self, rest):
        self.consume_body()
        ms = int(self.q1("ms", "200"))
        parts = int(self.q1("parts", "3"))
        self.send_response(200)
        self.send_header("Content-Length", str(parts * 5))
        self.end_headers()
        for i in range(parts):
            time.sleep(ms / 1000.0)
            self.wfile.write(b"part%d" % (i % 10))

    def h_broken(self, rest):
        self.consume_body()
        self.wfile.write(b"THIS IS NOT HTTP AT ALL\r\n\x00\x01garbage\r\n\r\n")
        self.close_connection = True

    def h_reset(self, rest):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    def h_chunked(self, rest):
        self.consume_body()
        n = int(self.q1("n", "5"))
        size = int(self.q1("size", "1000"))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        off = 0
        for _ in range(n):
            d = pattern_bytes(off, size)
            off += size
            self.wfile.write(b"%x\r\n" % len(d) + d + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def h_upload(self, rest):
        delay = int(self.q1("delay_ms", "0"))
        if delay:
            time.sleep(delay / 1000.0)
        n, sha = self.consume_body()
        body = json.dumps({"bytes": n, "sha256": sha}).encode()
        self.send_simple(200, body, ctype="application/json")

    def h_download(self, rest):
        self.consume_body()
        size = int(self.q1("size", "1024"))
        chunked = self.q1("chunked", "0") == "1"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        off = 0
        step = 1 << 18
        while off < size:
            d = pattern_bytes(off, min(step, size - off))
            off += len(d)
            if chunked:
                self.wfile.write(b"%x\r\n" % len(d) + d + b"\r\n")
            else:
                self.wfile.write(d)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def h_hopresp(self, rest):
        self.consume_body()
        body = b"hop"
        self.send_response(200)
        self.send_header("Connection", "X-Resp-Hop")
        self.send_header("X-Resp-Hop", "must-not-pass")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Proxy-Authenticate", "Basic realm=x")
        self.send_header("X-Resp-Kept", "kept")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _h_closeafter(self, rest):
    self.consume_body()
    self.send_simple(200, b"closing after this")
    self.close_connection = True


def _h_truncated(self, rest):
    self.consume_body()
    size = int(self.q1("size", "100000"))
    send = int(self.q1("send", "1000"))
    self.send_response(200)
    self.send_header("Content-Length", str(size))
    self.end_headers()
    self.wfile.write(pattern_bytes(0, send))
    self.close_connection = True


def _h_eofbody(self, rest):
    self.consume_body()
    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"body until eof " * 1000)
    self.close_connection = True


def _h_early(self, rest):
    self.send_simple(401, b"answered before the upload")
    self.close_connection = True


Handler.h_early = _h_early


def _h_dropnext(self, rest):
    self.consume_body()
    self.send_simple(200, b"the next request on this connection is dropped")
    self._drop_next = True


Handler.h_dropnext = _h_dropnext
Handler.h_closeafter = _h_closeafter
Handler.h_truncated = _h_truncated
Handler.h_eofbody = _h_eofbody


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # connection aborts are expected
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, OSError, ValueError)):
            return
        super().handle_error(request, client_address)


def main(handler=None, server=None):
    """Serves on 127.0.0.1 until killed; writes the port to --port-file (atomically)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    srv = (server or Server)(("127.0.0.1", a.port), handler or Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
