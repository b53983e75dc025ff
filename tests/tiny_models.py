"""Tiny random-initialised models, one per architecture adapter, built in-process (no download)."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    Qwen2Config,
)

VOCAB = 128
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

CONFIGS = {
    "llama": lambda: LlamaConfig(**COMMON),
    "qwen2": lambda: Qwen2Config(**COMMON),
    "mistral": lambda: MistralConfig(**COMMON, sliding_window=None),
    "gemma2": lambda: Gemma2Config(**COMMON, head_dim=16, sliding_window=256,
                                   query_pre_attn_scalar=16, final_logit_softcapping=30.0,
                                   attn_logit_softcapping=50.0),
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
