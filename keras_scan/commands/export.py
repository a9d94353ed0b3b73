"""`keras-scan export RUN --out EXPORT`: LiteRT models, chained cascade, manifest."""

import argparse
import sys
import warnings

from keras_scan.commands import arguments

EXAMPLE = """\
examples:
  keras-scan export runs/fm18 --out exports/fm18                      # int8
  keras-scan export runs/fm18 --out exports/fm18 --quantize int8 float32 --overwrite
  keras-scan export runs/fm18 --out exports/fm18 --uint8-input --eval-limit 1000
  scan-lite run exports/fm18 shirt.png                                # on a device

EXPORT gets, per mode: exit_K.<mode>.tflite (image -> probabilities of exit K),
full.<mode>.tflite, cascade.<mode>.tflite (signatures stage_0..stage_K) and
stage_K.<mode>.tflite, plus manifest.json (tflite/manifest.schema.json).
int8 is calibrated on images drawn from RUN's training split. Thresholds come
from RUN/thresholds.json; without it (no `keras-scan search` yet) the export
warns and uses thresholds of 1.0, which never exit early.
"""


def add_parser(subparsers):
    from keras_scan.export import DEFAULT_CALIBRATION_SAMPLES, MODES

    p = subparsers.add_parser(
        "export",
        help="export every exit and the chained cascade to LiteRT",
        description="Converts the trained model of RUN to LiteRT (batch 1, raw "
        "0..255 pixels in): one model per exit, the final exit alone, the chained "
        "cascade (one signature per stage, never recomputing a prefix) and the "
        "same stages as separate files, in each quantization mode, with a "
        "manifest.json validated against tflite/manifest.schema.json. Written "
        "atomically: an interrupted export leaves nothing.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run", metavar="RUN", help="run folder written by `keras-scan train`"
    )
    p.add_argument("--out", required=True, metavar="EXPORT", help="export folder")
    p.add_argument(
        "--quantize",
        nargs="+",
        choices=MODES,
        default=["int8"],
        metavar="MODE",
        help=f"one or more of {', '.join(MODES)} (default int8; the first is the "
        "manifest's default variant)",
    )
    p.add_argument(
        "--uint8-input",
        action="store_true",
        help="int8 models take and return uint8 tensors instead of int8",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing EXPORT"
    )
    p.add_argument(
        "--eval-limit",
        type=arguments.int_at_least(0),
        default=None,
        metavar="N",
        help="measure accuracy on the first N test images (default: the whole test "
        "split; 0 skips the measurement)",
    )
    p.add_argument(
        "--calibration-samples",
        type=arguments.int_at_least(1),
        default=DEFAULT_CALIBRATION_SAMPLES,
        metavar="N",
        help=f"training images for int8 calibration (default "
        f"{DEFAULT_CALIBRATION_SAMPLES})",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder with the Fashion-MNIST files"
    )
    arguments.add_progress_flag(p, "the int8 calibration images of each file")
    return p


def run(args):
    from keras_scan import progress, runs
    from keras_scan.export import export

    run_dir = runs.run_path(args.run)
    out = arguments.output_folder(args.out, args.overwrite, args.run)
    config = runs.load_config(run_dir)
    runs.require_exits(run_dir, "export")
    model = runs.load_model(run_dir)
    runs.require_exits(run_dir, "export", model=model)
    th_path = run_dir / runs.THRESHOLDS
    thresholds = None
    if th_path.is_file():
        # As a dict: the manifest records it as coming from the search.
        num_exits = len(model.exit_names)
        thresholds = runs.load_thresholds(run_dir, num_exits).to_dict()
    splits = runs.load_splits(run_dir, data_dir=args.data_dir)
    test = splits.test if args.eval_limit != 0 else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        manifest = export(
            model,
            out,
            thresholds=thresholds,
            quantize=args.quantize,
            representative_data=splits.train if "int8" in args.quantize else None,
            labels=list(splits.class_names),
            test_data=test,
            overwrite=args.overwrite,
            uint8_input=args.uint8_input,
            calibration_samples=args.calibration_samples,
            eval_limit=args.eval_limit or None,
            seed=int(config.get("seed", 0)),
            dataset=config.get("dataset"),
            progress=progress.wanted(args.progress),
        )
    for w in caught:
        note = (
            f"no {th_path}. "
            if thresholds is None and "threshold" in str(w.message)
            else ""
        )
        print(f"keras-scan export: warning: {note}{w.message}", file=sys.stderr)
    print(summary(manifest, out))
    return 0


def summary(manifest, out):
    """Human-readable lines about an export: files, sizes, accuracy per exit."""
    th = manifest["thresholds"]
    lines = [
        f"export: {out} ({manifest['model']['name']}, "
        f"{manifest['input']['height']}x{manifest['input']['width']}x"
        f"{manifest['input']['channels']}, {manifest['model']['num_exits']} exits)",
        f"thresholds: {th['values']} ({th['measure']}, fallback {th['fallback']}, "
        f"source {th['source']})",
    ]
    names = manifest["model"]["exit_names"]
    for mode, variant in manifest["variants"].items():
        size = sum(
            manifest["files"][e["file"]]["bytes"]
            for e in variant["exits"] + variant["stages"] + [variant["cascade"]]
        )
        cascade_kib = manifest["files"][variant["cascade"]["file"]]["bytes"] / 1024
        lines.append(
            f"{mode}: input {variant['input_dtype']}, {len(variant['exits'])} exit "
            f"files + cascade ({cascade_kib:.1f} KiB) + {len(variant['stages'])} stage "
            f"files, {size / 1024:.1f} KiB in all"
        )
        ev = variant["evaluation"]
        if ev:
            acc = ", ".join(
                f"{n} {100 * e['accuracy']:.2f}% (Keras {100 * e['keras_accuracy']:.2f}%)"
                for n, e in zip(names, ev["exits"])
            )
            c = ev["cascade"]
            lines.append(f"  test accuracy on {ev['num_samples']} images: {acc}")
            lines.append(
                f"  cascade: {100 * c['accuracy']:.2f}%, answered per exit "
                + ", ".join(f"{100 * s:.1f}%" for s in c["exit_shares"])
                + (f", MACs speedup {c['speedup']:.2f}x" if c["speedup"] else "")
            )
    lines.append(f"wrote {out / 'manifest.json'}")
    return "\n".join(lines)
