#!/usr/bin/env bash
# `make test`: cargo fmt --check and clippy -D warnings, every test of the workspace against moto (started here unless one already runs),
# cfn-lint and `sam validate --lint` on the SAM template, then the rehearsal of the deployed
# stack (scripts/rehearse.sh), the console in headless Chromium (scripts/console-test.sh),
# boto3 and the AWS CLI speaking S3 Control's protocol (scripts/sdk-test.sh); ends with one
# summary line of all cargo and pytest results.
set -uo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p .local
export SAM_CLI_TELEMETRY=0
cargo fmt --all --check
fmt=$?
[ $fmt -eq 0 ] && echo "cargo fmt --check: formatted"
cargo clippy --workspace --all-targets -- -D warnings
clippy=$?
[ $clippy -eq 0 ] && echo "cargo clippy -D warnings: clean"
cargo build --workspace --tests --bins || exit 1
scripts/with-moto.sh scripts/with-lambda.sh cargo test --workspace 2>&1 | tee .local/test.log
status=${PIPESTATUS[0]}
.venv/bin/cfn-lint infra/template.yaml && (cd infra && ../.venv/bin/sam validate --lint)
lint=$?
[ $lint -eq 0 ] && echo "cfn-lint and sam validate --lint: infra/template.yaml is clean"
scripts/rehearse.sh 2>&1 | tee .local/rehearse.log
rehearsal=${PIPESTATUS[0]}
scripts/console-test.sh 2>&1 | tee .local/console-test.log
console=${PIPESTATUS[0]}
scripts/sdk-test.sh 2>&1 | tee .local/sdk-test.log
sdk=${PIPESTATUS[0]}
passed=$(grep -oE 'test result: [A-Za-z]+\. [0-9]+ passed' .local/test.log | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' .local/test.log | awk '{s += $6} END {print s + 0}')
# pytest's last line: "N passed[, M failed][, K errors] in Xs"
pytest_counts() {
  local last
  last=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$1" | tail -n 1)
  passed=$((passed + $(echo "$last" | grep -oE '[0-9]+ passed' | awk '{print $1 + 0}')))
  failed=$((failed + $(echo "$last" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')))
  [ "$2" -ne 0 ] && [ -z "$last" ] && failed=$((failed + 1))
}
pytest_counts .local/rehearse.log "$rehearsal"
pytest_counts .local/console-test.log "$console"
pytest_counts .local/sdk-test.log "$sdk"
echo "tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ $lint -eq 0 ] && [ "$rehearsal" -eq 0 ] && [ "$console" -eq 0 ] && [ "$sdk" -eq 0 ] && [ $fmt -eq 0 ] && [ $clippy -eq 0 ]
