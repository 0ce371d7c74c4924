#!/usr/bin/env python3
"""Simulated weight edits, written in place into a Hugging Face safetensors model directory.

    edit.py apply MODEL_DIR --tensor NAME|random-down-proj [--layers 30] [--mode rank1|kn] [--seed S (default random)] [--scale 0.01] [--cols 3]
    edit.py history MODEL_DIR --wledger BIN --count N [--layers 30] [--start 0] [--mode rank1] [--seeds 1000]

apply:
  rank1 (ROME-like)  W += scale * ||W||_F * u v^T with u, v random unit vectors, so
                     ||dW||_F / ||W||_F = scale (default 1%). Every element moves.
  kn    (KN-like)    `--cols` neuron columns j of W (shape [out, in]) get
                     W[:, j] += scale*10 * rms(W) * N(0, 1): 3 x out elements change.
  The tensor's bytes are rewritten with os.pwrite at their offset (no fsync, like save_pretrained
  into page cache); F32, F16 and BF16 (round-to-nearest-even) are supported.

history:
  N times: a rank-one edit on model.layers.{(start+i) % layers}.mlp.down_proj.weight (seed
  seeds+start+i, so a history continued with --start is the one made at once; other --seeds make
  other edits),
  then `BIN commit -C MODEL_DIR -q -m "edit i"`. Prints the seconds spent in commits; --times
  writes each commit's wall time.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np


def locate(model_dir, tensor):
    """(path, absolute byte offset, dtype string, shape) of `tensor`."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            fname = json.load(f)["weight_map"][tensor]
    else:
        fname = "model.safetensors"
    path = os.path.join(model_dir, fname)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    info = header[tensor]
    begin, end = info["data_offsets"]
    return path, 8 + n + begin, info["dtype"], info["shape"], end - begin


def read_f32(path, offset, dtype, count):
    if dtype == "F32":
        return np.fromfile(path, dtype=np.float32, count=count, offset=offset).astype(np.float32)
    if dtype == "F16":
        return np.fromfile(path, dtype=np.float16, count=count, offset=offset).astype(np.float32)
    if dtype == "BF16":
        b = np.fromfile(path, dtype=np.uint16, count=count, offset=offset)
        return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)
    raise SystemExit(f"edit.py: unsupported dtype {dtype}")


def to_bytes(x, dtype):
    if dtype == "F32":
        return x.astype(np.float32).tobytes()
    if dtype == "F16":
        return x.astype(np.float16).tobytes()
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).copy()
    nan = np.isnan(x)
    b += np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))
    b >>= np.uint32(16)
    out = b.astype(np.uint16)
    out[nan] = 0x7FC0
    return out.tobytes()


def apply_edit(model_dir, tensor, mode="rank1", seed=None, scale=0.01, cols=3):
    path, off, dtype, shape, nbytes = locate(model_dir, tensor)
    assert len(shape) == 2, f"{tensor} is not a matrix"
    rows, ncols = shape
    count = rows * ncols
    w = read_f32(path, off, dtype, count).reshape(rows, ncols)
    rng = np.random.default_rng(seed)
    if mode == "rank1":
        u = rng.standard_normal(rows).astype(np.float32)
        v = rng.standard_normal(ncols).astype(np.float32)
        u /= np.linalg.norm(u)
        v /= np.linalg.norm(v)
        norm = float(np.linalg.norm(w.astype(np.float64)))
        w += np.float32(scale * norm) * np.outer(u, v)
    elif mode == "kn":
        rms = float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
        js = rng.choice(ncols, size=cols, replace=False)
        for j in js:
            w[:, j] += np.float32(scale * 10 * rms) * rng.standard_normal(rows).astype(np.float32)
    else:
        raise SystemExit(f"edit.py: unknown mode {mode}")
    data = to_bytes(w, dtype)
    assert len(data) == nbytes
    fd = os.open(path, os.O_WRONLY)
    try:
        mv = memoryview(data)
        done = 0
        while done < len(mv):
            done += os.pwrite(fd, mv[done:], off + done)
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description="simulated weight edits (see module doc)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply")
    a.add_argument("model_dir")
    a.add_argument("--tensor", required=True)
    a.add_argument("--mode", default="rank1", choices=["rank1", "kn"])
    a.add_argument("--seed", type=int, default=None, help="default: random")
    a.add_argument("--scale", type=float, default=0.01)
    a.add_argument("--cols", type=int, default=3)
    a.add_argument("--layers", type=int, default=30, help="layer count for --tensor random-down-proj")
    h = sub.add_parser("history")
    h.add_argument("model_dir")
    h.add_argument("--wledger", required=True)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--layers", type=int, default=30)
    h.add_argument("--start", type=int, default=0)
    h.add_argument("--mode", default="rank1", choices=["rank1", "kn"])
    h.add_argument("--seeds", type=int, default=1000, help="seed of the edit at index 0")
    h.add_argument("--times", help="write 'index<TAB>layer<TAB>seconds' per commit to this file")
    args = ap.parse_args()
    if args.cmd == "apply":
        tensor = args.tensor
        if tensor == "random-down-proj":
            layer = int.from_bytes(os.urandom(4), "little") % args.layers
            tensor = f"model.layers.{layer}.mlp.down_proj.weight"
        apply_edit(args.model_dir, tensor, args.mode, args.seed, args.scale, args.cols)
        return
    commit_s = 0.0
    rows = []
    for i in range(args.count):
        layer = (args.start + i) % args.layers
        apply_edit(args.model_dir, f"model.layers.{layer}.mlp.down_proj.weight", args.mode, seed=args.seeds + args.start + i)
        t = time.perf_counter()
        subprocess.run([args.wledger, "commit", "-C", args.model_dir, "-q", "-m", f"{args.mode} edit {i + 1} (layer {layer})"],
                       check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        commit_s += dt
        rows.append(f"{i + 1}\t{layer}\t{dt:.4f}\n")
    if args.times:
        with open(args.times, "w") as f:
            f.writelines(rows)
    print(f"{commit_s:.3f}")


if __name__ == "__main__":
    main()
