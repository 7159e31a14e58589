"""Helpers for the OAuth / OAuthWithCert / CertificateGen / CSRF end-to-end tests (SPEC §6.2-6.5,
§6.8, §7): the processes they talk to, manifest builders for those credential types, and a
per-module gateway.

Processes (each stopped by PID):
  OAuthServer  oauth/server.js: oidc-provider 8 (a real, strict OAuth 2.0 server), HTTP and HTTPS
               listeners; the HTTPS one verifies client certificates against client-ca.pem for
               tls_client_auth. Clients: OP_CLIENTS below.
  AuthMock     authmock.py: scriptable token endpoint, CSRF endpoint and protected upstream
               (see its docstring); state per realm, read and changed over HTTP.
  MtlsNginx    nginx with `ssl_verify_client on` (client CA: client-ca.pem) that answers
               /mtls/... itself and proxies everything else to AuthMock with the verified client
               DN in X-Client-DN; plus an HTTPS server whose certificate has expired.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import helpers as H

HERE = os.path.dirname(os.path.abspath(__file__))
OAUTH_DIR = os.path.join(HERE, "oauth")

# --------------------------------------------------------------------------- oidc-provider clients

# client id → secret. Every secret is distinct and greppable, so log checks can look for them.
OP_SECRETS = {
    "gw-basic": "op-SECRET-basic-5b1e7c",
    "gw-basic2": "op-SECRET-basic2-77d0aa",
    "gw-post": "op-SECRET-post-0c93f1",
    "gw-post2": "op-SECRET-post2-4e2b19",
    "gw-short": "op-SECRET-short-9a6d02",
    "gw-rot-a": "op-SECRET-rota-31c8e5",
    "gw-rot-b": "op-SECRET-rotb-b2f470",
    "e2e-introspector": "op-SECRET-introspect-8d1f",
}
SHORT_TTL = 4  # seconds: access token lifetime of gw-short

OP_CLIENTS = [
    {"client_id": "gw-basic", "client_secret": OP_SECRETS["gw-basic"], "token_endpoint_auth_method": "client_secret_basic"},
    {"client_id": "gw-basic2", "client_secret": OP_SECRETS["gw-basic2"], "token_endpoint_auth_method": "client_secret_basic"},
    {"client_id": "gw-post", "client_secret": OP_SECRETS["gw-post"], "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "gw-post2", "client_secret": OP_SECRETS["gw-post2"], "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "gw-short", "client_secret": OP_SECRETS["gw-short"], "token_endpoint_auth_method": "client_secret_basic",
     "e2e_ttl": SHORT_TTL},
    {"client_id": "gw-rot-a", "client_secret": OP_SECRETS["gw-rot-a"], "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "gw-rot-b", "client_secret": OP_SECRETS["gw-rot-b"], "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "gw-mtls", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": H.CLIENT_DN},
    {"client_id": "gw-mtls-ec", "token_endpoint_auth_method": "tls_client_auth",
     "tls_client_auth_subject_dn": H.CLIENT_EC_DN},
    {"client_id": "e2e-introspector", "client_secret": OP_SECRETS["e2e-introspector"],
     "token_endpoint_auth_method": "client_secret_basic"},
]


# --------------------------------------------------------------------------- small HTTP helpers

def call_json(port, method, path, doc=None, timeout=10.0):
    body = None if doc is None else json.dumps(doc).encode()
    hdrs = [("Content-Type", "application/json")] if body is not None else []
    r = H.http(port, method, path, hdrs, body, timeout=timeout)
    if r.status >= 300:
        raise RuntimeError("%s %s → %r" % (method, path, r))
    return r.json() if r.body else None


def form_post(port, path, form, headers=(), timeout=10.0):
    from urllib.parse import urlencode
    body = urlencode(form).encode()
    return H.http(port, "POST", path, [("Content-Type", "application/x-www-form-urlencoded")] + list(headers),
                  body, timeout=timeout)


def _wait_file_line(path, prefix, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited early (rc %s)" % (what, proc.returncode))
        try:
            with open(path) as f:
                for ln in f:
                    if ln.startswith(prefix):
                        return ln[len(prefix):].strip()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s not ready within %ss" % (what, timeout))


def _tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- oidc-provider

def ensure_oauth_installed():
    """node_modules of oauth/ (runs oauth/install.sh when they are missing or stale)."""
    r = subprocess.run(["bash", os.path.join(OAUTH_DIR, "install.sh")], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError("tests/e2e/oauth/install.sh failed:\n%s\n%s" % (r.stdout[-2000:], r.stderr[-2000:]))


class OAuthServer:
    """oauth/server.js (oidc-provider) with OP_CLIENTS, HTTP + HTTPS (client certs from client-ca)."""

    def __init__(self, workdir, certs, auth_certs, clients=None, ttl=3600):
        self.dir = workdir
        ensure_oauth_installed()
        self.clients_file = os.path.join(workdir, "clients.json")
        with open(self.clients_file, "w") as f:
            json.dump(clients if clients is not None else OP_CLIENTS, f, indent=1)
        self.out_path = os.path.join(workdir, "oauth.stdout")
        self.err_path = os.path.join(workdir, "oauth.stderr")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        node = os.environ.get("OAUTH_NODE") or "node"
        self.proc = subprocess.Popen(
            [node, os.path.join(OAUTH_DIR, "server.js"), "--clients", self.clients_file,
             "--cert", certs["server.pem"], "--key", certs["server.key"], "--client-ca", auth_certs["client-ca.pem"],
             "--ttl", str(ttl)],
            stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, cwd=OAUTH_DIR)
        try:
            info = json.loads(_wait_file_line(self.out_path, "ready ", self.proc, 30, "oauth/server.js"))
        except Exception:
            self.stop()
            raise RuntimeError("oauth/server.js did not start; stderr:\n%s" % _tail(self.err_path))
        self.http, self.https = info["http"], info["https"]

    def token_url(self, tls=False, variant=None, host="127.0.0.1"):
        """The token endpoint. variant adds a query (?v=...) that oidc-provider ignores, so that
        tests get token URLs of their own (the gateway keys its caches and its remembered
        client authentication method by URL)."""
        port = self.https if tls else self.http
        u = "%s://%s:%d/token" % ("https" if tls else "http", host, port)
        return u + ("?v=%s" % variant if variant else "")

    def stats(self):
        return call_json(self.http, "GET", "/__e2e/stats")

    def requests_of(self, client):
        return [r for r in self.stats()["requests"] if r["client"] == client]

    def tokens_of(self, client):
        return self.stats()["tokens"].get(client, [])

    def introspect(self, token):
        r = form_post(self.http, "/token/introspection", {"token": token},
                      [("Authorization", "Basic " + H.b64("e2e-introspector:" + OP_SECRETS["e2e-introspector"]))])
        assert r.status == 200, r
        return r.json()

    def stop(self):
        H.stop_process(self.proc, timeout=5)
        self.out.close()
        self.err.close()


# --------------------------------------------------------------------------- authmock

class AuthMock:
    """authmock.py in its own process; realm-scoped state over HTTP."""

    def __init__(self, workdir):
        self.port_file = os.path.join(workdir, "authmock.port")
        self.log_path = os.path.join(workdir, "authmock.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "authmock.py"), "--port-file", self.port_file],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                break
            time.sleep(0.05)
        if self.port is None or not H.wait_port(self.port, 10, self.proc):
            self.stop()
            raise RuntimeError("authmock.py did not start: %s" % _tail(self.log_path))

    def url(self, realm, kind, rest=""):
        """http URL of a realm's endpoint: kind is token, csrf or api."""
        return "http://127.0.0.1:%d/%s/%s%s" % (self.port, realm, kind, rest)

    def configure(self, realm, **cfg):
        return call_json(self.port, "POST", "/__admin/%s/config" % realm, cfg)

    def state(self, realm):
        return call_json(self.port, "GET", "/__admin/%s" % realm)

    def reset(self, realm):
        return call_json(self.port, "POST", "/__admin/%s/reset" % realm, {})

    def revoke(self, realm, tokens=True, csrf=True):
        return call_json(self.port, "POST", "/__admin/%s/revoke" % realm, {"tokens": tokens, "csrf": csrf})

    def counts(self, realm):
        return self.state(realm)["counts"]

    def stop(self):
        H.stop_process(self.proc, timeout=5)
        self.log.close()


# --------------------------------------------------------------------------- nginx with mTLS

class MtlsNginx:
    """nginx (master + 1 worker): `mtls` requires a client certificate from client-ca
    (ssl_verify_client on): /mtls/... answers "mtls ok verify=.. dn=.. uri=..", /mtls-once/...
    the same but closes every connection after one request, anything else is
    proxied to AuthMock with X-Client-DN/X-Client-Verify; `expired` serves a certificate from the
    main test CA that expired in 2020."""

    def __init__(self, workdir, certs, auth_certs, mock_port):
        self.dir = workdir
        self.mtls, self.expired = H.free_ports(2)
        conf = H.nginx_conf_head(workdir, "info", 1024, os.path.join(workdir, "access.log")) + """
  default_type text/plain;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:%(mtls)d ssl;
    server_name localhost;
    ssl_certificate %(crt)s;
    ssl_certificate_key %(key)s;
    ssl_client_certificate %(cca)s;
    ssl_verify_client on;
    ssl_verify_depth 2;
    client_max_body_size 0;
    location /mtls/ { return 200 "mtls ok verify=$ssl_client_verify dn=$ssl_client_s_dn uri=$request_uri\\n"; }
    location /mtls-once/ {
      keepalive_requests 1;
      return 200 "mtls once verify=$ssl_client_verify dn=$ssl_client_s_dn reused=$ssl_session_reused\\n";
    }
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Client-DN $ssl_client_s_dn;
      proxy_set_header X-Client-Verify $ssl_client_verify;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_pass http://127.0.0.1:%(mock)d;
    }
  }
  server {
    listen 127.0.0.1:%(expired)d ssl;
    server_name localhost;
    ssl_certificate %(ecrt)s;
    ssl_certificate_key %(ekey)s;
    location / { return 200 "expired server ok $request_uri\\n"; }
  }
}
""" % dict(d=workdir, mtls=self.mtls, expired=self.expired, crt=certs["server.pem"],
           key=certs["server.key"], cca=auth_certs["client-ca.pem"], ecrt=auth_certs["server-expired.pem"],
           ekey=auth_certs["server-expired.key"], mock=mock_port)
        self.conf = os.path.join(workdir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(workdir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen([H.NGINX_BIN, "-c", self.conf, "-p", workdir], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for p in (self.mtls, self.expired):
            if not H.wait_port(p, 10, self.proc):
                self.stop()
                raise RuntimeError("mTLS nginx did not start: %s%s" % (
                    _tail(os.path.join(workdir, "error.log")), _tail(os.path.join(workdir, "nginx.stderr"))))

    def url(self, path, host="localhost"):
        return "https://%s:%d%s" % (host, self.mtls, path)

    def expired_url(self, path, host="localhost"):
        return "https://%s:%d%s" % (host, self.expired, path)

    def stop(self):
        H.stop_process(self.proc, sig=signal.SIGQUIT, timeout=10)
        self.log.close()


# --------------------------------------------------------------------------- manifests

def creds(type_, secret_name, auth_url=None, csrf_url=None):
    """An entry's credentials object (csrfInfo sits inside credentials)."""
    c = {"type": type_, "secretName": secret_name}
    if auth_url is not None:
        c["authenticationUrl"] = auth_url
    if csrf_url is not None:
        c["csrfInfo"] = {"tokenEndpointURL": csrf_url}
    return c


def oauth_secret(name, client_id, client_secret, method=None, headers=None, query=None):
    sd = {"clientId": client_id, "clientSecret": client_secret}
    if method is not None:
        sd["tokenEndpointAuthMethod"] = method
    if headers is not None:
        sd["headers"] = json.dumps(headers)
    if query is not None:
        sd["queryParameters"] = json.dumps(query)
    return H.secret(name, string_data=sd)


def cert_secret(name, crt, key, client_id=None, client_secret=None, headers=None, query=None):
    """CertificateGen (crt, key) or, with client_id, OAuthWithCert. PEM goes base64 in data,
    as in Kyma's Secrets."""
    d = {"crt": crt, "key": key}
    if client_id is not None:
        d["clientId"] = client_id
    if client_secret is not None:
        d["clientSecret"] = client_secret
    if headers is not None:
        d["headers"] = json.dumps(headers)
    if query is not None:
        d["queryParameters"] = json.dumps(query)
    return H.secret(name, data=d)


def basic_secret(name, user, password):
    return H.secret(name, string_data={"username": user, "password": password})


# --------------------------------------------------------------------------- a gateway per module

class AuthGateway:
    """A gateway for one test module: apps in apps.yaml, Secrets in secrets.yaml (so a test can
    rotate Secrets by rewriting that file), SSL_CERT_FILE = the main test CA."""

    def __init__(self, workdir, certs, apps, secrets, flags=None, workers=2):
        self.dir = workdir
        self.cfg = os.path.join(workdir, "config")
        os.makedirs(self.cfg, exist_ok=True)
        self.apps = list(apps)
        self.secrets = list(secrets)
        H.write_yaml_docs(os.path.join(self.cfg, "apps.yaml"), self.apps)
        self.write_secrets()
        self.gw = H.Gateway(self.cfg, os.path.join(workdir, "appgw.stderr"), flags=flags,
                            env={"SSL_CERT_FILE": certs["ca.pem"]}, workers=workers)

    def write_secrets(self):
        H.write_yaml_docs(os.path.join(self.cfg, "secrets.yaml"), self.secrets)

    def replace_secret(self, new):
        name = new["metadata"]["name"]
        self.secrets = [s for s in self.secrets if s["metadata"]["name"] != name] + [new]
        self.write_secrets()

    def __getattr__(self, k):  # proxy, compass, admin, log_text, ...
        return getattr(self.gw, k)

    def close(self):
        rc = self.gw.stop()
        reports = self.gw.sanitizer_reports()
        assert not reports, "sanitizer reports in gateway stderr:\n" + "\n".join(reports[:20])
        assert rc == 0, "gateway exited with %r on SIGTERM; stderr tail:\n%s" % (rc, self.gw.log_tail())


@contextlib.contextmanager
def auth_gateway(tmp_path_factory, name, certs, apps, secrets, flags=None, workers=2):
    g = AuthGateway(str(tmp_path_factory.mktemp(name)), certs, apps, secrets, flags=flags, workers=workers)
    try:
        yield g
    finally:
        g.close()


# --------------------------------------------------------------------------- assertions

def bearer_of(doc):
    """The bearer token an echo (upstream.py / authmock api) saw."""
    v = H.hvals(doc["headers"], "Authorization")
    assert len(v) == 1 and v[0].startswith("Bearer "), doc["headers"]
    return v[0][len("Bearer "):]


def cookies_of(doc):
    """Cookies an echo saw, merged over all Cookie headers: name → [values]."""
    out = {}
    for v in H.hvals(doc["headers"], "Cookie"):
        for part in v.split(";"):
            part = part.strip()
            if part:
                k, _, val = part.partition("=")
                out.setdefault(k.strip(), []).append(val.strip())
    return out


def api_calls(app):
    """call() and ok() for the APIs of Application `app` through a gateway's proxy port (or
    `port`): call returns the response, ok asserts 200 and returns its JSON body."""
    def call(gw, svc, path="/x", headers=(), method="GET", body=None, port=None):
        return H.http(port or gw.proxy, method, "/%s/%s%s" % (app, svc, path), list(headers), body)

    def ok(gw, svc, path="/x", headers=(), **kw):
        r = call(gw, svc, path, headers, **kw)
        assert r.status == 200, r
        return r.json()
    return call, ok


def check_no_secrets(text, values):
    leaks = []
    for ln in text.splitlines():
        for s in values:
            if s and s in ln:
                leaks.append((s, ln[:400]))
    assert not leaks, "secrets in gateway stderr:\n" + "\n".join("%s in: %s" % x for x in leaks[:20])


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0
