#!/usr/bin/env bash
# Re-extracts console/assets/preact-htm-3.1.1.js: npm `htm@3.1.1`'s `preact/standalone.module.js`
# (Preact + hooks + htm in one ES module without imports), unchanged, and checks the pinned
# SHA-256 (11-owner-console.md §5). Run by hand when re-vendoring; the tests never run it (they
# check the committed file's hash).
set -euo pipefail
VERSION=3.1.1
SHA256=72284e8e9079c87817145df1110f74e8a2aa040b2fc384922e18dfcb46fc1fd7
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/console/assets/preact-htm-$VERSION.js"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "htm@$VERSION" >/dev/null && tar -xzf "htm-$VERSION.tgz")
cp "$TMP/package/preact/standalone.module.js" "$OUT"
echo "$SHA256  $OUT" | sha256sum --check --quiet
echo "vendored $(wc -c <"$OUT") bytes into $OUT (SHA-256 $SHA256)"
