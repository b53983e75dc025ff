"""RSA with a 10,000-shuffle permutation test: llmct's vectorised Mantel test vs the textbook loop
(re-rank and ``scipy.stats.spearmanr`` once per shuffle), on 20 x 20 cosine matrices like
experiment 10's, interleaved in one run. Both must give the same r and the same null (same
permutations); the goal is "well under a few seconds" for the vectorised one.

    uv run --no-sync python benchmarks/bench_rsa.py [--n-perm 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, summary, write_result  # noqa: E402
from llmct import geometry as geo  # noqa: E402


def loop_rsa(A, B, n_perm: int, seed: int) -> tuple[float, np.ndarray]:
    """One spearmanr per relabelling of B's items: what a straightforward script does."""
    iu = np.triu_indices(A.shape[0], 1)
    r = stats.spearmanr(A[iu], B[iu]).statistic
    perms = geo.random_permutations(A.shape[0], n_perm, seed)
    null = np.array([stats.spearmanr(A[iu], B[np.ix_(p, p)][iu]).statistic for p in perms])
    return float(r), null


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-items", type=int, default=20)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--n-perm", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n_items, args.dim))
    Y = X + 2.0 * rng.standard_normal(X.shape)  # related, imperfectly
    A, B = geo.cosine_matrix(X), geo.cosine_matrix(Y)
    fast = geo.rsa(A, B, n_perm=args.n_perm, seed=0)
    r_loop, null_loop = loop_rsa(A, B, args.n_perm, 0)
    agree = float(np.max(np.abs(fast.null - null_loop)))
    times = interleave(args.rounds,
                       vectorised=lambda: geo.rsa(A, B, n_perm=args.n_perm, seed=0),
                       loop=lambda: loop_rsa(A, B, args.n_perm, 0))
    med = {k: summary(v)["median_s"] for k, v in times.items()}
    result = {"n_items": args.n_items, "n_perm": args.n_perm, "r": fast.r, "p": fast.p,
              "max_abs_r_difference": abs(fast.r - r_loop), "max_abs_null_difference": agree,
              "timings": {k: summary(v) for k, v in times.items()},
              "speedup": med["loop"] / med["vectorised"]}
    path = write_result("bench_rsa", result)
    print(f"r = {fast.r:.4f} (loop {r_loop:.4f}), p = {fast.p:.4g}; null max |diff| {agree:.2e}")
    print(f"vectorised {med['vectorised']:.3f} s vs loop {med['loop']:.3f} s: "
          f"{result['speedup']:.0f}x faster")
    print(f"written {path}")


if __name__ == "__main__":
    main()
