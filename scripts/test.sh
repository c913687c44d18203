#!/usr/bin/env bash
# Runs every test file under Bun and under Deno, plus the compile-time shape tests (tsc --noEmit),
# and ends with one line "N passed, N failed" that sums all of them. Exits non-zero on any failure.
# Usage: scripts/test.sh [path filter passed to both runners, e.g. packages/tensor]
set -uo pipefail
for a in "$@"; do
  case "$a" in
    -h|--help)
      cat <<'USAGE'
Usage: scripts/test.sh [PATH...]

Runs the typecheck (tsc --noEmit: the compile-time shape tests), then every *.test.ts under PATH
(default: packages test examples) under Bun and under Deno, and ends with "N passed, N failed".
Exits non-zero on any failure. Logs go to $TEST_LOG_DIR (default out/test-logs).
  PATH        a folder or test file passed to both runners, e.g. packages/tensor
  -h, --help  this text (nothing is run)
USAGE
      exit 0 ;;
  esac
done
cd "$(dirname "$0")/.."
BIN="$PWD/tools/node_modules/.bin"
[ -x "$BIN/bun" ] && [ -x "$BIN/deno" ] || { echo "test.sh: bun/deno missing; run 'npm ci' first" >&2; exit 2; }
LOG=${TEST_LOG_DIR:-$PWD/out/test-logs}
mkdir -p "$LOG"
filter=("$@")
[ ${#filter[@]} -eq 0 ] && filter=(packages test examples)
passed=0; failed=0; status=0

echo "== typecheck (tsc --noEmit: compile-time shape tests) =="
if node_modules/.bin/tsc --noEmit -p tsconfig.json > "$LOG/tsc.log" 2>&1; then
  passed=$((passed + 1)); echo "typecheck: ok"
else
  failed=$((failed + 1)); status=1; cat "$LOG/tsc.log"; echo "typecheck: FAILED"
fi

echo "== bun test =="
"$BIN/bun" test --timeout 600000 "${filter[@]}" 2>&1 | tee "$LOG/bun.log"
brc=${PIPESTATUS[0]}
bp=$(grep -E '^ *[0-9]+ pass$' "$LOG/bun.log" | tail -1 | awk '{print $1}')
bf=$(grep -E '^ *[0-9]+ fail$' "$LOG/bun.log" | tail -1 | awk '{print $1}')
bp=${bp:-0}; bf=${bf:-0}
if [ "$brc" -ne 0 ] && [ "$bf" -eq 0 ]; then bf=1; fi   # a crash or a load error counts as a failure
[ "$bp" -eq 0 ] && { echo "bun ran no test"; bf=$((bf + 1)); }
passed=$((passed + bp)); failed=$((failed + bf)); [ "$brc" -ne 0 ] && status=1

echo "== deno test =="
files=$(find "${filter[@]}" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
NO_COLOR=1 "$BIN/deno" test --allow-all --unstable-webgpu --no-check $files 2>&1 | tee "$LOG/deno.log"
drc=${PIPESTATUS[0]}
line=$(grep -E '(ok|FAILED) \| [0-9]+ passed' "$LOG/deno.log" | tail -1)
# Known defect, not yet fixed: in about 1 of 6 full runs Deno aborts (SIGABRT, glibc "corrupted
# size vs. prev_size" / "double free") while tearing down native resources after the last test
# file, with every test already reported passed. Only in exactly that case — summary "ok | N passed
# | 0 failed" printed, exit status 134 — the whole Deno run is repeated once, loudly, and the
# repeat must pass on its own; any test failure, or a second abort, fails as before.
if [ "$drc" -eq 134 ] && [[ "$line" =~ ^ok\ \|\ [0-9]+\ passed\ \|\ 0\ failed ]]; then
  echo "test.sh: deno aborted (exit 134) at teardown after all tests passed: the known native-teardown crash; running the Deno tests once more"
  cp "$LOG/deno.log" "$LOG/deno-aborted.log"
  NO_COLOR=1 "$BIN/deno" test --allow-all --unstable-webgpu --no-check $files 2>&1 | tee "$LOG/deno.log"
  drc=${PIPESTATUS[0]}
  line=$(grep -E '(ok|FAILED) \| [0-9]+ passed' "$LOG/deno.log" | tail -1)
fi
dp=$(echo "$line" | sed -E 's/.*\| ([0-9]+) passed.*/\1/'); dp=${dp:-0}
df=$(echo "$line" | sed -E 's/.*\| ([0-9]+) failed.*/\1/'); [[ "$df" =~ ^[0-9]+$ ]] || df=0
if [ "$drc" -ne 0 ] && [ "$df" -eq 0 ]; then df=1; fi
[ "$dp" -eq 0 ] && { echo "deno ran no test"; df=$((df + 1)); }
passed=$((passed + dp)); failed=$((failed + df)); [ "$drc" -ne 0 ] && status=1

echo "bun: $bp passed, $bf failed; deno: $dp passed, $df failed; typecheck counted as one test"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
