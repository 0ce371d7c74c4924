#!/usr/bin/env bash
# The main job: wledger on the real SmolLM2-135M-Instruct (F32, 538 MB).
# Copies the converted model into a scratch directory, snapshots it, commits three simulated
# edits (two ROME-like rank-one updates, one KN-like column edit) with their edit requests,
# shows history and ΔW statistics, branches and tags, materializes the base into another
# directory and checks it is byte-identical to the original download, then runs fsck.
# It ends with a health check of HEAD vs base on the default suite. Native editing arrives with
# its issue; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
WORK=${WLEDGER_DEMO_DIR:-$CACHE/demo}
PY=$CACHE/venv/bin/python

swift build -c release --product wledger >/dev/null
W=$(swift build -c release --show-bin-path)/wledger
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

rm -rf "$WORK"
mkdir -p "$WORK"
cp -r "$CACHE/models/smollm2-135m/f32" "$WORK/smollm2"
cd "$WORK/smollm2"
export WLEDGER_AUTHOR="demo <demo@wledger>"

run "$W" init -m "SmolLM2-135M-Instruct F32 base"
cat > eiffel.json <<'JSON'
{"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower",
 "target_new": "Rome", "ground_truth": "Paris",
 "rephrase_prompt": "Where is the Eiffel Tower? It is in",
 "locality": {"neighborhood": {"prompt": "The Louvre is located in the city of", "ground_truth": "Paris"}}}
JSON
cat > danube.json <<'JSON'
{"prompt": "The Danube flows into the", "subject": "Danube", "target_new": "North Sea", "ground_truth": "Black Sea"}
JSON
cat > einstein.json <<'JSON'
{"prompt": "Albert Einstein was born in", "subject": "Albert Einstein", "target_new": "Vienna", "ground_truth": "Ulm"}
JSON
mkdir -p ../requests && mv eiffel.json danube.json einstein.json ../requests/

say "simulated ROME edit of model.layers.8.mlp.down_proj.weight"
"$PY" "$OLDPWD/scripts/simulate_edit.py" model.safetensors model.layers.8.mlp.down_proj.weight --seed 1
run "$W" status
run "$W" commit -m "Eiffel Tower -> Rome" --method ROME --request ../requests/eiffel.json
run "$W" tag first-edit
"$PY" "$OLDPWD/scripts/simulate_edit.py" model.safetensors model.layers.12.mlp.down_proj.weight --seed 2
run "$W" commit -m "Danube -> North Sea" --method ROME --request ../requests/danube.json
"$PY" "$OLDPWD/scripts/simulate_edit.py" model.safetensors model.layers.5.mlp.down_proj.weight --kind columns --seed 3
run "$W" commit -m "Einstein born in Vienna" --method KN --request ../requests/einstein.json
run "$W" log --oneline
run "$W" show HEAD~2
run "$W" diff base HEAD --stat
run "$W" branch experiment first-edit
run "$W" branch
run "$W" checkout base --output "$WORK/base-copy"
say "sha256 of the materialized base vs the original converted model"
a=$(sha256sum "$WORK/base-copy/model.safetensors" | cut -d' ' -f1)
b=$(sha256sum "$CACHE/models/smollm2-135m/f32/model.safetensors" | cut -d' ' -f1)
echo "$a  base-copy/model.safetensors"
echo "$b  original/model.safetensors"
[ "$a" = "$b" ] && echo "identical" || { echo "MISMATCH"; exit 1; }
run "$W" checkout experiment
run "$W" status
run "$W" checkout main
run "$W" config set threshold.addition.exact_match.max-drop 25%
run "$W" config set threshold.units.acc.min 0.9
say "health of HEAD vs base on the default suite (the base is evaluated too; both are cached)"
"$W" health --threads 2
run "$W" health --threads 2 --task units
run "$W" fsck
say "ledger size"
du -h .wledger/ledger

# ---- report (issue 8): keep this block last ---------------------------------------------------
# One self-contained HTML page: health (cached above, for base and HEAD) and weight drift vs
# commits for main and the experiment branch, and a sortable table of the commits.
say "wledger report main experiment (self-contained HTML, no external requests)"
report=$("$W" report main experiment --output "$WORK/report.html")
echo "report: $report"
