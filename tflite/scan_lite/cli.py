"""`scan-lite`: run or benchmark a keras_scan export on this machine's CPU.

```
scan-lite run EXPORT IMAGE... [--variant int8] [--fit] [--stage-files] [--json]
scan-lite bench EXPORT (--idx IMAGES LABELS | --npz FILE) [--limit N] [--json OUT] [--progress]
scan-lite profile EXPORT [--variant V|all] [--threads N] [--warmup W] [--repeats R] [--images X.npy]
```

LiteRT announces its CPU delegate on stderr ("INFO: Created TensorFlow Lite
XNNPACK delegate for CPU."); that INFO line is dropped (scan_lite.native_logs)
unless `TF_CPP_MIN_LOG_LEVEL=0` or `-v` / `--verbose` (before or after the
command, which sets that variable). Warnings and errors always show.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

from scan_lite import images as images_lib
from scan_lite import jsonfile
from scan_lite import manifest as manifest_lib
from scan_lite import progress as progress_lib
from scan_lite.cascade import Cascade, confidence, should_exit
from scan_lite.manifest import ManifestError

_VERBOSE_HELP = "show LiteRT's INFO lines on stderr (sets TF_CPP_MIN_LOG_LEVEL=0)"


def _add_verbose_flag(p):
    """`-v/--verbose` on a subcommand too (kept off the namespace unless given)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help=_VERBOSE_HELP,
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="scan-lite",
        description="Early-exit inference with a keras_scan LiteRT export "
        "(numpy + ai-edge-litert only).",
        epilog="LiteRT's INFO lines on stderr are hidden unless "
        "TF_CPP_MIN_LOG_LEVEL=0; -v/--verbose (before or after COMMAND) shows them.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p):
        _add_verbose_flag(p)
        p.add_argument("export", help="export folder (with manifest.json)")
        p.add_argument(
            "--variant",
            help="quantization variant (default: the manifest's default_variant)",
        )
        p.add_argument(
            "--stage-files",
            action="store_true",
            help="run the separate stage_K files instead of the cascade file",
        )
        p.add_argument(
            "--threads", type=int, default=1, help="LiteRT CPU threads (default 1)"
        )

    run = sub.add_parser(
        "run",
        help="classify images, exiting early",
        description="Classify images (.npy, PGM/PPM; PNG/JPEG with Pillow). Example: "
        "scan-lite run exports/fm18 shirt.png boot.npy",
    )
    common(run)
    run.add_argument("images", nargs="+", metavar="IMAGE")
    run.add_argument(
        "--fit",
        action="store_true",
        help="pad/resize images and convert channels to the model input "
        "(default: refuse images of another size)",
    )
    run.add_argument("--json", action="store_true", help="print JSON lines")
    run.set_defaults(_run=cmd_run)

    bench = sub.add_parser(
        "bench",
        help="accuracy, share per exit and latency vs the full model",
        description="Benchmark on a labelled data set; images are fitted to the "
        "model input as in training. Example: scan-lite bench exports/fm18 --idx "
        "t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz --limit 1000",
    )
    common(bench)
    source = bench.add_mutually_exclusive_group(required=True)
    source.add_argument("--idx", nargs=2, metavar=("IMAGES", "LABELS"))
    source.add_argument("--npz", metavar="FILE", help="arrays x/images and y/labels")
    bench.add_argument("--limit", type=int, help="first N images only")
    bench.add_argument(
        "--warmup", type=int, default=5, help="untimed runs first (default 5)"
    )
    bench.add_argument("--json", metavar="OUT", help="also write the report here")
    bench.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr over the images (default: only when "
        "stderr is a terminal)",
    )
    bench.set_defaults(_run=cmd_bench)

    prof = sub.add_parser(
        "profile",
        help="measure the latency of every stage, exit model and the full model "
        "-> EXPORT/costs.json",
        description="Time every cascade stage (chained as the cascade runs them), "
        "every exit model and the full model on LiteRT, batch 1, and write the cost "
        "table EXPORT/costs.json (median, mean, p10, p90 per model; read by "
        "`keras-scan search --cost latency`). Example: scan-lite profile "
        "exports/fm18 --variant int8 --repeats 200",
    )
    _add_verbose_flag(prof)
    prof.add_argument("export", help="export folder (with manifest.json)")
    prof.add_argument(
        "--variant",
        default="all",
        help="quantization variant, or 'all' (default: every variant of the export)",
    )
    prof.add_argument(
        "--threads", type=int, default=1, help="LiteRT CPU threads (default 1)"
    )
    prof.add_argument(
        "--warmup", type=int, default=10, help="untimed runs first (default 10)"
    )
    prof.add_argument(
        "--repeats", type=int, default=100, help="timed runs per model (default 100)"
    )
    prof.add_argument(
        "--images",
        metavar="X.npy",
        help="images (N, H, W[, C]) 0..255 to feed, fitted to the input "
        "(default: random pixels; latency does not depend on them)",
    )
    prof.add_argument(
        "--stage-files",
        action="store_true",
        help="time the separate stage_K files instead of the cascade file",
    )
    prof.add_argument(
        "--json", action="store_true", help="print the table as JSON instead"
    )
    prof.set_defaults(_run=cmd_profile)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        # scan_lite.native_logs then lets LiteRT's INFO lines through.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    try:
        return int(args._run(args) or 0)
    except (ManifestError, ValueError, OSError) as e:
        print(f"scan-lite {args.command}: error: {e}", file=sys.stderr)
        return 2


def _check_flags(args, *flags):
    """Refuses out-of-range numbers given on the command line (usage errors)."""
    for flag, low in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None and value < low:
            raise ValueError(f"`{flag}` must be >= {low}. Received: {flag} {value}")


def _manifest(args):
    """The export's manifest (not yet verified) with `--variant` checked against it."""
    m = manifest_lib.load_manifest(args.export, verify=False)
    if args.variant is not None and args.variant not in m["variants"]:
        raise ValueError(
            f"`--variant` must be one of {sorted(m['variants'])} (the variants of "
            f"{str(args.export)!r}). Received: --variant {args.variant!r}"
        )
    return m


def _cascade(args):
    return Cascade(
        args.export,
        variant=args.variant,
        stage_files=args.stage_files,
        num_threads=args.threads,
    )


def cmd_run(args):
    _check_flags(args, ("--threads", 1))
    _manifest(args)
    cascade = _cascade(args)
    # Read and check every image first: a bad one fails before any output.
    prepared = [
        cascade.prepare(images_lib.read_image(p), fit=args.fit) for p in args.images
    ]
    k = cascade.num_exits - 1
    for path, x in zip(args.images, prepared):
        r = cascade._run(x, early_exit=True)
        if args.json:
            print(
                json.dumps(
                    {
                        "image": path,
                        "label": r.label,
                        "label_name": r.label_name,
                        "probability": r.probability,
                        "confidence": r.confidence,
                        "exit_index": r.exit_index,
                        "stage_latency_ms": r.stage_latency_ms,
                        "latency_ms": r.latency_ms,
                    }
                )
            )
        else:
            stages = ", ".join(f"{t:.2f}" for t in r.stage_latency_ms)
            print(
                f"{path}: {r.label_name} (class {r.label}) p={r.probability:.3f} "
                f"exit {r.exit_index}/{k} latency {r.latency_ms:.2f} ms "
                f"(stages: {stages} ms)"
            )
    return 0


def _load_bench_data(args, num_classes):
    """Images and labels of `--idx` / `--npz`, checked against each other and the model."""
    if args.idx:
        source = f"--idx {args.idx[0]} {args.idx[1]}"
        x = images_lib.read_idx(args.idx[0])
        y = images_lib.read_idx(args.idx[1]).reshape(-1)
        what = f"{args.idx[0]!r} holds {len(x)} images, {args.idx[1]!r} {len(y)} labels"
    else:
        source = f"--npz {args.npz}"
        x, y = images_lib.read_npz(args.npz)
        what = f"{len(x)} images, {len(y)} labels"
    if len(x) == 0:
        raise ValueError(
            f"The data set is empty: `{source}` holds no images. Received: {what}"
        )
    if len(x) != len(y):
        raise ValueError(
            f"The data set needs one label per image. Received: `{source}`: {what}"
        )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"`{source}` must hold images (N, H, W) or (N, H, W, C). Received: "
            f"images of shape {x.shape}"
        )
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer):
        bad = (y < 0) | (y >= num_classes)
    elif np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0) | (y >= num_classes)
    else:
        bad = np.ones(len(y), bool)
    bad = np.flatnonzero(bad)
    if len(bad):
        raise ValueError(
            f"`{source}`: labels must be class indices 0..{num_classes - 1} (the "
            f"model has {num_classes} classes). Received: label {y[bad[0]].item()!r} of "
            f"image {int(bad[0])} ({len(bad)} such label(s))"
        )
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    return x, y.astype(np.int64)


def bench(cascade, x, y, warmup=5, progress=False):
    """Accuracy, share per exit and latency of the cascade vs the exit models.

    For each image (after `warmup` untimed images) it runs, in one pass: the
    chained cascade with early exit, then every exit model file (`exit_0` ..
    `full`) on its own. "naive" is early exit by running the exit models one
    after another (each recomputing the prefix), timed as the sum of their
    latencies up to the exit that answers.

    Args:
        cascade: a `Cascade`.
        x: images (N, H, W[, C]) 0..255, fitted to the model input here.
        y: labels (N,).
        warmup: int. Untimed images run first.
        progress: bool. Draw a bar over the images on stderr (outside the
            timed calls). Defaults to `False`.

    Returns:
        dict (the report).
    """
    h, w, c = cascade.input_shape
    k = cascade.num_exits - 1
    n = len(x)
    exit_models = [cascade.exit_model(i) for i in range(k + 1)]
    fitted = images_lib.fit_images(x[: min(n, 256)], h, w, c)
    for j in range(min(warmup, n)):
        cascade._run(fitted[j : j + 1], early_exit=False)
        for model in exit_models:
            model(fitted[j : j + 1])

    labels = np.empty(n, np.int64)
    exits = np.empty(n, np.int64)
    cascade_ms = np.empty(n)
    stage_ms = [[] for _ in range(k + 1)]
    exit_pred = np.empty((k + 1, n), np.int64)
    exit_ms = np.empty((k + 1, n))
    naive_pred = np.empty(n, np.int64)
    naive_exit = np.empty(n, np.int64)
    naive_ms = np.empty(n)
    bar = progress_lib.bar(
        progress, total=n, desc=f"bench {cascade.variant}", unit="images"
    )
    start = time.perf_counter()
    for lo in range(0, n, 256):
        batch = images_lib.fit_images(x[lo : lo + 256], h, w, c)
        for j, image in enumerate(batch):
            i = lo + j
            image = image[None]
            r = cascade._run(image, early_exit=True)
            labels[i], exits[i], cascade_ms[i] = r.label, r.exit_index, r.latency_ms
            for s, t in enumerate(r.stage_latency_ms):
                stage_ms[s].append(t)
            all_probs = []
            for e, model in enumerate(exit_models):
                probs, t = model(image)
                all_probs.append(probs)
                exit_pred[e, i], exit_ms[e, i] = int(np.argmax(probs)), t
            answer = k
            for e in range(k):
                conf = confidence(all_probs[e], cascade.measure)
                if should_exit(conf, cascade.thresholds[e]):
                    answer = e
                    break
            if answer == k and cascade.fallback == "ensemble":
                naive_pred[i] = int(np.argmax(np.mean(all_probs, axis=0)))
            else:
                naive_pred[i] = int(np.argmax(all_probs[answer]))
            naive_exit[i] = answer
            naive_ms[i] = float(exit_ms[: answer + 1, i].sum())
            bar.update(1)
    elapsed = time.perf_counter() - start
    bar.close()

    def shares(index):
        return [float(v) / n for v in np.bincount(index, minlength=k + 1)]

    full_ms = float(exit_ms[k].mean())
    report = {
        "export": str(cascade.export_dir),
        "variant": cascade.variant,
        "stage_files": cascade.stage_files,
        "num_samples": int(n),
        "threads": cascade.num_threads,
        "thresholds": cascade.thresholds,
        "measure": cascade.measure,
        "fallback": cascade.fallback,
        "cascade": {
            "accuracy": float(np.mean(labels == y)),
            "exit_shares": shares(exits),
            "mean_latency_ms": float(cascade_ms.mean()),
            "median_latency_ms": float(np.median(cascade_ms)),
            "stage_mean_latency_ms": [
                float(np.mean(t)) if t else None for t in stage_ms
            ],
            "stage_median_latency_ms": [
                float(np.median(t)) if t else None for t in stage_ms
            ],
            "stage_runs": [len(t) for t in stage_ms],
            "requantized_links": list(cascade.requantized_links),
        },
        "full": {
            "accuracy": float(np.mean(exit_pred[k] == y)),
            "mean_latency_ms": full_ms,
            "median_latency_ms": float(np.median(exit_ms[k])),
        },
        "speedup_vs_full": full_ms / float(cascade_ms.mean()),
        # Medians resist other processes' load on a shared machine.
        "median_speedup_vs_full": float(np.median(exit_ms[k]))
        / float(np.median(cascade_ms)),
        "exit_models": [
            {
                "index": e,
                "accuracy": float(np.mean(exit_pred[e] == y)),
                "mean_latency_ms": float(exit_ms[e].mean()),
                "median_latency_ms": float(np.median(exit_ms[e])),
            }
            for e in range(k + 1)
        ],
        "naive_exit_models": {
            "accuracy": float(np.mean(naive_pred == y)),
            "exit_shares": shares(naive_exit),
            "mean_latency_ms": float(naive_ms.mean()),
            "median_latency_ms": float(np.median(naive_ms)),
        },
        "wall_s": elapsed,
    }
    return report


def cmd_bench(args):
    _check_flags(args, ("--threads", 1), ("--limit", 1), ("--warmup", 0))
    m = _manifest(args)
    # The data is checked before the models are loaded and anything is written.
    x, y = _load_bench_data(args, int(m["model"]["num_classes"]))
    cascade = _cascade(args)
    report = bench(
        cascade, x, y, warmup=args.warmup, progress=progress_lib.wanted(args.progress)
    )
    c, f, naive = report["cascade"], report["full"], report["naive_exit_models"]
    print(
        f"{report['num_samples']} images, variant {report['variant']}, "
        f"{report['threads']} thread(s), thresholds {report['thresholds']} "
        f"({report['measure']}, fallback {report['fallback']})"
    )
    print(
        f"cascade: accuracy {c['accuracy']:.4f}, latency mean "
        f"{c['mean_latency_ms']:.3f} ms / median {c['median_latency_ms']:.3f} ms, "
        "exit shares " + ", ".join(f"{s:.3f}" for s in c["exit_shares"])
    )
    print(
        f"full:    accuracy {f['accuracy']:.4f}, latency mean "
        f"{f['mean_latency_ms']:.3f} ms / median {f['median_latency_ms']:.3f} ms "
        f"-> cascade speedup {report['speedup_vs_full']:.2f}x (mean), "
        f"{report['median_speedup_vs_full']:.2f}x (median)"
    )
    print(
        f"naive (exit models one after another): accuracy {naive['accuracy']:.4f}, "
        f"latency mean {naive['mean_latency_ms']:.3f} ms / median "
        f"{naive['median_latency_ms']:.3f} ms"
    )
    print(
        "stage latency mean / median (ms): "
        + ", ".join(
            "-" if t is None else f"{t:.3f}/{m:.3f}"
            for t, m in zip(c["stage_mean_latency_ms"], c["stage_median_latency_ms"])
        )
    )
    print(
        "exit model latency mean / median (ms): "
        + ", ".join(
            f"{e['mean_latency_ms']:.3f}/{e['median_latency_ms']:.3f}"
            for e in report["exit_models"]
        )
    )
    if args.json:
        out = pathlib.Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        jsonfile.write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    return 0


def cmd_profile(args):
    from scan_lite import profile as profile_lib

    _check_flags(args, ("--threads", 1), ("--warmup", 0), ("--repeats", 1))
    images = None
    if args.images is not None:
        if not str(args.images).endswith(".npy"):
            raise ValueError(
                f"`--images` must be a .npy file of images (N, H, W[, C]) 0..255. "
                f"Received: --images {args.images!r}"
            )
        images = np.load(args.images, allow_pickle=False)
    variants = None if args.variant == "all" else args.variant
    table = profile_lib.profile(
        args.export,
        variants,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        images=images,
        stage_files=args.stage_files,
    )
    shown = None if variants is None else [variants]
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print(profile_lib.format_table(table, shown))
        print(f"wrote {pathlib.Path(args.export) / 'costs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
