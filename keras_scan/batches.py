"""User data as checked numpy batches of `(images, labels)` for a SCAN model.

`checked_batches` accepts what `keras_scan.inference` and
`keras_scan.training.evaluate_model` take as data: an image array (with labels
or without), an `(images, labels)` tuple, a `tf.data.Dataset` (batched or not)
or a `keras.utils.PyDataset`, and yields non-empty numpy batches whose images
match the model's input, with labels as int64 class indices (one-hot labels are
converted).
"""

from __future__ import annotations

import numpy as np


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(
        data, "element_spec"
    )


def _is_py_dataset(data):
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, keras.utils.PyDataset)


def _split_element(element, where):
    """(x, y or None) from a batch `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`."""
    if isinstance(element, dict):
        raise ValueError(
            f"{where} must yield images or (images, labels) tuples, not dicts. "
            f"Received keys: {sorted(element)}"
        )
    if isinstance(element, (tuple, list)):
        if not 1 <= len(element) <= 3:
            raise ValueError(
                f"{where} must yield (images, labels) pairs. Received: a "
                f"{type(element).__name__} of length {len(element)}"
            )
        x = element[0]
        y = element[1] if len(element) > 1 else None
        return np.asarray(x), None if y is None else np.asarray(y)
    return np.asarray(element), None


def _iter_batches(data, y, batch_size, arg="data"):
    """Yields `(images, labels or None)` numpy batches of `data`.

    `data` may be an image array (with `y` or without), an `(x, y)` tuple, a
    `tf.data.Dataset` (batched or not) or a `keras.utils.PyDataset`.
    """
    if _is_tf_dataset(data):
        if y is not None:
            raise ValueError(
                f"`y` must be None when `{arg}` is a tf.data.Dataset (it yields the "
                "labels). Received: y of type " + type(y).__name__
            )
        spec = data.element_spec
        image_spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        rank = getattr(getattr(image_spec, "shape", None), "rank", None)
        if rank == 3:
            data = data.batch(batch_size)
        elif rank != 4:
            raise ValueError(
                f"`{arg}` must be a tf.data.Dataset of images of rank 3 (unbatched) "
                f"or 4 (batched), or of (image, label) pairs. Received: "
                f"element_spec={spec}"
            )
        for element in data.as_numpy_iterator():
            yield _split_element(element, f"`{arg}`")
        return
    if _is_py_dataset(data):
        if y is not None:
            raise ValueError(
                f"`y` must be None when `{arg}` is a PyDataset (it yields the "
                "labels). Received: y of type " + type(y).__name__
            )
        for i in range(len(data)):
            yield _split_element(data[i], f"`{arg}`")
        return
    if isinstance(data, (tuple, list)):
        if y is not None or len(data) not in (1, 2, 3):
            raise ValueError(
                f"`{arg}` must be images with `y`, or an (images, labels) tuple "
                f"without `y`. Received: a {type(data).__name__} of length "
                f"{len(data)} and y={'None' if y is None else 'given'}"
            )
        x, y = data[0], (data[1] if len(data) > 1 else None)
    else:
        x = data
    try:
        x = np.asarray(x)
    except (TypeError, ValueError):
        x = None
    if x is None or x.ndim != 4 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"`{arg}` must be images of shape (N, H, W, C), an (images, labels) "
            "tuple, a tf.data.Dataset or a keras.utils.PyDataset. Received: "
            + (
                f"an array of shape {x.shape} and dtype {x.dtype}"
                if x is not None
                else f"{type(data).__name__}"
            )
        )
    if y is not None:
        y = np.asarray(y)
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(
                f"`y` must hold one label per image ({x.shape[0]}). Received: "
                f"y of shape {y.shape}"
            )
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        yield x[start:stop], None if y is None else y[start:stop]


def _sparse_labels(labels, num_classes):
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == num_classes:
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(
            "Labels must be class indices of shape (N,) or one-hot of shape "
            f"(N, {num_classes}). Received: labels of shape {y.shape}"
        )
    return y.astype(np.int64)


def _model_classes(model):
    """Classes `model` predicts: `num_classes` of a `ScanModel`, else the width
    of its (single) output."""
    n = getattr(model, "num_classes", None)
    return int(n if n is not None else model.outputs[0].shape[-1])


def check_images(x, model, where):
    """Raises ValueError (naming `where`) unless `x` is images of the model's input shape."""
    want = tuple(model.inputs[0].shape[1:])
    got = tuple(x.shape[1:])
    if x.ndim != 4 or any(w is not None and w != g for w, g in zip(want, got)):
        raise ValueError(
            f"{where} must be images of shape (N, {', '.join(map(str, want))}) to "
            f"match the model's input. Received: shape {x.shape}"
        )


def checked_batches(data, y, batch_size, model, arg, labels_needed):
    """Yields checked, non-empty `(images, labels or None)` batches; raises if none.

    Args:
        data: images of shape (N, H, W, C), an `(images, labels)` tuple, a
            `tf.data.Dataset` (batched or not) or a `keras.utils.PyDataset`.
        y: labels for image-array `data`, or None.
        batch_size: int. Rows per batch for arrays and unbatched datasets.
        model: the model the images are for (input shape, number of classes;
            a `ScanModel` or a single-output classifier).
        arg: str. The argument's name, for error messages.
        labels_needed: bool. Raise ValueError for a batch without labels.
    """
    any_batch = False
    for xb, yb in _iter_batches(data, y, batch_size, arg):
        if xb.shape[0] == 0:
            continue
        check_images(xb, model, f"`{arg}`")
        if labels_needed and yb is None:
            raise ValueError(
                f"`{arg}` has no labels: pass (images, labels), `y=labels`, or a "
                "dataset that yields (image, label) pairs."
            )
        any_batch = True
        yield xb, (None if yb is None else _sparse_labels(yb, _model_classes(model)))
    if not any_batch:
        raise ValueError(
            f"`{arg}` holds no samples (the data is empty); it must hold at least "
            "one image."
        )
