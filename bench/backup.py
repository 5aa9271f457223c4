#!/usr/bin/env python3
"""Backup and restore benchmark: the same data, the same machine, one run each.

A source cluster of 3 masters (no replicas) is filled with KEYS string keys spread over every slot
(`redis-cli --pipe` to each master). Then:

- backup: `redis-cluster-bootstrap backup` into a directory, against `redis-cli --cluster backup`
  (one master after another, each snapshot at its own moment);
- restore: `redis-cluster-bootstrap restore` of that backup into an empty 3-master cluster,
  against `redis-cli --cluster import` into another empty 3-master cluster from a standalone node
  holding the same keys (the only restore-like path redis-cli has: one MIGRATE per key);
- the peak RSS of our backup and restore processes (`/usr/bin/time -v`).

    python3 bench/backup.py                  # 1,000,000 keys
    python3 bench/backup.py --keys 100000

Results: a Markdown table on stdout and in <out>/backup.md, the numbers in <out>/backup.json.
Addresses: 127.30.100.0/24 - 127.30.103.0/24. Needs the release binary (cargo build --release).
Stdlib only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "target", "release", "redis-cluster-bootstrap"))
SLOTS = 16384


def crc16(data):
    """Redis Cluster's key hash (CRC16-CCITT, XMODEM)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot_tags():
    """For every slot, a short hash tag that hashes to it."""
    tags = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        s = crc16(str(n).encode()) % SLOTS
        if tags[s] is None:
            tags[s] = str(n)
            missing -= 1
        n += 1
    return tags


def start(ip, cluster, workdir):
    d = os.path.join(workdir, ip)
    os.makedirs(d)
    subprocess.run(
        ["redis-server", "--port", "6379", "--bind", ip, "--bind-source-addr", ip,
         "--protected-mode", "no", "--dir", d, "--logfile", "redis.log", "--save", "",
         "--appendonly", "no", "--cluster-enabled", "yes" if cluster else "no",
         "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
         "--repl-diskless-sync-delay", "0", "--daemonize", "yes",
         "--pidfile", os.path.join(d, "pid")],
        check=True)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-h", ip, "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG":
            return os.path.join(d, "pid")
        time.sleep(0.05)
    raise SystemExit(f"redis-server on {ip} did not start")


def form(ips):
    env = dict(os.environ, BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in ips),
               BOOTSTRAP_REPLICAS_PER_MASTER="0")
    subprocess.run([BIN], env=env, check=True, capture_output=True)


def owner_of(ips):
    """slot -> ip, from CLUSTER NODES."""
    owner = [None] * SLOTS
    for line in subprocess.run(["redis-cli", "-h", ips[0], "cluster", "nodes"],
                               capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        ip = f[1].split(":")[0]
        for r in f[8:]:
            a, _, b = r.partition("-")
            for s in range(int(a), int(b or a) + 1):
                owner[s] = ip
    return owner


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def fill(keys, tags, route):
    """SET {tag}:i v:i, each key sent to route(slot)."""
    streams = {}
    for i in range(keys):
        s = i % SLOTS
        streams.setdefault(route(s), []).append(resp("SET", f"{{{tags[s]}}}:{i}", f"value:{i:012d}"))
    for ip, cmds in streams.items():
        subprocess.run(["redis-cli", "-h", ip, "--pipe"], input=b"".join(cmds), check=True,
                       capture_output=True)


def timed(cmd, env=None):
    t = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    took = time.monotonic() - t
    if out.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{out.stdout}\n{out.stderr}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return took, int(rss.group(1)) if rss else None, out


def dbsize(ips):
    return sum(int(subprocess.run(["redis-cli", "-h", ip, "dbsize"], capture_output=True,
                                  text=True).stdout) for ip in ips)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-backup-")
    pids = []
    try:
        source = [f"127.30.100.{11 + i}" for i in range(3)]
        ours = [f"127.30.101.{11 + i}" for i in range(3)]
        theirs = [f"127.30.102.{11 + i}" for i in range(3)]
        standalone = "127.30.103.11"
        for ip in source + ours + theirs:
            pids.append(start(ip, True, work))
        pids.append(start(standalone, False, work))
        for ips in (source, ours, theirs):
            form(ips)
        tags = slot_tags()
        owner = owner_of(source)
        fill(args.keys, tags, lambda s: owner[s])
        fill(args.keys, tags, lambda s: standalone)
        assert dbsize(source) == args.keys, dbsize(source)

        env = dict(os.environ, BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in source),
                   BOOTSTRAP_BACKUP_URL=os.path.join(work, "backups"))
        our_backup, backup_rss, out = timed([BIN, "backup"], env)
        url = re.search(r"backup=(\S+)", out.stdout).group(1)
        pause = float(re.search(r"pause_ms=([\d.]+)", out.stdout).group(1))
        os.makedirs(os.path.join(work, "cli"))
        cli_backup, _, _ = timed(["redis-cli", "--cluster", "backup", f"{source[0]}:6379",
                                  os.path.join(work, "cli")])

        env = dict(os.environ, BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in ours),
                   BOOTSTRAP_BACKUP_URL=url)
        our_restore, restore_rss, out = timed([BIN, "restore"], env)
        assert "verified:" in out.stdout, out.stdout
        assert dbsize(ours) == args.keys
        cli_import, _, _ = timed(["redis-cli", "--cluster", "import", f"{theirs[0]}:6379",
                                  "--cluster-from", f"{standalone}:6379", "--cluster-copy"])
        assert dbsize(theirs) == args.keys, dbsize(theirs)

        version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                 text=True).stdout.split()[2].removeprefix("v=")
        result = {
            "keys": args.keys, "server": version, "cores": os.cpu_count(),
            "backup_s": our_backup, "redis_cli_backup_s": cli_backup, "pause_ms": pause,
            "backup_peak_rss_kb": backup_rss,
            "restore_s": our_restore, "redis_cli_import_s": cli_import,
            "restore_keys_per_s": args.keys / our_restore,
            "import_keys_per_s": args.keys / cli_import,
            "restore_peak_rss_kb": restore_rss,
        }
        table = "\n".join([
            f"| {args.keys:,} keys, Redis {version}, 3 masters | redis-cluster-bootstrap | redis-cli |",
            "|---|---|---|",
            f"| backup | {our_backup:.2f} s (consistent; writes paused {pause:.1f} ms) "
            f"| {cli_backup:.2f} s (`--cluster backup`, each master at its own moment) |",
            f"| restore | {our_restore:.2f} s, {args.keys / our_restore:,.0f} keys/s "
            f"| {cli_import:.2f} s, {args.keys / cli_import:,.0f} keys/s (`--cluster import`) |",
            f"| peak RSS | backup {backup_rss / 1024:.1f} MB, restore {restore_rss / 1024:.1f} MB | |",
        ])
        print(table)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "backup.md"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(args.out, "backup.json"), "w") as f:
            json.dump(result, f, indent=2)
    finally:
        for pid in pids:
            try:
                with open(pid) as f:
                    os.kill(int(f.read()), 9)
            except (OSError, ValueError):
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
