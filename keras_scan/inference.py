"""Scalable inference: a SCAN model that really stops computing for easy images.

`ScalableInference` runs a `ScanModel`'s stage sub-models (`model.stage_models()`)
one after the other on a batch. After each shallow exit it applies the threshold
rule of `keras_scan.exit_rule` (`should_exit`), keeps the answers of the
confident rows and gathers only the still-undecided rows into the next stage, so
later stages run on fewer rows and the skipped work is never done. Its answers
equal `keras_scan.exit_rule.simulate_cascade` over every exit's probabilities.

`collect_logits` runs the whole model once over a data set and returns every
exit's logits (what `keras_scan.training.evaluate_model` measures accuracy on),
`collect_probs` their softmax probabilities (what the threshold search caches),
and `evaluate_scalable` reports test accuracy, mean MACs, the MAC speedup vs the
plain backbone, the share of images answered by each exit and the measured
wall-time speedup.

Stage calls are compiled once per stage: on the TensorFlow backend each stage is a
`tf.function` with a batch dimension of `None` (one trace per stage, any number of
gathered rows, no retracing); on other backends `predict_on_batch` with the rows
padded to the next power of two (one compilation per bucket).

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import functools
import os
import time
import weakref

import numpy as np

from keras_scan import exit_rule
from keras_scan import progress as progress_lib
from keras_scan.batches import check_images, checked_batches
from keras_scan.checks import is_int
from keras_scan.exit_rule import softmax

DEFAULT_BATCH_SIZE = 256

# The engine takes in up to this many batches at once (see `_pool_rows`),
# within about this many bytes of float32 stage features.
_POOL_BATCHES = 8
_POOL_BYTES = 256 * 2**20


# ---------------------------------------------------------------------------
# Checks and small helpers
# ---------------------------------------------------------------------------


def check_model(model, arg="model"):
    """Returns `model` if it is a `keras_scan.ScanModel`; ValueError naming `arg` if not."""
    needed = ("exit_names", "stage_models", "exit_info", "exit_model")
    if not all(hasattr(model, a) for a in needed):
        raise ValueError(
            f"`{arg}` must be a keras_scan.ScanModel (from `keras_scan.build`). "
            f"Received: {arg} of type {type(model).__name__}"
        )
    return model


def _check_batch_size(batch_size, allow_none=False):
    if batch_size is None and allow_none:
        return DEFAULT_BATCH_SIZE
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def _resolve_thresholds(thresholds, k, measure, fallback):
    """(values (K,), measure, fallback) from a `Thresholds`, a sequence or a path."""
    if isinstance(thresholds, (str, os.PathLike)):
        path = os.fspath(thresholds)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                "`thresholds` must be a Thresholds, K floats or the path of a "
                f"thresholds.json file. Received: thresholds={path!r} (no such file)"
            )
        thresholds = exit_rule.Thresholds.load(path)
    if thresholds is None:
        raise ValueError(
            "`thresholds` is required: a keras_scan Thresholds (from "
            "`keras_scan.search_thresholds`), K floats in [0, 1] or a "
            "thresholds.json path. Received: thresholds=None"
        )
    measure, fallback = exit_rule.resolve_rule(thresholds, measure, fallback)
    values = (
        thresholds.values
        if isinstance(thresholds, exit_rule.Thresholds)
        else thresholds
    )
    try:
        n = len(values)
    except TypeError:
        raise ValueError(
            f"`thresholds` must be {k} numbers in [0, 1] (one per shallow exit). "
            f"Received: thresholds={values!r}"
        ) from None
    if n != k:
        raise ValueError(
            f"`thresholds` must hold one value per shallow exit of the model (K={k}); "
            f"got {n}. Received: thresholds={list(values)!r}"
        )
    return exit_rule.as_thresholds(values, k), measure, fallback


# ---------------------------------------------------------------------------
# Compiled sub-model calls
# ---------------------------------------------------------------------------


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

    def __call__(self, x):
        """The model's outputs as numpy arrays (same structure)."""
        import keras

        x = np.ascontiguousarray(x, dtype=self.dtype)
        if self._fn is not None:
            return keras.tree.map_structure(_to_numpy, self._fn(x))
        n = x.shape[0]
        bucket = 1 << max(0, n - 1).bit_length()
        if bucket != n:
            pad = np.zeros((bucket - n, *x.shape[1:]), dtype=x.dtype)
            x = np.concatenate([x, pad])
        out = self.model.predict_on_batch(x)
        return keras.tree.map_structure(lambda a: np.asarray(a)[:n], out)


def _call_model(ref, x):
    return ref()(x, training=False)


# Compiled callables per model (traced once, reused by every engine and search).
_RUNNERS = weakref.WeakKeyDictionary()


def _runner(model):
    """The cached `_Runner` of `model`."""
    runner = _RUNNERS.get(model)
    if runner is None:
        runner = _RUNNERS[model] = _Runner(model)
    return runner


def _plain_model(model):
    """The final exit alone (plain backbone + classifier), cached per model."""
    plain = _PLAIN.get(model)
    if plain is None:
        plain = _PLAIN[model] = model.exit_model("final")
    return plain


_PLAIN = weakref.WeakKeyDictionary()


def _num_classes(model):
    return int(model.num_classes)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


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
    batch_size = _check_batch_size(batch_size)
    runner = _runner(model)
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
            out = runner(xb)
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


class ScalableInference:
    """Threshold-controlled early exit that skips the computation it saves.

    The model's stages (`model.stage_models()`) run one after the other on a
    pool of images. After shallow exit `i` the rows whose confidence passes
    `thresholds[i]` (`keras_scan.exit_rule.should_exit`: threshold < 1 and
    confidence >= threshold) are answered by that exit; only the remaining rows
    are gathered and passed to stage `i + 1`. Rows no exit accepts are answered
    by the final exit (or the ensemble of all exits). The result equals
    `keras_scan.exit_rule.simulate_cascade` over all exits' probabilities.
    A pool holds up to 8 batches (fewer when the stage features of 8 would
    pass 256 MiB), and every stage runs its remaining rows in slices of
    `batch_size`: later stages run on full batches, not on the few rows
    each batch leaves them, which is what makes the skipped MACs show in
    wall time on a CPU.

    Args:
        model: `keras_scan.ScanModel`.
        thresholds: a `keras_scan.thresholds.Thresholds` (its measure and
            fallback are used), K floats in [0, 1] (one per shallow exit, 1.0
            disables an exit) or the path of a thresholds.json file.
        measure: str or None. Confidence measure (`"max_prob"`, `"margin"`,
            `"entropy"`) when `thresholds` is a plain list. Defaults to the
            `Thresholds`' measure, else `"max_prob"`.
        fallback: str or None. `"final"` or `"ensemble"`. Defaults to the
            `Thresholds`' fallback, else `"final"`.

    Attributes:
        last_report: dict about the last `predict` call: `num_images`,
            `exit_counts`, `exit_shares`, `stage_rows` (rows each stage really
            ran on), `mean_macs` (from `model.exit_info`), `full_macs` (the
            plain backbone), `mac_speedup`, `wall_time_s`, `images_per_s`.

    Example:
    ```python
    th = keras_scan.search_thresholds(model, (x_val, y_val), max_accuracy_drop=0.5)
    engine = keras_scan.ScalableInference(model, th)
    preds, exit_index = engine.predict(x_test)
    engine.last_report["mac_speedup"]
    ```
    """

    def __init__(self, model, thresholds, measure=None, fallback=None):
        check_model(model)
        self.model = model
        self.num_exits = len(model.exit_names)
        k = self.num_exits - 1
        values, self.measure, self.fallback = _resolve_thresholds(
            thresholds, k, measure, fallback
        )
        self.thresholds = [float(v) for v in values]
        info = model.exit_info
        self.exit_macs = [int(i["macs"]) for i in info]
        self.full_macs = int(info[-1]["standalone_macs"])
        self._runners = [_runner(stage) for stage in model.stage_models()]
        self.last_report = None

    def predict(self, images, batch_size=None, return_probabilities=False):
        """Classifies images, each at the first exit confident enough.

        Args:
            images: array of shape (N, H, W, C) (the model's input size).
            batch_size: int or None. Images per cascade run (rows are gathered
                within a batch). Defaults to 256.
            return_probabilities: bool. Also return the probabilities of the
                answering exit (the ensemble mean for rows answered by the
                ensemble fallback). Defaults to `False`.

        Returns:
            `(predictions, exit_index)`: int64 arrays of shape (N,), exit index
            in `0..K` (K = the final exit); with `return_probabilities`, a third
            float32 array of shape (N, C).
        """
        batch_size = _check_batch_size(batch_size, allow_none=True)
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(
                "`images` must be a non-empty array of shape (N, H, W, C). "
                f"Received: shape {x.shape}"
            )
        check_images(x, self.model, "`images`")
        state = self._new_state()
        parts = []
        pool = self._pool_rows(batch_size)
        start = time.perf_counter()
        for s in range(0, x.shape[0], pool):
            parts.append(self._predict_batch(x[s : s + pool], state, batch_size))
        state["wall_time_s"] = time.perf_counter() - start
        self.last_report = self._report(state)
        preds, exits, probs = (np.concatenate(p) for p in zip(*parts))
        if return_probabilities:
            return preds, exits, probs
        return preds, exits

    # -------------------------------------------------------------- internals
    def _new_state(self):
        return {
            "num_images": 0,
            "exit_counts": np.zeros(self.num_exits, dtype=np.int64),
            "stage_rows": np.zeros(self.num_exits, dtype=np.int64),
            "wall_time_s": 0.0,
        }

    def _pool_rows(self, batch_size):
        """Images the cascade takes in at once: a few batches, so that later
        stages, which see only the rows no exit answered, still run on full
        `batch_size` slices (TensorFlow on a CPU runs a conv on 30 rows little
        faster than on 256), bounded to about `_POOL_BYTES` of stage features."""
        widest = max(
            int(np.prod(stage.outputs[0].shape[1:]))
            for stage in self.model.stage_models()[:-1]
        )
        fit = _POOL_BYTES // max(1, 4 * widest)
        return int(max(batch_size, min(batch_size * _POOL_BATCHES, fit)))

    def _predict_batch(self, xb, state, batch_size=None):
        """The cascade over the images `xb`, each stage run on slices of at most
        `batch_size` rows (default: all of them at once)."""
        n = xb.shape[0]
        bs = n if batch_size is None else batch_size
        k = self.num_exits - 1
        c = _num_classes(self.model)
        preds = np.empty(n, dtype=np.int64)
        exits = np.empty(n, dtype=np.int64)
        probs = np.empty((n, c), dtype=np.float32)
        rows = np.arange(n)
        h = xb
        ensemble = self.fallback == "ensemble"
        # Running sum of probabilities for the ensemble fallback, summed in exit
        # order in float64 exactly as `simulate_cascade` does.
        total = np.zeros((n, c), dtype=np.float64) if ensemble else None
        for i in range(k):
            if rows.size == 0:
                break
            state["stage_rows"][i] += rows.size
            kept = []
            for s in range(0, rows.size, bs):
                features, logits = self._runners[i](h[s : s + bs])
                p = softmax(logits)
                r = rows[s : s + bs]
                t = total[s : s + bs] + p if ensemble else None
                take = exit_rule.should_exit(p, self.thresholds[i], self.measure)
                answered = r[take]
                preds[answered] = np.argmax(p[take], axis=1)
                exits[answered] = i
                probs[answered] = p[take]
                keep = ~take
                kept.append((r[keep], features[keep], t[keep] if ensemble else None))
            rows = np.concatenate([r for r, _, _ in kept])
            h = np.concatenate([f for _, f, _ in kept])
            if ensemble:
                total = np.concatenate([t for _, _, t in kept])
        if rows.size:
            state["stage_rows"][k] += rows.size
            for s in range(0, rows.size, bs):
                p = softmax(self._runners[k](h[s : s + bs]))
                r = rows[s : s + bs]
                if ensemble:
                    p = (total[s : s + bs] + p) / self.num_exits
                preds[r] = np.argmax(p, axis=1)
                exits[r] = k
                probs[r] = p
        state["num_images"] += n
        state["exit_counts"] += np.bincount(exits, minlength=self.num_exits)
        return preds, exits, probs

    def _report(self, state):
        n = state["num_images"]
        counts = state["exit_counts"]
        mean_macs = float(np.dot(counts, self.exit_macs)) / n
        wall = state["wall_time_s"]
        return {
            "num_images": int(n),
            "thresholds": list(self.thresholds),
            "measure": self.measure,
            "fallback": self.fallback,
            "exit_counts": [int(v) for v in counts],
            "exit_shares": [int(v) / n for v in counts],
            "stage_rows": [int(v) for v in state["stage_rows"]],
            "mean_macs": mean_macs,
            "full_macs": self.full_macs,
            "mac_speedup": self.full_macs / mean_macs if mean_macs > 0 else None,
            "wall_time_s": wall,
            "images_per_s": n / wall if wall > 0 else None,
        }


def _pooled(batches, rows):
    """`(images, labels)` batches joined into pools of about `rows` images."""
    xs, ys, n = [], [], 0
    for xb, yb in batches:
        xs.append(xb)
        ys.append(yb)
        n += xb.shape[0]
        if n >= rows:
            yield np.concatenate(xs), np.concatenate(ys)
            xs, ys, n = [], [], 0
    if xs:
        yield np.concatenate(xs), np.concatenate(ys)


def evaluate_scalable(
    model,
    x_or_dataset,
    y=None,
    thresholds=None,
    *,
    batch_size=DEFAULT_BATCH_SIZE,
    measure=None,
    fallback=None,
):
    """Test-set figures of threshold-controlled early exit, measured for real.

    Runs `ScalableInference` and, on the same pools of images in the same run,
    the plain backbone (the final exit alone, `model.exit_model("final")`,
    compiled the same way, in slices of `batch_size`), both warmed up first,
    timing each pool.

    Args:
        model: `keras_scan.ScanModel`.
        x_or_dataset: images (with `y`), an `(images, labels)` tuple, a
            `tf.data.Dataset` (batched or not) of `(image, label)` or a
            `keras.utils.PyDataset`.
        y: labels when `x_or_dataset` is an image array. Defaults to None.
        thresholds: a `Thresholds`, K floats in [0, 1], or a thresholds.json
            path. Required.
        batch_size: int. Images per batch for arrays and unbatched datasets.
            Defaults to 256.
        measure, fallback: see `ScalableInference`.

    Returns:
        dict with `accuracy` (scalable), `full_accuracy` (the final exit alone),
        `accuracy_drop` (percentage points), `mean_macs`, `full_macs` (plain
        backbone), `mac_speedup`, `exit_shares`, `exit_counts`, `exit_accuracy`,
        `stage_rows`, `wall_time_s`, `full_wall_time_s`, `wall_speedup`
        (`full_wall_time_s / wall_time_s`), `cpu_time_s`, `full_cpu_time_s`,
        `cpu_speedup` (process CPU time, steadier than wall time on a busy
        machine), `num_samples`, `batch_size`, `thresholds`, `measure`,
        `fallback`, `backend`.

    Example:
    ```python
    th = keras_scan.thresholds.Thresholds.load("runs/fm18/thresholds.json")
    report = keras_scan.inference.evaluate_scalable(model, x_test, y_test, th)
    print(report["accuracy"], report["mac_speedup"], report["wall_speedup"])
    ```
    """
    import keras

    check_model(model)
    batch_size = _check_batch_size(batch_size)
    engine = ScalableInference(model, thresholds, measure=measure, fallback=fallback)
    plain = _runner(_plain_model(model))
    state = engine._new_state()
    k = engine.num_exits - 1
    correct = 0
    full_correct = 0
    correct_at = np.zeros(k + 1, dtype=np.int64)
    full_time = cpu_time = full_cpu_time = 0.0
    warm = False
    pool = engine._pool_rows(batch_size)
    for xb, yb in _pooled(
        checked_batches(
            x_or_dataset, y, batch_size, model, "x_or_dataset", labels_needed=True
        ),
        pool,
    ):
        if not warm:  # trace / compile both before timing anything
            engine._predict_batch(xb[:batch_size], engine._new_state())
            plain(xb[:batch_size])
            warm = True
        c0, t0 = time.process_time(), time.perf_counter()
        preds, exits, _ = engine._predict_batch(xb, state, batch_size)
        c1, t1 = time.process_time(), time.perf_counter()
        full_preds = np.concatenate(
            [
                np.argmax(plain(xb[s : s + batch_size]), axis=1)
                for s in range(0, xb.shape[0], batch_size)
            ]
        )
        c2, t2 = time.process_time(), time.perf_counter()
        state["wall_time_s"] += t1 - t0
        full_time += t2 - t1
        cpu_time += c1 - c0
        full_cpu_time += c2 - c1
        ok = preds == yb
        correct += int(ok.sum())
        full_correct += int((full_preds == yb).sum())
        correct_at += np.bincount(exits, weights=ok, minlength=k + 1).astype(np.int64)
    report = engine._report(state)
    n = report["num_images"]
    counts = report["exit_counts"]
    report.update(
        {
            "accuracy": correct / n,
            "full_accuracy": full_correct / n,
            "accuracy_drop": 100.0 * (full_correct - correct) / n,
            "exit_accuracy": [
                int(a) / m if m else None for a, m in zip(correct_at, counts)
            ],
            "full_wall_time_s": full_time,
            "wall_speedup": full_time / report["wall_time_s"]
            if report["wall_time_s"] > 0
            else None,
            "cpu_time_s": cpu_time,
            "full_cpu_time_s": full_cpu_time,
            "cpu_speedup": full_cpu_time / cpu_time if cpu_time > 0 else None,
            "num_samples": n,
            "batch_size": batch_size,
            "backend": keras.backend.backend(),
        }
    )
    return report
