#!/usr/bin/env bash
# Installs what wledger needs on a fresh Debian/Ubuntu machine with Swift 6 and Python 3:
# the system libraries (OpenBLAS + LAPACK, SQLite, zstd, OpenSSL's libcrypto, xxHash) and the
# real fixtures (SmolLM2-135M converted to HF safetensors, BIG-bench tasks, word analogies and the
# Lee corpus) in
# ${WLEDGER_CACHE:-~/.cache/wledger}. Safe to re-run; cached steps take a second.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas-dev liblapacke-dev libsqlite3-dev libzstd-dev libssl-dev libxxhash-dev zstd python3-venv)
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Headless Chromium, only to render `wledger report` pages in the report test; opt in with
# WLEDGER_INSTALL_CHROMIUM=1 (CI does). Without it that one check is skipped; a failed install
# only warns.
if [ "${WLEDGER_INSTALL_CHROMIUM:-}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  { $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; }; } \
    || echo "setup.sh: could not install chromium; the report screenshot test will be skipped (or fail under CI)" >&2
fi
scripts/fetch-fixtures.sh >/dev/null
