#!/usr/bin/env bash
# test.sh: installs dependencies, builds, and runs every test: unit tests (ctest), end-to-end
# tests (pytest against the real binary and real nginx, oidc-provider and test upstreams on
# 127.0.0.1), each libFuzzer target for a bounded time, then unit + end-to-end tests again under
# ASan+UBSan, then a ThreadSanitizer build under load, config reloads and admin scrapes
# (tests/tsan/tsan_storm.py). Prints each phase with its duration and a summary at the end.
#   FUZZ_SECONDS (default 20) per fuzz target; TSAN_SECONDS (default 20) for the TSan run;
#   SKIP_ASAN=1 / SKIP_FUZZ=1 / SKIP_TSAN=1 to shorten local runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's python3 has python3-pytest; a python3 earlier on PATH (pyenv, venv) may not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

phases=()
t_all=$SECONDS
t_phase=$SECONDS
current=""
step() {
  if [ -n "$current" ]; then
    phases+=("$(printf '%5ds  %s' $((SECONDS - t_phase)) "$current")")
    printf -- '---- %s: %ds\n' "$current" $((SECONDS - t_phase))
  fi
  current="$*"
  t_phase=$SECONDS
  [ -n "$current" ] && printf '\n==== %s\n' "$current"
  return 0
}
summary() {
  local rc=$?
  step ""
  printf '\n==== summary\n'
  printf '%s\n' "${phases[@]}"
  printf '%5ds  total\n' $((SECONDS - t_all))
  [ $rc -eq 0 ] && echo "all tests passed" || echo "FAILED (exit $rc) in the last phase above"
}
trap summary EXIT

step "setup (Debian packages)"
scripts/setup.sh
step "setup (OAuth test server: npm oidc-provider)"
tests/e2e/oauth/install.sh

step "build (release)"
scripts/build.sh release
step "unit tests"
ctest --test-dir build --output-on-failure -j2
step "end-to-end tests"
APPGW_BIN="$PWD/build/appgw" "$PY" -m pytest -q tests/e2e

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzing (${FUZZ_SECONDS:-20}s per target)"
  scripts/build.sh fuzz
  mkdir -p build-fuzz/corpus
  for f in $(find build-fuzz -maxdepth 1 -type f -name 'fuzz_*' -executable | sort); do
    name=$(basename "$f")
    mkdir -p "build-fuzz/corpus/$name"
    seeds=()
    [ -d "fuzz/seeds/$name" ] && seeds=("fuzz/seeds/$name")
    echo "-- $name"
    if ! "$f" -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ \
        "build-fuzz/corpus/$name" "${seeds[@]}" > "build-fuzz/$name.log" 2>&1; then
      tail -n 40 "build-fuzz/$name.log"
      echo "$name: FAILED (reproducer in build-fuzz/, full log build-fuzz/$name.log)"
      exit 1
    fi
    tail -n 1 "build-fuzz/$name.log"
    echo "$name: no crash"
  done
fi

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "build (ASan+UBSan)"
  scripts/build.sh asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  step "unit tests (ASan+UBSan)"
  ctest --test-dir build-asan --output-on-failure -j2
  step "end-to-end tests (ASan+UBSan)"
  APPGW_BIN="$PWD/build-asan/appgw" APPGW_SANITIZE=1 "$PY" -m pytest -q tests/e2e
fi

if [ "${SKIP_TSAN:-0}" != 1 ]; then
  step "ThreadSanitizer (build + load/reload/scrape)"
  scripts/build.sh tsan
  "$PY" tests/tsan/tsan_storm.py --seconds "${TSAN_SECONDS:-20}"
fi
