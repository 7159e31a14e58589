"""Token life cycle (SPEC §6.2 caching, §6.8 retry): renewal on expiry, refresh ahead of expiry
without making requests wait, single flight across workers on a cold cache, the one retry after
401/403 with the same body, --retryBodyLimit, and Secret rotation in the manifest directory.

authmock's protected API refuses (401) any token past its expires_in, so a gateway that used an
expired token would show up as a 401 in its records."""
import hashlib
import os
import time

import pytest

import auth_helpers as A
import helpers as H

APP = "lc"
MOCK_ID, MOCK_SECRET = "lc-client", "lc-SECRET-oauth-8841"
BASIC_USER, BASIC_PASS = "lc-user", "lc-SECRET-basic-1203"
SMALL_LIMIT = 65536
DEFAULT_LIMIT = 1048576
REFRESH_DELAY_MS = 1000
REFRESH_EXPIRES = 5  # usable 3 s; the last 2 s of it are the refresh-ahead window


def realm(name):
    return "lc-" + name


def sha(b):
    return hashlib.sha256(b).hexdigest()


def _config(op, mock):
    e, svc = H.entry, H.service
    secrets = [A.oauth_secret("lc-oauth", MOCK_ID, MOCK_SECRET),
               A.basic_secret("lc-basic", BASIC_USER, BASIC_PASS),
               A.oauth_secret("lc-short", "gw-short", A.OP_SECRETS["gw-short"]),
               A.oauth_secret("lc-rotate", "gw-rot-a", A.OP_SECRETS["gw-rot-a"])]

    def oauth(display, name):
        return svc(display, [e(mock.url(realm(name), "api"),
                               creds=A.creds("OAuth", "lc-oauth", mock.url(realm(name), "token")))])

    services = [oauth(d, n) for d, n in (
        ("Refresh", "refresh"), ("Flight", "flight"), ("Retry", "retry"), ("Retry Twice", "retry2"),
        ("Retry 403", "retry403"), ("Early", "early"), ("Chunked", "chunked"), ("Limit", "limit"),
        ("Small Limit", "small"))]
    services += [
        svc("Basic No Retry", [e(mock.url(realm("basic"), "api"), creds=A.creds("Basic", "lc-basic"))]),
        svc("None No Retry", [e(mock.url(realm("none"), "api"))]),
        svc("Expiry", [e(mock.url(realm("expiry"), "api"),
                         creds=A.creds("OAuth", "lc-short", op.token_url(variant="lc-expiry")))]),
        svc("Rotate", [e(mock.url(realm("rotate"), "api"),
                         creds=A.creds("OAuth", "lc-rotate", op.token_url(variant="lc-rotate")))]),
    ]
    return [H.application(APP, services)], secrets


@pytest.fixture(scope="module")
def mock(authmock):
    for name in ("refresh", "flight", "retry", "retry2", "retry403", "early", "chunked", "limit", "small"):
        authmock.configure(realm(name), api_auth="bearer")
    authmock.configure(realm("refresh"), token_delay_ms=REFRESH_DELAY_MS, expires_in=REFRESH_EXPIRES)
    authmock.configure(realm("flight"), token_delay_ms=1000)
    return authmock


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, oauth_server, mock):
    apps, secrets = _config(oauth_server, mock)
    with A.auth_gateway(tmp_path_factory, "gw-lifecycle", certs, apps, secrets) as g:
        yield g


@pytest.fixture(scope="module")
def gw_small(tmp_path_factory, certs, oauth_server, mock):
    apps, secrets = _config(oauth_server, mock)
    with A.auth_gateway(tmp_path_factory, "gw-lifecycle-small", certs, apps, secrets,
                        flags={"retryBodyLimit": SMALL_LIMIT}) as g:
        yield g


def call(g, svc, path="/x", headers=(), method="GET", body=None, timeout=15.0):
    return H.http(g.proxy, method, "/%s/%s%s" % (APP, svc, path), list(headers), body, timeout=timeout)


def ok(g, svc, path="/x", headers=(), **kw):
    r = call(g, svc, path, headers, **kw)
    assert r.status == 200, r
    return r.json()


def api_log(mock, name):
    return [(a["status"], a["reason"]) for a in mock.state(realm(name))["api_requests"]]


# --------------------------------------------------------------------------- expiry and renewal

def test_token_renewed_after_expiry(gw, oauth_server):
    """oidc-provider client gw-short issues tokens for SHORT_TTL seconds; once the server says
    the first one is inactive, the next request carries a new, active token."""
    t1 = A.bearer_of(ok(gw, "expiry"))
    assert oauth_server.introspect(t1)["active"] is True
    expired, took = H.wait_for(lambda: not oauth_server.introspect(t1)["active"], A.SHORT_TTL + 3, interval=0.2)
    assert expired, "token still active after %.1fs" % took
    t2 = A.bearer_of(ok(gw, "expiry"))
    assert t2 != t1
    assert t2 in oauth_server.tokens_of("gw-short")
    assert oauth_server.introspect(t2)["active"] is True


def test_refresh_ahead_keeps_requests_from_waiting(gw, mock):
    """Token endpoint takes 1 s, tokens live REFRESH_EXPIRES s: steady requests over several
    lifetimes never wait for a fetch after the first, never carry an expired token, and the
    fetches do not overlap (one in flight at a time across the workers)."""
    lat = []
    t_end = time.monotonic() + 3 * (REFRESH_EXPIRES - 2) + 1.5
    for i in range(300):
        if time.monotonic() >= t_end:
            break
        r, took = A.timed(call, gw, "refresh", "/r%d" % i)
        assert r.status == 200, (i, r)
        lat.append(took)
        time.sleep(0.1)
    assert lat[0] >= REFRESH_DELAY_MS / 1000.0 * 0.9, "first request did not wait for the token: %.2fs" % lat[0]
    slow = [(i, round(t, 3)) for i, t in enumerate(lat) if i > 0 and t > 0.5 * H.SLOW]
    assert not slow, "requests that waited (index, seconds): %s" % slow
    st = mock.state(realm("refresh"))
    starts = [t["t"] for t in st["token_requests"]]
    assert 3 <= len(starts) <= 10, "token fetches: %d over %d requests" % (len(starts), len(lat))
    gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
    assert all(g >= REFRESH_DELAY_MS / 1000.0 * 0.9 for g in gaps), "overlapping token fetches: %s" % gaps
    bad = [(a["status"], a["reason"]) for a in st["api_requests"] if a["status"] != 200]
    assert not bad, bad
    used = {a["authorization"] for a in st["api_requests"]}
    assert len(used) >= 3, "only %d distinct tokens used" % len(used)


def test_single_flight_on_cold_cache(gw, mock):
    """200 concurrent requests (spread over both workers) on a cold cache while the token
    endpoint takes 1 s: exactly one token request."""
    n = 200
    conns = []
    try:
        for i in range(n):
            c = H.RawConn(gw.proxy, timeout=20 * H.SLOW)
            conns.append(c)
            c.send(H.build_request("GET", "/%s/flight/f%d" % (APP, i), host="127.0.0.1:%d" % gw.proxy))
        statuses, toks = [], set()
        for c in conns:
            r = c.read_response()
            statuses.append(r.status)
            if r.status == 200:
                toks.add(A.bearer_of(r.json()))
    finally:
        for c in conns:
            c.close()
    assert statuses == [200] * n, {s: statuses.count(s) for s in set(statuses)}
    st = mock.state(realm("flight"))
    assert st["counts"]["token"] == 1, "%d token requests" % st["counts"]["token"]
    assert len(toks) == 1 and st["counts"]["api"] == n


# --------------------------------------------------------------------------- retry after 401/403

def test_401_refetches_once_and_retries_with_the_same_body(gw, mock):
    ok(gw, "retry")
    mock.revoke(realm("retry"), tokens=True, csrf=False)
    body = os.urandom(10000)
    doc = ok(gw, "retry", "/p?x=1", [("X-Trace", "tr-7"), ("Content-Type", "application/octet-stream")],
             method="POST", body=body)
    st = mock.state(realm("retry"))
    assert st["counts"]["token"] == 2, st["token_requests"]
    api = st["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200], api_log(mock, "retry")
    first, second = api[1], api[2]
    t1, t2 = st["tokens"][0]["token"], st["tokens"][1]["token"]
    assert first["authorization"] == "Bearer " + t1 and second["authorization"] == "Bearer " + t2
    for a in (first, second):
        assert a["method"] == "POST" and a["target"] == "/%s/api/p?x=1" % realm("retry"), a
        assert a["body_len"] == len(body) and a["body_sha256"] == sha(body), a
        assert H.hvals(a["headers"], "X-Trace") == ["tr-7"], a["headers"]
        assert H.hvals(a["headers"], "Content-Type") == ["application/octet-stream"], a["headers"]
    assert first["body_b64"] == second["body_b64"]
    assert doc["body_sha256"] == sha(body)


def test_second_401_is_returned(gw, mock):
    ok(gw, "retry-twice")
    before = mock.counts(realm("retry2"))["token"]
    mock.configure(realm("retry2"), fail_next=2)
    r = call(gw, "retry-twice", method="PUT", body=b"twice")
    assert r.status == 401, r
    assert r.body == b"forced 401", r
    assert [s for s, _ in api_log(mock, "retry2")] == [200, 401, 401]
    assert mock.counts(realm("retry2"))["token"] == before + 1


def test_403_also_refetches_and_retries(gw, mock):
    ok(gw, "retry-403")
    mock.configure(realm("retry403"), fail_next=1, fail_status=403)
    ok(gw, "retry-403", method="POST", body=b"after 403")
    assert [s for s, _ in api_log(mock, "retry403")] == [200, 403, 200]
    assert mock.counts(realm("retry403"))["token"] == 2


@pytest.mark.parametrize("svc,name", [("basic-no-retry", "basic"), ("none-no-retry", "none")])
def test_no_retry_without_tokens(gw, mock, svc, name):
    mock.configure(realm(name), fail_next=1)
    r = call(gw, svc, method="POST", body=b"no retry")
    assert r.status == 401, r
    assert [s for s, _ in api_log(mock, name)] == [401]


def test_retry_after_early_401_replays_the_whole_body(gw, mock):
    """The upstream answers 401 before reading the body and closes; the gateway still has the
    whole body (below the limit) for the second try."""
    ok(gw, "early")
    mock.configure(realm("early"), fail_next=1, fail_early=True)
    body = os.urandom(256 * 1024)
    r, took = A.timed(call, gw, "early", method="POST", body=body)
    assert r.status == 200, r
    api = mock.state(realm("early"))["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200], [(a["status"], a["reason"]) for a in api]
    assert api[2]["body_len"] == len(body) and api[2]["body_sha256"] == sha(body)
    assert took < 10 * H.SLOW


def test_chunked_body_below_limit_is_retried(gw, mock):
    ok(gw, "chunked")
    mock.configure(realm("chunked"), fail_next=1)
    parts = [os.urandom(1000), os.urandom(2000), os.urandom(500)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    r = call(gw, "chunked", method="POST", body=wire, headers=[("Transfer-Encoding", "chunked")])
    assert r.status == 200, r
    api = mock.state(realm("chunked"))["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200]
    whole = b"".join(parts)
    assert all(a["body_len"] == len(whole) and a["body_sha256"] == sha(whole) for a in api[1:]), api[1:]


# --------------------------------------------------------------------------- --retryBodyLimit

def test_default_retry_body_limit_boundary(gw, mock):
    """Default --retryBodyLimit is 1048576: a body of exactly that size is retried, one byte
    more is not (the caller gets the 401) - and nothing hangs."""
    ok(gw, "limit")
    body = os.urandom(DEFAULT_LIMIT)
    mock.configure(realm("limit"), fail_next=1)
    r, took = A.timed(call, gw, "limit", method="POST", body=body, timeout=30)
    assert r.status == 200, r
    mock.configure(realm("limit"), fail_next=1)
    r, took2 = A.timed(call, gw, "limit", method="POST", body=body + b"x", timeout=30)
    assert r.status == 401, r
    api = mock.state(realm("limit"))["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200, 401], [(a["status"], a["reason"]) for a in api]
    assert api[1]["body_sha256"] == api[2]["body_sha256"] == sha(body)
    assert api[3]["body_len"] == DEFAULT_LIMIT + 1
    assert took < 10 * H.SLOW and took2 < 10 * H.SLOW


def test_small_retry_body_limit(gw_small, mock):
    g = gw_small
    ok(g, "small-limit")
    below = os.urandom(SMALL_LIMIT - 1000)
    mock.configure(realm("small"), fail_next=1)
    r = call(g, "small-limit", method="POST", body=below)
    assert r.status == 200, r
    above = os.urandom(SMALL_LIMIT * 3)
    mock.configure(realm("small"), fail_next=1)
    r, took = A.timed(call, g, "small-limit", method="POST", body=above)
    assert r.status == 401, r
    assert r.body == b"forced 401", r
    assert took < 5 * H.SLOW, "took %.1fs" % took
    # the same above the limit with a chunked body
    wire = b"".join(b"%x\r\n%s\r\n" % (8192, above[i:i + 8192]) for i in range(0, len(above), 8192)) + b"0\r\n\r\n"
    mock.configure(realm("small"), fail_next=1)
    r, took = A.timed(call, g, "small-limit", method="POST", body=wire, headers=[("Transfer-Encoding", "chunked")])
    assert r.status == 401, r
    assert took < 5 * H.SLOW, "took %.1fs" % took
    api = mock.state(realm("small"))["api_requests"]
    assert [a["status"] for a in api] == [200, 401, 200, 401, 401], [(a["status"], a["reason"]) for a in api]
    assert api[1]["body_sha256"] == api[2]["body_sha256"] == sha(below)
    assert api[3]["body_len"] == api[4]["body_len"] == len(above)
    # the gateway still works normally afterwards
    ok(g, "small-limit", "/after")


# --------------------------------------------------------------------------- Secret rotation

def test_secret_rotation_takes_effect_on_next_request(gw, oauth_server):
    t_a = A.bearer_of(ok(gw, "rotate"))
    assert t_a in oauth_server.tokens_of("gw-rot-a")
    gw.replace_secret(A.oauth_secret("lc-rotate", "gw-rot-b", A.OP_SECRETS["gw-rot-b"]))
    seen = []

    def rotated():
        tok = A.bearer_of(ok(gw, "rotate"))
        seen.append(tok)
        return tok in oauth_server.tokens_of("gw-rot-b")
    done, took = H.wait_for(rotated, 5 * H.SLOW, interval=0.1)
    assert done, "rotated Secret not used within %.1fs" % took
    # before the switch only the old client's token, after it never again
    assert all(t == t_a for t in seen[:-1]), seen
    for _ in range(3):
        assert A.bearer_of(ok(gw, "rotate")) in oauth_server.tokens_of("gw-rot-b")
    # a wrong secret for the same client: the cached token of the old Secret is not used
    gw.replace_secret(A.oauth_secret("lc-rotate", "gw-rot-b", "rotated-WRONG-SECRET-77"))
    done, took = H.wait_for(lambda: call(gw, "rotate").status == 502, 5 * H.SLOW, interval=0.1)
    assert done, "Secret with a wrong client secret still served after %.1fs" % took
    H.assert_gw_error(call(gw, "rotate"), 502, contains="token")


# --------------------------------------------------------------------------- logs (§9)

def test_zz_no_secrets_in_log(gw, gw_small, oauth_server, mock):
    values = [MOCK_SECRET, BASIC_PASS, "rotated-WRONG-SECRET-77", A.OP_SECRETS["gw-rot-a"],
              A.OP_SECRETS["gw-rot-b"], A.OP_SECRETS["gw-short"]]
    for name in ("refresh", "flight", "retry", "retry2", "retry403", "early", "chunked", "limit", "small"):
        values += [t["token"] for t in mock.state(realm(name))["tokens"]]
    for toks in oauth_server.stats()["tokens"].values():
        values += toks
    for g in (gw, gw_small):
        text = g.log_text()
        assert text.strip()
        A.check_no_secrets(text, values)
