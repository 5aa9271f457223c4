#!/usr/bin/env bash
# The local demo: six real redis-server processes, each on its own loopback IP and port 6379 like
# pods, bootstrapped by the release binary in static mode; then a second run to show it changes
# nothing, and redis-cli's own check. Everything is stopped and removed at the end.
#
#   scripts/demo.sh            # 6 nodes, 1 replica per master
#   NODES=9 REPLICAS=2 scripts/demo.sh
#   SERVER=valkey scripts/demo.sh   # valkey-server and valkey-cli instead of Redis
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-6}
REPLICAS=${REPLICAS:-1}
BLOCK=${BLOCK:-200}   # 127.0.200.0/24, see tests/common/BLOCKS.md
SERVER=${SERVER:-redis}
case "$SERVER" in
  redis | valkey) ;;
  *) echo "demo: SERVER=$SERVER: expected redis or valkey" >&2; exit 2 ;;
esac
server=$SERVER-server
cli=$SERVER-cli

scripts/install-deps.sh
# Prints the binary's path as cargo reports it (CARGO_TARGET_DIR is honoured), and says when the
# first build will take minutes.
bin=$(scripts/release-binary.sh)

work=$(mktemp -d -t redis-demo-XXXX)
pids=()
keep=""
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -n "$keep" ]; then
    echo "demo: the nodes' directories and logs are kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# A node that does not answer within 10 s stops the demo with its log, which is kept.
wait_up() {
  local i=$1 ip=$2 pid=$3 deadline=$((SECONDS + 10))
  until "$cli" -h "$ip" -p 6379 ping >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      keep=yes
      echo "demo: $server of redis-app-$i ($ip:6379) did not start; its log:" >&2
      cat "$work/redis-app-$i/redis.log" "$work/redis-app-$i/output.log" 2>/dev/null | sed 's/^/  /' >&2
      exit 1
    fi
    sleep 0.05
  done
}

list=()
for i in $(seq 0 $((NODES - 1))); do
  ip=127.0.$BLOCK.$((11 + i))
  mkdir -p "$work/redis-app-$i"
  # The guide's redis.conf, plus one loopback IP per "pod". What the server prints before it
  # opens its log file (a bad argument, say) goes to output.log beside it.
  "$server" --port 6379 --bind "$ip" --bind-source-addr "$ip" --protected-mode no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --appendonly yes --dir "$work/redis-app-$i" --logfile redis.log --daemonize no \
    >"$work/redis-app-$i/output.log" 2>&1 &
  pids+=($!)
  list+=("$ip:6379")
done
for i in $(seq 0 $((NODES - 1))); do
  wait_up "$i" "127.0.$BLOCK.$((11 + i))" "${pids[$i]}"
done
nodes=$(IFS=,; echo "${list[*]}")

echo "== bootstrap $NODES fresh nodes: BOOTSTRAP_NODES=$nodes"
BOOTSTRAP_NODES=$nodes BOOTSTRAP_REPLICAS_PER_MASTER=$REPLICAS "$bin"
echo
echo "== run it again: already formed, nothing changes"
BOOTSTRAP_NODES=$nodes BOOTSTRAP_REPLICAS_PER_MASTER=$REPLICAS "$bin"
echo
echo "== $cli --cluster check ${list[0]}"
"$cli" --cluster check "${list[0]}"
