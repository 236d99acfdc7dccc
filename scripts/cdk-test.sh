#!/usr/bin/env bash
# The CDK constructs (infra/cdk, `make cdk-test`): npm ci from the lock, the TypeScript build,
# the constructs' tests (node --test, TAP), then `cdk synth` of the example app
# (infra/cdk/example) into .local/cdk.out and the checks of what it wrote (infra/cdk/check).
# Offline and without an AWS account: no lookups, no notices, no version check, no telemetry,
# and no credentials (a synth with credentials would ask STS for the account). The functions'
# code is a folder of placeholder `bootstrap` files made here: synthesis stages them as assets
# and never runs them. Ends with the status of the first step that failed, after running the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cdk=infra/cdk
out=.local/cdk.out
mkdir -p .local
status=0

(cd "$cdk" && npm ci --no-audit --no-fund --loglevel=error) || { echo "cdk-test: npm ci failed"; exit 1; }
(cd "$cdk" && npm run --silent build) || { echo "cdk-test: the TypeScript build failed"; exit 1; }

node --test --test-reporter=tap "$cdk"/dist/test/*.test.js || status=1

code=$(mktemp -d)
trap 'rm -rf "$code"' EXIT
for binary in $(grep -oE 'Binary: *[A-Za-z0-9_-]+' infra/template.yaml | awk '{print $2}'); do
  mkdir -p "$code/$binary"
  printf '#!/bin/sh\n# placeholder for %s (cdk-test.sh): synthesis needs a file, not the binary\n' "$binary" > "$code/$binary/bootstrap"
done
rm -rf "$out"
(
  cd "$cdk/example" &&
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_ENDPOINT_URL \
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
      CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true \
      ../node_modules/.bin/cdk synth --quiet --no-notices --no-version-reporting \
      --context codeDirectory="$code" --output "$root/$out"
) || { echo "cdk-test: cdk synth of the example app failed"; exit 1; }
echo "cdk-test: cdk synth wrote $out"

BATCHOPS_CDK_OUT="$root/$out" node --test --test-reporter=tap "$cdk"/dist/check/*.test.js || status=1
exit $status
