#!/usr/bin/env python3
"""Times a command and its baseline in alternation, so both see the same machine states.

    python3 bench/interleave.py --out-dir DIR --prepare 'SHELL CMD' [--warmup W] [--runs R] \
        BASE_NAME='SHELL CMD' SUBJECT_NAME='SHELL CMD'

Each round runs `--prepare` (untimed), then the baseline, then the subject, each timed on its own
(wall clock around the process, started without a shell: the commands are split with `shlex` and
a trailing `> /dev/null` is honoured by discarding stdout; a `*` in an argument is expanded).
`--warmup` rounds run first and are not recorded. Writes DIR/BASE_NAME.json and
DIR/SUBJECT_NAME.json in hyperfine's `--export-json` layout (results[0]: command, mean, stddev,
median, min, max, times), which `bench/report.py` reads.

Why: on the VM the benchmarks run on, the cost of reading the page cache and of fresh memory
drifts by tens of percent from minute to minute (bench/analysis.md). Timing the baseline's runs
all before the subject's (two `hyperfine` calls) compares two different machine states;
alternating them within each round compares the same one.
"""
import argparse
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
import time


def command(text):
    """argv (globs expanded) and whether stdout is discarded."""
    words = shlex.split(text)
    quiet = False
    if len(words) >= 2 and words[-2:] == [">", "/dev/null"]:
        words, quiet = words[:-2], True
    argv = []
    for w in words:
        argv.extend(sorted(glob.glob(w)) if "*" in w else [w])
    return argv, quiet


def timed(argv, quiet):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL if quiet else None)
    return time.perf_counter() - start


def export(path, text, times):
    result = {"command": text, "mean": statistics.fmean(times), "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
              "median": statistics.median(times), "min": min(times), "max": max(times), "times": times}
    with open(path, "w") as f:
        json.dump({"results": [result]}, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--prepare", required=True, help="shell command run before each round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("pairs", nargs=2, metavar="NAME=CMD", help="the baseline, then the subject")
    args = ap.parse_args()
    specs = [p.split("=", 1) for p in args.pairs]
    if any(len(s) != 2 for s in specs):
        sys.exit("error: commands are given as NAME=CMD")
    times = {name: [] for name, _ in specs}
    for i in range(args.warmup + args.runs):
        subprocess.run(args.prepare, shell=True, check=True, stdout=subprocess.DEVNULL)
        for name, text in specs:
            t = timed(*command(text))
            if i >= args.warmup:
                times[name].append(t)
    for name, text in specs:
        export(os.path.join(args.out_dir, name + ".json"), text, times[name])
        print(f"{name}: median {statistics.median(times[name]) * 1000:.1f} ms over {args.runs} rounds", file=sys.stderr)


if __name__ == "__main__":
    main()
