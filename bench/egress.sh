#!/usr/bin/env bash
# bench/egress.sh: HTTPS GETs through an egress proxy vs direct (issue 9): bench/run.sh with
# appgw twice, as `appgw` (straight to the HTTPS origin) and as `appgw-egress` (HTTPS_PROXY set
# to a squid on 127.0.0.1, the origin named appgw-bench-origin.invalid, which only squid
# resolves, so every measured request went through squid's CONNECT tunnels). Same origin, same
# test CA, same wrk load; the table gives req/s, p99 and appgw's CPU per request of both, the
# ratio appgw-egress/appgw, and squid's own CPU per request.
#
# Every bench/run.sh variable applies; the defaults here: SCENARIOS="https",
# PROXIES="appgw appgw-egress", WORKERS="1", CHART=0, RUN_NAME=egress (the result files end in
# -egress). For plain HTTP through squid (absolute-form requests): SCENARIOS="get https".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SCENARIOS=${SCENARIOS:-https}
export PROXIES=${PROXIES:-"appgw appgw-egress"}
export WORKERS=${WORKERS:-1}
export CHART=${CHART:-0}
export RUN_NAME=${RUN_NAME:-egress}
exec "$HERE/run.sh"
