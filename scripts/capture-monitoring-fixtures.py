#!/usr/bin/env python3
"""Captures the promtool tests' input series from real nodes and the real exporter.

Each session starts real redis-server nodes (one per "pod", on its own loopback IP, announcing its
pod name), forms them with the bootstrap binary, runs Debian's prometheus-redis-exporter beside
each node exactly as components/monitoring runs the sidecar (its own node over loopback, no
CONFIG), puts the nodes through the states the alerts are about, and scrapes every exporter in
each state. It writes tests/monitoring/fixtures/<session>.json: per state, every `redis_*` series
with the labels a PodMonitor target carries (namespace, pod, container, endpoint, job, instance and
the PodMonitor's `statefulset`), plus Prometheus's own `up`. tests/monitoring_rules.rs turns them
into `promtool test rules` input, each state held for minutes. It also writes
tests/monitoring/exported_metrics.txt, every metric name the exporter exported here.

Rerunnable: `python3 scripts/capture-monitoring-fixtures.py` (about 2 minutes; it builds the
binary if needed). Addresses 127.31.100.0/22 (tests/common/BLOCKS.md).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "monitoring")
BINARY = os.path.join(ROOT, "target", "debug", "redis-cluster-bootstrap")
NODE_TIMEOUT_MS = 2000
# Labels of a PodMonitor target (tests/monitoring_rules.rs checks them against the rendered one).
NAMESPACE = "infra"
JOB = "infra/redis-cluster"


def used_metrics():
    """The `redis_*` names the rules and the dashboard use: the only series the fixtures keep
    (every name exported still goes to exported_metrics.txt)."""
    import re
    text = ""
    for name in ("prometheus_rule.yaml", "dashboard.json"):
        with open(os.path.join(ROOT, "components", "monitoring", name)) as f:
            text += f.read()
    return set(re.findall(r"\bredis_[a-z_]+", text))


USED = used_metrics()


class Retry(Exception):
    """A state that ended before it could be scraped: the session runs again."""


def log(*args):
    print("capture:", *args, file=sys.stderr, flush=True)


def wait(what, test, limit=30.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if test():
            return
        time.sleep(0.05)
    raise SystemExit(f"capture: timed out waiting for {what}")


class Node:
    """One redis-server playing pod `index` of StatefulSet `sts` at `ip`, and its exporter."""

    def __init__(self, sts, index, ip, exporter_ip, directory):
        self.sts, self.index, self.ip, self.exporter_ip = sts, index, ip, exporter_ip
        self.dir = directory
        self.pod = f"{sts}-{index}"
        self.server = None
        self.exporter = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.server = subprocess.Popen(
            ["redis-server", "--port", "6379", "--bind", self.ip, "--bind-source-addr", self.ip,
             "--protected-mode", "no", "--dir", self.dir, "--logfile", "redis.log",
             "--appendonly", "yes", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--repl-diskless-sync-delay", "0",
             "--cluster-announce-ip", self.ip, "--cluster-announce-hostname", self.pod],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own process group: a snapshot child it forks (redis-rdb-bgsave) is in it, and
            # goes with it (a SIGKILLed Redis cannot stop its child itself).
            start_new_session=True)
        wait(f"{self.pod} to listen", lambda: self.cli("ping") == "PONG")

    def start_exporter(self):
        # The sidecar's environment (components/monitoring), this node's address instead of
        # 127.0.0.1 (each "pod" has its own loopback IP here).
        env = dict(os.environ,
                   REDIS_ADDR=f"redis://{self.ip}:6379",
                   REDIS_EXPORTER_WEB_LISTEN_ADDRESS=f"{self.exporter_ip}:9121",
                   REDIS_EXPORTER_CONFIG_COMMAND="-")
        self.exporter = subprocess.Popen(["prometheus-redis-exporter"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(f"{self.pod}'s exporter", lambda: self.scrape() is not None)

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-h", self.ip, "-p", "6379", *args],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip()

    def info(self, section):
        """INFO `section`, or CLUSTER INFO for "cluster", as a dict."""
        args = ("cluster", "info") if section == "cluster" else ("info", section)
        fields = {}
        for line in self.cli(*args).splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        return fields

    def kill(self):
        """SIGKILL, as a crash: the server and any child it forked (its process group, which
        outlives the server while such a child runs)."""
        if self.server is None:
            return
        try:
            os.killpg(self.server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.server.wait()

    def scrape(self):
        try:
            with urllib.request.urlopen(f"http://{self.exporter_ip}:9121/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def stop(self):
        self.kill()
        if self.exporter and self.exporter.poll() is None:
            self.exporter.kill()
            self.exporter.wait()


class Session:
    """A cluster of `count` pods of StatefulSet `sts` in block 127.31.<block>.0/24."""

    def __init__(self, name, block, count=6, sts="redis-app"):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"capture-{name}-")
        self.nodes = [Node(sts, i, f"127.31.{block}.{11 + i}", f"127.31.{block}.{111 + i}",
                           os.path.join(self.tmp, str(i))) for i in range(count)]
        self.states = []
        self.names = set()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.start_exporter()

    def form(self):
        nodes = ",".join(f"{n.ip}:6379" for n in self.nodes)
        env = {"PATH": os.environ["PATH"], "BOOTSTRAP_NODES": nodes,
               "BOOTSTRAP_READY_TIMEOUT": "10s", "BOOTSTRAP_CONVERGE_TIMEOUT": "60s"}
        run = subprocess.run([BINARY], env=env, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise SystemExit(f"capture: the bootstrap failed:\n{run.stderr}")
        self.wait_synced()

    def wait_synced(self):
        def synced():
            for n in self.nodes:
                if n.server.poll() is None and n.info("replication").get("role") == "slave":
                    if n.info("replication").get("master_link_status") != "up":
                        return False
            return True
        wait("every replica in sync", synced)

    def write(self, node, count, size=16, prefix="k"):
        """Writes `count` keys of `size` bytes to `node` (keys of its own slots, via -c)."""
        payload = "x" * size
        script = "".join(f"SET {{{prefix}}}:{i} {payload}\n" for i in range(count))
        subprocess.run(["redis-cli", "-h", node.ip, "-p", "6379", "-c"], input=script,
                       capture_output=True, text=True, timeout=120)

    def capture(self, state, skip=()):
        """Scrapes every exporter (not those of `skip`) and records the state."""
        series = {}
        for n in self.nodes:
            target = {"namespace": NAMESPACE, "pod": n.pod, "container": "redis-exporter",
                      "endpoint": "metrics", "job": JOB, "instance": f"{n.exporter_ip}:9121",
                      "statefulset": n.sts}
            text = None if n.index in skip else n.scrape()
            series[key("up", target)] = 0 if text is None else 1
            for line in (text or "").splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                name_labels, value = line.rsplit(" ", 1)
                name, labels = parse(name_labels)
                self.names.add(name)
                if name not in USED:
                    continue
                labels.update(target)
                series[key(name, labels)] = float(value)
        self.states.append({"name": state, "series": series})
        log(f"{self.name}: captured {state} ({len(series)} series)")

    def save(self):
        doc = {
            "session": self.name,
            "captured_with": versions(),
            # Each pod's address, for the kube-state-metrics series the tests type beside these.
            "pods": {n.pod: n.ip for n in self.nodes},
            "states": self.states,
        }
        with open(os.path.join(OUT, "fixtures", f"{self.name}.json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def parse(name_labels):
    if "{" not in name_labels:
        return name_labels, {}
    name, rest = name_labels.split("{", 1)
    labels = {}
    rest = rest.rstrip("}")
    while rest:
        k, rest = rest.split("=", 1)
        assert rest.startswith('"')
        end = 1
        while rest[end] != '"' or rest[end - 1] == "\\":
            end += 1
        labels[k] = rest[1:end]
        rest = rest[end + 1:].lstrip(",")
    return name, labels


def key(name, labels):
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def versions():
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    exporter = subprocess.run(["prometheus-redis-exporter", "-version"], capture_output=True,
                              text=True)
    exporter = (exporter.stdout + exporter.stderr).split("Exporter", 1)[-1].split()[0]
    return {"redis": redis.split()[2].removeprefix("v="), "redis_exporter": exporter,
            "date": time.strftime("%Y-%m-%d")}


def master_with_replica(session):
    """(master, its replica) among the session's nodes, as the replica reports it."""
    for n in session.nodes:
        repl = n.info("replication")
        if repl.get("role") == "slave":
            master = next(m for m in session.nodes if m.ip == repl["master_host"])
            return master, n
    raise SystemExit("capture: no replica")


def slots_field(node, field):
    return int(node.info("cluster").get(field, "0"))


def kill_session():
    s = Session("master_killed", 100)
    try:
        s.form()
        s.write(s.nodes[0], 2000)
        s.wait_synced()
        s.capture("healthy")
        master, replica = master_with_replica(s)
        # Hold the replica back from its failover until the fail state is captured.
        replica.cli("config", "set", "cluster-replica-no-failover", "yes")
        master.kill()
        # pfail lasts until a majority of masters agree (a fraction of a second on some nodes):
        # scrape the moment any node reports it, and keep the capture only if a scrape saw it.
        others = [n for n in s.nodes if n is not master]
        wait("pfail", lambda: any(slots_field(n, "cluster_slots_pfail") > 0 for n in others))
        s.capture("master_pfail")
        seen = [k for k, v in s.states[-1]["series"].items()
                if k.startswith("redis_cluster_slots_pfail{") and v > 0]
        if not seen:
            raise Retry("pfail ended before the scrape")
        wait("fail", lambda: slots_field(replica, "cluster_slots_fail") > 0)
        wait("cluster_state:fail everywhere", lambda: all(
            n.info("cluster").get("cluster_state") == "fail"
            for n in s.nodes if n is not master))
        s.capture("master_fail")
        replica.cli("config", "set", "cluster-replica-no-failover", "no")
        wait("the failover", lambda: replica.info("replication").get("role") == "master"
             and all(n.info("cluster").get("cluster_state") == "ok"
                     for n in s.nodes if n is not master), limit=60)
        s.capture("after_failover")
        s.save()
    finally:
        s.stop()
    return s


def replica_detached_session():
    s = Session("replica_detached", 101)
    try:
        s.form()
        s.capture("healthy")
        master, replica = master_with_replica(s)
        # The replica logs in as a user its master does not have: its link stays down while
        # both nodes run.
        replica.cli("config", "set", "masteruser", "nobody")
        replica.cli("config", "set", "masterauth", "wrong")
        replica.cli("client", "kill", "type", "master")
        wait("the link down", lambda: replica.info("replication").get("master_link_status") == "down"
             and master.info("replication").get("connected_slaves") == "0")
        time.sleep(1)
        s.capture("replica_detached")
        s.save()
    finally:
        s.stop()
    return s


def replica_gone_session():
    s = Session("replica_gone", 102)
    try:
        s.form()
        s.capture("healthy")
        master, replica = master_with_replica(s)
        replica.kill()
        wait("the master without its replica",
             lambda: master.info("replication").get("connected_slaves") == "0")
        s.capture("replica_gone")
        s.save()
    finally:
        s.stop()
    return s


def full_sync_session():
    s = Session("replica_full_sync", 103)
    try:
        s.form()
        master, replica = master_with_replica(s)
        tag = next(t for t in (f"f{i}" for i in range(10000))
                   if owns(master, int(master.cli("cluster", "keyslot", t))))
        s.write(master, 2000, prefix=tag)
        s.wait_synced()
        s.capture("healthy")
        # The replica's pod comes back without its data (nodes.conf kept): a full sync, which
        # the master's snapshot makes last minutes (rdb-key-save-delay: 100 ms per key), as a
        # large dataset's would.
        master.cli("config", "set", "repl-diskless-sync", "no")
        master.cli("config", "set", "rdb-key-save-delay", "100000")
        replica.kill()
        shutil.rmtree(os.path.join(replica.dir, "appendonlydir"), ignore_errors=True)
        if os.path.exists(os.path.join(replica.dir, "dump.rdb")):
            os.remove(os.path.join(replica.dir, "dump.rdb"))
        replica.start()
        wait("the full sync", lambda: replica.info("replication").get(
            "master_sync_in_progress") == "1")
        time.sleep(1)
        s.capture("replica_full_sync")
        s.save()
    finally:
        s.stop()
    return s


def lagging_session():
    s = Session("replica_lagging", 104)
    try:
        s.form()
        s.capture("healthy")
        master, replica = master_with_replica(s)
        backlog = int(master.info("replication")["repl_backlog_size"])
        # The replica stalls (SIGSTOP: a starved process); the master takes 3x its backlog in
        # writes and still counts the replica online.
        os.kill(replica.server.pid, signal.SIGSTOP)
        try:
            tag = next(t for t in (f"t{i}" for i in range(10000))
                       if owns(master, int(master.cli("cluster", "keyslot", t))))
            s.write(master, 3 * backlog // 1024, size=1024, prefix=tag)
            s.capture("replica_lagging", skip=(replica.index,))
        finally:
            os.kill(replica.server.pid, signal.SIGCONT)
        s.save()
    finally:
        s.stop()
    return s


def owns(node, slot):
    for line in node.cli("cluster", "nodes").splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            for r in fields[8:]:
                if "-" in r and not r.startswith("["):
                    low, high = r.split("-")
                    if int(low) <= slot <= int(high):
                        return True
                elif r.isdigit() and int(r) == slot:
                    return True
    return False


def memory_session():
    s = Session("memory_full", 105)
    try:
        s.form()
        s.capture("healthy")
        master, _ = master_with_replica(s)
        used = int(master.info("memory")["used_memory"])
        # Near full with an eviction policy (a cache): evictions, and used over 90% of maxmemory.
        master.cli("config", "set", "maxmemory", str(used + 2 * 1024 * 1024))
        master.cli("config", "set", "maxmemory-policy", "allkeys-lru")
        tag = next(t for t in (f"m{i}" for i in range(10000))
                   if owns(master, int(master.cli("cluster", "keyslot", t))))
        s.write(master, 4096, size=1024, prefix=tag)
        wait("evictions", lambda: int(master.info("stats")["evicted_keys"]) > 0)
        s.capture("memory_full")
        s.save()
    finally:
        s.stop()
    return s


def rejected_session():
    s = Session("connections_rejected", 106)
    try:
        s.form()
        s.capture("healthy")
        node = s.nodes[0]
        # Cluster bus connections count against maxclients too.
        info = node.info("clients")
        clients = int(info["connected_clients"]) + int(info.get("cluster_connections", "0"))
        before = node.cli("config", "get", "maxclients").splitlines()[1]
        node.cli("config", "set", "maxclients", str(clients + 2))
        held = []
        for _ in range(6):
            c = socket.create_connection((node.ip, 6379))
            c.sendall(b"PING\r\n")
            held.append(c)
        time.sleep(0.5)
        for c in held:
            c.close()
        time.sleep(0.5)
        wait("maxclients restored",
             lambda: node.cli("config", "set", "maxclients", before) == "OK")
        wait("rejected connections", lambda: int(node.info("stats")["rejected_connections"]) > 0)
        s.capture("connections_rejected")
        s.save()
    finally:
        s.stop()
    return s


def scratch_session():
    # Another StatefulSet (another cluster in the same Prometheus): three nodes, one master with
    # half the slots, one more node met, the third never: slots unassigned, known nodes short.
    s = Session("scratch_unassigned", 107, count=3, sts="scratch")
    try:
        a, b, _ = s.nodes
        a.cli("cluster", "addslotsrange", "0", "8191")
        b.cli("cluster", "meet", a.ip, "6379")
        wait("the handshake", lambda: a.info("cluster").get("cluster_known_nodes") == "2")
        time.sleep(NODE_TIMEOUT_MS / 1000 + 1)
        s.capture("slots_unassigned")
        s.save()
    finally:
        s.stop()
    return s


def main():
    for tool in ("redis-server", "redis-cli", "prometheus-redis-exporter"):
        if shutil.which(tool) is None:
            raise SystemExit(f"capture: {tool} is missing: run scripts/install-deps.sh")
    if not os.path.exists(BINARY):
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(OUT, "fixtures"), exist_ok=True)
    names = set()
    for attempt in range(5):
        try:
            names |= kill_session().names
            break
        except Retry as e:
            log(f"master_killed: {e}; again ({attempt + 1})")
    else:
        raise SystemExit("capture: pfail never scraped")
    for session in ( replica_detached_session, replica_gone_session,
                    full_sync_session, lagging_session, memory_session, rejected_session,
                    scratch_session):
        names |= session().names
    with open(os.path.join(OUT, "exported_metrics.txt"), "w") as f:
        f.write("# Every metric name Debian's prometheus-redis-exporter exported in the captured\n"
                "# states (scripts/capture-monitoring-fixtures.py). A rule that names another fails\n"
                "# tests/monitoring_rules.rs.\n")
        for name in sorted(names):
            f.write(name + "\n")


if __name__ == "__main__":
    main()
