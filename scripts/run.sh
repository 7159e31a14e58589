#!/usr/bin/env bash
# run.sh: installs dependencies, builds appgw and runs it on its embedded default config
# (examples/), next to a small demo API on 127.0.0.1:8090 that the examples point at.
# Extra arguments go to appgw. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null
python3 -m http.server 8090 --bind 127.0.0.1 --directory examples/demo-api >/dev/null 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
echo "demo API on http://127.0.0.1:8090 (pid $demo); try:"
echo "  curl http://127.0.0.1:8080/demo/hello-api/hello.json"
build/appgw "$@"
