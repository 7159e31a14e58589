#!/usr/bin/env python3
"""Bespoke OAuth token endpoint, CSRF token endpoint and protected upstream for the appgw
end-to-end tests (stdlib only; request handling reuses upstream.py's Handler).

Run as a script: ``authmock.py --port-file FILE`` binds 127.0.0.1:0 and writes the chosen
port to FILE once it is listening.  Keep-alive HTTP/1.1, one thread per connection.

Everything lives in a *realm* (any name, created on first use), so tests that share one
authmock process do not see each other's state:

  POST /REALM/token[/...]    OAuth 2.0 token endpoint (client_credentials); records each request
  ANY  /REALM/csrf[/...]     CSRF token endpoint: with "X-CSRF-Token: fetch" issues a token and
                             a session cookie (Set-Cookie) bound to the caller's identity
  ANY  /REALM/api[/...]      protected upstream: records the request (headers, body hash and
                             bytes), optionally requires a valid bearer token (401) and a
                             valid CSRF token + session cookie (403), then echoes like
                             upstream.py's echo (JSON: method, target, path, query, headers,
                             body_len, body_sha256) plus "realm" and "bearer_client"

  GET  /__admin/REALM            the realm's config and records (JSON, see Realm.snapshot)
  POST /__admin/REALM/config     JSON object merged into the realm's config
  POST /__admin/REALM/reset      forget records, tokens and sessions (config kept)
  POST /__admin/REALM/revoke     {"tokens": bool, "csrf": bool}: invalidate issued access
                                 tokens / CSRF sessions (the next API call gets 401 / 403)

Realm config (defaults in DEFAULTS):
  clients         null (any client id/secret accepted) or {"id": "secret"}
  auth_methods    accepted client authentication: "both" (Basic header + client_secret in the
                  form), "basic", "post", "tls" (no secret, client cert DN from a TLS front's
                  X-Client-DN header), "none". Refused "both" → 400 invalid_request; any other
                  refused method → 401 invalid_client (like strict servers)
  tls_dn          with "tls": the required X-Client-DN value (null: any non-empty)
  token_status    answer this status instead of a token (non-200: body token_error_body)
  token_body      "ok" | "badjson" (200, not JSON) | "noaccess" (200, JSON without
                  access_token) | "empty" (200, empty body)
  token_delay_ms  wait before answering (capped at 30 s)
  expires_in      seconds in the answer (null: member left out); the API enforces it
  api_auth        "none" | "bearer" (a valid, unexpired token issued by this realm)
  expect_authorization   null, or the exact Authorization value the API and the CSRF
                  endpoint require (401 otherwise) - for Basic
  api_csrf        true: the API requires X-CSRF-Token == the token of the session named by
                  the SAP_SESSIONID_E2E cookie, issued to the same identity (403 otherwise)
  csrf_status     status of the CSRF endpoint (non-200: no token)
  csrf_send_token false: 200 but no X-CSRF-Token header
  csrf_bind_identity   false: any identity may use any session
  csrf_delay_ms   wait before answering the CSRF endpoint
  fail_next       the next N API requests answer fail_status whatever they carry
  fail_status     401
  fail_early      true: such a forced answer is sent before reading the request body
                  (lingering close)

Identity (for CSRF sessions): the X-Client-DN header set by a TLS front (nginx), plus the
client id of a bearer token issued by any realm, or else the raw Authorization value.
"""
import base64
import hashlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, unquote_plus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import upstream  # noqa: E402

SESSION_COOKIE = "SAP_SESSIONID_E2E"
CONTEXT_COOKIE = "sap-usercontext"
CONTEXT_VALUE = "sap-client=100"
MAX_DELAY_MS = 30000
KEEP_BODY = 256 << 10  # bodies up to this size are kept (base64) in the API records

DEFAULTS = {
    "clients": None,
    "auth_methods": ["both", "basic", "post", "tls", "none"],
    "tls_dn": None,
    "token_status": 200,
    "token_error_body": '{"error":"server_error","error_description":"forced by the test"}',
    "token_body": "ok",
    "token_delay_ms": 0,
    "expires_in": 3600,
    "api_auth": "none",
    "expect_authorization": None,
    "api_csrf": False,
    "csrf_status": 200,
    "csrf_send_token": True,
    "csrf_bind_identity": True,
    "csrf_delay_ms": 0,
    "fail_next": 0,
    "fail_status": 401,
    "fail_early": False,
}

LOCK = threading.Lock()
REALMS = {}
TOKENS = {}  # access token → {"realm", "client", "issued", "expires_at", "valid"} (all realms)


class Realm:
    def __init__(self, name):
        self.name = name
        self.config = json.loads(json.dumps(DEFAULTS))
        self.reset()

    def reset(self):
        self.token_requests = []
        self.csrf_requests = []
        self.api_requests = []
        self.tokens = []          # access tokens in issue order
        self.sessions = {}        # session id → {"token", "identity", "valid"}
        self.seq = 0

    def snapshot(self):
        now = time.time()
        return {
            "config": self.config,
            "token_requests": self.token_requests,
            "tokens": [dict(TOKENS[t], token=t, expired=TOKENS[t]["expires_at"] is not None
                            and now >= TOKENS[t]["expires_at"]) for t in self.tokens],
            "csrf_requests": self.csrf_requests,
            "sessions": [dict(v, session=k) for k, v in self.sessions.items()],
            "api_requests": self.api_requests,
            "counts": {"token": len(self.token_requests), "csrf": len(self.csrf_requests),
                       "api": len(self.api_requests), "issued": len(self.tokens)},
        }


def realm(name):
    with LOCK:
        r = REALMS.get(name)
        if r is None:
            r = REALMS[name] = Realm(name)
        return r


def token_valid(tok, realm_name=None):
    t = TOKENS.get(tok)
    if t is None or not t["valid"]:
        return False
    if realm_name is not None and t["realm"] != realm_name:
        return False
    return t["expires_at"] is None or time.time() < t["expires_at"]


def parse_cookies(values):
    out = {}
    for v in values:
        for part in v.split(";"):
            part = part.strip()
            if not part:
                continue
            k, _, val = part.partition("=")
            out.setdefault(k.strip(), []).append(val.strip())
    return out


class Handler(upstream.Handler):
    server_version = "e2e-authmock"

    # ---- helpers ----------------------------------------------------------------
    def header_pairs(self):
        return [[k, v] for k, v in self.headers.items()]

    def read_body(self):
        return b"".join(self.iter_body())

    def send_json(self, code, doc, headers=()):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_simple(code, body, headers=headers, ctype="application/json")

    def identity(self):
        parts = []
        dn = self.headers.get("X-Client-DN")
        if dn:
            parts.append("dn:" + dn)
        authz = self.headers.get("Authorization")
        if authz:
            kind, _, val = authz.partition(" ")
            t = TOKENS.get(val.strip()) if kind.lower() == "bearer" else None
            parts.append("client:" + t["client"] if t else "authz:" + authz)
        return " ".join(parts) or "anonymous"

    def bearer(self):
        authz = self.headers.get("Authorization", "")
        kind, _, val = authz.partition(" ")
        return val.strip() if kind.lower() == "bearer" else None

    def linger_close(self):
        """Closes after the answer without a reset: half-close, then drain what the peer
        still sends (bounded)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2.0)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if not self.connection.recv(1 << 16):
                    break
        except OSError:
            pass

    # ---- dispatch -----------------------------------------------------------------
    def dispatch(self):
        target = self.path
        path, sep, query = target.partition("?")
        self.raw_path = path
        self.raw_query = query if sep else None
        segs = [s for s in path.split("/") if s]
        try:
            if len(segs) >= 2 and segs[0] == "__admin":
                return self.h_admin(segs[1], segs[2:])
            if len(segs) >= 2 and segs[1] in ("token", "csrf", "api"):
                return getattr(self, "h_" + segs[1])(realm(segs[0]))
        except (ConnectionError, OSError):
            self.close_connection = True
            return
        self.consume_body()
        self.send_simple(404, b"authmock: no such endpoint\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch

    # ---- admin --------------------------------------------------------------------
    def h_admin(self, name, rest):
        body = self.read_body()
        r = realm(name)
        action = rest[0] if rest else ""
        code, doc = 200, None
        with LOCK:
            if self.command == "GET" and not action:
                doc = r.snapshot()
            elif self.command == "POST" and action == "config":
                upd = json.loads(body or b"{}")
                unknown = set(upd) - set(DEFAULTS)
                if unknown:
                    code, doc = 400, {"error": "unknown config keys %s" % sorted(unknown)}
                else:
                    r.config.update(upd)
                    doc = r.config
            elif self.command == "POST" and action == "reset":
                r.reset()
                doc = {"reset": name}
            elif self.command == "POST" and action == "revoke":
                what = json.loads(body or b"{}")
                if what.get("tokens", True):
                    for t in r.tokens:
                        TOKENS[t]["valid"] = False
                if what.get("csrf", True):
                    for s in r.sessions.values():
                        s["valid"] = False
                doc = {"revoked": name}
            else:
                code, doc = 404, {"error": "unknown admin action"}
            data = json.dumps(doc).encode()  # under the lock: the records keep growing
        self.send_json(code, data)

    # ---- token endpoint -----------------------------------------------------------
    def h_token(self, r):
        t0 = time.time()
        body = self.read_body()
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1"), keep_blank_values=True).items()}
        authz = self.headers.get("Authorization")
        basic_id = basic_secret = None
        if authz and authz.lower().startswith("basic "):
            try:
                dec = base64.b64decode(authz[6:].strip(), validate=True).decode()
                i, _, s = dec.partition(":")
                basic_id, basic_secret = unquote_plus(i), unquote_plus(s)
            except ValueError:
                basic_id = basic_secret = None
        has_post = "client_secret" in form
        dn = self.headers.get("X-Client-DN") or None
        if basic_id is not None and has_post:
            method = "both"
        elif basic_id is not None:
            method = "basic"
        elif has_post:
            method = "post"
        elif dn:
            method = "tls"
        else:
            method = "none"
        rec = {
            "t": t0, "method": self.command, "auth": method, "client_id": basic_id if basic_id is not None
            else form.get("client_id"), "basic": None if basic_id is None else [basic_id, basic_secret],
            "authorization": authz, "form": form, "body": body.decode("latin-1"), "query": self.raw_query,
            "headers": self.header_pairs(), "content_type": self.headers.get("Content-Type"),
            "client_dn": dn, "status": None, "error": None, "token": None,
        }
        with LOCK:
            cfg = dict(r.config)
            r.token_requests.append(rec)
        delay = min(int(cfg["token_delay_ms"] or 0), MAX_DELAY_MS)
        if delay:
            time.sleep(delay / 1000.0)

        def refuse(code, error, desc):
            rec["status"], rec["error"] = code, error
            hdrs = [("WWW-Authenticate", 'Basic realm="authmock"')] if code == 401 and authz else []
            self.send_json(code, {"error": error, "error_description": desc}, hdrs)

        if cfg["token_status"] != 200:
            rec["status"] = cfg["token_status"]
            return self.send_json(cfg["token_status"], cfg["token_error_body"].encode())
        if self.command != "POST":
            return refuse(400, "invalid_request", "POST required")
        if method not in cfg["auth_methods"]:
            if method == "both":
                return refuse(400, "invalid_request", "client authentication must only be provided using one mechanism")
            return refuse(401, "invalid_client", "authentication method %s not allowed" % method)
        if method == "both" and form.get("client_id") not in (None, basic_id):
            return refuse(400, "invalid_request", "mismatch in body and authorization client ids")
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "grant_type must be client_credentials")
        client = rec["client_id"]
        clients = cfg["clients"]
        if method in ("basic", "post", "both"):
            secrets_given = [s for s in (basic_secret, form.get("client_secret")) if s is not None]
            if clients is not None and (client not in clients or any(s != clients[client] for s in secrets_given)):
                return refuse(401, "invalid_client", "client authentication failed")
        elif method == "tls":
            if cfg["tls_dn"] is not None and dn != cfg["tls_dn"]:
                return refuse(401, "invalid_client", "certificate subject does not match")
            if clients is not None and client not in clients:
                return refuse(401, "invalid_client", "client not found")
        else:
            return refuse(401, "invalid_client", "no client authentication")

        if cfg["token_body"] == "badjson":
            rec["status"] = 200
            return self.send_simple(200, b"{this is not json", ctype="application/json")
        if cfg["token_body"] == "empty":
            rec["status"] = 200
            return self.send_simple(200, b"", ctype="application/json")
        doc = {"token_type": "Bearer"}
        if cfg["token_body"] != "noaccess":
            with LOCK:
                r.seq += 1
                tok = "%s-AT-%d-%s" % (r.name, r.seq, secrets.token_hex(8))
                now = time.time()
                exp = cfg["expires_in"]
                TOKENS[tok] = {"realm": r.name, "client": client, "issued": now,
                               "expires_at": None if exp is None else now + float(exp), "valid": True}
                r.tokens.append(tok)
            doc["access_token"] = tok
            rec["token"] = tok
        if cfg["expires_in"] is not None:
            doc["expires_in"] = cfg["expires_in"]
        rec["status"] = 200
        self.send_json(200, doc, [("Cache-Control", "no-store")])

    # ---- CSRF endpoint ------------------------------------------------------------
    def h_csrf(self, r):
        self.consume_body()
        rec = {
            "t": time.time(), "method": self.command, "identity": self.identity(),
            "authorization": self.headers.get("Authorization"),
            "x_csrf_token": self.headers.get("X-CSRF-Token"), "accept": self.headers.get("Accept"),
            "cache_control": self.headers.get("Cache-Control"), "cookie": self.headers.get_all("Cookie") or [],
            "client_dn": self.headers.get("X-Client-DN"), "headers": self.header_pairs(),
            "query": self.raw_query, "status": None, "token": None, "session": None,
        }
        with LOCK:
            cfg = dict(r.config)
            r.csrf_requests.append(rec)
        delay = min(int(cfg["csrf_delay_ms"] or 0), MAX_DELAY_MS)
        if delay:
            time.sleep(delay / 1000.0)
        if cfg["csrf_status"] != 200:
            rec["status"] = cfg["csrf_status"]
            return self.send_simple(cfg["csrf_status"], b"csrf endpoint failure forced by the test")
        deny = self.auth_failure(cfg)
        if deny:
            rec["status"] = 401
            return self.send_simple(401, deny.encode(), [("WWW-Authenticate", 'Basic realm="authmock"')])
        headers = []
        if (rec["x_csrf_token"] or "").lower() == "fetch" and cfg["csrf_send_token"]:
            with LOCK:
                r.seq += 1
                tok = "%s-CSRF-%d-%s" % (r.name, r.seq, secrets.token_hex(8))
                sid = "%s-SESS-%d-%s" % (r.name, r.seq, secrets.token_hex(8))
                r.sessions[sid] = {"token": tok, "identity": rec["identity"], "valid": True}
            rec["token"], rec["session"] = tok, sid
            headers = [("x-csrf-token", tok),
                       ("Set-Cookie", "%s=%s; path=/; HttpOnly" % (SESSION_COOKIE, sid)),
                       ("Set-Cookie", "%s=%s; path=/; expires=Fri, 01 Jan 2100 00:00:00 GMT"
                        % (CONTEXT_COOKIE, CONTEXT_VALUE))]
        rec["status"] = 200
        self.send_simple(200, b"", headers)

    def auth_failure(self, cfg):
        """Why the request's credentials are refused (None when they are fine)."""
        want = cfg["expect_authorization"]
        if want is not None and self.headers.get("Authorization") != want:
            return "unexpected Authorization"
        if cfg["api_auth"] == "bearer":
            tok = self.bearer()
            if tok is None:
                return "bearer token required"
            if not token_valid(tok):
                return "bearer token invalid or expired"
        return None

    # ---- protected API ------------------------------------------------------------
    def h_api(self, r):
        with LOCK:
            cfg = dict(r.config)
            forced = cfg["fail_next"] > 0
            if forced:
                r.config["fail_next"] -= 1
        rec = {
            "t": time.time(), "method": self.command, "target": self.path, "path": self.raw_path,
            "query": self.raw_query, "headers": self.header_pairs(),
            "authorization": self.headers.get("Authorization"), "x_csrf_token": self.headers.get("X-CSRF-Token"),
            "cookie": self.headers.get_all("Cookie") or [], "client_dn": self.headers.get("X-Client-DN"),
            "identity": self.identity(), "body_len": None, "body_sha256": None, "body_b64": None,
            "status": None, "reason": None,
        }
        with LOCK:
            r.api_requests.append(rec)
        if forced and cfg["fail_early"]:
            rec["status"], rec["reason"] = cfg["fail_status"], "forced early"
            self.send_simple(cfg["fail_status"], b"forced %d before the body" % cfg["fail_status"],
                             [("Connection", "close")])
            return self.linger_close()
        h = hashlib.sha256()
        n = 0
        kept = []
        for d in self.iter_body():
            h.update(d)
            n += len(d)
            if n <= KEEP_BODY:
                kept.append(d)
        rec["body_len"], rec["body_sha256"] = n, h.hexdigest()
        if n <= KEEP_BODY:
            rec["body_b64"] = base64.b64encode(b"".join(kept)).decode()
        if forced:
            rec["status"], rec["reason"] = cfg["fail_status"], "forced"
            return self.send_simple(cfg["fail_status"], b"forced %d" % cfg["fail_status"])
        deny = self.auth_failure(cfg)
        if deny:
            rec["status"], rec["reason"] = 401, deny
            return self.send_simple(401, deny.encode(), [("WWW-Authenticate", 'Bearer error="invalid_token"')])
        if cfg["api_csrf"]:
            deny = self.csrf_failure(r, cfg)
            if deny:
                rec["status"], rec["reason"] = 403, deny
                return self.send_simple(403, b"CSRF token validation failed: " + deny.encode(),
                                        [("x-csrf-token", "Required")])
        tok = self.bearer()
        t = TOKENS.get(tok) if tok else None
        doc = {
            "realm": r.name, "method": self.command, "target": self.path, "path": self.raw_path,
            "query": self.raw_query, "headers": self.header_pairs(), "body_len": n,
            "body_sha256": rec["body_sha256"], "bearer_client": t["client"] if t else None,
        }
        rec["status"] = 200
        self.send_json(200, doc)

    def csrf_failure(self, r, cfg):
        tok = self.headers.get("X-CSRF-Token")
        if not tok:
            return "no X-CSRF-Token"
        sids = parse_cookies(self.headers.get_all("Cookie") or []).get(SESSION_COOKIE, [])
        if len(sids) != 1:
            return "%d %s cookies" % (len(sids), SESSION_COOKIE)
        with LOCK:
            s = r.sessions.get(sids[0])
        if s is None or not s["valid"]:
            return "unknown or expired session"
        if s["token"] != tok:
            return "token does not belong to the session"
        if cfg["csrf_bind_identity"] and s["identity"] != self.identity():
            return "session belongs to another identity"
        return None


class Server(upstream.Server):
    pass


if __name__ == "__main__":
    upstream.main(Handler, Server)
