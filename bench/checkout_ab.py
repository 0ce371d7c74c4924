#!/usr/bin/env python3
"""Interleaved A/B of in-place `wledger checkout` builds along a 200-edit history (section 3's case).

    python3 bench/checkout_ab.py MODEL_DIR [--rounds R] [--no-in-place] NAME=BINARY ...

MODEL_DIR is a work tree with a history made by `bench/edit.py history` (HEAD at its last commit,
on branch `main`). Each round, for each binary in turn: check out commit 1 (untimed; it writes
only in the first round, the work tree is at commit 1 after every round), time the switch to the
last commit, then time the switch back to commit 1. Every timed switch thus follows, by a few tens
of ms, a checkout that wrote the weight file, as the timed switches of `bench/run.sh` and
`bench/checkout-recheck.sh` do. Interleaving puts every binary through the same machine states.
Prints per binary the median of each direction and their ratio (the history target: ≤ 1.2×).
With --no-in-place every checkout (the untimed one too) writes the weight file anew.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("binaries", nargs="+", help="NAME=PATH of a wledger binary")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-in-place", action="store_true", help="pass --no-in-place to every checkout")
    args = ap.parse_args()
    specs = [b.split("=", 1) for b in args.binaries]
    if any(len(s) != 2 for s in specs):
        sys.exit("error: binaries are given as NAME=PATH")
    first = specs[0][1]
    log = json.loads(subprocess.run([first, "log", "-C", args.model, "--json", "main"], check=True, capture_output=True,
                                    text=True).stdout)
    last, one = log[0]["id"], log[-2]["id"]   # log[-1] is the base snapshot

    def checkout(binary, rev):
        t = time.perf_counter()
        extra = ["--no-in-place"] if args.no_in_place else []
        subprocess.run([binary, "checkout", "-q", "-C", args.model, *extra, rev], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    times = {name: ([], []) for name, _ in specs}
    for r in range(args.rounds):
        for name, path in specs:
            checkout(path, one)
            times[name][0].append(checkout(path, last))
            times[name][1].append(checkout(path, one))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    print(f"{len(log) - 1} edits; {args.rounds} rounds\n")
    print("| build | to the last commit, median | to commit 1, median | ratio |")
    print("|---|---:|---:|---:|")
    for name, _ in specs:
        a, b = statistics.median(times[name][0]), statistics.median(times[name][1])
        print(f"| {name} | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {a / b:.2f}× |")


if __name__ == "__main__":
    main()
