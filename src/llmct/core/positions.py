"""Read-out positions derived from the attention mask, never from a hard-coded ``-1``.

A read-out is either a token index into the item's *unpadded* tokens (negative counts from the end)
or a ``(start, end)`` half-open span whose tokens are averaged. ``"last"`` and ``"mean"`` are
shorthands. Because indices are mapped through the attention mask, left- and right-padded batches
read exactly the tokens an unbatched run reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llmct.errors import CaptureError

ReadOut = int | tuple[int, int]
PositionSpec = str | int | Sequence[Sequence[ReadOut]]


def describe_position(position: PositionSpec, mean_from: int = 0) -> str:
    """A short human/manifest description of a position rule."""
    if position == "mean":
        return f"mean(from={mean_from})" if mean_from else "mean"
    if isinstance(position, str | int):
        return str(position)
    return "explicit"


def readouts_for_item(position: PositionSpec, item: int, length: int, mean_from: int) -> list[ReadOut]:
    """Normalise one item's read-outs to non-negative indices / spans in unpadded coordinates."""
    if position == "last":
        return [length - 1]
    if position == "mean":
        if mean_from >= length:
            raise CaptureError(
                f"item {item}: mean_from={mean_from} but the item has only {length} tokens"
            )
        return [(mean_from, length)]
    if isinstance(position, str):
        raise CaptureError(f"unknown position {position!r}; use 'last', 'mean', an int or a list")
    raw = [position] if isinstance(position, int) else list(position[item])
    out: list[ReadOut] = []
    for r in raw:
        if isinstance(r, tuple | list):
            start, end = (int(v) for v in r)
            if not 0 <= start < end <= length:
                raise CaptureError(
                    f"item {item}: span ({start}, {end}) is not inside its {length} tokens"
                )
            out.append((start, end))
        else:
            idx = int(r) + length if int(r) < 0 else int(r)
            if not 0 <= idx < length:
                raise CaptureError(f"item {item}: position {r} is outside its {length} tokens")
            out.append(idx)
    if not out:
        raise CaptureError(f"item {item}: no read-out positions given")
    return out


@dataclass
class BatchReadout:
    """How to reduce a padded batch ``[B, T, D]`` to read-out rows ``[R, D]``.

    ``token_rows`` are flat indices into ``B*T`` of every token needed; ``weights[R, U]`` averages
    them (one-hot for a single token). Gathering first keeps NaNs of padded rows out of the maths.
    """

    token_rows: torch.Tensor  # [U] long
    weights: torch.Tensor  # [R, U] float32
    row_items: list[int]  # batch-local item index of each read-out row

    def reduce(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1])[self.token_rows].float()
        return self.weights @ flat

    def to(self, device) -> BatchReadout:
        return BatchReadout(self.token_rows.to(device), self.weights.to(device), self.row_items)


def batch_readout(attention_mask: torch.Tensor, readouts: list[list[ReadOut]]) -> BatchReadout:
    """Build the gather/average plan for a padded batch from its attention mask."""
    bsz, seq = attention_mask.shape
    rows: list[int] = []
    row_weights: list[dict[int, float]] = []
    row_items: list[int] = []
    for b in range(bsz):
        valid = torch.nonzero(attention_mask[b], as_tuple=False).flatten().tolist()
        for r in readouts[b]:
            toks = [valid[r]] if isinstance(r, int) else valid[r[0] : r[1]]
            row_weights.append({b * seq + t: 1.0 / len(toks) for t in toks})
            row_items.append(b)
            rows.extend(b * seq + t for t in toks)
    unique = sorted(set(rows))
    col = {t: i for i, t in enumerate(unique)}
    weights = torch.zeros(len(row_weights), len(unique), dtype=torch.float32)
    for i, w in enumerate(row_weights):
        for t, v in w.items():
            weights[i, col[t]] = v
    return BatchReadout(torch.tensor(unique, dtype=torch.long), weights, row_items)
