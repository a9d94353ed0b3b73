"""Exit cost on the device: LiteRT int8 latency (batch 1) of the full model, of
the cascade up to each exit and through every stage, per backbone and exit design.

Every model here has random weights (latency does not depend on them): for each
backbone and design the SCAN model is built with `keras_scan.build`, exported
with `keras_scan.export(quantize="int8")` (calibrated on random images), and
run with `scan_lite` (the device-side runtime, no TensorFlow): image by image,
the chained cascade through every stage (no early exit, each stage timed) and
the `full` model file (the final exit alone) interleaved, on `--threads` LiteRT
threads. "Up to exit k" is the time of stages 0..k of the same run (what an
image answered at exit k costs); ratios are medians of per-image times, all
measured side by side in one process. MACs come from the graph
(`ScanModel.exit_info`).

    python benchmarks/exit_latency.py                       # every backbone and design
    python benchmarks/exit_latency.py --backbones cifar_resnet18_w64@32 --designs paper,default

`--floor` adds, per backbone, the latency of the backbone alone cut at each
default tap (no exit head; each prefix its own int8 file, timed interleaved
with the whole backbone): the floor that any exit at that tap pays, whatever
its head, and so the best speedup a cascade with exits there can reach.

    python benchmarks/exit_latency.py --floor --designs ""   # floors only

Writes `benchmarks/results/exit-latency/results.json` and `REPORT.md` (rows
already there for other backbones or designs are kept).
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

# name -> (registry name, image size, width)
BACKBONES = {
    "cifar_resnet18_w64@32": ("cifar_resnet18", 32, 64),
    # The CPU profile's backbone (benchmarks/profiles.py `cpu`).
    "cifar_resnet18_w16@32": ("cifar_resnet18", 32, 16),
    "mobilenet_v2@128": ("mobilenet_v2", 128, None),
    "mobilenet_v2@224": ("mobilenet_v2", 224, None),
    "mobilenet_v3_small@224": ("mobilenet_v3_small", 224, None),
    "efficientnet_b0@224": ("efficientnet_b0", 224, None),
    "resnet50@128": ("resnet50", 128, None),
}
# What the test runs (not in the default list): seconds, numbers meaningless.
SMOKE = {"cifar_resnet18_w8@32": ("cifar_resnet18", 32, 8)}

# name -> keras_scan.build keyword arguments
DESIGNS = {
    "paper": {"head": "scan", "attention": "scan"},
    "default": {},
    "scan_head_no_attention": {"head": "scan", "attention": None},
    "lite": {"head": "lite", "attention": None},
    "lite_gate": {"head": "lite", "attention": "gate"},
    "linear": {"head": "linear", "attention": None},
    # Exit 0 moved to the end of the first block at its resolution
    # (`FIRST_CUT`; the other taps as by default): how much latency an
    # earlier tap at the same resolution saves, with the default head and
    # with the cheapest one (`linear*`: pooling + dense, the floor any head
    # at that tap pays).
    "default_first_cut": {"exit_0": "first_cut"},
    "linear_first_cut": {"head": "linear", "attention": None, "exit_0": "first_cut"},
}

OUT = pathlib.Path(__file__).resolve().parent / "results" / "exit-latency"


def build(backbone_name, design):
    import keras_scan
    from keras_scan.backbones import registry

    name, size, width = {**BACKBONES, **SMOKE}[backbone_name]
    backbone = registry.build_backbone(name, image_size=size, width=width)
    kwargs = dict(DESIGNS[design])
    if kwargs.pop("exit_0", None) == "first_cut":
        kwargs["exits"] = first_cut_exits(name, backbone)
    return keras_scan.build(backbone, num_classes=10, **kwargs)


# The end of the first block at exit 0's resolution (the default exit 0 ends
# the last block there): the earliest exit 0 that has done any work at that
# resolution. MobileNetV3Small's default exit 0 already ends its first block.
FIRST_CUT = {
    "cifar_resnet18": "stage1_block1_out",
    "mobilenet_v2": "block_1_project_BN",
    "efficientnet_b0": "block2a_project_bn",
    "resnet50": "conv2_block1_out",
}


def first_cut_exits(name, backbone):
    """The default taps with exit 0 at `FIRST_CUT[name]` (if listed)."""
    from keras_scan.backbones import taps

    default = [t.name for t in taps.default_taps(backbone)]
    return [FIRST_CUT.get(name, default[0]), *default[1:]]


def measure(model, images, threads, warmup):
    """Exports `model` int8 to a temporary folder and times it with scan_lite."""
    from scan_lite import Cascade

    import keras_scan

    k = model.num_exits - 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "export"
        start = time.perf_counter()
        keras_scan.export(
            model,
            folder,
            thresholds=[1.0] * k,
            quantize="int8",
            representative_data=images,
            calibration_samples=min(len(images), 64),
        )
        export_s = time.perf_counter() - start
        cascade = Cascade(folder, num_threads=threads)
        full = cascade.exit_model(k)
        x = cascade.prepare(images[0])
        for _ in range(warmup):
            cascade._run(x, early_exit=False)
            full(x)
        stages, full_ms = [], []
        for image in images:
            x = cascade.prepare(image)
            stages.append(cascade._run(x, early_exit=False).stage_latency_ms)
            full_ms.append(full(x)[1])
    stages = np.asarray(stages)
    cumulative = np.cumsum(stages, axis=1)
    full_ms = np.asarray(full_ms)
    full_median = float(np.median(full_ms))
    return {
        "full_ms": full_median,
        "full_ms_p10_p90": [float(v) for v in np.percentile(full_ms, [10, 90])],
        "stage_ms": [float(v) for v in np.median(stages, axis=0)],
        "up_to_exit_ms": [float(v) for v in np.median(cumulative, axis=0)],
        "up_to_exit_ratio": [
            float(np.median(cumulative[:, i] / full_ms)) for i in range(k + 1)
        ],
        "all_stages_ratio": float(np.median(cumulative[:, -1] / full_ms)),
        "export_s": export_s,
    }


def _features_fn(model):
    def fn(x):
        return {"features": model(x, training=False)}

    return fn


def floor(backbone_name, n, threads, warmup, seed=0):
    """LiteRT int8 latency of the backbone cut at each default tap, no head.

    Returns a dict: the taps, the prefixes' MACs and median latencies and
    their ratios to the whole backbone (medians of per-image ratios), measured
    interleaved image by image in one process.
    """
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from keras_scan.backbones import registry
    from keras_scan.backbones import taps as taps_lib
    from keras_scan.export import litert

    keras.utils.set_random_seed(seed)
    name, size, width = {**BACKBONES, **SMOKE}[backbone_name]
    backbone = registry.build_backbone(name, image_size=size, width=width)
    taps = taps_lib.default_taps(backbone)
    final = taps_lib.cut_points(backbone)[-1]
    ends = [t.tensor for t in taps] + [final.tensor]
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3)).astype(np.float32)
    calibration = images[: min(n, 64)]
    artifacts, keys = [], {"image": calibration}
    for i, end in enumerate(ends):
        prefix = keras.Model(backbone.inputs[0], end, name=f"prefix_{i}")
        artifacts.append(
            (f"prefix_{i}", _features_fn(prefix), "image", (size, size, 3), prefix)
        )
        keys[f"prefix_{i}"] = ("image", calibration)
    interpreters = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = pathlib.Path(tmp) / "saved"
        litert.write_saved_model(artifacts, saved)
        for key, *_ in artifacts:
            content = litert.convert(saved, [key], "int8", keys, False)
            interpreter = Interpreter(model_content=content, num_threads=threads)
            interpreter.allocate_tensors()
            interpreters.append(interpreter)
    for it in interpreters:
        detail = it.get_input_details()[0]
        it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    times = np.zeros((n, len(interpreters)))
    for j in range(-warmup, n):
        for i, it in enumerate(interpreters):
            start = time.perf_counter()
            it.invoke()
            if j >= 0:
                times[j, i] = (time.perf_counter() - start) * 1e3
    return {
        "backbone": backbone_name,
        "taps": [t.name for t in taps],
        "tap_channels": [int(t.channels) for t in taps],
        "prefix_macs": [int(t.macs) for t in taps],
        "full_macs": int(final.macs),
        "prefix_ms": [float(v) for v in np.median(times[:, :-1], axis=0)],
        "full_ms": float(np.median(times[:, -1])),
        "prefix_ratio": [
            float(np.median(times[:, i] / times[:, -1])) for i in range(len(taps))
        ],
        "prefix_mac_ratio": [t.macs / final.macs for t in taps],
        "images": n,
        "threads": threads,
    }


def describe(model, backbone_name, design):
    """A row's figures from the graph alone (no export): taps and MACs."""
    info = model.exit_info
    full_macs = info[-1]["standalone_macs"]
    return {
        "backbone": backbone_name,
        "design": design,
        "build": {k: v for k, v in DESIGNS[design].items()},
        "exits": [e["layer"] for e in info[:-1]],
        "tap_channels": [e["channels"] for e in info[:-1]],
        "head_macs": [e["head_macs"] for e in info[:-1]],
        "full_macs": full_macs,
        "up_to_exit_macs": [e["macs"] for e in info],
        "up_to_exit_mac_ratio": [e["macs"] / full_macs for e in info],
    }


def run_row(backbone_name, design, n, threads, warmup, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = build(backbone_name, design)
    _, size, _ = {**BACKBONES, **SMOKE}[backbone_name]
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3)).astype(np.float32)
    row = describe(model, backbone_name, design)
    row.update(measure(model, images, threads, warmup))
    row["images"] = n
    row["threads"] = threads
    return row


def _cells(names, channels, latency_ratios, mac_ratios):
    """A table row's "taps (channels)" and "latency / MACs" cells."""
    taps = ", ".join(f"{n} ({c})" for n, c in zip(names, channels))
    each = ", ".join(f"{a:.2f}/{m:.2f}" for a, m in zip(latency_ratios, mac_ratios))
    return taps, each


def report(results):
    lines = [
        "# Exit cost on LiteRT int8 (batch 1, random weights)",
        "",
        f"Machine: {results['environment'].get('cpu', '?')}; "
        f"{results['threads']} LiteRT thread(s); median over "
        f"{results['images']} images per row, one process, interleaved. "
        "Command: `python benchmarks/exit_latency.py`.",
        "",
        "Targets (issue 15): latency to exit 0 <= 0.40x the full model; "
        "through every stage <= 1.15x.",
        "",
        "| backbone | design | taps (channels) | full ms | to exit 0 | "
        "to each exit (latency / MACs, x full) | every stage | head MACs (M) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"].values():
        taps, each = _cells(
            row["exits"],
            row["tap_channels"],
            row["up_to_exit_ratio"][:-1],
            row["up_to_exit_mac_ratio"],
        )
        heads = ", ".join(f"{m / 1e6:.1f}" for m in row["head_macs"])
        lines.append(
            f"| {row['backbone']} | {row['design']} | {taps} | {row['full_ms']:.2f} | "
            f"{row['up_to_exit_ratio'][0]:.2f}x | {each} | "
            f"{row['all_stages_ratio']:.2f}x | {heads} |"
        )
    if results.get("floors"):
        lines += [
            "",
            "## Backbone floor: the backbone alone, cut at each default tap",
            "",
            "LiteRT int8 latency of the backbone from the image to each default "
            "tap, no exit head (`--floor`): what any exit there costs at least, "
            "so 1 / (floor at exit 0) bounds the speedup of a cascade whose "
            "images all answer at exit 0. Ratios: latency / MACs, x the whole "
            "backbone, side by side in one process.",
            "",
            "| backbone | full ms | taps (channels) | floor at each tap "
            "(latency / MACs, x full) |",
            "|---|---|---|---|",
        ]
        for row in results["floors"].values():
            taps, each = _cells(
                row["taps"],
                row["tap_channels"],
                row["prefix_ratio"],
                row["prefix_mac_ratio"],
            )
            lines.append(
                f"| {row['backbone']} | {row['full_ms']:.2f} | {taps} | {each} |"
            )
    lines += [
        "",
        "Designs: "
        + "; ".join(f"`{k}` = {v or 'build() defaults'}" for k, v in DESIGNS.items()),
        "",
        "`first_cut`: exit 0 at "
        + ", ".join(f"`{t}` ({n})" for n, t in FIRST_CUT.items())
        + ", the end of the first block at the default exit 0's resolution. "
        "Rows were measured at different times: compare ratios, which are "
        "side by side within a row, not the full model's ms across rows.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the backbone alone cut at each default tap",
    )
    args = parser.parse_args(argv)
    backbones = args.backbones.split(",")
    designs = [d for d in args.designs.split(",") if d]
    for name, known, arg in (
        (backbones, {**BACKBONES, **SMOKE}, "--backbones"),
        (designs, DESIGNS, "--designs"),
    ):
        unknown = [n for n in name if n not in known]
        if unknown:
            parser.error(f"{arg}: unknown {unknown}; choose from {sorted(known)}")
    if not designs and not args.floor:
        parser.error("--designs: empty; name a design or pass --floor")
    for value, arg in ((args.images, "--images"), (args.threads, "--threads")):
        if value < 1:
            parser.error(f"{arg} must be >= 1. Received: {value}")
    out = pathlib.Path(args.out)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    results.update(
        environment=common.environment(), images=args.images, threads=args.threads
    )
    for backbone in backbones:
        if args.floor:
            start = time.perf_counter()
            row = floor(backbone, args.images, args.threads, args.warmup)
            results.setdefault("floors", {})[backbone] = row
            print(
                f"{backbone} floor: "
                + ", ".join(f"{r:.2f}x" for r in row["prefix_ratio"])
                + f" of {row['full_ms']:.3f} ms  [{time.perf_counter() - start:.0f} s]",
                flush=True,
            )
            out.mkdir(parents=True, exist_ok=True)
            common.write_json(path, results)
            (out / "REPORT.md").write_text(report(results))
        for design in designs:
            start = time.perf_counter()
            row = run_row(backbone, design, args.images, args.threads, args.warmup)
            results["rows"][f"{backbone}/{design}"] = row
            print(
                f"{backbone} {design}: full {row['full_ms']:.3f} ms, to exit 0 "
                f"{row['up_to_exit_ratio'][0]:.2f}x (MACs "
                f"{row['up_to_exit_mac_ratio'][0]:.2f}x), every stage "
                f"{row['all_stages_ratio']:.2f}x  [{time.perf_counter() - start:.0f} s]",
                flush=True,
            )
            out.mkdir(parents=True, exist_ok=True)
            common.write_json(path, results)
            (out / "REPORT.md").write_text(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
