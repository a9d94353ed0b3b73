"""Threshold search for a SCAN model, and the threshold API in one namespace.

`search_thresholds(model, val_data)` runs the model once over its validation
data (`keras_scan.inference.collect_probs`), takes the exits' costs from
`model.exit_info` (or measured latency from `keras_scan.latency`) and evolves
one confidence threshold per shallow exit (`search_thresholds_from_probs`);
`keras-scan search RUN` calls it.

The pieces live in their own modules and are re-exported here (`__all__`), so
`keras_scan.thresholds.X` keeps working:

- `keras_scan.exit_rule`: the exit rule (`confidence`, `should_exit`,
  `simulate_cascade`, `MEASURES`, `FALLBACKS`) and the settings file
  (`Thresholds`, thresholds.json, `FORMAT_VERSION`);
- `keras_scan.cascade_eval`: accuracy and cost of a setting on cached
  probabilities (`evaluate_thresholds`, `COSTS`);
- `keras_scan.nsga`: the NSGA-II problem and evolution (DEAP);
- `keras_scan.threshold_search`: the model-free search and the choice of the
  operating point (`search_thresholds_from_probs`, `DEFAULT_MARGIN`).

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from keras_scan import inference
from keras_scan import progress as progress_lib
from keras_scan.cascade_eval import COSTS, as_latency, check_cost, evaluate_thresholds
from keras_scan.exit_rule import (
    FALLBACKS,
    FORMAT_VERSION,
    MEASURES,
    Thresholds,
    check_fallback,
    check_measure,
    confidence,
    should_exit,
    simulate_cascade,
)
from keras_scan.threshold_search import (
    DEFAULT_MARGIN,
    check_budgets,
    check_number,
    search_thresholds_from_probs,
)

__all__ = [
    "COSTS",
    "DEFAULT_MARGIN",
    "FALLBACKS",
    "FORMAT_VERSION",
    "MEASURES",
    "Thresholds",
    "confidence",
    "evaluate_thresholds",
    "search_thresholds",
    "search_thresholds_from_probs",
    "should_exit",
    "simulate_cascade",
]


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
    progress=False,
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
        progress: bool. Draw progress bars on stderr (`keras_scan.progress`):
            the forward pass over `val_data` (images) and the NSGA-II
            generations. `keras-scan search` turns them on when stderr is a
            terminal. Defaults to `False`.

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
    inference.check_model(model)
    # Cheap argument checks before the forward pass.
    check_measure(measure)
    check_fallback(fallback)
    check_cost(cost)
    progress_lib.check(progress)
    check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost)
    if check_number("margin", margin) < 0:
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
        drop = check_number("max_accuracy_drop", max_accuracy_drop)
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
        as_latency(exit_ms, full_ms, len(info) - 1)
        if budget_ms is not None:
            budget = check_number("budget_ms", budget_ms)
            if budget < exit_ms[0]:
                raise ValueError(
                    "`budget_ms` is below the cheapest possible cascade: every "
                    f"image answering at the first exit ({info[0]['name']}) takes "
                    f"{exit_ms[0]:.4g} ms, the minimum budget. "
                    f"Received: budget_ms={budget_ms!r}"
                )
    if budget_macs is not None:
        budget = check_number("budget_macs", budget_macs)
        if budget < exit_macs[0]:
            raise ValueError(
                "`budget_macs` is below the cheapest possible cascade: every image "
                f"answering at the first exit ({info[0]['name']}) costs "
                f"{exit_macs[0]} MACs, the minimum budget. "
                f"Received: budget_macs={budget_macs!r}"
            )
    start = time.perf_counter()
    probs, labels = inference.collect_probs(
        model, val_data, batch_size=batch_size, progress=progress
    )
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
        progress=progress,
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
