"""The early-exit rule and its settings file (`Thresholds`, thresholds.json).

One rule, shared by the simulation over cached probabilities
(`simulate_cascade`), the Keras engine (`keras_scan.inference`), the threshold
search and the device runtime (tflite/scan_lite, android_demo, pinned by the
same conformance vectors):

a sample answers at the first shallow exit `i` with `thresholds[i] < 1` and
`confidence_i >= thresholds[i]`; a threshold of exactly 1.0 disables its exit (so
all-1.0 never exits early, even where a float32 softmax saturates at 1.0). Samples
that no shallow exit accepts answer at the final exit (index `K`) with the fallback
rule: `"final"` (the final exit's argmax) or `"ensemble"` (argmax of the mean of all
exits' probabilities).

The confidence of an exit is one of `MEASURES` (`confidence`) computed on its
softmax probabilities (`softmax`). `Thresholds` holds one threshold per shallow
exit, the measure, the fallback and how they were chosen, and reads and writes
thresholds.json (`FORMAT_VERSION`).

This module is a leaf: it imports numpy, the standard library and
`keras_scan.files` only, so the search, the engine and the exporter can all use
it.

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import field

import numpy as np

from keras_scan import files

MEASURES = ("max_prob", "margin", "entropy")
FALLBACKS = ("final", "ensemble")
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------


def check_measure(measure):
    """Returns `measure` if it is one of `MEASURES`; raises ValueError otherwise."""
    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(
            f"`measure` must be one of {MEASURES}. Received: measure={measure!r}"
        )
    return measure


def check_fallback(fallback):
    """Returns `fallback` if it is one of `FALLBACKS`; raises ValueError otherwise."""
    if not isinstance(fallback, str) or fallback not in FALLBACKS:
        raise ValueError(
            f"`fallback` must be one of {FALLBACKS}. Received: fallback={fallback!r}"
        )
    return fallback


def as_probs(probs):
    """Validates the per-exit probabilities; returns a list of 2-D arrays.

    Args:
        probs: list of K+1 arrays of shape (N, C) (or one array of shape
            (K+1, N, C)), every exit's softmax probabilities, the final exit
            last; K >= 1, N >= 1, C >= 2, values in [0, 1].

    Returns:
        list of K+1 numpy arrays of shape (N, C).
    """
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


def as_thresholds(thresholds, k):
    """`thresholds` (K numbers in [0, 1] or a `Thresholds`) as a float64 array (K,).

    Raises ValueError when there are not exactly `k` values or one lies outside
    [0, 1] (NaN included).
    """
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


def resolve_rule(thresholds, measure, fallback):
    """The `(measure, fallback)` a call applies, checked.

    From a `Thresholds` its own measure and fallback (an explicit `measure` or
    `fallback` that differs raises ValueError); for plain values the given
    ones, defaulting to `"max_prob"` and `"final"`.
    """
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
    return check_measure(measure), check_fallback(fallback)


# ---------------------------------------------------------------------------
# Confidence and the cascade
# ---------------------------------------------------------------------------


def softmax(logits, dtype=np.float32):
    """Row-wise softmax, the largest logit subtracted first (no overflow).

    The one softmax of keras_scan's numpy side: the threshold search, the
    engine and the evaluation use it in float32 (the default); pass
    `dtype=np.float64` for a reference computed in double precision.

    Args:
        logits: array of shape (..., C).
        dtype: numpy float dtype the softmax is computed and returned in.
            Defaults to float32.
    """
    z = np.asarray(logits, dtype=dtype)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.ascontiguousarray(e / e.sum(axis=-1, keepdims=True))


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
    check_measure(measure)
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


def fallback_predictions(arrays, fallback):
    """Predictions of the final exit under `fallback`, shape (N,).

    `"final"`: the final exit's argmax; `"ensemble"`: argmax of the mean of all
    exits' probabilities (summed in exit order in float64).
    """
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
    measure, fallback = resolve_rule(thresholds, measure, fallback)
    arrays = as_probs(probs)
    k = len(arrays) - 1
    th = as_thresholds(thresholds, k)
    conf = np.stack([confidence(a, measure) for a in arrays[:-1]])
    exit_index = _exit_index(conf, th)
    per_exit = np.stack(
        [np.argmax(a, axis=1) for a in arrays[:-1]]
        + [fallback_predictions(arrays, fallback)]
    )
    n = per_exit.shape[1]
    preds = per_exit[exit_index, np.arange(n)]
    return preds.astype(np.int64), exit_index.astype(np.int64)


# ---------------------------------------------------------------------------
# The settings file
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
        check_measure(self.measure)
        check_fallback(self.fallback)
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
