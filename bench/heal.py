#!/usr/bin/env python3
"""Heal benchmark: how long until a cluster whose every node restarted on a new IP has converged
again, with this project's release binary (what the self-healing CronJob's next run does).

For every node timeout T and cluster size N, each run starts N fresh redis-server processes (one
loopback IP each, port 6379, like pods), forms the cluster with the binary, then kills every node
(SIGKILL, like a power cut) and starts each one again from its own data directory (nodes.conf,
AOF) on a new IP, as pods come back after a drain or an upgrade. Once every node answers, the
binary is started with the new addresses; the time from its start until the cluster has converged
is measured with bench.py's poller (the same "converged" as the formation benchmark).

The reference, measured in the same run (alternating with it): the same cluster restarted the
same way on the *same* IPs, where nothing needs re-meshing; the binary is started the same way.
What the nodes need to come back there (a restarted master waits out its rejoin delay,
cluster-node-timeout, before it reports ok) is what they need on new IPs too; the gap between
the two is the cost of the new addresses.

    python3 bench/heal.py                  # N = 6, 30, 100 at T = 5000 ms, 3 runs each
    python3 bench/heal.py --nodes 6 --timeouts 1000 --runs 1
    python3 bench/heal.py --nodes 30 --runs 1 --logs /tmp/heal-logs   # the tool's and nodes' logs

Results: a Markdown table on stdout and in <out>/heal.md, every run in <out>/heal.json.
Addresses: like bench.py, each run takes two /16s of 127.201-209 (old and new). Stdlib only.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the formation benchmark: nodes, poller, RESP client)


def restart_all(cluster, addresses, timeout_ms, sync_delay):
    """Kills every node of `cluster` and starts each again from its data directory on a new IP."""
    for p in cluster.procs:
        p.kill()
    for p in cluster.procs:
        p.wait()
    cluster.procs = [
        bench.start_node(ip, os.path.join(cluster.dir, f"redis-app-{i}"), timeout_ms, sync_delay)
        for i, ip in enumerate(addresses)
    ]
    cluster.addresses = addresses
    wait_answering(addresses)


def wait_answering(addresses):
    """Waits until every node answers PING (a node loading its AOF answers LOADING: not yet)."""
    deadline = time.monotonic() + 60
    for ip in addresses:
        while True:
            try:
                c = bench.Conn(ip, timeout=1)
                try:
                    c.send("PING")
                    c.read()
                    break
                finally:
                    c.close()
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server at {ip} did not come back")
                time.sleep(0.02)


def run_binary(binary, addresses, replicas, timeout_s, log):
    env = dict(os.environ,
               BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in addresses),
               BOOTSTRAP_REPLICAS_PER_MASTER=str(replicas),
               BOOTSTRAP_CONVERGE_TIMEOUT=f"{int(timeout_s)}s")
    return bench.Tool([binary], env, log)


def heal_once(args, n, timeout_ms, old_block, new_block, binary, same_ip, name):
    """One run: form, restart every node (on new IPs, or on the same ones with `same_ip`), heal."""
    masters = n // (1 + args.replicas)
    old = bench.ips(old_block, n)
    new = old if same_ip else bench.ips(new_block, n)
    result = {"nodes": n, "timeout_ms": timeout_ms, "blocks": [old_block, new_block],
              "same_ip": same_ip, "load_1m": round(os.getloadavg()[0], 2)}
    cluster = bench.Cluster(old, timeout_ms, args.sync_delay)
    conns = []
    log = tempfile.TemporaryFile()
    try:
        time.sleep(args.settle)
        formed = run_binary(binary, old, args.replicas, args.run_timeout, log)
        formed.finish(args.run_timeout)
        if formed.exit_code != 0:
            raise RuntimeError(f"N={n}: forming failed (exit {formed.exit_code})")
        restart_all(cluster, new, timeout_ms, args.sync_delay)
        conns = [bench.Conn(ip) for ip in new]
        log.seek(0)
        log.truncate()
        tool = run_binary(binary, new, args.replicas, args.run_timeout, log)
        poller = bench.Poller(conns, n, masters)
        converged = None
        while time.monotonic() - tool.t0 < args.run_timeout:
            started = time.monotonic()
            if poller.converged():
                converged = time.monotonic() - tool.t0
                break
            time.sleep(max(0.0, args.poll_ms / 1000 - (time.monotonic() - started)))
        tool.finish(args.run_timeout)
        log.seek(0)
        output = log.read().decode(errors="replace")
        decision = next((w.split("=", 1)[1] for l in output.splitlines() if "outcome=" in l
                         for w in l.split() if w.startswith("decision=")), None)
        result.update(converged_s=converged, exit_s=tool.exit_s, exit_code=tool.exit_code,
                      decision=decision, maxrss_kb=tool.maxrss_kb)
        if converged is None or tool.exit_code != 0:
            tail = output.splitlines()[-15:]
            print(f"  N={n} T={timeout_ms}: converged={converged} exit={tool.exit_code}\n    "
                  + "\n    ".join(tail), file=sys.stderr)
        if args.logs:
            keep_logs(args.logs, name, output, cluster)
    finally:
        for c in conns:
            c.close()
        log.close()
        cluster.kill()
    return result


def keep_logs(root, name, output, cluster):
    """The tool's log of the heal and every node's redis.log, under root/name/."""
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tool.log"), "w") as fh:
        fh.write(output)
    for i in range(len(cluster.procs)):
        src = os.path.join(cluster.dir, f"redis-app-{i}", "redis.log")
        if os.path.exists(src):
            shutil.copy(src, os.path.join(d, f"redis-app-{i}.log"))


def table(runs):
    rows = ["| node timeout | N | runs | decision | new IPs: converged min | median | max "
            "| same IPs (reference): median | gap to the reference (medians) "
            "| tool exited (median) |",
            "|" + "---|" * 10]
    by = {}
    for r in runs:
        by.setdefault((r["timeout_ms"], r["nodes"]), []).append(r)
    for (t, n), both in by.items():
        rs = [r for r in both if not r.get("same_ip")]
        refs = sorted(r["converged_s"] for r in both
                      if r.get("same_ip") and r["converged_s"] is not None)
        conv = sorted(r["converged_s"] for r in rs if r["converged_s"] is not None)
        exits = [r["exit_s"] for r in rs if r["exit_s"] is not None]
        decisions = ",".join(sorted({r["decision"] for r in rs if r["decision"]}))
        failed = sum(r["exit_code"] != 0 for r in rs)
        count = f"{len(rs)}" if len(conv) == len(rs) else f"{len(conv)}/{len(rs)} converged"
        if failed:
            count += f" ({failed} exited non-zero)"
        ref = statistics.median(refs) if refs else None
        if conv:
            med = statistics.median(conv)
            cells = [f"{conv[0]:.2f} s", f"**{med:.2f} s**", f"{conv[-1]:.2f} s"]
        else:
            med = None
            cells = ["—"] * 3
        cells.append("—" if ref is None else f"{ref:.2f} s")
        cells.append("—" if ref is None or med is None else f"**{med - ref:+.2f} s**")
        cells.append(f"{statistics.median(exits):.2f} s" if exits else "—")
        rows.append(f"| {t} ms | {n} | {count} | {decisions} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--nodes", default="6,30,100", help="cluster sizes N (comma-separated)")
    ap.add_argument("--timeouts", default="5000", help="cluster-node-timeout values, ms")
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration")
    ap.add_argument("--replicas", type=int, default=1, help="replicas per master")
    ap.add_argument("--settle", type=float, default=2.5, help="seconds before forming")
    ap.add_argument("--sync-delay", type=int, default=0,
                    help="repl-diskless-sync-delay of the nodes, s (-1: Redis's default)")
    ap.add_argument("--poll-ms", type=float, default=20, help="the poller's period, ms")
    ap.add_argument("--run-timeout", type=float, default=120, help="give up a run after this, s")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the same-IP reference runs")
    ap.add_argument("--logs", help="keep each run's tool log and node logs under this directory")
    ap.add_argument("--bin", help="the bootstrap binary (default: cargo build --release)")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "bench", "results"),
                    help="where heal.md and heal.json go (default bench/results)")
    args = ap.parse_args()
    if args.sync_delay < 0:
        args.sync_delay = None
    binary = args.bin
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=bench.ROOT,
                       check=True)
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(bench.ROOT, "target")
        binary = os.path.join(target, "release", "redis-cluster-bootstrap")
    os.makedirs(args.out, exist_ok=True)
    info = bench.machine()
    runs = []
    k = 0
    for t in [int(x) for x in args.timeouts.split(",")]:
        for n in [int(x) for x in args.nodes.split(",")]:
            for i in range(args.runs):
                # The reference and the new-IP run alternate, the reference first on odd runs.
                kinds = [False] if args.no_reference else [True, False] if i % 2 == 0 else [False, True]
                for same in kinds:
                    old = bench.BLOCKS[(2 * k) % len(bench.BLOCKS)]
                    new = bench.BLOCKS[(2 * k + 1) % len(bench.BLOCKS)]
                    k += 1
                    kind = "same IPs" if same else "new IPs"
                    name = f"T{t}-N{n}-run{i + 1}-{'same' if same else 'new'}"
                    r = heal_once(args, n, t, old, new, binary, same, name)
                    runs.append(r)
                    conv = "—" if r["converged_s"] is None else f"{r['converged_s']:.2f} s"
                    print(f"  T={t} N={n} run {i + 1}/{args.runs} ({kind}): {r['decision']},"
                          f" converged {conv}, exited {r['exit_s']:.2f} s (code"
                          f" {r['exit_code']}); load {r['load_1m']}", file=sys.stderr)
    text = table(runs)
    print(text)
    bench.write_results(args.out, "heal", info, args, runs, text)
    ok = all(r["converged_s"] is not None and r["exit_code"] == 0 for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
