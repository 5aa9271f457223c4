#!/usr/bin/env bash
# Builds the release binary (`cargo build --locked --release`) and prints its path on stdout, as
# cargo reports it: CARGO_TARGET_DIR, a target-dir in .cargo/config.toml or --target-dir are all
# honoured, because nothing here guesses where target/ is. Progress goes to stderr.
#
#   bin=$(scripts/release-binary.sh)
#
# Used by scripts/demo.sh, scripts/check-static-deps.sh and bench/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "release-binary: $*" >&2; }

target_dir=$(cargo metadata --locked --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ ! -d "$target_dir/release/deps" ]; then
  # Nothing was built in this target directory yet: every dependency is compiled once.
  say "first release build in $target_dir: compiling ~300 crates, about 7 minutes on 2 cores (later builds take seconds)"
fi
started=$(date +%s)
# JSON messages on stdout (one per artifact), cargo's usual progress and diagnostics on stderr.
binary=$(cargo build --locked --release --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\/redis-cluster-bootstrap\)".*/\1/p' | tail -n 1)
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  say "cargo did not report the redis-cluster-bootstrap executable"
  exit 1
fi
elapsed=$(($(date +%s) - started))
[ "$elapsed" -lt 10 ] || say "built $binary in ${elapsed}s"
echo "$binary"
