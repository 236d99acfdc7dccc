#!/usr/bin/env bash
# Hostile requests against a running `batchops local` (tests/hostile/): deep XML and JSON,
# bodies over the limit, forged tokens and ids, heads of 1 MB, slow and silent clients, a flood
# of connections; on a moto of its own (127.0.0.1:${HOSTILE_MOTO_PORT:-5400}). Arguments go to pytest.
set -uo pipefail
source "$(dirname "$0")/env.sh"
build_binaries || exit 1
mkdir -p .local/hostile
port=${HOSTILE_MOTO_PORT:-5400}
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MOTO_PORT=$port MOTO_LOG=.local/hostile/moto.log
scripts/with-moto.sh .venv/bin/python -m pytest -p no:cacheprovider -q -s tests/hostile "$@"
