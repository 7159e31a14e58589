"""A strict recording upstream for request-side tests (issue 7): keeps every connection's raw
bytes and parses requests strictly per RFC 9112, so a test can assert exactly what the gateway
sent upstream and that nothing another parser could read differently got through.

Strict means: request-line `token SP visible-target SP HTTP/1.1 CRLF`; field lines
`token ":" OWS value OWS CRLF` (no obs-fold, no bare CR or LF, no CTLs); one Host; at most one
Content-Length (digits only), not together with Transfer-Encoding; Transfer-Encoding exactly
`chunked`; chunk-size 1*16HEXDIG, extensions only per the §7.1.1 grammar (no BWS without an
extension), CRLF exactly where the grammar has one, trailer field lines as above. Anything off
is recorded as a violation and answered 400 (connection closed); a good request gets 200 with a
small JSON body. stdlib only; one thread per connection, every wait bounded."""
import json
import re
import socket
import threading
import time

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
TCHARS = set(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
HEX = set(b"0123456789abcdefABCDEF")
MAX_HEAD = 1 << 17


class Violation(Exception):
    pass


def _field_value_ok(v):
    return all(c == 9 or 0x20 <= c != 0x7f for c in v)


def parse_field_line(line):
    """name, value of one field line (without its CRLF); raises Violation."""
    if not line or line[0] in b" \t":
        raise Violation("obs-fold or empty field line %r" % line[:40])
    name, sep, value = line.partition(b":")
    if not sep or not TOKEN.match(name):
        raise Violation("bad field name %r" % line[:40])
    if not _field_value_ok(value):
        raise Violation("CTL in field value of %r" % name)
    return name.decode("latin-1"), value.strip(b" \t").decode("latin-1")


def check_chunk_ext(ext):
    """ext is what follows the size digits on a chunk-size line (without CRLF)."""
    i, n = 0, len(ext)
    while i < n:
        while i < n and ext[i] in b" \t":
            i += 1
        if i == n or ext[i] != ord(";"):
            raise Violation("bad chunk extension %r" % ext[:40])
        i += 1
        while i < n and ext[i] in b" \t":
            i += 1
        j = i
        while i < n and ext[i] in TCHARS:
            i += 1
        if i == j:
            raise Violation("empty chunk extension name in %r" % ext[:40])
        k = i
        while k < n and ext[k] in b" \t":
            k += 1
        if k < n and ext[k] == ord("="):
            i = k + 1
            while i < n and ext[i] in b" \t":
                i += 1
            if i < n and ext[i] == ord('"'):
                i += 1
                while True:
                    if i >= n:
                        raise Violation("unterminated quoted chunk extension %r" % ext[:40])
                    c = ext[i]
                    if c == ord('"'):
                        i += 1
                        break
                    if c == ord("\\"):
                        if i + 1 >= n:
                            raise Violation("bad quoted-pair in %r" % ext[:40])
                        i += 2
                        continue
                    if not (c == 9 or 0x20 <= c != 0x7f):
                        raise Violation("CTL in chunk extension %r" % ext[:40])
                    i += 1
            else:
                j = i
                while i < n and ext[i] in TCHARS:
                    i += 1
                if i == j:
                    raise Violation("empty chunk extension value in %r" % ext[:40])


class Request:
    def __init__(self, conn_index, method, target, headers, raw_head):
        self.conn = conn_index
        self.method = method
        self.target = target
        self.headers = headers          # [(name, value)] as received
        self.raw_head = raw_head        # bytes up to and including the empty line
        self.raw_body = b""             # body bytes exactly as received (chunked framing included)
        self.body = b""                 # decoded body
        self.trailers = []
        self.complete = False

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def __repr__(self):
        return "<%s %s conn=%d body=%d complete=%s>" % (self.method, self.target, self.conn, len(self.body),
                                                         self.complete)


class Conn:
    def __init__(self, index, sock):
        self.index = index
        self.sock = sock
        self.raw = bytearray()
        self.closed_by_peer = threading.Event()  # we read EOF (or a reset) from the gateway
        self.done = threading.Event()            # the handling thread ended
        self.buf = b""


class StrictUpstream:
    """drop: indexes (0-based, over all requests) of requests that are read completely and then
    left unanswered: the connection is closed (a keep-alive connection the server dropped)."""

    def __init__(self, drop=()):
        self.drop = set(drop)
        self.lock = threading.Lock()
        self.conns = []
        self.requests = []
        self.violations = []
        self.changed = threading.Condition(self.lock)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # ---- waiting (bounded) ----

    def wait(self, pred, timeout=10.0):
        """Waits until pred() (called under the lock) is truthy; returns its value or None."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(min(left, 0.2))

    def wait_requests(self, n, timeout=10.0):
        return self.wait(lambda: len([r for r in self.requests if r.complete]) >= n, timeout)

    def wait_idle(self, timeout=10.0):
        """Every accepted connection has been closed by the gateway."""
        return self.wait(lambda: all(c.done.is_set() for c in self.conns) or None, timeout)

    def raw_bytes(self):
        with self.lock:
            return b"".join(bytes(c.raw) for c in self.conns)

    def reset(self):
        with self.lock:
            self.requests = []
            self.violations = []

    # ---- serving ----

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                continue
            with self.changed:
                c = Conn(len(self.conns), s)
                self.conns.append(c)
                self.changed.notify_all()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _fill(self, c):
        while not self.stopping:
            try:
                d = c.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                d = b""
            if not d:
                c.closed_by_peer.set()
                raise EOFError
            with self.changed:
                c.raw += d
                self.changed.notify_all()
            c.buf += d
            return
        raise EOFError

    def _line(self, c, limit):
        """One line ending in CRLF (returned without it); a bare LF or CR is a violation."""
        while True:
            i = c.buf.find(b"\n")
            if i >= 0:
                line, c.buf = c.buf[:i + 1], c.buf[i + 1:]
                if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                    raise Violation("bare LF or CR in %r" % line[:60])
                return line[:-2]
            if b"\r" in c.buf[:-1]:
                raise Violation("bare CR in %r" % c.buf[:60])
            if len(c.buf) > limit:
                raise Violation("line over %d bytes" % limit)
            self._fill(c)

    def _exact(self, c, n):
        while len(c.buf) < n:
            self._fill(c)
        out, c.buf = c.buf[:n], c.buf[n:]
        return out

    def _read_request(self, c):
        head = b""
        line = self._line(c, MAX_HEAD)
        head += line + b"\r\n"
        m = re.match(rb"^([^ ]+) ([^ ]+) HTTP/1\.1$", line)
        if not m or not TOKEN.match(m.group(1)) or any(ch <= 0x20 or ch == 0x7f for ch in m.group(2)):
            raise Violation("bad request-line %r" % line[:80])
        headers = []
        while True:
            line = self._line(c, MAX_HEAD)
            head += line + b"\r\n"
            if not line:
                break
            headers.append(parse_field_line(line))
        req = Request(c.index, m.group(1).decode(), m.group(2).decode("latin-1"), headers, head)
        with self.changed:
            self.requests.append(req)
            self.changed.notify_all()
        names = [k.lower() for k, _ in headers]
        if names.count("host") != 1:
            raise Violation("%d Host headers" % names.count("host"))
        cls = [v for k, v in headers if k.lower() == "content-length"]
        tes = [v for k, v in headers if k.lower() == "transfer-encoding"]
        if len(cls) > 1 or (cls and tes) or len(tes) > 1:
            raise Violation("ambiguous framing: Content-Length %r, Transfer-Encoding %r" % (cls, tes))
        if tes:
            if tes[0] != "chunked":
                raise Violation("Transfer-Encoding %r" % tes[0])
            self._read_chunked(c, req)
        elif cls:
            if not re.match(r"^[0-9]{1,18}$", cls[0]):
                raise Violation("Content-Length %r" % cls[0])
            req.raw_body = req.body = self._exact(c, int(cls[0]))
        req.complete = True
        return req

    def _read_chunked(self, c, req):
        raw, body = [], []
        while True:
            line = self._line(c, 16384)
            raw.append(line + b"\r\n")
            i = 0
            while i < len(line) and line[i] in HEX:
                i += 1
            if i == 0 or i > 16:
                raise Violation("bad chunk-size line %r" % line[:40])
            check_chunk_ext(line[i:])
            size = int(line[:i], 16)
            if size == 0:
                break
            data = self._exact(c, size)
            crlf = self._exact(c, 2)
            raw += [data, crlf]
            if crlf != b"\r\n":
                raise Violation("no CRLF after chunk data: %r" % crlf)
            body.append(data)
        while True:
            line = self._line(c, 16384)
            raw.append(line + b"\r\n")
            if not line:
                break
            req.trailers.append(parse_field_line(line))
        req.raw_body = b"".join(raw)
        req.body = b"".join(body)

    def _serve(self, c):
        c.sock.settimeout(0.2)
        try:
            while not self.stopping:
                if not c.buf:
                    self._fill(c)  # EOFError ends the connection quietly
                try:
                    req = self._read_request(c)
                except Violation as v:
                    with self.changed:
                        self.violations.append(str(v))
                        self.changed.notify_all()
                    body = json.dumps({"violation": str(v)}).encode()
                    c.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                                   b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    return
                with self.changed:
                    n = self.requests.index(req)
                    self.changed.notify_all()
                if n in self.drop:
                    return  # read, never answered: closed
                body = json.dumps({"n": n, "method": req.method, "body_len": len(req.body)}).encode()
                close = (req.header("connection") or "").lower() == "close"
                c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                               % (len(body), b"Connection: close\r\n" if close else b"", body))
                if close:
                    return
        except (EOFError, OSError):
            pass
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            with self.changed:
                c.done.set()
                self.changed.notify_all()

    def stop(self):
        self.stopping = True
        self.acceptor.join(5)
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.done.wait(5)
