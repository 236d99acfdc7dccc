#!/usr/bin/env bash
# The console's browser tests (tests/console/): headless Chromium and its driver (Debian's
# `chromium` and `chromium-driver`, installed here when missing), `batchops local` on a moto
# of its own (127.0.0.1:${CONSOLE_MOTO_PORT:-5200}). Arguments go to pytest.
set -uo pipefail
source "$(dirname "$0")/env.sh"
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  echo "installing chromium and chromium-driver (apt-get)" >&2
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq > /dev/null && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium chromium-driver > /dev/null || {
    echo "cannot install chromium and chromium-driver" >&2; exit 1; }
fi
build_binaries || exit 1
mkdir -p .local/console
port=${CONSOLE_MOTO_PORT:-5200}
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MOTO_PORT=$port MOTO_LOG=.local/console/moto.log SE_OFFLINE=true
scripts/with-moto.sh .venv/bin/python -m pytest -p no:cacheprovider -q tests/console "$@"
