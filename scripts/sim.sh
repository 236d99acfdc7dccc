#!/usr/bin/env bash
# `make sim`: the deterministic simulation (sim/). SEEDS seeds (default 300) from FROM (default
# 0), each a run of the real pipeline against the models of Lambda, SQS, DynamoDB and S3, checked;
# a failing seed is printed with its trace. `make sim SEED=n` replays one seed exactly, with the
# pipeline's log. RELEASE=1 builds optimized (for long runs: 10,000 seeds).
set -euo pipefail
source "$(dirname "$0")/env.sh"
profile=()
[ -n "${RELEASE:-}" ] && profile=(--release)
if [ -n "${SEED:-}" ]; then
  exec cargo run -q "${profile[@]}" -p batchops-sim -- --seed "$SEED" --trace
fi
exec cargo run -q "${profile[@]}" -p batchops-sim -- --seeds "${SEEDS:-300}" --from "${FROM:-0}"
