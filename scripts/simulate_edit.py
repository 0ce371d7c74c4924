#!/usr/bin/env python3
"""Apply a simulated knowledge edit in place to one tensor of a safetensors file.

  rank-one:  W += scale * u v^T            (what ROME does to mlp.down_proj)
  columns:   a few columns rescaled         (what KN-style neuron edits look like)

Used by scripts/demo.sh until native editing (`wledger edit`) lands. Needs numpy.
"""
import argparse, json, struct
import numpy as np

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("tensor")
    ap.add_argument("--kind", choices=["rank-one", "columns"], default="rank-one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.01)
    a = ap.parse_args()
    with open(a.file, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header[a.tensor]
        begin, end = t["data_offsets"]
        f.seek(8 + n + begin)
        raw = np.frombuffer(f.read(end - begin), dtype=np.uint8)
        dtype = t["dtype"]
        if dtype == "F32":
            w = raw.view(np.float32).astype(np.float64)
        elif dtype == "F16":
            w = raw.view(np.float16).astype(np.float64)
        elif dtype == "BF16":
            w = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{a.file}: tensor {a.tensor} has dtype {dtype}; only F32/F16/BF16 are supported")
        w = w.reshape(t["shape"])
        rng = np.random.default_rng(a.seed)
        if a.kind == "rank-one":
            w += a.scale * np.outer(rng.standard_normal(w.shape[0]), rng.standard_normal(w.shape[1]))
        else:
            cols = rng.choice(w.shape[1], size=3, replace=False)
            w[:, cols] *= 1.5
        w32 = w.astype(np.float32).ravel()
        if dtype == "F32":
            out = w32.tobytes()
        elif dtype == "F16":
            out = w32.astype(np.float16).tobytes()
        else:
            b = w32.view(np.uint32)
            out = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
        f.seek(8 + n + begin)
        f.write(out)

if __name__ == "__main__":
    main()
