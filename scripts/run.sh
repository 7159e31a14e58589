#!/usr/bin/env bash
# run.sh: installs dependencies, builds appgw and runs it on its embedded default config
# (examples/), next to a small demo API on 127.0.0.1:8090 that the examples point at.
# Everything listens on 127.0.0.1 only (appgw gets --listenAddress=127.0.0.1 unless the
# arguments set -listenAddress themselves). Extra arguments go to appgw.
# Ctrl-C, SIGINT or SIGTERM to this script stops both (appgw drains, see --shutdownGrace).
# If the demo API cannot listen on 127.0.0.1:8090 (port taken), run.sh stops with an error
# instead of pointing the gateway at whatever holds that port.
#
# Environment:
#   APPGW_RUN_SKIP_SETUP=1  skip scripts/setup.sh and scripts/build.sh (the binary must exist;
#                           used by tests/e2e/test_scripts.py, which has built it already)
#   APPGW_BIN               the appgw binary to run (default build/appgw)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${APPGW_RUN_SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup.sh
  scripts/build.sh release >/dev/null
fi
bin=${APPGW_BIN:-build/appgw}
if [ ! -x "$bin" ]; then
  echo "run.sh: $bin not found or not executable (run scripts/build.sh)" >&2
  exit 1
fi

demo="" gw="" tmp=""
# shellcheck disable=SC2317  # stop_all and on_signal run from traps
stop_all() {
  # Stops what this script started, by PID: appgw first (it drains), then the demo API.
  if [ -n "$gw" ]; then
    kill -TERM "$gw" 2>/dev/null || true
    wait "$gw" 2>/dev/null || true
    gw=""
  fi
  if [ -n "$demo" ]; then
    kill -TERM "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
    demo=""
  fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; tmp=""; fi
}
# shellcheck disable=SC2317
on_signal() {
  trap - INT TERM
  echo "run.sh: $1, stopping" >&2
  stop_all
  [ "$1" = SIGINT ] && exit 130
  exit 143
}
trap stop_all EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# The demo API. http.server prints "Serving HTTP on ..." only once it has bound and listens,
# so that line (not a connect, which whoever holds the port would answer) proves it is ours.
tmp=$(mktemp -d)
python3 -u -m http.server 8090 --bind 127.0.0.1 --directory examples/demo-api >"$tmp/demo.log" 2>&1 &
demo=$!
ready=0
for _ in $(seq 1 100); do   # at most ~10 s
  if grep -q "^Serving HTTP on" "$tmp/demo.log" 2>/dev/null; then ready=1; break; fi
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  reason=$(grep -E "Error|error" "$tmp/demo.log" | tail -n 1 || true)
  echo "run.sh: the demo API could not listen on 127.0.0.1:8090${reason:+ ($reason)}." >&2
  echo "run.sh: is port 8090 taken by another process? (ss -ltnp 'sport = :8090') Not starting appgw." >&2
  exit 1
fi

args=("$@")
user_listen=0
for a in "$@"; do
  case "$a" in
    -listenAddress|--listenAddress|-listenAddress=*|--listenAddress=*) user_listen=1 ;;
  esac
done
[ "$user_listen" = 1 ] || args=(--listenAddress=127.0.0.1 "${args[@]}")

"$bin" "${args[@]}" &
gw=$!
echo "demo API on http://127.0.0.1:8090 (pid $demo), appgw pid $gw; try:"
echo "  curl http://127.0.0.1:8080/demo/hello-api/hello.json"
# wait returns early when a trapped signal arrives; on_signal then stops both.
rc=0
wait "$gw" || rc=$?
gw=""
[ "$rc" = 0 ] || echo "run.sh: appgw exited with status $rc" >&2
exit "$rc"
