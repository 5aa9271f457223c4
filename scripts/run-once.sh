#!/bin/sh
# Runs a job of the binary once, now, as a Job of its own: the bootstrap ("run it now", a
# scale-out, a drain), a backup now, or a restore.
#
#   scripts/run-once.sh [--print] KUSTOMIZATION [backup|restore] [BOOTSTRAP_VAR=value ...]
#
# KUSTOMIZATION is the directory you apply (`.`, overlays/production, overlays/backup, ...). The
# script renders it (`kubectl kustomize`) and takes the Job to run from it, with the overlay's
# patches (the same image, ServiceAccount, users, TLS and settings as your install):
# - no word: the bootstrap, the rendering's one-shot Job (manifests/job.yaml);
# - backup: the Job template of the nightly backup CronJob (components/backup/cron_job.yaml);
# - restore: the Job template of the restore CronJob, which is suspended and never scheduled: it
#   exists to be run this way (components/backup/restore_cron_job.yaml).
# It gives the Job a generated name (generateName: <name>-run-, e.g.
# redis-cluster-restore-run-x7k2p), sets the variables given in its container, and creates it
# (`kubectl create`; a generated name cannot be applied). It prints the new Job as job.batch/NAME,
# for `kubectl logs` and `kubectl wait`. --print prints the Job's YAML instead of creating it.
#
# Why not `kubectl create job --from=cronjob/...`: that Job is owned by the CronJob (an
# UnexpectedJob Warning, it counts toward the CronJob's history limit and pushes out the logs of
# scheduled runs), and from redis-cluster-heal it inherits the scheduled run's budget
# (activeDeadlineSeconds 55, no retry, 15 s/30 s timeouts), so a drain longer than 55 s is killed.
# This Job has no owner and keeps its template's budget: the one-shot Job's 75 minutes and 4
# retries for the bootstrap, the backup's 3 hours, the restore's 12 hours; it is deleted 7 days
# after it finishes.
#
# Needs kubectl (kustomize is built in) and the namespace's context; nothing else.
set -eu

usage() {
  echo "usage: scripts/run-once.sh [--print] KUSTOMIZATION [backup|restore] [BOOTSTRAP_VAR=value ...]" >&2
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
# What to run; its container has the same name.
what=bootstrap
case "${1:-}" in
  backup | restore)
    what=$1
    shift
    ;;
  *=* | BOOTSTRAP_* | "") ;;
  *)
    echo "run-once: $1 is not valid: expected backup, restore, or nothing for the bootstrap" >&2
    exit 2
    ;;
esac

# The variables, as the env entries of a strategic merge patch of the container (merged by name:
# a variable the Job already sets gets the new value).
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

# The documents of the rendering that are of kind $1 and, if $2 is given, whose own
# app.kubernetes.io/component label is $2; separated by `---`. kustomize prints each object's
# top-level fields unindented and its metadata's labels four spaces in.
rendered=$(kubectl kustomize "$dir")
select() {
  printf '%s\n' "$rendered" | awk -v kind="$1" -v component="${2:-}" '
    function flush() {
      if (doc != "" && k == kind && (component == "" || c == component)) {
        printf "%s%s", (n++ ? "---\n" : ""), doc
      }
      doc = ""; k = ""; c = ""; m = 0; l = 0
    }
    /^---$/ { flush(); next }
    { doc = doc $0 "\n" }
    /^kind: / { k = $2 }
    /^metadata:$/ { m = 1; next }
    /^[^ ]/ { m = 0 }
    m && /^  [^ ]/ { l = ($0 == "  labels:") }
    m && l && /^    app\.kubernetes\.io\/component: / { c = $2 }
    END { flush() }'
}
count() {
  printf '%s' "$1" | grep -c '^kind: ' || true
}

# The object's field at a JSONPath, as JSON for a map (kubectl prints it so) and bare for a string.
field() {
  printf '%s\n' "$1" | kubectl patch --local -f - --type=merge -p '{}' -o jsonpath="$2"
}

if [ "$what" = bootstrap ]; then
  job=$(select Job)
  jobs=$(count "$job")
  if [ "$jobs" != 1 ]; then
    echo "run-once: $dir renders $jobs Jobs: expected exactly one, the bootstrap Job" >&2
    exit 2
  fi
  name=$(field "$job" '{.metadata.name}')
else
  cron=$(select CronJob "$what")
  crons=$(count "$cron")
  if [ "$crons" != 1 ]; then
    echo "run-once: $dir renders $crons $what CronJobs: expected exactly one; add components/backup to it (overlays/backup has it)" >&2
    exit 2
  fi
  # The CronJob's Job template as a Job of its own: its metadata, its namespace, its spec.
  name=$(field "$cron" '{.metadata.name}')
  namespace=$(field "$cron" '{.metadata.namespace}')
  meta=$(field "$cron" '{.spec.jobTemplate.metadata}')
  spec=$(field "$cron" '{.spec.jobTemplate.spec}')
  [ -n "$meta" ] || meta='{}'
  job="{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":$meta,\"spec\":$spec}"
  if [ -n "$namespace" ]; then
    job=$(printf '%s\n' "$job" | kubectl patch --local -f - --type=merge \
      -p "{\"metadata\":{\"namespace\":\"$namespace\"}}" -o json)
  fi
fi

# No name, a generated one; the variables. A JSON merge of metadata and a strategic merge of the
# container's env, in one local patch (nothing is sent to the API server).
patch="{\"metadata\":{\"name\":null,\"generateName\":\"$name-run-\"}"
if [ -n "$env" ]; then
  patch="$patch,\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"$what\",\"env\":[$env]}]}}}"
fi
patch="$patch}"
one_off=$(printf '%s\n' "$job" | kubectl patch --local -f - --type=strategic -p "$patch" -o yaml)

if $print; then
  printf '%s\n' "$one_off"
else
  printf '%s\n' "$one_off" | kubectl create -f - -o name
fi
