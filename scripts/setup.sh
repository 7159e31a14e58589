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
  libnghttp2-dev                            # HTTP/2 to HTTPS upstreams (framing, HPACK, flow control)
)
PKGS=(
  "${BUILD_PKGS[@]}"
  clang libclang-rt-14-dev                  # libFuzzer + sanitizer runtimes
  python3 python3-pytest python3-requests python3-yaml   # end-to-end tests
  nginx-light haproxy wrk curl openssl procps   # test/benchmark peers and tools
  prometheus                                # promtool: the /metrics format check
  squid                                     # forward proxy of the egress proxy tests (and bench/egress.sh)
  gnuplot-nox                               # bench/: the PNG chart of the results
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
echo "setup: installing ${#missing[@]} Debian package(s):"
printf '  %s\n' "${missing[@]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# Setup installs; it never stops, kills or disables anything (a system nginx or haproxy does
# not disturb the tests and benchmarks: they run their own instances with their own configs
# on their own 127.0.0.1 ports). But installing nginx-light or haproxy makes Debian's
# maintainer scripts start the system service, which fails (and fails the install) when port
# 80 is already taken, and otherwise leaves a daemon running that nobody asked for. So, for
# the duration of apt-get only, a policy-rc.d (invoke-rc.d's and deb-systemd-invoke's policy
# hook) answers 101, "action forbidden": packages install and get enabled as usual, but no
# service is started, stopped or restarted by the install. A policy-rc.d already in place
# (containers often have one) is left as it is and stays in charge; ours is created only if
# none exists (noclobber, no race) and removed on exit, even on failure or Ctrl-C. While it is
# there it applies to any other package operation on this machine too: that is why it lives
# only as long as apt-get runs.
POLICY=/usr/sbin/policy-rc.d
POLICY_MARK="# appgw scripts/setup.sh: temporary, removed when its apt-get ends"
policy_ours=0
remove_policy() {
  if [ "$policy_ours" = 1 ] && grep -qxF "$POLICY_MARK" "$POLICY" 2>/dev/null; then
    $SUDO rm -f "$POLICY"
  fi
  policy_ours=0
}
trap remove_policy EXIT
trap 'remove_policy; exit 130' INT
trap 'remove_policy; exit 143' TERM
# shellcheck disable=SC2016  # $1 is expanded by the inner sh
if [ ! -e "$POLICY" ] &&
   printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" |
     $SUDO sh -c 'set -C; cat > "$1" && chmod 755 "$1"' sh "$POLICY" 2>/dev/null; then
  policy_ours=1
fi

$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
remove_policy
