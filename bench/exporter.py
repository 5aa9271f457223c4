#!/usr/bin/env python3
"""Exporter benchmark: what components/monitoring's redis_exporter sidecar costs each pod, and how
long a scrape takes, at N = 6 and N = 30, against the field's other layout (one central exporter
scraping every node through its multi-target `/scrape?target=` endpoint).

For each N it starts N fresh redis-server processes (one loopback IP each, port 6379), forms them
with the bootstrap binary (R = 1), and starts a steady write load: one pipelined client per master
writing 1 KB values to keys of that master's own slots at a fixed rate. Then:

- one exporter per node, as the sidecar runs it (its own node only, no CONFIG, listening on the
  node's address at 9121), and one central exporter with the same options;
- idle: nothing scrapes for --idle seconds: each exporter's CPU while no one asks it anything;
- sidecars: every exporter is scraped once per --every seconds for --window seconds, the N
  scrapes spread over the interval as Prometheus spreads its targets; each scrape timed (what
  Prometheus records as scrape_duration_seconds) and each exporter's CPU counted;
- central: the same N targets scraped through the central exporter, over the same window.

CPU is the process's user + system time (/proc/PID/stat) over the window; per scrape, the window's
CPU less the idle rate, over the scrapes. "At 30 s" is what that costs at the PodMonitor's 30 s
interval: idle rate + CPU per scrape / 30 s. Memory is VmRSS at the end and VmHWM (peak).

    python3 bench/exporter.py                        # N = 6 and N = 30, ~5 minutes
    python3 bench/exporter.py --sizes 6 --window 10  # a quick look

The exporter is Debian's prometheus-redis-exporter (1.45), the one this machine has; the sidecar
pins oliver006/redis_exporter v1.91.1, which no container runtime here can run. Results: a Markdown
table on stdout and in <out>/exporter.md, every number in <out>/exporter.json.
Addresses: 127.31.200.0/24 (N = 6) and 127.31.201.0/24 (N = 30). Stdlib only.
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
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the RESP client, the machine's description)
import roll  # noqa: E402  (Redis Cluster's key hash)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
# The PodMonitor's interval (components/monitoring/pod_monitor.yaml).
PODMONITOR_INTERVAL = 30.0


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory(pid):
    """(VmRSS, VmHWM) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def wait_for(what, ok, limit=60):
    deadline = time.monotonic() + limit
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(url, timeout=10):
    """GET url: (seconds it took, body)."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = r.read()
    return time.monotonic() - started, body


class Cluster:
    """N nodes formed by the binary, their sidecar exporters and a central exporter."""

    def __init__(self, n, block, binary):
        self.dir = tempfile.mkdtemp(prefix="bench-exporter-")
        self.ips = [f"127.31.{block}.{11 + i}" for i in range(n)]
        self.central_addr = f"127.31.{block}.2:9121"
        self.nodes, self.exporters, self.central = [], [], None
        try:
            for ip in self.ips:
                d = os.path.join(self.dir, ip)
                os.mkdir(d)
                self.nodes.append(subprocess.Popen(
                    ["redis-server", "--port", "6379", "--bind", ip, "--bind-source-addr", ip,
                     "--protected-mode", "no", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
                     "--appendonly", "yes", "--dir", d, "--logfile", "redis.log",
                     "--repl-diskless-sync-delay", "0", "--cluster-announce-ip", ip],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True))
            for ip in self.ips:
                wait_for(f"{ip} to answer", lambda ip=ip: roll.answers(ip))
            env = {"PATH": os.environ.get("PATH", ""),
                   "BOOTSTRAP_NODES": ",".join(f"{ip}:6379" for ip in self.ips),
                   "BOOTSTRAP_CONVERGE_TIMEOUT": "120s"}
            run = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=300)
            if run.returncode != 0:
                raise RuntimeError(f"the bootstrap failed:\n{run.stderr}")
            for ip in self.ips:
                self.exporters.append(self.exporter(f"redis://{ip}:6379", f"{ip}:9121"))
            # The central one: no address of its own to scrape, only ?target=.
            self.central = self.exporter("", self.central_addr)
            for ip in self.ips:
                wait_for(f"{ip}'s exporter", lambda ip=ip: self.answers(f"{ip}:9121"))
            wait_for("the central exporter", lambda: self.answers(self.central_addr))
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def exporter(redis_addr, listen):
        # The sidecar's environment (components/monitoring): no CONFIG command.
        env = {"REDIS_EXPORTER_CONFIG_COMMAND": "-", "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": listen}
        if redis_addr:
            env["REDIS_ADDR"] = redis_addr
        return subprocess.Popen(["prometheus-redis-exporter"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def answers(addr):
        try:
            get(f"http://{addr}/health", timeout=1)
            return True
        except OSError:
            return False

    def masters(self):
        """Each master's IP and the slots it owns."""
        out = []
        text = bench.Conn(self.ips[0])
        try:
            text.send("CLUSTER", "NODES")
            view = text.read()
        finally:
            text.close()
        for line in view.splitlines():
            f = line.split()
            if "master" not in f[2] or len(f) < 9:
                continue
            slots = set()
            for r in f[8:]:
                low, _, high = r.partition("-")
                slots.update(range(int(low), int(high or low) + 1))
            out.append((f[1].split(":")[0], slots))
        return out

    def stop(self):
        for p in self.exporters + [self.central]:
            if p and p.poll() is None:
                p.kill()
                p.wait()
        for p in self.nodes:
            if p.poll() is None:
                # The node and any snapshot child it forked.
                os.killpg(p.pid, 9)
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Writer:
    """A steady write load: one pipelined client per master, `rate` SETs of `size` bytes per
    second, over 5,000 keys of that master's own slots (one hash tag each): a steady dataset."""

    def __init__(self, masters, rate, size):
        self.stop_flag = threading.Event()
        self.written = 0
        self.lock = threading.Lock()
        self.threads = []
        for ip, slots in masters:
            tag = next(t for t in (f"w{i}" for i in range(100000))
                       if roll.crc16(t.encode()) % 16384 in slots)
            t = threading.Thread(target=self.run, args=(ip, tag, rate, size), daemon=True)
            t.start()
            self.threads.append(t)

    def run(self, ip, tag, rate, size):
        conn = bench.Conn(ip)
        value = "x" * size
        batch = max(1, rate // 10)
        n = 0
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            for _ in range(batch):
                conn.send("SET", f"{{{tag}}}:{n % 5000}", value)
                n += 1
            for _ in range(batch):
                conn.read()
            with self.lock:
                self.written += batch
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()


def scrape_window(urls, pids, every, window):
    """Scrapes each URL once per `every` seconds for `window` seconds, spread evenly over the
    interval; returns (every scrape's seconds, failures, CPU seconds used by each pid)."""
    before = [cpu_seconds(p) for p in pids]
    times, failures = [], 0
    step = every / len(urls)
    started = time.monotonic()
    k = 0
    while time.monotonic() - started < window:
        url = urls[k % len(urls)]
        try:
            seconds, _ = get(url)
            times.append(seconds)
        except OSError:
            failures += 1
        k += 1
        time.sleep(max(0.0, started + k * step - time.monotonic()))
    cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
    return times, failures, cpu, time.monotonic() - started


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n, block, binary, args):
    cluster = Cluster(n, block, binary)
    writer = None
    try:
        writer = Writer(cluster.masters(), args.rate, args.value_size)
        sidecar_urls = [f"http://{ip}:9121/metrics" for ip in cluster.ips]
        central_urls = [f"http://{cluster.central_addr}/scrape?target=redis://{ip}:6379"
                        for ip in cluster.ips]
        sidecar_pids = [p.pid for p in cluster.exporters]
        central_pid = cluster.central.pid
        # Warm-up: two scrapes each, so every exporter has connected and allocated.
        for url in sidecar_urls * 2 + central_urls * 2:
            get(url)
        print(f"exporter: N={n}: idle {args.idle} s", file=sys.stderr)
        pids = sidecar_pids + [central_pid]
        before = [cpu_seconds(p) for p in pids]
        time.sleep(args.idle)
        idle = [(cpu_seconds(p) - b) / args.idle for p, b in zip(pids, before)]
        print(f"exporter: N={n}: sidecars scraped for {args.window} s", file=sys.stderr)
        s_times, s_fail, s_cpu, s_span = scrape_window(sidecar_urls, sidecar_pids, args.every,
                                                       args.window)
        s_rss = [memory(p) for p in sidecar_pids]
        print(f"exporter: N={n}: central scraped for {args.window} s", file=sys.stderr)
        c_times, c_fail, c_cpu, c_span = scrape_window(central_urls, [central_pid], args.every,
                                                       args.window)
        c_rss = memory(central_pid)
        rows = []
        # Sidecars: per exporter (the median one, and the worst).
        per_scrape = [(cpu - rate * s_span) / (len(s_times) / n)
                      for cpu, rate in zip(s_cpu, idle[:n])]
        at_30 = [rate + ps / PODMONITOR_INTERVAL for rate, ps in zip(idle[:n], per_scrape)]
        rows.append({
            "layout": "sidecar (one per pod)", "n": n, "exporters": n,
            "scrapes": len(s_times), "failed": s_fail,
            "scrape_ms": [1000 * statistics.median(s_times), 1000 * percentile(s_times, 0.99),
                          1000 * max(s_times)],
            "cpu_per_scrape_ms": 1000 * statistics.median(per_scrape),
            "idle_mcpu": 1000 * statistics.median(idle[:n]),
            "at_30s_mcpu": 1000 * statistics.median(at_30),
            "at_30s_mcpu_max": 1000 * max(at_30),
            "rss_mib": [statistics.median(r for r, _ in s_rss), max(r for r, _ in s_rss)],
            "peak_mib": max(h for _, h in s_rss),
        })
        c_per_scrape = (c_cpu[0] - idle[n] * c_span) / len(c_times)
        rows.append({
            "layout": "central (/scrape?target=)", "n": n, "exporters": 1,
            "scrapes": len(c_times), "failed": c_fail,
            "scrape_ms": [1000 * statistics.median(c_times), 1000 * percentile(c_times, 0.99),
                          1000 * max(c_times)],
            "cpu_per_scrape_ms": 1000 * c_per_scrape,
            "idle_mcpu": 1000 * idle[n],
            # The one exporter scrapes all N targets every 30 s.
            "at_30s_mcpu": 1000 * (idle[n] + n * c_per_scrape / PODMONITOR_INTERVAL),
            "at_30s_mcpu_max": None,
            "rss_mib": [c_rss[0], c_rss[0]],
            "peak_mib": c_rss[1],
        })
        writer.stop()
        for row in rows:
            row["writes_per_s"] = writer.written / (args.idle + s_span + c_span)
        return rows
    finally:
        if writer:
            writer.stop()
        cluster.stop()


def table(rows):
    lines = [
        "| layout | N | scrapes | scrape time p50 / p99 / max | CPU per scrape | CPU at a 30 s "
        "interval, per exporter (median / max) | CPU idle | RSS (median / max) | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        at = f"{r['at_30s_mcpu']:.2f} m"
        if r["at_30s_mcpu_max"] is not None:
            at += f" / {r['at_30s_mcpu_max']:.2f} m"
        lines.append(
            f"| {r['layout']} | {r['n']} | {r['scrapes']} ({r['failed']} failed) | "
            f"{r['scrape_ms'][0]:.1f} / {r['scrape_ms'][1]:.1f} / {r['scrape_ms'][2]:.1f} ms | "
            f"{r['cpu_per_scrape_ms']:.2f} ms | {at} | {r['idle_mcpu']:.2f} m | "
            f"{r['rss_mib'][0]:.1f} / {r['rss_mib'][1]:.1f} MiB | {r['peak_mib']:.1f} MiB |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="6,30", help="cluster sizes (default 6,30)")
    ap.add_argument("--idle", type=float, default=20, help="seconds without scrapes (default 20)")
    ap.add_argument("--window", type=float, default=40,
                    help="seconds of scraping per layout (default 40)")
    ap.add_argument("--every", type=float, default=1.0,
                    help="each target scraped once per this many seconds (default 1)")
    ap.add_argument("--rate", type=int, default=500, help="SETs per second per master (default 500)")
    ap.add_argument("--value-size", type=int, default=1024, help="bytes per value (default 1024)")
    ap.add_argument("--bin", help="the bootstrap binary (default: target/debug, built if missing)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    for tool in ("redis-server", "prometheus-redis-exporter"):
        if shutil.which(tool) is None:
            sys.exit(f"exporter: {tool} is missing: run scripts/install-deps.sh")
    binary = args.bin or os.path.join(ROOT, "target", "debug", "redis-cluster-bootstrap")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    version = subprocess.run(["prometheus-redis-exporter", "-version"], capture_output=True,
                             text=True)
    version = (version.stdout + version.stderr).split("Exporter", 1)[-1].split()[0]
    rows = []
    load = [os.getloadavg()[0]]
    for k, n in enumerate(int(s) for s in args.sizes.split(",")):
        rows += measure(n, 200 + k, binary, args)
        load.append(os.getloadavg()[0])
    text = table(rows)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "exporter.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "exporter.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "machine": bench.machine(),
                   "exporter": version, "load_1m": load, "args": vars(args), "rows": rows},
                  f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
