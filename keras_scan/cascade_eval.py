"""Accuracy and cost of the early-exit cascade on cached per-exit probabilities.

`evaluate_thresholds` applies the exit rule (`keras_scan.exit_rule`) to every
exit's validation probabilities and reports accuracy, the mean cost and the
speedup of a threshold setting. The cost of answering at each exit is one
cumulative vector: MACs counted from the graph, or latency measured on the
device (the cascade's latency through each stage, from an export's cost table,
`keras_scan.latency`). The checks of labels and cost vectors here are shared
with the threshold search (`keras_scan.threshold_search`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from keras_scan.exit_rule import as_probs, resolve_rule, simulate_cascade

COSTS = ("macs", "latency")


def as_labels(labels, n, c):
    """`labels` (N class indices or one-hot (N, C)) as an int64 array (N,), checked."""
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


def as_exit_costs(exit_macs, k, name="exit_macs", positive=False):
    """One cumulative cost per exit (MACs, or ms for `exit_latency_ms`), checked.

    Returns a float64 array of K+1 finite, non-decreasing values, non-negative
    (positive with `positive=True`); errors name the argument `name`.
    """
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


def as_full_cost(full_macs, macs, name="full_macs"):
    """The speedup baseline: `full_macs` if given (a positive number), else `macs[-1]`."""
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


def as_latency(exit_latency_ms, full_latency_ms, k):
    """(cumulative ms per exit, full model ms), or None when not given."""
    if exit_latency_ms is None:
        if full_latency_ms is not None:
            raise ValueError(
                "`full_latency_ms` needs `exit_latency_ms` (the cascade's latency "
                f"through each exit). Received: full_latency_ms={full_latency_ms!r}"
            )
        return None
    ms = as_exit_costs(exit_latency_ms, k, "exit_latency_ms", positive=True)
    return ms, as_full_cost(full_latency_ms, ms, "full_latency_ms")


def check_cost(cost):
    """Returns `cost` if it is one of `COSTS`; raises ValueError otherwise."""
    if not isinstance(cost, str) or cost not in COSTS:
        raise ValueError(f"`cost` must be one of {COSTS}. Received: cost={cost!r}")
    return cost


def latency_figures(counts, latency, n):
    """Mean latency and latency speedup of a point from its per-exit answer counts."""
    if latency is None:
        return {}
    ms, full = latency
    mean = float(mean_cost(np.asarray(counts)[None], ms, n)[0])
    return {"mean_latency_ms": mean, "latency_speedup": full / mean}


def mean_cost(counts, macs, n):
    """Mean cost (MACs or ms) from per-exit answer counts, shape (..., K+1) -> (...)."""
    return (counts.astype(np.float64) * macs).sum(axis=-1) / n


def checked_inputs(
    probs, labels, exit_macs, full_macs, exit_latency_ms, full_latency_ms
):
    """The cascade's inputs checked against each other (errors name them).

    Returns:
        `(probs arrays, labels, exit MACs, full MACs, latency or None)`, as
        `as_probs`, `as_labels`, `as_exit_costs`, `as_full_cost` and
        `as_latency` give them.
    """
    arrays = as_probs(probs)
    n, c = arrays[0].shape
    k = len(arrays) - 1
    y = as_labels(labels, n, c)
    macs = as_exit_costs(exit_macs, k)
    full = as_full_cost(full_macs, macs)
    latency = as_latency(exit_latency_ms, full_latency_ms, k)
    return arrays, y, macs, full, latency


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
    measure, fallback = resolve_rule(thresholds, measure, fallback)
    arrays, y, macs, full, latency = checked_inputs(
        probs, labels, exit_macs, full_macs, exit_latency_ms, full_latency_ms
    )
    n, k = len(y), len(arrays) - 1
    preds, exit_index = simulate_cascade(arrays, thresholds, measure, fallback)
    correct = preds == y
    counts = np.bincount(exit_index, minlength=k + 1)
    correct_at = np.bincount(exit_index, weights=correct, minlength=k + 1)
    mean_macs = float(mean_cost(counts[None], macs, n)[0])
    extra = latency_figures(counts, latency, n)
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
