"""04_zeroshot headline: probes on activations under the zero-shot prompt
(contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, table, value

INPUTS = ("01_extract",)
PAIRS = {"set_b": ("set_b", "set_b", "Set B"), "a_to_b": ("set_a", "set_b", "A->B")}


def claims(folder: Path, source: str = "hidden_out") -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (04's ``zeroshot_summary.csv``)."""
    s = table(folder, "zeroshot_summary.csv")

    def get(col, prompt, train, test):
        return value(s, col, prompt=prompt, train_set=train, test_set=test, source=source)

    out = []
    for tag, (train, test, name) in PAIRS.items():
        few = get("max_auroc", "fewshot", train, test) if "fewshot" in set(s.prompt) else None
        out.append(Claim(f"zeroshot_{tag}_auroc", f"zero-shot prompt: {name} max AUROC (h)",
                         get("max_auroc", "zeroshot", train, test),
                         control="" if few is None else "few-shot prompt, same folds",
                         control_value=float("nan") if few is None else few))
    return out, []
