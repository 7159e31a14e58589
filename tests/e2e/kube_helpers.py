"""Helpers for the Kubernetes-source end-to-end tests (test_kube_*.py): the fake kube-apiserver
(kubeapi/server.js) in its own process, kubeconfig and service-account writers, manifest
builders, a gateway started without --configDir, a steady request loop, and log checks.

The fake API server behaves as kube-apiserver v1.26+ does for what the gateway uses (see the
header of kubeapi/server.js): TLS with the suite's test CA (HTTP/2 via ALPN, HTTP/1.1 accepted),
bearer tokens and client certificates from client-ca.pem, paginated lists, chunked watch
streams, 410 for compacted resourceVersions, 403 under the original's get-only role, and an
outage mode in which its ports refuse connections. Tests drive it through its admin port.
"""
import base64
import json
import os
import subprocess
import threading
import time

import auth_helpers as A
import helpers as H

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_JS = os.path.join(HERE, "kubeapi", "server.js")

# Bearer tokens: distinct and greppable, so the log checks can look for them.
TOKEN_A = "kube-TOKEN-alpha-6d21f0c9e4"
TOKEN_B = "kube-TOKEN-bravo-91ab3e77d2"
TOKEN_C = "kube-TOKEN-charlie-0c55e812aa"
TOKEN_WRONG = "kube-TOKEN-wrong-3f1e9d0b77"
ALL_TOKENS = [TOKEN_A, TOKEN_B, TOKEN_C, TOKEN_WRONG]

APPS_PATH = "/apis/applicationconnector.kyma-project.io/v1alpha1/applications"

FALLBACK_MSG = "Kubernetes list/watch forbidden, falling back to on-demand GETs"
UNREACHABLE_MSG = "Kubernetes API unreachable"
REACHABLE_MSG = "Kubernetes API reachable again"


def secrets_path(ns=H.NS):
    return "/api/v1/namespaces/%s/secrets" % ns


# --------------------------------------------------------------------------- the fake API server

class KubeAPI:
    """kubeapi/server.js: https (API), http (a `kubectl proxy` without authentication) and admin
    ports on 127.0.0.1 (http1_only: ALPN offers no h2). certs: helpers.make_certs (server.pem from ca.pem); auth_certs:
    helpers.make_auth_certs (client certificates from client-ca.pem are accepted)."""

    def __init__(self, workdir, certs, auth_certs, tokens=(TOKEN_A, TOKEN_B), http1_only=False):
        self.dir = workdir
        self.certs = certs
        self.auth_certs = auth_certs
        self.out_path = os.path.join(workdir, "kubeapi.stdout")
        self.err_path = os.path.join(workdir, "kubeapi.stderr")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        node = os.environ.get("KUBEAPI_NODE") or "node"
        self.proc = subprocess.Popen(
            [node, SERVER_JS, "--cert", certs["server.pem"], "--key", certs["server.key"],
             "--client-ca", auth_certs["client-ca.pem"], "--tokens", ",".join(tokens)]
            + (["--http1-only"] if http1_only else []),
            stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, cwd=os.path.dirname(SERVER_JS))
        try:
            info = json.loads(A._wait_file_line(self.out_path, "ready ", self.proc, 20, "kubeapi/server.js"))
        except Exception:
            self.stop()
            raise RuntimeError("kubeapi/server.js did not start; stderr:\n%s" % A._tail(self.err_path))
        self.https, self.http, self.admin = info["https"], info["http"], info["admin"]

    # -- addresses
    def url(self, plain=False, host="127.0.0.1"):
        if plain:
            return "http://%s:%d" % (host, self.http)
        return "https://%s:%d" % (host, self.https)

    # -- admin API
    def call(self, method, path, doc=None):
        return A.call_json(self.admin, method, path, doc)

    def apply(self, *objs):
        return self.call("POST", "/apply", {"objects": list(objs)})["objects"]

    def delete(self, kind, name, namespace=None):
        d = {"kind": kind, "name": name}
        if namespace is not None:
            d["namespace"] = namespace
        return self.call("POST", "/delete", d)

    def ops(self, ops):
        """Several operations at once; the server runs them without handling any client request
        in between (e.g. close the watches, change objects, compact: a 'gap' the client misses)."""
        return self.call("POST", "/ops", list(ops))

    def config(self, **kw):
        return self.call("POST", "/config", kw)["config"]

    def set_tokens(self, tokens):
        return self.call("POST", "/tokens", {"tokens": list(tokens)})

    def compact(self):
        return self.call("POST", "/compact", {})

    def close_watches(self, resource=None):
        return self.call("POST", "/closeWatches", {"resource": resource} if resource else {})

    def expire_watches(self, resource=None):
        return self.call("POST", "/expireWatches", {"resource": resource} if resource else {})

    def inject(self, what, resource=None, **kw):
        d = {"what": what}
        if resource:
            d["resource"] = resource
        d.update(kw)
        return self.call("POST", "/inject", d)

    def outage_start(self):
        return self.call("POST", "/outage/start", {})

    def outage_end(self, compact=None):
        return self.call("POST", "/outage/end", {} if compact is None else {"compact": compact})

    def state(self):
        return self.call("GET", "/state")

    def watches(self):
        return self.call("GET", "/watches")

    def objects(self):
        return self.call("GET", "/objects")

    def mark(self):
        """The sequence number the next API request will get (for requests(since=...))."""
        return self.call("GET", "/requests?since=%d" % (1 << 62))["next"]

    def requests(self, since=0, **match):
        """Recorded API requests with seq >= since whose fields equal every keyword given
        (verb, resource, name, status, auth, note, token, ...)."""
        reqs = self.call("GET", "/requests?since=%d" % since)["requests"]
        return [r for r in reqs if all(r.get(k) == v for k, v in match.items())]

    def reset(self):
        return self.call("POST", "/reset", {})

    def wait_request(self, since, timeout, **match):
        """The first recorded request (seq >= since) matching, waiting up to timeout; or None."""
        v, _ = H.wait_for(lambda: (self.requests(since, **match) or [None])[0], timeout, interval=0.05)
        return v

    def wait_watching(self, since=0, resources=("applications", "secrets"), timeout=None):
        """Waits until an open watch on every resource exists whose request came at or after
        `since`; returns the watches or raises."""
        timeout = timeout or 10 * H.SLOW

        def have():
            ws = [w for w in self.watches() if w["seq"] >= since]
            return ws if all(any(w["resource"] == r for w in ws) for r in resources) else None
        ws, _ = H.wait_for(have, timeout, interval=0.05)
        if not ws:
            raise AssertionError("no open watch on %s (from request #%d on) within %.1fs; open: %r; recent requests: %r"
                                 % (resources, since, timeout, self.watches(), self.requests(since)[-10:]))
        return ws

    def port_refuses(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.https), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True

    def stop(self):
        H.stop_process(self.proc, timeout=5)
        self.out.close()
        self.err.close()


# --------------------------------------------------------------------------- kubeconfig and service accounts

def _scalar(v):
    """A YAML scalar as kubectl writes it: plain when that is unambiguous, quoted otherwise."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    s = str(v)
    plain_ok = (s and s.strip() == s and not any(c in s for c in ":#{}[],&*!|>'\"%@`")
                and s.lower() not in ("true", "false", "yes", "no", "null", "~", "on", "off")
                and not s[0].isdigit() and not s.startswith("-"))
    if plain_ok or (s.startswith(("https://", "http://")) and " " not in s):
        return s
    return json.dumps(s)


def kubeconfig_text(server, ca_file=None, ca_data=None, insecure=False, token=None, token_file=None,
                    cert_file=None, key_file=None, cert_data=None, key_data=None, decoy=True,
                    name="e2e"):
    """A kubeconfig in the layout `kubectl config view --raw` prints. *_data are PEM bytes/str
    (base64-encoded here). With decoy, a second cluster/user/context that must not be used
    (unreachable server, wrong token) comes first in every list; current-context names ours."""
    def b64pem(x):
        if isinstance(x, str):
            x = x.encode()
        return base64.b64encode(x).decode()

    cl = []
    if ca_data is not None:
        cl.append(("certificate-authority-data", b64pem(ca_data)))
    if ca_file is not None:
        cl.append(("certificate-authority", ca_file))
    if insecure:
        cl.append(("insecure-skip-tls-verify", True))
    cl.append(("server", server))
    us = []
    if cert_data is not None:
        us.append(("client-certificate-data", b64pem(cert_data)))
    if cert_file is not None:
        us.append(("client-certificate", cert_file))
    if key_data is not None:
        us.append(("client-key-data", b64pem(key_data)))
    if key_file is not None:
        us.append(("client-key", key_file))
    if token is not None:
        us.append(("token", token))
    if token_file is not None:
        us.append(("tokenFile", token_file))

    lines = ["apiVersion: v1", "clusters:"]
    if decoy:
        lines += ["- cluster:", "    insecure-skip-tls-verify: true", "    server: https://127.0.0.1:1",
                  "  name: decoy"]
    lines.append("- cluster:")
    lines += ["    %s: %s" % (k, _scalar(v)) for k, v in cl]
    lines += ["  name: %s" % name, "contexts:"]
    if decoy:
        lines += ["- context:", "    cluster: decoy", "    user: decoy-user", "  name: decoy"]
    lines += ["- context:", "    cluster: %s" % name, "    namespace: kyma-system", "    user: %s-user" % name,
              "  name: %s" % name,
              "current-context: %s" % name, "kind: Config", "preferences: {}", "users:"]
    if decoy:
        lines += ["- name: decoy-user", "  user:", "    token: %s" % TOKEN_WRONG]
    lines += ["- name: %s-user" % name, "  user:"]
    if us:
        lines += ["    %s: %s" % (k, _scalar(v)) for k, v in us]
    else:
        lines[-1] = "  user: {}"
    return "\n".join(lines) + "\n"


def write_kubeconfig(path, server, **kw):
    H.write_atomic(path, kubeconfig_text(server, **kw))
    return path


def projected_write(d, files):
    """Writes files into d the way the kubelet updates a projected service-account volume
    (AtomicWriter): the data lives in a timestamped directory, `..data` is a symlink to it that
    is replaced atomically, and every visible name is a symlink `name -> ..data/name`."""
    os.makedirs(d, exist_ok=True)
    ts = os.path.join(d, "..%s_%d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), time.monotonic_ns()))
    os.makedirs(ts)
    for name, content in files.items():
        with open(os.path.join(ts, name), "w") as f:
            f.write(content)
    old = os.path.realpath(os.path.join(d, "..data")) if os.path.islink(os.path.join(d, "..data")) else None
    tmp = os.path.join(d, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(ts), tmp)
    os.rename(tmp, os.path.join(d, "..data"))
    for name in files:
        p = os.path.join(d, name)
        if not os.path.lexists(p):
            os.symlink(os.path.join("..data", name), p)
    if old and os.path.isdir(old) and old != os.path.realpath(ts):
        for n in os.listdir(old):
            os.unlink(os.path.join(old, n))
        os.rmdir(old)


def service_account_dir(d, certs, token, namespace=H.NS):
    projected_write(d, {"token": token, "ca.crt": H.read_text(certs["ca.pem"]), "namespace": namespace})
    return d


def in_cluster_env(kube, sa_dir):
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.https),
            "APPGW_SERVICEACCOUNT_DIR": sa_dir}


# --------------------------------------------------------------------------- manifests

def echo_app(name, upstream, path=None, creds=None, params=None, services=None, **kw):
    """An Application with one service "Echo" (→ upstream path, default /<name>)."""
    svcs = [H.service("Echo", [H.entry(upstream.url(path or "/" + name), creds=creds, params=params)])]
    return H.application(name, svcs + list(services or []), **kw)


def basic(secret_name):
    return {"type": "Basic", "secretName": secret_name}


def secret_values_of(secret):
    """The plain and the base64 form of every value of a Secret manifest (for leak checks)."""
    out = []
    for v in (secret.get("stringData") or {}).values():
        out += [v, H.b64(v)]
    for v in (secret.get("data") or {}).values():
        out += [v, base64.b64decode(v).decode("utf-8", "replace")]
    return [x for x in out if len(x) >= 6]


def key_fragments(key_path):
    """Greppable fragments of a PEM private key: two base64 lines of its body and a slice of the
    base64 of the whole file (as client-key-data carries it)."""
    text = H.read_text(key_path)
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
    frags = [body[len(body) // 2]] if body else []
    if len(body) > 2:
        frags.append(body[1])
    whole = base64.b64encode(text.encode()).decode()
    frags.append(whole[60:120])
    return [f for f in frags if len(f) >= 16]


# --------------------------------------------------------------------------- the gateway

# libcurl honours *_proxy variables; 127.0.0.1 traffic must never go through a proxy.
NO_PROXY_ENV = {"no_proxy": "*", "NO_PROXY": "*", "http_proxy": "", "https_proxy": "", "HTTPS_PROXY": "",
                "HTTP_PROXY": "", "all_proxy": "", "ALL_PROXY": ""}


class KubeGateway:
    """appgw without --configDir, reading the fake API server (flags and/or env). start() waits for
    /v1/health only (startup does not block on the API server); wait_ready() waits for /v1/ready."""

    def __init__(self, workdir, flags=None, env=None, workers=2, secrets=(), config_dir=None):
        self.dir = workdir
        self.secrets = list(secrets) + ALL_TOKENS
        e = dict(NO_PROXY_ENV)
        e.update(env or {})
        self.gw = H.Gateway(config_dir, os.path.join(workdir, "appgw.stderr"), flags=flags, env=e, workers=workers)

    def __getattr__(self, k):  # proxy, compass, admin, pid, log_text, alive, ...
        return getattr(self.gw, k)

    def ready(self, timeout=3.0):
        """The /v1/ready response (or None when it cannot be fetched)."""
        try:
            return H.get(self.gw.admin, "/v1/ready", timeout=timeout)
        except (OSError, EOFError, ValueError):
            return None

    def wait_ready(self, timeout=None):
        timeout = timeout or 10 * H.SLOW
        r, took = H.wait_for(lambda: (lambda x: x if x is not None and x.status == 200 else None)(self.ready()),
                             timeout)
        if not r:
            raise AssertionError("/v1/ready not 200 within %.1fs (last: %r); stderr tail:\n%s"
                                 % (timeout, self.ready(), self.gw.log_tail()))
        return took

    def records(self, since=0):
        """Parsed JSON log lines of stderr from character offset `since`."""
        out = []
        for ln in self.gw.log_text()[since:].splitlines():
            try:
                doc = json.loads(ln)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def log_mark(self):
        return len(self.gw.log_text())

    def msgs(self, text, since=0):
        """Log records whose msg contains text."""
        return [r for r in self.records(since) if text in str(r.get("msg", ""))]

    def wait_msg(self, text, timeout, since=0):
        v, _ = H.wait_for(lambda: self.msgs(text, since), timeout, interval=0.05)
        return v

    def close(self, extra_secrets=()):
        rc = self.gw.stop()
        text = self.gw.log_text()
        reports = self.gw.sanitizer_reports()
        assert not reports, "sanitizer reports in gateway stderr:\n" + "\n".join(reports[:20])
        A.check_no_secrets(text, self.secrets + list(extra_secrets))
        assert rc == 0, "gateway exited with %r on SIGTERM; stderr tail:\n%s" % (rc, self.gw.log_tail())
        return rc


def start_gateway(workdir, flags=None, env=None, secrets=(), **kw):
    os.makedirs(workdir, exist_ok=True)
    return KubeGateway(workdir, flags=flags, env=env, secrets=secrets, **kw)


# --------------------------------------------------------------------------- requests through the gateway

def try_get(port, path, timeout=5.0):
    try:
        return H.get(port, path, timeout=timeout)
    except (OSError, EOFError, ValueError):
        return None


def until(pred, timeout, interval=0.02):
    """(value, seconds) of the first truthy pred() within timeout, polling every interval."""
    return H.wait_for(pred, timeout, interval=interval)


def path_is(port, path, upstream_path):
    """pred: the request is proxied and the echo upstream saw upstream_path."""
    def p():
        r = try_get(port, path)
        if r is None or r.status != 200:
            return None
        try:
            return r if r.json()["path"] == upstream_path else None
        except (ValueError, KeyError):
            return None
    return p


def status_is(port, path, status):
    def p():
        r = try_get(port, path)
        return r if r is not None and r.status == status else None
    return p


class SteadyLoad:
    """`threads` clients sending GET path in a loop on keep-alive connections to the gateway until
    stop(); every non-200 answer and every connection error is a failure."""

    def __init__(self, port, path, threads=3, expect=200):
        self.port, self.path, self.expect = port, path, expect
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        c = None
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = H.RawConn(self.port, timeout=10)
                r = c.request("GET", self.path)
                with self.lock:
                    if r.status == self.expect:
                        self.ok += 1
                    else:
                        self.failures.append((time.monotonic(), repr(r)[:300]))
                if (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, EOFError, ValueError) as ex:
                with self.lock:
                    self.failures.append((time.monotonic(), repr(ex)))
                if c is not None:
                    c.close()
                c = None
            time.sleep(0.005)
        if c is not None:
            c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)
        return self.ok, list(self.failures)
