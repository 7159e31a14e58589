"""Shared helpers for the appgw end-to-end tests: ports, processes, a raw HTTP/1.1 client,
manifest builders, certificates, nginx and gateway process management (stdlib only)."""
import base64
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import upstream as upstream_mod  # noqa: E402  (pattern helpers shared with the upstream)

SANITIZE = os.environ.get("APPGW_SANITIZE", "") not in ("", "0")
# Everything slows down ~3x under ASan; scale waits that are about the gateway's speed.
SLOW = 3.0 if SANITIZE else 1.0
ERR_CT = "application/json;charset=UTF-8"
NS = "kyma-system"


def appgw_bin():
    return os.environ.get("APPGW_BIN") or os.path.join(REPO, "build", "appgw")


# --------------------------------------------------------------------------- ports

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n):
    """n distinct free ports (all bound at once so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------- processes

def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Stops one process we started, by its PID: signal, bounded wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc is not None else None
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def proc_status(pid, key):
    """A field of /proc/PID/status in kB (e.g. VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def count_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def count_sockets(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return -1
    return n


class Upstream:
    """The python test upstream (upstream.py) in its own process."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port_file = os.path.join(workdir, "upstream.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(workdir, "upstream.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "upstream.py"), "--port-file", self.port_file],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("upstream.py exited early (rc %s)" % self.proc.returncode)
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                break
            time.sleep(0.05)
        if self.port is None or not wait_port(self.port, 10, self.proc):
            self.stop()
            raise RuntimeError("upstream.py did not start")

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.log.close()


# --------------------------------------------------------------------------- raw HTTP client

class Response:
    def __init__(self, status, reason, headers, body, head=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in wire order
        self.body = body
        self.head = head

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_header(self, name):
        return bool(self.header_all(name))

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:300])


class RawConn:
    """A blocking HTTP/1.1 client connection that sends exactly the bytes it is given."""

    def __init__(self, port, host="127.0.0.1", timeout=15.0, sock=None):
        self.port = port
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by peer")
        d = self.sock.recv(1 << 18)
        if not d:
            self.eof = True
            raise EOFError("connection closed by peer")
        self.buf += d

    def read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = self.buf[:i + len(delim)]
                self.buf = self.buf[i + len(delim):]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def read_to_eof(self, limit=1 << 30):
        while len(self.buf) <= limit:
            try:
                self._fill()
            except EOFError:
                break
        out, self.buf = self.buf, b""
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n", limit=1 << 20)
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ValueError("bad status line %r" % lines[0])
        status = int(m.group(1))
        reason = (m.group(2) or b"").decode("latin-1")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
        return status, reason, headers, head

    def read_body(self, method, status, headers, sink=None):
        """Reads a response body per RFC 9112 framing. With sink, pieces go to sink(bytes)
        and the returned body is b""."""
        hl = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status < 200 or status in (204, 304):
            return b""
        parts = []
        put = sink or parts.append
        te = hl.get("transfer-encoding")
        if te is not None and "chunked" in te.lower():
            while True:
                line = self.read_until(b"\r\n", limit=4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", limit=65536) != b"\r\n":
                        pass
                    break
                left = size
                while left > 0:
                    if not self.buf:
                        self._fill()
                    take = self.buf[:left]
                    self.buf = self.buf[len(take):]
                    left -= len(take)
                    put(take)
                if self.read_exact(2) != b"\r\n":
                    raise ValueError("bad chunk terminator")
        elif "content-length" in hl:
            left = int(hl["content-length"])
            while left > 0:
                if not self.buf:
                    self._fill()
                take = self.buf[:left]
                self.buf = self.buf[len(take):]
                left -= len(take)
                put(take)
        else:
            put(self.read_to_eof())
        return b"".join(parts)

    def read_response(self, method="GET", skip_1xx=True, sink=None):
        while True:
            status, reason, headers, head = self.read_head()
            if 100 <= status < 200 and skip_1xx:
                continue
            body = self.read_body(method, status, headers, sink=sink)
            return Response(status, reason, headers, body, head)

    def request(self, method, path, headers=None, body=None, host=True):
        self.send(build_request(method, path, headers, body, host=("127.0.0.1:%d" % self.port) if host else None))
        return self.read_response(method)

    def wait_closed(self, timeout=3.0):
        """True when the peer closes (EOF or reset) within timeout; False on data/timeout."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
            if d:
                self.buf += d
                return False
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass


def build_request(method, path, headers=None, body=None, host="127.0.0.1"):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    names = {k.lower() for k, _ in (headers or [])}
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    for k, v in headers or []:
        lines.append("%s: %s" % (k, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def http(port, method, path, headers=None, body=None, timeout=15.0, host=True):
    """One request on a fresh connection; headers is a list of (name, value)."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    with RawConn(port, timeout=timeout) as c:
        return c.request(method, path, headers, body, host=host)


def get(port, path, headers=None, **kw):
    return http(port, "GET", path, headers, **kw)


def echo_headers(resp):
    """Header pairs the upstream echo saw."""
    return [(k, v) for k, v in resp.json()["headers"]]


def hvals(pairs, name):
    n = name.lower()
    return [v for k, v in pairs if k.lower() == n]


def assert_gw_error(resp, code, text=None, prefix=None, contains=None):
    """The gateway's own JSON error: exact content type and {"code":N,"error":"..."}."""
    assert resp.status == code, "expected %d, got %r" % (code, resp)
    assert resp.header("Content-Type") == ERR_CT, "bad Content-Type in %r" % (resp,)
    doc = resp.json()
    assert set(doc) == {"code", "error"}, doc
    assert doc["code"] == code, doc
    if text is not None:
        assert doc["error"] == text, doc
    if prefix is not None:
        assert doc["error"].startswith(prefix), doc
    if contains is not None:
        assert contains in doc["error"], doc
    return doc


# --------------------------------------------------------------------------- manifests

def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def entry(url, name="api", type_="API", creds=None, params=None, **extra):
    e = {"type": type_, "name": name, "targetUrl": url}
    if creds is not None:
        e["credentials"] = creds
    if params is not None:
        e["requestParametersSecretName"] = params
    e.update(extra)
    return e


def service(display, entries, name=None, id_=None):
    return {"id": id_ or display, "name": name or re.sub(r"[^a-z0-9]+", "-", display.lower()).strip("-") or "svc",
            "displayName": display, "description": "e2e", "entries": entries}


def application(name, services, skip_verify=None, encode_url=None):
    spec = {"services": services}
    if skip_verify is not None:
        spec["skipVerify"] = skip_verify
    if encode_url is not None:
        spec["encodeUrl"] = encode_url
    return {"apiVersion": "applicationconnector.kyma-project.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name}, "spec": spec}


def secret(name, data=None, string_data=None, namespace=NS):
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
         "type": "Opaque"}
    if data is not None:
        s["data"] = {k: b64(v) for k, v in data.items()}
    if string_data is not None:
        s["stringData"] = dict(string_data)
    return s


def _yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dict/list/scalar trees."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s\n" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s\n" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            elif isinstance(v, list) and v:
                out.append(pad + "-\n" + to_yaml(v, indent + 2))
            else:
                out.append(pad + "- " + _yaml_scalar(v) + "\n")
    else:
        out.append(pad + _yaml_scalar(obj) + "\n")
    return "".join(out)


def write_atomic(path, text):
    d = os.path.dirname(path)
    tmp = os.path.join(d, ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_yaml_docs(path, docs):
    write_atomic(path, "".join("---\n" + to_yaml(d) for d in docs))


def write_json_list(path, items):
    write_atomic(path, json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1))


# --------------------------------------------------------------------------- certificates

def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


def make_certs(d):
    """Test CA, a CA-signed server cert for 127.0.0.1/localhost, a self-signed (untrusted) one
    with the same names, and a CA-signed one for a different host name."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509"] + key + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
              "-subj", "/CN=appgw e2e test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)

    def signed(name, san):
        _openssl(["req"] + key + ["-keyout", name + ".key", "-out", name + ".csr",
                  "-subj", "/CN=%s" % name], d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" % san)
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", name + ".pem", "-days", "3", "-extfile", name + ".ext"], d)

    signed("server", "IP:127.0.0.1,DNS:localhost")
    signed("wronghost", "DNS:wrong.example.invalid")
    _openssl(["req", "-x509"] + key + ["-keyout", "untrusted.key", "-out", "untrusted.pem", "-days", "3",
              "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], d)
    return {k: os.path.join(d, k) for k in
            ("ca.pem", "server.pem", "server.key", "wronghost.pem", "wronghost.key",
             "untrusted.pem", "untrusted.key")}


CLIENT_DN = "CN=appgw-e2e-client"       # subject of client.pem / client-expired.pem / client-other.pem
CLIENT_EC_DN = "CN=appgw-e2e-client-ec"  # subject of client-ec.pem


def make_auth_certs(d, certs):
    """Certificates for client-certificate authentication (OAuthWithCert, CertificateGen, mTLS
    upstreams), made with the openssl CLI in directory d:

      client-ca.pem/.key       CA that mTLS servers trust for client certificates
      client.pem/.key          RSA-2048 client cert (CN=appgw-e2e-client) from client-ca, valid;
                               client.key is PKCS#8, client-rsa1.key the same key as PKCS#1
      client-ec.pem/.key       P-256 client cert (CN=appgw-e2e-client-ec) from client-ca, valid
      client-expired.pem/.key  same subject, from client-ca, expired in 2020
      client-other.pem/.key    same subject, from other-ca (not trusted by the mTLS servers)
      other-ca.pem/.key        that other CA
      server-expired.pem/.key  server cert for 127.0.0.1/localhost from the main test CA
                               (certs["ca.pem"]), expired in 2020

    Expired certificates come from `openssl ca -startdate/-enddate` (works with OpenSSL 3.0,
    whose `x509 -req` has no -not_before/-not_after)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    rsa = ["-newkey", "rsa:2048", "-nodes"]
    for name, cn in (("client-ca", "appgw e2e client CA"), ("other-ca", "appgw e2e other CA")):
        _openssl(["req", "-x509"] + ec + ["-keyout", name + ".key", "-out", name + ".pem", "-days", "3",
                  "-subj", "/CN=%s" % cn,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def csr(name, subj, newkey):
        _openssl(["req"] + newkey + ["-keyout", name + ".key", "-out", name + ".csr", "-subj", subj], d)

    def sign(name, ca, ext):
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                  "-CAcreateserial", "-out", name + ".pem", "-days", "3", "-extfile", ext], d)

    def sign_expired(name, ca_pem, ca_key, ext):
        cadir = os.path.join(d, "ca-db-" + name)
        os.makedirs(cadir, exist_ok=True)
        with open(os.path.join(cadir, "index.txt"), "w"):
            pass
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("%X\n" % (0x1000 + len(name)))
        with open(os.path.join(cadir, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = e2e\n[e2e]\ndatabase = %(c)s/index.txt\nnew_certs_dir = %(c)s\n"
                    "serial = %(c)s/serial\ndefault_md = sha256\npolicy = pol\ncopy_extensions = none\n"
                    "unique_subject = no\n[pol]\ncommonName = supplied\n" % {"c": cadir})
        _openssl(["ca", "-config", os.path.join(cadir, "ca.cnf"), "-batch", "-notext",
                  "-cert", ca_pem, "-keyfile", ca_key, "-in", name + ".csr", "-out", name + ".pem",
                  "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-extfile", ext], d)

    csr("client", "/" + CLIENT_DN, rsa)
    sign("client", "client-ca", "client.ext")
    _openssl(["rsa", "-in", "client.key", "-traditional", "-out", "client-rsa1.key"], d)
    csr("client-ec", "/" + CLIENT_EC_DN, ec)
    sign("client-ec", "client-ca", "client.ext")
    csr("client-expired", "/" + CLIENT_DN, rsa)
    sign_expired("client-expired", "client-ca.pem", "client-ca.key", "client.ext")
    csr("client-other", "/" + CLIENT_DN, rsa)
    sign("client-other", "other-ca", "client.ext")
    csr("server-expired", "/CN=localhost", ec)
    sign_expired("server-expired", certs["ca.pem"], certs["ca.pem"][:-4] + ".key", "server.ext")
    out = {k: os.path.join(d, k) for k in
           ("client-ca.pem", "client.pem", "client.key", "client-rsa1.key", "client-ec.pem", "client-ec.key",
            "client-expired.pem", "client-expired.key", "client-other.pem", "client-other.key",
            "other-ca.pem", "server-expired.pem", "server-expired.key")}
    for k, p in out.items():
        if not os.path.isfile(p):
            raise RuntimeError("certificate generation did not produce %s" % p)
    return out


def read_text(path):
    with open(path) as f:
        return f.read()


# --------------------------------------------------------------------------- nginx

NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf_head(workdir, error_level, worker_connections, access_log):
    """The start of a test nginx's configuration, up to inside `http {`: one worker under a
    master, in the foreground, pid, error log and temp directories (made here) under workdir."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(workdir, "tmp", sub), exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join("  %s_temp_path %s/tmp/%s;\n" % (k, workdir, d) for k, d in (
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"), ("uwsgi", "uwsgi"), ("scgi", "scgi")))
    return ("\n%sworker_processes 1;\ndaemon off;\nmaster_process on;\npid %s/nginx.pid;\n"
            "error_log %s/error.log %s;\nevents { worker_connections %d; }\nhttp {\n  access_log %s;\n%s"
            % (user, workdir, workdir, error_level, worker_connections, access_log, temps))


class Nginx:
    """nginx (master + 1 worker) as HTTP/HTTPS upstream with generated config."""

    BIG_SIZE = 100 * 1024 * 1024

    def __init__(self, workdir, certs, upstream_port):
        self.dir = workdir
        self.http, self.https, self.untrusted, self.wronghost = free_ports(4)
        files = os.path.join(workdir, "files")
        os.makedirs(files, exist_ok=True)
        with open(os.path.join(files, "small.txt"), "w") as f:
            f.write("small file from nginx\n")
        # 100 MiB of the upstream pattern (not sparse zeros, so a shifted byte is noticed)
        self.big_path = os.path.join(files, "big.bin")
        with open(self.big_path, "wb") as f:
            block = upstream_mod.PATTERN_BLOCK
            for _ in range(self.BIG_SIZE // len(block)):
                f.write(block)
        self.big_sha = upstream_mod.pattern_sha256(self.BIG_SIZE)
        conf = nginx_conf_head(workdir, "warn", 4096, "off") + """
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:%(http)d;
    listen 127.0.0.1:%(https)d ssl;
    server_name localhost;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    location /files/ { alias %(d)s/files/; }
    location = /base/redir { return 301 http://127.0.0.1:%(http)d/base/target; }
    location = /base/redir-other { return 302 http://other.example.invalid/base/target; }
    location = /base/info { default_type text/plain; return 200 "nginx method=$request_method uri=$request_uri host=$http_host sni=$ssl_server_name\\n"; }
    location /tls/ { client_max_body_size 0; default_type text/plain; return 200 "tls ok sni=$ssl_server_name uri=$request_uri\\n"; }
    location /tls-once/ { keepalive_requests 1; default_type text/plain; return 200 "once reused=$ssl_session_reused\\n"; }
    location /upload {
      client_max_body_size 0;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://127.0.0.1:%(up)d;
    }
    location / { default_type text/plain; return 200 "nginx $request_uri\\n"; }
  }
  server {
    listen 127.0.0.1:%(untrusted)d ssl;
    ssl_certificate %(ucrt)s;
    ssl_certificate_key %(ukey)s;
    location / { default_type text/plain; return 200 "untrusted ok $request_uri\\n"; }
  }
  server {
    listen 127.0.0.1:%(wronghost)d ssl;
    ssl_certificate %(wcrt)s;
    ssl_certificate_key %(wkey)s;
    location / { default_type text/plain; return 200 "wronghost ok\\n"; }
  }
}
""" % dict(d=workdir, http=self.http, https=self.https, untrusted=self.untrusted,
           wronghost=self.wronghost, crt=certs["server.pem"], key=certs["server.key"],
           ucrt=certs["untrusted.pem"], ukey=certs["untrusted.key"], wcrt=certs["wronghost.pem"],
           wkey=certs["wronghost.key"], up=upstream_port)
        self.conf = os.path.join(workdir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(workdir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen([NGINX_BIN, "-c", self.conf, "-p", workdir], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for p in (self.http, self.https, self.untrusted, self.wronghost):
            if not wait_port(p, 10, self.proc):
                self.stop()
                raise RuntimeError("nginx did not start: %s" % self.errors())

    def errors(self):
        out = ""
        for n in ("error.log", "nginx.stderr"):
            try:
                with open(os.path.join(self.dir, n)) as f:
                    out += f.read()[-3000:]
            except OSError:
                pass
        return out

    def stop(self):
        # SIGQUIT = graceful; the master reaps its worker
        stop_process(self.proc, sig=signal.SIGQUIT, timeout=10)
        self.log.close()
        try:
            os.unlink(self.big_path)  # pytest keeps the last runs' tmp dirs; 100 MiB each
        except OSError:
            pass


# --------------------------------------------------------------------------- the gateway

ALL_GATEWAYS = []  # every Gateway started in this session (for failure reports)


class Gateway:
    """One appgw process with its own ports, configDir and stderr log file. config_dir None
    leaves --configDir out (the Kubernetes source: --kubeConfig / --apiServerURL in flags, or the
    in-cluster env; see kube_helpers.KubeGateway)."""

    def __init__(self, config_dir, log_path, flags=None, env=None, rlimit_nofile=None,
                 log_level="debug", workers=2, wait=True, arg_style="double"):
        self.config_dir = config_dir
        self.log_path = log_path
        self.proxy, self.compass, self.admin = free_ports(3)
        binp = appgw_bin()
        if not (os.path.isfile(binp) and os.access(binp, os.X_OK)):
            raise RuntimeError("gateway binary %s does not exist (build it, or set APPGW_BIN)" % binp)
        base = {"configDir": config_dir, "listenAddress": "127.0.0.1", "proxyPort": self.proxy,
                "proxyPortCompass": self.compass, "externalAPIPort": self.admin, "workers": workers,
                "logLevel": log_level, "proxyTimeout": 10, "requestTimeout": 10, "shutdownGrace": 3,
                "applicationSecretsNamespace": NS}
        base.update(flags or {})
        base = {k: v for k, v in base.items() if v is not None}  # None: leave the flag out
        self.argv = [binp]
        for i, (k, v) in enumerate(base.items()):
            style = arg_style if arg_style != "mixed" else ("double", "single", "single_space", "double_space")[i % 4]
            if style == "double":
                self.argv.append("--%s=%s" % (k, v))
            elif style == "single":
                self.argv.append("-%s=%s" % (k, v))
            elif style == "single_space":
                self.argv += ["-%s" % k, str(v)]
            else:
                self.argv += ["--%s" % k, str(v)]
        e = dict(os.environ)
        e.update(env or {})
        preexec = None
        if rlimit_nofile is not None:
            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, rlimit_nofile)
        self.logf = open(log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.logf, stderr=self.logf, stdin=subprocess.DEVNULL,
                                     env=e, preexec_fn=preexec)
        self.pid = self.proc.pid
        self.exit_code = None
        ALL_GATEWAYS.append(self)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=None):
        timeout = timeout or 15 * SLOW
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("appgw exited with %s during start-up; argv=%s\nstderr tail:\n%s"
                                   % (self.proc.returncode, self.argv, self.log_tail()))
            try:
                r = http(self.admin, "GET", "/v1/health", timeout=2)
                if r.status == 200:
                    return
                last = r
            except (OSError, EOFError, ValueError) as ex:
                last = ex
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("appgw not ready within %ss (last: %r); stderr tail:\n%s" % (timeout, last, self.log_tail()))

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self, sig=signal.SIGTERM, timeout=None):
        if self.exit_code is None:
            self.exit_code = stop_process(self.proc, sig=sig, timeout=timeout or 10 * SLOW)
            self.logf.close()
        return self.exit_code

    def sanitizer_reports(self):
        t = self.log_text()
        return [ln for ln in t.splitlines()
                if "ERROR: AddressSanitizer" in ln or "ERROR: LeakSanitizer" in ln or "runtime error:" in ln]


@contextlib.contextmanager
def gateway(tmpdir, config_dir=None, **kw):
    """Context manager for an extra gateway; always stopped on exit."""
    if config_dir is None:
        config_dir = os.path.join(tmpdir, "config")
        os.makedirs(config_dir, exist_ok=True)
    gw = Gateway(config_dir, os.path.join(tmpdir, "appgw.stderr"), **kw)
    try:
        yield gw
    finally:
        gw.stop()


def wait_for(pred, timeout, interval=0.05):
    """Polls pred() until truthy or timeout; returns (value, elapsed)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    v = None
    while True:
        v = pred()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() >= deadline:
            return v, time.monotonic() - t0
        time.sleep(interval)


def metrics(admin_port, timeout=5.0):
    """The gateway's /metrics as {name or name{labels}: float} (comments skipped)."""
    r = http(admin_port, "GET", "/metrics", timeout=timeout)
    assert r.status == 200, r
    out = {}
    for ln in r.body.decode("utf-8", "replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+([0-9.eE+-]+|NaN|[+-]Inf)$", ln)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def settled_metrics(admin_port, timeout=10.0):
    """/metrics once no request is in flight (every request the test sent is counted): a
    client can read a complete response a moment before the gateway's accounting of it ends."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(admin_port)
        if m.get("appgw_requests_in_flight", 0) == 0:
            return m
        assert time.monotonic() < deadline, "requests still in flight after %ss" % timeout
        time.sleep(0.02)


def metric(admin_port, name):
    """One unlabelled metric from /metrics (KeyError if the gateway does not expose it)."""
    return metrics(admin_port)[name]


def inotify_watched_inodes(pid):
    """Inode numbers the process has inotify watches on (from /proc/PID/fdinfo)."""
    out = set()
    try:
        fds = os.listdir("/proc/%d/fdinfo" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for ln in f:
                    m = re.match(r"inotify wd:\S+ ino:([0-9a-f]+) ", ln)
                    if m:
                        out.add(int(m.group(1), 16))
        except OSError:
            pass
    return out


def tcp_established(local_port):
    """Number of ESTABLISHED TCP sockets on this host whose local port is local_port."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for ln in f:
                    parts = ln.split()
                    if len(parts) > 3 and parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == local_port:
                        n += 1
        except OSError:
            pass
    return n
