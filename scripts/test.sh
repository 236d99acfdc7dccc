#!/usr/bin/env bash
# `make test`: every test of the workspace against moto (started here unless one already runs),
# then cfn-lint on the SAM template; ends with one summary line of all cargo test results.
set -uo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p .local
cargo build --workspace --tests --exclude batchops-bench && cargo build -p batchops-example-lambda || exit 1
scripts/with-moto.sh scripts/with-lambda.sh cargo test --workspace --exclude batchops-bench 2>&1 | tee .local/test.log
status=${PIPESTATUS[0]}
.venv/bin/cfn-lint infra/template.yaml
lint=$?
[ $lint -eq 0 ] && echo "cfn-lint: infra/template.yaml is clean"
passed=$(grep -oE 'test result: [A-Za-z]+\. [0-9]+ passed' .local/test.log | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' .local/test.log | awk '{s += $6} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ $lint -eq 0 ]
