#!/usr/bin/env python3
"""Bootstrap benchmark: how long until a fresh Redis Cluster has converged, with this project's
release binary and with `redis-cli --cluster create --cluster-replicas 1 --cluster-yes`.

For every node timeout T and cluster size N, each run starts N fresh redis-server processes (one
loopback IP each, port 6379, like pods; new data dirs), lets them settle, starts one tool and
measures, with its own poller, the time from the tool's start until the cluster has converged.
The tools alternate run by run. The poller is the same for both tools: every node reports
cluster_state:ok, knows N nodes and all 16384 slots; then, in every node's CLUSTER NODES, N lines,
every link connected, no fail / fail? / handshake / noaddr flag, M masters with slots and N-M
replicas. "floor" is Redis's own bound: a fresh master stays at cluster_state:fail for
clamp(T, 0.5 s, 5 s) after it first owns slots.

"premeshed" is a reference, not a tool: the nodes are meshed before the clock starts, then slots
and replicas are assigned in one round trip and Redis is left alone. It times Redis's own
convergence on this machine without the handshake storm of forming a mesh; where it is far above
the floor at 1000 ms, the machine's CPU, not the tool, sets the pace. It is no lower bound: with
nothing to re-introduce stale peers, at 5000 ms the last views straggle in for seconds.

    python3 bench/bench.py                 # N = 6, 30, 100 at T = 5000 and 1000 ms, 5 runs each
    python3 bench/bench.py --nodes 300 --timeouts 15000 --runs 3 --run-timeout 150 --out bench/results/n300
    python3 bench/bench.py --nodes 100 --tools bootstrap,redis-cli,premeshed
    python3 bench/bench.py --nodes 6 --timeouts 5000 --runs 3 --tools bootstrap --reruns 20
    python3 bench/bench.py --smoke         # N = 6, T = 1000 ms, one run per tool (CI)

After each bootstrap run that converged, the binary runs --reruns more times on the formed
cluster, as the CronJob does every 5 minutes: the no-op re-run's time and peak RSS are a second
table.

Results: a Markdown table on stdout and in <out>/table.md, every run in <out>/runs.json, and the
plot (converged time vs N, both tools and the floor) in <out>/converge.svg. Python 3 stdlib only.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOTS = 16384
TOOLS = ("bootstrap", "redis-cli", "premeshed")
REFERENCE = "premeshed"  # no tool: see the module docstring and class Premeshed
# 127.201.0.0/16 .. 127.209.0.0/16 belong to the benchmark (tests/common/BLOCKS.md). Each run
# takes the next /16, so a run never reuses an address the previous run's nodes just dropped.
BLOCKS = range(201, 210)


def floor_s(timeout_ms):
    """Redis's rejoin delay: cluster-node-timeout clamped to 0.5-5 s (cluster.c)."""
    return min(max(timeout_ms, 500), 5000) / 1000


def ips(block, n):
    """N addresses in 127.<block>.0.0/16, 250 per /24."""
    return [f"127.{block}.{1 + k // 250}.{1 + k % 250}" for k in range(n)]


# ---------------------------------------------------------------------------------------------
# A minimal RESP client: enough for CLUSTER INFO / CLUSTER NODES, pipelined across nodes.


class Conn:
    """One blocking connection to one node."""

    def __init__(self, ip, timeout=60.0):
        self.ip = ip
        self.sock = socket.create_connection((ip, 6379), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{self.ip} closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            self._fill()

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data = bytes(self.buf[:size])
            del self.buf[: size + 2]
            return data.decode()
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"{self.ip}: {rest.decode()}")
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"{self.ip}: unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def fan_out(conns, *cmd):
    """Sends one command to every node, then reads every reply: one round trip for all."""
    for c in conns:
        c.send(*cmd)
    return [c.read() for c in conns]


def info_ok(text, n):
    """CLUSTER INFO: ok, N known nodes, every slot assigned and ok."""
    fields = dict(l.split(":", 1) for l in text.split("\r\n") if ":" in l)
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_known_nodes") == str(n)
        and fields.get("cluster_slots_assigned") == str(SLOTS)
        and fields.get("cluster_slots_ok") == str(SLOTS)
    )


BAD_FLAGS = {"fail", "fail?", "handshake", "noaddr"}


def nodes_ok(text, n, masters):
    """CLUSTER NODES: N nodes, all connected and healthy, M masters with slots, N-M replicas."""
    lines = [l.split(" ") for l in text.splitlines() if l]
    with_slots = replicas = 0
    for f in lines:
        flags = set(f[2].split(","))
        if flags & BAD_FLAGS or f[7] != "connected":
            return False
        if "slave" in flags:
            replicas += 1
        elif "master" in flags and len(f) > 8:
            with_slots += 1
    return len(lines) == n and with_slots == masters and replicas == n - masters


def trace(conns, n, views):
    """What is still missing, summed over every node's view: for --trace."""
    infos = [dict(l.split(":", 1) for l in t.split("\r\n") if ":" in l)
             for t in fan_out(conns, "CLUSTER", "INFO")]
    known = [int(i["cluster_known_nodes"]) for i in infos]
    counts = {"state_fail": sum(i["cluster_state"] != "ok" for i in infos),
              "slots_not_ok": sum(i["cluster_slots_ok"] != str(SLOTS) for i in infos)}
    if views:
        counts.update(view_problems(fan_out(conns, "CLUSTER", "NODES")))
    return f"known {min(known)}-{max(known)}/{n} " + " ".join(f"{k}={v}" for k, v in counts.items())


def view_problems(texts):
    """Counts, over every node's CLUSTER NODES, the bad flags and the stale views of a peer (its
    role, master or slots differ from what the peer says of itself)."""
    views = [[l.split(" ") for l in t.splitlines() if l] for t in texts]
    counts = {}
    selves = {}
    for v in views:
        for f in v:
            if "myself" in f[2]:
                selves[f[0]] = ("slave" in f[2], f[3], tuple(f[8:]))
    counts["stale_views"] = sum(
        1 for v in views for f in v
        if "myself" not in f[2] and f[0] in selves
        and selves[f[0]] != ("slave" in f[2], f[3], tuple(f[8:]))
    )
    for v in views:
        for f in v:
            for flag in f[2].split(","):
                if flag in BAD_FLAGS or flag == "slave":
                    counts[flag] = counts.get(flag, 0) + 1
            if f[7] != "connected":
                counts["disconnected"] = counts.get("disconnected", 0) + 1
    return counts


class Poller:
    """Decides "converged", the same way for both tools.

    While a node is not there yet, only that node is asked (one command per round); when it is,
    every node is asked, CLUSTER INFO then CLUSTER NODES, pipelined across nodes. Converged is
    always confirmed by such a full round, and the poller stays cheap for the cluster.
    """

    def __init__(self, conns, n, masters):
        self.conns = conns
        self.checks = {"INFO": lambda t: info_ok(t, n), "NODES": lambda t: nodes_ok(t, n, masters)}
        self.laggard = None

    def converged(self):
        if self.laggard is not None:
            i, what = self.laggard
            self.conns[i].send("CLUSTER", what)
            if not self.checks[what](self.conns[i].read()):
                return False
            self.laggard = None
        for what, ok in self.checks.items():
            for i, text in enumerate(fan_out(self.conns, "CLUSTER", what)):
                if not ok(text):
                    self.laggard = (i, what)
                    return False
        return True


# ---------------------------------------------------------------------------------------------
# Nodes


def start_node(ip, d, timeout_ms, sync_delay):
    """One redis-server on `ip` with data directory `d`: the guide's redis.conf as arguments."""
    args = [
        "redis-server", "--port", "6379", "--bind", ip, "--bind-source-addr", ip,
        "--protected-mode", "no", "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(timeout_ms), "--appendonly", "yes",
        "--dir", d, "--logfile", "redis.log", "--daemonize", "no",
    ]
    if sync_delay is not None:
        args += ["--repl-diskless-sync-delay", str(sync_delay)]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class Cluster:
    """N fresh redis-server processes in a new temporary directory; kill() removes everything."""

    def __init__(self, addresses, timeout_ms, sync_delay):
        self.addresses = addresses
        self.dir = tempfile.mkdtemp(prefix="redis-bench-")
        self.procs = []
        try:
            for i, ip in enumerate(addresses):
                d = os.path.join(self.dir, f"redis-app-{i}")
                os.mkdir(d)
                # The guide's redis.conf, one loopback IP per "pod".
                self.procs.append(start_node(ip, d, timeout_ms, sync_delay))
            self._wait_up()
        except BaseException:
            self.kill()
            raise

    def _wait_up(self):
        deadline = time.monotonic() + 30
        for ip in self.addresses:
            while True:
                try:
                    c = Conn(ip, timeout=1)
                    c.send("PING")
                    c.read()
                    c.close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server at {ip} did not start")
                    time.sleep(0.02)

    def cpu_s(self):
        """CPU time the nodes have used so far (user + system), summed: the cost of forming."""
        ticks = 0
        for p in self.procs:
            try:
                with open(f"/proc/{p.pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def kill(self):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# One run


class Tool:
    """The tool as a child process, watched by two threads: one waits for it (exit time, code and
    CPU time), one samples its peak RSS.

    Peak RSS is the kernel's high-water mark of the tool's own memory (VmHWM in /proc), sampled
    every 10 ms until it exits. `wait4`'s ru_maxrss would not do: it also counts the forked
    Python (~17 MB) that the tool was exec'd from.
    """

    def __init__(self, argv, env, log):
        self.exit_code = self.exit_s = self.maxrss_kb = self.cpu_s = None
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _wait(self):
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.exit_s = time.monotonic() - self.t0
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.proc.returncode = self.exit_code  # reaped here; keep Popen from waiting again

    def _sample(self):
        mine = open("/proc/self/comm").read().strip()
        while self.exit_code is None:
            try:
                with open(f"/proc/{self.proc.pid}/status") as fh:
                    fields = dict(l.split(":", 1) for l in fh if ":" in l)
                if fields["Name"].strip() != mine and "VmHWM" in fields:
                    self.maxrss_kb = int(fields["VmHWM"].split()[0])
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.01)

    def finish(self, timeout):
        """Waits for the tool to exit; kills it after `timeout` s."""
        self.thread.join(timeout=timeout)
        if self.thread.is_alive():
            self.proc.kill()
            self.thread.join()


class Premeshed:
    """The reference run, in-process: Redis left alone once the nodes know each other.

    Before the clock starts: every node meets node 0, and the mesh is awaited (every node knows N
    nodes, every link connected, no handshake). Then, at t0: one ADDSLOTSRANGE per master and one
    REPLICATE per replica, all sent before any reply is read.
    """

    def __init__(self, conns, n, masters, cluster):
        ids = fan_out(conns, "CLUSTER", "MYID")
        for c in conns[1:]:
            c.send("CLUSTER", "MEET", conns[0].ip, "6379")
        for c in conns[1:]:
            c.read()
        deadline = time.monotonic() + 120
        while not all(meshed(t, n) for t in fan_out(conns, "CLUSTER", "NODES")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} nodes did not mesh in 120 s")
            time.sleep(0.05)
        per = SLOTS // masters
        self.cpu_before = cluster.cpu_s()  # the nodes' CPU counts from t0, like the tools'
        self.t0 = time.monotonic()
        for i, c in enumerate(conns):
            if i < masters:
                end = SLOTS - 1 if i == masters - 1 else (i + 1) * per - 1
                c.send("CLUSTER", "ADDSLOTSRANGE", str(i * per), str(end))
            else:
                c.send("CLUSTER", "REPLICATE", ids[(i - masters) % masters])
        for c in conns:
            c.read()
        self.exit_s = time.monotonic() - self.t0
        self.exit_code, self.maxrss_kb, self.cpu_s = 0, None, 0.0

    def finish(self, timeout):
        """Nothing to wait for: the assignment was done in one round trip."""


def meshed(text, n):
    """CLUSTER NODES before slots: N nodes, every link connected, no bad flag."""
    lines = [l.split(" ") for l in text.splitlines() if l]
    return len(lines) == n and all(
        f[7] == "connected" and not set(f[2].split(",")) & BAD_FLAGS for f in lines)


def rerun(argv, env, timeout):
    """The binary once more on the cluster it just formed: the CronJob's every-5-minutes run,
    which finds the cluster formed and changes nothing. Its time, peak RSS and decision.

    Twice, in fact: once timed as it is, once under GNU time for its peak RSS. At N = 6 it ends
    within ~10 ms, before a sampler of /proc sees it; GNU time's %M is the child's own high-water
    mark (time forks itself, ~2 MB, then execs the binary, so unlike Python's wait4 it does not
    count the forking Python's pages), but time's fork adds ~10 ms to the wall clock."""
    def once(command):
        with tempfile.TemporaryFile() as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            _, status, usage = os.wait4(proc.pid, 0)
            exit_s = time.monotonic() - t0
            killer.cancel()
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            log.seek(0)
            found = re.search(rb"decision=(\w+)", log.read())
        return exit_s, code, usage, found and found.group(1).decode()

    exit_s, code, usage, decision = once(argv)
    with tempfile.NamedTemporaryFile(mode="r") as out:
        _, rss_code, _, rss_decision = once(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv])
        fields = out.read().split()
    return {"exit_s": exit_s, "exit_code": code if code == rss_code else f"{code}/{rss_code}",
            "decision": decision if decision == rss_decision else f"{decision}/{rss_decision}",
            "tool_cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kb": int(fields[-1]) if fields and fields[-1].isdigit() else None}


def run_once(tool, args, n, timeout_ms, block, binary):
    masters = n // (1 + args.replicas)
    addresses = ips(block, n)
    result = {"tool": tool, "nodes": n, "timeout_ms": timeout_ms, "block": block,
              "load_1m": round(os.getloadavg()[0], 2)}
    cluster = Cluster(addresses, timeout_ms, args.sync_delay)
    conns = []
    log = tempfile.TemporaryFile()
    try:
        time.sleep(args.settle)
        conns = [Conn(ip) for ip in addresses]
        argv = env = None
        if tool == "bootstrap":
            argv = [binary]
            env = dict(os.environ,
                       BOOTSTRAP_NODES=",".join(f"{ip}:6379" for ip in addresses),
                       BOOTSTRAP_REPLICAS_PER_MASTER=str(args.replicas),
                       BOOTSTRAP_CONVERGE_TIMEOUT=f"{int(args.run_timeout)}s")
        elif tool == "redis-cli":
            argv = ["redis-cli", "--cluster", "create", *(f"{ip}:6379" for ip in addresses),
                    "--cluster-replicas", str(args.replicas), "--cluster-yes"]
            env = dict(os.environ)
        cpu_before = cluster.cpu_s()
        poller_before = time.process_time()
        if tool == REFERENCE:
            proc = Premeshed(conns, n, masters, cluster)
            cpu_before = proc.cpu_before
        else:
            proc = Tool(argv, env, log)
        poll = args.poll_ms / 1000
        poller = Poller(conns, n, masters)
        converged = None
        rounds = 0
        last_trace = 0.0
        while converged is None and time.monotonic() - proc.t0 < args.run_timeout:
            started = time.monotonic()
            rounds += 1
            if args.trace and started - last_trace >= args.trace:
                last_trace = started
                missing = trace(conns, n, args.trace_views)
                print(f"    {started - proc.t0:6.2f}s {missing}", file=sys.stderr)
            if poller.converged():
                converged = time.monotonic() - proc.t0
                result["cluster_cpu_s"] = round(cluster.cpu_s() - cpu_before, 2)
                result["poller_cpu_s"] = round(time.process_time() - poller_before, 2)
                break
            time.sleep(max(0.0, poll - (time.monotonic() - started)))
        proc.finish(args.run_timeout)
        result.update(converged_s=converged, exit_s=proc.exit_s, exit_code=proc.exit_code,
                      maxrss_kb=proc.maxrss_kb, tool_cpu_s=proc.cpu_s, poll_rounds=rounds)
        if tool == "bootstrap" and converged is not None and proc.exit_code == 0:
            result["reruns"] = [rerun(argv, env, args.run_timeout) for _ in range(args.reruns)]
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
            log.seek(0)
            name = f"{tool}-T{timeout_ms}-N{n}-{block}-{int(time.time())}.log"
            with open(os.path.join(args.logs, name), "wb") as fh:
                shutil.copyfileobj(log, fh)
        if converged is None or proc.exit_code != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-15:]
            print(f"  {tool} N={n} T={timeout_ms}: converged={converged} "
                  f"exit={proc.exit_code}\n    " + "\n    ".join(tail), file=sys.stderr)
    finally:
        for c in conns:
            c.close()
        log.close()
        cluster.kill()
    return result


# ---------------------------------------------------------------------------------------------
# Table and plot


def groups(runs):
    """(timeout, N) -> tool -> runs, in the order measured."""
    out = {}
    for r in runs:
        out.setdefault((r["timeout_ms"], r["nodes"]), {}).setdefault(r["tool"], []).append(r)
    return out


def stats(runs, key):
    vals = sorted(r[key] for r in runs if r.get(key) is not None)
    if not vals:
        return None
    return vals[0], statistics.median(vals), vals[-1]


def table(runs):
    head = ("| tool | node timeout | N | runs | converged min | median | max | over floor (median) "
            "| tool exited (median) | peak RSS | redis-cli / bootstrap |")
    rows = [head, "|" + "---|" * 11]
    for (t, n), by_tool in groups(runs).items():
        medians = {k: (stats(v, "converged_s") or (None, None))[1] for k, v in by_tool.items()}
        for tool in TOOLS:
            rs = by_tool.get(tool)
            if not rs:
                continue
            conv = stats(rs, "converged_s")
            ok = sum(r["converged_s"] is not None for r in rs)
            count = f"{len(rs)}" if ok == len(rs) else f"{ok}/{len(rs)} converged"
            rss = max((r["maxrss_kb"] or 0) for r in rs) / 1024
            rss = f"{rss:.1f} MB" if rss else "—"
            exit_ = stats(rs, "exit_s")
            if tool == "bootstrap" and medians.get("redis-cli") and medians.get("bootstrap"):
                ratio = f"**{medians['redis-cli'] / medians['bootstrap']:.2f}×**"
            else:
                ratio = ""
            if conv:
                lo, med, hi = conv
                cells = [f"{lo:.2f} s", f"**{med:.2f} s**", f"{hi:.2f} s",
                         f"{med - floor_s(t):+.2f} s"]
            else:
                cells = ["—"] * 4
            cells += [f"{exit_[1]:.2f} s" if exit_ else "—", rss, ratio]
            rows.append(f"| {tool} | {t} ms | {n} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def rerun_table(runs):
    """The no-op re-runs (see rerun): how long the binary takes, and how much memory it needs, to
    find a formed cluster formed. Empty when there were none."""
    rows = ["| tool | node timeout | N | re-runs | decision | exit code 0 | exited min | median "
            "| max | peak RSS |", "|" + "---|" * 10]
    for (t, n), by_tool in groups(runs).items():
        rs = [x for r in by_tool.get("bootstrap", []) for x in r.get("reruns", [])]
        if not rs:
            continue
        decisions = ", ".join(sorted({x["decision"] or "?" for x in rs}))
        ok = sum(x["exit_code"] == 0 for x in rs)
        lo, med, hi = stats(rs, "exit_s") or (None, None, None)
        rss = max((x["maxrss_kb"] or 0) for x in rs) / 1024
        cells = [f"{lo:.3f} s", f"**{med:.3f} s**", f"{hi:.3f} s"] if med else ["—"] * 3
        rows.append(f"| bootstrap re-run | {t} ms | {n} | {len(rs)} | {decisions} | {ok}/{len(rs)} "
                    f"| " + " | ".join(cells) + f" | **{rss:.1f} MB** |")
    return "\n".join(rows) if len(rows) > 2 else ""


def svg(runs, path):
    """Converged time vs N: one panel per node timeout, median with min-max bars, and the floor."""
    data = groups(runs)
    timeouts = sorted({t for t, _ in data}, reverse=True)
    sizes = sorted({n for _, n in data})
    colors = {"bootstrap": "#1f77b4", "redis-cli": "#d62728", REFERENCE: "#2ca02c"}
    pw, ph, ml, mt, mb, gap = 420, 300, 60, 50, 50, 40
    width = ml + len(timeouts) * (pw + gap) + 20
    height = mt + ph + mb + 30
    xmax = max(sizes) * 1.05
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">Time until a fresh '
           f'cluster has converged (median, min–max bars)</text>']
    for p, t in enumerate(timeouts):
        x0 = ml + p * (pw + gap)
        top = max([r["converged_s"] or 0 for r in runs if r["timeout_ms"] == t] + [floor_s(t)])
        ymax = max(1.0, float(int(top * 1.1) + 1))
        X = lambda n: x0 + pw * n / xmax  # noqa: E731
        Y = lambda s: mt + ph - ph * s / ymax  # noqa: E731
        out.append(f'<text x="{x0 + pw / 2}" y="{mt - 10}" text-anchor="middle" font-weight="bold">'
                   f'cluster-node-timeout {t} ms</text>')
        step = 1 if ymax <= 8 else 2 if ymax <= 16 else 5
        s = 0
        while s <= ymax:
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(s):.1f}" y2="{Y(s):.1f}" '
                       f'stroke="#eee"/><text x="{x0 - 6}" y="{Y(s) + 4:.1f}" '
                       f'text-anchor="end">{s}</text>')
            s += step
        for n in sizes:
            out.append(f'<line x1="{X(n):.1f}" x2="{X(n):.1f}" y1="{mt + ph}" y2="{mt + ph + 5}" '
                       f'stroke="black"/><text x="{X(n):.1f}" y="{mt + ph + 18}" '
                       f'text-anchor="middle">{n}</text>')
        out.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" '
                   f'stroke="black"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 36}" text-anchor="middle">nodes (N)'
                   f'</text>')
        if p == 0:  # one label for both panels' y axes
            out.append(f'<text x="{x0 - 40}" y="{mt + ph / 2}" text-anchor="middle" '
                       f'transform="rotate(-90 {x0 - 40} {mt + ph / 2})">seconds</text>')
        f = floor_s(t)
        out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(f):.1f}" y2="{Y(f):.1f}" '
                   f'stroke="#555" stroke-dasharray="6 4"/><text x="{x0 + 6}" '
                   f'y="{Y(f) + 15:.1f}" fill="#555">floor {f:g} s</text>')
        for tool in TOOLS:
            pts = []
            for n in sizes:
                st = stats(data.get((t, n), {}).get(tool, []), "converged_s")
                if st:
                    lo, med, hi = st
                    pts.append((X(n), Y(med)))
                    out.append(f'<line x1="{X(n):.1f}" x2="{X(n):.1f}" y1="{Y(lo):.1f}" '
                               f'y2="{Y(hi):.1f}" stroke="{colors[tool]}" stroke-width="2"/>')
                    out.append(f'<circle cx="{X(n):.1f}" cy="{Y(med):.1f}" r="4" '
                               f'fill="{colors[tool]}"><title>{tool} N={n}: {med:.2f} s'
                               f'</title></circle>')
            if len(pts) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(f'<polyline points="{d}" fill="none" stroke="{colors[tool]}" '
                           f'stroke-width="2"/>')
    lx = ml
    ly = height - 12
    labels = {"bootstrap": "redis-cluster-bootstrap", "redis-cli": "redis-cli --cluster create",
              REFERENCE: "premeshed (reference)"}
    for tool in [t for t in TOOLS if any(r["tool"] == t for r in runs)]:
        label = labels[tool]
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colors[tool]}" stroke-width="3"/><text x="{lx + 30}" y="{ly}">'
                   f'{label}</text>')
        lx += 30 + 7 * len(label) + 20
    out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="#555" '
               f'stroke-dasharray="6 4"/><text x="{lx + 30}" y="{ly}">floor: Redis rejoin delay'
               f'</text>')
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def write_results(out, name, info, args, runs, text):
    """<out>/<name>.md (the machine, then the table) and <out>/<name>.json (every run)."""
    with open(os.path.join(out, f"{name}.md"), "w") as fh:
        fh.write(f"Measured {time.strftime('%Y-%m-%d')} on {info['cpu']} ({info['cores']} cores, "
                 f"{info['memory_gib']} GiB), Linux {info['kernel']}, {info['redis']}.\n\n"
                 f"{text}\n")
    with open(os.path.join(out, f"{name}.json"), "w") as fh:
        json.dump({"machine": info, "settings": {k: v for k, v in vars(args).items()
                                                 if k not in ("out", "bin")}, "runs": runs},
                  fh, indent=1)
        fh.write("\n")


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    redis = subprocess.run(["redis-server", "--version"], capture_output=True,
                           text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": platform.release(), "python": platform.python_version(), "redis": redis}


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--nodes", default="6,30,100", help="cluster sizes N (comma-separated)")
    ap.add_argument("--timeouts", default="5000,1000", help="cluster-node-timeout values, ms")
    ap.add_argument("--runs", type=int, default=5, help="runs per tool and configuration")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="bootstrap, redis-cli, and/or premeshed (a reference: the nodes meshed "
                         "before the clock starts, so only Redis's own convergence is timed)")
    ap.add_argument("--replicas", type=int, default=1, help="replicas per master")
    ap.add_argument("--settle", type=float, default=2.5,
                    help="seconds between the nodes being up and the tool's start (Redis holds "
                         "a just-started master at fail for 2 s)")
    ap.add_argument("--sync-delay", type=int, default=0,
                    help="repl-diskless-sync-delay of the nodes, s (Redis's default is 5; -1 "
                         "leaves it unset). Not part of 'converged', but the bootstrap waits for "
                         "every replica's first sync before it exits")
    ap.add_argument("--poll-ms", type=float, default=20,
                    help="the poller's period, ms (it asks the node not there yet, then every "
                         "node, pipelined)")
    ap.add_argument("--run-timeout", type=float, default=90, help="give up a run after this, s")
    ap.add_argument("--trace", type=float, default=0, metavar="SECONDS",
                    help="print what is still missing every SECONDS (diagnosis; adds load)")
    ap.add_argument("--trace-views", action="store_true",
                    help="with --trace, also read every CLUSTER NODES (slow at large N)")
    ap.add_argument("--reruns", type=int, default=3,
                    help="after each bootstrap run that converged, run the binary this many more "
                         "times on the formed cluster (the CronJob's no-op run): its time and "
                         "peak RSS")
    ap.add_argument("--logs", metavar="DIR", help="keep each tool's output in DIR")
    ap.add_argument("--bin", help="the bootstrap binary (default: cargo build --release)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"),
                    help="where table.md and runs.json go (default bench/results)")
    ap.add_argument("--plot", help="where the SVG plot goes (default bench/converge.svg with the "
                                   "default --out, else <out>/converge.svg)")
    ap.add_argument("--smoke", action="store_true",
                    help="CI check: N=6, T=1000 ms, one run per tool, results in a temp dir")
    args = ap.parse_args()
    if args.sync_delay < 0:
        args.sync_delay = None
    if args.smoke:
        args.nodes, args.timeouts, args.runs = "6", "1000", 1
        args.out = tempfile.mkdtemp(prefix="redis-bench-smoke-")
    if args.plot is None:
        default_out = os.path.join(ROOT, "bench", "results")
        args.plot = (os.path.join(ROOT, "bench", "converge.svg")
                     if os.path.abspath(args.out) == default_out
                     else os.path.join(args.out, "converge.svg"))
    sizes = [int(x) for x in args.nodes.split(",")]
    timeouts = [int(x) for x in args.timeouts.split(",")]
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}: use {', '.join(TOOLS)}")
    for n in sizes:
        if n % (1 + args.replicas) or n // (1 + args.replicas) < 3 or n > 2000:
            ap.error(f"N={n}: needs at least 3 masters and N divisible by {1 + args.replicas}")
    for tool in ("redis-server", "redis-cli", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: run scripts/install-deps.sh")
    binary = args.bin
    if binary is None and "bootstrap" in tools:
        # Builds it and prints the path cargo reports: CARGO_TARGET_DIR is honoured.
        binary = subprocess.run([os.path.join(ROOT, "scripts", "release-binary.sh")],
                                check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    os.makedirs(args.out, exist_ok=True)

    info = machine()
    info["load_1m_at_start"] = round(os.getloadavg()[0], 2)
    print(f"# {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
          f"{info['redis']}; load {info['load_1m_at_start']}", file=sys.stderr)
    runs = []
    block = 0
    for t in timeouts:
        for n in sizes:
            for i in range(args.runs):
                # Alternate the tools, and which goes first, run by run.
                for tool in tools if i % 2 == 0 else tools[::-1]:
                    r = run_once(tool, args, n, t, BLOCKS[block % len(BLOCKS)], binary)
                    block += 1
                    runs.append(r)
                    conv = "—" if r["converged_s"] is None else f"{r['converged_s']:.2f} s"
                    ex = "—" if r["exit_s"] is None else f"{r['exit_s']:.2f} s"
                    print(f"  T={t} N={n} run {i + 1}/{args.runs} {tool}: converged {conv}, "
                          f"exited {ex} (code {r['exit_code']}); CPU: nodes "
                          f"{r.get('cluster_cpu_s')} s, tool {r.get('tool_cpu_s') or 0:.2f} s, "
                          f"poller {r.get('poller_cpu_s')} s; load {r['load_1m']}",
                          file=sys.stderr)
                    for x in r.get("reruns", []):
                        print(f"    re-run: {x['decision']}, exited {x['exit_s']:.3f} s (code "
                              f"{x['exit_code']}), peak RSS {(x['maxrss_kb'] or 0) / 1024:.1f} MB",
                              file=sys.stderr)
    info["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    loads = [r["load_1m"] for r in runs]
    info["load_1m_before_runs"] = {"min": min(loads), "max": max(loads)}
    text = table(runs)
    reruns = rerun_table(runs)
    if reruns:
        text += "\n\nThe no-op re-run: the binary once more on each cluster it formed.\n\n" + reruns
    print(text)
    with open(os.path.join(args.out, "table.md"), "w") as fh:
        fh.write(f"Measured {time.strftime('%Y-%m-%d')} on {info['cpu']} ({info['cores']} cores, "
                 f"{info['memory_gib']} GiB), Linux {info['kernel']}, {info['redis']}; 1-minute "
                 f"load average {info['load_1m_at_start']} at the start, "
                 f"{info['load_1m_before_runs']['min']}–{info['load_1m_before_runs']['max']} "
                 f"before each run (the benchmark's own nodes included). Settle "
                 f"{args.settle} s, repl-diskless-sync-delay {args.sync_delay}, poll every "
                 f"{args.poll_ms:g} ms.\n\n{text}\n")
    with open(os.path.join(args.out, "runs.json"), "w") as fh:
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "bin", "plot", "logs")}
        json.dump({"machine": info, "settings": settings, "runs": runs}, fh, indent=1)
        fh.write("\n")
    svg(runs, args.plot)
    print(f"# results: {args.out}/table.md, {args.out}/runs.json, {args.plot}", file=sys.stderr)
    if args.smoke:
        shutil.rmtree(args.out, ignore_errors=True)
    ok = all(r["converged_s"] is not None for r in runs) and all(
        r["exit_code"] == 0 for r in runs) and all(
        x["exit_code"] == 0 for r in runs for x in r.get("reruns", []))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
