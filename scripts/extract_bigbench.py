#!/usr/bin/env python3
"""Extract only bigbench/benchmark_tasks/**/task.json from the BIG-bench sdist.

Usage: extract_bigbench.py --sdist bigbench-1.0.0.tar.gz --out DIR

Writes DIR/<task>/task.json and DIR/<task>/<subtask>/task.json. Only regular
file members are taken; names that are absolute, contain '..' or would land
outside DIR are refused. Prints the number of files and bytes written.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import sys
import tarfile

MARK = "/bigbench/benchmark_tasks/"


def safe_relpath(name: str) -> str | None:
    """Path below benchmark_tasks/ for a wanted member, else None."""
    if name.startswith("/") or "\\" in name:
        return None
    norm = posixpath.normpath(name)
    if norm != name.rstrip("/") or norm.startswith("../") or "/../" in f"/{norm}/":
        return None
    top, sep, rest = norm.partition("/")
    if not sep or not ("/" + rest).startswith(MARK):
        return None  # must be <sdist-root>/bigbench/benchmark_tasks/...
    rel = ("/" + rest)[len(MARK):]
    parts = rel.split("/")
    if parts[-1] != "task.json" or len(parts) < 2:
        return None
    if any(p in ("", ".", "..") for p in parts):
        return None
    return rel


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="extract BIG-bench task.json files")
    ap.add_argument("--sdist", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    out = os.path.realpath(args.out)
    os.makedirs(out, exist_ok=True)
    count = total = 0
    with tarfile.open(args.sdist, "r|gz") as tar:
        for m in tar:
            rel = safe_relpath(m.name)
            if rel is None:
                continue
            if not m.isreg():
                print(f"extract_bigbench: skipping non-regular member {m.name}", file=sys.stderr)
                continue
            dest = os.path.realpath(os.path.join(out, *rel.split("/")))
            if os.path.commonpath([out, dest]) != out:
                print(f"extract_bigbench: refusing {m.name}", file=sys.stderr)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            with open(dest, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
            count += 1
            total += m.size
    if count == 0:
        sys.exit(f"extract_bigbench: no benchmark_tasks/**/task.json found in {args.sdist}")
    print(f"extracted {count} task.json files ({total:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
