#!/usr/bin/env bash
# build.sh: configures and builds one flavour of appgw into a build directory.
#   scripts/build.sh [release|asan|fuzz|tsan]   (default: release → build/)
#   tsan → build-tsan/: clang, ThreadSanitizer, appgw and the close() shim only (no unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$kind" in
  release) dir=build;      opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=Debug -DGW_SANITIZE=ON) ;;
  fuzz)    dir=build-fuzz; opts=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DGW_FUZZ=ON) ;;
  tsan)    dir=build-tsan; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DGW_TSAN=ON) ;;
  *) echo "usage: $0 [release|asan|fuzz|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${opts[@]}" >/dev/null
cmake --build "$dir" -j"$jobs"
