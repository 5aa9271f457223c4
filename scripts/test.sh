#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh Debian machine, then
# checks formatting and lints and runs every test: unit tests, real Redis nodes on loopback, the
# fake Kubernetes API, the rendered manifests (with their strict schema validation), the real-node
# tests a second time on Valkey, the static-dependency check and the benchmark's smoke run.
#
# The last line is the count of everything run: `tests: N passed, M failed` (every cargo test case,
# plus one for each other check). The exit status is 0 only when M is 0.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
log=$(mktemp -t bootstrap-tests-XXXX)
trap 'rm -f "$log"; echo "tests: $passed passed, $failed failed"' EXIT

# One check that is not a cargo test: counted as one.
check() {
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}

# A cargo test run, counted case by case from its "test result:" lines. A run that fails before
# any result (a build error) counts as one failure.
cargo_test() {
  local rc=0 before=$((passed + failed)) p f
  cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$log" || rc=$?
  while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
  done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$log")
  if [ "$rc" -ne 0 ] && [ "$((passed + failed))" -eq "$before" ]; then
    failed=$((failed + 1))
  fi
}

scripts/install-deps.sh
# Formatting and lints first: with either failing, the rest is not worth 10 minutes.
check cargo fmt --all -- --check
check cargo clippy --locked --all-targets -- -D warnings
[ "$failed" -eq 0 ] || exit 1

# Everything once, with Redis (Debian's 7.0): unit, real nodes, fake API, manifests.
cargo_test
# The real-node integration tests again with Valkey 8.0 (unit and manifest tests do not depend on
# the server, so they run once).
BOOTSTRAP_TEST_SERVER=valkey cargo_test \
  --test static_mode --test refusals --test reliability --test kubernetes_mode --test round_trip \
  --test remesh --test interrupt --test announced_addresses --test placement --test replace \
  --test acl --test grow --test tls --test shrink --test pod --test external_access --test repair \
  --test rdb --test secrets --test replica_states --test backup --test backup_secure

# The release binary, built as the Dockerfile builds it, needs only what the distroless image has.
check scripts/check-static-deps.sh
# The benchmark's smoke run (N=6, one run per tool; not timed): it must print its table.
smoke() {
  local table
  table=$(python3 bench/bench.py --smoke) || return 1
  grep -q '^| bootstrap | 1000 ms | 6 | 1 |' <<<"$table" &&
    grep -q '^| redis-cli | 1000 ms | 6 | 1 |' <<<"$table" &&
    grep -q '^| premeshed | 1000 ms | 6 | 1 |' <<<"$table"
}
check smoke
# The reshard benchmark's smoke run (6 -> 8 nodes, 20,000 keys, one run per tool; not timed): both
# tools balance the cluster and the concurrent writer loses nothing (else it exits non-zero).
reshard_smoke() {
  local table
  table=$(python3 bench/reshard.py --smoke) || return 1
  grep -q '^| 20,000 × 16 B | bootstrap | 1/1 |' <<<"$table" &&
    grep -q '^| 20,000 × 16 B | redis-cli | 1/1 |' <<<"$table"
}
check reshard_smoke
[ "$failed" -eq 0 ]
