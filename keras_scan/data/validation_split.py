"""The validation split held out of train (seeded)."""

import numpy as np


def check_fraction(val_fraction):
    """ValueError unless `val_fraction` is a number strictly between 0 and 1."""
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float, np.floating))
        or not 0 < val_fraction < 1
    ):
        raise ValueError(
            "`val_fraction` must be a number strictly between 0 and 1. "
            f"Received: val_fraction={val_fraction!r}"
        )


def _validation_indices(y, val_fraction, seed):
    """Seeded, stratified choice of round(N * val_fraction) indices (sorted)."""
    y = np.asarray(y)
    n = len(y)
    if n < 2:
        raise ValueError(
            f"Need at least 2 examples to hold out a validation split; got {n}."
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    ideal = counts * n_val / n
    per_class = np.floor(ideal).astype(int)
    remainder = n_val - int(per_class.sum())
    # Largest remainders first, ties broken at random (seeded).
    order = np.lexsort((rng.random(len(classes)), -(ideal - per_class)))
    per_class[order[:remainder]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(inverse == k))[:m]
        for k, m in enumerate(per_class)
    ]
    return np.sort(np.concatenate(chosen))


def split_validation(x, y, val_fraction=0.1, seed=0):
    """Holds a seeded, stratified validation split out of `(x, y)`.

    Each class contributes its share of the round(N * val_fraction) validation
    examples; both parts keep the original order.

    Args:
        x: array-like of N examples (images, or anything indexable by an array).
        y: array-like of N integer labels.
        val_fraction: float in (0, 1). The share held out. Defaults to `0.1`.
        seed: int. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_val, y_val)`.
    """
    check_fraction(val_fraction)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(
            f"`x` and `y` must have the same length. Received: len(x)={len(x)}, "
            f"len(y)={len(y)}"
        )
    val_idx = _validation_indices(y, val_fraction, seed)
    is_val = np.zeros(len(y), bool)
    is_val[val_idx] = True
    train_idx = np.flatnonzero(~is_val)
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def seeded_roles(n, val_fraction, seed):
    """Boolean array: True where example i goes to validation (seeded)."""
    if n < 2:
        raise ValueError(
            f"Need at least 2 training examples to hold out a validation split; "
            f"got {n}."
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    is_val = np.zeros(n, bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return is_val
