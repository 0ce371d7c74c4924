#!/usr/bin/env python3
"""Checks that SmolLM2 knows the ground truth of every request in data/counterfact-smollm2.json.

For each request, with the float64 NumPy reference (reference_logprobs.py) and Hugging Face
`tokenizers`: log p(ground_truth) − log p(target_new) after the prompt (must be > 0.4), the rank
of the ground truth's first token among next-token predictions (must be ≤ 5), the same margin on
the rephrase (must be > −0.5) and the rank of the locality answer's first token (≤ 10).
Answers follow the prompt after one space. Prints one line per request; exit 1 if any fails.

Usage: check_counterfact.py [MODEL_DIR] [REQUESTS_JSON]
"""
import json
import os
import sys

import numpy as np
from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from reference_logprobs import Config, logits_all, read_weights  # noqa: E402

cache = os.environ.get("WLEDGER_CACHE", os.path.expanduser("~/.cache/wledger"))
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(cache, "models/smollm2-135m/f32")
requests = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "counterfact-smollm2.json")
cfg = Config(json.load(open(os.path.join(model, "config.json"))))
W = read_weights(model)
tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))


def score(prompt, answer):
    ctx = tok.encode(prompt).ids
    ids = tok.encode(prompt + " " + answer).ids
    z = logits_all(cfg, W, ids)
    z = z - z.max(-1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    row = lp[len(ctx) - 1]
    rank = int((row > row[ids[len(ctx)]]).sum()) + 1
    return float(sum(lp[len(ctx) - 1 + i, t] for i, t in enumerate(ids[len(ctx):]))), rank


bad = 0
for r in json.load(open(requests)):
    gt, new = r["ground_truth"], r["target_new"]
    a, rank = score(r["prompt"], gt)
    b, _ = score(r["prompt"], new)
    c, _ = score(r["rephrase_prompt"], gt)
    d, _ = score(r["rephrase_prompt"], new)
    loc = r["locality"]["neighborhood"]
    _, loc_rank = score(loc["prompt"], loc["ground_truth"])
    ok = a - b > 0.4 and rank <= 5 and c - d > -0.5 and loc_rank <= 10
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {r['prompt'][:44]:44s} {gt[:14]:14s} margin {a - b:6.2f} rank {rank:2d} "
          f"rephrase {c - d:6.2f} locality rank {loc_rank}")
print(f"{bad} of the requests fail" if bad else "all requests pass")
sys.exit(1 if bad else 0)
