#!/usr/bin/env python3
"""Prompt-processing time of the numpy reference forward pass (scripts/reference_logprobs.py).

Times `logits_all` — the reference as the tests run it: every weight in float64 (or, with
--dtype float32, cast to float32 once before timing), logits for every position — on the same
fixed pseudo-random ids as `wledger-bench prompt`. Best of --repeat runs after one warm-up (--repeat 0: one run, no warm-up).
Prints one JSON object, including the BLAS library and kernel numpy uses (threadpoolctl).

With --matmul, the reference's `linear` (np.einsum("tc,oc->to"), which numpy runs in its own
loops, not BLAS) is replaced by `x @ W.T` (OpenBLAS gemm) in the weights' dtype: numpy's best case, same math. Without it,
float32 weights are upcast to float64 inside every einsum (RoPE's complex128 promotes q/k).

Usage: numpy_prompt.py MODEL_DIR [--tokens 128] [--threads 1] [--repeat 3] [--dtype float64] [--matmul]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_logprobs as ref  # noqa: E402


def ids_like_swift(n: int, vocab: int) -> list[int]:
    """The same sequence as bench/swift/main.swift's promptBench (a 64-bit LCG)."""
    state, out, mask = 0x9E3779B97F4A7C15, [], (1 << 64) - 1
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        out.append(100 + (state >> 33) % (vocab - 200))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--matmul", action="store_true")
    a = ap.parse_args()
    if a.matmul:
        def linear(x, W, name):
            w = W[name + ".weight"]
            # Activations that RoPE's complex128 or a float64 scalar promoted go back to the
            # weights' dtype, so the weights are never upcast per call.
            y = x.astype(w.dtype, copy=False) @ w.T
            return y + W[name + ".bias"] if name + ".bias" in W else y
        ref.linear = linear
    with open(os.path.join(a.model_dir, "config.json")) as fh:
        cfg = ref.Config(json.load(fh))
    W = ref.read_weights(a.model_dir)
    if a.dtype == "float32":
        W = {k: v.astype(np.float32) for k, v in W.items()}
    ids = ids_like_swift(a.tokens, cfg.vocab)
    times, cpu = [], []
    with threadpool_limits(limits=a.threads):
        blas = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for p in threadpool_info() if p.get("user_api") == "blas"]
        # --repeat 0: a single timed run, no warm-up (for the slow einsum reference).
        for r in range(a.repeat + 1 if a.repeat else 1):
            t, c = time.perf_counter(), time.process_time()
            z = ref.logits_all(cfg, W, ids)
            if r or not a.repeat:
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
    best = min(times)
    print(json.dumps({"benchmark": "numpy-prompt", "dtype": a.dtype, "linear": "matmul" if a.matmul else "einsum", "tokens": a.tokens, "threads": a.threads,
                      "repeats": a.repeat, "bestSeconds": best, "tokensPerSecond": a.tokens / best, "bestCPUSeconds": min(cpu),
                      "numpy": np.__version__, "blas": blas, "checksum": float(z[-1, 0]),
                      "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                      "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}, sort_keys=True))


if __name__ == "__main__":
    main()
