"""Argument checks of `keras_scan.compress` (all run before any work)."""

import numpy as np

from keras_scan.checks import is_number

__all__ = ["as_arrays", "check_budget", "names_list"]


def check_budget(budget_flops, budget_params):
    given = [
        (n, v)
        for n, v in (("budget_flops", budget_flops), ("budget_params", budget_params))
        if v is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "Exactly one of `budget_flops` and `budget_params` must be given (a "
            "fraction of the teacher's backbone MACs or parameters in (0, 1)). "
            f"Received: budget_flops={budget_flops!r}, budget_params={budget_params!r}"
        )
    name, value = given[0]
    ok = is_number(value) and 0 < value < 1
    if not ok:
        raise ValueError(
            f"`{name}` must be a fraction of the teacher strictly between 0 and 1 "
            f"(e.g. 0.5 for half). Received: {name}={value!r}"
        )
    return name, float(value)


def names_list(value, arg):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    value = list(value)
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{arg}` must be a list of str. Received: {arg}={value!r}")
    return value


def as_arrays(data, arg):
    """`(x, y)` numpy arrays from a pair of arrays or a tf.data-like dataset."""
    if data is None:
        raise ValueError(f"`{arg}` must be (x, y) arrays. Received: {arg}=None")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(
                f"`{arg}` must be an (x, y) pair. Received: {arg} of length {len(data)}"
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
    elif hasattr(data, "as_numpy_iterator"):
        xs, ys = [], []
        for item in data.as_numpy_iterator():
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(
                    f"`{arg}` must yield (image, label) pairs. Received: elements "
                    f"of type {type(item).__name__}"
                )
            xs.append(np.asarray(item[0]))
            ys.append(np.asarray(item[1]))
        if not xs:
            raise ValueError(f"`{arg}` holds no examples. Received: {arg}={data!r}")
        batched = xs[0].ndim == 4
        x = np.concatenate(xs) if batched else np.stack(xs)
        y = np.concatenate(ys) if batched else np.stack(ys)
    else:
        raise TypeError(
            f"`{arg}` must be (x, y) numpy arrays or a tf.data.Dataset of "
            f"(image, label). Received: {arg} of type {type(data).__name__}"
        )
    if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"`{arg}` must be non-empty images (N, H, W, C) with N labels. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}"
        )
    return x.astype(np.float32, copy=False), y.reshape(-1).astype(np.int32)
