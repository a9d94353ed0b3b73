"""Where the Keras engine's time goes: `ScalableInference` vs its own ceiling.

For a CIFAR ResNet18 at each `--widths` (random weights; the classifiers'
kernels scaled down so that confidences spread instead of saturating), the
thresholds are set to answer fixed shares of the images at each exit
(`--shares`, by default those of `make demo`'s test split), so every width
runs the same cascade. In one process, at `--batch-size`:

- each stage sub-model alone (`ScanModel.stage_models()`, compiled as the
  engine compiles it) and the final exit alone on full batches: each stage's
  time as a fraction of the full model's, beside its MAC fraction;
- the *ceiling*: the wall speedup the engine would show if it cost nothing
  but its stages, each on full batches (stage time x rows it ran / batch);
- `keras_scan.inference.evaluate_scalable`: the measured MAC and wall
  speedups and the engine's time above that ceiling.

So "wall speedup / MAC speedup" splits into what the stages cost on this
CPU (the ceiling) and what the engine adds (its overhead).

    python benchmarks/engine.py                   # widths 16 and 64, 4096 images
    python benchmarks/engine.py --widths 8 --images 512 --out /tmp/engine

Writes `benchmarks/results/engine/results.json` and `REPORT.md`.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results" / "engine"
# Test-split exit shares of `make demo` (exits 0, 1, 2; the rest at the final).
DEMO_SHARES = (0.624, 0.246, 0.130)


def _soften(model, scale=0.05):
    """Scales every exit's classifier kernel so the random model's softmax
    does not saturate at 1.0 (ties would make shares impossible to set)."""
    for layer in model.layers:
        for dense in _classifiers(layer):
            kernel = dense.kernel
            kernel.assign(kernel.numpy() * scale)


def _classifiers(layer):
    if hasattr(layer, "classifier"):  # ShallowClassifier
        return [layer.classifier]
    if layer.name.endswith("logits") and hasattr(layer, "kernel"):
        return [layer]
    return []


def _share_thresholds(model, images, shares, measure="max_prob"):
    """Max-prob thresholds under which exit i answers `shares[i]` of `images`."""
    from keras_scan import exit_rule
    from keras_scan.forward import collect_probs

    probs, _ = collect_probs(model, images)
    alive = np.ones(len(images), dtype=bool)
    values = []
    for i, share in enumerate(shares):
        conf = exit_rule.confidence(probs[i], measure)
        want = int(round(share * len(images)))
        ranked = np.sort(conf[alive])[::-1]
        t = float(ranked[min(want, ranked.size) - 1]) if ranked.size else 1.0
        values.append(t)
        alive &= ~exit_rule.should_exit(probs[i], t, measure)
    return values


def _median_time(fn, arg, repeats):
    fn.warm_up(arg)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_width(width, n, shares, batch_size, repeats, seed=0):
    import keras

    import keras_scan
    from keras_scan import inference
    from keras_scan.backbones import registry
    from keras_scan.forward import runner

    keras.utils.set_random_seed(seed)
    backbone = registry.build_backbone("cifar_resnet18", image_size=32, width=width)
    model = keras_scan.build(backbone, num_classes=10)
    _soften(model)
    rng = np.random.default_rng(seed)
    images = rng.random((n, 32, 32, 3), dtype=np.float32) * 255.0
    labels = rng.integers(0, 10, n)
    values = _share_thresholds(model, images, shares)
    report = inference.evaluate_scalable(
        model, images, labels, values, batch_size=batch_size
    )

    info = model.exit_info
    full_macs = info[-1]["standalone_macs"]
    plain_model = inference._plain_model(model)
    batch = images[:batch_size]
    full_s = _median_time(runner(plain_model), batch, repeats)
    stage_s = []
    h = batch
    stages = model.stage_models()
    for i, stage in enumerate(stages):
        run = runner(stage)
        stage_s.append(_median_time(run, h, repeats))
        if i < len(stages) - 1:
            h = run(h)[0]
    rows = report["stage_rows"]
    ceiling_s = sum(t * r / batch_size for t, r in zip(stage_s, rows))
    full_all_s = full_s * n / batch_size
    mac_fraction = [
        (e["macs"] - (info[i - 1]["macs"] if i else 0)) / full_macs
        for i, e in enumerate(info)
    ]
    return {
        "width": width,
        "images": n,
        "batch_size": batch_size,
        "thresholds": values,
        "exit_shares": report["exit_shares"],
        "stage_rows": rows,
        "full_ms_per_batch": 1e3 * full_s,
        "stage_time_fraction": [t / full_s for t in stage_s],
        "stage_mac_fraction": mac_fraction,
        "mac_speedup": report["mac_speedup"],
        "wall_speedup": report["wall_speedup"],
        "wall_over_mac": report["wall_speedup"] / report["mac_speedup"],
        "ceiling_speedup": full_all_s / ceiling_s,
        "ceiling_over_mac": full_all_s / ceiling_s / report["mac_speedup"],
        "engine_s": report["wall_time_s"],
        "ceiling_s": ceiling_s,
        "engine_overhead": report["wall_time_s"] / ceiling_s - 1.0,
        "backend": report["backend"],
    }


def report_md(results):
    lines = [
        "# Keras engine: measured wall speedup vs what its stages allow",
        "",
        f"Machine: {results['environment'].get('cpu', '?')}; backend "
        f"{results['backend']}; batch {results['batch_size']}; "
        f"{results['images']} images; exit shares fixed to "
        f"{', '.join(f'{s:.3f}' for s in results['shares'])} (exits 0-2, the "
        "rest at the final exit). Command: `python benchmarks/engine.py`. "
        "CIFAR ResNet18, 32x32, random weights, default exits.",
        "",
        "Target (issue 15): wall speedup >= 0.8x the MAC speedup.",
        "",
        "| width | MAC speedup | wall speedup | wall / MAC | ceiling (stages only) "
        "| ceiling / MAC | engine above ceiling | stage time / MAC fraction, "
        "per stage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        per_stage = ", ".join(
            f"{t:.2f}/{m:.2f}"
            for t, m in zip(row["stage_time_fraction"], row["stage_mac_fraction"])
        )
        lines.append(
            f"| {row['width']} | {row['mac_speedup']:.2f}x | "
            f"{row['wall_speedup']:.2f}x | {row['wall_over_mac']:.2f} | "
            f"{row['ceiling_speedup']:.2f}x | {row['ceiling_over_mac']:.2f} | "
            f"{100 * row['engine_overhead']:+.0f}% | {per_stage} |"
        )
    lines += [
        "",
        "Stage time is a fraction of the full model's time on a full batch; "
        "stage 0 is the backbone's stem and first stage plus exit 0's head, "
        "the last stage ends with the final classifier. The ceiling is the "
        "sum over stages of (stage time x rows it ran / batch): an engine "
        "with no overhead at all.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,64")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--shares", default=",".join(f"{s:g}" for s in DEMO_SHARES))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths must be comma-separated ints. Received: {args.widths}")
    try:
        shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        parser.error(
            f"--shares must be comma-separated floats. Received: {args.shares}"
        )
    if any(w < 1 for w in widths):
        parser.error(f"--widths must be >= 1. Received: {args.widths}")
    if len(shares) != 3 or any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1:
        parser.error(
            "--shares must be 3 shares in [0, 1] (exits 0-2) summing to at most 1. "
            f"Received: {args.shares}"
        )
    for value, flag in (
        (args.images, "--images"),
        (args.batch_size, "--batch-size"),
        (args.repeats, "--repeats"),
    ):
        if value < 1:
            parser.error(f"{flag} must be >= 1. Received: {value}")
    import keras

    results = {
        "environment": common.environment(),
        "backend": keras.backend.backend(),
        "batch_size": args.batch_size,
        "images": args.images,
        "shares": shares,
        "rows": [],
    }
    out = pathlib.Path(args.out)
    for width in widths:
        start = time.perf_counter()
        row = run_width(width, args.images, shares, args.batch_size, args.repeats)
        results["rows"].append(row)
        print(
            f"width {width}: MAC {row['mac_speedup']:.2f}x, wall "
            f"{row['wall_speedup']:.2f}x ({row['wall_over_mac']:.2f} of MAC), "
            f"ceiling {row['ceiling_speedup']:.2f}x, engine overhead "
            f"{100 * row['engine_overhead']:+.0f}%  "
            f"[{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    common.write_json(out / "results.json", results)
    from keras_scan import files

    files.atomic_write_text(out / "REPORT.md", report_md(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
