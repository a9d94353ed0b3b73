"""Plots of keras_scan results (matplotlib, imported lazily, no pyplot state).

- `plot_tradeoff` / `tradeoff_figure`: accuracy vs mean cost of a threshold search.
- `plot_accuracy_vs_depth`: validation accuracy per depth of `keras_scan.grow`
  (or per exit of a cut SCAN model).
"""

from __future__ import annotations

import math
import numbers
import os

from keras_scan import files
from keras_scan.thresholds import Thresholds

__all__ = [
    "plot_tradeoff",
    "tradeoff_figure",
    "plot_accuracy_vs_depth",
    "savefig_atomic",
]

_REQUIRED_METRICS = ("front", "accuracy", "mean_macs")


def _check_pairs(single_exits):
    if single_exits is None:
        return None
    try:
        pairs = [(float(a), float(m)) for a, m in single_exits]
    except (TypeError, ValueError):
        raise ValueError(
            "`single_exits` must be a list of (accuracy, macs) pairs, one per exit. "
            f"Received: single_exits={single_exits!r}"
        ) from None
    if not all(math.isfinite(a) and math.isfinite(m) for a, m in pairs):
        raise ValueError(
            "`single_exits` must hold finite numbers. "
            f"Received: single_exits={single_exits!r}"
        )
    return pairs


def savefig_atomic(fig, path):
    """Saves a matplotlib figure as a PNG, atomically (`keras_scan.files`).

    Args:
        fig: a matplotlib `Figure`.
        path: str or path.

    Returns:
        The path, as a str.
    """
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return os.fspath(path)


def _cost_axis(metrics):
    """(key of the chosen point's mean cost, budget key, unit) of the search's cost."""
    if metrics.get("cost") == "latency":
        return "mean_latency_ms", "budget_ms", "ms"
    return "mean_macs", "budget_macs", "MACs"


def plot_tradeoff(result, path, single_exits=None, title=None, plain_backbone=None):
    """Accuracy vs mean cost (MACs, or measured latency) of a search, saved as a PNG.

    Draws the Pareto front of the search, the best single global threshold's
    curve (the SDN baseline), each exit of this model used alone, this model's
    final exit without early exit (the cost baseline of the speedups) and the
    chosen operating point (plus the accuracy target or budget). A separately
    trained plain backbone (`keras-scan train --no-exits`) is drawn only when
    given, and labelled as such. The x axis is the cost the search minimised
    (`metrics["cost"]`: MACs, or LiteRT latency in ms); the title gives the MAC
    speedup and, when the search had measured latencies, the latency speedup.

    Args:
        result: `keras_scan.thresholds.Thresholds`. As returned by
            `search_thresholds_from_probs` (its `metrics` carry the curves).
        path: str or path. Where to write the PNG (written atomically).
        single_exits: list of `(accuracy, cost)`, one per exit, or None. Cost of
            each exit deployed on its own (backbone prefix + that head only).
            Defaults to `result.metrics["single_exits"]` (cumulative costs, an
            upper bound).
        title: str or None. Defaults to a summary of the chosen point.
        plain_backbone: `(accuracy, cost)` or None. A plain backbone trained
            separately (no exits, no distillation), on the same data and in
            the same cost unit. Defaults to None (not drawn).

    Returns:
        The path written.

    Example:
    ```python
    th = keras_scan.thresholds.search_thresholds_from_probs(probs, labels, macs)
    keras_scan.plots.plot_tradeoff(th, "runs/fm18/tradeoff.png")
    ```
    """
    fig = tradeoff_figure(
        result, single_exits=single_exits, title=title, plain_backbone=plain_backbone
    )
    return savefig_atomic(fig, path)


def tradeoff_figure(result, single_exits=None, title=None, plain_backbone=None):
    """The figure `plot_tradeoff` saves (a matplotlib `Figure`, no pyplot state).

    Arguments as for `keras_scan.plots.plot_tradeoff`.
    """
    if not isinstance(result, Thresholds):
        raise ValueError(
            "`result` must be a keras_scan.thresholds.Thresholds. "
            f"Received: result of type {type(result).__name__}"
        )
    metrics = result.metrics
    missing = [key for key in _REQUIRED_METRICS if key not in metrics]
    if missing:
        raise ValueError(
            f"`result.metrics` lacks {missing}: plot the `Thresholds` returned by "
            "`search_thresholds_from_probs` (or loaded from its thresholds.json). "
            f"Received metrics keys: {sorted(metrics)}"
        )
    if title is not None and not isinstance(title, str):
        raise ValueError(f"`title` must be a string or None. Received: title={title!r}")
    pairs = _check_pairs(single_exits)
    if pairs is None and metrics.get("single_exits"):
        pairs = _check_pairs(metrics["single_exits"])
    plain = None
    if plain_backbone is not None:
        try:
            (plain,) = _check_pairs([plain_backbone])
        except ValueError:
            raise ValueError(
                "`plain_backbone` must be an (accuracy, cost) pair or None. "
                f"Received: plain_backbone={plain_backbone!r}"
            ) from None

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cost_key, budget_key, cost_unit = _cost_axis(metrics)
    if cost_key not in metrics:
        raise ValueError(
            f"`result.metrics` lacks {cost_key!r} (cost={metrics.get('cost')!r}). "
            f"Received metrics keys: {sorted(metrics)}"
        )
    front = sorted(metrics["front"], key=lambda p: p[2])
    all_macs = [p[2] for p in front] + [metrics[cost_key]]
    if pairs:
        all_macs += [m for _, m in pairs]
    if plain:
        all_macs.append(plain[1])
    if cost_unit == "ms":
        scale, unit = 1.0, "ms"
    else:
        scale, unit = (1e6, "M") if max(all_macs) >= 1e6 else (1.0, "")

    def xy(acc, macs):
        return macs / scale, 100.0 * acc

    fig = Figure(figsize=(7.5, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    if front:
        xs, ys = zip(*(xy(acc, macs) for _, acc, macs in front))
        ax.step(
            xs,
            ys,
            where="post",
            color="C0",
            lw=1.5,
            label="per-exit thresholds (Pareto front)",
        )
        ax.plot(xs, ys, ".", color="C0", ms=3)
    global_front = sorted(metrics.get("global_front") or [], key=lambda p: p[2])
    if global_front:
        xs, ys = zip(*(xy(acc, macs) for _, acc, macs in global_front))
        ax.plot(
            xs,
            ys,
            "-",
            color="C1",
            lw=1.2,
            label="one global threshold for all exits (SDN)",
        )
    if pairs:
        names = _exit_labels(metrics.get("exit_names"), len(pairs))
        xs, ys = zip(*(xy(acc, macs) for acc, macs in pairs))
        ax.plot(xs, ys, "s", color="C2", ms=6, label="each exit alone (this model)")
        for name, x, y in zip(names, xs, ys):
            ax.annotate(
                name, (x, y), textcoords="offset points", xytext=(5, -10), fontsize=8
            )
    full = metrics.get("full_model")
    if full and all(isinstance(v, numbers.Real) for v in full):
        x, y = xy(*full)
        ax.plot(
            [x],
            [y],
            "D",
            color="k",
            ms=7,
            label="final exit, no early exit (this model)",
        )
    if plain:
        x, y = xy(*plain)
        ax.plot(
            [x],
            [y],
            "X",
            color="C4",
            ms=9,
            label="plain backbone (trained separately)",
        )
    g = metrics.get("global_threshold")
    if isinstance(g, dict) and "accuracy" in g and cost_key in g:
        x, y = xy(g["accuracy"], g[cost_key])
        ax.plot(
            [x],
            [y],
            "o",
            mfc="none",
            mec="C1",
            ms=10,
            mew=1.5,
            label="one global threshold, same target",
        )
    x, y = xy(metrics["accuracy"], metrics[cost_key])
    ax.plot(
        [x], [y], "*", color="C3", ms=16, label="chosen per-exit thresholds", zorder=5
    )

    target = metrics.get("target") or {}
    if target.get("min_accuracy") is not None:
        ax.axhline(
            100.0 * target["min_accuracy"],
            color="C3",
            ls=":",
            lw=1,
            label="accuracy target",
        )
    if target.get(budget_key) is not None:
        ax.axvline(
            target[budget_key] / scale,
            color="C3",
            ls=":",
            lw=1,
            label="latency budget" if cost_unit == "ms" else "MAC budget",
        )

    if title is None:
        mean_macs = metrics["mean_macs"]
        mac_scale, mac_unit = (1e6, "M") if mean_macs >= 1e6 else (1.0, "")
        title = f"{result.measure}, fallback={result.fallback}: " + (
            f"{100 * metrics['accuracy']:.2f}% at {mean_macs / mac_scale:.4g}"
            f"{mac_unit} MACs"
        )
        speedups = []
        if isinstance(metrics.get("speedup"), numbers.Real):
            speedups.append(f"MAC speedup {metrics['speedup']:.2f}x")
        if isinstance(metrics.get("mean_latency_ms"), numbers.Real):
            title += f", {metrics['mean_latency_ms']:.3g} ms"
        if isinstance(metrics.get("latency_speedup"), numbers.Real):
            speedups.append(f"latency speedup {metrics['latency_speedup']:.2f}x")
        if speedups:
            title += " (" + ", ".join(speedups) + ")"
    ax.set_title(title, fontsize=10)
    if cost_unit == "ms":
        ax.set_xlabel("mean LiteRT latency per image (ms, measured)")
    else:
        ax.set_xlabel(f"mean MACs per image{f' ({unit})' if unit else ''}")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _exit_labels(exit_names, count):
    """Annotation per single-exit point: the exit's name, the last "final exit"."""
    if not (isinstance(exit_names, list | tuple) and len(exit_names) == count):
        exit_names = [f"exit {i}" for i in range(count - 1)] + ["final"]
    return [*map(str, exit_names[:-1]), "final exit"]


def plot_accuracy_vs_depth(report, path):
    """Validation accuracy against depth (or exit), with the target; a PNG.

    Args:
        report: dict. The report of `keras_scan.depth.grow` or
            `keras_scan.depth.from_scan_model`.
        path: str or path. Written atomically.

    Returns:
        The path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    if report["mode"] == "grow":
        xs = [s["depth"] for s in report["steps"]]
        ys = [s["val_accuracy"] for s in report["steps"]]
        for s in report["steps"]:
            ax.scatter(
                [s["depth"]] * len(s["val_history"]),
                s["val_history"],
                s=10,
                color="0.6",
                zorder=2,
            )
        ax.plot(
            xs, ys, "o-", color="C0", label="val accuracy (best per depth)", zorder=3
        )
        ax.set_xlabel(f"depth (residual blocks of {report['num_blocks']})")
        ax.set_xticks(list(range(1, report["num_blocks"] + 1)))
        if "baseline" in report:
            base = report["baseline"]
            ax.scatter(
                [report["num_blocks"]],
                [base["val_accuracy"]],
                marker="*",
                s=120,
                color="C1",
                zorder=4,
                label=f"full depth from scratch ({base['epochs']} epochs)",
            )
        chosen_x = report["depth"]
        title = f"Progressive depth expansion: {report['backbone']}"
    else:
        xs = list(range(len(report["exits"])))
        ys = [e["val_accuracy"] for e in report["exits"]]
        ax.plot(xs, ys, "o-", color="C0", label="val accuracy per exit", zorder=3)
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [f"{e['name']}\n{e['block']}" for e in report["exits"]], fontsize=7
        )
        ax.set_xlabel("exit (tapped block)")
        chosen_x = [e["name"] for e in report["exits"]].index(report["exit"])
        title = "Optimal-depth cut of a SCAN model"
    ax.axhline(report["target_accuracy"], color="C3", ls="--", lw=1, label="target")
    ax.axvline(chosen_x, color="C2", ls=":", lw=1.5, label="chosen")
    red = report["reduction"]
    ax.set_title(
        f"{title}\nchosen vs full depth: params {-100 * red.get('params', 0):+.0f}%, "
        f"MACs {-100 * red.get('macs', 0):+.0f}%",
        fontsize=9,
    )
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return savefig_atomic(fig, path)
