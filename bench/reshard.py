#!/usr/bin/env python3
"""Reshard benchmark: growing a loaded cluster by one shard, this project's binary beside
`redis-cli --cluster add-node` + `rebalance --cluster-use-empty-masters` on the same data.

Each run starts N + 1 + R redis-server processes (one loopback IP each, port 6379, like pods),
forms the first N with the binary, loads K keys (`key:<i>`, values of --value-size bytes) through
slot-aware pipelines, then starts a writer that keeps writing new keys through a minimal cluster
client (it follows MOVED and ASK like any cluster client) and timestamps every write. At t0:
  bootstrap  the binary, given all N + 1 + R nodes: the *grow* decision (MEET, REPLICATE, moves);
  redis-cli  `add-node` for the new master, `add-node --cluster-slave` for its replicas, waiting
             for the cluster to agree after each (what a person does, and what `rebalance`
             requires), then `rebalance --cluster-use-empty-masters`.
"balanced" is the first moment every node agrees (bench.py's "converged") and every master holds
16384/M slots +-1 with no slot open. Then the writer stops and every key is checked: the number of
keys in the masters equals K plus the writer's, and every key the writer was told OK reads back
with its value (no write lost).

Reported per tool: time until balanced, keys moved (the loaded keys in slots that changed owner)
per second, the tool's peak RSS (VmHWM, max over redis-cli's three processes), and the writer's
latency p50/p99/max (a write that was redirected counts from its first attempt).

    python3 bench/reshard.py                          # 1,000,000 keys of 16 B, then of 1 KB, 3 runs each
    python3 bench/reshard.py --smoke        # 20,000 keys of 16 B, one run per tool (CI)

Results: a Markdown table on stdout and in <out>/reshard.md, every run in <out>/reshard.json, the
plot in <out>/reshard.svg. Addresses: 127.210.0.0/16 - 127.219.0.0/16, one /16 per run
(tests/common/BLOCKS.md). Stdlib only.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (nodes, RESP client, poller, the tool's RSS sampler)

BLOCKS = range(210, 220)
TOOLS = ("bootstrap", "redis-cli")


# ---------------------------------------------------------------------------------------------
# Key slots (CRC16/XMODEM, as in the cluster spec)


def _table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


CRC = _table()


def key_slot(key):
    """The slot of `key` (bytes); no key here has a hash tag."""
    crc = 0
    for b in key:
        crc = ((crc << 8) & 0xFFFF) ^ CRC[(crc >> 8) ^ b]
    return crc % bench.SLOTS


def owners(conn):
    """slot -> "ip" of its master, from CLUSTER SLOTS."""
    conn.send("CLUSTER", "SLOTS")
    table = [None] * bench.SLOTS
    for start, end, master, *_ in conn.read():
        for s in range(int(start), int(end) + 1):
            table[s] = master[0]
    return table


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# ---------------------------------------------------------------------------------------------
# Data


def load(seed_conn, keys, value_size, batch=2000):
    """Writes key:0 .. key:<keys-1>, pipelined per master; returns the loaded keys per slot."""
    table = owners(seed_conn)
    conns = {ip: bench.Conn(ip) for ip in set(table)}
    value = b"v" * value_size
    per_slot = [0] * bench.SLOTS
    pending = {ip: [] for ip in conns}

    def flush(ip):
        cmds = pending[ip]
        if cmds:
            conns[ip].sock.sendall(b"".join(cmds))
            for _ in cmds:
                if conns[ip].read() != "OK":
                    raise RuntimeError(f"loading into {ip} failed")
            pending[ip] = []

    for i in range(keys):
        key = b"key:%d" % i
        slot = key_slot(key)
        per_slot[slot] += 1
        ip = table[slot]
        pending[ip].append(resp(b"SET", key, value))
        if len(pending[ip]) >= batch:
            flush(ip)
    for ip in conns:
        flush(ip)
        conns[ip].close()
    return per_slot


class Writer(threading.Thread):
    """A cluster client writing w:<i> one at a time until stopped: follows MOVED and ASK."""

    def __init__(self, seed_conn):
        super().__init__(daemon=True)
        self.table = owners(seed_conn)
        self.conns = {}
        self.stop = threading.Event()
        self.acked = []  # indexes whose SET was answered OK
        self.latencies = []
        # Per write (same order as latencies): when it started, and the node that answered it.
        self.started = []
        self.answered_by = []
        self.last_ip = None
        self.redirects = {"MOVED": 0, "ASK": 0, "TRYAGAIN": 0}
        self.errors = []

    def conn(self, ip):
        if ip not in self.conns:
            self.conns[ip] = bench.Conn(ip, timeout=10)
        return self.conns[ip]

    def request(self, key, *cmd):
        """Sends `cmd` (about `key`) to the slot's owner, following MOVED/ASK; returns the reply,
        or None after an error (kept in self.errors)."""
        slot = key_slot(key)
        ip, asking = self.table[slot], False
        for _ in range(16):
            c = self.conn(ip)
            c.sock.sendall((resp(b"ASKING") if asking else b"") + resp(*cmd))
            try:
                if asking:
                    c.read()
                reply = c.read()
                self.last_ip = ip
                return reply
            except RuntimeError as e:  # bench.Conn raises "<ip>: <error line>"
                kind, *rest = str(e).split(": ", 1)[1].split(" ")
                if kind == "MOVED":
                    ip = self.table[slot] = rest[1].rsplit(":", 1)[0]
                    asking = False
                elif kind == "ASK":
                    ip, asking = rest[1].rsplit(":", 1)[0], True
                elif kind == "TRYAGAIN":
                    time.sleep(0.001)
                else:
                    self.errors.append(str(e))
                    return None
                self.redirects[kind] += 1
        self.errors.append(f"{key}: too many redirections")
        return None

    def run(self):
        i = 0
        while not self.stop.is_set():
            t = time.monotonic()
            key = b"w:%d" % i
            if self.request(key, b"SET", key, key) == "OK":
                self.latencies.append(time.monotonic() - t)
                self.started.append(t)
                self.answered_by.append(self.last_ip)
                self.acked.append(i)
            i += 1

    def verify(self, seed_conn):
        """Every acknowledged write reads back; returns the number lost."""
        self.table = owners(seed_conn)
        lost = 0
        for i in self.acked:
            key = b"w:%d" % i
            if self.request(key, b"GET", key) != key.decode():
                lost += 1
        for c in self.conns.values():
            c.close()
        return lost


# ---------------------------------------------------------------------------------------------
# One run


def balanced(conns, masters):
    """Every node's CLUSTER NODES: M masters with 16384/M +-1 slots each, no slot open."""
    low, high = bench.SLOTS // masters, -(-bench.SLOTS // masters)
    for text in bench.fan_out(conns, "CLUSTER", "NODES"):
        counts = []
        for f in (l.split(" ") for l in text.splitlines() if l):
            if "master" in f[2] and len(f) > 8:
                if any(r.startswith("[") for r in f[8:]):
                    return False
                counts.append(sum(int(r.split("-")[-1]) - int(r.split("-")[0]) + 1
                                  for r in f[8:]))
        if len(counts) != masters or not all(low <= c <= high for c in counts):
            return False
    return True


def wait_agreed(conns, n, masters, deadline):
    poller = bench.Poller(conns, n, masters)
    while not poller.converged():
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not agree in time")
        time.sleep(0.02)


def form(binary, addresses, replicas, log):
    env = dict(os.environ, BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in addresses),
               BOOTSTRAP_REPLICAS_PER_MASTER=str(replicas))
    tool = bench.Tool([binary], env, log)
    tool.finish(300)
    if tool.exit_code != 0:
        raise RuntimeError(f"the binary exited {tool.exit_code} on {len(addresses)} nodes")
    return tool


def redis_cli(conns, addresses, old, log, deadline):
    """add-node for the new master and each replica, waiting after each until every node knows
    every other (what a person does; `rebalance` refuses while views disagree), then rebalance."""
    new_master = addresses[old]
    seed = f"{addresses[0]}:6379"
    rss, code = [], 0
    for k, ip in enumerate(addresses[old:]):
        argv = ["redis-cli", "--cluster", "add-node", f"{ip}:6379", seed]
        if ip != new_master:
            conns[old].send("CLUSTER", "MYID")
            argv += ["--cluster-slave", "--cluster-master-id", conns[old].read()]
        tool = bench.Tool(argv, dict(os.environ), log)
        tool.finish(300)
        rss.append(tool.maxrss_kb or 0)
        code = code or tool.exit_code
        wait_known(conns[:old + k + 1], old + k + 1, deadline)
    # A master that just joined empty answers CLUSTERDOWN for up to cluster-node-timeout, and
    # rebalance fails on its first MIGRATE into it: a person waits for cluster_state:ok.
    while not all("cluster_state:ok" in t for t in bench.fan_out(conns, "CLUSTER", "INFO")):
        if time.monotonic() > deadline:
            raise RuntimeError("the new nodes did not report cluster_state:ok in time")
        time.sleep(0.02)
    argv = ["redis-cli", "--cluster", "rebalance", seed, "--cluster-use-empty-masters"]
    tool = bench.Tool(argv, dict(os.environ), log)
    tool.finish(max(1.0, deadline - time.monotonic()))
    rss.append(tool.maxrss_kb or 0)
    return (code or tool.exit_code), max(rss)


def wait_known(conns, n, deadline):
    """Every node knows n nodes, every link connected, no bad flag, no handshake."""
    while True:
        texts = bench.fan_out(conns, "CLUSTER", "NODES")
        if all(bench.meshed(t, n) for t in texts):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the new nodes did not join in time")
        time.sleep(0.02)


def run_once(tool, args, keys, value_size, block, binary):
    old = args.nodes
    total = old + 1 + args.replicas
    masters_after = old // (1 + args.replicas) + 1
    addresses = bench.ips(block, total)
    result = {"tool": tool, "nodes": f"{old}->{total}", "keys": keys, "value_size": value_size,
              "block": block, "load_1m": round(os.getloadavg()[0], 2)}
    cluster = bench.Cluster(addresses, args.timeout_ms, 0)
    log = tempfile.TemporaryFile()
    conns = []
    try:
        form(binary, addresses[:old], args.replicas, log)
        conns = [bench.Conn(ip) for ip in addresses]
        wait_agreed(conns[:old], old, old // (1 + args.replicas), time.monotonic() + 60)
        t = time.monotonic()
        per_slot = load(conns[0], keys, value_size)
        result["load_s"] = round(time.monotonic() - t, 2)
        print(f"    loaded {keys:,} keys in {result['load_s']} s", file=sys.stderr)
        before = owners(conns[0])
        writer = Writer(conns[0])
        writer.start()
        time.sleep(args.warmup)
        t0 = time.monotonic()
        deadline = t0 + args.run_timeout
        outcome = {}

        def drive():
            if tool == "bootstrap":
                env = dict(os.environ,
                           BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in addresses),
                           BOOTSTRAP_REPLICAS_PER_MASTER=str(args.replicas),
                           BOOTSTRAP_CONVERGE_TIMEOUT=f"{int(args.run_timeout)}s")
                proc = bench.Tool([binary], env, log)
                proc.finish(args.run_timeout)
                outcome.update(code=proc.exit_code, rss=proc.maxrss_kb)
            else:
                code, rss = redis_cli(conns, addresses, old, log, deadline)
                outcome.update(code=code, rss=rss)
            outcome["exit_s"] = round(time.monotonic() - t0, 2)

        runner = threading.Thread(target=drive, daemon=True)
        runner.start()
        # The watcher has its own connections: redis_cli() uses `conns` from the runner thread.
        watch = [bench.Conn(ip) for ip in addresses]
        poller = bench.Poller(watch, total, masters_after)
        first_open = done = None
        while time.monotonic() < deadline:
            if first_open is None and any(
                    "[" in t for t in bench.fan_out(watch, "CLUSTER", "NODES")):
                first_open = time.monotonic() - t0  # an open slot: keys start moving
            if poller.converged() and balanced(watch, masters_after):
                done = time.monotonic() - t0
                break
            time.sleep(0.02)
        runner.join(max(1.0, deadline - time.monotonic()))
        for c in watch:
            c.close()
        code, rss = outcome.get("code"), outcome.get("rss")
        result["tool_exit_s"] = outcome.get("exit_s")
        print(f"    {tool} exited {code} after {result['tool_exit_s']} s; first open slot at "
              f"{first_open} s, balanced at {done} s", file=sys.stderr)
        writer.stop.set()
        writer.join()
        after = owners(conns[0])
        moved = sum(per_slot[s] for s in range(bench.SLOTS) if before[s] != after[s])
        in_masters = 0
        for c, text in zip(conns, bench.fan_out(conns, "ROLE")):
            if text[0] == "master":
                c.send("DBSIZE")
                in_masters += int(c.read())
        lost = writer.verify(conns[0])
        lat = sorted(writer.latencies)
        result["latency_by"] = latency_breakdown(writer, t0, first_open, done,
                                                 set(addresses[old:]))
        result.update(
            exit_code=code, balanced_s=None if done is None else round(done, 2),
            keys_moved=moved, keys_per_s=None if not done else round(moved / done),
            moving_s=None if done is None or first_open is None else round(done - first_open, 2),
            moving_keys_per_s=None if done is None or first_open is None
            else round(moved / max(done - first_open, 0.001)),
            maxrss_kb=rss, writes=len(writer.acked), writes_lost=lost,
            write_errors=len(writer.errors), redirects=writer.redirects,
            keys_missing=keys + len(writer.acked) - in_masters,
            p50_ms=round(1000 * lat[len(lat) // 2], 2) if lat else None,
            p99_ms=round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2) if lat else None,
            max_ms=round(1000 * lat[-1], 1) if lat else None)
        if code != 0 or done is None or lost or result["keys_missing"] or writer.errors:
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-15:]
            print(f"  {tool}: exit={code} balanced={done} lost={lost} missing="
                  f"{result['keys_missing']} errors={writer.errors[:3]}\n    "
                  + "\n    ".join(tail), file=sys.stderr)
    finally:
        for c in conns:
            c.close()
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
            log.seek(0)
            name = f"{tool}-{keys}x{value_size}-{block}-{int(time.time())}.log"
            with open(os.path.join(args.logs, name), "wb") as fh:
                fh.write(log.read())
        log.close()
        cluster.kill()
    return result


def latency_breakdown(writer, t0, first_open, done, new_nodes):
    """What drives the tail: p99 and count of the writes before keys moved, while they moved,
    and after; and, while they moved, of the writes the new nodes answered and the others."""
    def summary(lats):
        lats = sorted(lats)
        return {"writes": len(lats),
                "p99_ms": round(1000 * lats[min(len(lats) - 1, int(len(lats) * 0.99))], 2)
                if lats else None}

    start = t0 + (first_open or 0)
    end = t0 + (done or 0)
    phases = {"before": [], "moving": [], "after": []}
    moving_new, moving_old = [], []
    for t, lat, ip in zip(writer.started, writer.latencies, writer.answered_by):
        phase = "before" if t < start else "moving" if t < end else "after"
        phases[phase].append(lat)
        if phase == "moving":
            (moving_new if ip in new_nodes else moving_old).append(lat)
    out = {k: summary(v) for k, v in phases.items()}
    out["moving_new_master"] = summary(moving_new)
    out["moving_old_masters"] = summary(moving_old)
    slowest = sorted(zip(writer.latencies, writer.started, writer.answered_by), reverse=True)[:5]
    out["slowest"] = [{"ms": round(1000 * lat, 1), "at_s": round(t - t0, 3), "node": ip}
                      for lat, t, ip in slowest]
    return out


# ---------------------------------------------------------------------------------------------
# Report


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(runs):
    rows = ["| keys × value | tool | runs | balanced (t0 → balanced) | keys moved | keys/s | ratio "
            "| moving (first open slot → balanced) | keys/s moving | ratio | peak RSS "
            "| writes p50 / p99 / max | writes lost |",
            "|" + "---|" * 13]
    by = {}
    for r in runs:
        by.setdefault((r["keys"], r["value_size"]), {}).setdefault(r["tool"], []).append(r)

    def num(v, fmt):
        return "—" if v is None else fmt.format(v)

    for (keys, size), tools in by.items():
        base = median(tools.get("redis-cli", []), "keys_per_s")
        base_moving = median(tools.get("redis-cli", []), "moving_keys_per_s")
        for tool, rs in tools.items():
            kps, mkps = median(rs, "keys_per_s"), median(rs, "moving_keys_per_s")
            ok = sum(r["exit_code"] == 0 and r["balanced_s"] is not None for r in rs)
            rss = median(rs, "maxrss_kb")
            cells = [
                f"{keys:,} × {size} B", tool, f"{ok}/{len(rs)}",
                num(median(rs, "balanced_s"), "{:.1f} s"), f"{int(median(rs, 'keys_moved')):,}",
                num(kps, "{:,.0f}"), f"{kps / base:.1f}×" if kps and base else "—",
                num(median(rs, "moving_s"), "{:.1f} s"), num(mkps, "{:,.0f}"),
                f"{mkps / base_moving:.1f}×" if mkps and base_moving else "—",
                num(None if rss is None else rss / 1024, "{:.1f} MB"),
                f"{median(rs, 'p50_ms')} / {median(rs, 'p99_ms')} / {median(rs, 'max_ms')} ms",
                str(sum(r["writes_lost"] + r["keys_missing"] for r in rs)),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def svg(runs, path):
    """Keys per second per tool and workload, as bars."""
    by = {}
    for r in runs:
        by.setdefault(f"{r['keys']:,} × {r['value_size']} B", {}).setdefault(
            r["tool"], []).append(r)
    groups = list(by.items())
    top = max((median(rs, "keys_per_s") or 0) for _, t in groups for rs in t.values()) or 1
    width, height, bar = 160 * len(groups) + 80, 260, 50
    colors = {"bootstrap": "#1f77b4", "redis-cli": "#ff7f0e"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="10" y="16">keys moved per second, 6 → 8 nodes (higher is better)</text>']
    for g, (label, tools) in enumerate(groups):
        x0 = 60 + 160 * g
        for k, tool in enumerate(TOOLS):
            kps = median(tools.get(tool, []), "keys_per_s") or 0
            h = 190 * kps / top
            x = x0 + k * (bar + 5)
            out.append(f'<rect x="{x}" y="{220 - h:.0f}" width="{bar}" height="{h:.0f}" '
                       f'fill="{colors[tool]}"/>')
            out.append(f'<text x="{x}" y="{215 - h:.0f}">{int(kps):,}</text>')
        out.append(f'<text x="{x0}" y="238">{label}</text>')
    for k, tool in enumerate(TOOLS):
        out.append(f'<rect x="{10 + 110 * k}" y="246" width="10" height="10" '
                   f'fill="{colors[tool]}"/><text x="{24 + 110 * k}" y="255">{tool}</text>')
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--nodes", type=int, default=6, help="nodes before growing (N)")
    ap.add_argument("--replicas", type=int, default=1, help="replicas per master (R)")
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys loaded before the move")
    ap.add_argument("--value-sizes", default="16,1024", help="value sizes, bytes (comma-separated)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and workload")
    ap.add_argument("--tools", default=",".join(TOOLS), help="which tools to run")
    ap.add_argument("--timeout-ms", type=int, default=5000, help="cluster-node-timeout, ms")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of writes before t0")
    ap.add_argument("--run-timeout", type=float, default=1800, help="give up a run after this, s")
    ap.add_argument("--bin", help="the bootstrap binary (default: cargo build --release)")
    ap.add_argument("--logs", metavar="DIR", help="keep each run's tool output in DIR")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "bench", "results"),
                    help="where reshard.md, .json and .svg go (default bench/results)")
    ap.add_argument("--smoke", action="store_true",
                    help="20,000 keys of 16 B, one run per tool, results in a temporary directory")
    args = ap.parse_args()
    if args.smoke:
        args.keys, args.value_sizes, args.runs, args.run_timeout = 20_000, "16", 1, 300
        args.out = tempfile.mkdtemp(prefix="redis-reshard-smoke-")
    binary = args.bin
    if binary is None:
        # Builds it and prints the path cargo reports: CARGO_TARGET_DIR is honoured.
        binary = subprocess.run([os.path.join(bench.ROOT, "scripts", "release-binary.sh")],
                                check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    os.makedirs(args.out, exist_ok=True)
    info = bench.machine()
    runs, k = [], random.randrange(len(BLOCKS))
    for size in [int(x) for x in args.value_sizes.split(",")]:
        for i in range(args.runs):
            for tool in args.tools.split(","):
                r = run_once(tool, args, args.keys, size, BLOCKS[k % len(BLOCKS)], binary)
                k += 1
                runs.append(r)
                print(f"  {tool} {args.keys} keys × {size} B run {i + 1}: balanced "
                      f"{r['balanced_s']} s, {r['keys_per_s']} keys/s, RSS {r['maxrss_kb']} kB, "
                      f"writes p50/p99/max {r['p50_ms']}/{r['p99_ms']}/{r['max_ms']} ms, lost "
                      f"{r['writes_lost']}; load {r['load_1m']}\n    p99 by phase: "
                      + ", ".join(f"{k} {v['p99_ms']} ms ({v['writes']})"
                                  for k, v in r.get("latency_by", {}).items() if k != "slowest")
                      + "\n    slowest: " + ", ".join(
                          f"{w['ms']} ms at {w['at_s']} s ({w['node']})"
                          for w in r.get("latency_by", {}).get("slowest", [])),
                      file=sys.stderr)
    text = table(runs)
    print(text)
    bench.write_results(args.out, "reshard", info, args, runs, text)
    svg(runs, os.path.join(args.out, "reshard.svg"))
    if args.smoke:
        # The smoke run's results were written only to prove they can be: nothing is left behind.
        shutil.rmtree(args.out, ignore_errors=True)
    ok = all(r["exit_code"] == 0 and r["balanced_s"] is not None and not r["writes_lost"]
             and not r["keys_missing"] for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
