#!/usr/bin/env bash
# The test command (README and CI): every suite, then one line summing them all:
# "N passed, N failed". Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# ava runs with --tap, whose closing lines are "# pass N" and "# fail N".
count_ava() {
  local status=$1 p f
  p=$(grep -Eo '^# pass [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1)
  f=$(grep -Eo '^# fail [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "== $2: $p passed, $f failed"
}

# cargo's lines: "test result: ok. 11 passed; 0 failed; ..."
count_cargo() {
  local status=$1 p f
  p=$(grep -Eo '[0-9]+ passed;' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed;' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
  p=${p:-0}; f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "== $2: $p passed, $f failed"
}

# A runner's own closing line "N passed, N failed".
count_plain() {
  local status=$1 line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  p=$(echo "$line" | grep -Eo '^[0-9]+'); f=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  p=${p:-0}; f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "== $2: $p passed, $f failed"
}

# Both are no-ops when up to date: the addon and dist/ (the CLI and install
# tests use them) and the Python peer's virtualenv (the interop tests).
bash scripts/build.sh
bash scripts/python-env.sh

echo "== cargo test (rpcudp-core)"
cargo test -p rpcudp-core --release 2>&1 | tee "$log"
count_cargo "${PIPESTATUS[0]}" "cargo test"

echo "== ava (every spec; each behaviour on the native and the pure backend)"
npx ava --tap 2>&1 | tee "$log"
count_ava "${PIPESTATUS[0]}" "ava"

echo "== ava, Kademlia churn on real sockets (alone: its assertions are latencies)"
npx ava __test__/kademlia-churn.spec.ts --config ava.churn.config.cjs --tap 2>&1 | tee "$log"
count_ava "${PIPESTATUS[0]}" "ava (churn)"

echo "== ava, native backend receiving on the runtime thread (nativeIo: 'thread')"
RPCUDP_NATIVE_IO=thread npx ava __test__/protocol.spec.ts __test__/hostile.spec.ts --match '[native]*' --tap 2>&1 | tee "$log"
count_ava "${PIPESTATUS[0]}" "ava (nativeIo thread)"

echo "== runtime conformance (dist/ under Node 20/22/24/26, Bun and Deno; every backend and nativeIo)"
[ -d __test__/runtime/node_modules ] || npm ci --prefix __test__/runtime --no-audit --no-fund
node __test__/runtime/run-all.cjs 2>&1 | tee "$log"
count_plain "${PIPESTATUS[0]}" "runtime conformance"

echo "== typecheck (src, tests, examples, bench)"
if npx tsc --noEmit -p tsconfig.json 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
  passed=$((passed + 1)); echo "== typecheck: 1 passed, 0 failed"
else
  failed=$((failed + 1)); echo "== typecheck: 0 passed, 1 failed"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
