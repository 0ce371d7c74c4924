#!/usr/bin/env bash
# Re-measures checkout on SmolLM2 F32 after a 200-edit history (same edits as bench/run.sh):
# `checkout --output` of commit 1 and commit 200 vs `cp -r` (+ sync) of the model files, and
# in-place switches. Appends its section to BENCHMARKS.md between markers.
#   bench/checkout-recheck.sh   (about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
WORK=${WLEDGER_BENCH_DIR:-/tmp/wledger-recheck}
PY=$CACHE/venv/bin/python
swift build -c release --product wledger >/dev/null
W=$(swift build -c release --show-bin-path)/wledger
rm -rf "$WORK" && mkdir -p "$WORK" && cp -r "$CACHE/models/smollm2-135m/f32" "$WORK/m"
"$W" init -q -C "$WORK/m" >/dev/null
"$PY" bench/edit.py history --wledger "$W" --count 200 "$WORK/m" >/dev/null
C1=$("$W" log -C "$WORK/m" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-2]["id"])')
C200=$("$W" log -C "$WORK/m" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
OUT=$WORK/out
hf() { hyperfine -N --style none -w 1 -r "$1" --export-json "$WORK/$2.json" --prepare "rm -rf $OUT $WORK/cp; sync" "$3" >/dev/null 2>&1 || hyperfine --style none -w 1 -r "$1" --export-json "$WORK/$2.json" --prepare "rm -rf $OUT $WORK/cp; sync" "$3" >/dev/null; }
hf 7 cp "bash -c 'mkdir $WORK/cp && cp -r $WORK/m/config.json $WORK/m/generation_config.json $WORK/m/model.safetensors $WORK/m/tokenizer.json $WORK/m/tokenizer_config.json $WORK/cp/'"
hf 7 cpsync "bash -c 'mkdir $WORK/cp && cp -r $WORK/m/config.json $WORK/m/generation_config.json $WORK/m/model.safetensors $WORK/m/tokenizer.json $WORK/m/tokenizer_config.json $WORK/cp/ && sync'"
hf 7 out200 "$W checkout -q -C $WORK/m $C200 --output $OUT"
hf 7 out1 "$W checkout -q -C $WORK/m $C1 --output $OUT"
hyperfine -N --style none -w 1 -r 7 --export-json "$WORK/inplace.json" --prepare "$W checkout -q -C $WORK/m $C1" "$W checkout -q -C $WORK/m $C200" >/dev/null 2>&1
hyperfine -N --style none -w 1 -r 7 --export-json "$WORK/inplace1.json" --prepare "$W checkout -q -C $WORK/m $C200" "$W checkout -q -C $WORK/m $C1" >/dev/null 2>&1
# The keyframe path both ways: from a side branch of 30 rank-one edits on commit 1 (as bench/run.sh).
"$W" branch -C "$WORK/m" -q side "$C1" >/dev/null
"$W" checkout -C "$WORK/m" -q side >/dev/null
"$PY" bench/edit.py history --wledger "$W" --count 30 --seeds 50000 "$WORK/m" >/dev/null
S=$("$W" log -C "$WORK/m" --json side | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
hyperfine -N --style none -w 1 -r 7 --export-json "$WORK/side200.json" --prepare "$W checkout -q -C $WORK/m $S" "$W checkout -q -C $WORK/m $C200" >/dev/null 2>&1
hyperfine -N --style none -w 1 -r 7 --export-json "$WORK/side1.json" --prepare "$W checkout -q -C $WORK/m $S" "$W checkout -q -C $WORK/m $C1" >/dev/null 2>&1
"$W" checkout -q -C "$WORK/m" main >/dev/null
python3 - "$WORK" "$(git rev-parse --short HEAD)" <<'PY'
import json, sys, re, datetime, statistics
sys.path.insert(0, "bench")
from sections import put
work, rev = sys.argv[1], sys.argv[2]
def med(n):
    r = json.load(open(f"{work}/{n}.json"))["results"][0]
    return statistics.median(r["times"])
cp, cps, o200, o1, ip, ip1, s200, s1 = (med(n) for n in ["cp", "cpsync", "out200", "out1", "inplace", "inplace1", "side200", "side1"])
ms = lambda s: f"{s*1000:.0f} ms"
ok = lambda b: "PASS" if b else "FAIL"
sec = f"""<!-- checkout-recheck:begin -->
## Checkout re-measured (kernel copies, early writeback, in-place tensor writes)

Command: `bench/checkout-recheck.sh`, wledger at `{rev}`, {datetime.date.today()}; SmolLM2 F32 with the 200-edit history of section 3 (HEAD = commit 200); medians of 7 runs. It adds to sections 2 and 3 the `--output` checkout of HEAD and of commit 1 and both in-place directions of that history, each against `cp -r` + `sync` in the same run.

| operation | wledger | `cp -r` | ratio | `cp -r` + `sync` | ratio | target ≤ 1.5× |
|---|---:|---:|---:|---:|---:|---|
| `checkout <commit 200> --output` (= HEAD) | {ms(o200)} | {ms(cp)} | {o200/cp:.2f}× | {ms(cps)} | {o200/cps:.2f}× | {ok(o200/cps <= 1.5)} (vs cp+sync), {ok(o200/cp <= 1.5)} (vs cp) |
| `checkout <commit 1> --output` (30 tensors rebuilt) | {ms(o1)} | {ms(cp)} | {o1/cp:.2f}× | {ms(cps)} | {o1/cps:.2f}× | {ok(o1/cps <= 1.5)} (vs cp+sync), {ok(o1/cp <= 1.5)} (vs cp) |
| in place, commit 1 → commit 200 (30 tensors continued from the work tree's versions through 6–7 patches each, no keyframe decoded) | {ms(ip)} | {ms(cp)} | {ip/cp:.2f}× | {ms(cps)} | {ip/cps:.2f}× | {ok(ip/cps <= 1.5)} (vs cp+sync), {ok(ip/cp <= 1.5)} (vs cp) |
| in place, commit 200 → commit 1 (30 keyframes decoded) | {ms(ip1)} | {ms(cp)} | {ip1/cp:.2f}× | {ms(cps)} | {ip1/cps:.2f}× | {ok(ip1/cps <= 1.5)} (vs cp+sync), {ok(ip1/cp <= 1.5)} (vs cp) |
| in place, side branch → commit 200 (30 keyframes decoded, then 6–7 patches each) | {ms(s200)} | {ms(cp)} | {s200/cp:.2f}× | {ms(cps)} | {s200/cps:.2f}× | {ok(s200/cps <= 1.5)} (vs cp+sync), {ok(s200/cp <= 1.5)} (vs cp) |
| in place, side branch → commit 1 (30 keyframes decoded, 1 patch on one) | {ms(s1)} | {ms(cp)} | {s1/cp:.2f}× | {ms(cps)} | {s1/cps:.2f}× | {ok(s1/cps <= 1.5)} (vs cp+sync), {ok(s1/cp <= 1.5)} (vs cp) |

History (target ≤ 1.2×): `--output` of commit 1 vs commit 200 = {o1/o200:.2f}× ({ok(o1/o200 <= 1.2)}); in place, to commit 200 vs to commit 1 = {ip/ip1:.2f}× ({ok(ip/ip1 <= 1.2)}); in place from the side branch (keyframes decoded both ways), to commit 200 vs to commit 1 = {s200/s1:.2f}× ({ok(s200/s1 <= 1.2)}). The cost follows how many tensors differ from the work tree (commit 1 differs from HEAD in all 30 `down_proj`) and the patches applied to them: those after the work tree's version when the target descends from it, else all of them after the keyframe (at most 16).

How: `--output` copies the tensors the target shares with a clean work tree from it inside the kernel (`copy_file_range`, runs of adjacent tensors in 32 MiB pieces, on a background thread while the ledger is read and the rest rebuilt); every written range starts its writeback at once (`sync_file_range`), so the closing fsync waits for little; keyframes decode straight into the output buffer and patches apply there in place. In place, the 30 rebuilt tensors (105 MB) are written into the existing weight file and fdatasynced; the other 242 tensors are not touched. `cp -r` + `sync` is the like-for-like baseline (wledger fsyncs what it writes).
<!-- checkout-recheck:end -->"""
put("checkout-recheck", sec)
PY
rm -rf "$WORK"
