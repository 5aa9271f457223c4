#!/usr/bin/env python3
"""Roll benchmark: what a rolling restart (`kubectl rollout restart`, an upgrade, a drain) costs the
clients, with and without the pod commands, and how long a full restart takes to heal by itself.

Every run starts 6 fresh redis-server processes (one loopback IP each, port 6379, each announcing
its IP and pod name as the StatefulSet's pods do), forms the cluster with the release binary, and
starts a client that appends to one list per shard (RPUSH), following MOVED, as fast as one
connection per shard allows. Then it plays the StatefulSet's roll, pod 5 down to pod 0:

- without the hook (the manifests before): SIGTERM, the pod away AWAY seconds, back on a new IP,
  the next pod once the node answers PING (the old readiness probe);
- with the hook (the manifests now): `redis-cluster-bootstrap handover` first, then the same
  SIGTERM and restart with `rejoin` started beside the node, the next pod once
  `redis-cluster-bootstrap ready` passes.

It reports each shard's longest gap between two acknowledged writes, and checks that every
acknowledged write is still there at the end. The second part restarts every pod at once on new
IPs (all hooks firing, then SIGTERM) and measures the time from the last pod's start until every
node agrees (bench.py's "converged"), with `rejoin` in each pod, against the bootstrap run a
CronJob would start (measured as if its tick came at that very moment: add up to one schedule
period of waiting for the tick).

    python3 bench/roll.py                 # 3 runs of each
    python3 bench/roll.py --runs 1 --away 2

Results: a Markdown table on stdout and in <out>/roll.md, every run in <out>/roll.json.
Addresses: 127.220.0.0/16 (each run its own /24s). Stdlib only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the RESP client and the "converged" poller)

TIMEOUT_MS = 5000
RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def crc16(data):
    """Redis Cluster's key hash (CRC16-CCITT, XMODEM)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def tags():
    """One hash tag per shard of a fresh 3-master cluster."""
    found = []
    for low, high in RANGES:
        found.append(next(f"s{n}" for n in range(10000) if low <= crc16(f"s{n}".encode()) % 16384 <= high))
    return found


def start(ip, d, i):
    """A pod: the guide's redis.conf, announcing its IP and its pod name."""
    return subprocess.Popen(
        ["redis-server", "--port", "6379", "--bind", ip, "--bind-source-addr", ip,
         "--protected-mode", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
         "--cluster-node-timeout", str(TIMEOUT_MS), "--appendonly", "yes", "--dir", d,
         "--logfile", "redis.log", "--repl-diskless-sync-delay", "0",
         "--cluster-announce-ip", ip, "--cluster-announce-hostname", f"redis-app-{i}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def answers(ip):
    try:
        c = bench.Conn(ip, timeout=1)
        try:
            c.send("PING")
            return c.read() == "PONG"
        finally:
            c.close()
    except (OSError, RuntimeError):
        return False


def wait_for(what, ok, limit=120):
    deadline = time.monotonic() + limit
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def binary_env(nodes, **extra):
    env = {"PATH": os.environ.get("PATH", ""), "BOOTSTRAP_NODES": ",".join(f"{ip}:6379" for ip in nodes)}
    env.update(extra)
    return env


class Pods:
    """Six pods in a temporary directory; `stop`, `back` and `kill` play the kubelet."""

    def __init__(self, block):
        self.block = block
        self.dir = tempfile.mkdtemp(prefix="redis-roll-")
        self.ips = [f"127.220.{block}.{11 + i}" for i in range(6)]
        self.procs = []
        for i, ip in enumerate(self.ips):
            os.mkdir(os.path.join(self.dir, f"redis-app-{i}"))
            self.procs.append(start(ip, os.path.join(self.dir, f"redis-app-{i}"), i))
        for ip in self.ips:
            wait_for(f"{ip} to answer", lambda ip=ip: answers(ip))

    def stop(self, i):
        """SIGTERM, and the wait for the process to end, as the kubelet stops a container."""
        self.procs[i].terminate()
        self.procs[i].wait(timeout=60)

    def back(self, i, ip):
        """The pod back from its volume on a new IP."""
        self.ips[i] = ip
        self.procs[i] = start(ip, os.path.join(self.dir, f"redis-app-{i}"), i)

    def kill(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Writer:
    """Appends 1, 2, 3, ... to one list per shard, through the shard's current master, following
    MOVED and trying every node when the master does not answer. Each shard has its own thread:
    a stalled shard does not slow the others."""

    def __init__(self, pods, shard_tags):
        self.pods = pods
        self.stop = threading.Event()
        self.results = {}
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in shard_tags]
        for t in self.threads:
            t.start()

    def _run(self, tag):
        key = f"{{{tag}}}:log"
        acked, longest, last, n, owner, conn = [], 0.0, None, 0, None, None
        while not self.stop.is_set():
            n += 1
            while not self.stop.is_set():
                try:
                    if conn is None:
                        ip = owner or self.pods.ips[n % len(self.pods.ips)]
                        conn = bench.Conn(ip, timeout=2)
                    conn.send("RPUSH", key, str(n))
                    conn.read()
                    now = time.monotonic()
                    if last is not None:
                        longest = max(longest, now - last)
                    last = now
                    acked.append(n)
                    break
                except RuntimeError as e:
                    text = str(e)
                    if " MOVED " in f" {text.split(': ', 1)[-1]}":
                        owner = text.split()[-1].rsplit(":", 1)[0]
                    else:
                        owner, n = None, n + 1
                        time.sleep(0.005)
                    if conn:
                        conn.close()
                    conn = None
                except OSError:
                    owner, n = None, n + 1
                    if conn:
                        conn.close()
                    conn = None
                    time.sleep(0.005)
        self.results[tag] = (acked, longest)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.results


def lost(pods, results):
    """Acknowledged numbers missing from their lists at the end."""
    missing = 0
    for tag, (acked, _) in results.items():
        stored = set()
        for ip in pods.ips:
            try:
                c = bench.Conn(ip, timeout=5)
                c.send("LRANGE", f"{{{tag}}}:log", "0", "-1")
                stored = {int(x) for x in c.read()}
                c.close()
                break
            except (RuntimeError, OSError):
                continue
        missing += sum(1 for n in acked if n not in stored)
    return missing


def run(binary, args, *cmd_args, env):
    return subprocess.run([binary, *cmd_args], env=env, capture_output=True, text=True, timeout=args.limit)


def roll_once(binary, args, hook, block):
    pods = Pods(block)
    try:
        formed = run(binary, args, env=binary_env(pods.ips))
        if formed.returncode != 0:
            raise RuntimeError(f"formation failed: {formed.stderr}")
        writer = Writer(pods, tags())
        time.sleep(1)
        handed = 0
        for i in reversed(range(6)):
            if hook:
                h = run(binary, args, "handover", env=binary_env([pods.ips[i]]))
                handed += "now a replica of" in h.stderr
            pods.stop(i)
            time.sleep(args.away)
            pods.back(i, f"127.220.{block}.{31 + i}")
            if hook:
                subprocess.Popen([binary, "rejoin"], env=binary_env(
                    [pods.ips[i]] + [ip for j, ip in enumerate(pods.ips) if j != i],
                    BOOTSTRAP_REJOIN_TIMEOUT="60s"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for("ready", lambda: run(binary, args, "ready", env=binary_env([pods.ips[i]])).returncode == 0)
            else:
                wait_for("PING", lambda: answers(pods.ips[i]))
        time.sleep(1)
        results = writer.finish()
        return {
            "hook": hook,
            "handed_over": handed,
            "longest_gap_s": sorted(round(gap, 3) for _, gap in results.values()),
            "writes": sum(len(a) for a, _ in results.values()),
            "lost": lost(pods, results),
        }
    finally:
        pods.kill()


def restart_once(binary, args, rejoin, block):
    pods = Pods(block)
    try:
        formed = run(binary, args, env=binary_env(pods.ips))
        if formed.returncode != 0:
            raise RuntimeError(f"formation failed: {formed.stderr}")
        hooks = [subprocess.Popen([binary, "handover"], env=binary_env([ip]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for ip in pods.ips]
        for h in hooks:
            h.wait(timeout=60)
        for i in range(6):
            pods.procs[i].terminate()
        for p in pods.procs:
            p.wait(timeout=60)
        time.sleep(args.away)
        for i in range(6):
            pods.back(i, f"127.220.{block}.{31 + i}")
            if rejoin:
                subprocess.Popen([binary, "rejoin"], env=binary_env(
                    [pods.ips[i]] + [ip for j, ip in enumerate(pods.ips) if j != i],
                    BOOTSTRAP_REJOIN_TIMEOUT="120s"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        for ip in pods.ips:
            wait_for(f"{ip} to answer", lambda ip=ip: answers(ip))
        if not rejoin:
            subprocess.Popen([binary], env=binary_env(pods.ips, BOOTSTRAP_CONVERGE_TIMEOUT="120s"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conns = [bench.Conn(ip) for ip in pods.ips]
        poller = bench.Poller(conns, 6, 3)
        wait_for("convergence", poller.converged, limit=180)
        took = time.monotonic() - started
        for c in conns:
            c.close()
        return {"rejoin": rejoin, "healed_s": round(took, 2)}
    finally:
        pods.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--away", type=float, default=5.0, help="seconds a stopped pod stays away")
    parser.add_argument("--binary", default="target/release/redis-cluster-bootstrap")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--limit", type=float, default=300, help="bound on any one binary run")
    args = parser.parse_args()
    if args.binary == parser.get_default("binary"):
        subprocess.run(["cargo", "build", "--release", "--locked"], check=True)
    rolls, restarts, block = [], [], 0
    for _ in range(args.runs):
        for hook in (False, True):
            block += 1
            rolls.append(roll_once(args.binary, args, hook, block))
            print(json.dumps(rolls[-1]), file=sys.stderr)
        for rejoin in (False, True):
            block += 1
            restarts.append(restart_once(args.binary, args, rejoin, block))
            print(json.dumps(restarts[-1]), file=sys.stderr)

    def gaps(hook):
        return [max(r["longest_gap_s"]) for r in rolls if r["hook"] == hook]

    def heal(rejoin):
        return [r["healed_s"] for r in restarts if r["rejoin"] == rejoin]

    lines = [
        f"Rolling restart of 6 pods (3 shards), pod 5 down to 0, each away {args.away:g} s, "
        f"cluster-node-timeout {TIMEOUT_MS} ms; {args.runs} run(s) each.",
        "",
        "| roll | longest write gap, worst shard (median) | worst of all runs | writes lost |",
        "|---|---|---|---|",
    ]
    for hook, name in ((False, "without the hook (SIGTERM, PING readiness)"), (True, "with handover + ready + rejoin")):
        g = gaps(hook)
        lost_total = sum(r["lost"] for r in rolls if r["hook"] == hook)
        lines.append(f"| {name} | {statistics.median(g):.3f} s | {max(g):.3f} s | {lost_total} |")
    lines += [
        "",
        "| full restart on new IPs | last pod's start to converged (median) | runs |",
        "|---|---|---|",
        f"| bootstrap run (as if the CronJob's tick came at once; add the wait for the tick) | "
        f"{statistics.median(heal(False)):.2f} s | {', '.join(f'{x:.2f}' for x in heal(False))} |",
        f"| rejoin in each pod, no Job | {statistics.median(heal(True)):.2f} s | "
        f"{', '.join(f'{x:.2f}' for x in heal(True))} |",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "roll.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "roll.json"), "w") as f:
        json.dump({"away_s": args.away, "node_timeout_ms": TIMEOUT_MS, "rolls": rolls, "restarts": restarts}, f, indent=1)
    if any(r["lost"] for r in rolls):
        sys.exit("acknowledged writes were lost")


if __name__ == "__main__":
    main()
