#!/usr/bin/env bash
# bench/run.sh: appgw vs nginx vs HAProxy as reverse proxies on 127.0.0.1, driven by wrk.
#
# One origin (nginx, 1 worker) answers every request with a short body. Each proxy is set up
# as the equivalent reverse proxy to it (upstream keep-alive pool, X-Forwarded-For, the same
# worker/thread count) and is started afresh for every (proxy, scenario, workers) run:
# start, check, warm up, sample /proc, wrk, sample /proc, stop.
# See bench/README.md for how to read the output.
#
# Environment (defaults in brackets):
#   DURATION [10]       seconds of each measured wrk run
#   WARMUP [2]          seconds of wrk warm-up before each measured run (not counted)
#   CONNECTIONS ["64"]  wrk connection counts to measure, e.g. "32 1000" (the open-files limit
#                       is raised for them);  THREADS [2]  wrk threads
#   WORKERS ["1 2"]     proxy worker/thread counts to measure
#   SCENARIOS ["get post"]   get = small GET, post = POST of POST_BYTES [65536] bytes,
#                       dl1m, dl16m = GET of a 1 MiB / 16 MiB static file (origin: sendfile),
#                       oauth = small GET with an OAuth bearer token (appgw: OAuth credentials,
#                       token cached; nginx/HAProxy: a static Authorization header),
#                       https = small GET to the origin over HTTPS (kept-alive, resumed TLS),
#                       certgen = https with a client certificate (appgw: CertificateGen),
#                       https-h2 = https to an origin server with http2 on (appgw multiplexes
#                       HTTP/2 streams on one connection per worker; nginx/HAProxy: as https)
#   PROXIES ["appgw nginx haproxy"]  also: haproxy-splice (HAProxy with option splice-auto),
#                       haproxy-splice-response (option splice-response: always splices),
#                       appgw-log (--logLevel=info: access log on), appgw-nolog (--logLevel=info
#                       --accessLog=false), appgw-egress (appgw through squid: HTTPS_PROXY and
#                       HTTP_PROXY set, the origin named appgw-bench-origin.invalid), and
#                       appgw-NAME for any APPGW_VARIANT_NAME="extra appgw flags"
#   APPGW_FLAGS [""]    extra flags for every appgw run (after the defaults, so they win)
#   APPGW_BIN [/work/main/build/appgw]  (or $repo/build/appgw)
#   BASE_PORT [27100]   ports used: BASE+80/81 origin (+status), +10 nginx, +20 haproxy,
#                       +30/31/32 appgw proxy/compass/external API; with https/certgen also
#                       +82/+83 origin HTTPS (+83 requires a client certificate), with
#                       https-h2 +86 origin HTTPS with http2, with
#                       oauth +84 the OAuth token endpoint, with appgw-egress +85 squid
#   RESULTS_DIR [bench/results]   where the .jsonl, .txt (and .png chart) of the run are kept
#   RUN_NAME [""]       suffix of the result file names (bench/egress.sh: "egress")
#   RATE [0]            > 0: fixed load of about RATE req/s (wrk.lua delays each request by
#                       CONNECTIONS*1000/RATE ms), so CPU/req compares proxies at one load
#   ROUNDS [1]          repeat the whole matrix; the table shows each figure's median
#   WRK_TIMEOUT [""]    wrk --timeout in seconds; empty: 10, dl1m 30, dl16m 120
#   CHART [1]           0: no PNG chart (it needs gnuplot: the gnuplot-nox package)
#   HAPROXY_GLOBAL_EXTRA, HAPROXY_DEFAULTS_EXTRA, NGINX_HTTP_EXTRA  extra config lines
#                       (tuning experiments; the defaults are the configuration documented)
#   PYTHON [/usr/bin/python3]  interpreter of report.py (stdlib only)
#   KEEP_TMP [0]        1: keep the temporary directory (configs, logs, wrk outputs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
APPGW_FLAGS=${APPGW_FLAGS:-}
RUN_NAME=${RUN_NAME:-}
WRK_TIMEOUT=${WRK_TIMEOUT:-}
CHART=${CHART:-1}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-"1 2"}
SCENARIOS=${SCENARIOS:-"get post"}
PROXIES=${PROXIES:-"appgw nginx haproxy"}
POST_BYTES=${POST_BYTES:-65536}
APPGW_BIN=${APPGW_BIN:-$REPO/build/appgw}
BASE_PORT=${BASE_PORT:-27100}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
KEEP_TMP=${KEEP_TMP:-0}
ROUNDS=${ROUNDS:-1}
RATE=${RATE:-0}

ORIGIN_PORT=$((BASE_PORT + 80))
ORIGIN_STATUS_PORT=$((BASE_PORT + 81))
NGINX_PORT=$((BASE_PORT + 10))
HAPROXY_PORT=$((BASE_PORT + 20))
APPGW_PORT=$((BASE_PORT + 30))
APPGW_COMPASS_PORT=$((BASE_PORT + 31))
APPGW_API_PORT=$((BASE_PORT + 32))
ORIGIN_TLS_PORT=$((BASE_PORT + 82))
ORIGIN_MTLS_PORT=$((BASE_PORT + 83))
TOKEN_PORT=$((BASE_PORT + 84))
SQUID_PORT=$((BASE_PORT + 85))
ORIGIN_H2_PORT=$((BASE_PORT + 86))
SQUID_BIN=${SQUID_BIN:-/usr/sbin/squid}
# appgw-egress: the origin's name; only squid's hosts_file resolves it (to 127.0.0.1), so a
# request that reaches the origin under this name went through squid
EGRESS_NAME=appgw-bench-origin.invalid
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
HAPROXY_BIN=${HAPROXY_BIN:-/usr/sbin/haproxy}
# the system python: a pyenv shim costs ~0.5 s per call on a loaded machine
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || true)}
REPORT="$PYTHON $HERE/report.py"
export CLK_TCK=$(getconf CLK_TCK)
STUB_URL="http://127.0.0.1:$((BASE_PORT + 81))/"

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh" # log, die, process handling (STARTED, stop_pid), make_tmp, wait_http

# ---- tools ----
missing=()
command -v wrk >/dev/null 2>&1 || missing+=("wrk")
[[ -x $NGINX_BIN ]] || missing+=("nginx ($NGINX_BIN)")
[[ -x $HAPROXY_BIN ]] || missing+=("haproxy ($HAPROXY_BIN)")
command -v curl >/dev/null 2>&1 || missing+=("curl")
[[ -n $PYTHON ]] || missing+=("python3")
NEED_TLS=0
NEED_TOKEN=0
NEED_STATIC=0
NEED_H2=0
for s in $SCENARIOS; do
  if [[ $s == https || $s == certgen || $s == https-h2 ]]; then NEED_TLS=1; fi
  if [[ $s == https-h2 ]]; then NEED_H2=1; fi
  if [[ $s == oauth ]]; then NEED_TOKEN=1; fi
  if [[ $s == dl1m || $s == dl16m ]]; then NEED_STATIC=1; fi
done
NEED_SQUID=0
[[ " $PROXIES " == *" appgw-egress "* ]] && NEED_SQUID=1
if ((NEED_TLS)); then command -v openssl >/dev/null 2>&1 || missing+=("openssl"); fi
if ((NEED_SQUID)); then [[ -x $SQUID_BIN ]] || missing+=("squid ($SQUID_BIN)"); fi
if ((${#missing[@]})); then
  echo "bench/run.sh: missing tool(s): ${missing[*]}" >&2
  echo "install them with: bash scripts/setup.sh  (or: apt-get install -y wrk nginx-light haproxy curl python3 openssl squid)" >&2
  exit 1
fi
for s in $SCENARIOS; do
  case $s in get | post | dl1m | dl16m | oauth | https | certgen | https-h2) ;;
  *) die "unknown scenario '$s' (get, post, dl1m, dl16m, oauth, https, certgen, https-h2)" ;; esac
done

# proxy_kind LABEL: the program a PROXIES entry runs (appgw, nginx or haproxy); a label may be a
# variant of it (appgw-nolog, haproxy-splice, ...) measured as a proxy of its own
proxy_kind() {
  case $1 in
  appgw | appgw-log | appgw-nolog | appgw-egress) echo appgw ;;
  appgw-*) local v="APPGW_VARIANT_${1#appgw-}"
    [[ ${1#appgw-} =~ ^[A-Za-z0-9_]+$ && -n ${!v:-} ]] && echo appgw ;;
  nginx) echo nginx ;;
  haproxy | haproxy-splice | haproxy-splice-response) echo haproxy ;;
  esac
  return 0
}
# appgw_variant_flags LABEL: the extra appgw flags of a label (after the defaults and APPGW_FLAGS)
appgw_variant_flags() {
  case $1 in
  appgw | appgw-egress) ;;
  appgw-log) echo "--logLevel=info" ;;
  appgw-nolog) echo "--logLevel=info --accessLog=false" ;;
  appgw-*) local v="APPGW_VARIANT_${1#appgw-}"; echo "${!v}" ;;
  esac
}
for p in $PROXIES; do
  [[ -n $(proxy_kind "$p") ]] ||
    die "unknown proxy '$p' (appgw, appgw-log, appgw-nolog, appgw-egress, appgw-NAME with APPGW_VARIANT_NAME set, nginx, haproxy, haproxy-splice, haproxy-splice-response)"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"
[[ $RATE =~ ^[0-9]+$ ]] || die "bad RATE '$RATE'"
[[ -z $WRK_TIMEOUT || $WRK_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "bad WRK_TIMEOUT '$WRK_TIMEOUT'"
# delay_ms C: wrk.lua's wait before each request of a connection for RATE with C connections
delay_ms() { if ((RATE > 0)); then echo $((($1 * 1000 + RATE / 2) / RATE)); else echo 0; fi; }
max_conns=0
for c in $CONNECTIONS; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "bad CONNECTIONS entry '$c'"
  ((c > max_conns)) && max_conns=$c
  if ((RATE > 0 && $(delay_ms "$c") < 1)); then die "RATE $RATE is too high for $c connections (delay < 1 ms)"; fi
done
for w in $WORKERS; do [[ $w =~ ^[1-9][0-9]*$ ]] || die "bad WORKERS entry '$w'"; done
# open files: wrk holds -c sockets; a proxy -c client and up to -c upstream sockets per
# process; the children inherit the limit
need_fds=$((max_conns * 3 + 1024))
if (($(ulimit -n) < need_fds)); then
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] && hard=$need_fds
  ulimit -n "$((hard < need_fds ? hard : need_fds))" 2>/dev/null || true
  (($(ulimit -n) >= need_fds)) ||
    die "open files limit $(ulimit -n) (hard $(ulimit -Hn)) is below the $need_fds that $max_conns connections need"
fi

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]]; then COMMIT="$COMMIT+dirty"; fi

make_tmp appgw-bench # $TMP, removed on exit with every process started (STARTED)
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

# ---- origin: nginx, 1 worker; "hello\n" for everything, reads and discards request bodies ----
USER_LINE=""
[[ $(id -u) == 0 ]] && USER_LINE="user root;"
nginx_common_http() { # temp paths inside $TMP/$1
  local d="$TMP/$1"
  mkdir -p "$d"
  cat <<EOF
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
  default_type text/plain;
EOF
}

# ---- test PKI (https, certgen): two CAs made with the openssl CLI, EC P-256 keys ----
# ca.pem signs the origin's server certificate (SAN DNS:localhost, DNS:$EGRESS_NAME,
# IP:127.0.0.1); every proxy
# trusts only ca.pem. client-ca.pem signs client.pem (CN=appgw-bench-client), the client
# certificate the origin's second TLS server requires.
TLS_DIR="$TMP/tls"
CLIENT_CN=appgw-bench-client
make_pki() {
  local d=$TLS_DIR
  mkdir -p "$d"
  cat >"$d/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,DNS:$EGRESS_NAME,IP:127.0.0.1
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
  local n
  for n in ca client-ca server client; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$n.key" || return 1
  done
  openssl req -x509 -config "$d/openssl.cnf" -extensions ca_ext -key "$d/ca.key" -days 2 \
    -subj "/CN=appgw-bench server CA" -out "$d/ca.pem" || return 1
  openssl req -x509 -config "$d/openssl.cnf" -extensions ca_ext -key "$d/client-ca.key" -days 2 \
    -subj "/CN=appgw-bench client CA" -out "$d/client-ca.pem" || return 1
  openssl req -new -config "$d/openssl.cnf" -key "$d/server.key" -subj "/CN=localhost" \
    -out "$d/server.csr" || return 1
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -set_serial 2 -days 2 \
    -extfile "$d/openssl.cnf" -extensions server_ext -out "$d/server.pem" || return 1
  openssl req -new -config "$d/openssl.cnf" -key "$d/client.key" -subj "/CN=$CLIENT_CN" \
    -out "$d/client.csr" || return 1
  openssl x509 -req -in "$d/client.csr" -CA "$d/client-ca.pem" -CAkey "$d/client-ca.key" \
    -set_serial 3 -days 2 -extfile "$d/openssl.cnf" -extensions client_ext -out "$d/client.pem" || return 1
  cat "$d/client.pem" "$d/client.key" >"$d/client-and-key.pem" # HAProxy's crt wants both in one file
}
if ((NEED_TLS)); then
  make_pki >"$TMP/openssl.log" 2>&1 || { cat "$TMP/openssl.log" >&2; die "could not make the test certificates"; }
fi

# the origin's locations, the same on its plain, TLS and client-certificate TLS servers.
# /xff, /authz and /tls echo what the origin received (the pass-through checks use them).
origin_locations() {
  cat <<EOF
    location ~ /xff\$ { return 200 "\$http_x_forwarded_for\n"; }
    location = /authz { return 200 "\$http_authorization\n"; }
    location ^~ /static/ { root $TMP/www; sendfile on; tcp_nopush on; }
    location = /tls { return 200 "\$scheme \$ssl_protocol \$ssl_cipher client-cert:\$ssl_client_verify \$ssl_client_s_dn\n"; }
    location = /proto { return 200 "\$server_protocol\n"; }
    location / { return 200 "hello\n"; }
EOF
}
origin_tls_servers() {
  ((NEED_TLS)) || return 0
  cat <<EOF
  ssl_certificate $TLS_DIR/server.pem;
  ssl_certificate_key $TLS_DIR/server.key;
  ssl_protocols TLSv1.2 TLSv1.3; # nginx 1.22 leaves TLSv1.3 out by default
  ssl_session_cache shared:origin_tls:4m;
  ssl_session_timeout 1h;
  server {
    listen 127.0.0.1:$ORIGIN_TLS_PORT ssl;
$(origin_locations)
  }
  server {
    listen 127.0.0.1:$ORIGIN_MTLS_PORT ssl;
    ssl_verify_client on;
    ssl_client_certificate $TLS_DIR/client-ca.pem;
$(origin_locations)
  }
EOF
  ((NEED_H2)) || return 0
  cat <<EOF
  server {
    listen 127.0.0.1:$ORIGIN_H2_PORT ssl http2;
$(origin_locations)
  }
EOF
}

cat >"$TMP/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/origin.pid;
error_log $TMP/origin.err warn;
$USER_LINE
events { worker_connections 8192; }
http {
$(nginx_common_http origin-tmp)
  server {
    listen 127.0.0.1:$ORIGIN_PORT;
$(origin_locations)
  }
  server {
    listen 127.0.0.1:$ORIGIN_STATUS_PORT;
    location / { stub_status; }
  }
$(origin_tls_servers)
}
EOF
need_port "$ORIGIN_PORT"
need_port "$ORIGIN_STATUS_PORT"
if ((NEED_TLS)); then need_port "$ORIGIN_TLS_PORT"; need_port "$ORIGIN_MTLS_PORT"; fi
if ((NEED_H2)); then need_port "$ORIGIN_H2_PORT"; fi
"$NGINX_BIN" -p "$TMP/" -e "$TMP/origin.err" -c "$TMP/origin.conf" >"$TMP/origin.log" 2>&1 &
ORIGIN_PID=$!
STARTED+=("$ORIGIN_PID")
wait_http "http://127.0.0.1:$ORIGIN_PORT/small" 5 "$ORIGIN_PID" ||
  { cat "$TMP/origin.err" "$TMP/origin.log" >&2 2>/dev/null; die "origin nginx did not start"; }
if ((NEED_TLS)); then
  # the TLS server answers with the test CA; the client-certificate server refuses a request
  # without one (nginx: 400) and answers with one
  body=$(curl -sS --max-time 5 --cacert "$TLS_DIR/ca.pem" "https://127.0.0.1:$ORIGIN_TLS_PORT/small" 2>&1) || true
  [[ $body == hello ]] || die "origin HTTPS server: GET answered '${body:0:120}', not 'hello'"
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.pem" \
    "https://127.0.0.1:$ORIGIN_MTLS_PORT/small" 2>&1) || true
  [[ $code == 400 ]] || die "origin client-certificate server: GET without a certificate answered '$code', not 400"
  body=$(curl -sS --max-time 5 --cacert "$TLS_DIR/ca.pem" --cert "$TLS_DIR/client.pem" \
    --key "$TLS_DIR/client.key" "https://127.0.0.1:$ORIGIN_MTLS_PORT/small" 2>&1) || true
  [[ $body == hello ]] || die "origin client-certificate server: GET with the certificate answered '${body:0:120}', not 'hello'"
fi
if ((NEED_H2)); then
  body=$(curl -sS --max-time 5 --http2 --cacert "$TLS_DIR/ca.pem" "https://127.0.0.1:$ORIGIN_H2_PORT/proto" 2>&1) || true
  [[ $body == HTTP/2.0 ]] || die "origin HTTP/2 server: GET /proto over h2 answered '${body:0:120}', not 'HTTP/2.0'"
fi

# ---- static files (dl1m, dl16m): random bytes, served by the origin with sendfile ----
# scen_body_bytes SCEN: the size of the body the scenario downloads (0: the small "hello")
scen_body_bytes() {
  case $1 in dl1m) echo 1048576 ;; dl16m) echo 16777216 ;; *) echo 0 ;; esac
}
# scen_path SCEN: the path wrk requests through the proxies
scen_path() {
  case $1 in dl1m) echo /bench/origin/static/1m.bin ;; dl16m) echo /bench/origin/static/16m.bin ;;
  *) echo /bench/origin/small ;; esac
}
if ((NEED_STATIC)); then
  mkdir -p "$TMP/www/static"
  head -c 1048576 /dev/urandom >"$TMP/www/static/1m.bin"
  head -c 16777216 /dev/urandom >"$TMP/www/static/16m.bin"
  for f in 1m 16m; do
    n=$(curl -sS --max-time 10 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$ORIGIN_PORT/static/$f.bin" 2>&1) || true
    [[ $n == $(stat -c %s "$TMP/www/static/$f.bin") ]] || die "origin: GET /static/$f.bin gave '$n' bytes"
  done
fi

# ---- OAuth token endpoint (oauth): python3 stdlib, one token for every request ----
# POST /token with grant_type=client_credentials and the client id/secret (form fields or
# Basic) answers 200 {"access_token": OAUTH_TOKEN, "expires_in": 3600}; anything else 401.
# Each POST appends a line to $TOKEN_LOG, so the script can see when appgw fetches a token.
OAUTH_TOKEN="bench-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
OAUTH_CLIENT_ID=bench-client
OAUTH_CLIENT_SECRET="bench-secret-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
TOKEN_LOG="$TMP/token-requests.log"
token_fetches() { if [[ -f $TOKEN_LOG ]]; then wc -l <"$TOKEN_LOG"; else echo 0; fi; }
if ((NEED_TOKEN)); then
  cat >"$TMP/token_server.py" <<'EOF'
import base64, json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

port, token, client_id, client_secret, log_path = sys.argv[1:6]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # readiness probe of run.sh
        self._send(200, {"status": "ok"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("latin-1"))
        offered = {(form.get("client_id", [""])[0], form.get("client_secret", [""])[0])}
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                offered.add(tuple(base64.b64decode(auth[6:]).decode().split(":", 1)))
            except ValueError:
                pass
        ok = form.get("grant_type") == ["client_credentials"] and (client_id, client_secret) in offered
        with open(log_path, "a") as f:
            f.write(f"{self.path} {'ok' if ok else 'refused'}\n")
        if ok:
            self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        else:
            self._send(401, {"error": "invalid_client"})


HTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
EOF
  need_port "$TOKEN_PORT"
  "$PYTHON" "$TMP/token_server.py" "$TOKEN_PORT" "$OAUTH_TOKEN" "$OAUTH_CLIENT_ID" \
    "$OAUTH_CLIENT_SECRET" "$TOKEN_LOG" >"$TMP/token.log" 2>&1 &
  TOKEN_PID=$!
  STARTED+=("$TOKEN_PID")
  wait_http "http://127.0.0.1:$TOKEN_PORT/ready" 5 "$TOKEN_PID" ||
    { cat "$TMP/token.log" >&2 2>/dev/null; die "the OAuth token endpoint did not start"; }
fi

# ---- egress proxy (appgw-egress): squid on BASE+85, no cache, no authentication ----
# Its hosts_file maps EGRESS_NAME to 127.0.0.1. squid started as root runs as the "proxy" user,
# so its directory is world-writable and $TMP traversable (the keys in $TMP stay 0600).
SQUID_DIR="$TMP/squid"
SQUID_PID=""
if ((NEED_SQUID)); then
  mkdir -p "$SQUID_DIR"
  chmod 711 "$TMP"
  chmod 777 "$SQUID_DIR"
  echo "127.0.0.1 $EGRESS_NAME" >"$SQUID_DIR/hosts"
  cat >"$SQUID_DIR/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
pid_filename $SQUID_DIR/squid.pid
cache_log $SQUID_DIR/cache.log
access_log none
cache deny all
hosts_file $SQUID_DIR/hosts
dns_nameservers 127.0.0.1
netdb_filename none
pinger_enable off
coredump_dir $SQUID_DIR
shutdown_lifetime 0 seconds
max_filedescriptors $need_fds
acl bench_clients src 127.0.0.1/32
http_access allow bench_clients
http_access deny all
EOF
  need_port "$SQUID_PORT"
  "$SQUID_BIN" -N -f "$SQUID_DIR/squid.conf" >"$SQUID_DIR/squid.out" 2>&1 </dev/null &
  SQUID_PID=$!
  STARTED+=("$SQUID_PID")
  # squid answers a request for itself (no absolute URL) with 400: it is up
  deadline=$(($(now_us) + 20000000))
  until [[ $(curl -sS -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$SQUID_PORT/" 2>/dev/null) =~ ^[1-5] ]]; do
    kill -0 "$SQUID_PID" 2>/dev/null && (($(now_us) < deadline)) ||
      { cat "$SQUID_DIR/cache.log" "$SQUID_DIR/squid.out" >&2 2>/dev/null; die "squid did not start"; }
    sleep 0.1
  done
fi

# ---- the proxies ----
# scen_upstream SCEN: "scheme port" of the origin server the scenario goes to
scen_upstream() {
  case $1 in
  https) echo "https $ORIGIN_TLS_PORT" ;;
  certgen) echo "https $ORIGIN_MTLS_PORT" ;;
  https-h2) echo "https $ORIGIN_H2_PORT" ;;
  *) echo "http $ORIGIN_PORT" ;;
  esac
}

# nginx_scen_lines SCEN: the scenario's extra lines of nginx's proxy location (a leading newline)
nginx_scen_lines() {
  case $1 in
  oauth) printf '\n      proxy_set_header Authorization "Bearer %s";' "$OAUTH_TOKEN" ;;
  dl1m | dl16m) # without buffering nginx relays through one proxy_buffer_size buffer (default
    # 4 KiB: 10x the CPU per MiB); 128 KiB, the size of appgw's blocks
    printf '\n      %s' "proxy_buffer_size 128k;" "proxy_buffers 4 128k;" "proxy_busy_buffers_size 128k;" ;;
  https | certgen | https-h2)
    printf '\n      %s' "proxy_ssl_trusted_certificate $TLS_DIR/ca.pem;" "proxy_ssl_verify on;" \
      "proxy_ssl_name localhost;" "proxy_ssl_session_reuse on;" \
      "proxy_ssl_protocols TLSv1.2 TLSv1.3;" # 1.22 leaves TLSv1.3 out by default
    if [[ $1 == certgen ]]; then
      printf '\n      %s' "proxy_ssl_certificate $TLS_DIR/client.pem;" \
        "proxy_ssl_certificate_key $TLS_DIR/client.key;"
    fi
    ;;
  esac
}

# haproxy_scen_lines SCEN: the scenario's extra backend lines (a leading newline)
haproxy_scen_lines() {
  if [[ $1 == oauth ]]; then printf '\n    http-request set-header Authorization "Bearer %s"' "$OAUTH_TOKEN"; fi
}
# haproxy_server_opts SCEN: TLS options of the server line (HAProxy reuses TLS sessions by default)
haproxy_server_opts() {
  case $1 in
  https | https-h2) echo " ssl verify required ca-file $TLS_DIR/ca.pem verifyhost localhost" ;;
  certgen) echo " ssl verify required ca-file $TLS_DIR/ca.pem verifyhost localhost crt $TLS_DIR/client-and-key.pem" ;;
  esac
}

write_nginx_conf() { # W SCEN C
  local up_scheme up_port pool=$((${3:-64} > 64 ? ${3:-64} : 64))
  read -r up_scheme up_port <<<"$(scen_upstream "${2:-get}")"
  cat >"$TMP/nginx.conf" <<EOF
worker_processes $1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
$USER_LINE
events { worker_connections 8192; }
http {
$(nginx_common_http nginx-tmp)
${NGINX_HTTP_EXTRA:-}
  upstream origin {
    server 127.0.0.1:$up_port;
    keepalive $pool;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    location /bench/origin/ {
      proxy_pass $up_scheme://origin/;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;$(nginx_scen_lines "${2:-get}")
    }
  }
}
EOF
}

write_haproxy_conf() { # W SCEN LABEL
  local up_scheme up_port splice=""
  # kernel splicing (pipes, no copy through user space): splice-auto lets HAProxy decide per
  # stream; splice-response always splices the response bodies
  case ${3:-haproxy} in
  haproxy-splice) splice="    option splice-auto" ;;
  haproxy-splice-response) splice="    option splice-response" ;;
  esac
  read -r up_scheme up_port <<<"$(scen_upstream "${2:-get}")"
  cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn 4096
    pidfile $TMP/haproxy.pid
${HAPROXY_GLOBAL_EXTRA:-}

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
$splice
${HAPROXY_DEFAULTS_EXTRA:-}

frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend origin

backend origin
    http-request replace-path ^/bench/origin(/.*)\$ \1$(haproxy_scen_lines "${2:-get}")
    server origin 127.0.0.1:$up_port$(haproxy_server_opts "${2:-get}")
EOF
}

write_appgw_conf() { # SCEN LABEL
  local scen=${1:-get} up_scheme up_port up_host=127.0.0.1
  read -r up_scheme up_port <<<"$(scen_upstream "$scen")"
  [[ ${2:-appgw} == appgw-egress ]] && up_host=$EGRESS_NAME # resolved by squid only
  rm -rf "$TMP/appgw-config"
  mkdir -p "$TMP/appgw-config"
  write_bench_app "$TMP/appgw-config/bench.yaml" "$up_scheme://$up_host:$up_port/"
  case $scen in
  oauth)
    cat >>"$TMP/appgw-config/bench.yaml" <<EOF
      credentials: {type: OAuth, secretName: bench-oauth, authenticationUrl: "http://127.0.0.1:$TOKEN_PORT/token"}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-oauth, namespace: kyma-system}
type: Opaque
stringData:
  clientId: "$OAUTH_CLIENT_ID"
  clientSecret: "$OAUTH_CLIENT_SECRET"
EOF
    ;;
  certgen)
    cat >>"$TMP/appgw-config/bench.yaml" <<EOF
      credentials: {type: CertificateGen, secretName: bench-cert}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-cert, namespace: kyma-system}
type: Opaque
stringData:
  crt: |
$(sed 's/^/    /' "$TLS_DIR/client.pem")
  key: |
$(sed 's/^/    /' "$TLS_DIR/client.key")
EOF
    ;;
  esac
}

proxy_port() { # LABEL
  case $(proxy_kind "$1") in appgw) echo "$APPGW_PORT" ;; nginx) echo "$NGINX_PORT" ;; haproxy) echo "$HAPROXY_PORT" ;; esac
}

# start_proxy NAME W [SCEN]: sets PROXY_PID; returns 1 (with SKIP_REASON) when it does not come up
PROXY_PID=""
SKIP_REASON=""
start_proxy() { # LABEL W SCEN C
  local name=$1 w=$2 scen=${3:-get} conns=${4:-64} port
  local -a appgw_env=() extra=()
  port=$(proxy_port "$name")
  need_port "$port"
  case $(proxy_kind "$name") in
  nginx)
    write_nginx_conf "$w" "$scen" "$conns"
    "$NGINX_BIN" -p "$TMP/" -e "$TMP/nginx.err" -c "$TMP/nginx.conf" >"$TMP/nginx.log" 2>&1 &
    PROXY_PID=$!
    ;;
  haproxy)
    write_haproxy_conf "$w" "$scen" "$name"
    "$HAPROXY_BIN" -db -f "$TMP/haproxy.cfg" >"$TMP/$name.log" 2>&1 &
    PROXY_PID=$!
    ;;
  appgw)
    need_port "$APPGW_COMPASS_PORT"
    need_port "$APPGW_API_PORT"
    write_appgw_conf "$scen" "$name"
    # HTTPS upstreams: appgw trusts the CAs of SSL_CERT_FILE, here only the test CA
    [[ $scen == https || $scen == certgen || $scen == https-h2 ]] && appgw_env+=("SSL_CERT_FILE=$TLS_DIR/ca.pem")
    # only appgw-egress goes through squid, whatever the caller's environment says
    if [[ $name == appgw-egress ]]; then
      appgw_env+=("HTTPS_PROXY=http://127.0.0.1:$SQUID_PORT" "HTTP_PROXY=http://127.0.0.1:$SQUID_PORT" "NO_PROXY=")
    else
      appgw_env+=("HTTPS_PROXY=" "HTTP_PROXY=" "NO_PROXY=")
    fi
    # APPGW_FLAGS and the variant's flags come after the defaults: the last of a flag wins
    read -r -a extra <<<"$APPGW_FLAGS $(appgw_variant_flags "$name")"
    # stderr (the log, and with appgw-log the access log) goes to a file in $TMP, as a
    # container's log pipe would take it
    env -u https_proxy -u http_proxy -u no_proxy "${appgw_env[@]}" "$APPGW_BIN" \
      --configDir="$TMP/appgw-config" --listenAddress=127.0.0.1 \
      --proxyPort="$APPGW_PORT" --proxyPortCompass="$APPGW_COMPASS_PORT" \
      --externalAPIPort="$APPGW_API_PORT" --workers="$w" --logLevel=warn "${extra[@]}" \
      >"$TMP/$name.log" 2>&1 &
    PROXY_PID=$!
    ;;
  esac
  STARTED+=("$PROXY_PID")
  if [[ $(proxy_kind "$name") == appgw ]]; then
    if ! wait_http "http://127.0.0.1:$APPGW_API_PORT/v1/health" 5 "$PROXY_PID"; then
      SKIP_REASON="not healthy on GET http://127.0.0.1:$APPGW_API_PORT/v1/health within 5 s"
      kill -0 "$PROXY_PID" 2>/dev/null || SKIP_REASON="exited at start-up"
      return 1
    fi
  fi
  if ! wait_http "http://127.0.0.1:$port/bench/origin/small" 5 "$PROXY_PID"; then
    SKIP_REASON="GET http://127.0.0.1:$port/bench/origin/small did not answer 2xx within 5 s"
    return 1
  fi
  return 0
}

# check_proxy NAME [SCEN]: the proxy passes the small GET, the X-Forwarded-For and the POST
# through; oauth: the origin saw "Authorization: Bearer <token>"; https/certgen: the origin
# got the request over TLS (certgen: with the client certificate, verified)
check_proxy() {
  local port body code scen=${2:-get}
  port=$(proxy_port "$1")
  body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/bench/origin/small" 2>&1) || true
  [[ $body == hello ]] || { SKIP_REASON="GET /bench/origin/small answered '${body:0:80}', not 'hello'"; return 1; }
  body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/bench/origin/xff" 2>&1) || true
  [[ $body == *127.0.0.1* ]] || { SKIP_REASON="origin saw X-Forwarded-For '${body:0:80}', not 127.0.0.1"; return 1; }
  code=$(head -c "$POST_BYTES" /dev/zero | curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/octet-stream' --data-binary @- \
    "http://127.0.0.1:$port/bench/origin/small" 2>&1) || true
  [[ $code == 200 ]] || { SKIP_REASON="POST of $POST_BYTES bytes answered '$code', not 200"; return 1; }
  case $scen in
  oauth)
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/bench/origin/authz" 2>&1) || true
    [[ $body == "Bearer $OAUTH_TOKEN" ]] ||
      { SKIP_REASON="origin saw Authorization '${body:0:80}', not 'Bearer <the token endpoint's token>'"; return 1; }
    log "check $1 $scen: origin saw Authorization: Bearer <token>"
    ;;
  https | certgen | https-h2)
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/bench/origin/tls" 2>&1) || true
    if [[ $scen != certgen && $body != "https "* ]] ||
      [[ $scen == certgen && $body != "https "*" client-cert:SUCCESS CN=$CLIENT_CN" ]]; then
      SKIP_REASON="origin saw TLS '${body:0:120}'"
      return 1
    fi
    log "check $1 $scen: origin saw $body"
    if [[ $scen == https-h2 ]]; then
      # appgw speaks HTTP/2 to this origin (unless a variant turns --upstreamHTTP2 off); the
      # peers speak HTTP/1.1 to it, as in https
      body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/bench/origin/proto" 2>&1) || true
      if [[ $1 == appgw && $APPGW_FLAGS != *upstreamHTTP2* && $body != HTTP/2.0 ]]; then
        SKIP_REASON="origin saw '${body:0:40}' from appgw, not HTTP/2.0"
        return 1
      fi
      log "check $1 $scen: origin saw $body"
    fi
    ;;
  dl1m | dl16m)
    local f="$TMP/www/static/${scen#dl}.bin"
    code=$(curl -sS --max-time 30 -o "$TMP/download.bin" -w '%{http_code}' "http://127.0.0.1:$port$(scen_path "$scen")" 2>&1) || true
    if [[ $code != 200 ]] || ! cmp -s "$TMP/download.bin" "$f"; then
      SKIP_REASON="GET $(scen_path "$scen") answered '$code' or a body that differs from the file ($(stat -c %s "$TMP/download.bin" 2>/dev/null || echo 0) bytes)"
      return 1
    fi
    rm -f "$TMP/download.bin"
    ;;
  esac
  # the access log of the variants that set it: on for appgw-log (the xff request is logged,
  # written once per loop iteration), off for appgw-nolog
  local i logged=0
  if [[ $1 == appgw-log || $1 == appgw-nolog ]]; then
    for ((i = 0; i < 20; i++)); do
      grep -q '/bench/origin/xff' "$TMP/$1.log" 2>/dev/null && { logged=1; break; }
      [[ $1 == appgw-nolog ]] && ((i >= 5)) && break
      sleep 0.1
    done
    if [[ $1 == appgw-log && $logged == 0 ]]; then SKIP_REASON="no access log line for /bench/origin/xff in its stderr"; return 1; fi
    if [[ $1 == appgw-nolog && $logged == 1 ]]; then SKIP_REASON="an access log line although --accessLog=false"; return 1; fi
  fi
  return 0
}

stop_proxy() {
  [[ -n $PROXY_PID ]] || return 0
  stop_pid "$PROXY_PID"
  local p keep=()
  for p in "${STARTED[@]}"; do [[ $p == "$PROXY_PID" ]] || keep+=("$p"); done
  STARTED=("${keep[@]}")
  PROXY_PID=""
}

dump_log() { # NAME: last lines of a proxy's log, for a skipped or failed run
  local f
  for f in "$TMP/$1.log" "$TMP/$1.err"; do
    [[ -s $f ]] && { log "--- tail of $f:"; tail -n 15 "$f" >&2; }
  done
  return 0
}

# ---- the runs ----
APPGW_OK=1
if [[ ! -x $APPGW_BIN ]]; then
  for p in $PROXIES; do
    if [[ $(proxy_kind "$p") == appgw ]]; then
      log "SKIPPING appgw: no executable at $APPGW_BIN (build it, or set APPGW_BIN)"
      APPGW_OK=0
      break
    fi
  done
fi

# how busy is the machine without us? (a shared machine: warn, do not refuse)
read -r _ _ _ _ b0 _ t0 <<<"$($REPORT snap "$ORIGIN_PID" "$ORIGIN_PID" "$STUB_URL")"
sleep 1
read -r _ _ _ _ b1 _ t1 <<<"$($REPORT snap "$ORIGIN_PID" "$ORIGIN_PID" "$STUB_URL")"
# busy ticks -> % of one core over the window (times in µs by dropping the dot)
idle_busy=$(((b1 - b0) * 100000000 / CLK_TCK / (${t1/[.,]/} - ${t0/[.,]/})))
if ((idle_busy > 10)); then
  log "WARNING: the machine is busy before the benchmark (~${idle_busy}% of one core used by other processes):"
  log "         absolute figures will be noisy; compare ratios, and look at the 'other CPU' column"
fi

# wrk_timeout SCEN: wrk's --timeout, long enough for a 16 MiB body shared by 1000 connections
wrk_timeout() {
  if [[ -n $WRK_TIMEOUT ]]; then echo "$WRK_TIMEOUT"; return; fi
  case $1 in dl1m) echo 30 ;; dl16m) echo 120 ;; *) echo 10 ;; esac
}
# aux_ticks: CPU ticks of helper processes that work for the proxy under test (squid)
aux_ticks() { if [[ -n $SQUID_PID ]]; then $REPORT sample "$SQUID_PID" | cut -d' ' -f1; else echo 0; fi; }

nw=$(wc -w <<<"$WORKERS"); nc=$(wc -w <<<"$CONNECTIONS"); ns=$(wc -w <<<"$SCENARIOS"); np=$(wc -w <<<"$PROXIES")
log "commit $COMMIT; $((ROUNDS * nw * nc * ns * np)) runs of ${WARMUP}+${DURATION} s; wrk -t$THREADS -c$(tr ' ' / <<<"$CONNECTIONS"); open files $(ulimit -n); tmp $TMP"

for ((round = 1; round <= ROUNDS; round++)); do
for w in $WORKERS; do
 for conns in $CONNECTIONS; do
  DELAY_MS=$(delay_ms "$conns")
  export BENCH_DELAY_MS=$DELAY_MS
  ((round > 1 || RATE == 0)) || log "fixed load with $conns connections: each waits ${DELAY_MS} ms before each request (about $((conns * 1000 / DELAY_MS)) req/s at most)"
  for scen in $SCENARIOS; do
    post=0
    [[ $scen == post ]] && post=$POST_BYTES
    body_bytes=$(scen_body_bytes "$scen")
    for name in $PROXIES; do
      if [[ $(proxy_kind "$name") == appgw && $APPGW_OK == 0 ]]; then
        ((round > 1)) || $REPORT skip "$RESULTS" "$name" "$scen" "$w" "no executable at $APPGW_BIN" "$conns"
        continue
      fi
      SKIP_REASON=""
      if ! start_proxy "$name" "$w" "$scen" "$conns" || ! check_proxy "$name" "$scen"; then
        log "SKIPPING $name $scen workers=$w: $SKIP_REASON"
        dump_log "$name"
        stop_proxy
        $REPORT skip "$RESULTS" "$name" "$scen" "$w" "$SKIP_REASON" "$conns"
        [[ $(proxy_kind "$name") == appgw ]] || die "$name must work: fix bench/run.sh's configuration"
        continue
      fi
      port=$(proxy_port "$name")
      url="http://127.0.0.1:$port$(scen_path "$scen")"
      tmo=$(wrk_timeout "$scen")
      tag="$name-$scen-$w-c$conns"
      log "round $round/$ROUNDS: $name $scen workers=$w connections=$conns: warm-up ${WARMUP}s, run ${DURATION}s"
      read -r _ _ _ _ _ oa0 _ <<<"$($REPORT snap "$PROXY_PID" "$ORIGIN_PID" "$STUB_URL")"
      BENCH_POST_BYTES=$post wrk -t"$THREADS" -c"$conns" -d"${WARMUP}s" --timeout "${tmo}s" -s "$HERE/wrk.lua" "$url" \
        >"$TMP/warmup-$tag.txt" 2>&1 || true
      loadavg=$(cut -d' ' -f1 /proc/loadavg)
      read -r pt0 _ _ ot0 sb0 _ wall0 <<<"$($REPORT snap "$PROXY_PID" "$ORIGIN_PID" "$STUB_URL")"
      at0=$(aux_ticks)
      tf0=$(token_fetches)
      times >"$TMP/times0"
      wrk_out="$TMP/wrk-$tag.txt"
      rc=0
      BENCH_POST_BYTES=$post timeout $((DURATION + 30)) \
        wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout "${tmo}s" --latency -s "$HERE/wrk.lua" "$url" \
        >"$wrk_out" 2>&1 || rc=$?
      times >"$TMP/times1"
      read -r pt1 phwm pn ot1 sb1 oa1 wall1 <<<"$($REPORT snap "$PROXY_PID" "$ORIGIN_PID" "$STUB_URL")"
      at1=$(aux_ticks)
      tf1=$(token_fetches)
      alive=1
      kill -0 "$PROXY_PID" 2>/dev/null || alive=0
      stop_proxy
      $REPORT record "$RESULTS" wrk_out="$wrk_out" proxy="$name" scenario="$scen" workers="$w" \
        post_bytes="$POST_BYTES" body_bytes="$body_bytes" threads="$THREADS" connections="$conns" duration="$DURATION" \
        wrk_rc="$rc" proxy_alive="$alive" proxy_ticks0="$pt0" proxy_ticks1="$pt1" \
        proxy_hwm_kb="$phwm" proxy_nprocs="$pn" origin_ticks0="$ot0" origin_ticks1="$ot1" \
        origin_accepts0="$oa0" origin_accepts1="$oa1" loadavg="$loadavg" commit="$COMMIT" round="$round" delay_ms="$DELAY_MS" \
        sys_busy0="$sb0" sys_busy1="$sb1" wall0="$wall0" wall1="$wall1" aux_ticks0="$at0" aux_ticks1="$at1" \
        times0="$TMP/times0" times1="$TMP/times1" token_fetches="$((tf1 - tf0))"
      if ((tf1 > tf0)); then
        log "!!! $name $scen workers=$w: $((tf1 - tf0)) token request(s) during the measured run (cache not warm)"
      fi
      if [[ $alive == 0 ]]; then
        log "!!! $name DIED during the run"
        dump_log "$name"
      fi
      if [[ $rc != 0 ]]; then
        log "!!! wrk exited $rc for $name $scen workers=$w connections=$conns:"
        tail -n 5 "$wrk_out" >&2
      fi
    done
  done
 done
done
done

mkdir -p "$RESULTS_DIR"
stamp="$(date +%Y%m%d-%H%M%S)-${COMMIT//+/-}${RUN_NAME:+-$RUN_NAME}"
cp "$RESULTS" "$RESULTS_DIR/$stamp.jsonl"
echo
$REPORT table "$RESULTS" "$COMMIT" | tee "$RESULTS_DIR/$stamp.txt"
if [[ $CHART == 1 ]]; then
  # a PNG of req/s and CPU/req per scenario and proxy; without gnuplot, a line says why not
  $REPORT chart "$RESULTS_DIR/$stamp.jsonl" "$RESULTS_DIR/$stamp" "$COMMIT" | tee -a "$RESULTS_DIR/$stamp.txt"
fi
log "results: $RESULTS_DIR/$stamp.txt (.jsonl$([[ $CHART == 1 ]] && echo ", .png") beside it)"
