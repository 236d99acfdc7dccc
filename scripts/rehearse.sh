#!/usr/bin/env bash
# `make rehearse`: the SAM stack deployed into a moto server of its own
# (127.0.0.1:${REHEARSAL_MOTO_PORT:-5100}, AWS managed policies loaded, IAM enforcement switched
# on once the stack exists), the function binaries run under `cargo lambda watch
# --only-lambda-apis`, and tests/rehearsal/ run against it with pytest. Everything it starts it
# stops. Arguments go to pytest (e.g. -k copy).
set -uo pipefail
source "$(dirname "$0")/env.sh"
port=${REHEARSAL_MOTO_PORT:-5100}
logs="$here/.local/rehearsal"
rm -rf "$logs" && mkdir -p "$logs"
build_binaries || exit 1
# IAM enforcement stays on in a moto once switched on: the rehearsal needs a fresh one.
if curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
  echo "something already serves 127.0.0.1:$port; stop it or set REHEARSAL_MOTO_PORT" >&2
  exit 1
fi
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" REHEARSAL_LOGS="$logs" SAM_CLI_TELEMETRY=0
export MOTO_PORT=$port MOTO_LOG="$logs/moto.log" MOTO_IAM_LOAD_MANAGED_POLICIES=true
unset AWS_ENDPOINT_URL_LAMBDA
scripts/with-moto.sh .venv/bin/python -m pytest -p no:cacheprovider -q tests/rehearsal "$@"
