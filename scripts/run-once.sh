#!/bin/sh
# Runs the bootstrap once, now, as a Job of its own: "run it now", a scale-out, a drain.
#
#   scripts/run-once.sh KUSTOMIZATION [BOOTSTRAP_VAR=value ...]
#   scripts/run-once.sh --print KUSTOMIZATION [BOOTSTRAP_VAR=value ...]
#
# KUSTOMIZATION is the directory you apply (`.`, overlays/production, ...). The script renders it
# (`kubectl kustomize`), takes its one-shot Job (manifests/job.yaml with the overlay's patches: the
# same image, ServiceAccount, password, TLS and placement settings as your install), gives it a
# generated name (generateName: <job>-run-, e.g. redis-cluster-bootstrap-run-x7k2p), sets the
# variables given, and creates it (`kubectl create`; a generated name cannot be applied). It prints
# the new Job as job.batch/NAME, for `kubectl logs` and `kubectl wait`. --print prints the Job's
# YAML instead of creating it.
#
# Why not `kubectl create job --from=cronjob/redis-cluster-heal`: that Job is owned by the CronJob
# (an UnexpectedJob Warning, it counts toward the CronJob's history limit and pushes out the logs of
# scheduled runs) and it inherits the scheduled run's budget (activeDeadlineSeconds 55, no retry,
# 15 s/30 s timeouts), so a drain longer than 55 s is killed. This Job has no owner and keeps the
# one-shot Job's budget: 10m to get Ready and hold the Lease, 2m to converge, 4 retries, 75 minutes
# in all (manifests/job.yaml), and it is deleted 7 days after it finishes.
#
# Needs kubectl (kustomize is built in) and the namespace's context; nothing else.
set -eu

usage() {
  echo "usage: scripts/run-once.sh [--print] KUSTOMIZATION [BOOTSTRAP_VAR=value ...]" >&2
  exit 2
}

print=false
if [ "${1:-}" = --print ]; then
  print=true
  shift
fi
[ $# -ge 1 ] || usage
dir=$1
shift
case "$dir" in
  -* | *=*) usage ;;
esac
if [ ! -d "$dir" ]; then
  echo "run-once: $dir is not a directory: expected the kustomization you apply, e.g. overlays/production" >&2
  exit 2
fi

# The variables, as the env entries of a strategic merge patch of the bootstrap container (merged
# by name: a variable the Job already sets gets the new value).
env=""
for pair in "$@"; do
  name=${pair%%=*}
  value=${pair#*=}
  case "$pair" in
    BOOTSTRAP_*=*) ;;
    *)
      echo "run-once: $pair is not valid: expected BOOTSTRAP_NAME=value (the binary reads only BOOTSTRAP_* variables)" >&2
      exit 2
      ;;
  esac
  case "$name" in
    *[!A-Z0-9_]*)
      echo "run-once: $name is not valid: expected a BOOTSTRAP_* variable name (capitals, digits, _)" >&2
      exit 2
      ;;
  esac
  # JSON string escapes for the value: backslash and double quote.
  value=$(printf '%s' "$value" | sed 's/\\/\\\\/g; s/"/\\"/g')
  env="$env${env:+,}{\"name\":\"$name\",\"value\":\"$value\"}"
done

# The one Job of the rendering: the document that has `kind: Job` at its top level.
rendered=$(kubectl kustomize "$dir")
job=$(printf '%s\n' "$rendered" | awk '
  /^---$/ { if (found) exit; doc = ""; next }
  { doc = doc $0 "\n" }
  /^kind: Job$/ { found = 1 }
  END { if (found) printf "%s", doc }')
jobs=$(printf '%s\n' "$rendered" | grep -c '^kind: Job$' || true)
if [ "$jobs" != 1 ]; then
  echo "run-once: $dir renders $jobs Jobs: expected exactly one, the bootstrap Job" >&2
  exit 2
fi
name=$(printf '%s\n' "$job" | awk '/^metadata:/ { m = 1; next } /^[^ ]/ { m = 0 } m && /^  name: / { print $2; exit }')

# No name, a generated one; the variables. A JSON merge of metadata and a strategic merge of the
# container's env, in one local patch (nothing is sent to the API server).
patch="{\"metadata\":{\"name\":null,\"generateName\":\"$name-run-\"}"
if [ -n "$env" ]; then
  patch="$patch,\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"bootstrap\",\"env\":[$env]}]}}}"
fi
patch="$patch}"
one_off=$(printf '%s\n' "$job" | kubectl patch --local -f - --type=strategic -p "$patch" -o yaml)

if $print; then
  printf '%s\n' "$one_off"
else
  printf '%s\n' "$one_off" | kubectl create -f - -o name
fi
