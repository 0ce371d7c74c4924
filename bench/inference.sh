#!/usr/bin/env bash
# Inference-engine benchmark (BENCHMARKS.md, "Inference engine"): prompt-processing throughput of
# wledger's Engine vs llama.cpp and the numpy reference on SmolLM2-135M F32, full default-suite
# `wledger health` wall time, and peak RSS of `health` on the BF16 model.
#
# Needs (outside the clone): a release build (`swift build -c release --product wledger-bench`
# and `--product wledger`), llama.cpp's libllama + llama-simple built from the llama-cpp-python
# sdist, bench/llamacpp/pp_bench.cpp compiled against it, and the F32 GGUF (all made by
# bench/llamacpp/build.sh, outside the clone).
# Usage: bench/inference.sh [prompt|numpy|health|rss|all]   (from the repository root)
# Raw results: one JSON/text record per measurement appended to $OUT (default bench-inference.log).
set -euo pipefail
WHAT=${1:-all}
MODELS=${MODELS:-$HOME/.cache/wledger/models/smollm2-135m}
LLAMA=${LLAMA:-$HOME/.cache/wledger/llama.cpp}
LLAMA_BIN=${LLAMA_BIN:-$LLAMA/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}
GGUF=${GGUF:-$LLAMA/smollm2-135m-f32.gguf}
PY=${PY:-$HOME/.cache/wledger/venv/bin/python}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-bench-inference.log}
BIN=.build/release
log() { echo "$*" | tee -a "$OUT"; }
load() { log "# load: $(uptime)"; }

paris() {
  # Same weights check: llama.cpp's greedy continuation of "The capital of France is".
  log "\$ llama-simple -m $GGUF -n 1 'The capital of France is'"
  log "$("$LLAMA_BIN/llama-simple" -m "$GGUF" -n 1 "The capital of France is" 2>/dev/null)"
}

prompt() {
  [ ! -x "$LLAMA_BIN/llama-simple" ] || paris
  # Engine and llama.cpp alternate per configuration so both see the same load.
  for round in $(seq "$ROUNDS"); do
    for t in 1 2; do
      for n in 128 512; do
        load
        r=$([ "$n" = 128 ] && echo 3 || echo 1)
        log "\$ $BIN/wledger-bench prompt --model $MODELS/f32 --tokens $n --threads $t --repeat $r"
        log "$($BIN/wledger-bench prompt --model "$MODELS/f32" --tokens "$n" --threads "$t" --repeat "$r")"
        # The kernels OpenBLAS picks by itself (on this CPU Debian's 0.3.21 falls back to its SSE3
        # "Prescott" ones; wledger opens it with AVX-512 ones unless told not to): what the
        # kernel choice is worth. Each record's "blas" field names the kernels that ran.
        log "\$ WLEDGER_BLAS_KERNEL=openblas $BIN/wledger-bench prompt --model $MODELS/f32 --tokens $n --threads $t --repeat $r"
        log "$(WLEDGER_BLAS_KERNEL=openblas $BIN/wledger-bench prompt --model "$MODELS/f32" --tokens "$n" --threads "$t" --repeat "$r")"
        log "\$ pp_bench $GGUF $n $t 3   (llama.cpp)"
        log "$("$LLAMA/pp_bench" "$GGUF" "$n" "$t" 3)"
      done
      log "\$ $BIN/wledger-bench prompt --model $MODELS/f32 --tokens 128 --threads $t --repeat 2 --all-logits"
      log "$($BIN/wledger-bench prompt --model "$MODELS/f32" --tokens 128 --threads "$t" --repeat 2 --all-logits)"
    done
  done
}

numpy() {
  # OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for these commands only (see the env notes); the
  # kernel numpy's OpenBLAS then picks is in each record's "blas" field.
  load
  for dt in float32 float64; do
    for t in 1 2; do
      for n in 128; do
        log "\$ env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/numpy_prompt.py $MODELS/f32 --tokens $n --threads $t --repeat 1 --dtype $dt --matmul"
        log "$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/numpy_prompt.py "$MODELS/f32" --tokens "$n" --threads "$t" --repeat 1 --dtype "$dt" --matmul)"
      done
    done
  done
  log "\$ env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/numpy_prompt.py $MODELS/f32 --tokens 128 --threads 1 --repeat 0 --dtype float64"
  log "$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/numpy_prompt.py "$MODELS/f32" --tokens 128 --threads 1 --repeat 0 --dtype float64)"
  load
}

repo() {  # repo DTYPE -> a fresh wledger repository holding a copy of that model
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/wledger-bench-$1.XXXXXX")
  cp "$MODELS/$1"/* "$dir"/
  (cd "$dir" && "$OLDPWD/$BIN/wledger" init -q >/dev/null)
  echo "$dir"
}

health() {
  local dir; dir=$(repo f32)
  for round in $(seq "${HEALTH_ROUNDS:-2}"); do
    for t in 1 2; do
      load
      log "\$ /usr/bin/time -v wledger health --threads $t --refresh --quiet   (SmolLM2 F32, default suite)"
      (cd "$dir" && /usr/bin/time -v "$OLDPWD/$BIN/wledger" health --threads "$t" --refresh --quiet) >>"$OUT" 2>&1
    done
  done
  rm -rf "$dir"
}

rss() {
  local dir; dir=$(repo bf16)
  load
  log "# $(ls -l "$dir/model.safetensors")"
  # Two of the default suite's tasks (2-shot addition has the longest prompts) keep the run short;
  # the model is mapped once whatever the suite.
  (cd "$dir" && "$OLDPWD/$BIN/wledger" config set suite.rss.tasks "addition capitals" >/dev/null)
  log "\$ /usr/bin/time -v wledger health --suite rss --threads 2 --refresh --quiet   (SmolLM2 BF16, suite.rss.tasks = addition capitals)"
  (cd "$dir" && /usr/bin/time -v "$OLDPWD/$BIN/wledger" health --suite rss --threads 2 --refresh --quiet) >>"$OUT" 2>&1
  rm -rf "$dir"
}

case $WHAT in
  prompt) prompt ;; paris) paris ;; numpy) numpy ;; health) health ;; rss) rss ;;
  all) prompt; numpy; health; rss ;;
  *) echo "usage: bench/inference.sh [prompt|numpy|health|rss|all]" >&2; exit 2 ;;
esac
