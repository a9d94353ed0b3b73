"""Sections 2 and 3 (Keras): thresholds from the validation split, judged on test.

Section 2 works on the SCAN model's cached per-exit probabilities: NSGA-II
thresholds (`keras_scan.thresholds.search_thresholds_from_probs`) are chosen on
the validation split for each accuracy target (no loss, <= 0.5 pt below the
final exit's validation accuracy), then applied to the test split
(`evaluate_thresholds`). MAC speedups are against the plain backbone (its MACs
counted from the graph); the ceiling is MACs(backbone) / MACs(first exit).
The GA point is compared with the best single global threshold (the SDN
baseline) chosen under the same rule.

Section 3 (Keras) runs `keras_scan.inference.evaluate_scalable`: real early
exit with `ScalableInference` and the final exit alone on the same test
batches in the same run; the measured speedup is divided by the MAC speedup.
"""

import warnings

import numpy as np

from benchmarks import common
from keras_scan import inference, plots, thresholds


def _label(drop):
    return "no_loss" if drop == 0 else f"drop_{drop:g}pt"


def _test_point(probs, labels, values, exit_macs, full_macs, measure, fallback):
    r = thresholds.evaluate_thresholds(
        probs, labels, values, exit_macs, full_macs, measure, fallback
    )
    return {
        "thresholds": [float(v) for v in values],
        "accuracy": r["accuracy"],
        "mean_macs": r["mean_macs"],
        "speedup": r["speedup"],
        "exit_shares": r["exit_shares"],
    }


def missing_module(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def run(ctx):
    if missing_module("deap"):
        return {
            "skipped": "DEAP is not installed (the threshold search needs it); "
            f"complete it with `python benchmarks/run.py --from-gpu {ctx.out}`"
        }
    s = ctx.settings
    model = ctx.model()
    cached = ctx.probs()
    val_probs, val_labels = cached["val"]
    test_probs, test_labels = cached["test"]
    info = model.exit_info
    exit_macs = [int(e["macs"]) for e in info]
    # The plain backbone = the SCAN model's final exit deployed alone (backbone
    # + pooling + dense); the plain variant of section 1 has the same graph.
    full_macs = int(info[-1]["standalone_macs"])
    k = len(exit_macs) - 1
    single = [
        {
            "exit": e["name"],
            "val_accuracy": float(np.mean(np.argmax(p, 1) == val_labels)),
            "test_accuracy": float(np.mean(np.argmax(q, 1) == test_labels)),
            "macs_in_cascade": int(e["macs"]),
            "standalone_macs": int(e["standalone_macs"]),
            "standalone_speedup": full_macs / e["standalone_macs"],
        }
        for e, p, q in zip(info, val_probs, test_probs)
    ]
    plain = ctx.sections.get("accuracy", {}).get("variants", {}).get("plain")
    plain_counted = None if plain is None else int(plain["final_macs"])
    plain_test = plain["final_accuracy"] if plain else None
    scan_final_test = single[-1]["test_accuracy"]
    points = {}
    for drop in s["accuracy_drops"]:
        label = _label(drop)
        ctx.log(
            f"scalable: searching thresholds ({label}) on {len(val_labels)} val images"
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            th = thresholds.search_thresholds_from_probs(
                val_probs,
                val_labels,
                exit_macs,
                full_macs,
                max_accuracy_drop=drop,
                seed=s["search"]["seed"],
                population=s["search"]["population"],
                generations=s["search"]["generations"],
            )
        m = th.metrics
        ctx.thresholds[label] = th
        args = (test_probs, test_labels)
        rest = (exit_macs, full_macs, th.measure, th.fallback)
        chosen = _test_point(*args, th.values, *rest)
        ga = _test_point(*args, m["ga_choice"]["values"], *rest)
        glob = _test_point(*args, [m["global_threshold"]["threshold"]] * k, *rest)
        points[label] = {
            "max_accuracy_drop_pt": drop,
            "thresholds": th.values,
            "measure": th.measure,
            "fallback": th.fallback,
            "source": m["source"],
            "constraint_met_on_val": m["constraint_met"],
            "warnings": [str(w.message) for w in caught],
            "val": {
                "accuracy": m["accuracy"],
                "final_exit_accuracy": m["final_exit_accuracy"],
                "mean_macs": m["mean_macs"],
                "speedup": m["speedup"],
                "exit_shares": m["exit_shares"],
                "ga": {
                    "thresholds": m["ga_choice"]["values"],
                    "accuracy": m["ga_choice"]["accuracy"],
                    "mean_macs": m["ga_choice"]["mean_macs"],
                    "speedup": full_macs / m["ga_choice"]["mean_macs"],
                },
                "global": {
                    "threshold": m["global_threshold"]["threshold"],
                    "accuracy": m["global_threshold"]["accuracy"],
                    "mean_macs": m["global_threshold"]["mean_macs"],
                    "speedup": m["global_threshold"]["speedup"],
                    "constraint_met": m["global_threshold"]["constraint_met"],
                },
            },
            "test": dict(
                chosen,
                drop_vs_scan_final_pt=100 * (scan_final_test - chosen["accuracy"]),
                drop_vs_plain_pt=None
                if plain_test is None
                else 100 * (plain_test - chosen["accuracy"]),
            ),
            "test_ga": ga,
            "test_global": glob,
            "search": m["search"],
        }
        if drop == max(s["accuracy_drops"]) and not missing_module("matplotlib"):
            plot_path = ctx.out / "tradeoff.png"
            plots.plot_tradeoff(
                th,
                plot_path,
                single_exits=[
                    (e["val_accuracy"], e["standalone_macs"]) for e in single
                ],
                title=(
                    f"{common.model_label(s)}, validation split: "
                    f"accuracy vs mean MACs ({label})"
                ),
            )
        ctx.log(
            f"scalable: {label}: test accuracy {chosen['accuracy']:.4f} "
            f"(final exit {scan_final_test:.4f}), MAC speedup {chosen['speedup']:.2f}x"
        )

    keras_runs = {}
    x_test, y_test = ctx.splits.test
    for label, th in ctx.thresholds.items():
        ctx.log(f"scalable: Keras ScalableInference vs final exit ({label})")
        r = inference.evaluate_scalable(
            model, x_test, y_test, th, batch_size=s["keras_batch_size"]
        )
        keep = (
            "accuracy",
            "full_accuracy",
            "accuracy_drop",
            "mean_macs",
            "full_macs",
            "mac_speedup",
            "exit_shares",
            "stage_rows",
            "wall_time_s",
            "full_wall_time_s",
            "wall_speedup",
            "cpu_time_s",
            "full_cpu_time_s",
            "cpu_speedup",
            "num_samples",
            "batch_size",
            "backend",
        )
        entry = {key: r[key] for key in keep}
        entry["wall_over_mac_speedup"] = (
            r["wall_speedup"] / r["mac_speedup"]
            if r["wall_speedup"] and r["mac_speedup"]
            else None
        )
        keras_runs[label] = entry
        ctx.log(
            f"scalable: {label}: wall speedup {r['wall_speedup']:.2f}x vs MAC "
            f"speedup {r['mac_speedup']:.2f}x"
        )
    return {
        "what": (
            "thresholds searched on the validation split, applied to the test "
            "split; MAC speedup = MACs(plain backbone) / mean MACs of the cascade"
        ),
        "exit_macs": exit_macs,
        "plain_backbone_macs": full_macs,
        "plain_variant_macs": plain_counted,
        "ceiling_speedup": full_macs / exit_macs[0],
        "num_val": int(len(val_labels)),
        "num_test": int(len(test_labels)),
        "single_exits": single,
        "plain_test_accuracy": plain_test,
        "scan_final_test_accuracy": scan_final_test,
        "points": points,
        "keras": keras_runs,
        "plots": {"tradeoff": None if missing_module("matplotlib") else "tradeoff.png"},
    }
