#!/usr/bin/env bash
# Benchmarks for the analysis/regularizer targets (restrain fast path, low-rank patches).
# Writes its section of BENCHMARKS.md between the markers below (creating them if missing).
#   bench/regularizers.sh [--rows 4096 --cols 11008 --rank 50]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product wledger-bench >/dev/null
B=$(swift build -c release --show-bin-path)/wledger-bench
restrain=$("$B" restrain "$@")
lowrank=$("$B" lowrank-bytes)
python3 - "$restrain" "$lowrank" <<'PY'
import json, sys, datetime, subprocess, re
sys.path.insert(0, "bench")
from sections import put
r, l = json.loads(sys.argv[1]), json.loads(sys.argv[2])
cpu = subprocess.run(["bash", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
ok = lambda b: "PASS" if b else "FAIL"
sec = f"""<!-- regularizers:begin -->
## Regularizers: restrain fast path and low-rank patches

Command: `bench/regularizers.sh` (release build of `wledger-bench`, bench/swift/main.swift) on {cpu}, {datetime.date.today()}.

**restrain** on a {r['rows']}×{r['cols']} BF16-stored matrix (W_base ~ N(0, 0.02²), σmax(W_base) = {r['sigmaMaxBase']:.3f}) whose accumulated ΔW has rank {r['rank']} (singular values 30 … 0.5, geometric) plus BF16 rounding noise; both paths compute the PRUNE correction (α = e) in the same run.

| path | seconds | restrained σ | note |
|---|---|---|---|
| randomized range finder (2 subspace iterations, spectral residual check) | {r['fastSeconds']:.2f} | {r['restrained']} | residual ‖R‖₂ ≤ {r['residualSpectralBound']:.2e} (noise floor {r['noiseFloor']:.2e}) |
| LAPACK `dgesdd` full SVD | {r['fullSeconds']:.2f} | {r['restrainedFull']} | |

Speed-up **{r['speedup']:.1f}×** (target ≥ 10×: {ok(r['speedup'] >= 10)}). Max |difference| of the two corrections {r['maxAbsDifference']:.1e} (largest correction {r['maxAbsCorrection']:.3f}); after rounding to BF16, {r['bf16ElementsDiffering']} elements differ.

**Ledger bytes of one rank-one edit** of a {l['rows']}×{l['cols']} BF16 matrix, committed through the real ledger: encoding `{l['encoding']}`, {l['storedBytes']:,} bytes stored = {100*l['ratioToDense']:.1f}% of the dense {l['denseBytes']:,} bytes. The factors take {l['factorBytesRaw']:,} bytes raw (float32 A and B), within the target 4·(m+n)·2 = {l['factorBudget']:,} bytes ({ok(l['factorBytesRaw'] <= l['factorBudget'])}); the rest, at most {l['residualBytesAtMost']:,} bytes, is the exact residual for elements the rounded prediction misses. On a matrix this large only 2 box-projection rounds run (to keep commits fast), so the residual stays larger than on SmolLM2 (section 4 has the bytes per edit of the current encoder; this section was measured with the encoder of its date).
<!-- regularizers:end -->"""
put("regularizers", sec)
PY
