#!/usr/bin/env python3
"""Build wledger's word-analogy tasks and text corpus from the gensim wheel's test data.

Usage: wordtasks.py --wheel gensim-4.4.0-....whl --out DIR

The gensim wheel ships two public data sets as test data:
  - questions-words.txt: the Google word-analogy test set (Mikolov et al., 2013), 19,544
    questions "a b c d" (a is to b as c is to d) in 14 sections;
  - lee_background.cor: the Lee news corpus (300 Australian news articles, one per line).
Both are checked against pinned sha256 values. This script writes

  DIR/analogies/<section>.jsonl   lm-eval style multiple-choice lines
      {"context": "Athens is to Greece as Baghdad is to", "choices": [" Iraq", ...], "gold": k}
      with the answer and three distractors: other answers of the same section that are none of
      a, b, c, d, drawn with a seeded random.Random(section:index), the answer at a seeded position;
  DIR/corpus/lee_background.txt   the Lee corpus as UTF-8 text, one article per line.

Everything is deterministic: the same wheel gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import zipfile

DATA = "gensim/test/test_data/"
PINNED = {
    "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
    "lee_background.cor": "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
}
CHOICES = 4


def read(wheel: zipfile.ZipFile, name: str) -> bytes:
    data = wheel.read(DATA + name)
    got = hashlib.sha256(data).hexdigest()
    if got != PINNED[name]:
        sys.exit(f"wordtasks: {name} in the wheel has sha256 {got}, expected {PINNED[name]}")
    return data


def sections(text: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            out[current] = []
        elif line.strip():
            words = line.split()
            if current is None or len(words) != 4:
                sys.exit(f"wordtasks: questions-words.txt: bad line {line!r}")
            out[current].append(words)
    return out


def task_lines(section: str, questions: list[list[str]]) -> list[str]:
    answers = sorted({q[3] for q in questions})
    lines = []
    for i, (a, b, c, d) in enumerate(questions):
        rng = random.Random(f"{section}:{i}")
        pool = [w for w in answers if w not in (a, b, c, d)]
        if len(pool) < CHOICES - 1:
            sys.exit(f"wordtasks: section {section} has too few distinct answers")
        choices = rng.sample(pool, CHOICES - 1)
        gold = rng.randrange(CHOICES)
        choices.insert(gold, d)
        lines.append(json.dumps({"context": f"{a} is to {b} as {c} is to",
                                 "choices": [" " + w for w in choices], "gold": gold}, ensure_ascii=False))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="word-analogy tasks and corpus from gensim's test data")
    ap.add_argument("--wheel", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as z:
        questions = read(z, "questions-words.txt").decode("utf-8")
        corpus = read(z, "lee_background.cor").decode("utf-8")
    os.makedirs(os.path.join(args.out, "analogies"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "corpus"), exist_ok=True)
    count = 0
    for name, qs in sections(questions).items():
        with open(os.path.join(args.out, "analogies", name + ".jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(task_lines(name, qs)) + "\n")
        count += len(qs)
    with open(os.path.join(args.out, "corpus", "lee_background.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(l.strip() for l in corpus.splitlines() if l.strip()) + "\n")
    print(f"wrote {count} analogy questions and the Lee corpus into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
