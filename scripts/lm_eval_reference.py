#!/usr/bin/env python3
"""A small external evaluator for `wledger health`, written independently of wledger's engine.

Scores multiple-choice questions from lm-eval-style JSONL files ({"context", "choices", "gold"})
with the float64 NumPy forward pass of reference_logprobs.py and the Hugging Face `tokenizers`
library, and writes the results in lm-evaluation-harness's format:

    {"results": {"TASK": {"alias": "TASK", "acc,none": …, "acc_stderr,none": …,
                          "acc_norm,none": …, "acc_norm_stderr,none": …,
                          "gold_logprob,none": …, "gold_logprob_stderr,none": …}},
     "n-samples": {"TASK": {"original": N, "effective": N}}}

Tokenization follows lm-evaluation-harness: the context's trailing whitespace moves to the front
of the continuation, context + continuation is tokenized whole, and the continuation is the ids
after the context's. acc_norm divides by the choice's UTF-8 byte length. Standard errors are
lm-eval's (sample standard deviation with n − 1, over √n).

Use in .wledger/config:
    [evaluator "reference"]
        command = python3 scripts/lm_eval_reference.py --weights {weights} --tasks {tasks} --out {out}
    [task "capitals"]
        source = external:reference
        tasks = path/to/capitals.jsonl
Task names in the results are the files' base names without .jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_logprobs import Config, logits_all, read_weights  # noqa: E402


def split_ws(text: str) -> tuple[str, str]:
    head = text.rstrip()
    return head, text[len(head):]


def encode(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    head, tail = split_ws(context)
    ctx = tok.encode(head, add_special_tokens=False).ids
    whole = tok.encode(head + tail + continuation, add_special_tokens=False).ids
    if len(whole) > len(ctx) and whole[: len(ctx)] == ctx:
        return ctx, whole[len(ctx):]
    return ctx, tok.encode(tail + continuation, add_special_tokens=False).ids


def stderr(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="reference multiple-choice evaluator (lm-eval results format)")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tasks", required=True, help="comma-separated JSONL files")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open(os.path.join(args.weights, "config.json")) as fh:
        cfg = Config(json.load(fh))
    tok = Tokenizer.from_file(os.path.join(args.weights, "tokenizer.json"))
    W = read_weights(args.weights)
    results, samples = {}, {}
    for path in [p for p in args.tasks.split(",") if p]:
        name = os.path.basename(path).removesuffix(".jsonl")
        acc, acc_norm, gold_lp = [], [], []
        with open(path) as fh:
            questions = [json.loads(line) for line in fh if line.strip()]
        for q in questions:
            scores, norms = [], []
            for choice in q["choices"]:
                ctx, cont = encode(tok, q["context"], choice)
                ids = ctx + cont
                z = logits_all(cfg, W, ids)
                z = z - z.max(axis=-1, keepdims=True)
                logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
                lp = float(sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))
                scores.append(lp)
                norms.append(lp / len(choice.encode("utf-8")))
            gold = int(q["gold"])
            acc.append(1.0 if int(np.argmax(scores)) == gold else 0.0)
            acc_norm.append(1.0 if int(np.argmax(norms)) == gold else 0.0)
            gold_lp.append(scores[gold])
        results[name] = {"alias": name}
        for metric, values in (("acc", acc), ("acc_norm", acc_norm), ("gold_logprob", gold_lp)):
            results[name][f"{metric},none"] = sum(values) / len(values)
            results[name][f"{metric}_stderr,none"] = stderr(values)
        samples[name] = {"original": len(questions), "effective": len(questions)}
    with open(args.out, "w") as fh:
        json.dump({"results": results, "n-samples": samples, "config": {"model": "reference-float64"}}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
