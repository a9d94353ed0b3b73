"""Scalable inference: a SCAN model that really stops computing for easy images.

`ScalableInference` runs a `ScanModel`'s stage sub-models (`model.stage_models()`)
one after the other on a batch. After each shallow exit it applies the threshold
rule of `keras_scan.exit_rule` (`should_exit`), keeps the answers of the
confident rows and gathers only the still-undecided rows into the next stage, so
later stages run on fewer rows and the skipped work is never done. Its answers
equal `keras_scan.exit_rule.simulate_cascade` over every exit's probabilities.

`evaluate_scalable` reports test accuracy, mean MACs, the MAC speedup vs the
plain backbone, the share of images answered by each exit and the measured
wall-time speedup.

Stage calls are compiled once per stage (`keras_scan.forward.runner`). The
forward pass over a whole data set (`collect_logits`, `collect_probs`,
`exit_accuracies`) lives in `keras_scan.forward` and is re-exported here.

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import os
import time
import weakref

import numpy as np

from keras_scan import exit_rule
from keras_scan.batches import check_images, checked_batches
from keras_scan.exit_rule import softmax
from keras_scan.forward import (
    DEFAULT_BATCH_SIZE,
    check_batch_size,
    check_model,
    collect_logits,
    collect_probs,
    exit_accuracies,
    exit_names,
    runner,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ScalableInference",
    "check_model",
    "collect_logits",
    "collect_probs",
    "evaluate_scalable",
    "exit_accuracies",
    "exit_names",
]

# The engine takes in up to this many batches at once (see `_pool_rows`),
# within about this many bytes of float32 stage features.
_POOL_BATCHES = 8
_POOL_BYTES = 256 * 2**20


# ---------------------------------------------------------------------------
# Checks and small helpers
# ---------------------------------------------------------------------------


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


def _plain_model(model):
    """The final exit alone (plain backbone + classifier), cached per model."""
    plain = _PLAIN.get(model)
    if plain is None:
        plain = _PLAIN[model] = model.exit_model("final")
    return plain


_PLAIN = weakref.WeakKeyDictionary()


def _num_classes(model):
    return int(model.num_classes)


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
        self._runners = [runner(stage) for stage in model.stage_models()]
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
        batch_size = check_batch_size(batch_size, allow_none=True)
        x = self._checked_images(images)
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

    def warm_up(self, images, batch_size=None):
        """Gets every stage ready before anything is timed: each stage runs
        on the first `batch_size` images until its calls take a steady time
        (`keras_scan.forward` `_Runner.warm_up`; a cascade alone would leave
        later stages cold at full batches, as they see only the rows earlier
        exits did not answer), then the cascade runs once over all of
        `images` (a pool: on TensorFlow the first pool after the set-up
        still ran 1.5x slower than the next ones, measured). Nothing is
        recorded in `last_report`.

        Args:
            images: array of shape (N, H, W, C), e.g. the first pool.
            batch_size: int or None. Rows per stage call. Defaults to 256.
        """
        batch_size = check_batch_size(batch_size, allow_none=True)
        x = self._checked_images(images)
        h = x[:batch_size]
        for i, run in enumerate(self._runners):
            out = run.warm_up(h)
            if i < len(self._runners) - 1:
                h = out[0]
        self._predict_batch(x, self._new_state(), batch_size)

    # -------------------------------------------------------------- internals
    def _checked_images(self, images):
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(
                "`images` must be a non-empty array of shape (N, H, W, C). "
                f"Received: shape {x.shape}"
            )
        check_images(x, self.model, "`images`")
        return x

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
                # The features stay the backend's tensors (no copy to numpy
                # and back); only the logits come over to numpy for the rule.
                features, logits = self._runners[i].native(h[s : s + bs])
                p = softmax(np.asarray(logits))
                r = rows[s : s + bs]
                t = total[s : s + bs] + p if ensemble else None
                take = exit_rule.should_exit(p, self.thresholds[i], self.measure)
                answered = r[take]
                preds[answered] = np.argmax(p[take], axis=1)
                exits[answered] = i
                probs[answered] = p[take]
                keep = ~take
                kept.append(
                    (r[keep], _take(features, keep), t[keep] if ensemble else None)
                )
            rows = np.concatenate([r for r, _, _ in kept])
            h = _concatenate([f for _, f, _ in kept])
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


def _take(features, keep):
    """The rows of `features` (numpy or the backend's tensor) where `keep` holds."""
    if isinstance(features, np.ndarray):
        return features[keep]
    if keep.all():
        return features
    from keras import ops

    return ops.take(features, np.flatnonzero(keep), axis=0)


def _concatenate(parts):
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(f, np.ndarray) for f in parts):
        return np.concatenate(parts)
    from keras import ops

    return ops.concatenate(parts, axis=0)


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
    batch_size = check_batch_size(batch_size)
    engine = ScalableInference(model, thresholds, measure=measure, fallback=fallback)
    plain = runner(_plain_model(model))
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
        if not warm:  # trace / compile / set up both before timing anything
            engine.warm_up(xb, batch_size)
            plain.warm_up(xb[:batch_size])
            for s in range(0, xb.shape[0], batch_size):
                plain(xb[s : s + batch_size])
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
