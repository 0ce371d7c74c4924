#!/usr/bin/env python3
"""Add Gaussian noise of SIGMA x RMS(W) to every mlp.down_proj.weight of an F32 safetensors file, in place.

A crude stand-in for accumulated edit damage, used to choose the default health suite (README,
"The default suite"): a task belongs in it when its score falls under this noise.

Usage: noise_down_proj.py model.safetensors --sigma 0.1 [--seed 0]. Needs numpy.
"""
import argparse, json, struct
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    count = 0
    with open(a.file, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        for name in sorted(k for k in header if k.endswith("mlp.down_proj.weight")):
            t = header[name]
            if t["dtype"] != "F32":
                raise SystemExit(f"{a.file}: {name} has dtype {t['dtype']}; only F32 is supported")
            begin, end = t["data_offsets"]
            f.seek(8 + n + begin)
            w = np.frombuffer(f.read(end - begin), dtype=np.float32).astype(np.float64)
            w += a.sigma * np.sqrt(np.mean(w * w)) * rng.standard_normal(w.shape)
            f.seek(8 + n + begin)
            f.write(w.astype(np.float32).tobytes())
            count += 1
    print(f"noise {a.sigma} x RMS added to {count} down_proj matrices of {a.file}")


if __name__ == "__main__":
    main()
