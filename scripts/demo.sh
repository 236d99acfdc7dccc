#!/usr/bin/env bash
# `make demo`: a real copy job end to end on this machine. Starts moto (unless something
# already serves on its port) and `batchops local`, creates 2,000+ objects and a manifest,
# submits the job through the HTTP API, watches it, shows the report, and stops what it started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
api=${BATCHOPS_API_URL:-http://127.0.0.1:8080}
export BATCHOPS_API_URL=$api

if [ "${1:-}" != "--inner" ]; then
  cargo build --bin batchops
  exec scripts/with-moto.sh "$0" --inner
fi

bin=${CARGO_TARGET_DIR:-target}/debug/batchops
mkdir -p .local
if curl -fs -o /dev/null "$api/v20180820/jobs" 2>/dev/null; then
  echo "something already serves $api; stop it or set BATCHOPS_API_URL" >&2
  exit 1
fi
# Progress is counted per chunk; chunks of 250 tasks (the default is 1,000) let the bar move
# several times on a 2,000-object job.
BATCHOPS_CHUNK_SIZE=${BATCHOPS_CHUNK_SIZE:-250} RUST_LOG=${RUST_LOG:-warn} "$bin" local --listen "${api#http://}" > .local/batchops-local.log 2>&1 &
local_pid=$!
trap 'kill $local_pid 2>/dev/null; wait $local_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$api/v20180820/jobs" 2>/dev/null && break
  kill -0 $local_pid 2>/dev/null || { cat .local/batchops-local.log >&2; exit 1; }
  sleep 0.2
done
echo "== batchops local is serving $api (log: .local/batchops-local.log)"

echo "== creating the demo data"
.venv/bin/python scripts/demo_data.py .local/demo-spec.json 2000

echo "== batchops create-job --spec .local/demo-spec.json"
job_id=$("$bin" create-job --spec .local/demo-spec.json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["JobId"])')
echo "job $job_id"

echo "== batchops watch $job_id"
"$bin" watch "$job_id"

echo "== batchops describe-job --job-id $job_id"
"$bin" describe-job --job-id "$job_id"

echo "== the completion report"
.venv/bin/python scripts/demo_report.py "$job_id"
