#!/usr/bin/env bash
# Re-measures target 1 on SmolLM2 F32: `wledger commit` of one rank-one edit (bench/edit.py, a
# random layer's down_proj, page cache warm) vs `cat` of the model files, same run, medians of 10.
# Replaces its section of BENCHMARKS.md between markers.
#   bench/commit-recheck.sh   (about 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
WORK=${WLEDGER_BENCH_DIR:-/tmp/wledger-commit-recheck}
PY=$CACHE/venv/bin/python
swift build -c release --product wledger >/dev/null
W=$(swift build -c release --show-bin-path)/wledger
rm -rf "$WORK" && mkdir -p "$WORK" && cp -r "$CACHE/models/smollm2-135m/f32" "$WORK/m"
"$W" init -q -C "$WORK/m" >/dev/null
EDIT="$PY bench/edit.py apply $WORK/m --tensor random-down-proj --layers 30"
cat "$WORK"/m/* >/dev/null
hyperfine -N --style none -w 2 -r 10 --export-json "$WORK/cat.json" "bash -c 'cat $WORK/m/* > /dev/null'" >/dev/null
hyperfine --style none -w 2 -r 10 --export-json "$WORK/commit.json" \
  --prepare "$EDIT && cat $WORK/m/* > /dev/null" "$W commit -C $WORK/m -q -m 'bench: rank-one edit'" >/dev/null
"$W" log -C "$WORK/m" --json -n 12 >"$WORK/log.json"
python3 - "$WORK" "$(git rev-parse --short HEAD)" <<'PY'
import json, sys, re, datetime, statistics
sys.path.insert(0, "bench")
from sections import put
work, rev = sys.argv[1], sys.argv[2]
def res(n):
    return json.load(open(f"{work}/{n}.json"))["results"][0]["times"]
cat, com = res("cat"), res("commit")
mc, mm = statistics.median(cat), statistics.median(com)
stored = statistics.median(c["summary"]["storedBytes"] for c in json.load(open(f"{work}/log.json")) if c["kind"] != "base")
ms = lambda s: f"{s*1000:.0f} ms"
sec = f"""<!-- commit-recheck:begin -->
## Commit re-measured (SmolLM2 F32)

Command: `bench/commit-recheck.sh`, wledger at `{rev}`, {datetime.date.today()}; one rank-one edit of a random layer's `down_proj` per commit (`bench/edit.py`, as in section 1), page cache warm; medians of 10 runs, `cat` in the same run. A quick re-measurement of section 1's SmolLM2 row (more runs, nothing else on the machine), for checking one change without the full run.

| `wledger commit` | `cat model/*` | ratio | target | result | stored per edit |
|---:|---:|---:|---:|---|---:|
| {ms(mm)} ({ms(min(com))}–{ms(max(com))}) | {ms(mc)} ({ms(min(cat))}–{ms(max(cat))}) | {mm/mc:.2f}× | ≤ 1.30× | {"PASS" if mm/mc <= 1.3 else "**FAIL**"} | {stored/1024:.0f} KiB |
<!-- commit-recheck:end -->"""
put("commit-recheck", sec, before="checkout-recheck")
PY
rm -rf "$WORK"
