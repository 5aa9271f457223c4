#!/usr/bin/env bash
# The local demo: six real redis-server processes, each on its own loopback IP and port 6379 like
# pods, bootstrapped by the release binary in static mode; then a second run to show it changes
# nothing, and redis-cli's own check. Everything is stopped and removed at the end.
#
#   scripts/demo.sh            # 6 nodes, 1 replica per master
#   NODES=9 REPLICAS=2 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-6}
REPLICAS=${REPLICAS:-1}
BLOCK=${BLOCK:-200}   # 127.0.200.0/24, see tests/common/BLOCKS.md

scripts/install-deps.sh
cargo build --release --locked --quiet
bin=target/release/redis-cluster-bootstrap

work=$(mktemp -d -t redis-demo-XXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

list=()
for i in $(seq 0 $((NODES - 1))); do
  ip=127.0.$BLOCK.$((11 + i))
  mkdir -p "$work/redis-app-$i"
  # The guide's redis.conf, plus one loopback IP per "pod".
  redis-server --port 6379 --bind "$ip" --bind-source-addr "$ip" --protected-mode no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --appendonly yes --dir "$work/redis-app-$i" --logfile redis.log --daemonize no &
  pids+=($!)
  list+=("$ip:6379")
done
for addr in "${list[@]}"; do
  until redis-cli -h "${addr%:*}" -p 6379 ping >/dev/null 2>&1; do sleep 0.05; done
done
nodes=$(IFS=,; echo "${list[*]}")

echo "== bootstrap $NODES fresh nodes: BOOTSTRAP_NODES=$nodes"
BOOTSTRAP_NODES=$nodes BOOTSTRAP_REPLICAS_PER_MASTER=$REPLICAS $bin
echo
echo "== run it again: already formed, nothing changes"
BOOTSTRAP_NODES=$nodes BOOTSTRAP_REPLICAS_PER_MASTER=$REPLICAS $bin
echo
echo "== redis-cli --cluster check ${list[0]}"
redis-cli --cluster check "${list[0]}"
