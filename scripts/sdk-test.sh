#!/usr/bin/env bash
# S3 Batch Operations code as people have it, unchanged, against `batchops local` speaking S3
# Control's REST-XML (tests/sdk/): boto3's s3control client and the AWS CLI (awscli, from the
# virtualenv), on a moto of its own (127.0.0.1:${SDK_MOTO_PORT:-5300}). Arguments go to pytest.
set -uo pipefail
source "$(dirname "$0")/env.sh"
build_binaries || exit 1
mkdir -p .local/sdk
port=${SDK_MOTO_PORT:-5300}
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MOTO_PORT=$port MOTO_LOG=.local/sdk/moto.log
export PATH="$PWD/.venv/bin:$PATH"
scripts/with-moto.sh .venv/bin/python -m pytest -p no:cacheprovider -q tests/sdk "$@"
