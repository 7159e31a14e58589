#!/usr/bin/env bash
# build-in-image.sh: the build stage of deploy/Dockerfile, made of the repo's own scripts so the
# image is built exactly as a developer builds (and as tests/e2e/test_deploy.py checks).
#   deploy/build-in-image.sh deps              Debian build packages (scripts/setup.sh --build-only)
#   deploy/build-in-image.sh build             build/appgw (scripts/build.sh release)
#   deploy/build-in-image.sh stage OUT [BIN]   the image's /app: OUT/appgw (BIN, default
#                                              build/appgw, stripped) and OUT/applicationgateway
#                                              -> appgw, the path the original's Deployment runs
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  deps)
    bash scripts/setup.sh --build-only
    ;;
  build)
    bash scripts/build.sh release
    ;;
  stage)
    out=${2:?usage: $0 stage OUTDIR [BINARY]}
    bin=${3:-build/appgw}
    mkdir -p "$out"
    # Debug info stays in the build stage; the image gets the stripped binary.
    strip --strip-unneeded -o "$out/appgw" "$bin"
    chmod 0755 "$out/appgw"
    ln -sfn appgw "$out/applicationgateway"
    ;;
  *)
    echo "usage: $0 deps | build | stage OUTDIR [BINARY]" >&2
    exit 2
    ;;
esac
