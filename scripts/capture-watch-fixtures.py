#!/usr/bin/env python3
"""Captures the promtool tests' input series of the `watch` sidecar's alerts from the real watcher.

Each session starts three "pods" as production runs them: a TLS-only redis-server whose ACL users
come from `redis-cluster-bootstrap users` on its stdin (production's rules, overlays/production/acl,
the passwords of the pod's mount of the Secret redis-users, the pod-local user `pod`), the Secrets
redis-users and redis-tls mounted as the kubelet mounts them (and changed as it changes them: a new
`..data` at once), and beside it the binary's own `redis-cluster-bootstrap watch` with the
sidecar's environment, serving /metrics. It puts the pods through the states the alerts are about
and scrapes every watcher in each state, once its metrics show the state:

- watch_renewal: healthy; a renewal whose key does not match its certificate, refused by every
  node (each keeps serving the old one); then a good renewal, taken; then pod 1's watcher killed
  (its node still up);
- watch_expiry: the served certificate with 365, then 25, 20 and 6 days left (each a renewal to a
  certificate that lives that long: the watcher reports notAfter, as an ageing one would);
- watch_users: healthy; a rotation of `replication` (the new password put first) that pod 1 cannot
  apply to masterauth and pod 2 cannot apply to the user (the harness took CONFIG SET, resp.
  ACL SETUSER, from their `pod` user: a node that refuses the change).

It writes tests/monitoring/fixtures/<session>.json like scripts/capture-monitoring-fixtures.py
(per state every `redis_cluster_bootstrap_*` series with the labels the PodMonitor's
`watch-metrics` endpoint gives, plus Prometheus's `up`), with each state's capture time
(`captured_at`: the tests move the notAfter timestamps onto promtool's clock), and
tests/monitoring/watch_metrics.txt, every metric name the watcher exported.

Rerunnable: `python3 scripts/capture-watch-fixtures.py` (about a minute; it builds the binary
first, so the capture is of the code as it is). Needs redis-server, redis-cli and openssl.
Addresses 127.31.110.0/24 – 127.31.112.0/24 (tests/common/BLOCKS.md).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "monitoring")
BINARY = os.path.join(ROOT, "target", "debug", "redis-cluster-bootstrap")
METRICS_PORT = 9180
NAMESPACE = "infra"
STATEFULSET = "redis-app"
# The PodMonitor's job label, `<namespace>/<name>`, for both of its endpoints.
JOB = "infra/redis-cluster"
# Production's users, each with a password in the Secret. The harness logs in as the pod-local
# user `pod`, as a person inside the pod would: nothing but production's users is defined.
USERS = ("app", "bootstrap", "exporter", "replication")

# The exporter capture's helpers: the same text parsing, series keys and waits.
_spec = importlib.util.spec_from_file_location(
    "capture_monitoring", os.path.join(ROOT, "scripts", "capture-monitoring-fixtures.py"))
_monitoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_monitoring)
parse, key, wait, log = _monitoring.parse, _monitoring.key, _monitoring.wait, _monitoring.log


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


class Mount:
    """A Secret mounted as the kubelet mounts it: `..<stamp>/` with the files, `..data` pointing at
    it, a link per key; replaced whole by renaming a new `..data` over the old one."""

    def __init__(self, directory):
        self.dir = directory
        self.generation = 0
        os.makedirs(directory)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, files):
        self.generation += 1
        stamp = f"..2026_12_08_00_00_00.{self.generation}"
        os.mkdir(os.path.join(self.dir, stamp))
        for name, data in files.items():
            with open(os.path.join(self.dir, stamp, name), "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
        data_link = os.path.join(self.dir, "..data")
        old = os.readlink(data_link) if os.path.islink(data_link) else None
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(stamp, tmp)
        os.rename(tmp, data_link)
        for name in files:
            if not os.path.lexists(self.path(name)):
                os.symlink(os.path.join("..data", name), self.path(name))
        for name in os.listdir(self.dir):
            if not name.startswith("..") and name not in files:
                os.remove(self.path(name))
        if old:
            shutil.rmtree(os.path.join(self.dir, old))


class Certificates:
    """A CA, and certificates for every pod's address issued by it (one Secret for all pods, as
    components/tls makes): ECDSA P-256, server and client auth, as cert-manager issues them."""

    def __init__(self, directory, ips):
        self.dir = directory
        self.ips = ips
        self.count = 0
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.file("ca.key"), "-out", self.file("ca.crt"),
            "-days", "3650", "-subj", "/CN=redis-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def file(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.file(name), "rb") as f:
            return f.read()

    def issue(self, days):
        """A new key and a certificate valid for `days` from now: the Secret's files."""
        self.count += 1
        name = f"tls-{self.count}"
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.file(f"{name}.key"), "-out", self.file(f"{name}.csr"),
            "-subj", "/CN=redis-app")
        with open(self.file(f"{name}.ext"), "w") as f:
            sans = ",".join(f"IP:{ip}" for ip in self.ips)
            f.write(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        run("openssl", "x509", "-req", "-in", self.file(f"{name}.csr"), "-CA", self.file("ca.crt"),
            "-CAkey", self.file("ca.key"), "-set_serial", str(1000 + self.count),
            "-days", str(days), "-extfile", self.file(f"{name}.ext"),
            "-out", self.file(f"{name}.crt"))
        return {"ca.crt": self.read("ca.crt"), "tls.crt": self.read(f"{name}.crt"),
                "tls.key": self.read(f"{name}.key")}


class Pod:
    """Pod `index`: its mounts, its TLS-only node with production's users, and its watcher."""

    def __init__(self, index, ip, directory, rules):
        self.index, self.ip, self.dir, self.rules = index, ip, directory, rules
        self.pod = f"{STATEFULSET}-{index}"
        self.tls = Mount(os.path.join(directory, "redis-tls"))
        self.users = Mount(os.path.join(directory, "redis-users"))
        self.password_file = os.path.join(directory, "redis-pod", "password")
        self.server = None
        self.watch = None

    def env(self):
        """The watch sidecar's variables (components/tls and production), this pod's paths."""
        return {
            "PATH": os.environ["PATH"],
            "BOOTSTRAP_NODES": f"{self.ip}:6379",
            "BOOTSTRAP_TLS_CA_FILE": self.tls.path("ca.crt"),
            "BOOTSTRAP_TLS_CERT_FILE": self.tls.path("tls.crt"),
            "BOOTSTRAP_TLS_KEY_FILE": self.tls.path("tls.key"),
            "BOOTSTRAP_USERS_DIR": self.users.dir,
            "BOOTSTRAP_USERNAME": "pod",
            "BOOTSTRAP_PASSWORD_FILE": self.password_file,
        }

    def start(self):
        """As production's Redis container starts, then its watch sidecar."""
        os.makedirs(os.path.dirname(self.password_file))
        env = dict(self.env(), BOOTSTRAP_ACL_DIR=self.rules)
        users = subprocess.run([BINARY, "users"], env=env, capture_output=True, text=True)
        if users.returncode != 0:
            raise SystemExit(f"capture: users: {users.stderr}")
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        # Production's tls.conf: TLS only, on the bus and replication too, client certificates
        # optional; the files from the pod's mount.
        self.server = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", "6379", "--bind", self.ip,
             "--bind-source-addr", self.ip, "--dir", data, "--logfile", "redis.log",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--tls-cluster", "yes", "--tls-replication", "yes",
             "--tls-cert-file", self.tls.path("tls.crt"), "--tls-key-file", self.tls.path("tls.key"),
             "--tls-ca-cert-file", self.tls.path("ca.crt"), "--tls-auth-clients", "optional", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.server.stdin.write(users.stdout)
        self.server.stdin.close()
        wait(f"{self.pod} to answer", lambda: self.cli("ping") == "PONG")
        self.watch_log = open(os.path.join(self.dir, "watch.log"), "w")
        self.watch = subprocess.Popen(
            [BINARY, "watch"],
            env=dict(self.env(), BOOTSTRAP_METRICS_ADDRESS=f"{self.ip}:{METRICS_PORT}"),
            stdout=subprocess.DEVNULL, stderr=self.watch_log)

    def cli(self, *args):
        out = subprocess.run(
            ["redis-cli", "-h", self.ip, "-p", "6379", "--tls",
             "--cacert", self.tls.path("ca.crt"), "--user", "pod", "--pass", self.pod_password(),
             "--no-auth-warning", *args],
            capture_output=True, text=True, timeout=20)
        return out.stdout.strip()

    def pod_password(self):
        with open(self.password_file) as f:
            return f.read().strip()

    def scrape(self):
        try:
            url = f"http://{self.ip}:{METRICS_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def metric(self, name):
        """The value of `name` (a full sample name with labels, as exported), or None."""
        for line in (self.scrape() or "").splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self):
        for child in (self.watch, self.server):
            if child and child.poll() is None:
                child.kill()
                child.wait()


class Session:
    """Three pods in block 127.31.<block>.0/24 (nodes and their watchers on .11–.13)."""

    def __init__(self, name, block):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"capture-{name}-")
        self.ips = [f"127.31.{block}.{11 + i}" for i in range(3)]
        self.certs = Certificates(self.tmp, self.ips)
        self.rules = os.path.join(self.tmp, "acl")
        os.makedirs(self.rules)
        for user in USERS:
            shutil.copy(os.path.join(ROOT, "overlays", "production", "acl", user), self.rules)
        self.secret = {user: f"{user}-password-1\n" for user in USERS}
        self.pods = [Pod(i, ip, os.path.join(self.tmp, f"pod-{i}"), self.rules)
                     for i, ip in enumerate(self.ips)]
        self.states = []
        self.names = set()

    def start(self, days=365):
        tls = self.certs.issue(days)
        for pod in self.pods:
            pod.tls.write(tls)
            pod.users.write(self.secret)
            pod.start()
        for pod in self.pods:
            wait(f"{pod.pod}'s watcher to check its node", lambda: self.in_sync(pod), limit=60)
        # The watcher takes the files it sees in its first two polls (a second apart) for the
        # ones it started with; a change before that would be checked only a minute later.
        time.sleep(3)

    @staticmethod
    def in_sync(pod):
        return (pod.metric("redis_cluster_bootstrap_tls_serving_matches_files") == 1
                and pod.metric("redis_cluster_bootstrap_masterauth_in_sync") == 1
                and all(pod.metric(f'redis_cluster_bootstrap_users_in_sync{{user="{u}"}}') == 1
                        for u in USERS))

    def renew(self, tls, pods=None):
        """The kubelet swaps the Secret redis-tls's files in `pods` (every pod by default)."""
        for pod in pods or self.pods:
            pod.tls.write(tls)

    def change_users(self):
        """The kubelet swaps the Secret redis-users's files in every pod."""
        for pod in self.pods:
            pod.users.write(self.secret)

    def capture(self, state):
        """Scrapes every watcher and records the state."""
        series = {}
        captured_at = time.time()
        for pod in self.pods:
            target = {"namespace": NAMESPACE, "pod": pod.pod, "container": "watch",
                      "endpoint": "watch-metrics", "job": JOB,
                      "instance": f"{pod.ip}:{METRICS_PORT}", "statefulset": STATEFULSET}
            text = pod.scrape()
            series[key("up", target)] = 0 if text is None else 1
            for line in (text or "").splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                name_labels, value = line.rsplit(" ", 1)
                name, labels = parse(name_labels)
                self.names.add(name)
                labels.update(target)
                series[key(name, labels)] = float(value)
        self.states.append({"name": state, "captured_at": round(captured_at, 3),
                            "series": series})
        log(f"{self.name}: captured {state} ({len(series)} series)")

    def save(self):
        redis = run("redis-server", "--version").split()[2].removeprefix("v=")
        doc = {
            "session": self.name,
            "captured_with": {"redis": redis, "watch": watch_version(),
                              "date": time.strftime("%Y-%m-%d")},
            "pods": {pod.pod: pod.ip for pod in self.pods},
            "states": self.states,
        }
        with open(os.path.join(OUT, "fixtures", f"{self.name}.json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")

    def stop(self):
        for pod in self.pods:
            pod.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def watch_version():
    """The binary's version and the commit it was built from (`+` when the tree had changes)."""
    commit = run("git", "-C", ROOT, "rev-parse", "--short", "HEAD").strip()
    dirty = run("git", "-C", ROOT, "status", "--porcelain", "--", "src").strip()
    return f"{run(BINARY, '--version').strip()} ({commit}{'+' if dirty else ''})"


def renewal_session():
    s = Session("watch_renewal", 110)
    try:
        s.start()
        s.capture("healthy")
        # cert-manager's renewal, but the key of another: every node refuses the pair and keeps
        # serving the certificate it has.
        broken = s.certs.issue(365)
        broken["tls.key"] = s.certs.issue(365)["tls.key"]
        s.renew(broken)
        for pod in s.pods:
            wait(f"{pod.pod} to refuse the renewal", lambda: pod.metric(
                "redis_cluster_bootstrap_tls_reload_failures_total") == 1 and pod.metric(
                "redis_cluster_bootstrap_tls_serving_matches_files") == 0)
        s.capture("renewal_refused")
        # The Secret fixed: a good renewal, which every node takes.
        s.renew(s.certs.issue(365))
        for pod in s.pods:
            wait(f"{pod.pod} to take the fixed renewal", lambda: pod.metric(
                "redis_cluster_bootstrap_tls_serving_matches_files") == 1)
        s.capture("renewal_fixed")
        # Pod 1's sidecar stops answering (killed: a crash-looping sidecar between restarts), its
        # node up: Prometheus's `up` for that target is 0 and its other series are gone.
        s.pods[1].watch.kill()
        s.pods[1].watch.wait()
        wait("pod 1's watcher to stop answering", lambda: s.pods[1].scrape() is None)
        s.capture("watcher_down")
        s.save()
    finally:
        s.stop()
    return s


def expiry_session():
    s = Session("watch_expiry", 111)
    try:
        s.start()
        s.capture("healthy")
        for days in (25, 20, 6):
            reloads = s.pods[0].metric("redis_cluster_bootstrap_tls_reloads_total")
            s.renew(s.certs.issue(days))
            for pod in s.pods:
                wait(f"{pod.pod} to serve the certificate of {days} days", lambda: pod.metric(
                    "redis_cluster_bootstrap_tls_reloads_total") == reloads + 1 and pod.metric(
                    "redis_cluster_bootstrap_tls_serving_matches_files") == 1)
            s.capture(f"expires_in_{days}_days")
        s.save()
    finally:
        s.stop()
    return s


def users_session():
    s = Session("watch_users", 112)
    try:
        s.start()
        s.capture("healthy")
        # Two nodes that refuse the change: pod 1's `pod` user may not CONFIG SET (masterauth),
        # pod 2's may not ACL SETUSER (the user's passwords). (`pod` takes them from itself: it is
        # the only user here that may change users.)
        s.pods[1].cli("acl", "setuser", "pod", "-config|set")
        s.pods[2].cli("acl", "setuser", "pod", "-acl|setuser")
        # Steps 1 and 2 of a rotation of `replication` at once: the new password first.
        s.secret["replication"] = "replication-password-2\nreplication-password-1\n"
        s.change_users()
        wait("pod 0 to apply the rotation", lambda: s.in_sync(s.pods[0]) and s.pods[0].cli(
            "config", "get", "masterauth").endswith("replication-password-2"))
        wait("pod 1 to report masterauth out of sync", lambda: s.pods[1].metric(
            "redis_cluster_bootstrap_masterauth_in_sync") == 0)
        wait("pod 2 to report replication out of sync", lambda: s.pods[2].metric(
            'redis_cluster_bootstrap_users_in_sync{user="replication"}') == 0)
        s.capture("rotation_refused")
        s.save()
    finally:
        s.stop()
    return s


def main():
    for tool in ("redis-server", "redis-cli", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"capture: {tool} is missing: run scripts/install-deps.sh")
    # The watcher as the code is now.
    subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(OUT, "fixtures"), exist_ok=True)
    names = set()
    for session in (renewal_session, expiry_session, users_session):
        names |= session().names
    with open(os.path.join(OUT, "watch_metrics.txt"), "w") as f:
        f.write("# Every metric name `redis-cluster-bootstrap watch` exported in the captured states\n"
                "# (scripts/capture-watch-fixtures.py). A rule or panel that names another fails\n"
                "# tests/monitoring_rules.rs, and so does a watcher that exports other names.\n")
        for name in sorted(names):
            f.write(name + "\n")


if __name__ == "__main__":
    main()
