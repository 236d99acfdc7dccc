#!/usr/bin/env bash
# `make rehearse`: the SAM stack deployed into its own moto server (127.0.0.1:${REHEARSAL_MOTO_PORT:-5100},
# AWS managed policies loaded, IAM enforcement switched on once the stack exists), the function
# binaries run under `cargo lambda watch --only-lambda-apis`, and tests/rehearsal/ run against it
# with pytest. Everything it starts it stops. Arguments go to pytest (e.g. -k copy).
set -uo pipefail
source "$(dirname "$0")/env.sh"
port=${REHEARSAL_MOTO_PORT:-5100}
mkdir -p .local
logs="$here/.local/rehearsal"
rm -rf "$logs" && mkdir -p "$logs"
cargo build --workspace --bins --exclude batchops-bench || exit 1
MOTO_IAM_LOAD_MANAGED_POLICIES=true .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$logs/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break
  kill -0 "$moto" 2>/dev/null || { echo "moto server did not start; see $logs/moto.log" >&2; exit 1; }
  sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" REHEARSAL_LOGS="$logs" SAM_CLI_TELEMETRY=0
unset AWS_ENDPOINT_URL_LAMBDA
.venv/bin/python -m pytest -p no:cacheprovider -q tests/rehearsal "$@"
