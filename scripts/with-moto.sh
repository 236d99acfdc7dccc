#!/usr/bin/env bash
# Runs a command with moto server on 127.0.0.1:${MOTO_PORT:-5000}: starts it unless something
# already answers there, and stops it afterwards if it was started here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${MOTO_PORT:-5000}
venv=${VENV:-$here/.venv}
log=${MOTO_LOG:-$here/.local/moto.log}
started=""
if ! curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
  mkdir -p "$here/.local"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  started=$!
  trap '[ -n "$started" ] && kill "$started" 2>/dev/null; wait "$started" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break
    kill -0 "$started" 2>/dev/null || { echo "moto server did not start; see $log" >&2; exit 1; }
    sleep 0.2
  done
  echo "moto server started on 127.0.0.1:$port" >&2
fi
"$@"
