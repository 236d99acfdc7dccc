#!/usr/bin/env bash
# `make test`: cargo fmt --check, clippy -D warnings and the MSRV check, every test of the
# workspace against moto (started here unless one already runs), the deterministic simulation
# (scripts/sim.sh), cfn-lint and `sam validate --lint` on the SAM template, the book's links and
# mdbook build (make docs), then the rehearsal of the deployed stack (scripts/rehearse.sh), the
# console in headless Chromium (scripts/console-test.sh), boto3 and the AWS CLI speaking S3
# Control's protocol (scripts/sdk-test.sh), hostile requests against batchops local
# (scripts/hostile-test.sh), batchops local's /metrics and `batchops status` (scripts/operate-test.sh),
# the CDK constructs and a synth of their example app (scripts/cdk-test.sh), the tests of this
# summary's counting and of clients/boto3 (batchops_boto3); ends with
# one line of all results (scripts/summary.sh: a suite or check that failed is never counted as
# 0 failed) and fails if anything did.
set -uo pipefail
source "$(dirname "$0")/env.sh"
source "$here/scripts/summary.sh"
mkdir -p .local
export SAM_CLI_TELEMETRY=0
cargo fmt --all --check && echo "cargo fmt --check: formatted"
add "cargo fmt --check" "$(count_check $?)"
cargo clippy --workspace --all-targets -- -D warnings && echo "cargo clippy -D warnings: clean"
add "cargo clippy" "$(count_check $?)"
# The functions and batchops as deployed: without the benchmarks' `metering` feature, which the
# whole workspace's build unifies in (so its `cfg(not(feature = "metering"))` code is checked).
cargo clippy -p job-intake -p manifest-chunker -p task-executor -p report-finalizer -p batchops -- -D warnings &&
  echo "cargo clippy (deployed features): clean"
add "cargo clippy (deployed features)" "$(count_check $?)"
python3 scripts/check-msrv.py
add "rust-version" "$(count_check $?)"
# One build of every test and binary: the rehearsal, console and SDK tests use these binaries
# (build_binaries in env.sh), so nothing is built twice with other features.
if ! build_binaries; then
  add "cargo build" "$(count_check 1)"
  summary
  exit 1
fi
# --no-fail-fast: every test binary runs and is counted, not only those before the first failure.
scripts/with-moto.sh scripts/with-lambda.sh cargo test --workspace --no-fail-fast 2>&1 | tee .local/test.log
add "cargo test" "$(count_cargo .local/test.log "${PIPESTATUS[0]}")"
# The deterministic simulation: 300 seeds of the pipeline against Lambda, SQS, DynamoDB and S3
# at their limits, with faults; a failing seed prints its trace and how to replay it.
scripts/sim.sh 2>&1 | tee .local/sim.log
add "make sim" "$(count_check "${PIPESTATUS[0]}")"
.venv/bin/cfn-lint infra/template.yaml examples/cloudformation/*.yaml && (cd infra && ../.venv/bin/sam validate --lint) &&
  echo "cfn-lint and sam validate --lint: infra/template.yaml and examples/cloudformation are clean"
add "cfn-lint, sam validate" "$(count_check $?)"
# The shape of the code: no circle of imports between the files of any crate (a file that
# names another through `use` or a path), and the functions over 80 lines listed.
python3 scripts/structure.py selftest && python3 scripts/structure.py check
add "no import circles, no function over 80 lines (structure.py)" "$(count_check $?)"
# The book (make docs): every relative link and #anchor of README.md and docs/src resolves and
# every chapter is in SUMMARY.md, then mdbook builds it (into .local/book).
python3 scripts/check-docs.py && .venv/bin/mdbook build docs &&
  echo "docs: links resolve, mdbook build docs is clean"
add "docs (links, mdbook build)" "$(count_check $?)"
for suite in rehearse console-test sdk-test hostile-test operate-test; do
  scripts/$suite.sh 2>&1 | tee .local/$suite.log
  add "$suite" "$(count_pytest .local/$suite.log "${PIPESTATUS[0]}")"
done
# The CDK constructs (infra/cdk): their tests, and `cdk synth` of the example app, offline.
scripts/cdk-test.sh 2>&1 | tee .local/cdk-test.log
add "cdk" "$(count_node .local/cdk-test.log "${PIPESTATUS[0]}")"
.venv/bin/python -m pytest -p no:cacheprovider -q tests/scripts 2>&1 | tee .local/scripts-test.log
add "tests/scripts" "$(count_pytest .local/scripts-test.log "${PIPESTATUS[0]}")"
# batchops_boto3 (clients/boto3): the requests boto3 and the AWS CLI plugin would send to a
# deployed stack's API, captured without a server (the rehearsal sends them to the stack).
.venv/bin/python -m pytest -p no:cacheprovider -q clients/boto3/tests 2>&1 | tee .local/boto3-test.log
add "clients/boto3" "$(count_pytest .local/boto3-test.log "${PIPESTATUS[0]}")"
echo "make test: $((SECONDS / 60)) min $((SECONDS % 60)) s, build products in ${CARGO_TARGET_DIR:-target}"
summary
