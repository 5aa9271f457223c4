#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmark need on a fresh Debian machine:
# redis-server and redis-cli (Debian's redis 7.0), python3 for the benchmark, and kubectl's
# kustomize for the manifest tests.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v python3 >/dev/null || missing+=(python3)   # bench/bench.py
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's package starts a system redis on 127.0.0.1:6379 where it can; the demo and tests
  # use their own addresses, so it is only stopped to keep the machine quiet.
  (command -v systemctl >/dev/null && $sudo systemctl stop redis-server) 2>/dev/null || true
fi
command -v redis-server >/dev/null
