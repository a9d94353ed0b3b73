"""The one forward pass that every per-exit figure comes from.

`collect_logits` runs the whole model once over a data set and returns every
exit's logits (what `keras_scan.training.evaluate_model` measures accuracy on),
`collect_probs` their softmax probabilities (what the threshold search caches)
and `exit_accuracies` every exit's accuracy (what `grow`, `cut_at_exit` and
`compress` report). `keras_scan.inference.ScalableInference` calls its stages
through the same compiled `runner`.

Models are called compiled, once per model: on the TensorFlow backend a
`tf.function` with a batch dimension of `None` (one trace, any number of rows,
no retracing); on other backends `predict_on_batch` with the rows padded to the
next power of two (one compilation per bucket).
"""

from __future__ import annotations

import functools
import time
import weakref

import numpy as np

from keras_scan import progress as progress_lib
from keras_scan.batches import checked_batches
from keras_scan.checks import is_int
from keras_scan.exit_rule import softmax

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "check_batch_size",
    "check_model",
    "collect_logits",
    "collect_probs",
    "exit_accuracies",
    "exit_names",
    "runner",
]

DEFAULT_BATCH_SIZE = 256


def check_model(model, arg="model"):
    """Returns `model` if it is a `keras_scan.ScanModel`; ValueError naming `arg` if not."""
    needed = ("exit_names", "stage_models", "exit_info", "exit_model")
    if not all(hasattr(model, a) for a in needed):
        raise ValueError(
            f"`{arg}` must be a keras_scan.ScanModel (from `keras_scan.build`). "
            f"Received: {arg} of type {type(model).__name__}"
        )
    return model


def check_batch_size(batch_size, allow_none=False):
    if batch_size is None and allow_none:
        return DEFAULT_BATCH_SIZE
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def _to_numpy(x):
    return np.asarray(x)


class _Runner:
    """Calls a Keras model on any number of rows with a compiled function.

    TensorFlow backend: a `tf.function` whose input signature has a `None`
    batch dimension (traced once). Other backends: `predict_on_batch` on rows
    padded to the next power of two, so a jitted backend compiles once per
    bucket rather than once per distinct row count.
    """

    def __init__(self, model):
        import keras

        self.model = weakref.proxy(model)
        self.backend = keras.backend.backend()
        self._fn = None
        if self.backend == "tensorflow":
            import tensorflow as tf

            spec = model.inputs[0]
            signature = [tf.TensorSpec((None, *spec.shape[1:]), dtype=spec.dtype)]
            # A weak reference: the cache below must not keep the model alive.
            # A `partial`, not a closure: TensorFlow counts traces per code
            # object, and one trace per stage of one closure reads to it as
            # "retracing" (and warns).
            self._fn = tf.function(
                functools.partial(_call_model, weakref.ref(model)),
                input_signature=signature,
                autograph=False,
            )
        self.dtype = np.dtype(model.inputs[0].dtype)

    @staticmethod
    def _is_tensor(x):
        import tensorflow as tf

        return isinstance(x, tf.Tensor)

    def __call__(self, x):
        """The model's outputs as numpy arrays (same structure)."""
        import keras

        return keras.tree.map_structure(_to_numpy, self.native(x))

    def native(self, x):
        """The model's outputs as the backend hands them over: TensorFlow
        tensors on TensorFlow (so a stage's features can go on to the next
        stage without a round trip through numpy), numpy arrays elsewhere.
        `x` is a numpy array or, on TensorFlow, a tensor of the input dtype."""
        import keras

        if self._fn is not None:
            if not self._is_tensor(x):
                x = np.ascontiguousarray(x, dtype=self.dtype)
            return self._fn(x)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        n = x.shape[0]
        bucket = 1 << max(0, n - 1).bit_length()
        if bucket != n:
            pad = np.zeros((bucket - n, *x.shape[1:]), dtype=x.dtype)
            x = np.concatenate([x, pad])
        out = self.model.predict_on_batch(x)
        return keras.tree.map_structure(lambda a: np.asarray(a)[:n], out)

    def warm_up(self, x, max_calls=6, tolerance=0.15):
        """Calls the model on `x` until two calls in a row take about the same
        time (within `tolerance`), at most `max_calls` times; returns the last
        outputs (native, see `native`). On TensorFlow the first calls of a
        traced function run several times slower than the later ones (the
        first one traces; the next few still set up kernels and memory), so
        timing starts only once this returns."""
        last = None
        for _ in range(max_calls):
            start = time.perf_counter()
            out = self.native(x)
            took = time.perf_counter() - start
            if last is not None and abs(took - last) <= tolerance * last:
                break
            last = took
        return out


def _call_model(ref, x):
    return ref()(x, training=False)


# Compiled callables per model (traced once, reused by every engine and search).
_RUNNERS = weakref.WeakKeyDictionary()


def runner(model):
    """The cached `_Runner` of `model`."""
    cached = _RUNNERS.get(model)
    if cached is None:
        cached = _RUNNERS[model] = _Runner(model)
    return cached


def exit_names(model):
    """The exits of `model`: `model.exit_names`, or `["final"]` for a plain model."""
    names = getattr(model, "exit_names", None)
    return list(names) if names is not None else ["final"]


def collect_logits(
    model,
    data,
    batch_size=DEFAULT_BATCH_SIZE,
    *,
    y=None,
    labels_needed=False,
    arg="data",
):
    """Runs the whole model once over `data`; every exit's logits.

    The one forward pass that per-exit figures come from: `collect_probs` (the
    threshold search) and `keras_scan.training.evaluate_model` (accuracy per
    exit) both read it. The model runs in inference mode, compiled as
    `ScalableInference` compiles its stages, in batches of `batch_size`.

    Args:
        model: `keras_scan.ScanModel`, or a plain single-output classifier (a
            `--no-exits` baseline, a grown model), read as one `"final"` exit.
        data: images of shape (N, H, W, C) (labels in `y`, or none), an
            `(images, labels)` tuple, a `tf.data.Dataset` (batched or not) of
            images or `(image, label)` pairs, or a `keras.utils.PyDataset`.
        batch_size: int. Rows per model call for array data and unbatched
            datasets. Defaults to 256.
        y: labels for image-array `data`, or None. Defaults to None.
        labels_needed: bool. Refuse data without labels. Defaults to `False`.
        arg: str. The name of `data` in error messages. Defaults to `"data"`.

    Returns:
        `(logits, labels)`: `logits` a list of float32 arrays of shape (N, C),
        one per exit (`exit_names(model)` order, the final exit last); `labels`
        an int64 array of shape (N,), or None when the data has no labels.
    """
    return _collect(model, data, batch_size, y, arg, labels_needed, _as_float32)


def _num_images(data):
    """How many images `data` holds, when that is known without reading it."""
    if isinstance(data, (tuple, list)) and data:
        data = data[0]
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) == 4:
        return int(shape[0])
    spec = getattr(data, "element_spec", None)
    if spec is not None and hasattr(data, "cardinality"):
        image = spec[0] if isinstance(spec, (tuple, list)) else spec
        if getattr(getattr(image, "shape", None), "rank", None) == 3:
            n = int(data.cardinality())
            return n if n >= 0 else None
    return None


def _as_float32(logits):
    return np.asarray(logits, np.float32)


def _collect(model, data, batch_size, y, arg, labels_needed, transform, progress=False):
    """`transform` of every exit's output over `data`, batch by batch, and labels."""
    progress_lib.check(progress)
    batch_size = check_batch_size(batch_size)
    call = runner(model)
    names = exit_names(model)
    chunks = [[] for _ in names]
    labels = []
    has_labels = None
    bar = progress_lib.bar(
        progress, total=_num_images(data), desc="forward pass", unit="images"
    )
    with bar:
        for xb, yb in checked_batches(data, y, batch_size, model, arg, labels_needed):
            if has_labels is None:
                has_labels = yb is not None
            elif has_labels != (yb is not None):
                raise ValueError(f"`{arg}` yields batches with and without labels.")
            out = call(xb)
            if not isinstance(out, dict):  # a plain model: its one output
                out = {names[-1]: out}
            for chunk, name in zip(chunks, names):
                chunk.append(transform(out[name]))
            if yb is not None:
                labels.append(yb)
            bar.update(len(xb))
    outputs = [np.concatenate(c) for c in chunks]
    return outputs, (np.concatenate(labels) if has_labels else None)


def exit_accuracies(model, data, batch_size=DEFAULT_BATCH_SIZE, *, y=None, arg="data"):
    """Accuracy of every exit on labelled `data`, from one `collect_logits` pass.

    The share of examples whose argmax logit is the label, per exit: what
    `evaluate_model`, `grow`, `cut_at_exit` and `compress` report.

    Args:
        model: `keras_scan.ScanModel`, or a plain single-output classifier
            (logits or probabilities), read as one `"final"` exit.
        data: labelled data as `collect_logits` takes it.
        batch_size: int. Rows per model call. Defaults to 256.
        y: labels for image-array `data`, or None. Defaults to None.
        arg: str. The name of `data` in error messages. Defaults to `"data"`.

    Returns:
        A dict exit name -> accuracy (a float in [0, 1]), `exit_names` order.
    """
    logits, labels = collect_logits(
        model, data, batch_size, y=y, labels_needed=True, arg=arg
    )
    return {
        name: float(np.mean(np.argmax(z, axis=-1) == labels))
        for name, z in zip(exit_names(model), logits)
    }


def collect_probs(
    model, data, batch_size=DEFAULT_BATCH_SIZE, *, y=None, progress=False
):
    """Runs the whole model once over `data`; every exit's softmax probabilities.

    This is what the threshold search caches: one forward pass of the multi-exit
    model (no early exit, `collect_logits`), the logits of each exit turned into
    probabilities by `keras_scan.exit_rule.softmax`.

    Args:
        model: `keras_scan.ScanModel`.
        data: images of shape (N, H, W, C) (labels in `y`, or none), an
            `(images, labels)` tuple, a `tf.data.Dataset` (batched or not) of
            images or `(image, label)` pairs, or a `keras.utils.PyDataset`.
        batch_size: int. Rows per model call for array data and unbatched
            datasets. Defaults to 256.
        y: labels for image-array `data`, or None. Defaults to None.
        progress: bool. Draw a bar over the images on stderr
            (`keras_scan.progress`; its total is known for arrays and
            unbatched datasets of known size). Defaults to `False`.

    Returns:
        `(probs, labels)`: `probs` a list of K+1 float32 arrays of shape (N, C)
        (`model.exit_names` order, the final exit last); `labels` an int64 array
        of shape (N,), or None when the data has no labels.

    Example:
    ```python
    probs, labels = keras_scan.inference.collect_probs(model, (x_val, y_val))
    th = keras_scan.thresholds.search_thresholds_from_probs(
        probs, labels, [i["macs"] for i in model.exit_info])
    ```
    """
    check_model(model)
    return _collect(model, data, batch_size, y, "data", False, softmax, progress)
