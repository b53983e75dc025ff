"""Architecture adapters: where each model family keeps its blocks, attention, MLP and norms.

One explicit adapter per family. ``attn_out`` / ``mlp_out`` always mean *what the block adds to the
residual stream*: for pre-norm blocks that is the attention / MLP module output; for Gemma2/3
(sandwich norms) it is the output of the post-attention / post-feedforward norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .errors import UnsupportedArchitectureError


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    """``get_submodule`` that names the missing attribute when it fails."""
    module = root
    for part in path.split("."):
        if not hasattr(module, part):
            raise UnsupportedArchitectureError(
                f"{type(root).__name__} has no attribute '{part}' (looking for '{path}')"
            )
        module = getattr(module, part)
    return module


@dataclass(frozen=True)
class ArchAdapter:
    family: str
    model_types: tuple[str, ...]
    blocks: str  # path from the CausalLM to the ModuleList of blocks
    final_norm: str
    attn: str  # path inside a block: the module whose output[0] is the attention contribution
    mlp: str  # path inside a block: the module whose output is the MLP contribution
    attn_post_norm: str | None = None  # sandwich norm applied to attn before the residual add
    mlp_post_norm: str | None = None
    block_kind: str = "sequential"  # "sequential" or "parallel" (GPT-NeoX, GPT-J style)
    logit_softcap_attr: str | None = None  # config attribute of a final logit soft-cap

    def block_list(self, model: nn.Module) -> nn.ModuleList:
        return get_submodule(model, self.blocks)

    def n_layers(self, model: nn.Module) -> int:
        return len(self.block_list(model))

    def attn_out_module(self, block: nn.Module) -> nn.Module:
        """Module whose (first) output is exactly what attention adds to the residual."""
        return get_submodule(block, self.attn_post_norm or self.attn)

    def mlp_out_module(self, block: nn.Module) -> nn.Module:
        return get_submodule(block, self.mlp_post_norm or self.mlp)

    def attention_module(self, block: nn.Module) -> nn.Module:
        """The self-attention module itself (its output[1] is the attention pattern when eager)."""
        return get_submodule(block, self.attn)

    @staticmethod
    def embed(model: nn.Module) -> nn.Module:
        """Token embedding (HF's standard accessor; the first thing a forward runs)."""
        return model.get_input_embeddings()

    @staticmethod
    def unembed(model: nn.Module) -> nn.Module:
        return model.get_output_embeddings()

    def is_parallel(self, model: nn.Module) -> bool:
        if self.block_kind == "parallel":
            return bool(getattr(model.config, "use_parallel_residual", True))
        return False


_LLAMA_LIKE = dict(
    blocks="model.layers",
    final_norm="model.norm",
    attn="self_attn",
    mlp="mlp",
)

ADAPTERS: tuple[ArchAdapter, ...] = (
    ArchAdapter(
        family="llama",
        model_types=("llama", "qwen2", "qwen3", "mistral", "olmo2", "smollm3"),
        **_LLAMA_LIKE,
    ),
    ArchAdapter(
        family="gemma2",
        model_types=("gemma2", "gemma3_text"),
        attn_post_norm="post_attention_layernorm",
        mlp_post_norm="post_feedforward_layernorm",
        logit_softcap_attr="final_logit_softcapping",
        **_LLAMA_LIKE,
    ),
    ArchAdapter(family="phi3", model_types=("phi3",), **_LLAMA_LIKE),
    ArchAdapter(
        family="gpt2",
        model_types=("gpt2",),
        blocks="transformer.h",
        final_norm="transformer.ln_f",
        attn="attn",
        mlp="mlp",
    ),
    ArchAdapter(
        family="gpt_neox",
        model_types=("gpt_neox",),
        blocks="gpt_neox.layers",
        final_norm="gpt_neox.final_layer_norm",
        attn="attention",
        mlp="mlp",
        block_kind="parallel",
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def get_adapter(model: nn.Module) -> ArchAdapter:
    """The adapter for ``model`` (by ``config.model_type``), verified against the real modules."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            blocks = adapter.block_list(model)
            get_submodule(model, adapter.final_norm)
            if model.get_input_embeddings() is None or model.get_output_embeddings() is None:
                raise UnsupportedArchitectureError(
                    f"{type(model).__name__} exposes no input/output embeddings"
                )
            for path in (adapter.attn, adapter.mlp, adapter.attn_post_norm, adapter.mlp_post_norm):
                if path:
                    get_submodule(blocks[0], path)
            return adapter
    raise UnsupportedArchitectureError(
        f"no llmct adapter for model_type={model_type!r} ({type(model).__name__}). "
        f"Supported: {', '.join(supported_model_types())}. Add an ArchAdapter in llmct/arch.py "
        "naming its blocks, attention, MLP, final norm and unembedding."
    )


def head_dim(config) -> int:
    """Attention head size from the config (explicit ``head_dim`` wins over hidden/heads)."""
    explicit = getattr(config, "head_dim", None)
    if explicit:
        return int(explicit)
    return int(config.hidden_size // config.num_attention_heads)


def describe(model: nn.Module) -> dict:
    """The layer map printed by ``llmct layers``: what lives where, and the attention geometry."""
    adapter = get_adapter(model)
    cfg = model.config
    block0 = adapter.block_list(model)[0]
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    return {
        "model_type": cfg.model_type,
        "family": adapter.family,
        "n_layers": adapter.n_layers(model),
        "d_model": int(cfg.hidden_size),
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "head_dim": head_dim(cfg),
        "block_kind": "parallel" if adapter.is_parallel(model) else "sequential",
        "blocks": f"{adapter.blocks}[0..{adapter.n_layers(model) - 1}] ({type(block0).__name__})",
        "embed": _module_name(model, adapter.embed(model)),
        "attn_out": f"{adapter.blocks}[i].{adapter.attn_post_norm or adapter.attn}",
        "mlp_out": f"{adapter.blocks}[i].{adapter.mlp_post_norm or adapter.mlp}",
        "final_norm": adapter.final_norm,
        "unembed": _module_name(model, adapter.unembed(model)),
        "logit_softcap": getattr(cfg, adapter.logit_softcap_attr, None)
        if adapter.logit_softcap_attr
        else None,
    }


def _module_name(root: nn.Module, module: nn.Module) -> str:
    return next((n for n, m in root.named_modules() if m is module), type(module).__name__)
