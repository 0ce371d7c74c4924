#!/usr/bin/env python3
"""Independent float64 NumPy reference for the LLaMA-family forward pass.

Given a Hugging Face model directory (config.json + safetensors weights, one file or
shards listed in model.safetensors.index.json) and a list of token ids, prints one JSON
object on stdout:

    {"tokens": [...],            # the input ids
     "logprobs": [...],          # log p(tokens[i] | tokens[:i]) for i = 1 .. T-1
     "argmax": [...],            # most likely next id after tokens[:i], i = 1 .. T
     "argmax_prob": [...]}       # its probability

Written from the Hugging Face modeling code (LlamaForCausalLM / Qwen2ForCausalLM), not
from wledger's Swift engine: rotary embeddings are applied as complex rotations of the
(j, j + head_dim/2) pairs, attention is computed per key/value group with einsum, and every
weight is upcast to float64 before use.

Usage: reference_logprobs.py MODEL_DIR --tokens 504,3575,282
       reference_logprobs.py MODEL_DIR < ids.json      (a JSON array of ids)
Exit status: 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np

SUPPORTED = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as float64 arrays."""
    with open(path, "rb") as fh:
        header_len = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(header_len).decode("utf-8"))
        base = 8 + header_len
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            lo, hi = meta["data_offsets"]
            fh.seek(base + lo)
            buf = fh.read(hi - lo)
            kind = meta["dtype"]
            if kind == "F32":
                arr = np.frombuffer(buf, dtype="<f4").astype(np.float64)
            elif kind == "F16":
                arr = np.frombuffer(buf, dtype="<f2").astype(np.float64)
            elif kind == "BF16":
                halves = np.frombuffer(buf, dtype="<u2").astype("<u4")
                arr = (halves << np.uint32(16)).view("<f4").astype(np.float64)
            elif kind == "F64":
                arr = np.frombuffer(buf, dtype="<f8").copy()
            else:
                raise SystemExit(f"reference: {path}: tensor {name!r} has unsupported dtype {kind}")
            out[name] = arr.reshape(meta["shape"])
    return out


def read_weights(model_dir: str) -> dict[str, np.ndarray]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as fh:
            shards = sorted(set(json.load(fh)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    weights: dict[str, np.ndarray] = {}
    for shard in shards:
        weights.update(read_safetensors(os.path.join(model_dir, shard)))
    return weights


class Config:
    def __init__(self, raw: dict):
        arch = (raw.get("architectures") or [None])[0]
        if arch not in SUPPORTED:
            raise SystemExit(f"reference: unsupported architecture {arch!r}")
        self.kind = SUPPORTED[arch]
        self.dim = int(raw["hidden_size"])
        self.ffn = int(raw["intermediate_size"])
        self.layers = int(raw["num_hidden_layers"])
        self.heads = int(raw["num_attention_heads"])
        self.kv_heads = int(raw.get("num_key_value_heads") or self.heads)
        self.head_dim = int(raw.get("head_dim") or self.dim // self.heads)
        self.theta = float(raw.get("rope_theta", 10000.0))
        self.eps = float(raw["rms_norm_eps"])
        self.vocab = int(raw["vocab_size"])
        self.tied = bool(raw.get("tie_word_embeddings", False))
        scaling = raw.get("rope_scaling")
        self.rope_factor = 1.0
        if scaling:
            kind = scaling.get("rope_type", scaling.get("type"))
            if kind == "linear":
                self.rope_factor = float(scaling["factor"])
            elif kind != "default":
                raise SystemExit(f"reference: unsupported rope_scaling {kind!r}")


def rms(x: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    scale = 1.0 / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps)
    return gain * (x * scale)


def rotary(x: np.ndarray, positions: np.ndarray, cfg: Config) -> np.ndarray:
    """x is (T, heads, head_dim); rotates pair (j, j + head_dim/2) by position · θ^(-2j/head_dim)."""
    half = cfg.head_dim // 2
    freq = cfg.theta ** (-np.arange(half, dtype=np.float64) * 2.0 / cfg.head_dim)
    phase = np.exp(1j * np.outer(positions / cfg.rope_factor, freq))[:, None, :]  # (T, 1, half)
    z = (x[..., :half] + 1j * x[..., half:]) * phase
    return np.concatenate([z.real, z.imag], axis=-1)


def linear(x: np.ndarray, W: dict, name: str) -> np.ndarray:
    y = np.einsum("tc,oc->to", x, W[name + ".weight"])
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def logits_all(cfg: Config, W: dict, ids: list[int]) -> np.ndarray:
    """(T, vocab) float64 logits for every position."""
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    group = cfg.heads // cfg.kv_heads
    allowed = np.tril(np.ones((T, T), dtype=bool))
    hidden = W["model.embed_tokens.weight"][np.asarray(ids)]
    for layer in range(cfg.layers):
        pre = f"model.layers.{layer}"
        a = rms(hidden, W[f"{pre}.input_layernorm.weight"], cfg.eps)
        q = linear(a, W, f"{pre}.self_attn.q_proj").reshape(T, cfg.heads, cfg.head_dim)
        k = linear(a, W, f"{pre}.self_attn.k_proj").reshape(T, cfg.kv_heads, cfg.head_dim)
        v = linear(a, W, f"{pre}.self_attn.v_proj").reshape(T, cfg.kv_heads, cfg.head_dim)
        q, k = rotary(q, pos, cfg), rotary(k, pos, cfg)
        # Query head h reads key/value head h // group.
        qg = q.reshape(T, cfg.kv_heads, group, cfg.head_dim)
        score = np.einsum("tgrd,sgd->grts", qg, k) / np.sqrt(cfg.head_dim)
        score = np.where(allowed, score, -np.inf)
        score = score - score.max(axis=-1, keepdims=True)
        weight = np.exp(score)
        weight = weight / weight.sum(axis=-1, keepdims=True)
        mixed = np.einsum("grts,sgd->tgrd", weight, v).reshape(T, cfg.heads * cfg.head_dim)
        hidden = hidden + linear(mixed, W, f"{pre}.self_attn.o_proj")
        m = rms(hidden, W[f"{pre}.post_attention_layernorm.weight"], cfg.eps)
        gate = linear(m, W, f"{pre}.mlp.gate_proj")
        up = linear(m, W, f"{pre}.mlp.up_proj")
        silu = gate * (0.5 * (1.0 + np.tanh(0.5 * gate)))   # gate · sigmoid(gate)
        hidden = hidden + linear(silu * up, W, f"{pre}.mlp.down_proj")
    final = rms(hidden, W["model.norm.weight"], cfg.eps)
    if "lm_head.weight" in W:
        head = W["lm_head.weight"]
    elif cfg.tied:
        head = W["model.embed_tokens.weight"]
    else:
        raise SystemExit("reference: no lm_head.weight and tie_word_embeddings is false")
    return final @ head.T


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="float64 reference log-probabilities")
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", help="comma-separated token ids (default: JSON array on stdin)")
    args = ap.parse_args(argv)
    try:
        ids = [int(t) for t in args.tokens.split(",")] if args.tokens else [int(t) for t in json.load(sys.stdin)]
    except (ValueError, TypeError) as e:
        print(f"reference: bad token list: {e}", file=sys.stderr)
        return 2
    if not ids:
        print("reference: no tokens", file=sys.stderr)
        return 2
    with open(os.path.join(args.model_dir, "config.json")) as fh:
        cfg = Config(json.load(fh))
    if any(t < 0 or t >= cfg.vocab for t in ids):
        print("reference: token id outside the vocabulary", file=sys.stderr)
        return 2
    W = read_weights(args.model_dir)
    z = logits_all(cfg, W, ids)
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    best = logp.argmax(axis=-1)
    json.dump({
        "tokens": ids,
        "logprobs": [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))],
        "argmax": [int(b) for b in best],
        "argmax_prob": [float(np.exp(logp[i, b])) for i, b in enumerate(best)],
    }, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
