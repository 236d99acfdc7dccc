#!/usr/bin/env bash
# `make bench`: a copy job of 10,000 small objects through batchops next to `s5cmd run` doing
# the same copies, then one large object (BENCH_LARGE_MIB, default 1024) copied by a multipart
# job and by `s5cmd cp`, all against s3s-fs (a fast local S3) in the same run. SQS and DynamoDB are
# on moto. Prints figures; asserts nothing. BENCH_OBJECTS / BENCH_SIZE change the workload.
set -euo pipefail
source "$(dirname "$0")/env.sh"
s3_port=${S3S_PORT:-8014}
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
tools=$here/.local/tools

if [ "${1:-}" != "--inner" ]; then
  if [ ! -x "$tools/bin/s3s-fs" ]; then
    cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$tools"
  fi
  cargo build --release -p batchops-bench
  exec scripts/with-moto.sh "$0" --inner "$@"
fi
shift

# The local S3's files in memory when the machine has room (/dev/shm): on this machine's disk,
# write-back stalls swung the bare loop itself 3x between runs.
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((4 * 1024 * 1024)) ]; then
  data=$(mktemp -d -p /dev/shm)
else
  data=$(mktemp -d)
fi
start_s3s_fs "$s3_port" "$data" .local/s3s-fs.log
trap 'kill $s3s_pid 2>/dev/null; wait $s3s_pid 2>/dev/null || true; rm -rf "$data"' EXIT
RUST_LOG=${RUST_LOG:-warn} "${CARGO_TARGET_DIR:-target}/release/copy-bench" \
  --objects "${BENCH_OBJECTS:-10000}" --size "${BENCH_SIZE:-1024}" --large-mib "${BENCH_LARGE_MIB:-1024}" --s5cmd "$here/.venv/bin/s5cmd" "$@"
