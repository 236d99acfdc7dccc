#!/usr/bin/env bash
# `make bench-scale`: one copy job of BENCH_SCALE_TASKS (default 1,000,000) tasks through
# `batchops local` run as its own process, S3 on s3s-fs (a fast local S3), SQS and DynamoDB on
# moto. Prints time, memory of batchops local through the run, the report checked row by row,
# and the requests counted. Needs about 1 GB of disk per million objects (twice: the copies).
set -euo pipefail
source "$(dirname "$0")/env.sh"
s3_port=${S3S_PORT:-8015}
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
tools=$here/.local/tools
target=${CARGO_TARGET_DIR:-target}

if [ "${1:-}" != "--inner" ]; then
  if [ ! -x "$tools/bin/s3s-fs" ]; then
    cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$tools"
  fi
  cargo build --release -p batchops -p batchops-bench --bin batchops --bin scale-bench --features batchops/metering
  exec scripts/with-moto.sh "$0" --inner "$@"
fi
shift

data=$(mktemp -d "${BENCH_SCALE_DIR:-/tmp}/scale.XXXXXX")
mkdir -p .local
start_s3s_fs "$s3_port" "$data" .local/s3s-fs-scale.log
trap 'kill $s3s_pid 2>/dev/null; wait $s3s_pid 2>/dev/null || true; rm -rf "$data"' EXIT
RUST_LOG=${RUST_LOG:-warn} "$target/release/scale-bench" --tasks "${BENCH_SCALE_TASKS:-1000000}" \
  --data-dir "$data" --batchops "$target/release/batchops" "$@"
