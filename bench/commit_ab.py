#!/usr/bin/env python3
"""Interleaved A/B of `wledger commit` builds on one rank-one edit, `cat` of the model in the same rounds.

    python3 bench/commit_ab.py MODEL_DIR --layers N [--rounds R] [--dir NAME=DIR ...] NAME=BINARY ...

MODEL_DIR is an initialized work tree (it gets one commit per binary per round). Each round, for each
binary in turn: `bench/edit.py apply` edits a random layer's `down_proj`, `cat` reads the model
files twice (the second timed: the baseline), then the binary commits. Interleaving puts every
binary through the same machine states, which on a VM drift from minute to minute (page cache,
memory handed back to the host). Prints a Markdown table: median wall time and its ratio to the
median `cat`, range, and per commit the median CPU time (user + system), system time and minor
page faults. `--dir NAME=DIR` gives that binary its own initialized copy of the model (builds whose
ledger schemas differ cannot share one: an older binary refuses a ledger a newer one migrated).
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("binaries", nargs="+", help="NAME=PATH of a wledger binary")
    ap.add_argument("--layers", type=int, required=True, help="decoder layers of the model")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--python", default=sys.executable, help="Python with numpy, for bench/edit.py")
    ap.add_argument("--dir", action="append", default=[], help="NAME=DIR: an initialized model copy for that binary")
    args = ap.parse_args()
    specs = [b.split("=", 1) for b in args.binaries]
    dirs = dict(d.split("=", 1) for d in args.dir)
    if any(len(s) != 2 for s in specs):
        sys.exit("error: binaries are given as NAME=PATH")
    if set(dirs) - {name for name, _ in specs}:
        sys.exit("error: --dir names a build that is not given")
    edit = lambda model: [args.python, os.path.join(HERE, "edit.py"), "apply", model, "--tensor", "random-down-proj",
                          "--layers", str(args.layers)]
    files = sorted(os.path.join(args.model, f) for f in os.listdir(args.model)
                   if os.path.isfile(os.path.join(args.model, f)))

    def cat():
        t = time.perf_counter()
        subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    cats, rows = [], {name: [] for name, _ in specs}
    for r in range(args.rounds):
        for name, path in specs:
            model = dirs.get(name, args.model)
            subprocess.run(edit(model), check=True, stdout=subprocess.DEVNULL)
            cat()
            cats.append(cat())
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([path, "commit", "-C", model, "-q", "-m", "bench: A/B"], check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            sys_s = after.ru_stime - before.ru_stime
            rows[name].append((wall, after.ru_utime - before.ru_utime + sys_s, sys_s, after.ru_minflt - before.ru_minflt))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    mc = statistics.median(cats)
    ms = lambda s: f"{s * 1000:.0f} ms"
    print(f"`cat` of the model: median {ms(mc)} ({ms(min(cats))}–{ms(max(cats))}, n={len(cats)})\n")
    print("| build | commit, median | ratio to `cat` | range | CPU | system | minor faults |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, _ in specs:
        w = [x[0] for x in rows[name]]
        med = lambda k: statistics.median(x[k] for x in rows[name])
        print(f"| {name} | {ms(statistics.median(w))} | {statistics.median(w) / mc:.2f}× | {ms(min(w))}–{ms(max(w))} | "
              f"{ms(med(1))} | {ms(med(2))} | {med(3):.0f} |")


if __name__ == "__main__":
    main()
