#!/usr/bin/env bash
# wledger benchmarks: builds release, measures the issue's targets and writes BENCHMARKS.md.
#
# Usage: bench/run.sh [--quick] [--keep] [--no-profile]
#   --quick       skip the LLaMA-2-7B-shaped BF16 model (SmolLM2 only, ~8 minutes)
#   --keep        keep the scratch directory (models, ledgers) instead of deleting it at the end
# Raw results (hyperfine JSON, values.tsv, profile tables) are copied to bench/out/ (git-ignored);
# `python3 bench/report.py bench/out BENCHMARKS.md > /tmp/B.md && mv /tmp/B.md BENCHMARKS.md` rebuilds
# the report from them (keeping sections other scripts own, between <!-- NAME:begin/end --> markers).
#   --no-profile  skip the perf/strace profiles used for the failure analysis
# Env:
#   WLEDGER_BENCH_DIR  scratch directory outside the repo (default /tmp/wledger-bench); wiped first
#   WLEDGER_CACHE      fixture cache (default ~/.cache/wledger); needs models/smollm2-135m/{f32,bf16}
#                      (scripts/fetch-fixtures.sh)
#   BENCH_RUNS         hyperfine runs for the fast SmolLM2 measurements (default 10)
#
# Needs: swift, python3 + numpy, hyperfine, zstd; perf and strace for the profiles (optional).
# Every timing is the median of repeated hyperfine runs; baselines (cat, cp) are measured in the
# same run on the same files, and only ratios are compared with the targets.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
QUICK=0
KEEP=0
PROFILE=1
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --keep) KEEP=1 ;;
    --no-profile) PROFILE=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
COMMAND_LINE="bench/run.sh${*:+ $*}"

BENCH=${WLEDGER_BENCH_DIR:-/tmp/wledger-bench}
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
SMOL=$CACHE/models/smollm2-135m
RUNS=${BENCH_RUNS:-10}
PY=${PYTHON:-python3}
EDIT="$PY $SCRIPT_DIR/edit.py"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $BENCH in
  "$ROOT"|"$ROOT"/*) die "WLEDGER_BENCH_DIR must be outside the repository" ;;
esac
for tool in swift hyperfine zstd "$PY"; do command -v "$tool" >/dev/null || die "missing tool: $tool"; done
"$PY" -c 'import numpy' 2>/dev/null || die "python3 needs numpy"
[[ -f $SMOL/f32/model.safetensors && -f $SMOL/bf16/model.safetensors ]] || die "no SmolLM2 fixtures under $SMOL (run scripts/fetch-fixtures.sh)"
if ((PROFILE)); then
  command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1 || { log "perf unavailable: no profiles"; PROFILE=0; }
fi

START_TS=$(date +%s)
rm -rf "$BENCH"
mkdir -p "$BENCH/results" "$BENCH/profiles"
RES=$BENCH/results
PROF=$BENCH/profiles
VALUES=$RES/values.tsv
: >"$VALUES"
OUTDIR=$ROOT/bench/out  # raw results kept in the repo (git-ignored) so the report can be regenerated
cleanup() {
  if [[ -d $BENCH/results ]]; then
    rm -rf "$OUTDIR"
    mkdir -p "$OUTDIR"
    cp -r "$BENCH/results" "$BENCH/profiles" "$OUTDIR/" 2>/dev/null || true
  fi
  if ((KEEP)); then log "kept $BENCH"; else rm -rf "$BENCH"; fi
}
trap cleanup EXIT

# put KEY VALUE: records one measured value for the report.
put() { printf '%s\t%s\n' "$1" "$2" >>"$VALUES"; }
# hf NAME HYPERFINE-ARGS...: runs hyperfine, keeping its JSON as results/NAME.json.
hf() {
  local name=$1
  shift
  log "hyperfine $name"
  hyperfine --style basic --export-json "$RES/$name.json" "$@" >&2
}
# sizes
fsize() { stat -c %s "$1"; }
ledger_bytes() {  # main file + WAL, if any
  local d=$1/.wledger t=0
  for f in "$d/ledger" "$d/ledger-wal"; do [[ -f $f ]] && t=$((t + $(fsize "$f"))); done
  echo $t
}
model_bytes() {  # visible files of a model directory
  local t=0 f
  for f in "$1"/*; do [[ -f $f ]] && t=$((t + $(fsize "$f"))); done
  echo $t
}
zstd_bytes() {  # zstd -3 of every visible file, summed
  local t=0 f
  for f in "$1"/*; do [[ -f $f ]] && t=$((t + $(zstd -3 -T0 -q -c "$f" | wc -c))); done
  echo $t
}
json_get() {  # json_get FILE EXPR (python expression over `d`)
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
warm() { cat "$1"/* >/dev/null; cat "$1"/* >/dev/null; }
# profile NAME COMMAND...: perf phase table + fsync time of one run of COMMAND.
profile() {
  ((PROFILE)) || return 0
  local name=$1
  shift
  log "profile $name"
  perf record -F 1000 -g -o "$PROF/$name.data" -- "$@" >/dev/null 2>"$PROF/$name.perf.err" || true
  perf script -i "$PROF/$name.data" -F tid,time,ip,sym,dso 2>/dev/null | "$PY" "$SCRIPT_DIR/phases.py" --period-ms 1 >"$PROF/$name.md" || true
  rm -f "$PROF/$name.data"
}
# strace_fsync NAME PREP COMMAND...: seconds spent in fsync/fdatasync during one run (after PREP).
strace_fsync() {
  ((PROFILE)) && command -v strace >/dev/null || return 0
  local name=$1 prep=$2
  shift 2
  bash -c "$prep"
  strace -f -T -e trace=fsync,fdatasync -o "$PROF/$name.strace" "$@" >/dev/null 2>&1 || true
  "$PY" - "$PROF/$name.strace" "$name" >>"$VALUES" <<'EOF'
import re, sys
total = n = 0
for line in open(sys.argv[1]):
    m = re.search(r"<([0-9.]+)>\s*$", line)
    if m and ("fsync(" in line or "fdatasync(" in line):
        total += float(m.group(1)); n += 1
print(f"{sys.argv[2]}.fsync_s\t{total:.4f}")
print(f"{sys.argv[2]}.fsync_calls\t{n}")
EOF
  rm -f "$PROF/$name.strace"
}

# ---------------------------------------------------------------------------------------------
log "building release (scratch path .build-bench)"
cd "$ROOT"
build_start=$(date +%s.%N)
# Sources may be edited while we build ("modified during the build"): retry a few times.
for attempt in 1 2 3 4; do
  if swift build -c release --scratch-path .build-bench >&2; then break; fi
  ((attempt < 4)) || die "release build failed"
  log "build failed (attempt $attempt); retrying in 20 s"
  sleep 20
done
put build_s "$(echo "$(date +%s.%N) - $build_start" | bc)"
WL=$ROOT/.build-bench/release/wledger
[[ -x $WL ]] || die "no binary at $WL"
put git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo '+uncommitted')"
put wledger_version "$("$WL" --version)"
# The tree is edited concurrently: record exactly which Sources/ the binary was built from.
put sources_sha "$(cd "$ROOT" && find Sources Package.swift -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"

put machine.nproc "$(nproc)"
put machine.cpu "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
put machine.mem "$(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}')"
put machine.kernel "$(uname -r)"
put machine.fs "$(df -hT "$BENCH" | awk 'NR==2 {print $2 " on " $1 ", " $5 " free of " $3}')"
put machine.date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put tools "$(hyperfine --version), zstd $(zstd --version | grep -o 'v[0-9.]*' | head -1), $(swift --version 2>&1 | head -1), $("$PY" --version), numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
put quick "$QUICK"
put command "$COMMAND_LINE"

# ---------------------------------------------------------------------------------------------
# Models.
log "copying SmolLM2 fixtures into $BENCH"
cp -r "$SMOL/f32" "$BENCH/smol-f32"
cp -r "$SMOL/f32" "$BENCH/smol-hist"
cp -r "$SMOL/bf16" "$BENCH/smol-bf16"
L7=$BENCH/llama7b
if ((!QUICK)); then
  log "generating the LLaMA-2-7B-shaped BF16 model"
  t=$(date +%s.%N)
  "$PY" "$SCRIPT_DIR/gen_llama7b_bf16.py" "$L7" >&2
  put gen7b_s "$(echo "$(date +%s.%N) - $t" | bc)"
fi

# ---------------------------------------------------------------------------------------------
# Target 5: base snapshot size (init), plus zstd -3 of the raw files.
snapshot() {  # snapshot KEY DIR
  local key=$1 dir=$2
  put "$key.raw_files" "$(model_bytes "$dir")"
  log "zstd -3 of $key"
  put "$key.zstd3" "$(zstd_bytes "$dir")"
  log "wledger init $key"
  local t
  t=$(date +%s.%N)
  "$WL" init -C "$dir" -q --json >"$RES/$key.init.json"
  put "$key.init_s" "$(echo "$(date +%s.%N) - $t" | bc)"
  put "$key.init_raw" "$(json_get "$RES/$key.init.json" "d['rawBytes']")"
  put "$key.init_stored" "$(json_get "$RES/$key.init.json" "d['storedBytes']")"
  put "$key.ledger_base" "$(ledger_bytes "$dir")"
}
snapshot smol_f32 "$BENCH/smol-f32"
# `status` right after init: weight files older than the recorded stat are trusted (no hashing).
hf smol_f32.status_clean -w 2 -r "$RUNS" "$WL status -C $BENCH/smol-f32 -q"
snapshot smol_bf16 "$BENCH/smol-bf16"
"$WL" init -C "$BENCH/smol-hist" -q >/dev/null
put smol_hist.ledger_base "$(ledger_bytes "$BENCH/smol-hist")"
if ((!QUICK)); then
  if ((PROFILE)) && command -v strace >/dev/null; then
    # Peak WAL size during init (init runs in one transaction, then checkpoints).
    ( peak=0; while [[ ! -f $RES/l7.init.done ]]; do
        s=$(stat -c %s "$L7"/.wledger*/ledger-wal 2>/dev/null | sort -n | tail -1 || true)
        [[ -n ${s:-} ]] && ((s > peak)) && peak=$s
        sleep 0.5; done; echo "$peak" >"$RES/l7.walpeak" ) &
    WATCH=$!
  fi
  snapshot l7 "$L7"
  touch "$RES/l7.init.done"
  if [[ -n ${WATCH:-} ]]; then wait "$WATCH" || true; put l7.init_wal_peak "$(cat "$RES/l7.walpeak" 2>/dev/null || echo 0)"; fi
fi

# ---------------------------------------------------------------------------------------------
# Target 1: commit of one rank-one edit vs cat of the model directory (warm cache). The two are
# timed in alternation, each round after a fresh edit (bench/interleave.py): both see the same
# machine state, which on this VM drifts from minute to minute.
commit_bench() {  # commit_bench KEY DIR LAYERS WARMUP RUNS
  local key=$1 dir=$2 layers=$3 w=$4 r=$5
  warm "$dir"
  log "interleaved $key.cat / $key.commit"
  "$PY" "$SCRIPT_DIR/interleave.py" --out-dir "$RES" --warmup "$w" --runs "$r" \
    --prepare "$EDIT apply $dir --tensor random-down-proj --layers $layers && cat $dir/* > /dev/null" \
    "$key.cat=cat $dir/* > /dev/null" "$key.commit=$WL commit -C $dir -q -m 'bench: rank-one edit' > /dev/null"
  "$WL" log -C "$dir" --json -n $((w + r)) >"$RES/$key.commits.json"
}
F32=$BENCH/smol-f32
commit_bench smol_f32 "$F32" 30 2 "$RUNS"
$EDIT apply "$F32" --tensor random-down-proj --layers 30
profile smol_f32.commit "$WL" commit -C "$F32" -q -m 'bench: profiled edit'
if ((!QUICK)); then
  # Three untimed commits first: the commits right after a 13.5 GB init find memory that init
  # freed handed back to the host, and their fresh pages cost 2-3x more (README, "Memory").
  commit_bench l7 "$L7" 32 3 8
  $EDIT apply "$L7" --tensor random-down-proj --layers 32
  profile l7.commit "$WL" commit -C "$L7" -q -m 'bench: profiled edit'
fi

# ---------------------------------------------------------------------------------------------
# Target 2: checkout (full materialization, and in place between two commits that differ in one
# tensor: written into the file, and with --no-in-place the file written anew) vs cp -r of the
# model directory, with and without sync.
checkout_bench() {  # checkout_bench KEY DIR WARMUP RUNS
  local key=$1 dir=$2 w=$3 r=$4 out=$BENCH/out
  local a b
  b=$("$WL" log -C "$dir" --json -n 1 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  a=$("$WL" log -C "$dir" --json -n 2 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[1]["id"])')
  put "$key.checkout_a_tensors" "$("$WL" show -C "$dir" --json "$b" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["summary"]["tensors"])')"
  warm "$dir"
  hf "$key.cp" -w "$w" -r "$r" --prepare "rm -rf $out; sync" "mkdir $out && cp -r $dir/* $out/"
  hf "$key.cp_sync" -w "$w" -r "$r" --prepare "rm -rf $out; sync" "mkdir $out && cp -r $dir/* $out/ && sync"
  hf "$key.checkout_output" -w "$w" -r "$r" --prepare "rm -rf $out; sync" "$WL checkout -C $dir -q $b --output $out"
  rm -rf "$out"
  hf "$key.checkout_inplace" -w "$w" -r "$r" --prepare "$WL checkout -C $dir -q $a >/dev/null && sync" \
    "$WL checkout -C $dir -q $b"
  hf "$key.checkout_rewrite" -w "$w" -r "$r" --prepare "$WL checkout -C $dir -q $a >/dev/null && sync" \
    "$WL checkout -C $dir -q --no-in-place $b"
  put "$key.shard_bytes" "$(stat -c %s "$dir/$("$WL" show -C "$dir" --json "$b" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tensors"][0]["file"])')")"
  "$WL" checkout -C "$dir" -q "$a" >/dev/null
  put "$key.inplace_bytes" "$("$WL" checkout -C "$dir" --json "$b" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["bytesWritten"] if d["patchedInPlace"] else -1)')"
  profile "$key.checkout_output" "$WL" checkout -C "$dir" -q "$b" --output "$out"
  rm -rf "$out"
  strace_fsync "$key.checkout_output" "rm -rf $out; sync" "$WL" checkout -C "$dir" -q "$b" --output "$out"
  rm -rf "$out"
  "$WL" checkout -C "$dir" -q "$a" >/dev/null
  sync
  profile "$key.checkout_inplace" "$WL" checkout -C "$dir" -q "$b"
  "$WL" checkout -C "$dir" -q main >/dev/null
  # `status` after a checkout that rewrote a file: its stat was recorded < 2 s after its mtime, so
  # it is never trusted and every later command re-hashes it.
  hf "$key.status_after_checkout" -w 1 -r "$((r > 5 ? 5 : r))" "$WL status -C $dir -q"
}
checkout_bench smol_f32 "$F32" 1 $((RUNS / 2 > 3 ? RUNS / 2 : 3))
if ((!QUICK)); then
  checkout_bench l7 "$L7" 0 3
fi

# ---------------------------------------------------------------------------------------------
# Target 3: checkout time vs history length (200 rank-one edits on SmolLM2 F32).
H=$BENCH/smol-hist
log "building a 200-edit history"
t=$(date +%s.%N)
put smol_hist.commit_total_s "$($EDIT history "$H" --wledger "$WL" --count 200 --layers 30 --times "$RES/history.tsv")"
put smol_hist.history_s "$(echo "$(date +%s.%N) - $t" | bc)"
put smol_hist.ledger_200 "$(ledger_bytes "$H")"
"$WL" log -C "$H" --json >"$RES/history.log.json"
C1=$(json_get "$RES/history.log.json" "d[-2]['id']")
C200=$(json_get "$RES/history.log.json" "d[0]['id']")
OUT=$BENCH/out
warm "$H"
HR=$((RUNS / 2 > 3 ? RUNS / 2 : 3))
hf hist.c1_output -w 1 -r "$HR" --prepare "rm -rf $OUT; sync" "$WL checkout -C $H -q $C1 --output $OUT"
hf hist.c200_output -w 1 -r "$HR" --prepare "rm -rf $OUT; sync" "$WL checkout -C $H -q $C200 --output $OUT"
rm -rf "$OUT"
hf hist.c1_inplace -w 1 -r "$HR" --prepare "$WL checkout -C $H -q $C200 >/dev/null && sync" "$WL checkout -C $H -q $C1"
hf hist.c200_inplace -w 1 -r "$HR" --prepare "$WL checkout -C $H -q $C1 >/dev/null && sync" "$WL checkout -C $H -q $C200"
# The keyframe path both ways: from a side branch of 30 rank-one edits on commit 1 (other seeds than
# the main history's, so no side version is on either target's chain).
"$WL" branch -C "$H" -q side "$C1" >/dev/null
"$WL" checkout -C "$H" -q side >/dev/null
$EDIT history "$H" --wledger "$WL" --count 30 --layers 30 --seeds 50000 >/dev/null
"$WL" log -C "$H" --json side >"$RES/side.log.json"
S=$(json_get "$RES/side.log.json" "d[0]['id']")
hf hist.side_c1_inplace -w 1 -r "$HR" --prepare "$WL checkout -C $H -q $S >/dev/null && sync" "$WL checkout -C $H -q $C1"
hf hist.side_c200_inplace -w 1 -r "$HR" --prepare "$WL checkout -C $H -q $S >/dev/null && sync" "$WL checkout -C $H -q $C200"
"$WL" checkout -C "$H" -q main >/dev/null

# ---------------------------------------------------------------------------------------------
# Target 4: ledger bytes per edit. Rank-one: the 200-edit history above. KN-like: 30 edits that
# change 3 neuron columns of one down_proj each, on top of it.
before=$(ledger_bytes "$H")
log "30 KN-like edits"
for i in $(seq 0 29); do
  $EDIT apply "$H" --tensor "model.layers.$i.mlp.down_proj.weight" --mode kn --cols 3 --seed $((5000 + i))
  "$WL" commit -C "$H" -q -m "kn edit $i" >/dev/null
done
put smol_hist.ledger_kn_growth "$(( $(ledger_bytes "$H") - before ))"
"$WL" log -C "$H" --json -n 30 >"$RES/kn.log.json"
# A few rank-one edits on SmolLM2 BF16.
B16=$BENCH/smol-bf16
before=$(ledger_bytes "$B16")
for i in $(seq 0 9); do
  $EDIT apply "$B16" --tensor "model.layers.$((i * 3)).mlp.down_proj.weight" --seed $((7000 + i))
  "$WL" commit -C "$B16" -q -m "rank-one edit $i" >/dev/null
done
put smol_bf16.ledger_r1_growth "$(( $(ledger_bytes "$B16") - before ))"
"$WL" log -C "$B16" --json -n 10 >"$RES/bf16.log.json"
if ((!QUICK)); then put l7.ledger_end "$(ledger_bytes "$L7")"; fi
put smol_f32.ledger_end "$(ledger_bytes "$F32")"

# ---------------------------------------------------------------------------------------------
put total_s $(( $(date +%s) - START_TS ))
log "writing BENCHMARKS.md"
"$PY" "$SCRIPT_DIR/report.py" "$BENCH" "$ROOT/BENCHMARKS.md" >"$BENCH/BENCHMARKS.md"
mv "$BENCH/BENCHMARKS.md" "$ROOT/BENCHMARKS.md"
log "done in $(( $(date +%s) - START_TS )) s"
