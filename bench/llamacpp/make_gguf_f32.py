#!/usr/bin/env python3
"""Write an F32 GGUF for llama.cpp holding exactly the weights of a wledger HF model directory.

The tensors come from DIR/model.safetensors (F32, F16 or BF16; written out as F32); the
metadata (architecture hyper-parameters, tokenizer vocabulary/merges/special ids, chat
template) is copied from the GGUF that scripts/convert_smollm2.py made the HF directories from,
with general.file_type set to ALL_F32. q/k rows get llama.cpp's rotary permutation back (the
inverse of convert_smollm2.unpermute_rope: within each head HF row j -> row 2j and HF row
head_dim/2 + j -> row 2j + 1).

Usage: make_gguf_f32.py --hf DIR --meta-gguf ORIGINAL.gguf --out OUT.gguf
Needs: numpy, gguf (>= 0.10).
"""
from __future__ import annotations

import argparse
import json
import re
import struct
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGUFValueType

BLOCK = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}
GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
          "lm_head.weight": "output.weight"}
LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def gguf_name(hf: str) -> str:
    if hf in GLOBAL:
        return GLOBAL[hf]
    m = LAYER_RE.match(hf)
    if not m or m.group(2) not in BLOCK:
        raise KeyError(f"unmapped tensor {hf!r}")
    return f"blk.{int(m.group(1))}.{BLOCK[m.group(2)]}.{m.group(3)}"


def permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate_half row order -> llama.cpp interleaved pairs (inverse of unpermute_rope)."""
    head_dim = w.shape[0] // n_head
    return np.ascontiguousarray(w.reshape(n_head, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    out = {}
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        base = 8 + n
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            lo, hi = meta["data_offsets"]
            fh.seek(base + lo)
            buf = fh.read(hi - lo)
            if meta["dtype"] == "F32":
                a = np.frombuffer(buf, "<f4")
            elif meta["dtype"] == "F16":
                a = np.frombuffer(buf, "<f2").astype(np.float32)
            elif meta["dtype"] == "BF16":
                a = (np.frombuffer(buf, "<u2").astype("<u4") << 16).view("<f4")
            else:
                sys.exit(f"make_gguf_f32.py: {path}: unsupported dtype {meta['dtype']}")
            out[name] = a.reshape(meta["shape"]).astype(np.float32)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf", required=True)
    ap.add_argument("--meta-gguf", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.load(open(f"{a.hf}/config.json"))
    reader = GGUFReader(a.meta_gguf)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(a.out, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type", "general.quantization_version"):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tensors = read_safetensors(f"{a.hf}/model.safetensors")
    for hf in sorted(tensors):
        w = tensors[hf]
        if hf.endswith("self_attn.q_proj.weight"):
            w = permute_rope(w, cfg["num_attention_heads"])
        elif hf.endswith("self_attn.k_proj.weight"):
            w = permute_rope(w, cfg["num_key_value_heads"])
        writer.add_tensor(gguf_name(hf), np.ascontiguousarray(w, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {a.out}: {len(tensors)} tensors, F32", file=sys.stderr)


if __name__ == "__main__":
    main()
