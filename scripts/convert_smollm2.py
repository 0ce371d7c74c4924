#!/usr/bin/env python3
"""Convert the SmolLM2-135M-Instruct GGUF (llama.cpp layout, Q4_1/Q8_0/F32)
into Hugging Face layout directories with safetensors weights in F32, F16 and
BF16.

Usage:
    convert_smollm2.py --gguf PATH --out DIR [--dtypes f32,f16,bf16]

Produces DIR/<dtype>/{model.safetensors, config.json, tokenizer.json,
tokenizer_config.json, generation_config.json}. Every file is written to a
temporary name and renamed into place, and the output is byte-identical on
re-runs with the same input.

Needs: numpy, gguf (>= 0.10, for gguf.quants.dequantize).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from collections import OrderedDict

import numpy as np

try:
    import gguf
    from gguf import GGUFReader
    from gguf.quants import dequantize
except ImportError as exc:  # pragma: no cover
    sys.exit(f"convert_smollm2.py: needs the 'gguf' package ({exc})")


# ---------------------------------------------------------------------------
# GGUF metadata helpers
# ---------------------------------------------------------------------------

def field_value(reader: GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def required(reader: GGUFReader, key: str):
    value = field_value(reader, key)
    if value is None:
        sys.exit(f"convert_smollm2.py: GGUF lacks required metadata key {key!r}")
    return value


def f32_to_py(value: float) -> float:
    """Shortest decimal that round-trips the float32 (9.99999974e-06 -> 1e-05)."""
    return float(str(np.float32(value)))


def int_or_float(value: float):
    return int(value) if float(value).is_integer() else value


# ---------------------------------------------------------------------------
# Tensor name mapping and layout fixes
# ---------------------------------------------------------------------------

_BLOCK_MAP = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}

_GLOBAL_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_MAP:
        return _GLOBAL_MAP[gguf_name]
    m = _BLOCK_RE.match(gguf_name)
    if m and m.group(2) in _BLOCK_MAP:
        return f"model.layers.{int(m.group(1))}.{_BLOCK_MAP[m.group(2)]}.{m.group(3)}"
    raise KeyError(f"unmapped GGUF tensor {gguf_name!r}")


def unpermute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved pairs -> rotate_half halves).

    Within each head, llama.cpp row 2j is HF row j and llama.cpp row 2j+1 is
    HF row head_dim/2 + j.
    """
    out_dim = w.shape[0]
    head_dim = out_dim // n_head
    if head_dim * n_head != out_dim or head_dim % 2:
        raise ValueError(f"cannot un-permute shape {w.shape} with {n_head} heads")
    return np.ascontiguousarray(
        w.reshape(n_head, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def load_tensors(reader: GGUFReader, n_head: int, n_head_kv: int):
    """Return (OrderedDict hf_name -> float32 array, {qtype name: count})."""
    tensors: dict[str, np.ndarray] = {}
    qtypes: dict[str, int] = {}
    for t in reader.tensors:
        qtype = gguf.GGMLQuantizationType(t.tensor_type)
        qtypes[qtype.name] = qtypes.get(qtype.name, 0) + 1
        # GGUF lists dims fastest-first (ne0 = input features); numpy / HF
        # order is the reverse, so a Linear weight becomes (out, in).
        np_shape = tuple(int(d) for d in reversed(list(t.shape)))
        w = np.asarray(dequantize(np.asarray(t.data), qtype), dtype=np.float32)
        if w.size != int(np.prod(np_shape)):
            raise ValueError(f"{t.name}: {w.size} values, expected shape {np_shape}")
        w = np.ascontiguousarray(w.reshape(np_shape))
        name = hf_name(t.name)
        if name.endswith("self_attn.q_proj.weight"):
            w = unpermute_rope(w, n_head)
        elif name.endswith("self_attn.k_proj.weight"):
            w = unpermute_rope(w, n_head_kv)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{t.name}: non-finite values after dequantization")
        if name in tensors:
            raise ValueError(f"duplicate tensor {name}")
        tensors[name] = w
    return OrderedDict(sorted(tensors.items())), dict(sorted(qtypes.items()))


# ---------------------------------------------------------------------------
# dtype conversion and safetensors writing
# ---------------------------------------------------------------------------

def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round-to-nearest-even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():  # keep sign, force a quiet NaN
        out[nan] = ((bits[nan] >> 16).astype(np.uint16) & 0x8000) | 0x7FC0
    return out


def convert(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "F32":
        return np.ascontiguousarray(x, dtype="<f4")
    if dtype == "F16":
        with np.errstate(over="raise"):
            y = x.astype("<f2")  # IEEE round-to-nearest-even
        if not np.all(np.isfinite(y)):
            raise ValueError("value out of float16 range")
        return y
    if dtype == "BF16":
        return to_bf16_bits(x).astype("<u2")
    raise ValueError(dtype)


def write_safetensors(path: str, tensors: "OrderedDict[str, np.ndarray]", dtype: str) -> None:
    names = sorted(tensors)
    arrays = [convert(tensors[n], dtype) for n in names]
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, arr in zip(names, arrays):
        header[name] = {
            "dtype": dtype,
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    blob += b" " * ((-(8 + len(blob))) % 8)  # pad so data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for arr in arrays:
            f.write(arr.tobytes(order="C"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# config / tokenizer files
# ---------------------------------------------------------------------------

def build_config(reader: GGUFReader, torch_dtype: str, has_lm_head: bool) -> dict:
    arch = required(reader, "general.architecture")
    if arch != "llama":
        sys.exit(f"convert_smollm2.py: expected a llama GGUF, got {arch!r}")
    n_head = int(required(reader, "llama.attention.head_count"))
    hidden = int(required(reader, "llama.embedding_length"))
    tokens = required(reader, "tokenizer.ggml.tokens")
    vocab = int(field_value(reader, "llama.vocab_size", len(tokens)))
    head_dim = int(field_value(reader, "llama.rope.dimension_count", hidden // n_head))
    bos = field_value(reader, "tokenizer.ggml.bos_token_id")
    eos = field_value(reader, "tokenizer.ggml.eos_token_id")
    pad = field_value(reader, "tokenizer.ggml.padding_token_id")
    return OrderedDict([
        ("architectures", ["LlamaForCausalLM"]),
        ("attention_bias", False),
        ("attention_dropout", 0.0),
        ("bos_token_id", None if bos is None else int(bos)),
        ("eos_token_id", None if eos is None else int(eos)),
        ("head_dim", head_dim),
        ("hidden_act", "silu"),
        ("hidden_size", hidden),
        ("initializer_range", 0.041666666666666664),
        ("intermediate_size", int(required(reader, "llama.feed_forward_length"))),
        ("max_position_embeddings", int(required(reader, "llama.context_length"))),
        ("mlp_bias", False),
        ("model_type", "llama"),
        ("num_attention_heads", n_head),
        ("num_hidden_layers", int(required(reader, "llama.block_count"))),
        ("num_key_value_heads", int(field_value(reader, "llama.attention.head_count_kv", n_head))),
        ("pad_token_id", None if pad is None else int(pad)),
        ("pretraining_tp", 1),
        ("rms_norm_eps", f32_to_py(required(reader, "llama.attention.layer_norm_rms_epsilon"))),
        ("rope_scaling", None),
        ("rope_theta", int_or_float(f32_to_py(field_value(reader, "llama.rope.freq_base", 10000.0)))),
        ("tie_word_embeddings", not has_lm_head),
        ("torch_dtype", torch_dtype),
        ("use_cache", True),
        ("vocab_size", vocab),
    ])


def special_token_ids(token_types) -> list[int]:
    # llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined,
    # 5 unused, 6 byte.  Control and user-defined tokens are "added tokens".
    return [i for i, t in enumerate(token_types) if int(t) in (3, 4)]


def build_tokenizer(reader: GGUFReader) -> tuple[dict, list[int]]:
    model = required(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        sys.exit(f"convert_smollm2.py: expected a byte-level BPE (gpt2) tokenizer, got {model!r}")
    tokens = list(required(reader, "tokenizer.ggml.tokens"))
    merges = list(required(reader, "tokenizer.ggml.merges"))
    types = list(required(reader, "tokenizer.ggml.token_type"))
    if len(set(tokens)) != len(tokens):
        sys.exit("convert_smollm2.py: duplicate token strings in GGUF vocabulary")
    specials = special_token_ids(types)
    added = [
        OrderedDict([
            ("id", i),
            ("content", tokens[i]),
            ("single_word", False),
            ("lstrip", False),
            ("rstrip", False),
            ("normalized", False),
            ("special", int(types[i]) == 3),
        ])
        for i in specials
    ]
    byte_level = lambda **kw: OrderedDict(  # noqa: E731
        [("type", "ByteLevel"), ("add_prefix_space", kw["aps"]),
         ("trim_offsets", kw["trim"]), ("use_regex", True)])
    tok = OrderedDict([
        ("version", "1.0"),
        ("truncation", None),
        ("padding", None),
        ("added_tokens", added),
        ("normalizer", None),
        ("pre_tokenizer", OrderedDict([
            ("type", "Sequence"),
            ("pretokenizers", [
                OrderedDict([("type", "Digits"), ("individual_digits", True)]),
                byte_level(aps=False, trim=True),
            ]),
        ])),
        ("post_processor", byte_level(aps=True, trim=False)),
        ("decoder", byte_level(aps=True, trim=True)),
        ("model", OrderedDict([
            ("type", "BPE"),
            ("dropout", None),
            ("unk_token", None),
            ("continuing_subword_prefix", None),
            ("end_of_word_suffix", None),
            ("fuse_unk", False),
            ("byte_fallback", False),
            ("vocab", OrderedDict((t, i) for i, t in enumerate(tokens))),
            ("merges", merges),
        ])),
    ])
    return tok, specials


def build_tokenizer_config(reader: GGUFReader, tok: dict, specials: list[int]) -> dict:
    tokens = required(reader, "tokenizer.ggml.tokens")

    def name(key):
        idx = field_value(reader, key)
        return None if idx is None else tokens[int(idx)]

    decoder = OrderedDict(
        (str(a["id"]), OrderedDict((k, v) for k, v in a.items() if k != "id"))
        for a in tok["added_tokens"]
    )
    bos, eos = name("tokenizer.ggml.bos_token_id"), name("tokenizer.ggml.eos_token_id")
    cfg = OrderedDict([
        ("add_bos_token", bool(field_value(reader, "tokenizer.ggml.add_bos_token", False))),
        ("add_eos_token", bool(field_value(reader, "tokenizer.ggml.add_eos_token", False))),
        ("add_prefix_space", bool(field_value(reader, "tokenizer.ggml.add_space_prefix", False))),
        ("added_tokens_decoder", decoder),
        ("additional_special_tokens", [t for t in (bos, eos) if t is not None]),
        ("bos_token", bos),
    ])
    template = field_value(reader, "tokenizer.chat_template")
    if template is not None:
        cfg["chat_template"] = template
    cfg.update([
        ("clean_up_tokenization_spaces", False),
        ("eos_token", eos),
        ("model_max_length", int(required(reader, "llama.context_length"))),
        ("pad_token", name("tokenizer.ggml.padding_token_id")),
        ("tokenizer_class", "GPT2Tokenizer"),
        ("unk_token", name("tokenizer.ggml.unknown_token_id")),
        ("vocab_size", len(tokens)),
    ])
    return cfg


def build_generation_config(config: dict) -> dict:
    return OrderedDict([
        ("_from_model_config", True),
        ("bos_token_id", config["bos_token_id"]),
        ("eos_token_id", config["eos_token_id"]),
        ("pad_token_id", config["pad_token_id"]),
    ])


# ---------------------------------------------------------------------------

DTYPES = {"f32": ("F32", "float32"), "f16": ("F16", "float16"), "bf16": ("BF16", "bfloat16")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", required=True, help="input .gguf file")
    ap.add_argument("--out", required=True, help="output root (gets f32/, f16/, bf16/)")
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    args = ap.parse_args(argv)

    wanted = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in wanted:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r} (choose from {', '.join(DTYPES)})")

    reader = GGUFReader(args.gguf)
    n_head = int(required(reader, "llama.attention.head_count"))
    n_head_kv = int(field_value(reader, "llama.attention.head_count_kv", n_head))
    tensors, qtypes = load_tensors(reader, n_head, n_head_kv)
    has_lm_head = "lm_head.weight" in tensors
    n_params = sum(int(t.size) for t in tensors.values())

    tok, specials = build_tokenizer(reader)
    types = required(reader, "tokenizer.ggml.token_type")
    print(f"gguf: {os.path.basename(args.gguf)}: {len(tensors)} tensors, {n_params:,} params, "
          f"types {qtypes}")
    print(f"gguf: rope_theta={f32_to_py(field_value(reader, 'llama.rope.freq_base', 10000.0))} "
          f"rms_eps={f32_to_py(required(reader, 'llama.attention.layer_norm_rms_epsilon'))} "
          f"lm_head={'present' if has_lm_head else 'tied'}")
    print(f"tokenizer: {len(tok['model']['vocab'])} tokens, {len(tok['model']['merges'])} merges, "
          f"added ids {specials[0] if specials else '-'}..{specials[-1] if specials else '-'} "
          f"(token types {sorted(set(int(types[i]) for i in specials))})")

    os.makedirs(args.out, exist_ok=True)
    for d in wanted:
        st_dtype, torch_dtype = DTYPES[d]
        out = os.path.join(args.out, d)
        os.makedirs(out, exist_ok=True)
        config = build_config(reader, torch_dtype, has_lm_head)
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, st_dtype)
        write_json(os.path.join(out, "config.json"), config)
        write_json(os.path.join(out, "tokenizer.json"), tok)
        write_json(os.path.join(out, "tokenizer_config.json"),
                   build_tokenizer_config(reader, tok, specials))
        write_json(os.path.join(out, "generation_config.json"), build_generation_config(config))
        size = os.path.getsize(os.path.join(out, "model.safetensors"))
        print(f"wrote {out}/ (model.safetensors {size:,} bytes, {st_dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
