#!/usr/bin/env bash
# Runs a command with the example LambdaInvoke function (examples/lambda) served through the
# Lambda Invoke API by `cargo lambda watch` on 127.0.0.1:${LAMBDA_PORT:-9600}, and sets
# BATCHOPS_TEST_LAMBDA_ENDPOINT and AWS_ENDPOINT_URL_LAMBDA for the tests; stops it afterwards. Its log goes outside the
# project (cargo lambda watch reloads on changes under its folder).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${LAMBDA_PORT:-9600}
venv=${VENV:-$here/.venv}
log="${TMPDIR:-/tmp}/batchops-lambda-watch-$port.log"
export BATCHOPS_TEST_LAMBDA_ENDPOINT="http://127.0.0.1:$port"
# The job roles' Lambda clients read it (the SDK's own variable, over AWS_ENDPOINT_URL).
export AWS_ENDPOINT_URL_LAMBDA="$BATCHOPS_TEST_LAMBDA_ENDPOINT"
if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
  "$@"
  exit $?
fi
cd "$here/examples/lambda"
PATH="$venv/bin:$PATH" setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$port" > "$log" 2>&1 &
pid=$!
cd "$here"
trap 'kill -- -"$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "cargo lambda watch did not start; see $log" >&2; exit 1; }
  sleep 0.2
done
echo "cargo lambda watch serves examples/lambda on 127.0.0.1:$port (log: $log)" >&2
"$@"
