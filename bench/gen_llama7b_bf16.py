#!/usr/bin/env python3
"""Generate a LLaMA-2-7B-shaped BF16 model in Hugging Face layout with random weights.

    python3 bench/gen_llama7b_bf16.py OUT_DIR [--shard-bytes 5000000000] [--seed 0] [--workers 2]

Writes OUT_DIR/model-0000N-of-0000M.safetensors (each <= --shard-bytes of tensor data),
OUT_DIR/model.safetensors.index.json and OUT_DIR/config.json.

Shapes are LLaMA-2-7B's: 32 layers, hidden 4096, 32 heads, FFN 11008, vocab 32000, untied
lm_head, HF tensor names. Every tensor is i.i.d. Gaussian with std 0.02 (norm weights too), converted
f32 -> bf16 with round-to-nearest-even by bit operations. Tensors are assigned to shards in HF
order (embeddings, layer 0..31, norm, lm_head); inside a shard they are stored in name order,
contiguous, after an 8-byte little-endian header length and a JSON header padded with spaces to a
multiple of 8.

Random numbers come from numpy's PCG64 seeded per tensor, so output is reproducible; tensors are
generated in 32M-element slabs by a small process pool writing with os.pwrite at their offsets.
"""
import argparse
import json
import os
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

LAYERS, HIDDEN, HEADS, FFN, VOCAB = 32, 4096, 32, 11008, 32000
SLAB = 32 << 20  # elements per generated slab


def tensor_list():
    """(name, shape) in Hugging Face order."""
    out = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.k_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.v_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]),
            (p + "mlp.gate_proj.weight", [FFN, HIDDEN]),
            (p + "mlp.up_proj.weight", [FFN, HIDDEN]),
            (p + "mlp.down_proj.weight", [HIDDEN, FFN]),
            (p + "input_layernorm.weight", [HIDDEN]),
            (p + "post_attention_layernorm.weight", [HIDDEN]),
        ]
    out += [("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]
    return out


def f32_to_bf16(x):
    """Round-to-nearest-even f32 -> bf16 bits (uint16); no NaN in Gaussian input."""
    b = x.view(np.uint32)
    b += np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))
    b >>= np.uint32(16)
    return b.astype(np.uint16)


def fill(job):
    """Generates elements [lo, hi) of one tensor and writes them at file offset `off`."""
    path, off, seed, lo, hi = job
    rng = np.random.Generator(np.random.PCG64([seed, lo]))
    x = rng.standard_normal(hi - lo, dtype=np.float32)
    x *= np.float32(0.02)
    data = f32_to_bf16(x)
    fd = os.open(path, os.O_WRONLY)
    try:
        mv = memoryview(data).cast("B")
        done = 0
        while done < len(mv):
            done += os.pwrite(fd, mv[done:], off + done)
    finally:
        os.close(fd)
    return hi - lo


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shard-bytes", type=int, default=5_000_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # Assign tensors to shards in HF order.
    shards, cur, cur_bytes = [], [], 0
    for name, shape in tensor_list():
        nb = numel(shape) * 2
        if cur and cur_bytes + nb > args.shard_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append((name, shape))
        cur_bytes += nb
    shards.append(cur)
    m = len(shards)

    t0 = time.time()
    weight_map, total = {}, 0
    jobs = []
    seeds = {name: args.seed * 1_000_003 + k for k, (name, _) in enumerate(tensor_list())}
    for si, tensors in enumerate(shards):
        fname = f"model-{si + 1:05d}-of-{m:05d}.safetensors"
        path = os.path.join(args.out, fname)
        header = {"__metadata__": {"format": "pt"}}
        off = 0
        for name, shape in sorted(tensors):
            nb = numel(shape) * 2
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + nb]}
            off += nb
            weight_map[name] = fname
        hj = json.dumps(header, separators=(",", ":")).encode()
        hj += b" " * ((-len(hj)) % 8)
        data_start = 8 + len(hj)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            f.truncate(data_start + off)
        total += off
        for name, shape in sorted(tensors):
            base = data_start + header[name]["data_offsets"][0]
            n = numel(shape)
            for lo in range(0, n, SLAB):
                hi = min(n, lo + SLAB)
                jobs.append((path, base + lo * 2, seeds[name], lo, hi))

    done = 0
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        for k in ex.map(fill, jobs, chunksize=1):
            done += k
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
        "num_key_value_heads": HEADS, "vocab_size": VOCAB, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    dt = time.time() - t0
    print(f"gen_llama7b_bf16: {done} parameters, {total / 1e9:.2f} GB in {m} shard(s) under {args.out} in {dt:.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
