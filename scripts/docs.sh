#!/usr/bin/env bash
# Builds the API reference of the published packages into out/api/ (open out/api/index.html),
# after `deno doc --lint` (through scripts/docs-lint.mjs, which lists the few findings we accept),
# which fails on an exported symbol without a doc comment or without an explicit type.
# Usage: bash scripts/docs.sh [--lint-only]   (npm run docs / deno task docs)
#
# Why a scratch workspace: Deno reads the root tsconfig.json, whose "types": ["bun-types"] (there
# for tsc and Bun) makes deno doc print ~90 "Failed resolving types" warnings about @types/node
# that have nothing to do with our code. out/.docs-workspace holds the same deno.json and links to
# packages/ and node_modules/, without the tsconfig.json, so the output shows only real problems.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO="$PWD/tools/node_modules/.bin/deno"
[ -x "$DENO" ] || { echo "docs.sh: $DENO missing; run 'npm ci' first" >&2; exit 2; }
case "${1:-}" in
  ""|--lint-only) ;;
  -h|--help) sed -n '2,5p' "$0" | sed 's/^# //'; exit 0 ;;
  *) echo "docs.sh: unknown argument '$1' (expected --lint-only or nothing)" >&2; exit 2 ;;
esac

ENTRIES=(packages/tensor/src/index.ts packages/memmamba/src/index.ts packages/cli/src/index.ts)
WS=out/.docs-workspace
rm -rf "$WS"
mkdir -p "$WS"
cp deno.json "$WS/deno.json"
ln -s ../../packages "$WS/packages"
ln -s ../../node_modules "$WS/node_modules"
cd "$WS"
export NO_COLOR=1
echo "== deno doc --lint ${ENTRIES[*]} =="
node ../../scripts/docs-lint.mjs "$DENO" "${ENTRIES[@]}"
[ "${1:-}" = --lint-only ] && exit 0
rm -rf ../api
echo "== deno doc --html --output=out/api =="
"$DENO" doc --html --name="MemMamba" --output=../api "${ENTRIES[@]}"
echo "API reference: out/api/index.html"
