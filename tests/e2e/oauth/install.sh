#!/usr/bin/env bash
# install.sh: installs the OAuth test server's npm dependencies (oidc-provider, pinned in
# package-lock.json) into tests/e2e/oauth/node_modules, only when they are missing or were
# installed from another package-lock.json / Node.js major version. Safe to run repeatedly.
#
# Needs node >= 18 and npm: scripts/setup.sh installs Debian's `nodejs` and `npm` when either is
# missing (an existing Node.js, e.g. a nodesource build that bundles npm, is left alone: Debian's
# npm package conflicts with those).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "oauth: node and npm are needed (scripts/setup.sh installs Debian's nodejs and npm)" >&2
  exit 1
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "oauth: node $(node --version) is too old; oidc-provider 8 needs node >= 18" >&2
  exit 1
fi

stamp="node_modules/.appgw-e2e-installed"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node$major"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && node -e 'import("oidc-provider").then(() => process.exit(0), () => process.exit(1))' 2>/dev/null; then
  echo "oauth: node_modules up to date (node $(node --version))"
  exit 0
fi

echo "oauth: npm ci in $PWD (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error
node -e 'import("oidc-provider").then(() => process.exit(0), (e) => { console.error(e); process.exit(1); })'
echo "$want" > "$stamp"
echo "oauth: installed $(node -p 'require("./node_modules/oidc-provider/package.json").version' 2>/dev/null || echo '?') oidc-provider"
