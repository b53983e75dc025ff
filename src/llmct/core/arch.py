"""Architecture adapters: where each model family keeps its blocks, attention, MLP and norms.

One explicit adapter per family. ``attn_out`` / ``mlp_out`` always mean *what the block adds to the
residual stream*: for pre-norm blocks that is the attention / MLP module output; for Gemma2/3
(sandwich norms) and OLMo-2 (post-sublayer norms, arXiv:2501.00656) it is the output of the norm
applied to the attention / MLP output. The same attribute name means different things across
families (``post_attention_layernorm`` is Llama's pre-MLP norm but OLMo-2's post-attention norm),
so every adapter declares the norms its blocks must have, :func:`get_adapter` refuses a block whose
norms differ, and :func:`verify_adapter` checks ``hidden_out == hidden_in + attn_out + mlp_out``
against the module's actual forward (run for every family on tiny models in the tests).

Sites are declared here once, with the field's aliases (TransformerLens names): ``resid_pre`` =
``hidden_in`` (the residual entering block *l*), ``resid_post`` = ``hidden_out`` (leaving it),
``attn_out``, ``mlp_out``. :meth:`ArchAdapter.site` maps a site to the module and hook kind that
capture, interventions, steering and the monitor all use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, cast

import torch.nn as nn

from llmct.errors import CaptureError, UnsupportedArchitectureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: Canonical site names, in the order capture reports them.
SITES = ("hidden_in", "hidden_out", "attn_out", "mlp_out")
#: Field names accepted as aliases of the canonical sites.
SITE_ALIASES = {"resid_pre": "hidden_in", "resid_post": "hidden_out"}


def canonical_site(name: str) -> str:
    """The canonical name of a site (``resid_pre`` -> ``hidden_in``); CaptureError if unknown."""
    site = SITE_ALIASES.get(name, name)
    if site not in SITES:
        raise CaptureError(
            f"unknown site {name!r}; choose from {SITES} (aliases: "
            f"{', '.join(f'{k}={v}' for k, v in SITE_ALIASES.items())})"
        )
    return site


@dataclass(frozen=True)
class SitePoint:
    """Where a site lives: ``kind="pre"`` is the input of ``module`` (a block's ``hidden_in``),
    ``kind="out"`` the first tensor of its output. ``path`` is for messages and ``describe``."""

    module: nn.Module
    kind: str
    path: str


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
    # the norm modules a block must have as direct children (any other layout is refused)
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")

    def block_list(self, model: PreTrainedModel) -> nn.ModuleList:
        return cast(nn.ModuleList, get_submodule(model, self.blocks))

    def n_layers(self, model: PreTrainedModel) -> int:
        return len(self.block_list(model))

    def site(self, model: PreTrainedModel, site: str, layer: int) -> SitePoint:
        """The module and hook kind of ``site`` (or an alias) at block ``layer`` (>= 0)."""
        name = canonical_site(site)
        blocks = self.block_list(model)
        if not 0 <= layer < len(blocks):
            raise CaptureError(f"layer {layer} is out of range for a model with {len(blocks)} layers")
        block = blocks[layer]
        prefix = f"{self.blocks}[{layer}]"
        if name == "hidden_in":
            return SitePoint(block, "pre", prefix)
        if name == "hidden_out":
            return SitePoint(block, "out", prefix)
        path = (self.attn_post_norm or self.attn) if name == "attn_out" else (
            self.mlp_post_norm or self.mlp)
        return SitePoint(get_submodule(block, path), "out", f"{prefix}.{path}")

    def check_block(self, block: nn.Module, model_type: str | None) -> None:
        """Refuse a block whose norm modules are not exactly the ones this adapter maps."""
        found = {n for n, m in block.named_children() if "Norm" in type(m).__name__}
        if found != set(self.norms):
            extra, missing = sorted(found - set(self.norms)), sorted(set(self.norms) - found)
            raise UnsupportedArchitectureError(
                f"model_type={model_type!r}: block {type(block).__name__} does not have the "
                f"layout of the {self.family!r} adapter (unexpected norms {extra}, missing "
                f"{missing}); its residual contributions would be mis-read. Add an ArchAdapter "
                "for it and check it with llmct.core.arch.verify_adapter"
            )

    def attention_module(self, block: nn.Module) -> nn.Module:
        """The self-attention module itself (its output[1] is the attention pattern when eager)."""
        return get_submodule(block, self.attn)

    @staticmethod
    def embed(model: PreTrainedModel) -> nn.Embedding:
        """Token embedding (HF's standard accessor; the first thing a forward runs)."""
        return cast(nn.Embedding, model.get_input_embeddings())

    @staticmethod
    def unembed(model: PreTrainedModel) -> nn.Linear:
        return model.get_output_embeddings()

    def is_parallel(self, model: PreTrainedModel) -> bool:
        if self.block_kind == "parallel":
            return bool(getattr(model.config, "use_parallel_residual", True))
        return False


class _BlockPaths(TypedDict):
    blocks: str
    final_norm: str
    attn: str
    mlp: str


_LLAMA_LIKE = _BlockPaths(
    blocks="model.layers",
    final_norm="model.norm",
    attn="self_attn",
    mlp="mlp",
)

#: Every model type listed here is verified in tests/test_faults.py (residual identity on a tiny
#: model with perturbed norms); a model type not listed is refused.
ADAPTERS: tuple[ArchAdapter, ...] = (
    ArchAdapter(
        family="llama",
        model_types=("llama", "qwen2", "qwen3", "mistral", "smollm3"),
        **_LLAMA_LIKE,
    ),
    ArchAdapter(
        family="gemma2",
        model_types=("gemma2", "gemma3_text"),
        attn_post_norm="post_attention_layernorm",
        mlp_post_norm="post_feedforward_layernorm",
        logit_softcap_attr="final_logit_softcapping",
        norms=("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
               "post_feedforward_layernorm"),
        **_LLAMA_LIKE,
    ),
    # OLMo-2: no pre-norms; the norms are applied to the sublayer outputs before the add
    ArchAdapter(
        family="olmo2",
        model_types=("olmo2",),
        attn_post_norm="post_attention_layernorm",
        mlp_post_norm="post_feedforward_layernorm",
        norms=("post_attention_layernorm", "post_feedforward_layernorm"),
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
        norms=("ln_1", "ln_2"),
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


def get_adapter(model: PreTrainedModel) -> ArchAdapter:
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
            for block in blocks:
                adapter.check_block(block, model_type)
            return adapter
    raise UnsupportedArchitectureError(
        f"no llmct adapter for model_type={model_type!r} ({type(model).__name__}). "
        f"Supported: {', '.join(supported_model_types())}. Add an ArchAdapter in llmct/arch.py "
        "naming its blocks, attention, MLP, final norm and unembedding."
    )


def verify_adapter(model: PreTrainedModel, token_ids: list[int] | None = None,
                   rtol: float = 2e-5) -> dict:
    """Check the adapter against the module's actual forward on one short sequence.

    At every position and layer: ``hidden_out == hidden_in + attn_out + mlp_out`` (what the
    adapter calls the attention and MLP contributions is exactly what the block adds), and
    ``hidden_in[0]`` / ``hidden_out[l < L-1]`` equal Hugging Face's ``output_hidden_states``.
    Tolerance: ``rtol`` x the largest activation (at least 1). Returns ``{"max_abs_error",
    "max_abs_value", "family"}``; raises UnsupportedArchitectureError when a check fails.
    """
    import torch

    from llmct.core.capture import capture

    adapter = get_adapter(model)
    vocab = cast(nn.Embedding, model.get_input_embeddings()).num_embeddings
    ids = token_ids or [(7 * k + 3) % vocab for k in range(8)]
    cap = capture(model, None, [ids], position=[list(range(len(ids)))])
    err = float(abs(cap["hidden_out"] - (cap["hidden_in"] + cap["attn_out"] + cap["mlp_out"])).max())
    with torch.inference_mode():
        device = cast(nn.Embedding, model.get_input_embeddings()).weight.device
        hs = model(torch.tensor([ids], device=device), output_hidden_states=True,
                   use_cache=False).hidden_states
    ref = [h[0].float().cpu().numpy() for h in hs]
    n = adapter.n_layers(model)
    err = max(err, float(abs(cap["hidden_in"][:, 0] - ref[0]).max()))
    for layer in range(n - 1):
        err = max(err, float(abs(cap["hidden_out"][:, layer] - ref[layer + 1]).max()))
    value = float(abs(cap["hidden_out"]).max())
    if err > rtol * max(1.0, value):
        raise UnsupportedArchitectureError(
            f"adapter {adapter.family!r} does not match {type(model).__name__}'s forward: "
            f"residual identity off by {err:.3g} (largest activation {value:.3g})"
        )
    return {"max_abs_error": err, "max_abs_value": value, "family": adapter.family}


def head_dim(config) -> int:
    """Attention head size from the config (explicit ``head_dim`` wins over hidden/heads)."""
    explicit = getattr(config, "head_dim", None)
    if explicit:
        return int(explicit)
    return int(config.hidden_size // config.num_attention_heads)


def describe(model: PreTrainedModel) -> dict:
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
        "norms": list(adapter.norms),
        "attn_out": adapter.site(model, "attn_out", 0).path.replace("[0]", "[i]"),
        "mlp_out": adapter.site(model, "mlp_out", 0).path.replace("[0]", "[i]"),
        "final_norm": adapter.final_norm,
        "unembed": _module_name(model, adapter.unembed(model)),
        "logit_softcap": getattr(cfg, adapter.logit_softcap_attr, None)
        if adapter.logit_softcap_attr
        else None,
    }


def _module_name(root: nn.Module, module: nn.Module) -> str:
    return next((n for n, m in root.named_modules() if m is module), type(module).__name__)
