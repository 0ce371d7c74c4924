#!/usr/bin/env bash
# Re-measures the hashing's choice between the map and pread (README "Committing"; results in BENCHMARKS.md): CPU time of
# XXH3-128 over SmolLM2's 538 MB file, one thread, through the map, with pread, and with
# wledger's per-window choice, on a `cp` copy (4 KiB page-cache folios) and on a copy written
# with 16 MiB writes (large folios), page cache warm; medians of 7 alternating runs. Replaces its
# section of BENCHMARKS.md between markers.
#   bench/hashread.sh   (about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WLEDGER_CACHE:-$HOME/.cache/wledger}
WORK=${WLEDGER_BENCH_DIR:-/tmp/wledger-hashread}
SRC=$CACHE/models/smollm2-135m/f32/model.safetensors
rm -rf "$WORK" && mkdir -p "$WORK"
cc -O3 -mavx2 -o "$WORK/hashread" bench/hashread/hashread.c
cp "$SRC" "$WORK/cp.bin"
dd if="$SRC" of="$WORK/dd.bin" bs=16M status=none
for f in cp dd; do
  for i in 1 2 3 4 5 6 7; do
    cat "$WORK/$f.bin" >/dev/null
    for m in map pread adapt; do echo "$f $("$WORK/hashread" "$WORK/$f.bin" $m)"; done
  done
done | python3 -c '
import sys, statistics, collections, re, datetime, subprocess
sys.path.insert(0, "bench")
from sections import put
cpu = collections.defaultdict(list); hashes = collections.defaultdict(set)
for line in sys.stdin:
    f, m, c, w, h = line.split()
    cpu[(f, m)].append(float(c)); hashes[f].add(h)
assert all(len(v) == 1 for v in hashes.values()), "the three ways hashed a file differently"
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = []
for f, label in (("cp", "`cp` (4 KiB folios)"), ("dd", "`dd bs=16M` (large folios)")):
    a, b, c = (statistics.median(cpu[(f, m)]) for m in ("map", "pread", "adapt"))
    rows.append("| %s | %.1f ms | %.1f ms | %.1f ms |" % (label, a, b, c))
sec = "\n".join([
    "<!-- hashread:begin -->",
    "## Hashing: through the map or with pread",
    "",
    "Command: `bench/hashread.sh`, wledger at `%s`, %s. CPU time (user + system) of XXH3-128 over SmolLM2 F32’s 538 MB file on one thread, page cache warm, medians of 7 alternating runs: through a map of the file, with `pread` through a 256 KiB buffer, and choosing per 2 MiB window as `commit` and `status` do (the last two run `Sources/CShims/hash_read.h` itself: touch the window’s first byte, take the map when that fault mapped at least half the window). The three give the same hash of each file. The file is a `cp` copy, whose page cache is in 4 KiB folios, and a copy written with `dd bs=16M`, in large folios." % (rev, datetime.date.today()),
    "",
    "| copy | map | pread | per-window choice |",
    "|---|---:|---:|---:|",
    *rows,
    "<!-- hashread:end -->"])
put("hashread", sec, before="commit-recheck")
'
rm -rf "$WORK"
