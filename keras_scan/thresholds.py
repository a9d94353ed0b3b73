"""Threshold-controlled scalable inference over cached per-exit probabilities.

A SCAN model has `K` shallow exits plus the final exit. Given every exit's softmax
probabilities on a validation split (computed once), this module

- measures each exit's confidence (`confidence`, `should_exit`),
- simulates the early-exit cascade (`simulate_cascade`, `evaluate_thresholds`),
- evolves one confidence threshold per shallow exit with DEAP's NSGA-II, trading
  accuracy against a mean cost, and picks an operating point
  (`search_thresholds_from_probs` -> `Thresholds`). The cost of answering at each
  exit is one vector: MACs counted from the graph (`cost="macs"`, the default) or
  latency measured on the device (`cost="latency"`: the cascade's latency through
  each stage, from an export's cost table, `keras_scan.latency`).

Decision rule (shared by the simulation, the Keras engine and the device runtime):
a sample answers at the first shallow exit `i` with `thresholds[i] < 1` and
`confidence_i >= thresholds[i]`; a threshold of exactly 1.0 disables its exit (so
all-1.0 never exits early, even where a float32 softmax saturates at 1.0). Samples
that no shallow exit accepts answer at the final exit (index `K`) with the fallback
rule: `"final"` (the final exit's argmax) or `"ensemble"` (argmax of the mean of all
exits' probabilities).

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import field

import numpy as np

from keras_scan import files

MEASURES = ("max_prob", "margin", "entropy")
FALLBACKS = ("final", "ensemble")
COSTS = ("macs", "latency")
FORMAT_VERSION = 1

_DEFAULT_MAX_ACCURACY_DROP = 0.5
# Standard errors of the accuracy drop a chosen point must clear the target by.
DEFAULT_MARGIN = 1.0
# Upper bound on booleans materialised at once when evaluating a population.
_EVAL_CHUNK_ELEMENTS = 1 << 23
# The global-threshold front kept in metrics (for plots) is thinned to this size.
_MAX_GLOBAL_FRONT_POINTS = 1000


# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------


def _check_measure(measure):
    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(
            f"`measure` must be one of {MEASURES}. Received: measure={measure!r}"
        )
    return measure


def _check_fallback(fallback):
    if not isinstance(fallback, str) or fallback not in FALLBACKS:
        raise ValueError(
            f"`fallback` must be one of {FALLBACKS}. Received: fallback={fallback!r}"
        )
    return fallback


def _as_probs(probs):
    """Validates the per-exit probabilities; returns a list of 2-D arrays."""
    if isinstance(probs, np.ndarray):
        if probs.ndim != 3:
            raise ValueError(
                "`probs` must be a list of K+1 arrays of shape (N, C) (one per exit, "
                f"the final exit last). Received: an array of shape {probs.shape}"
            )
        probs = list(probs)
    if not isinstance(probs, Sequence) or isinstance(probs, str):
        raise ValueError(
            "`probs` must be a list of K+1 arrays of shape (N, C) (one per exit, "
            f"the final exit last). Received: probs of type {type(probs).__name__}"
        )
    if len(probs) < 2:
        raise ValueError(
            "`probs` must hold at least 2 arrays (one shallow exit plus the final "
            f"exit). Received: {len(probs)} array(s)"
        )
    arrays = [np.asarray(p) for p in probs]
    shapes = [a.shape for a in arrays]
    for i, a in enumerate(arrays):
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
            raise ValueError(
                "`probs` must be a list of numeric arrays of shape (N, C). "
                f"Received: probs[{i}] of shape {a.shape} and dtype {a.dtype}"
            )
    if len(set(shapes)) != 1:
        raise ValueError(
            "Every array in `probs` must have the same shape (N, C): same number of "
            f"samples and classes at every exit. Received shapes: {shapes}"
        )
    n, c = shapes[0]
    if n == 0:
        raise ValueError(
            f"`probs` holds no samples (N=0); the data is empty. Received shapes: {shapes}"
        )
    if c < 2:
        raise ValueError(
            f"`probs` must have at least 2 classes. Received shapes: {shapes}"
        )
    for i, a in enumerate(arrays):
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                "`probs` must hold probabilities (softmax outputs) in [0, 1]. "
                f"Received: probs[{i}] with values in [{lo}, {hi}]"
            )
    return arrays


def _as_labels(labels, n, c):
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == c:  # one-hot
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"`labels` must hold one class index per sample (N={n}). "
            f"Received: labels of shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(
            np.equal(np.mod(y, 1), 0)
        ):
            raise ValueError(
                f"`labels` must be integer class indices. Received: dtype {y.dtype}"
            )
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise ValueError(
            f"`labels` must lie in [0, {c - 1}] (C={c} classes). "
            f"Received: labels in [{y.min()}, {y.max()}]"
        )
    return y


def _as_exit_macs(exit_macs, k, name="exit_macs", positive=False):
    """One cumulative cost per exit (MACs, or ms for `exit_latency_ms`)."""
    try:
        macs = np.asarray(exit_macs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be K+1 numbers. Received: {name}={exit_macs!r}"
        ) from None
    if macs.ndim != 1 or macs.shape[0] != k + 1:
        raise ValueError(
            f"`{name}` must hold one cumulative cost per exit (K+1={k + 1} values, "
            f"the final exit last). Received: {name}={exit_macs!r}"
        )
    low = np.any(macs <= 0) if positive else np.any(macs < 0)
    if not np.all(np.isfinite(macs)) or low or np.any(np.diff(macs) < 0):
        raise ValueError(
            f"`{name}` must be finite, {'positive' if positive else 'non-negative'} "
            "and non-decreasing (cumulative cost of answering at each exit). "
            f"Received: {name}={exit_macs!r}"
        )
    return macs


def _as_full_macs(full_macs, macs, name="full_macs"):
    if full_macs is None:
        return float(macs[-1])
    if isinstance(full_macs, bool) or not isinstance(full_macs, numbers.Real):
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={full_macs!r}"
        )
    full = float(full_macs)
    if not math.isfinite(full) or full <= 0:
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={full_macs!r}"
        )
    return full


def _as_latency(exit_latency_ms, full_latency_ms, k):
    """(cumulative ms per exit, full model ms), or None when not given."""
    if exit_latency_ms is None:
        if full_latency_ms is not None:
            raise ValueError(
                "`full_latency_ms` needs `exit_latency_ms` (the cascade's latency "
                f"through each exit). Received: full_latency_ms={full_latency_ms!r}"
            )
        return None
    ms = _as_exit_macs(exit_latency_ms, k, "exit_latency_ms", positive=True)
    return ms, _as_full_macs(full_latency_ms, ms, "full_latency_ms")


def _check_cost(cost):
    if not isinstance(cost, str) or cost not in COSTS:
        raise ValueError(f"`cost` must be one of {COSTS}. Received: cost={cost!r}")
    return cost


def _latency_figures(counts, latency, n):
    """Mean latency and latency speedup of a point from its per-exit answer counts."""
    if latency is None:
        return {}
    ms, full = latency
    mean = float(_mean_macs(np.asarray(counts)[None], ms, n)[0])
    return {"mean_latency_ms": mean, "latency_speedup": full / mean}


def _as_thresholds(thresholds, k):
    if isinstance(thresholds, Thresholds):
        thresholds = thresholds.values
    try:
        th = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`thresholds` must be {k} numbers in [0, 1] (one per shallow exit). "
            f"Received: thresholds={thresholds!r}"
        ) from None
    if th.ndim != 1 or th.shape[0] != k:
        raise ValueError(
            f"`thresholds` must hold one value per shallow exit (K={k}). "
            f"Received: thresholds={thresholds!r}"
        )
    _check_unit_interval(th, thresholds)
    return th


def _check_unit_interval(values, shown):
    for i, v in enumerate(values):
        if not (0.0 <= v <= 1.0):  # also rejects NaN
            raise ValueError(
                f"`thresholds` must lie in [0, 1]; value {v!r} at index {i} does "
                f"not. Received: thresholds={shown!r}"
            )


def _resolve_rule(thresholds, measure, fallback):
    """Takes measure/fallback from a `Thresholds` unless given explicitly."""
    if isinstance(thresholds, Thresholds):
        for name, given, own in (
            ("measure", measure, thresholds.measure),
            ("fallback", fallback, thresholds.fallback),
        ):
            if given is not None and given != own:
                raise ValueError(
                    f"`{name}`={given!r} conflicts with the `Thresholds` passed, "
                    f"which uses {name}={own!r}. Pass {name}=None to use it."
                )
        return thresholds.measure, thresholds.fallback
    measure = "max_prob" if measure is None else measure
    fallback = "final" if fallback is None else fallback
    return _check_measure(measure), _check_fallback(fallback)


# ---------------------------------------------------------------------------
# Confidence and the cascade
# ---------------------------------------------------------------------------


def confidence(probs, measure="max_prob"):
    """Confidence of each sample's prediction, in [0, 1].

    Args:
        probs: array of shape (N, C). Softmax probabilities of one exit.
        measure: str. `"max_prob"` (the largest probability, the paper's rule),
            `"margin"` (largest minus second largest) or `"entropy"`
            (`1 - H(p) / log(C)`). Defaults to `"max_prob"`.

    Returns:
        float64 array of shape (N,).
    """
    _check_measure(measure)
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(
            "`probs` must be an array of shape (N, C) with C >= 2. "
            f"Received: shape {p.shape}"
        )
    p = p.astype(np.float64, copy=False)
    if measure == "max_prob":
        conf = p.max(axis=1)
    elif measure == "margin":
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        conf = top2[:, 1] - top2[:, 0]
    else:
        plogp = p * np.log(np.where(p > 0, p, 1.0))
        conf = 1.0 + plogp.sum(axis=1) / math.log(p.shape[1])
    return np.clip(conf, 0.0, 1.0)


def should_exit(probs, threshold, measure="max_prob"):
    """Boolean mask of the samples a shallow exit answers, shape (N,).

    The single decision rule used everywhere: `threshold < 1` and
    `confidence(probs, measure) >= threshold`. A threshold of 1.0 disables the exit.
    """
    t = float(threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(f"`thresholds` must lie in [0, 1]. Received: threshold={t!r}")
    conf = confidence(probs, measure)
    if t >= 1.0:
        return np.zeros(conf.shape, dtype=bool)
    return conf >= t


def _final_predictions(arrays, fallback):
    if fallback == "final":
        return np.argmax(arrays[-1], axis=1)
    total = np.zeros(arrays[0].shape, dtype=np.float64)
    for a in arrays:
        total += a
    return np.argmax(total / len(arrays), axis=1)


def _exit_index(conf, th):
    """First accepting shallow exit per sample (K where none accepts)."""
    k = conf.shape[0]
    accept = (conf >= th[:, None]) & (th < 1.0)[:, None]
    return np.where(accept.any(axis=0), accept.argmax(axis=0), k)


def simulate_cascade(probs, thresholds, measure=None, fallback=None):
    """Simulates threshold-controlled early exit on cached probabilities.

    Args:
        probs: list of K+1 arrays of shape (N, C). Every exit's softmax
            probabilities, the final exit last.
        thresholds: K floats in [0, 1] or a `Thresholds`. One per shallow exit.
        measure: str. Confidence measure (see `MEASURES`). Defaults to the
            `Thresholds`' measure, else `"max_prob"`.
        fallback: str. `"final"` or `"ensemble"` (see `FALLBACKS`). Defaults to the
            `Thresholds`' fallback, else `"final"`.

    Returns:
        `(predictions, exit_index)`: int64 arrays of shape (N,); `exit_index` is
        in `0..K` (K = the final exit).
    """
    measure, fallback = _resolve_rule(thresholds, measure, fallback)
    arrays = _as_probs(probs)
    k = len(arrays) - 1
    th = _as_thresholds(thresholds, k)
    conf = np.stack([confidence(a, measure) for a in arrays[:-1]])
    exit_index = _exit_index(conf, th)
    per_exit = np.stack(
        [np.argmax(a, axis=1) for a in arrays[:-1]]
        + [_final_predictions(arrays, fallback)]
    )
    n = per_exit.shape[1]
    preds = per_exit[exit_index, np.arange(n)]
    return preds.astype(np.int64), exit_index.astype(np.int64)


def _mean_macs(counts, macs, n):
    """Mean cost (MACs or ms) from per-exit answer counts, shape (..., K+1) -> (...)."""
    return (counts.astype(np.float64) * macs).sum(axis=-1) / n


def evaluate_thresholds(
    probs,
    labels,
    thresholds,
    exit_macs,
    full_macs=None,
    measure=None,
    fallback=None,
    *,
    exit_latency_ms=None,
    full_latency_ms=None,
):
    """Accuracy and cost of a threshold setting on cached probabilities.

    Args:
        probs: list of K+1 arrays of shape (N, C), the final exit last.
        labels: int array of shape (N,) (or one-hot (N, C)).
        thresholds: K floats in [0, 1] or a `Thresholds`.
        exit_macs: K+1 numbers. Cumulative MACs of answering at each exit.
        full_macs: number. MACs of the plain backbone, the speedup baseline.
            Defaults to `exit_macs[-1]` (the whole multi-exit model).
        measure, fallback: see `simulate_cascade`.
        exit_latency_ms: K+1 numbers or None. Measured latency of answering at
            each exit (the cascade through that stage), from an export's cost
            table. Defaults to None (no latency figures).
        full_latency_ms: number. The full model's latency, the latency
            speedup's baseline. Defaults to `exit_latency_ms[-1]`.

    Returns:
        dict with `accuracy`, `mean_macs`, `speedup` (`full_macs / mean_macs`),
        `full_macs`, `exit_shares` (fraction answered at each exit, K+1 values),
        `exit_counts`, `exit_accuracy` (accuracy of the samples answered at each
        exit, None where none), `final_exit_accuracy`, `num_samples`; with
        `exit_latency_ms` also `mean_latency_ms`, `latency_speedup`
        (`full_latency_ms / mean_latency_ms`) and `full_latency_ms`.
    """
    measure, fallback = _resolve_rule(thresholds, measure, fallback)
    arrays = _as_probs(probs)
    n, c = arrays[0].shape
    k = len(arrays) - 1
    y = _as_labels(labels, n, c)
    macs = _as_exit_macs(exit_macs, k)
    full = _as_full_macs(full_macs, macs)
    latency = _as_latency(exit_latency_ms, full_latency_ms, k)
    preds, exit_index = simulate_cascade(arrays, thresholds, measure, fallback)
    correct = preds == y
    counts = np.bincount(exit_index, minlength=k + 1)
    correct_at = np.bincount(exit_index, weights=correct, minlength=k + 1)
    mean_macs = float(_mean_macs(counts[None], macs, n)[0])
    extra = _latency_figures(counts, latency, n)
    if latency is not None:
        extra["full_latency_ms"] = latency[1]
    return {
        "accuracy": int(correct.sum()) / n,
        "mean_macs": mean_macs,
        "speedup": full / mean_macs if mean_macs > 0 else None,
        "full_macs": full,
        "exit_shares": [int(x) / n for x in counts],
        "exit_counts": [int(x) for x in counts],
        "exit_accuracy": [
            float(a) / int(m) if m else None for a, m in zip(correct_at, counts)
        ],
        "final_exit_accuracy": float(np.mean(np.argmax(arrays[-1], axis=1) == y)),
        "num_samples": int(n),
        **extra,
    }


# ---------------------------------------------------------------------------
# Result container
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Thresholds:
    """Per-exit confidence thresholds of a SCAN model and how they were chosen.

    Args:
        values: list of float. One threshold in [0, 1] per shallow exit; 1.0
            disables an exit.
        measure: str. Confidence measure, one of `MEASURES`. Defaults to
            `"max_prob"`.
        fallback: str. Rule when no shallow exit is confident, one of
            `FALLBACKS`. Defaults to `"final"`.
        metrics: dict. Validation figures and search records (accuracy,
            mean MACs, speedup, exit shares, the Pareto front, the global-threshold
            baseline, settings). Defaults to `{}`.

    Example:
    ```python
    th = keras_scan.thresholds.Thresholds([0.9, 0.95, 0.97])
    th.save("runs/fm18/thresholds.json")
    th = keras_scan.thresholds.Thresholds.load("runs/fm18/thresholds.json")
    ```
    """

    values: list[float]
    measure: str = "max_prob"
    fallback: str = "final"
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        raw = self.values
        if isinstance(raw, (str, bytes)) or not isinstance(raw, (Sequence, np.ndarray)):
            raise ValueError(
                f"`thresholds` must be a list of floats in [0, 1]. Received: {raw!r}"
            )
        values = []
        for i, v in enumerate(list(raw)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise ValueError(
                    f"`thresholds` must be floats in [0, 1]; value {v!r} at index "
                    f"{i} is not a number. Received: thresholds={raw!r}"
                )
            values.append(float(v))
        if not values:
            raise ValueError(
                "`thresholds` must hold one value per shallow exit (at least one). "
                f"Received: thresholds={raw!r}"
            )
        _check_unit_interval(values, raw)
        self.values = values
        _check_measure(self.measure)
        _check_fallback(self.fallback)
        if self.metrics is None:
            self.metrics = {}
        if not isinstance(self.metrics, Mapping):
            raise ValueError(
                f"`metrics` must be a dict. Received: metrics={self.metrics!r}"
            )
        self.metrics = dict(self.metrics)

    def to_dict(self):
        """JSON-compatible dict (tuples become lists, NaN/inf become None)."""
        try:
            metrics = files.jsonable(self.metrics)
        except TypeError as e:
            raise ValueError(
                f"`metrics` must hold JSON-compatible values. {e}"
            ) from None
        return {
            "format_version": FORMAT_VERSION,
            "values": list(self.values),
            "measure": self.measure,
            "fallback": self.fallback,
            "metrics": metrics,
        }

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, Mapping) or "values" not in d:
            raise ValueError(
                "`d` must be a dict with at least a 'values' entry, as written by "
                f"`Thresholds.to_dict`. Received: {d!r}"
            )
        version = d.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"Unsupported thresholds format_version={version!r}; this keras_scan "
                f"reads versions <= {FORMAT_VERSION}."
            )
        return cls(
            values=list(d["values"]),
            measure=d.get("measure", "max_prob"),
            fallback=d.get("fallback", "final"),
            metrics=dict(d.get("metrics") or {}),
        )

    def save(self, path):
        """Writes JSON atomically (`keras_scan.files`); returns `path` as a str."""
        path = os.fspath(path)
        files.atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path):
        with open(os.fspath(path), encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"`path` is not a thresholds JSON file: {e}. Received: path={path!r}"
                ) from None
        return cls.from_dict(d)


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


class _Problem:
    """Cached per-exit confidence/correctness; evaluates many settings at once."""

    def __init__(self, arrays, y, macs, measure, fallback):
        self.k = len(arrays) - 1
        self.n = arrays[0].shape[0]
        self.macs = macs
        self.conf = np.stack([confidence(a, measure) for a in arrays[:-1]])
        correct = [np.argmax(a, axis=1) == y for a in arrays[:-1]]
        correct.append(_final_predictions(arrays, fallback) == y)
        self.correct = np.stack(correct)  # (K+1, N)
        self.final_ok = np.argmax(arrays[-1], axis=1) == y
        self.final_correct = int(np.sum(self.final_ok))
        self.sorted_conf = np.sort(self.conf, axis=1)
        self.decode_table = np.stack([_midpoints_below(s) for s in self.sorted_conf])

    def evaluate(self, th):
        """th (P, K) -> (correct counts (P,), per-exit answer counts (P, K+1))."""
        th = np.atleast_2d(np.asarray(th, dtype=np.float64))
        p, k, n = th.shape[0], self.k, self.n
        n_correct = np.empty(p, dtype=np.int64)
        counts = np.empty((p, k + 1), dtype=np.int64)
        step = max(1, _EVAL_CHUNK_ELEMENTS // n)
        for s in range(0, p, step):
            t = th[s : s + step]
            undecided = np.ones((t.shape[0], n), dtype=bool)
            nc = np.zeros(t.shape[0], dtype=np.int64)
            for i in range(k):
                if not np.any(t[:, i] < 1.0):
                    counts[s : s + step, i] = 0
                    continue
                take = self.conf[i][None, :] >= t[:, i, None]
                take &= (t[:, i] < 1.0)[:, None]
                take &= undecided
                undecided &= ~take
                counts[s : s + step, i] = np.count_nonzero(take, axis=1)
                take &= self.correct[i][None, :]
                nc += np.count_nonzero(take, axis=1)
            counts[s : s + step, k] = np.count_nonzero(undecided, axis=1)
            undecided &= self.correct[k][None, :]
            n_correct[s : s + step] = nc + np.count_nonzero(undecided, axis=1)
        return n_correct, counts

    def discordant(self, th):
        """th (P, K) -> (b, c): counts of samples the final exit gets right and
        the cascade wrong (b), and the reverse (c). The cascade's accuracy is the
        final exit's plus (c - b) / N; b + c is what its noise comes from."""
        th = np.atleast_2d(np.asarray(th, dtype=np.float64))
        p, k, n = th.shape[0], self.k, self.n
        b = np.empty(p, dtype=np.int64)
        c = np.empty(p, dtype=np.int64)
        step = max(1, _EVAL_CHUNK_ELEMENTS // n)
        for s in range(0, p, step):
            t = th[s : s + step]
            undecided = np.ones((t.shape[0], n), dtype=bool)
            right = np.zeros((t.shape[0], n), dtype=bool)
            for i in range(k):
                take = self.conf[i][None, :] >= t[:, i, None]
                take &= (t[:, i] < 1.0)[:, None]
                take &= undecided
                undecided &= ~take
                right |= take & self.correct[i][None, :]
            right |= undecided & self.correct[k][None, :]
            b[s : s + step] = np.count_nonzero(~right & self.final_ok, axis=1)
            c[s : s + step] = np.count_nonzero(right & ~self.final_ok, axis=1)
        return b, c

    def decode(self, genes):
        """Genes in [0, 1]^K (fraction of samples below the threshold) -> thresholds.

        Gene g of exit i selects the sorted confidence at rank floor(g * N) and
        returns the midpoint between it and the next lower distinct confidence, so
        thresholds keep the largest margin to the validation samples; g = 1 gives
        1.0 (exit disabled).
        """
        g = np.asarray(genes, dtype=np.float64)
        rank = np.floor(np.clip(g, 0.0, 1.0) * self.n).astype(np.int64)
        cols = np.arange(self.k)
        th = self.decode_table[cols, np.minimum(rank, self.n - 1)]
        return np.where(rank >= self.n, 1.0, th)

    def encode(self, th):
        """Thresholds (P, K) -> genes (approximate inverse of `decode`)."""
        th = np.atleast_2d(th)
        genes = np.empty(th.shape)
        for i in range(self.k):
            genes[:, i] = np.searchsorted(self.sorted_conf[i], th[:, i], "left")
        genes = (genes + 0.5) / self.n
        return np.where(th >= 1.0, 1.0, np.clip(genes, 0.0, 1.0))

    def global_sweep(self):
        """Every distinct outcome of one threshold shared by all shallow exits.

        With running maxima m_i = max(conf_0..conf_i), a sample answers at exit
        <= i exactly when m_i >= t, so lowering t through the sorted m values moves
        one sample one exit earlier per step: cumulative sums give every outcome in
        O(NK log NK).

        Returns (thresholds (G,), correct counts (G,), answer counts (G, K+1)),
        starting with t = 1.0 (no early exit).
        """
        k, n = self.k, self.n
        running = np.maximum.accumulate(self.conf, axis=0)  # (K, N)
        exit_of = np.repeat(np.arange(k), n)
        sample_of = np.tile(np.arange(n), k)
        values = running.ravel()
        order = np.argsort(-values, kind="stable")
        values, exit_of, sample_of = values[order], exit_of[order], sample_of[order]
        gain = self.correct[exit_of, sample_of].astype(np.int64) - self.correct[
            exit_of + 1, sample_of
        ].astype(np.int64)
        n_correct = int(self.correct[k].sum()) + np.cumsum(gain)
        counts = np.zeros((values.size, k + 1), dtype=np.int64)
        for j in range(k + 1):
            counts[:, j] = np.cumsum(exit_of == j) - np.cumsum(exit_of + 1 == j)
        counts[:, k] += n
        last = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
        upper = values[last]
        lower = np.r_[upper[1:], 0.0]
        th = _safe_midpoint(lower, upper)
        # A threshold of 1.0 disables an exit: drop the (float-rounding) case of a
        # group at 1.0 with no representable threshold strictly below it.
        last, th = last[th < 1.0], th[th < 1.0]
        th = np.r_[1.0, th]
        n_correct = np.r_[int(self.correct[k].sum()), n_correct[last]]
        counts = np.vstack([np.eye(k + 1, dtype=np.int64)[k] * n, counts[last]])
        return th, n_correct, counts


def _safe_midpoint(lower, upper):
    mid = (lower + upper) / 2.0
    return np.where((mid > lower) & (mid <= upper), mid, upper)


def _midpoints_below(sorted_values):
    """For each position, a threshold that accepts exactly the values >= it."""
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    distinct = sorted_values[starts]
    below = np.r_[0.0, distinct[:-1]]
    return _safe_midpoint(below, distinct)[group]


def _thin(indices, keep, max_points):
    """At most `max_points` of `indices`, evenly spread, always holding `keep`."""
    if indices.size <= max_points:
        return indices
    picks = np.linspace(0, indices.size - 1, max_points).round().astype(int)
    picks = np.unique(np.r_[picks, np.flatnonzero(indices == keep)])
    return indices[picks]


def _pareto_mask(n_correct, mean_macs):
    """Non-dominated (max correct, min MACs); one representative per tie."""
    order = np.lexsort((-n_correct, mean_macs))
    nc = n_correct[order]
    best_before = np.r_[-1, np.maximum.accumulate(nc)[:-1]]
    keep = np.zeros(n_correct.size, dtype=bool)
    keep[order[nc > best_before]] = True
    return keep


def _choose(n_correct, mean_macs, required_correct, budget):
    """Index of the operating point under the rule; and whether it is feasible."""
    if budget is not None:
        feasible = mean_macs <= budget * (1 + 1e-12)
        if feasible.any():
            idx = np.flatnonzero(feasible)
            best = idx[np.lexsort((mean_macs[idx], -n_correct[idx]))[0]]
            return int(best), True
    else:
        feasible = n_correct >= required_correct - 1e-9
        if feasible.any():
            idx = np.flatnonzero(feasible)
            best = idx[np.lexsort((-n_correct[idx], mean_macs[idx]))[0]]
            return int(best), True
    best = np.lexsort((mean_macs, -n_correct))[0]
    return int(best), False


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    return value


def _check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost):
    """At most one target; a budget in the unit of the cost searched."""
    given = {
        name: value
        for name, value in (
            ("max_accuracy_drop", max_accuracy_drop),
            ("budget_macs", budget_macs),
            ("budget_ms", budget_ms),
        )
        if value is not None
    }
    if len(given) > 1:
        shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(
            "Give either `max_accuracy_drop` or one budget (`budget_macs` or "
            f"`budget_ms`), not both. Received: {shown}"
        )
    if budget_macs is not None and cost != "macs":
        raise ValueError(
            f"`budget_macs` bounds MACs but the search minimises latency "
            f"(cost={cost!r}); give `budget_ms`. Received: budget_macs={budget_macs!r}"
        )
    if budget_ms is not None and cost != "latency":
        raise ValueError(
            f"`budget_ms` bounds latency but the search minimises MACs "
            f"(cost={cost!r}); pass cost='latency' with the measured latencies. "
            f"Received: budget_ms={budget_ms!r}"
        )


def _run_nsga2(problem, seed_genes, population, generations, rng_seed, archive):
    """NSGA-II (DEAP) over genes in [0, 1]^K; every evaluation goes to `archive`."""
    from deap import base, tools

    class Fitness(base.Fitness):
        weights = (1.0, -1.0)  # accuracy up, mean MACs down

    class Individual(list):
        def __init__(self, *args):
            super().__init__(*args)
            self.fitness = Fitness()

    k, n = problem.k, problem.n
    eta_cx, eta_mut, cxpb, indpb = 15.0, 20.0, 0.9, 1.0 / k

    def evaluate(individuals):
        if not individuals:
            return
        th = problem.decode(np.array([list(ind) for ind in individuals]))
        n_correct, counts = problem.evaluate(th)
        mean_macs = _mean_macs(counts, problem.macs, n)
        archive.append((th, n_correct, counts))
        for ind, nc, mm in zip(individuals, n_correct, mean_macs):
            ind.fitness.values = (int(nc) / n, float(mm))

    state = random.getstate()
    random.seed(rng_seed)
    try:
        pop = [Individual(float(x) for x in g) for g in seed_genes[:population]]
        while len(pop) < population:
            pop.append(Individual(random.random() for _ in range(k)))
        evaluate(pop)
        pop = tools.selNSGA2(pop, population, nd="log")
        for _ in range(generations):
            offspring = [
                Individual(ind) for ind in tools.selTournamentDCD(pop, len(pop))
            ]
            for a, b in zip(offspring[::2], offspring[1::2]):
                if random.random() <= cxpb:
                    tools.cxSimulatedBinaryBounded(a, b, eta_cx, 0.0, 1.0)
                tools.mutPolynomialBounded(a, eta_mut, 0.0, 1.0, indpb)
                tools.mutPolynomialBounded(b, eta_mut, 0.0, 1.0, indpb)
            evaluate(offspring)
            pop = tools.selNSGA2(pop + offspring, population, nd="log")
    finally:
        random.setstate(state)


def search_thresholds_from_probs(
    probs,
    labels,
    exit_macs,
    full_macs=None,
    *,
    max_accuracy_drop=None,
    budget_macs=None,
    measure="max_prob",
    fallback="final",
    seed=0,
    population=100,
    generations=100,
    cost="macs",
    exit_latency_ms=None,
    full_latency_ms=None,
    budget_ms=None,
    margin=DEFAULT_MARGIN,
):
    """Evolves per-exit thresholds (NSGA-II, DEAP) on cached validation outputs.

    Two objectives, accuracy (up) and mean cost (down): MACs (`cost="macs"`) or
    measured latency (`cost="latency"`, from `exit_latency_ms`). The Pareto front
    of every setting evaluated plus every single global threshold (the SDN
    baseline, swept exhaustively) is kept, and the operating point is taken
    from it:

    - `max_accuracy_drop=d`: the cheapest point whose accuracy drop vs the
      final exit, plus `margin` standard errors of that drop, is <= d / 100.
      The drop is `(b - c) / N` over the samples where the cascade and the
      final exit disagree (b: only the final exit right, c: only the cascade),
      its standard error `sqrt(b + c) / N` (McNemar's): a point that just meets
      the target on validation by answering many samples differently from the
      final exit is noise fitted to validation and does not count as meeting
      it. `margin=0` takes the validation figure at face value;
    - `budget_macs=b` (`budget_ms=b` with `cost="latency"`): the most accurate
      point with mean cost <= b.

    The best single global threshold under the same rule is recorded too; the
    returned point is never worse (if the sweep has the better point it is
    returned and `metrics["source"]` says `"global_threshold"`).

    Args:
        probs: list of K+1 arrays of shape (N, C), the final exit last.
        labels: int array of shape (N,) (or one-hot).
        exit_macs: K+1 numbers. Cumulative MACs of answering at each exit.
        full_macs: number. The plain backbone's MACs (speedup baseline).
            Defaults to `exit_macs[-1]`.
        max_accuracy_drop: float >= 0. Percentage points. Defaults to 0.5 when
            `budget_macs` is not given.
        budget_macs: float >= `exit_macs[0]`. Mean MAC budget.
        measure: str. One of `MEASURES`. Defaults to `"max_prob"`.
        fallback: str. One of `FALLBACKS`. Defaults to `"final"`.
        seed: int. Seeds the search (the global `random` state is restored).
            Defaults to 0.
        population: int >= 4 (rounded up to a multiple of 4). Defaults to 100.
        generations: int >= 0. Defaults to 100.
        cost: str. What the search minimises: `"macs"` (`exit_macs`) or
            `"latency"` (`exit_latency_ms`). Defaults to `"macs"`.
        exit_latency_ms: K+1 numbers or None. Measured latency of answering at
            each exit: the cascade's latency through stage k (sum of the stage
            medians 0..k of an export's cost table). When given, the latency
            speedup is reported whatever `cost` is. Defaults to None.
        full_latency_ms: number. The full model's measured latency (the
            latency speedup's baseline). Defaults to `exit_latency_ms[-1]`.
        budget_ms: float >= `exit_latency_ms[0]`. Mean latency budget (only
            with `cost="latency"`).
        margin: float >= 0. Standard errors of the accuracy drop added to it
            before it is held to `max_accuracy_drop` (no effect with a
            budget). Defaults to `DEFAULT_MARGIN` (1.0; measured:
            `benchmarks/results/thresholds`).

    Returns:
        `Thresholds` whose `metrics` hold the validation figures of the chosen
        point (MAC figures always; `mean_latency_ms`, `latency_speedup` with
        `exit_latency_ms`), `cost` and `cost_unit`, `front` (list of
        `(thresholds, accuracy, mean cost)`), `global_front` (list of
        `(threshold, accuracy, mean cost)`), `single_exits` and `full_model`
        (`(accuracy, cost)`), all in the unit of `cost` (MACs or ms),
        `global_threshold` and `ga_choice` (each rule's pick), `source`,
        `target` and `search` settings.

    Example:
    ```python
    th = keras_scan.thresholds.search_thresholds_from_probs(
        val_probs, val_labels, exit_macs=[60e6, 150e6, 300e6, 560e6],
        full_macs=556e6, max_accuracy_drop=0.5)
    th.save("runs/fm18/thresholds.json")
    ```
    """
    start = time.perf_counter()
    _check_measure(measure)
    _check_fallback(fallback)
    _check_cost(cost)
    seed = _check_int("seed", seed, 0)
    population = _check_int("population", population, 4)
    population += -population % 4
    generations = _check_int("generations", generations, 0)
    _check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost)
    if max_accuracy_drop is None and budget_macs is None and budget_ms is None:
        max_accuracy_drop = _DEFAULT_MAX_ACCURACY_DROP
    margin = _check_number("margin", margin)
    if margin < 0:
        raise ValueError(
            "`margin` (standard errors of the accuracy drop) must be >= 0. "
            f"Received: margin={margin!r}"
        )
    if max_accuracy_drop is not None:
        max_accuracy_drop = _check_number("max_accuracy_drop", max_accuracy_drop)
        if max_accuracy_drop < 0:
            raise ValueError(
                "`max_accuracy_drop` (percentage points) must be >= 0. "
                f"Received: max_accuracy_drop={max_accuracy_drop!r}"
            )
    arrays = _as_probs(probs)
    n, c = arrays[0].shape
    k = len(arrays) - 1
    y = _as_labels(labels, n, c)
    macs = _as_exit_macs(exit_macs, k)
    full = _as_full_macs(full_macs, macs)
    latency = _as_latency(exit_latency_ms, full_latency_ms, k)
    if cost == "latency" and latency is None:
        raise ValueError(
            "`cost='latency'` needs `exit_latency_ms` (the measured latency of "
            "answering at each exit, from an export's cost table)."
        )
    # The one cost vector the search minimises, its baseline and budget.
    if cost == "macs":
        costs, full_cost, unit = macs, full, "MACs"
        budget_name, budget, first = "budget_macs", budget_macs, "exit_macs[0]"
    else:
        (costs, full_cost), unit = latency, "ms"
        budget_name, budget, first = "budget_ms", budget_ms, "exit_latency_ms[0]"
    if budget is not None:
        budget = _check_number(budget_name, budget)
        if budget < costs[0]:
            raise ValueError(
                f"`{budget_name}` is below the cheapest possible cascade: every "
                f"sample answering at the first exit costs {first}={costs[0]:g} "
                f"{unit}, the minimum budget. Received: {budget_name}={budget:g}"
            )

    problem = _Problem(arrays, y, costs, measure, fallback)
    required = None
    if max_accuracy_drop is not None:
        required = problem.final_correct - max_accuracy_drop / 100.0 * n

    # --- The SDN baseline: one threshold for every exit, every outcome. ---
    g_th, g_correct, g_counts = problem.global_sweep()
    g_macs = _mean_macs(g_counts, costs, n)
    g_keep = np.flatnonzero(_pareto_mask(g_correct, g_macs))
    g_keep = g_keep[np.argsort(g_macs[g_keep], kind="stable")]

    # --- NSGA-II, seeded with never-exit, always-exit-first and the sweep. ---
    seeds = [np.ones(k), np.zeros(k)]
    n_sweep = min(g_keep.size, population // 2)
    picks = np.unique(np.linspace(0, g_keep.size - 1, n_sweep).round().astype(int))
    sweep_th = np.repeat(g_th[g_keep[picks], None], k, axis=1)
    seeds.extend(problem.encode(sweep_th))
    archive = []
    _run_nsga2(problem, seeds, population, generations, seed, archive)
    ga_th = np.vstack([a[0] for a in archive])
    ga_correct = np.concatenate([a[1] for a in archive])
    ga_counts = np.vstack([a[2] for a in archive])
    ga_macs = _mean_macs(ga_counts, costs, n)

    # --- One front over both; the operating point; the comparison. ---
    all_th = np.vstack([ga_th, np.repeat(g_th[:, None], k, axis=1)])
    all_correct = np.r_[ga_correct, g_correct]
    all_macs = np.r_[ga_macs, g_macs]
    front = np.flatnonzero(_pareto_mask(all_correct, all_macs))
    front = front[np.argsort(all_macs[front], kind="stable")]

    def needed(correct, th):
        """The correct count each setting needs: the target plus `margin`
        standard errors of its drop (see the docstring); counted only for the
        settings that meet the target at face value."""
        if required is None or margin == 0:
            return required
        need = np.full(correct.shape, np.inf)
        candidates = np.flatnonzero(correct >= required - 1e-9)
        if candidates.size:
            b, c = problem.discordant(th[candidates])
            need[candidates] = required + margin * np.sqrt(b + c)
        return need

    # Over every setting evaluated, not the front alone: with a margin, a
    # setting the front drops (as accurate, dearer) may be the safe one.
    g_all = np.repeat(g_th[:, None], k, axis=1)
    chosen, met = _choose(all_correct, all_macs, needed(all_correct, all_th), budget)
    ga_pick, _ = _choose(ga_correct, ga_macs, needed(ga_correct, ga_th), budget)
    g_pick, g_met = _choose(g_correct, g_macs, needed(g_correct, g_all), budget)
    b_chosen, c_chosen = problem.discordant(all_th[chosen])
    ga_is_best = (ga_correct[ga_pick], ga_macs[ga_pick]) == (
        all_correct[chosen],
        all_macs[chosen],
    )
    if not met:
        warnings.warn(
            "No threshold setting reaches the accuracy target "
            f"(max_accuracy_drop={max_accuracy_drop}); returning the most accurate "
            "one. With fallback='ensemble' the cascade may never match the final "
            "exit's accuracy.",
            UserWarning,
            stacklevel=2,
        )

    values = [float(v) for v in all_th[chosen]]
    result = evaluate_thresholds(
        arrays,
        y,
        values,
        macs,
        full,
        measure,
        fallback,
        exit_latency_ms=None if latency is None else latency[0],
        full_latency_ms=None if latency is None else latency[1],
    )

    def point(i):
        return float(all_correct[i]) / n, float(all_macs[i])

    g_mean_macs = float(_mean_macs(g_counts[g_pick], macs, n))
    g_eval = {
        "threshold": float(g_th[g_pick]),
        "accuracy": int(g_correct[g_pick]) / n,
        "mean_macs": g_mean_macs,
        "speedup": full / g_mean_macs if g_mean_macs > 0 else None,
        "exit_shares": [int(x) / n for x in g_counts[g_pick]],
        "constraint_met": bool(g_met),
        **_latency_figures(g_counts[g_pick], latency, n),
    }
    ga_choice = {
        "values": [float(v) for v in ga_th[ga_pick]],
        "accuracy": int(ga_correct[ga_pick]) / n,
        "mean_macs": float(_mean_macs(ga_counts[ga_pick], macs, n)),
        **_latency_figures(ga_counts[ga_pick], latency, n),
    }
    gain = {
        "accuracy": result["accuracy"] - g_eval["accuracy"],
        "mean_macs": result["mean_macs"] - g_eval["mean_macs"],
    }
    if latency is not None:
        gain["mean_latency_ms"] = result["mean_latency_ms"] - g_eval["mean_latency_ms"]
    metrics = dict(result)
    metrics.update(
        {
            "source": "ga" if ga_is_best else "global_threshold",
            "constraint_met": bool(met),
            "cost": cost,
            "cost_unit": unit,
            "target": {
                "max_accuracy_drop": max_accuracy_drop,
                "budget_macs": budget if cost == "macs" else None,
                "budget_ms": budget if cost == "latency" else None,
                "min_accuracy": None if required is None else required / n,
                "margin": margin,
            },
            # Samples only the final exit gets right / only the cascade; the
            # drop (b - c) / N and its standard error sqrt(b + c) / N.
            "discordant": [int(b_chosen[0]), int(c_chosen[0])],
            "drop_standard_error": float(np.sqrt(b_chosen[0] + c_chosen[0])) / n,
            "exit_macs": [float(m) for m in macs],
            "single_exits": [
                (float(np.mean(np.argmax(a, axis=1) == y)), float(m))
                for a, m in zip(arrays, costs)
            ],
            "full_model": (problem.final_correct / n, full_cost),
            "global_threshold": g_eval,
            "ga_choice": ga_choice,
            "gain_vs_global": gain,
            "front": [
                ([float(v) for v in all_th[i]], *point(i)) for i in front.tolist()
            ],
            "global_front": [
                (float(g_th[i]), int(g_correct[i]) / n, float(g_macs[i]))
                for i in _thin(g_keep, g_pick, _MAX_GLOBAL_FRONT_POINTS).tolist()
            ],
            "global_front_size": int(g_keep.size),
            "search": {
                "algorithm": "NSGA-II (DEAP)",
                "seed": seed,
                "population": population,
                "generations": generations,
                "evaluations": int(ga_th.shape[0]),
                "global_thresholds_swept": int(g_th.size),
                "num_samples": int(n),
                "num_exits": int(k + 1),
                "seconds": time.perf_counter() - start,
            },
        }
    )
    if latency is not None:
        metrics["exit_latency_ms"] = [float(v) for v in latency[0]]
    return Thresholds(
        values=values, measure=measure, fallback=fallback, metrics=metrics
    )


# ---------------------------------------------------------------------------
# Model-level search
# ---------------------------------------------------------------------------


def search_thresholds(
    model,
    val_data,
    *,
    max_accuracy_drop=None,
    budget_macs=None,
    measure="max_prob",
    fallback="final",
    seed=0,
    population=100,
    generations=100,
    batch_size=256,
    cost="macs",
    latency=None,
    budget_ms=None,
    margin=DEFAULT_MARGIN,
):
    """Evolves per-exit thresholds of a SCAN model on its validation data.

    Runs the model once over `val_data` (`keras_scan.inference.collect_probs`),
    takes the exits' costs from `model.exit_info` (`macs`: cumulative cost of
    answering at each exit; the speedup baseline is the final exit's
    `standalone_macs`, the plain backbone plus its classifier) and calls
    `search_thresholds_from_probs` (NSGA-II with DEAP, plus the best single
    global threshold as a baseline). Choose thresholds on validation data,
    never on the test split.

    Args:
        model: `keras_scan.ScanModel`, trained.
        val_data: validation data: an `(images, labels)` tuple, a
            `tf.data.Dataset` (batched or not) of `(image, label)` pairs or a
            `keras.utils.PyDataset`.
        max_accuracy_drop: float >= 0. Percentage points below the final exit's
            validation accuracy the cascade may lose; the cheapest such point
            is returned. Defaults to 0.5 when `budget_macs` is not given.
        budget_macs: float. Mean MACs per image allowed (at least the first
            exit's cost); the most accurate point within it is returned.
        measure: str. `"max_prob"`, `"margin"` or `"entropy"`. Defaults to
            `"max_prob"`.
        fallback: str. `"final"` or `"ensemble"`. Defaults to `"final"`.
        seed: int. Seeds the search. Defaults to 0.
        population: int >= 4. NSGA-II population. Defaults to 100.
        generations: int >= 0. NSGA-II generations. Defaults to 100.
        batch_size: int. Images per model call. Defaults to 256.
        cost: str. `"macs"` (counted) or `"latency"` (measured on the device,
            from `latency`). Defaults to `"macs"`.
        latency: dict or None. The measured costs of an export of this model,
            `keras_scan.latency.load_latency(export, variant, model.exit_info)`.
            Required with `cost="latency"`; with `cost="macs"` it adds the
            latency figures to the report. Defaults to None.
        budget_ms: float. Mean latency per image allowed (with
            `cost="latency"`, instead of `budget_macs`).
        margin: float >= 0. Standard errors of the validation accuracy drop
            the chosen point must clear `max_accuracy_drop` by (see
            `search_thresholds_from_probs`). Defaults to 1.0.

    Returns:
        `Thresholds`; `metrics` as in `search_thresholds_from_probs`, plus
        `single_exits_standalone` (accuracy, cost of each exit deployed alone,
        in the unit of `cost`), `exit_names`, `predict_seconds` and, with
        `latency`, `latency_source` (export, variant, threads, device).

    Example:
    ```python
    th = keras_scan.search_thresholds(model, (x_val, y_val), max_accuracy_drop=0.5)
    th.save("runs/fm18/thresholds.json")
    engine = keras_scan.ScalableInference(model, th)
    ```
    """
    from keras_scan import inference

    inference._check_model(model)
    # Cheap argument checks before the forward pass.
    _check_measure(measure)
    _check_fallback(fallback)
    _check_cost(cost)
    _check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost)
    if _check_number("margin", margin) < 0:
        raise ValueError(
            "`margin` (standard errors of the accuracy drop) must be >= 0. "
            f"Received: margin={margin!r}"
        )
    if cost == "latency" and latency is None:
        raise ValueError(
            "`cost='latency'` needs `latency`: the measured costs of an export of "
            "this model (`keras_scan.latency.load_latency(export, variant, "
            "model.exit_info)`; `scan-lite profile EXPORT` measures them)."
        )
    if latency is not None and not isinstance(latency, Mapping):
        raise ValueError(
            "`latency` must be a dict from `keras_scan.latency.load_latency`. "
            f"Received: latency of type {type(latency).__name__}"
        )
    if max_accuracy_drop is not None:
        drop = _check_number("max_accuracy_drop", max_accuracy_drop)
        if drop < 0:
            raise ValueError(
                "`max_accuracy_drop` (percentage points) must be >= 0. "
                f"Received: max_accuracy_drop={max_accuracy_drop!r}"
            )
    info = model.exit_info
    exit_macs = [int(i["macs"]) for i in info]
    full_macs = int(info[-1]["standalone_macs"])
    exit_ms = full_ms = None
    if latency is not None:
        exit_ms = list(latency.get("exit_latency_ms") or [])
        full_ms = latency.get("full_latency_ms")
        if len(exit_ms) != len(info):
            raise ValueError(
                f"`latency` holds costs for {len(exit_ms)} exits but the model has "
                f"{len(info)}: it was measured on an export of another model. "
                f"Received: exit_latency_ms={exit_ms!r}"
            )
        _as_latency(exit_ms, full_ms, len(info) - 1)
        if budget_ms is not None:
            budget = _check_number("budget_ms", budget_ms)
            if budget < exit_ms[0]:
                raise ValueError(
                    "`budget_ms` is below the cheapest possible cascade: every "
                    f"image answering at the first exit ({info[0]['name']}) takes "
                    f"{exit_ms[0]:.4g} ms, the minimum budget. "
                    f"Received: budget_ms={budget_ms!r}"
                )
    if budget_macs is not None:
        budget = _check_number("budget_macs", budget_macs)
        if budget < exit_macs[0]:
            raise ValueError(
                "`budget_macs` is below the cheapest possible cascade: every image "
                f"answering at the first exit ({info[0]['name']}) costs "
                f"{exit_macs[0]} MACs, the minimum budget. "
                f"Received: budget_macs={budget_macs!r}"
            )
    start = time.perf_counter()
    probs, labels = inference.collect_probs(model, val_data, batch_size=batch_size)
    predict_seconds = time.perf_counter() - start
    if labels is None:
        raise ValueError(
            "`val_data` has no labels: pass (images, labels) or a dataset of "
            "(image, label) pairs."
        )
    result = search_thresholds_from_probs(
        probs,
        labels,
        exit_macs,
        full_macs,
        max_accuracy_drop=max_accuracy_drop,
        budget_macs=budget_macs,
        measure=measure,
        fallback=fallback,
        seed=seed,
        population=population,
        generations=generations,
        cost=cost,
        exit_latency_ms=exit_ms,
        full_latency_ms=full_ms,
        budget_ms=budget_ms,
        margin=margin,
    )
    if cost == "latency":
        standalone = latency.get("standalone_latency_ms") or exit_ms
    else:
        standalone = [i["standalone_macs"] for i in info]
    result.metrics["single_exits_standalone"] = [
        (float(np.mean(np.argmax(p, axis=1) == labels)), float(c))
        for p, c in zip(probs, standalone)
    ]
    result.metrics["exit_names"] = [i["name"] for i in info]
    result.metrics["predict_seconds"] = predict_seconds
    if latency is not None:
        result.metrics["latency_source"] = {
            key: latency[key]
            for key in ("export", "variant", "threads", "device")
            if key in latency
        }
    return result
