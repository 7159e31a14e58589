# bench/lib.sh: shell helpers shared by bench/run.sh, bench/ws.sh (sourced, not run): logging,
# shellcheck shell=bash
# the temporary directory, and processes remembered by PID and stopped by PID.
# The caller sets HERE (bench/), REPORT (report.py's command line) and KEEP_TMP.

log() { printf '[%s %s] %s\n' "${BENCH_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- process handling: every process we start is remembered by PID and stopped by PID ----
declare -a STARTED=()
stop_pid() { # stop_pid PID: TERM the process, wait <= 5 s, then KILL it and whatever it forked
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$($REPORT pids "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for k in $kids; do # forked workers that outlived their parent
    [[ $k == "$pid" ]] && continue
    kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true
  done
  return 0
}
cleanup() { # the EXIT trap of make_tmp
  local rc=$?
  local p
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  if [[ $KEEP_TMP == 1 ]]; then log "temporary files kept in $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
# make_tmp PREFIX: TMP=/tmp/PREFIX.XXXXXX; on exit every process of STARTED is stopped and
# TMP removed (KEEP_TMP=1 keeps it)
make_tmp() {
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_port() { port_free "$1" || die "port $1 on 127.0.0.1 is already in use (set BASE_PORT)"; }

# wait_http URL SECONDS [PID]: until URL answers 2xx; fails early if PID died
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
wait_http() {
  local url=$1 secs=$2 pid=${3:-} deadline
  deadline=$(($(now_us) + secs * 1000000))
  while (($(now_us) < deadline)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# write_bench_app FILE URL: the bench's Application manifest (app "bench", service "origin",
# one API to URL), into FILE; callers append the entry's credentials and Secrets if any.
write_bench_app() {
  cat >"$1" <<EOF
apiVersion: applicationconnector.kyma-project.io/v1alpha1
kind: Application
metadata: {name: bench}
spec:
  services:
  - id: "1"
    name: origin
    displayName: origin
    entries:
    - type: API
      name: v1
      targetUrl: $2
EOF
}
