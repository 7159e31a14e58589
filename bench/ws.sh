#!/usr/bin/env bash
# bench/ws.sh: WebSocket echo through appgw vs direct (issue 9): messages/s both ways and
# appgw's CPU per message. wrk cannot speak WebSocket, so bench/ws_load.py is the echo server
# (asyncio, several SO_REUSEPORT processes) and the load client (several processes, each with
# many connections that keep several frames in flight). See bench/README.md, "WebSocket".
#
# Environment (defaults in brackets):
#   DURATION [10]  WARMUP [2]   seconds counted / seconds of load before counting
#   WORKERS ["1"]               appgw --workers counts to measure
#   WS_CLIENT_PROCS [2]  WS_CONNS [32]  WS_INFLIGHT [8]
#                               client processes x connections each x frames in flight each
#   WS_MSG_BYTES [64]           payload of each binary frame (1..125)
#   WS_SERVER_PROCS [2]         echo server processes
#   ROUNDS [1]                  repeat (direct, then appgw for each WORKERS); medians
#   APPGW_BIN [build/appgw]  APPGW_FLAGS [""]   the executable, extra flags (after the defaults)
#   BASE_PORT [27100]           ports: +30/31/32 appgw (as run.sh), +90 the echo server
#   RESULTS_DIR [bench/results]  PYTHON [/usr/bin/python3]  KEEP_TMP [0]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-1}
WS_CLIENT_PROCS=${WS_CLIENT_PROCS:-2}
WS_CONNS=${WS_CONNS:-32}
WS_INFLIGHT=${WS_INFLIGHT:-8}
WS_MSG_BYTES=${WS_MSG_BYTES:-64}
WS_SERVER_PROCS=${WS_SERVER_PROCS:-2}
ROUNDS=${ROUNDS:-1}
APPGW_BIN=${APPGW_BIN:-$REPO/build/appgw}
APPGW_FLAGS=${APPGW_FLAGS:-}
BASE_PORT=${BASE_PORT:-27100}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
KEEP_TMP=${KEEP_TMP:-0}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || true)}
REPORT="$PYTHON $HERE/report.py"
WSLOAD="$PYTHON $HERE/ws_load.py"
export CLK_TCK
CLK_TCK=$(getconf CLK_TCK)
BENCH_TAG=ws
APPGW_PORT=$((BASE_PORT + 30))
APPGW_COMPASS_PORT=$((BASE_PORT + 31))
APPGW_API_PORT=$((BASE_PORT + 32))
ECHO_PORT=$((BASE_PORT + 90))

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ -n $PYTHON ]] || die "python3 is missing"
command -v curl >/dev/null 2>&1 || die "curl is missing (bash scripts/setup.sh)"
[[ -x $APPGW_BIN ]] || die "no appgw executable at $APPGW_BIN (build it, or set APPGW_BIN)"
for v in DURATION WARMUP ROUNDS WS_CLIENT_PROCS WS_CONNS WS_INFLIGHT WS_MSG_BYTES WS_SERVER_PROCS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "bad $v '${!v}'"
done
((WS_MSG_BYTES < 126)) || die "WS_MSG_BYTES must be 1..125 (the client counts 2-byte-header echoes)"
for w in $WORKERS; do [[ $w =~ ^[1-9][0-9]*$ ]] || die "bad WORKERS entry '$w'"; done
# every connection: a client socket, and through appgw one client and one upstream socket
need_fds=$((WS_CLIENT_PROCS * WS_CONNS * 2 + 1024))
(($(ulimit -n) >= need_fds)) || ulimit -n "$need_fds" 2>/dev/null ||
  die "open files limit $(ulimit -n) is below the $need_fds needed"

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]]; then COMMIT="$COMMIT+dirty"; fi
make_tmp appgw-bench-ws
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

# ---- the echo server ----
need_port "$ECHO_PORT"
$WSLOAD server "$ECHO_PORT" "$WS_SERVER_PROCS" >"$TMP/echo.log" 2>&1 &
ECHO_PID=$!
STARTED+=("$ECHO_PID")
deadline=$(($(now_us) + 10000000))
while port_free "$ECHO_PORT"; do
  kill -0 "$ECHO_PID" 2>/dev/null && (($(now_us) < deadline)) || { cat "$TMP/echo.log" >&2; die "the echo server did not start"; }
  sleep 0.05
done
out=$($WSLOAD check "$ECHO_PORT" /ws) || die "echo server, direct: $out"
log "check direct: $out"

# ---- appgw: one Application, service "origin" -> the echo server ----
mkdir -p "$TMP/appgw-config"
write_bench_app "$TMP/appgw-config/bench.yaml" "http://127.0.0.1:$ECHO_PORT/"
APPGW_PID=""
start_appgw() { # W
  local -a extra=()
  need_port "$APPGW_PORT"
  need_port "$APPGW_COMPASS_PORT"
  need_port "$APPGW_API_PORT"
  read -r -a extra <<<"$APPGW_FLAGS"
  env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy "$APPGW_BIN" \
    --configDir="$TMP/appgw-config" --listenAddress=127.0.0.1 --proxyPort="$APPGW_PORT" \
    --proxyPortCompass="$APPGW_COMPASS_PORT" --externalAPIPort="$APPGW_API_PORT" --workers="$1" \
    --logLevel=warn "${extra[@]}" >"$TMP/appgw.log" 2>&1 &
  APPGW_PID=$!
  STARTED+=("$APPGW_PID")
  wait_http "http://127.0.0.1:$APPGW_API_PORT/v1/health" 5 "$APPGW_PID" || {
    tail -n 20 "$TMP/appgw.log" >&2
    return 1
  }
}
stop_appgw() {
  [[ -n $APPGW_PID ]] || return 0
  stop_pid "$APPGW_PID"
  local p keep=()
  for p in "${STARTED[@]}"; do [[ $p == "$APPGW_PID" ]] || keep+=("$p"); done
  STARTED=("${keep[@]}")
  APPGW_PID=""
}

# run PATHNAME PORT URLPATH [appgw PID]: one measured load run, one JSON line in $RESULTS
run() {
  local name=$1 port=$2 path=$3 pids="server:$ECHO_PID" out
  [[ -n ${4:-} ]] && pids="$pids,appgw:$4"
  log "round $round/$ROUNDS: $name: $WS_CLIENT_PROCS x $WS_CONNS connections x $WS_INFLIGHT in flight, warm-up ${WARMUP}s, run ${DURATION}s"
  if ! out=$(timeout $((WARMUP + DURATION + 60)) $WSLOAD client "$port" "$path" procs="$WS_CLIENT_PROCS" \
    conns="$WS_CONNS" inflight="$WS_INFLIGHT" size="$WS_MSG_BYTES" warmup="$WARMUP" \
    duration="$DURATION" pids="$pids" 2>"$TMP/client.err"); then
    tail -n 5 "$TMP/client.err" >&2
    out='{"failed": "the load client failed", "errors": 1, "msgs": 0, "cpu_s": {}}'
  fi
  # add the run's labels to the client's JSON line
  $PYTHON -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(path=sys.argv[2], round=int(sys.argv[3]), commit=sys.argv[4], server_procs=int(sys.argv[5])); print(json.dumps(r))' \
    "$out" "$name" "$round" "$COMMIT" "$WS_SERVER_PROCS" >>"$RESULTS"
}

log "commit $COMMIT; $((ROUNDS * (1 + $(wc -w <<<"$WORKERS")))) runs of ${WARMUP}+${DURATION} s; tmp $TMP"
for ((round = 1; round <= ROUNDS; round++)); do
  run direct "$ECHO_PORT" /ws
  for w in $WORKERS; do
    name="appgw $w worker$([[ $w == 1 ]] || echo s)"
    if ! start_appgw "$w"; then
      stop_appgw
      die "appgw did not become healthy"
    fi
    out=$($WSLOAD check "$APPGW_PORT" /bench/origin/ws) || { stop_appgw; die "through appgw: $out"; }
    ((round > 1)) || log "check through appgw: $out"
    run "$name" "$APPGW_PORT" /bench/origin/ws "$APPGW_PID"
    kill -0 "$APPGW_PID" 2>/dev/null || log "!!! appgw DIED during the run"
    stop_appgw
  done
done

mkdir -p "$RESULTS_DIR"
stamp="$(date +%Y%m%d-%H%M%S)-${COMMIT//+/-}-ws"
cp "$RESULTS" "$RESULTS_DIR/$stamp.jsonl"
echo
$WSLOAD table "$RESULTS" | tee "$RESULTS_DIR/$stamp.txt"
log "results: $RESULTS_DIR/$stamp.txt (.jsonl beside it)"
