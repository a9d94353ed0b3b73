"""Per-exit threshold search on cached probabilities: Pareto front, operating point.

Given every exit's softmax probabilities on a validation split (computed once),
`search_thresholds_from_probs` evolves one confidence threshold per shallow exit
with DEAP's NSGA-II (`keras_scan.nsga`), trading accuracy against a mean cost,
sweeps every single global threshold (the SDN baseline), keeps the Pareto front
of both and picks an operating point: the cheapest within an accuracy drop (with
a margin of standard errors), or the most accurate within a budget. The cost of
answering at each exit is one vector: MACs counted from the graph
(`cost="macs"`, the default) or latency measured on the device
(`cost="latency"`: the cascade's latency through each stage, from an export's
cost table, `keras_scan.latency`). The result is a
`keras_scan.exit_rule.Thresholds`.

Model-free: `keras_scan.thresholds.search_thresholds` runs a model over its
validation data and calls this.

Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework Towards
Compact and Efficient Models", NeurIPS 2019 (arXiv 1906.03951), section 3.3.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from keras_scan import progress as progress_lib
from keras_scan.cascade_eval import (
    check_cost,
    checked_inputs,
    evaluate_thresholds,
    latency_figures,
    mean_cost,
)
from keras_scan.checks import check_int, is_number
from keras_scan.exit_rule import Thresholds, check_fallback, check_measure
from keras_scan.nsga import ThresholdProblem, run_nsga2

_DEFAULT_MAX_ACCURACY_DROP = 0.5
# Standard errors of the accuracy drop a chosen point must clear the target by.
DEFAULT_MARGIN = 1.0
# The global-threshold front kept in metrics (for plots) is thinned to this size.
_MAX_GLOBAL_FRONT_POINTS = 1000


def _thin(indices, keep, max_points):
    """At most `max_points` of `indices`, evenly spread, always holding `keep`."""
    if indices.size <= max_points:
        return indices
    picks = np.linspace(0, indices.size - 1, max_points).round().astype(int)
    picks = np.unique(np.r_[picks, np.flatnonzero(indices == keep)])
    return indices[picks]


def _pareto_mask(n_correct, mean_macs):
    """Non-dominated (max correct, min MACs); one representative per tie."""
    order = np.lexsort((-n_correct, mean_macs))
    nc = n_correct[order]
    best_before = np.r_[-1, np.maximum.accumulate(nc)[:-1]]
    keep = np.zeros(n_correct.size, dtype=bool)
    keep[order[nc > best_before]] = True
    return keep


def _choose(n_correct, mean_macs, required_correct, budget):
    """Index of the operating point under the rule; and whether it is feasible."""
    if budget is not None:
        feasible = mean_macs <= budget * (1 + 1e-12)
        if feasible.any():
            idx = np.flatnonzero(feasible)
            best = idx[np.lexsort((mean_macs[idx], -n_correct[idx]))[0]]
            return int(best), True
    else:
        feasible = n_correct >= required_correct - 1e-9
        if feasible.any():
            idx = np.flatnonzero(feasible)
            best = idx[np.lexsort((-n_correct[idx], mean_macs[idx]))[0]]
            return int(best), True
    best = np.lexsort((mean_macs, -n_correct))[0]
    return int(best), False


def check_number(name, value):
    """`value` as a float; ValueError (naming `name`) unless a finite real number."""
    if not is_number(value):
        raise ValueError(
            f"`{name}` must be a finite number. Received: {name}={value!r}"
        )
    return float(value)


def check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost):
    """At most one target; a budget in the unit of the cost searched.

    Raises ValueError when more than one of `max_accuracy_drop`, `budget_macs`
    and `budget_ms` is given, or when the budget's unit is not `cost`'s.
    """
    given = {
        name: value
        for name, value in (
            ("max_accuracy_drop", max_accuracy_drop),
            ("budget_macs", budget_macs),
            ("budget_ms", budget_ms),
        )
        if value is not None
    }
    if len(given) > 1:
        shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(
            "Give either `max_accuracy_drop` or one budget (`budget_macs` or "
            f"`budget_ms`), not both. Received: {shown}"
        )
    if budget_macs is not None and cost != "macs":
        raise ValueError(
            f"`budget_macs` bounds MACs but the search minimises latency "
            f"(cost={cost!r}); give `budget_ms`. Received: budget_macs={budget_macs!r}"
        )
    if budget_ms is not None and cost != "latency":
        raise ValueError(
            f"`budget_ms` bounds latency but the search minimises MACs "
            f"(cost={cost!r}); pass cost='latency' with the measured latencies. "
            f"Received: budget_ms={budget_ms!r}"
        )


def search_thresholds_from_probs(
    probs,
    labels,
    exit_macs,
    full_macs=None,
    *,
    max_accuracy_drop=None,
    budget_macs=None,
    measure="max_prob",
    fallback="final",
    seed=0,
    population=100,
    generations=100,
    cost="macs",
    exit_latency_ms=None,
    full_latency_ms=None,
    budget_ms=None,
    margin=DEFAULT_MARGIN,
    progress=False,
):
    """Evolves per-exit thresholds (NSGA-II, DEAP) on cached validation outputs.

    Two objectives, accuracy (up) and mean cost (down): MACs (`cost="macs"`) or
    measured latency (`cost="latency"`, from `exit_latency_ms`). The Pareto front
    of every setting evaluated plus every single global threshold (the SDN
    baseline, swept exhaustively) is kept, and the operating point is taken
    from it:

    - `max_accuracy_drop=d`: the cheapest point whose accuracy drop vs the
      final exit, plus `margin` standard errors of that drop, is <= d / 100.
      The drop is `(b - c) / N` over the samples where the cascade and the
      final exit disagree (b: only the final exit right, c: only the cascade),
      its standard error `sqrt(b + c) / N` (McNemar's): a point that just meets
      the target on validation by answering many samples differently from the
      final exit is noise fitted to validation and does not count as meeting
      it. `margin=0` takes the validation figure at face value;
    - `budget_macs=b` (`budget_ms=b` with `cost="latency"`): the most accurate
      point with mean cost <= b.

    The best single global threshold under the same rule is recorded too; the
    returned point is never worse (if the sweep has the better point it is
    returned and `metrics["source"]` says `"global_threshold"`).

    Args:
        probs: list of K+1 arrays of shape (N, C), the final exit last.
        labels: int array of shape (N,) (or one-hot).
        exit_macs: K+1 numbers. Cumulative MACs of answering at each exit.
        full_macs: number. The plain backbone's MACs (speedup baseline).
            Defaults to `exit_macs[-1]`.
        max_accuracy_drop: float >= 0. Percentage points. Defaults to 0.5 when
            `budget_macs` is not given.
        budget_macs: float >= `exit_macs[0]`. Mean MAC budget.
        measure: str. One of `MEASURES`. Defaults to `"max_prob"`.
        fallback: str. One of `FALLBACKS`. Defaults to `"final"`.
        seed: int. Seeds the search (the global `random` state is restored).
            Defaults to 0.
        population: int >= 4 (rounded up to a multiple of 4). Defaults to 100.
        generations: int >= 0. Defaults to 100.
        cost: str. What the search minimises: `"macs"` (`exit_macs`) or
            `"latency"` (`exit_latency_ms`). Defaults to `"macs"`.
        exit_latency_ms: K+1 numbers or None. Measured latency of answering at
            each exit: the cascade's latency through stage k (sum of the stage
            medians 0..k of an export's cost table). When given, the latency
            speedup is reported whatever `cost` is. Defaults to None.
        full_latency_ms: number. The full model's measured latency (the
            latency speedup's baseline). Defaults to `exit_latency_ms[-1]`.
        budget_ms: float >= `exit_latency_ms[0]`. Mean latency budget (only
            with `cost="latency"`).
        margin: float >= 0. Standard errors of the accuracy drop added to it
            before it is held to `max_accuracy_drop` (no effect with a
            budget). Defaults to `DEFAULT_MARGIN` (1.0; measured:
            `benchmarks/results/thresholds`).
        progress: bool. Draw a bar over the NSGA-II generations on stderr
            (`keras_scan.progress`). Defaults to `False`.

    Returns:
        `Thresholds` whose `metrics` hold the validation figures of the chosen
        point (MAC figures always; `mean_latency_ms`, `latency_speedup` with
        `exit_latency_ms`), `cost` and `cost_unit`, `front` (list of
        `(thresholds, accuracy, mean cost)`), `global_front` (list of
        `(threshold, accuracy, mean cost)`), `single_exits` and `full_model`
        (`(accuracy, cost)`), all in the unit of `cost` (MACs or ms),
        `global_threshold` and `ga_choice` (each rule's pick), `source`,
        `target` and `search` settings.

    Example:
    ```python
    th = keras_scan.thresholds.search_thresholds_from_probs(
        val_probs, val_labels, exit_macs=[60e6, 150e6, 300e6, 560e6],
        full_macs=556e6, max_accuracy_drop=0.5)
    th.save("runs/fm18/thresholds.json")
    ```
    """
    start = time.perf_counter()
    check_measure(measure)
    check_fallback(fallback)
    check_cost(cost)
    progress_lib.check(progress)
    seed = check_int("seed", seed, 0)
    population = check_int("population", population, 4)
    population += -population % 4
    generations = check_int("generations", generations, 0)
    check_budgets(max_accuracy_drop, budget_macs, budget_ms, cost)
    if max_accuracy_drop is None and budget_macs is None and budget_ms is None:
        max_accuracy_drop = _DEFAULT_MAX_ACCURACY_DROP
    margin = check_number("margin", margin)
    if margin < 0:
        raise ValueError(
            "`margin` (standard errors of the accuracy drop) must be >= 0. "
            f"Received: margin={margin!r}"
        )
    if max_accuracy_drop is not None:
        max_accuracy_drop = check_number("max_accuracy_drop", max_accuracy_drop)
        if max_accuracy_drop < 0:
            raise ValueError(
                "`max_accuracy_drop` (percentage points) must be >= 0. "
                f"Received: max_accuracy_drop={max_accuracy_drop!r}"
            )
    arrays, y, macs, full, latency = checked_inputs(
        probs, labels, exit_macs, full_macs, exit_latency_ms, full_latency_ms
    )
    n, k = len(y), len(arrays) - 1
    if cost == "latency" and latency is None:
        raise ValueError(
            "`cost='latency'` needs `exit_latency_ms` (the measured latency of "
            "answering at each exit, from an export's cost table)."
        )
    # The one cost vector the search minimises, its baseline and budget.
    if cost == "macs":
        costs, full_cost, unit = macs, full, "MACs"
        budget_name, budget, first = "budget_macs", budget_macs, "exit_macs[0]"
    else:
        (costs, full_cost), unit = latency, "ms"
        budget_name, budget, first = "budget_ms", budget_ms, "exit_latency_ms[0]"
    if budget is not None:
        budget = check_number(budget_name, budget)
        if budget < costs[0]:
            raise ValueError(
                f"`{budget_name}` is below the cheapest possible cascade: every "
                f"sample answering at the first exit costs {first}={costs[0]:g} "
                f"{unit}, the minimum budget. Received: {budget_name}={budget:g}"
            )

    problem = ThresholdProblem(arrays, y, costs, measure, fallback)
    required = None
    if max_accuracy_drop is not None:
        required = problem.final_correct - max_accuracy_drop / 100.0 * n

    # --- The SDN baseline: one threshold for every exit, every outcome. ---
    g_th, g_correct, g_counts = problem.global_sweep()
    g_macs = mean_cost(g_counts, costs, n)
    g_keep = np.flatnonzero(_pareto_mask(g_correct, g_macs))
    g_keep = g_keep[np.argsort(g_macs[g_keep], kind="stable")]

    # --- NSGA-II, seeded with never-exit, always-exit-first and the sweep. ---
    seeds = [np.ones(k), np.zeros(k)]
    n_sweep = min(g_keep.size, population // 2)
    picks = np.unique(np.linspace(0, g_keep.size - 1, n_sweep).round().astype(int))
    sweep_th = np.repeat(g_th[g_keep[picks], None], k, axis=1)
    seeds.extend(problem.encode(sweep_th))
    archive = []
    run_nsga2(problem, seeds, population, generations, seed, archive, progress)
    ga_th = np.vstack([a[0] for a in archive])
    ga_correct = np.concatenate([a[1] for a in archive])
    ga_counts = np.vstack([a[2] for a in archive])
    ga_macs = mean_cost(ga_counts, costs, n)

    # --- One front over both; the operating point; the comparison. ---
    all_th = np.vstack([ga_th, np.repeat(g_th[:, None], k, axis=1)])
    all_correct = np.r_[ga_correct, g_correct]
    all_macs = np.r_[ga_macs, g_macs]
    front = np.flatnonzero(_pareto_mask(all_correct, all_macs))
    front = front[np.argsort(all_macs[front], kind="stable")]

    def needed(correct, th):
        """The correct count each setting needs: the target plus `margin`
        standard errors of its drop (see the docstring); counted only for the
        settings that meet the target at face value."""
        if required is None or margin == 0:
            return required
        need = np.full(correct.shape, np.inf)
        candidates = np.flatnonzero(correct >= required - 1e-9)
        if candidates.size:
            b, c = problem.discordant(th[candidates])
            need[candidates] = required + margin * np.sqrt(b + c)
        return need

    # Over every setting evaluated, not the front alone: with a margin, a
    # setting the front drops (as accurate, dearer) may be the safe one.
    g_all = np.repeat(g_th[:, None], k, axis=1)
    chosen, met = _choose(all_correct, all_macs, needed(all_correct, all_th), budget)
    ga_pick, _ = _choose(ga_correct, ga_macs, needed(ga_correct, ga_th), budget)
    g_pick, g_met = _choose(g_correct, g_macs, needed(g_correct, g_all), budget)
    b_chosen, c_chosen = problem.discordant(all_th[chosen])
    ga_is_best = (ga_correct[ga_pick], ga_macs[ga_pick]) == (
        all_correct[chosen],
        all_macs[chosen],
    )
    if not met:
        warnings.warn(
            "No threshold setting reaches the accuracy target "
            f"(max_accuracy_drop={max_accuracy_drop}); returning the most accurate "
            "one. With fallback='ensemble' the cascade may never match the final "
            "exit's accuracy.",
            UserWarning,
            stacklevel=2,
        )

    values = [float(v) for v in all_th[chosen]]
    result = evaluate_thresholds(
        arrays,
        y,
        values,
        macs,
        full,
        measure,
        fallback,
        exit_latency_ms=None if latency is None else latency[0],
        full_latency_ms=None if latency is None else latency[1],
    )

    def point(i):
        return float(all_correct[i]) / n, float(all_macs[i])

    g_mean_macs = float(mean_cost(g_counts[g_pick], macs, n))
    g_eval = {
        "threshold": float(g_th[g_pick]),
        "accuracy": int(g_correct[g_pick]) / n,
        "mean_macs": g_mean_macs,
        "speedup": full / g_mean_macs if g_mean_macs > 0 else None,
        "exit_shares": [int(x) / n for x in g_counts[g_pick]],
        "constraint_met": bool(g_met),
        **latency_figures(g_counts[g_pick], latency, n),
    }
    ga_choice = {
        "values": [float(v) for v in ga_th[ga_pick]],
        "accuracy": int(ga_correct[ga_pick]) / n,
        "mean_macs": float(mean_cost(ga_counts[ga_pick], macs, n)),
        **latency_figures(ga_counts[ga_pick], latency, n),
    }
    gain = {
        "accuracy": result["accuracy"] - g_eval["accuracy"],
        "mean_macs": result["mean_macs"] - g_eval["mean_macs"],
    }
    if latency is not None:
        gain["mean_latency_ms"] = result["mean_latency_ms"] - g_eval["mean_latency_ms"]
    metrics = dict(result)
    metrics.update(
        {
            "source": "ga" if ga_is_best else "global_threshold",
            "constraint_met": bool(met),
            "cost": cost,
            "cost_unit": unit,
            "target": {
                "max_accuracy_drop": max_accuracy_drop,
                "budget_macs": budget if cost == "macs" else None,
                "budget_ms": budget if cost == "latency" else None,
                "min_accuracy": None if required is None else required / n,
                "margin": margin,
            },
            # Samples only the final exit gets right / only the cascade; the
            # drop (b - c) / N and its standard error sqrt(b + c) / N.
            "discordant": [int(b_chosen[0]), int(c_chosen[0])],
            "drop_standard_error": float(np.sqrt(b_chosen[0] + c_chosen[0])) / n,
            "exit_macs": [float(m) for m in macs],
            "single_exits": [
                (float(np.mean(np.argmax(a, axis=1) == y)), float(m))
                for a, m in zip(arrays, costs)
            ],
            "full_model": (problem.final_correct / n, full_cost),
            "global_threshold": g_eval,
            "ga_choice": ga_choice,
            "gain_vs_global": gain,
            "front": [
                ([float(v) for v in all_th[i]], *point(i)) for i in front.tolist()
            ],
            "global_front": [
                (float(g_th[i]), int(g_correct[i]) / n, float(g_macs[i]))
                for i in _thin(g_keep, g_pick, _MAX_GLOBAL_FRONT_POINTS).tolist()
            ],
            "global_front_size": int(g_keep.size),
            "search": {
                "algorithm": "NSGA-II (DEAP)",
                "seed": seed,
                "population": population,
                "generations": generations,
                "evaluations": int(ga_th.shape[0]),
                "global_thresholds_swept": int(g_th.size),
                "num_samples": int(n),
                "num_exits": int(k + 1),
                "seconds": time.perf_counter() - start,
            },
        }
    )
    if latency is not None:
        metrics["exit_latency_ms"] = [float(v) for v in latency[0]]
    return Thresholds(
        values=values, measure=measure, fallback=fallback, metrics=metrics
    )
