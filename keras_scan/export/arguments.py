"""Argument checks of `keras_scan.export` (all run before anything is written)."""

import warnings

import numpy as np

from keras_scan.checks import is_int
from keras_scan.export.litert import MODES


def check_model(model):
    if not all(hasattr(model, a) for a in ("stage_models", "exit_model", "exit_names")):
        raise ValueError(
            "`model` must be a keras_scan.ScanModel (from `keras_scan.build`). "
            f"Received: model={type(model).__name__}"
        )


def check_positive_int(name, value):
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def resolve_modes(quantize):
    values = [quantize] if isinstance(quantize, str) else quantize
    try:
        values = list(values)
    except TypeError:
        values = None
    if not values or not all(isinstance(v, str) and v in MODES for v in values):
        raise ValueError(
            f"`quantize` must be one of {MODES} or a list of them. "
            f"Received: quantize={quantize!r}"
        )
    return list(dict.fromkeys(values))


def resolve_thresholds(thresholds, num_shallow):
    """-> dict(values, measure, fallback, source) for the manifest.

    Called by `export` itself: the warning's `stacklevel` names export's caller.
    """
    from keras_scan import thresholds as thresholds_lib

    if thresholds is None:
        warnings.warn(
            "No thresholds given: exporting with every threshold at 1.0, so the "
            "cascade never exits early. Run `keras-scan search` (or pass "
            "`thresholds=`) to enable early exit.",
            UserWarning,
            stacklevel=3,
        )
        return {
            "values": [1.0] * num_shallow,
            "measure": "max_prob",
            "fallback": "final",
            "source": "none",
        }
    source = "given"
    if isinstance(thresholds, dict):
        thresholds = thresholds_lib.Thresholds.from_dict(thresholds)
        source = "search"
    elif not isinstance(thresholds, thresholds_lib.Thresholds):
        thresholds = thresholds_lib.Thresholds(thresholds)
    elif thresholds.metrics:
        source = "search"
    if len(thresholds.values) != num_shallow:
        raise ValueError(
            f"`thresholds` must hold one value per shallow exit of the model "
            f"({num_shallow}). Received: thresholds={thresholds.values!r}"
        )
    return {
        "values": [float(v) for v in thresholds.values],
        "measure": thresholds.measure,
        "fallback": thresholds.fallback,
        "source": source,
    }


def resolve_labels(labels, num_classes):
    if labels is None:
        return [str(i) for i in range(num_classes)]
    labels = [labels] if isinstance(labels, str) else list(labels)
    if len(labels) != num_classes or not all(isinstance(s, str) for s in labels):
        raise ValueError(
            f"`labels` must be {num_classes} class names (str), one per class. "
            f"Received: labels={labels!r}"
        )
    return labels


def input_shape(model):
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(
            "LiteRT export needs a fixed image input size (height, width, "
            f"channels). Received: model input shape {model.inputs[0].shape}"
        )
    if shape[-1] not in (1, 3):
        raise ValueError(
            "LiteRT export supports 1- or 3-channel images (NHWC). Received: "
            f"model input shape {model.inputs[0].shape}"
        )
    return shape


def check_images(name, images, shape):
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(
            f"`{name}` must hold images of shape {tuple(shape)} (the model input). "
            f"Received: images of shape {tuple(images.shape[1:])}"
        )


def as_test_arrays(test_data, limit, shape):
    if isinstance(test_data, (tuple, list)) and len(test_data) == 2:
        x, y = np.asarray(test_data[0]), np.asarray(test_data[1])
        if limit is not None:
            x, y = x[:limit], y[:limit]
    else:
        import tensorflow as tf

        if not isinstance(test_data, tf.data.Dataset):
            raise ValueError(
                "`test_data` must be (x, y) arrays or a tf.data.Dataset of "
                f"(image, label). Received: {type(test_data).__name__}"
            )
        ds = test_data
        if ds.element_spec[0].shape.rank == 4:
            ds = ds.unbatch()
        if limit is not None:
            ds = ds.take(limit)
        pairs = list(ds.as_numpy_iterator())
        x = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, *shape))
        y = np.asarray([p[1] for p in pairs])
    y = y.reshape(-1)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            "`test_data` must hold at least one image and one label per image. "
            f"Received: {len(x)} images and {len(y)} labels"
        )
    check_images("test_data", x, shape)
    return x.astype(np.float32), y.astype(np.int64)
