#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh Debian machine, then
# checks formatting and lints and runs every test: unit tests, real redis-server nodes on loopback,
# the fake Kubernetes API, the rendered manifests, and the benchmark's smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# The release binary, built as the Dockerfile builds it, needs only what the distroless image has.
scripts/check-static-deps.sh
# The benchmark's smoke run (N=6, one run per tool; not timed): it must print its table.
table=$(python3 bench/bench.py --smoke)
grep -q '^| bootstrap | 1000 ms | 6 | 1 |' <<<"$table"
grep -q '^| redis-cli | 1000 ms | 6 | 1 |' <<<"$table"
grep -q '^| premeshed | 1000 ms | 6 | 1 |' <<<"$table"
