#!/usr/bin/env bash
# Regenerates the parity fixtures of packages/memmamba/test/reference.test.ts:
#   1. TypeScript: weights, inputs and configs   (export-fixture-weights.ts, under Bun)
#   2. PyTorch:    expected logits, loss, grads  (python -m memmamba_ref.fixtures)
# Usage: packages/memmamba/reference/regen-fixtures.sh    (from anywhere)
# PYTHON picks the interpreter that has torch (default: Debian's /usr/bin/python3).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
start=$(date +%s)
cd "$ROOT"
"$ROOT/tools/node_modules/.bin/bun" packages/memmamba/reference/export-fixture-weights.ts
cd "$HERE"
PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m memmamba_ref.fixtures "$@"
echo "regen-fixtures: done in $(( $(date +%s) - start ))s; check with: tools/node_modules/.bin/bun test packages/memmamba/test/reference.test.ts"
