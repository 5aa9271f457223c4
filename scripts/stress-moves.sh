#!/usr/bin/env bash
# The stress run of the slot moves (tests/stress_moves.rs), on Redis then on Valkey: grows 9 -> 12
# pods with R = 2 and drains back to 9, each while a client writes, on several clusters at once
# (the load is what a slow replica needs), again and again. Every run must exit 0 and leave no
# slot open on any node. Not part of scripts/test.sh, which runs one grow and drain per server
# (tests/grow.rs); this catches what only load shows.
#
#   scripts/stress-moves.sh                  # 5 rounds of 2 clusters, per server
#   scripts/stress-moves.sh 10 3             # 10 rounds of 3 clusters
#   BOOTSTRAP_STRESS_BIN=/path/to/old/binary scripts/stress-moves.sh   # another build, to compare
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
clusters=${2:-2}
status=0
for server in redis valkey; do
  echo "stress-moves: $server, $runs round(s) of $clusters cluster(s)" >&2
  BOOTSTRAP_TEST_SERVER=$server BOOTSTRAP_STRESS_RUNS=$runs BOOTSTRAP_STRESS_CLUSTERS=$clusters \
    cargo test --locked --test stress_moves -- --ignored --nocapture || status=1
done
exit "$status"
