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
