#!/usr/bin/env python3
"""Prints the demo's comparison table from `wledger health --json` and `wledger diff --json` files.

    scripts/demo_table.py LABEL=HEALTH.json[:DIFF.json] ...

One row per stage (base, after N edits, after RECT, after PRUNE); columns: each task's headline
metric (value ± standard error), edit retention (efficacy / generalization / locality over every
request in force), and for the edited matrices the largest κ = σmax/σmin and the total Σ|ΔW| vs base.
Standard library only.
"""
import json
import sys


def main():
    stages = []
    for arg in sys.argv[1:]:
        label, _, files = arg.partition("=")
        health, _, diff = files.partition(":")
        with open(health) as f:
            h = json.load(f)
        d = None
        if diff:
            with open(diff) as f:
                d = json.load(f)
        stages.append((label, h, d))
    if not stages:
        sys.exit("usage: demo_table.py LABEL=HEALTH.json[:DIFF.json] ...")

    columns = []  # (task, metric)
    for _, h, _ in stages:
        for r in h["rows"]:
            key = (r["task"], r["metric"])
            wanted = r.get("headline") or (r["task"] == "edits" and r["metric"] in ("efficacy", "generalization", "locality"))
            if wanted and key not in columns:
                columns.append(key)
    columns.sort(key=lambda k: (k[0] == "edits", 0))

    header = ["stage"] + [f"{t}.{m}" for t, m in columns] + ["max κ (edited)", "Σ|ΔW| vs base"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for label, h, d in stages:
        values = {(r["task"], r["metric"]): r["value"] for r in h["rows"]}
        cells = [label]
        for key in columns:
            v = values.get(key)
            if v is None or (key[0] == "edits" and v.get("n", 0) == 0):
                cells.append("–")
            else:
                cells.append(f"{v['value']:.3f} ± {v['stderr']:.3f}")
        if d and d["tensors"]:
            kappas = [t["toSpectrum"]["kappa"] for t in d["tensors"] if t.get("toSpectrum") and t["toSpectrum"].get("kappa")]
            base_k = [t["fromSpectrum"]["kappa"] for t in d["tensors"] if t.get("fromSpectrum") and t["fromSpectrum"].get("kappa")]
            cells.append(f"{max(kappas):.1f} (base {max(base_k):.1f})" if kappas else "–")
            cells.append(f"{d['totals']['l1']:.1f}")
        else:
            cells += ["–", "0"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
