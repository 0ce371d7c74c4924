#!/usr/bin/env bash
# Builds llama.cpp's libllama and llama-simple (CPU only) from the llama.cpp source vendored in
# the llama-cpp-python sdist, and writes the F32 GGUF of SmolLM2-135M from wledger's safetensors.
# Everything goes to $LLAMA (default ~/.cache/wledger/llama.cpp), outside the clone.
# Needs: cmake, a C++ compiler, ~/.cache/wledger/venv with numpy + gguf, the SmolLM2 fixtures.
set -euo pipefail
LLAMA=${LLAMA:-$HOME/.cache/wledger/llama.cpp}
PY=${PY:-$HOME/.cache/wledger/venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$LLAMA" && cd "$LLAMA"
if ! ls llama_cpp_python-*.tar.gz >/dev/null 2>&1; then
  "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation llama-cpp-python -d . ||
    ls llama_cpp_python-*.tar.gz   # the sdist is kept even when preparing its metadata fails
fi
SDIST=$(ls llama_cpp_python-*.tar.gz | sort -V | tail -1)
SRC=${SDIST%.tar.gz}
[ -d "$SRC" ] || tar xzf "$SDIST"
cd "$SRC/vendor/llama.cpp"
cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF \
  -DGGML_VULKAN=OFF -DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
# llama-bench needs llama.cpp's large `common` library (> 20 min on the shared 2-core machine);
# bench/llamacpp/pp_bench.cpp times the same llama_decode against libllama alone.
cmake --build build -j"$(nproc)" --target llama-simple
cd "$LLAMA"
g++ -O2 -std=c++17 "$HERE/pp_bench.cpp" -I"$SRC/vendor/llama.cpp/include" -I"$SRC/vendor/llama.cpp/ggml/include" \
  -L"$SRC/vendor/llama.cpp/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$LLAMA/$SRC/vendor/llama.cpp/build/bin" -o pp_bench
[ -f smollm2-135m-f32.gguf ] || "$PY" "$HERE/make_gguf_f32.py" --hf "$HOME/.cache/wledger/models/smollm2-135m/f32" \
  --meta-gguf "$HOME/.cache/wledger/gguf/SmolLM2-135M-Instruct.Q4_1.gguf" --out smollm2-135m-f32.gguf
echo "built $LLAMA/pp_bench and $LLAMA/$SRC/vendor/llama.cpp/build/bin/llama-simple"
