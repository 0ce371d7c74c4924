#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes with libFuzzer + AddressSanitizer.
#   Fuzz/run.sh [RUNS [TARGET…]]   # RUNS executions per target (default 100000), all targets by default
# Builds with -sanitize=fuzzer,address into .build-fuzz, starts each target from the seeds in
# Fuzz/corpus/TARGET (made by the real encoders: `wledger-fuzz seeds Fuzz/corpus`), keeps new
# inputs in a scratch corpus, and stops at the first crash, hang (-timeout=10) or sanitizer report,
# leaving the input as Fuzz/crashers/TARGET-* (not committed: once fixed, move it to
# Fuzz/regressions/, which the tests replay). Prints one summary line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100000}
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=${*:-safetensors index tokenizer bigbench request patch chunk}
# Swift's crash backtracer would read the stack under ASan and muddle the report.
export SWIFT_BACKTRACE=enable=no
swift build --product wledger-fuzz --scratch-path .build-fuzz -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address >/dev/null
BIN=$(swift build --product wledger-fuzz --scratch-path .build-fuzz -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address --show-bin-path)/wledger-fuzz
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p Fuzz/crashers
status=0
for target in $TARGETS; do
  mkdir -p "$WORK/$target"
  start=$(date +%s)
  if WLEDGER_FUZZ_TARGET=$target "$BIN" -runs="$RUNS" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
       -artifact_prefix="Fuzz/crashers/$target-" "$WORK/$target" "Fuzz/corpus/$target" > "$WORK/$target.log" 2>&1; then
    execs=$(grep -o 'Done [0-9]* runs' "$WORK/$target.log" | grep -o '[0-9]*' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$WORK/$target.log" | tail -1 | grep -o '[0-9]*' || echo "?")
    echo "$target: $execs executions in $(( $(date +%s) - start )) s, coverage $cov edges, corpus $(ls "$WORK/$target" | wc -l) inputs, no crash"
  else
    echo "$target: FAILED (see below)"; tail -30 "$WORK/$target.log"; status=1
  fi
done
exit $status
