/// Engine: the CPU inference engine for LLaMA-family models (tokenizer, forward pass, scoring).
public enum Engine {}
