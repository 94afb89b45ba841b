#!/usr/bin/env bash
# Vendor the dashboard's JavaScript libraries into src/nomade/web/static/vendor/ (package data):
# each from npm at a pinned version, installed into a temporary directory, its built files and
# its licence copied, and VERSIONS written. The dashboard serves them itself: no CDN (compute
# clusters are often offline). Run it after changing a version below, then commit the result.
#
#   bash scripts/vendor_js.sh
set -euo pipefail

THREE_VERSION=0.187.0

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/src/nomade/web/static/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts --save-exact "three@$THREE_VERSION" >/dev/null

rm -rf "$dest"
mkdir -p "$dest"
# three's ES module build: three.module.js imports ./three.core.js (three publishes no minified
# build since r17x; the dashboard serves these files compressed)
cp node_modules/three/build/three.module.js node_modules/three/build/three.core.js "$dest/"
cp node_modules/three/LICENSE "$dest/LICENSE.three.txt"
installed=$(node -p "require('./node_modules/three/package.json').version")
[ "$installed" = "$THREE_VERSION" ] || { echo "three: got $installed, wanted $THREE_VERSION" >&2; exit 1; }
{
  echo "# Vendored JavaScript (scripts/vendor_js.sh); licences beside the files"
  echo "three $installed  MIT  https://www.npmjs.com/package/three  LICENSE.three.txt"
  echo "  files: $(cd "$dest" && ls *.js | tr '\n' ' ')"
  for f in "$dest"/*.js; do echo "  sha256 $(sha256sum "$f" | cut -d' ' -f1)  $(basename "$f")"; done
} > "$dest/VERSIONS"
echo "vendored into $dest:"
cat "$dest/VERSIONS"
