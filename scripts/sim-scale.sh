#!/usr/bin/env bash
# `make sim-scale`: one copy job of TASKS tasks (default 100,000,000) through the real pipeline
# against AWS as modelled from published figures (sim/src/scale/aws.rs cites each), in virtual
# time: the report checked by count and digest, each modelled resource's use every minute, the
# binding limit, the projection to a billion and 20 billion tasks, and the executor's Lambda
# compute. ARGS passes more (`--executors`, `--chunk-size`, `--task-concurrency`, `--prefixes`,
# `--sample-secs`, `--seed`; `--help` lists them). Built optimized: 10^8 tasks took 31-41 min and
# up to 16 GB of memory on this 2-core machine (2026-12-06).
set -euo pipefail
source "$(dirname "$0")/env.sh"
# shellcheck disable=SC2086
exec cargo run -q --release -p batchops-sim --bin sim-scale -- --tasks "${TASKS:-100000000}" ${ARGS:-}
