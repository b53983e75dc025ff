"""01 - Extract per-layer activations of the stimulus sets at the prompt's read-out token.

Every stimulus is wrapped in the same prompt (default: the 2-shot emotion-inference prompt) and
the block output, attention output and MLP output of every layer are stored at its final token.
The extraction resumes after an interruption and can be split with --shard i/n; later
experiments read these activations. Besides the activations (gitignored .npz) it writes a
summary per set and a sanity figure of activation norms per layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.runs import (
    SOURCE_COLOURS,
    experiment_main,
    experiment_parser,
    get_activations,
    pyplot,
    run_main,
    start_run,
)

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("extraction_summary.csv", "activation_norms.csv", "activation_norms.png",
           "activation_norms.svg")


@experiment_main
def main(argv=None) -> int:
    args = experiment_parser(__doc__.splitlines()[0],
                             sets=("set_a", "set_b", "set_b_control", "set_c")).parse_args(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:  # a shard: extraction only
        return 0
    sets = np.array([s.set for s in stimuli])
    rows, norms = [], []
    for name in dict.fromkeys(sets):
        mask = sets == name
        tok = ext.n_tokens[mask]
        rows.append({"model": args.model, "prompt": args.prompt, "set": name,
                     "n_items": int(mask.sum()), "n_labels": len({s.label for s, m in
                                                                  zip(stimuli, mask, strict=True) if m}),
                     "tokens_mean": float(tok.mean()), "tokens_min": int(tok.min()),
                     "tokens_max": int(tok.max()), "position": ext.manifest["position"],
                     "dtype": ext.manifest["dtype"],
                     "model_fingerprint": ext.manifest["model_fingerprint"]})
        for source, arr in ext.acts.items():
            norm = np.linalg.norm(arr[mask], axis=-1).mean(axis=0)
            for layer, value in zip(ext.layers, norm, strict=True):
                norms.append({"set": name, "source": source, "layer": layer,
                              "mean_l2_norm": float(value)})
    out.csv("extraction_summary.csv", pd.DataFrame(rows))
    norms = pd.DataFrame(norms)
    out.csv("activation_norms.csv", norms)

    plt = pyplot()
    fig, axes = plt.subplots(1, len(ext.acts), figsize=(4 * len(ext.acts), 3.2), sharex=True)
    for ax, source in zip(np.atleast_1d(axes), ext.acts, strict=True):
        for k, (name, grp) in enumerate(norms[norms.source == source].groupby("set", sort=False)):
            ax.plot(grp.layer, grp.mean_l2_norm, color=SOURCE_COLOURS[source], alpha=1 - 0.2 * k,
                    linestyle=["-", "--", ":", "-."][k % 4], label=name)
        ax.set_title(source)
        ax.set_xlabel("layer")
        ax.set_yscale("log")
    np.atleast_1d(axes)[0].set_ylabel("mean L2 norm at read-out")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{args.model}: activation norms ({args.prompt} prompt)")
    out.figure(fig, "activation_norms")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
