#!/usr/bin/env bash
# The main job: the study of the seeds, with one tool, on the real SmolLM2-135M-Instruct (F32).
#
#   1. snapshot the base; evaluate it (default suite: BIG-bench addition, word analogies, edit retention);
#   2. sequential native ROME edits of the counterfactual requests in data/counterfact-smollm2.json,
#      each committed with its request; health after 10, 25 and 50 edits (tags edits-N);
#   3. RECT: on branch `rect`, prune every edit to its top 40% by relative change; health;
#   4. PRUNE: on branch `restrain`, restrain the accumulated ΔW (base..edits-50); health;
#   5. the comparison table (abilities, edit retention, κ of the edited matrix, Σ|ΔW|), a check
#      that the base materializes byte-identical to the download, fsck, and an HTML report.
#
# WLEDGER_DEMO_EDITS=N runs N edits instead of 50 (checkpoints at 10, 25, 50 that are ≤ N, and N).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
WORK=${WLEDGER_DEMO_DIR:-$CACHE/demo}
EDITS=${WLEDGER_DEMO_EDITS:-50}
THREADS=${WLEDGER_DEMO_THREADS:-2}

# OpenBLAS kernels: wledger itself moves Debian's OpenBLAS 0.3.21 off its SSE3 fallback on CPUs it
# does not recognise (README, "Inference engine", OpenBLAS kernels); WLEDGER_BLAS_KERNEL=openblas keeps
# OpenBLAS's own choice.

swift build -c release --product wledger >/dev/null
W=$(swift build -c release --show-bin-path)/wledger
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start )) s]"; }

rm -rf "$WORK"
mkdir -p "$WORK/requests" "$WORK/results"
cp -r "$CACHE/models/smollm2-135m/f32" "$WORK/smollm2"
python3 - "$REPO/data/counterfact-smollm2.json" "$WORK/requests" <<'PY'
import json, sys
for i, r in enumerate(json.load(open(sys.argv[1]))):
    json.dump(r, open(f"{sys.argv[2]}/{i + 1:02d}.json", "w"))
PY
cd "$WORK/smollm2"
export WLEDGER_AUTHOR="demo <demo@wledger>"
R=$WORK/results

run "$W" init -m "SmolLM2-135M-Instruct F32 base"
run "$W" config set threshold.addition.exact_match.max-drop 25%
run "$W" config set threshold.capitals.acc.min 0.7

say "health of the base (default suite; cached in the ledger)"
"$W" health --threads "$THREADS" --json base > "$R/health-0.json"
"$W" health --threads "$THREADS" base
elapsed

checkpoints=()
for n in 10 25 50; do [ "$n" -lt "$EDITS" ] && checkpoints+=("$n"); done
checkpoints+=("$EDITS")
for i in $(seq 1 "$EDITS"); do
  req=$(printf '%s/requests/%02d.json' "$WORK" "$i")
  say "wledger edit --method rome --request requests/$(basename "$req")   # edit $i of $EDITS"
  "$W" edit -q --method rome --request "$req"
  for n in "${checkpoints[@]}"; do
    if [ "$i" -eq "$n" ]; then
      "$W" tag "edits-$n"
      say "health after $n edits"
      "$W" health --threads "$THREADS" --json > "$R/health-$n.json"
      "$W" health --threads "$THREADS"
      "$W" diff base HEAD --json > "$R/diff-$n.json"
      elapsed
    fi
  done
done
run "$W" log --oneline -n 5
run "$W" show HEAD
run "$W" diff base HEAD --stat

say "RECT on branch rect: every edit pruned to its top 40% by relative change δ = |ΔW/W|"
"$W" branch rect "edits-$EDITS"
"$W" checkout -q rect
for c in $("$W" log --json "edits-$EDITS" | python3 -c 'import json,sys; print(" ".join(c["id"] for c in json.load(sys.stdin) if c["kind"] == "edit"))'); do
  "$W" prune -q "$c" --keep 40% >/dev/null
done
"$W" log --oneline -n 3
"$W" health --threads "$THREADS" --json > "$R/health-rect.json"
"$W" health --threads "$THREADS"
"$W" diff base HEAD --json > "$R/diff-rect.json"
elapsed

say "PRUNE on branch restrain: restrain the accumulated ΔW base..edits-$EDITS (α = e)"
"$W" branch restrain "edits-$EDITS"
"$W" checkout -q restrain
run "$W" restrain base..HEAD
"$W" health --threads "$THREADS" --json > "$R/health-restrain.json"
"$W" health --threads "$THREADS"
"$W" diff base HEAD --json > "$R/diff-restrain.json"
"$W" checkout -q main
elapsed

say "comparison (value ± standard error; edits.* over every request in force at that commit)"
rows=("base=$R/health-0.json")
for n in "${checkpoints[@]}"; do rows+=("$n edits=$R/health-$n.json:$R/diff-$n.json"); done
rows+=("$EDITS + RECT 40%=$R/health-rect.json:$R/diff-rect.json" "$EDITS + PRUNE=$R/health-restrain.json:$R/diff-restrain.json")
python3 "$REPO/scripts/demo_table.py" "${rows[@]}" | tee "$R/table.md"

say "the base, materialized from the ledger, vs the original download (sha256)"
"$W" checkout base --output "$WORK/base-copy" -q
a=$(sha256sum "$WORK/base-copy/model.safetensors" | cut -d' ' -f1)
b=$(sha256sum "$CACHE/models/smollm2-135m/f32/model.safetensors" | cut -d' ' -f1)
echo "$a  base-copy/model.safetensors"
echo "$b  original/model.safetensors"
[ "$a" = "$b" ] && echo "identical" || { echo "MISMATCH"; exit 1; }
rm -rf "$WORK/base-copy"
run "$W" fsck
say "ledger size"
du -h .wledger/ledger
elapsed

# ---- report (issue 8): keep this block last ---------------------------------------------------
# One self-contained HTML page: health (cached above) and weight drift vs commits for the three
# branches, and a sortable table of the commits.
say "wledger report main rect restrain (self-contained HTML, no external requests)"
report=$("$W" report main rect restrain --output "$WORK/report.html")
echo "report: $report"
elapsed
