"""Per-layer linear probes: cross-validated macro AUROC, transfer, controls, and peak layers.

The protocol of the emotion-circuits paper: ``StratifiedKFold(5, shuffle=True, random_state=42)``,
a ``StandardScaler`` fitted on the training fold, ``LogisticRegression(C=1, L2, lbfgs)``, and the
macro one-vs-rest AUROC of the predicted probabilities on the held-out fold, averaged over folds.
Controls run on the *same folds*: shuffled labels, and a text-only TF-IDF baseline (the direct test
of the keyword-spotting hypothesis). Two-class problems are the same code (the macro OvR AUROC of
two classes is the binary AUROC); grouped folds keep e.g. a vignette and its matched control on
the same side of every split.

Speed: the sweeps pin BLAS to one thread. For these small matrices OpenBLAS's threading is pure
overhead, and on a shared 2-core machine it made each fit ~20-100x slower
(benchmarks/bench_probes.py). (Fitting in the row space of the training fold, exact by the
representer theorem when n < d, was tried and measured slower: the SVD costs more than it saves.)
The sweeps' (source, layer) cells run on ``n_jobs`` joblib (loky) worker processes, each with
its BLAS pinned to one thread; ``n_jobs`` None takes the environment variable ``LLMCT_JOBS``
(default ``min(os.cpu_count(), 8)``; 1 = one after the other in this process, joblib unused).
The cells are independent and gathered in order, so any ``n_jobs`` gives exactly the same
numbers and rows.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from llmct.analysis.stats import auroc, macro_ovr_auroc
from llmct.errors import UsageError

N_SPLITS = 5
SEED = 42
PEAK_TOL = 0.005
MAX_ITER = 10_000

JOBS_ENV = "LLMCT_JOBS"
MAX_DEFAULT_JOBS = 8
MIN_PARALLEL_TASKS = 4  # fewer cells run in this process: starting workers would cost more

Folds = list[tuple[np.ndarray, np.ndarray]]


def single_threaded_blas(fn):
    """Run ``fn`` with BLAS limited to one thread (many small fits: threads only add overhead)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if getattr(_BLAS, "pinned", False):  # already inside a pinned call: no second ~4 ms setup
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            _BLAS.pinned = True
            try:
                return fn(*args, **kwargs)
            finally:
                _BLAS.pinned = False

    return wrapper


_BLAS = threading.local()


def jobs_from_env(value: str | None) -> int:
    """The number of worker processes an ``LLMCT_JOBS`` value asks for (``value`` None or blank:
    unset, ``min(os.cpu_count(), 8)``).

    Raises:
        UsageError: the value is not a whole number >= 1 (one line naming ``LLMCT_JOBS``).
    """
    if value is None or not value.strip():
        return min(os.cpu_count() or 1, MAX_DEFAULT_JOBS)
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"{JOBS_ENV}={value!r}: must be a whole number >= 1 (worker processes "
                         "of the probe sweeps; 1 = sequential)")
    return n


@functools.cache
def default_jobs() -> int:
    """The default ``n_jobs`` of the sweeps: ``LLMCT_JOBS``, read once (see :func:`jobs_from_env`,
    which raises :class:`~llmct.errors.UsageError` on a bad value)."""
    return jobs_from_env(os.environ.get(JOBS_ENV))


def resolve_jobs(n_jobs: int | None) -> int:
    """``n_jobs`` checked (None: :func:`default_jobs`).

    Raises:
        UsageError: ``n_jobs`` is not a whole number >= 1, or ``LLMCT_JOBS`` is invalid.
    """
    if n_jobs is None:
        return default_jobs()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise UsageError(f"n_jobs={n_jobs!r}: must be a whole number >= 1 (1 = sequential; "
                         f"None = {JOBS_ENV})")
    return int(n_jobs)


def _run_cells(fn, cells: list[tuple], n_jobs: int | None) -> list:
    """``[fn(*cell) for cell in cells]``, in order: in this process for ``n_jobs`` 1 or fewer than
    :data:`MIN_PARALLEL_TASKS` cells, else on ``n_jobs`` loky worker processes (joblib reuses
    them from call to call). Processes, not threads: the BLAS pin is per process."""
    n = resolve_jobs(n_jobs)
    if n == 1 or len(cells) < MIN_PARALLEL_TASKS:
        return [fn(*cell) for cell in cells]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n, backend="loky")(delayed(fn)(*cell) for cell in cells)


def make_folds(y, groups=None, *, n_splits: int = N_SPLITS, seed: int = SEED) -> Folds:
    """Stratified (and, given ``groups``, grouped) shuffled K folds as ``(train, test)`` indices."""
    y = np.asarray(y)
    dummy = np.zeros(len(y))
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(dummy, y)]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(dummy, y, np.asarray(groups))]


@dataclass
class LinearProbe:
    """A fitted standardise-then-logistic-regression probe in the original coordinates."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [k or 1, d]
    intercept: np.ndarray
    classes: np.ndarray

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return Z @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``[n, k]`` class probabilities, columns in ``classes`` order (as sklearn's)."""
        logits = self.decision_function(X)
        if logits.shape[1] == 1:  # binary: sigmoid of one logit
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - p1, p1])
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def auroc(self, X: np.ndarray, y) -> float:
        """Macro one-vs-rest AUROC on ``(X, y)`` (binary AUROC for two classes)."""
        return score_auroc(y, self.predict_proba(X), self.classes)


@single_threaded_blas
def fit_probe(X: np.ndarray, y, *, C: float = 1.0, max_iter: int = MAX_ITER,
              tol: float = 1e-4) -> LinearProbe:
    """StandardScaler + L2 LogisticRegression(lbfgs) fitted on ``(X, y)``, kept as plain arrays."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0  # as StandardScaler: constant features stay 0
    Z = (X - mean) / scale
    lr = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tol)  # default: L2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(Z, y)
    coef = lr.coef_
    return LinearProbe(mean, scale, coef, lr.intercept_.copy(), lr.classes_.copy())


def score_auroc(y, proba: np.ndarray, classes) -> float:
    """Binary AUROC of the positive (second) class, or macro OvR AUROC for more classes."""
    classes = np.asarray(classes)
    if len(classes) == 2:
        return auroc(np.asarray(y) == classes[1], proba[:, 1])
    return macro_ovr_auroc(y, proba, classes)


@single_threaded_blas
def cv_auroc(X: np.ndarray, y, folds: Folds, *, C: float = 1.0,
             oof: np.ndarray | None = None) -> np.ndarray:
    """Held-out AUROC of each fold (``[n_folds]``). With ``oof`` (``[n, k]``, columns in sorted
    label order) the held-out class probabilities of every item are written into it, from the
    same fits (no refitting), for item-level resampling (:mod:`llmct.analysis.layer_peaks`)."""
    y = np.asarray(y)
    classes = np.unique(y)
    scores = []
    for tr, te in folds:
        probe = fit_probe(X[tr], y[tr], C=C)
        proba = probe.predict_proba(X[te])
        scores.append(score_auroc(y[te], proba, probe.classes))
        if oof is not None:
            oof[np.ix_(te, np.searchsorted(classes, probe.classes))] = proba
    return np.array(scores)


def shuffled(y, seed: int = SEED) -> np.ndarray:
    """A seeded permutation of the labels (the chance-level control)."""
    return np.random.default_rng(seed).permutation(np.asarray(y))


def depth(layer: int, n_layers: int) -> float:
    """Relative depth ``layer / (n_layers - 1)`` (0 = first block, 1 = last)."""
    return layer / (n_layers - 1) if n_layers > 1 else 0.0


@single_threaded_blas
def layer_sweep(
    acts: dict[str, np.ndarray],
    y,
    folds: Folds,
    *,
    layers: Sequence[int],
    n_layers: int,
    control: str = "none",
    C: float = 1.0,
    oof: dict[str, np.ndarray] | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """CV AUROC for every source and layer: rows ``source, layer, depth, auroc, auroc_std,
    n_folds, control``. ``acts[source]`` is ``[n, len(layers), d]``. ``oof`` (a dict) receives
    ``oof[source]``: ``[len(layers), n, k]`` out-of-fold probabilities from the same fits.
    The (source, layer) cells run on ``n_jobs`` processes (None: ``LLMCT_JOBS``; same result
    for any value).

    Raises:
        UsageError: ``n_jobs`` (or ``LLMCT_JOBS``) is not a whole number >= 1.
    """
    y = np.asarray(y)
    n_classes = len(np.unique(y))
    cells = [(source, j, layer) for source in acts for j, layer in enumerate(layers)]
    out = _run_cells(_cv_cell, [(acts[s][:, j], y, folds, C, None if oof is None else n_classes)
                                for s, j, _ in cells], n_jobs)
    if oof is not None:
        for source, arr in acts.items():
            oof[source] = np.full((len(layers), len(arr), n_classes), np.nan)
        for (source, j, _), (_, block) in zip(cells, out, strict=True):
            oof[source][j] = block
    return pd.DataFrame([{"source": source, "layer": int(layer), "depth": depth(layer, n_layers),
                          "auroc": float(np.mean(scores)), "auroc_std": float(np.std(scores)),
                          "n_folds": len(folds), "control": control}
                         for (source, _, layer), (scores, _) in zip(cells, out, strict=True)])


@single_threaded_blas
def _cv_cell(X: np.ndarray, y, folds: Folds, C: float, n_classes: int | None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """One (source, layer) cell of :func:`layer_sweep`: per-fold AUROCs and, given ``n_classes``,
    the ``[n, n_classes]`` out-of-fold probabilities (NaN where a fold lacks a class)."""
    oof = None if n_classes is None else np.full((len(X), n_classes), np.nan)
    return cv_auroc(X, y, folds, C=C, oof=oof), oof


@single_threaded_blas
def _transfer_cell(X_train: np.ndarray, y_train, X_test: np.ndarray, y_test, C: float
                   ) -> tuple[float, np.ndarray]:
    """One (source, layer) cell of :func:`transfer_sweep`: test AUROC and ``[n_test, k]``
    probabilities of a probe fitted on all of the training set."""
    probe = fit_probe(X_train, y_train, C=C)
    proba = probe.predict_proba(X_test)
    return score_auroc(y_test, proba, probe.classes), proba


@single_threaded_blas
def _mean_cv_cell(X: np.ndarray, y, folds: Folds, C: float) -> float:
    """One cell of :func:`fold_seed_rows`: the per-fold mean AUROC under one fold seed."""
    return float(np.mean(cv_auroc(X, y, folds, C=C)))


@single_threaded_blas
def transfer_sweep(
    train: dict[str, np.ndarray],
    y_train,
    test: dict[str, np.ndarray],
    y_test,
    *,
    layers: Sequence[int],
    n_layers: int,
    control: str = "none",
    C: float = 1.0,
    proba_out: dict[str, np.ndarray] | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Fit on all of one set, score on all of another, per source and layer (``auroc_std`` NaN).
    ``train[source]``/``test[source]`` are ``[n_train|n_test, len(layers), d]``. ``proba_out``
    (a dict) receives ``proba_out[source]``: ``[len(layers), n_test, k]`` test-set class
    probabilities (columns in sorted label order). The (source, layer) cells run on ``n_jobs``
    processes (None: ``LLMCT_JOBS``; same result for any value).

    Raises:
        UsageError: ``n_jobs`` (or ``LLMCT_JOBS``) is not a whole number >= 1.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    cells = [(source, j, layer) for source in train for j, layer in enumerate(layers)]
    out = _run_cells(_transfer_cell, [(train[s][:, j], y_train, test[s][:, j], y_test, C)
                                      for s, j, _ in cells], n_jobs)
    if proba_out is not None:
        for source in train:
            proba_out[source] = np.full((len(layers), len(y_test), len(np.unique(y_train))),
                                        np.nan)
        for (source, j, _), (_, proba) in zip(cells, out, strict=True):
            proba_out[source][j] = proba
    return pd.DataFrame([{"source": source, "layer": int(layer), "depth": depth(layer, n_layers),
                          "auroc": score, "auroc_std": np.nan, "n_folds": 0, "control": control}
                         for (source, _, layer), (score, _) in zip(cells, out, strict=True)])


@dataclass(frozen=True)
class PeakLayer:
    """Both peak rules: ``argmax`` (fragile on a plateau) and the first layer within ``tol`` of
    the maximum (robust: where the curve *reaches* its plateau)."""

    max_auroc: float
    argmax_layer: int
    argmax_depth: float
    first_within_layer: int
    first_within_depth: float
    tol: float


def peak_layer(aurocs, layers: Sequence[int] | None = None, n_layers: int | None = None,
               tol: float = PEAK_TOL) -> PeakLayer:
    """Peak of a per-layer AUROC curve under both rules (see :class:`PeakLayer`)."""
    a = np.asarray(aurocs, dtype=float)
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).any():
        raise ValueError("peak_layer needs a non-empty 1-D curve with finite values")
    layers = list(range(len(a))) if layers is None else [int(x) for x in layers]
    n_layers = n_layers or (max(layers) + 1)
    best = int(np.nanargmax(a))
    first = int(np.flatnonzero(a >= a[best] - tol)[0])
    return PeakLayer(float(a[best]), layers[best], depth(layers[best], n_layers), layers[first],
                     depth(layers[first], n_layers), tol)


def peak_table(results: pd.DataFrame, by: Sequence[str], n_layers: int,
               tol: float = PEAK_TOL) -> pd.DataFrame:
    """One :class:`PeakLayer` row per group of a sweep frame (e.g. by train/test set and source)."""
    rows = []
    for key, grp in results.groupby(list(by), sort=False):
        grp = grp.sort_values("layer")
        pk = peak_layer(grp.auroc.to_numpy(), grp.layer.to_numpy(), n_layers, tol)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     **pk.__dict__})
    return pd.DataFrame(rows)


# -- text-only baseline ------------------------------------------------------------------------

def _fit_text(texts: Sequence[str] | np.ndarray, y, C: float):
    """The word 1-2-gram TF-IDF + logistic-regression baseline of :mod:`llmct.analysis.text_baselines`,
    fitted on ``(texts, y)``."""
    from llmct.analysis.text_baselines import make_baseline

    return make_baseline("word_tfidf", C=C).fit(list(texts), np.asarray(y))


@single_threaded_blas
def text_cv_auroc(texts: Sequence[str] | np.ndarray, y, folds: Folds, *,
                  C: float = 1.0) -> np.ndarray:
    """TF-IDF (word 1-2 grams, fitted on the training fold) + logistic regression, per fold."""
    texts, y = np.asarray(list(texts), dtype=object), np.asarray(y)
    out = []
    for tr, te in folds:
        pipe = _fit_text(texts[tr], y[tr], C)
        out.append(score_auroc(y[te], pipe.predict_proba(list(texts[te])), pipe.classes_))
    return np.array(out)


def text_transfer_auroc(train_texts, y_train, test_texts, y_test, *, C: float = 1.0) -> float:
    """TF-IDF baseline fitted on one set and scored on another."""
    pipe = _fit_text(train_texts, y_train, C)
    return score_auroc(np.asarray(y_test), pipe.predict_proba(list(test_texts)), pipe.classes_)


def feature_cv_auroc(features: np.ndarray, y, folds: Folds, *, C: float = 1.0) -> np.ndarray:
    """The same probe on arbitrary low-dimensional features (e.g. token length), per fold."""
    F = np.asarray(features, dtype=np.float64)
    F = F[:, None] if F.ndim == 1 else F
    return cv_auroc(F, y, folds, C=C)


# -- the standard battery of experiments 02 and 04 -----------------------------------------------

@dataclass
class ProbePlan:
    """What :func:`probe_suite` will fit, decided from labels alone (before any activation exists).

    ``within``: set -> the labels of its within-set CV probe; ``transfers``: ``(train, test,
    shared labels)``; ``left_out``: one dict per thing left out, with ``set`` (or ``train_set``/
    ``test_set``), ``label``, ``n_items`` and ``reason`` -- for the terminal and ``run.json``.
    """

    within: dict[str, list[str]]
    transfers: list[tuple[str, str, list[str]]]
    left_out: list[dict]

    @property
    def empty(self) -> bool:
        return not self.within and not self.transfers


def plan_suite(labels, sets, *, transfers: Sequence[tuple[str, str]] | None = None,
               exclude_labels: Sequence[str] = ("neutral",), min_per_class: int = N_SPLITS
               ) -> ProbePlan:
    """The probes :func:`probe_suite` fits for ``labels``/``sets`` (parallel sequences), and
    everything it leaves out and why.

    ``transfers`` None means every ordered pair of the sets present (in order of appearance);
    a label needs ``min_per_class`` items (the 5 stratified folds need one per fold), a probe at
    least 2 labels, a transfer at least 2 labels shared by both sets.

    Raises:
        ValueError: a transfer names a set that is not present.
    """
    labels, sets = np.asarray(labels, dtype=object), np.asarray(sets, dtype=object)
    names = [str(x) for x in dict.fromkeys(sets.tolist())]
    left_out: list[dict] = []
    usable: dict[str, list[str]] = {}
    for name in names:
        values, n_per = np.unique(labels[sets == name].astype(str), return_counts=True)
        counts = {str(v): int(n) for v, n in zip(values, n_per, strict=True)}
        keep = []
        for label, n in counts.items():
            if label in exclude_labels:
                left_out.append({"set": name, "label": label, "n_items": int(n),
                                 "reason": "excluded (--exclude-labels)"})
            elif n < min_per_class:
                left_out.append({"set": name, "label": label, "n_items": int(n),
                                 "reason": f"only {n} item(s); a probe needs >= {min_per_class} "
                                 "per label (one per cross-validation fold)"})
            else:
                keep.append(label)
        usable[name] = keep
    within = {}
    for name in names:
        if len(usable[name]) >= 2:
            within[name] = usable[name]
        else:
            left_out.append({"set": name, "label": None, "n_items": int((sets == name).sum()),
                             "reason": f"no within-set probe: {len(usable[name])} usable label(s), "
                             "need >= 2"})
    if transfers is None:
        transfers = [(a, b) for a in names for b in names if a != b]
    pairs = []
    for train, test in transfers:
        absent = [x for x in (train, test) if x not in usable]
        if absent:
            raise ValueError(f"transfer {train}:{test}: set(s) {', '.join(map(repr, absent))} not "
                             f"in the stimuli (sets present: {', '.join(names)})")
        shared = [lab for lab in usable[train] if lab in usable[test]]
        for label in sorted(set(usable[train]) ^ set(usable[test])):
            left_out.append({"train_set": train, "test_set": test, "label": label,
                             "n_items": None, "reason": "transfer: label usable in only one of "
                             "the two sets"})
        if len(shared) >= 2:
            pairs.append((train, test, shared))
        else:
            left_out.append({"train_set": train, "test_set": test, "label": None,
                             "n_items": None, "reason": f"no transfer: {len(shared)} shared "
                             "usable label(s), need >= 2"})
    return ProbePlan(within, pairs, left_out)


@single_threaded_blas
def probe_suite(
    acts: dict[str, np.ndarray],
    labels,
    sets,
    texts,
    *,
    layers: Sequence[int],
    n_layers: int,
    transfers: Sequence[tuple[str, str]] | None = (("set_a", "set_b"),),
    exclude_labels: Sequence[str] = ("neutral",),
    min_per_class: int = N_SPLITS,
    C: float = 1.0,
    plan: ProbePlan | None = None,
    groups=None,
    peaks_out: list[dict] | None = None,
    n_boot: int = 1000,
    proba_out: dict | None = None,
    fold_seeds: int = 1,
    seeds_out: list[dict] | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Within-set CV probes for every set, and transfer for each ``(train, test)`` pair, each with
    its shuffled-label control and its text-only TF-IDF baseline on the same folds.

    Rows: ``train_set, test_set, source, layer, depth, auroc, auroc_std, n_folds, control, n_train,
    n_test, n_classes``; ``control`` is ``none`` (the probe), ``shuffled`` or ``text_tfidf`` (one
    row per set, ``source="text"``, ``layer=-1``). Layer 0 of the ``none`` rows is the layer-0
    baseline. Labels in ``exclude_labels`` and classes with fewer than ``min_per_class`` items are
    left out (the paper's 8-class problem excludes Set A's neutral items); ``transfers`` None
    means every ordered pair of sets present. What is left out and why: :func:`plan_suite`
    (pass its ``plan`` to reuse it). Transfer pairs naming an absent set are skipped.

    ``groups`` (parallel to ``labels``; e.g. Set D's ``frame_id``): within-set folds are grouped
    so that no group is in both training and test (sklearn ``StratifiedGroupKFold``); None or an
    all-None group column keeps the paper's ungrouped ``StratifiedKFold``. Within each set the
    text-only baselines of :mod:`llmct.analysis.text_baselines` (``text_word_tfidf``, ``text_char_tfidf``,
    ``text_stylometric``) are scored on the probe's own folds, as per-fold mean AUROC like the
    probe, so that "the probe beats every text-only baseline" compares like with like.

    ``peaks_out`` (a list) receives one row per within-set probe and source: bootstrap intervals
    over items of the argmax and first-within-tolerance layers, and the max-over-layers
    permutation test against shuffled labels (:mod:`llmct.analysis.layer_peaks`; ``n_boot`` resamples and
    permutations), from the out-of-fold probabilities of the same fits. ``proba_out`` (a dict)
    receives, per ``(train_set, test_set)``, ``(y, {source: [len(layers), n, k]})``: the
    out-of-fold (within-set) or test-set (transfer) probabilities of the probe. ``seeds_out`` (a
    list) receives :func:`fold_seed_rows` for ``fold_seeds`` fold seeds of each within-set probe.
    ``n_jobs``: worker processes of the sweeps (None: ``LLMCT_JOBS``; same result for any value;
    :class:`~llmct.errors.UsageError` if not a whole number >= 1).
    """
    labels, sets = np.asarray(labels), np.asarray(sets)
    texts = np.asarray(list(texts), dtype=object)
    if plan is None:
        present = set(sets.tolist())
        if transfers is not None:
            transfers = [(a, b) for a, b in transfers if a in present and b in present]
        plan = plan_suite(labels, sets, transfers=transfers, exclude_labels=exclude_labels,
                          min_per_class=min_per_class)
    grid = {"layers": layers, "n_layers": n_layers, "C": C, "n_jobs": resolve_jobs(n_jobs)}
    group_of = None if groups is None else np.asarray(list(groups), dtype=object)
    frames = []
    for name in plan.within:
        idx = np.flatnonzero((sets == name) & np.isin(labels, plan.within[name]))
        g = None if group_of is None or all(v is None for v in group_of[idx]) else group_of[idx]
        sub = {s: a[idx] for s, a in acts.items()}
        frames += _within_set_frames(name, sub, labels[idx], texts[idx], g, grid,
                                     peaks_out=peaks_out, n_boot=n_boot, proba_out=proba_out,
                                     fold_seeds=fold_seeds, seeds_out=seeds_out)
    for train, test, shared in plan.transfers:
        tr = np.flatnonzero((sets == train) & np.isin(labels, shared))
        te = np.flatnonzero((sets == test) & np.isin(labels, shared))
        frames += _transfer_frames(train, test, {s: a[tr] for s, a in acts.items()}, labels[tr],
                                   texts[tr], {s: a[te] for s, a in acts.items()}, labels[te],
                                   texts[te], grid, proba_out=proba_out)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tagged(df: pd.DataFrame, train: str, test: str, n_train: int, n_test: int, k: int
            ) -> pd.DataFrame:
    """``df`` with the suite's identifying columns (train/test set, sizes, number of classes)."""
    df.insert(0, "test_set", test)
    df.insert(0, "train_set", train)
    df["n_train"], df["n_test"], df["n_classes"] = n_train, n_test, k
    return df


def _within_set_frames(name: str, sub: dict[str, np.ndarray], y: np.ndarray, texts, g,
                       grid: dict, *, peaks_out, n_boot, proba_out, fold_seeds, seeds_out
                       ) -> list[pd.DataFrame]:
    """One set's cross-validated probe curve, its shuffled-label control and the text-only
    baselines on the same folds (see :func:`probe_suite` for the optional outputs)."""
    folds = make_folds(y, g)
    n_test = len(y) // len(folds)
    sizes = (name, name, len(y) - n_test, n_test, len(np.unique(y)))
    oof: dict[str, np.ndarray] = {}
    want_oof = peaks_out is not None or proba_out is not None
    curve = layer_sweep(sub, y, folds, oof=oof if want_oof else None, **grid)
    if peaks_out is not None:
        peaks_out += peak_rows(oof, y, grid["layers"], name, n_boot=n_boot)
    if proba_out is not None:
        proba_out[(name, name)] = (y, oof)
    if seeds_out is not None and fold_seeds > 1:
        seeds_out += [{"train_set": name, "test_set": name, **r} for r in fold_seed_rows(
            sub, y, g, curve, grid["layers"], grid["n_layers"], n_seeds=fold_seeds,
            C=grid["C"], n_jobs=grid["n_jobs"])]
    shuffled_curve = layer_sweep(sub, shuffled(y), folds, control="shuffled", **grid)
    text_rows = text_baseline_rows(texts, y, folds, g, C=grid["C"])
    legacy = {**text_rows[0], "control": "text_tfidf"}  # the word TF-IDF row, v1 name
    return [_tagged(curve, *sizes), _tagged(shuffled_curve, *sizes),
            _tagged(pd.DataFrame([legacy, *text_rows]), *sizes)]


def _transfer_frames(train: str, test: str, a_tr: dict, y_tr, t_tr, a_te: dict, y_te, t_te,
                     grid: dict, *, proba_out) -> list[pd.DataFrame]:
    """A probe trained on one set and tested on another, its shuffled-label control and the
    text-only TF-IDF transfer baseline."""
    sizes = (train, test, len(y_tr), len(y_te), len(set(np.asarray(y_tr).tolist())))
    proba: dict[str, np.ndarray] = {}
    curve = transfer_sweep(a_tr, y_tr, a_te, y_te, proba_out=proba, **grid)
    if proba_out is not None:
        proba_out[(train, test)] = (y_te, proba)
    shuffled_curve = transfer_sweep(a_tr, shuffled(y_tr), a_te, y_te, control="shuffled", **grid)
    text = text_transfer_auroc(t_tr, y_tr, t_te, y_te, C=grid["C"])
    return [_tagged(curve, *sizes), _tagged(shuffled_curve, *sizes),
            _tagged(pd.DataFrame([_text_row(text, np.nan, 0)]), *sizes)]


def fold_seed_rows(acts: dict[str, np.ndarray], y, groups, curve: pd.DataFrame,
                   layers: Sequence[int], n_layers: int, *, n_seeds: int = 5,
                   C: float = 1.0, n_jobs: int | None = None) -> list[dict]:
    """The within-set probe re-scored under ``n_seeds`` fold seeds (``SEED .. SEED+n_seeds-1``;
    the first is the headline's) at the layers a summary quotes: the first layer (layer-0
    baseline), and the argmax and first-within-``PEAK_TOL`` layers of ``curve`` (the headline
    :func:`layer_sweep` rows of the first seed, reused, not refitted; each distinct layer is
    fitted once per further seed). Rows: ``source, rule, layer, depth, seed, auroc`` (per-fold
    mean, as the headline). The spread over seeds is the part of a quoted AUROC
    that depends on how items fall into folds. The (source, layer, seed) cells run on ``n_jobs``
    processes (None: ``LLMCT_JOBS``; same rows for any value; ``UsageError`` if invalid)."""
    rows: list[dict] = []
    cells: list[tuple] = []
    wanted: list[tuple[str, dict[str, int], dict[int, float]]] = []
    fold_sets = [make_folds(y, groups, seed=SEED + i) for i in range(1, n_seeds)]
    for source, arr in acts.items():
        mine = curve[curve.source == source]
        pk = peak_layer(mine.auroc.to_numpy(), layers, n_layers)
        at = {"layer0": int(layers[0]), "argmax": pk.argmax_layer,
              "first_within": pk.first_within_layer}
        # the first seed's score is the headline's own
        first = {layer: float(mine.auroc.iloc[list(layers).index(layer)])
                 for layer in dict.fromkeys(at.values())}
        wanted.append((source, at, first))
        cells += [(arr[:, list(layers).index(layer)], y, folds, C)
                  for layer in first for folds in fold_sets]
    scores = iter(_run_cells(_mean_cv_cell, cells, n_jobs))
    for source, at, first in wanted:
        by_layer = {layer: [head] + [next(scores) for _ in fold_sets]
                    for layer, head in first.items()}
        rows += [{"source": source, "rule": rule, "layer": layer, "depth": depth(layer, n_layers),
                  "seed": SEED + i, "auroc": score}
                 for rule, layer in at.items() for i, score in enumerate(by_layer[layer])]
    return rows


def seed_spread(seed_rows: Sequence[dict]) -> pd.DataFrame:
    """Per ``(train_set, test_set, source)``: min, max and standard deviation over fold seeds of
    the AUROC at the argmax layer and at layer 0 (columns ``<rule>_seed_min/max/sd``, plus
    ``n_fold_seeds``), to merge into :func:`summarise`'s table."""
    frame = pd.DataFrame(list(seed_rows))
    if frame.empty:
        return frame
    keys = ["train_set", "test_set", "source"]
    stats = frame[frame.rule.isin(["argmax", "layer0"])].groupby(keys + ["rule"]).auroc.agg(
        ["min", "max", "std", "count"])
    wide = stats.unstack("rule")
    wide.columns = [f"{rule}_seed_{stat}".replace("_std", "_sd") for stat, rule in wide.columns]
    wide = wide.rename(columns={"argmax_seed_count": "n_fold_seeds"}).drop(
        columns=["layer0_seed_count"])
    return wide.reset_index()


def _text_row(value: float, std: float, n_folds: int, control: str = "text_tfidf") -> dict:
    return {"source": "text", "layer": -1, "depth": np.nan, "auroc": value, "auroc_std": std,
            "n_folds": n_folds, "control": control}


TEXT_BASELINES = ("word_tfidf", "char_tfidf", "stylometric")


def peak_rows(oof: dict[str, np.ndarray], y, layers: Sequence[int], set_name: str, *,
              n_boot: int = 1000) -> list[dict]:
    """Per source: item-bootstrap intervals of the peak layers and the max-over-layers
    permutation p (see :mod:`llmct.analysis.layer_peaks`), tagged with the set."""
    from llmct.analysis.layer_peaks import max_layer_permutation, peak_intervals

    classes = np.unique(np.asarray(y))
    rows = []
    for source, proba in oof.items():
        observed, p, null95 = max_layer_permutation(proba, y, classes, n_perm=n_boot)
        rows.append({"train_set": set_name, "test_set": set_name, "source": source,
                     **peak_intervals(proba, y, classes, layers, n_boot=n_boot),
                     "pooled_max_auroc": observed, "p_max_over_layers": p,
                     "null_max_95": null95})
    return rows


def text_baseline_rows(texts, y, folds: Folds, groups=None, *, C: float = 1.0) -> list[dict]:
    """One row per :data:`TEXT_BASELINES` baseline scored on ``folds`` (per-fold mean AUROC and
    its std, as :func:`cv_auroc` scores the probe); ``control`` = ``text_<baseline>``."""
    from llmct.analysis.text_baselines import grouped_cv_auroc

    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    rows = []
    for name in TEXT_BASELINES:
        score = grouped_cv_auroc(texts, y, g, name, folds=folds, C=C)
        finite = score.fold_aurocs[np.isfinite(score.fold_aurocs)]
        rows.append(_text_row(score.fold_mean, float(finite.std()) if finite.size else np.nan,
                              score.n_folds, control=f"text_{name}"))
    return rows


def summarise(results: pd.DataFrame, n_layers: int, tol: float = PEAK_TOL,
              peak_ci: Sequence[dict] | None = None) -> pd.DataFrame:
    """Headline row per (train_set, test_set, source) of a :func:`probe_suite` frame: peak under
    both rules, the layer-0 baseline, the shuffled-label control (mean and max over layers) and
    the text-only baselines; with ``peak_ci`` (from ``probe_suite(peaks_out=...)``) also the
    intervals over items of the peak layers and the max-over-layers permutation test."""
    probe = results[results.control == "none"]
    peaks = peak_table(probe, ["train_set", "test_set", "source"], n_layers, tol)
    out = []
    for _, row in peaks.iterrows():
        same = (results.train_set == row.train_set) & (results.test_set == row.test_set)
        mine = same & (results.source == row.source)
        shuf = results[mine & (results.control == "shuffled")].auroc
        curve = results[mine & (results.control == "none")]
        layer0 = curve[curve.layer == curve.layer.min()].auroc
        texts = {c: results[same & (results.control == c)].auroc
                 for c in ("text_tfidf", *(f"text_{b}" for b in TEXT_BASELINES))}
        text_cols = {f"{c}_auroc": float(t.iloc[0]) if len(t) else np.nan
                     for c, t in texts.items()}
        best_text = np.nanmax(list(text_cols.values())) if any(
            np.isfinite(v) for v in text_cols.values()) else np.nan
        out.append({**row.to_dict(),
                    "layer0_auroc": float(layer0.iloc[0]),
                    "shuffled_mean": float(shuf.mean()) if len(shuf) else np.nan,
                    "shuffled_max": float(shuf.max()) if len(shuf) else np.nan,
                    **text_cols,
                    "probe_minus_best_text": row.max_auroc - best_text})
    frame = pd.DataFrame(out)
    if peak_ci:
        frame = frame.merge(pd.DataFrame(list(peak_ci)), on=["train_set", "test_set", "source"],
                            how="left")
    return frame


__all__ = [
    "LinearProbe",
    "PeakLayer",
    "ProbePlan",
    "cv_auroc",
    "depth",
    "feature_cv_auroc",
    "fit_probe",
    "fold_seed_rows",
    "layer_sweep",
    "make_folds",
    "peak_layer",
    "peak_table",
    "plan_suite",
    "probe_suite",
    "score_auroc",
    "seed_spread",
    "shuffled",
    "summarise",
    "text_cv_auroc",
    "text_transfer_auroc",
    "transfer_sweep",
]
