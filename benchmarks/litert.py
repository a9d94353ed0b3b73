"""Sections 3 (LiteRT) and 4: export sizes, LiteRT latency, int8 accuracy.

The SCAN model is exported once (`keras_scan.export`) in every mode of the
profile, with the <= 0.5 pt thresholds of section 2 (chosen on validation).
The exporter itself runs every exported exit model on test images (batch 1)
and records its accuracy next to the Keras model's on the same images: the
accuracy drop per exit of each mode comes from there. Latency comes from
`scan_lite` (the device-side runtime, no TensorFlow): for each mode
`scan_lite.cli.bench` runs, image by image and interleaved, the chained
cascade with early exit and every exit model file (`exit_0` .. `full`) alone,
on one LiteRT thread. The cascade's speedup is `full` latency / cascade
latency; its MAC speedup comes from the share of images each exit answered.
"""

import pathlib
import time

import numpy as np

from keras_scan import thresholds as thresholds_lib


def _size_table(manifest):
    sizes = {}
    for name, entry in manifest["files"].items():
        stem, mode, _ = name.rsplit(".", 2)
        sizes.setdefault(mode, {})[stem] = int(entry["bytes"])
    return sizes


def _rule(ctx):
    """The thresholds exported: the loosest accuracy target of section 2."""
    points = ctx.sections["scalable"]["points"]
    label = max(points, key=lambda k: points[k]["max_accuracy_drop_pt"])
    p = points[label]
    th = thresholds_lib.Thresholds(p["thresholds"], p["measure"], p["fallback"])
    return label, th


def run(ctx, modes):
    import keras
    from scan_lite import Cascade
    from scan_lite.cli import bench

    import keras_scan

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("LiteRT export needs KERAS_BACKEND=tensorflow.")
    s = ctx.settings
    model = ctx.model()
    splits = ctx.splits
    label, th = _rule(ctx)
    folder = pathlib.Path(ctx.work) / "exports" / "scan"
    ctx.log(f"litert: exporting {', '.join(modes)} to {folder}")
    start = time.perf_counter()
    manifest = keras_scan.export(
        model,
        folder,
        thresholds=th,
        quantize=list(modes),
        representative_data=splits.train,
        labels=list(splits.class_names),
        test_data=splits.test,
        overwrite=True,
        calibration_samples=s["calibration_samples"],
        eval_limit=s["export_eval_limit"],
        seed=s["seed"],
        dataset=s["dataset"],
    )
    export_seconds = time.perf_counter() - start
    sizes = _size_table(manifest)
    exit_macs = [e["macs"] for e in manifest["exits"]]
    full_macs = manifest["exits"][-1]["standalone_macs"]

    x_test, y_test = splits.test
    n = min(int(s["litert_images"]), len(y_test))
    x, y = np.asarray(x_test[:n]), np.asarray(y_test[:n]).astype(np.int64)
    variants = {}
    for mode in modes:
        evaluation = manifest["variants"][mode]["evaluation"]
        exits = [
            {
                "name": e["name"],
                "accuracy": e["accuracy"],
                "keras_accuracy": e["keras_accuracy"],
                "drop_pt": 100 * (e["keras_accuracy"] - e["accuracy"]),
                "argmax_agreement": e["argmax_agreement"],
                "max_abs_diff": e["max_abs_diff"],
            }
            for e in evaluation["exits"]
        ]
        ctx.log(f"litert: scan_lite bench, {mode}, {n} images, batch 1")
        cascade = Cascade(folder, variant=mode, num_threads=int(s["litert_threads"]))
        r = bench(cascade, x, y, warmup=int(s["litert_warmup"]))
        shares = r["cascade"]["exit_shares"]
        mean_macs = float(np.dot(shares, exit_macs))
        mac_speedup = full_macs / mean_macs
        variants[mode] = {
            "files_bytes": sizes[mode],
            "exit_accuracy": exits,
            "export_eval_images": evaluation["num_samples"],
            "export_cascade": evaluation["cascade"],
            "latency_ms": {
                "cascade_mean": r["cascade"]["mean_latency_ms"],
                "full_mean": r["full"]["mean_latency_ms"],
                "exit_models_mean": [e["mean_latency_ms"] for e in r["exit_models"]],
                "stages_mean": r["cascade"]["stage_mean_latency_ms"],
                "naive_exit_models_mean": r["naive_exit_models"]["mean_latency_ms"],
            },
            "stage_runs": r["cascade"]["stage_runs"],
            "requantized_links": r["cascade"]["requantized_links"],
            "cascade_accuracy": r["cascade"]["accuracy"],
            "full_accuracy": r["full"]["accuracy"],
            "exit_model_accuracy": [e["accuracy"] for e in r["exit_models"]],
            "exit_shares": shares,
            "speedup_vs_full": r["speedup_vs_full"],
            "mac_speedup": mac_speedup,
            "measured_over_mac_speedup": r["speedup_vs_full"] / mac_speedup,
            "bench_images": r["num_samples"],
            "bench_seconds": r["wall_s"],
        }
        ctx.log(
            f"litert: {mode}: cascade {r['cascade']['mean_latency_ms']:.3f} ms vs "
            f"full {r['full']['mean_latency_ms']:.3f} ms -> "
            f"{r['speedup_vs_full']:.2f}x (MAC speedup {mac_speedup:.2f}x)"
        )
    return {
        "what": (
            "LiteRT (ai-edge-litert) files of keras_scan.export, batch 1; latency "
            "from scan_lite (1 thread), accuracy from the exporter's test "
            "evaluation"
        ),
        "thresholds_from": label,
        "thresholds": th.values,
        "modes": list(modes),
        "exit_macs": exit_macs,
        "full_macs": full_macs,
        "stage_macs": [st["macs"] for st in manifest["stages"]],
        "export_seconds": export_seconds,
        "variants": variants,
        "plots": {"latency": "latency.png"},
    }
