#!/usr/bin/env bash
# Operating batchops (tests/operate/): a job through `batchops local` moves its Prometheus
# `/metrics` by exactly its task counts (read with prometheus_client's parser), every metric
# name is one of the documented ones, and `batchops status` sees a dead-lettered chunk (exit 1)
# and a healthy system (exit 0); plus the EMF JSON Schema checked on AWS's own examples. On a
# moto of its own (127.0.0.1:${OPERATE_MOTO_PORT:-5500}); `batchops local` is started by the
# suite with the sweep held off (BATCHOPS_SWEEP_SECS=3600), so a dead letter put by a test stays.
# Arguments go to pytest.
set -uo pipefail
source "$(dirname "$0")/env.sh"
build_binaries || exit 1
mkdir -p .local/operate
port=${OPERATE_MOTO_PORT:-5500}
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MOTO_PORT=$port MOTO_LOG=.local/operate/moto.log
unset BATCHOPS_STACK BATCHOPS_API_URL
scripts/with-moto.sh .venv/bin/python -m pytest -p no:cacheprovider -q tests/operate "$@"
