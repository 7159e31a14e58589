#!/usr/bin/env bash
# setup.sh: installs, from Debian packages only, whatever appgw needs to build, test and
# benchmark that is not installed yet. Safe to run repeatedly; does nothing when all is there.
#   scripts/setup.sh               everything (build, tests, benchmarks)
#   scripts/setup.sh --build-only  only what building build/appgw needs (the container image's
#                                  build stage, deploy/build-in-image.sh)
#   scripts/setup.sh --list-build  print that build package list and exit
set -euo pipefail

# What building appgw needs: the one list, also used by the image build (deploy/Dockerfile).
# Their runtime counterparts are deploy/runtime-packages.txt.
BUILD_PKGS=(
  build-essential cmake pkg-config          # toolchain
  libuv1-dev libssl-dev libjansson-dev libyaml-dev   # libraries appgw links
  libcurl4-openssl-dev                      # token, CSRF (and Kubernetes API) requests
)
PKGS=(
  "${BUILD_PKGS[@]}"
  clang libclang-rt-14-dev                  # libFuzzer + sanitizer runtimes
  python3 python3-pytest python3-requests python3-yaml   # end-to-end tests
  nginx-light haproxy wrk curl openssl procps   # test/benchmark peers and tools
)
mode=all
case "${1:-}" in
  "") ;;
  --build-only) mode=build; PKGS=("${BUILD_PKGS[@]}") ;;
  --list-build) printf '%s\n' "${BUILD_PKGS[@]}"; exit 0 ;;
  *) echo "usage: $0 [--build-only | --list-build]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$mode" = all ]; then
  # The OAuth test server (npm package oidc-provider) runs on node; Debian's nodejs and npm
  # unless a node with npm is already there (e.g. from another packaging of nodejs).
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
  fi
  # tests/e2e/test_deploy.py renders deploy/kubernetes with `kubectl kustomize`: Debian's
  # kubectl unless a kubectl is already there (e.g. from another packaging).
  if ! command -v kubectl >/dev/null 2>&1; then
    missing+=(kubernetes-client)
  fi
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$mode" = all ] || exit 0
# nginx's Debian package starts a system instance; the project starts its own.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
$SUDO pkill -x nginx >/dev/null 2>&1 || true
$SUDO pkill -x haproxy >/dev/null 2>&1 || true
