"""Experiment 00 — the CT scan of the rollercoaster conversation (seed 000, "Activation Lab").

Scans the scenario once per read-out position rule, because the seed's early-layer finding
depends on it: the original read every snapshot at the same template token. Then scans the
population of conversations (stimuli/scenarios/population/, issue #16) with the same model and
pools every finding with the conversation as the unit.

    uv run python experiments/00_ct_scan/run.py [--scenario YAML] [--model ID] [--positions ...]
        [--population DIR|none]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from llmct.core.models import load_model, model_slug
from llmct.runs import OneLineParser, experiment_main, run_main
from llmct.scan.population import run_population
from llmct.scan.run import run_scan
from llmct.scan.scenario import load_scenario

HERE = Path(__file__).parent
DEFAULT_SCENARIO = HERE.parents[1] / "stimuli" / "scenarios" / "rollercoaster.yaml"
DEFAULT_POPULATION = HERE.parents[1] / "stimuli" / "scenarios" / "population"
POSITIONS = ("message_end", "template_end", "mean")


@experiment_main
def main(argv=None) -> Path:
    ap = OneLineParser(description=__doc__)
    ap.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    ap.add_argument("--model", default=None, help="HF id or local dir (default: the scenario's)")
    ap.add_argument("--positions", nargs="+", default=list(POSITIONS), choices=POSITIONS)
    ap.add_argument("--out", default=None, help="default: outputs/<model-slug>/")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--population", default=str(DEFAULT_POPULATION),
                    help="folder of conversations scanned as a population into "
                    "<out>/population ('none' to skip)")
    args = ap.parse_args(argv)

    base = load_scenario(args.scenario)
    name = args.model or base.model.id
    root = Path(args.out) if args.out else HERE / "outputs" / model_slug(name)
    model_tok = load_model(name, dtype=base.model.dtype, device=base.model.device)
    rows, quantities = [], []
    for position in args.positions:
        scenario = base.model_copy(deep=True)
        scenario.capture.position = position
        scenario._lines = base._lines
        out = run_scan(scenario, model_name=name, out=root / position, overwrite=args.overwrite,
                       explicit_out=bool(args.out), model_and_tokenizer=model_tok,
                       save_library_to=True)
        for f in json.loads((out / "findings.json").read_text()):
            rows.append({"position": position, "folder": out.name,
                         **{k: v for k, v in f.items() if k != "quantities"}})
            for q, v in (f.get("quantities") or {}).items():
                quantities.append({"position": position, "id": f["id"], "quantity": q, **v,
                                   "ci_unit": f["ci_unit"]})
        print(f"{position}: {out}")
    table = pd.DataFrame(rows)
    summary = root / "findings_by_position.csv"
    if summary.exists() and not args.overwrite:
        summary = summary.with_name(f"findings_by_position-{pd.Timestamp.utcnow():%Y%m%d-%H%M%S}.csv")
    table.to_csv(summary, index=False)
    # every quantity behind each verdict (both renderings of the gap, both fading slopes, ...)
    pd.DataFrame(quantities).to_csv(summary.with_name(summary.name.replace(
        "findings_by_position", "findings_quantities_by_position")), index=False)
    print(table[["position", "id", "value", "ci_low", "ci_high", "ci_unit", "verdict"]]
          .to_string(index=False))
    if args.population != "none":
        t = time.perf_counter()
        pop = run_population([args.population], model_name=name, out=root / "population",
                             overwrite=args.overwrite, explicit_out=bool(args.out),
                             model_and_tokenizer=model_tok)
        print(f"population: {pop} ({time.perf_counter() - t:.0f} s)")
    return root


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
