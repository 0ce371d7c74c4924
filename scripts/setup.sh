#!/usr/bin/env bash
# Installs what wledger needs on a fresh Debian/Ubuntu machine with Swift 6 and Python 3:
# the system libraries (OpenBLAS + LAPACK, SQLite, zstd, OpenSSL's libcrypto, xxHash) and the
# real fixtures (SmolLM2-135M converted to HF safetensors, BIG-bench tasks) in
# ${WLEDGER_CACHE:-~/.cache/wledger}. Safe to re-run; cached steps take a second.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas-dev liblapacke-dev libsqlite3-dev libzstd-dev libssl-dev libxxhash-dev zstd python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/fetch-fixtures.sh >/dev/null
