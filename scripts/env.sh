# Sourced by the scripts: the emulator endpoint and test credentials, unless already set.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
"$here/scripts/toolchain.sh"
export MOTO_PORT=${MOTO_PORT:-5000}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:$MOTO_PORT}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}

# Starts s3s-fs (a fast local S3) on port $1 serving directory $2, logging to $3, and waits
# for it; the caller's EXIT trap must stop "$s3s_pid".
start_s3s_fs() {
  "$here/.local/tools/bin/s3s-fs" --host 127.0.0.1 --port "$1" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$2" > "$3" 2>&1 &
  s3s_pid=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.2
  done
}

# Every binary and test target of the workspace, built once with one set of features: `make test`
# builds this first, so the rehearsal, console and SDK tests that call it find it all built.
build_binaries() {
  cargo build --workspace --tests --bins
}
