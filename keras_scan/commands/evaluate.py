"""`keras-scan evaluate RUN`: accuracy, ensemble accuracy, MACs and params per exit."""

import argparse

from keras_scan.commands import arguments

EXAMPLES = """\
examples:
  keras-scan evaluate runs/fm18                   # test split -> runs/fm18/eval.json
  keras-scan evaluate runs/fm18 --split val
  keras-scan evaluate runs/fm18 --model last      # the last epoch instead of the best
  keras-scan evaluate runs/fm18 --scalable        # also early exit with thresholds.json
  keras-scan evaluate runs/fm18 --scalable --export exports/fm18 --variant int8
                                                  # + expected LiteRT latency speedup

The data is re-created from RUN/config.json (same image size, validation split,
seed and --limit); --dataset evaluates on other data of the same classes.
MACs are counted from the graph at batch 1: `MACs` is the cost of answering at
an exit when the exits are tried in order, `MACs alone` that exit on its own.
With --export (an export of RUN's model with a cost table, `scan-lite profile
EXPORT`), --scalable also reports the expected LiteRT latency speedup at the
measured exit shares: full model latency / sum_k share_k * (cascade latency
through stage k).
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="per-exit accuracy, ensemble accuracy, MACs and params -> RUN/eval.json",
        description="Evaluate a trained run: accuracy of every exit, of the "
        "ensemble (mean of the softmax of all exits), and MACs and params per "
        "exit. Writes RUN/eval.json and prints a table.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run", metavar="RUN", help="a run folder written by keras-scan train"
    )
    p.add_argument(
        "--dataset",
        metavar="SPEC",
        help="evaluate on this dataset spec instead of the run's",
    )
    p.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="which split (default test; thresholds are chosen on val)",
    )
    p.add_argument(
        "--model",
        choices=("best", "last"),
        default="best",
        help="model.keras (best validation accuracy, default) or last.keras",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="images per model call (and per stage call of --scalable); "
        "default 256, whatever the run was trained with: a CPU runs a "
        "stage on 256 rows at a fraction of the per-row cost of 64",
    )
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data")
    p.add_argument(
        "--download",
        action="store_true",
        help="allow tensorflow-datasets / Keras to download missing data",
    )
    p.add_argument(
        "--scalable",
        action="store_true",
        help="also evaluate real early exit with RUN/thresholds.json "
        "(written by keras-scan search)",
    )
    p.add_argument(
        "--export",
        metavar="EXPORT",
        help="with --scalable: an export of RUN's model with a cost table "
        "(EXPORT/costs.json from `scan-lite profile`): also report the expected "
        "LiteRT latency speedup at the measured exit shares",
    )
    p.add_argument(
        "--variant",
        help="quantization variant of --export (default: its default_variant)",
    )
    return p


def run(args):
    from keras_scan import cli, runs, training
    from keras_scan.scan_model import ScanModel

    run_dir = runs.run_path(args.run)
    config = runs.load_config(run_dir)
    if args.batch_size is not None and args.batch_size < 1:
        raise arguments.refuse("--batch-size", "a positive int", args.batch_size)
    if args.export is not None and not args.scalable:
        raise cli.UserError(
            "`--export` gives the latency of early exit: use it with `--scalable`. "
            f"Received: --export {args.export!r} without --scalable"
        )
    if args.variant is not None and args.export is None:
        raise cli.UserError(
            "`--variant` picks the variant of `--export`; give `--export EXPORT`. "
            f"Received: --variant {args.variant!r} without --export"
        )
    thresholds = None
    if args.scalable:
        _check_has_exits(run_dir, config.get("no_exits") is True, cli)
        thresholds = _load_thresholds(run_dir, cli)
    model_file = runs.MODEL if args.model == "best" else runs.LAST
    model = runs.load_model(run_dir, model_file)
    if args.scalable:
        _check_has_exits(run_dir, not isinstance(model, ScanModel), cli)
        runs.check_threshold_count(
            thresholds, len(model.exit_names), run_dir / runs.THRESHOLDS
        )
    latency = None
    if args.export is not None:
        from keras_scan.commands import search

        latency = search.load_latency(args, model.exit_info, cli.UserError)
    splits = runs.load_splits(
        run_dir, dataset=args.dataset, data_dir=args.data_dir, download=args.download
    )
    num_classes = config.get("num_classes")
    if num_classes is not None and splits.num_classes != num_classes:
        raise ValueError(
            f"`--dataset` has {splits.num_classes} classes but the run was trained "
            f"on {num_classes}. Received: --dataset {args.dataset!r}"
        )
    split = getattr(splits, args.split)
    from keras_scan.forward import DEFAULT_BATCH_SIZE

    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    result = training.evaluate_model(model, split, batch_size)
    result.update(
        dataset=args.dataset or config["dataset"], split=args.split, model=model_file
    )
    if thresholds is not None:
        result["scalable"] = _scalable(model, split, thresholds, cli, batch_size)
        if latency is not None:
            result["scalable"].update(_latency_report(result["scalable"], latency))
    runs.write_json(run_dir / runs.EVAL, result)
    print(training.format_table(result))
    if "scalable" in result:
        s = result["scalable"]
        print(
            f"scalable (thresholds.json): accuracy {s['accuracy']:.4f} "
            f"(final exit alone {s['full_accuracy']:.4f}), MAC speedup "
            f"{s['mac_speedup']:.2f}x, wall-clock speedup {s['wall_speedup']:.2f}x "
            f"({s['backend']}, batch {s['batch_size']})"
            + (
                f", LiteRT latency speedup {s['latency_speedup']:.2f}x "
                f"(expected {s['mean_latency_ms']:.4g} ms vs full model "
                f"{s['full_latency_ms']:.4g} ms, {s['latency_source']['variant']}, "
                f"{s['latency_source']['threads']} thread(s))"
                if "latency_speedup" in s
                else ""
            )
        )
    print(f"wrote {run_dir / runs.EVAL}")
    return 0


def _check_has_exits(run_dir, plain, cli):
    if plain:
        raise cli.UserError(
            f"`--scalable` needs a model with exits; {str(run_dir)!r} has none "
            "(trained with --no-exits, or cut by `keras-scan grow`)."
        )


def _load_thresholds(run_dir, cli):
    from keras_scan import runs

    path = run_dir / runs.THRESHOLDS
    if not path.is_file():
        raise cli.UserError(
            f"`--scalable` needs {path}: run `keras-scan search {run_dir}` first."
        )
    return runs.load_thresholds(run_dir)


def _scalable(model, split, thresholds, cli, batch_size):
    try:
        from keras_scan import inference
    except ModuleNotFoundError as e:
        if e.name != "keras_scan.inference":
            raise
        raise cli.UserError(
            "`--scalable` needs keras_scan.inference, which this installation lacks."
        ) from None
    if isinstance(split, (tuple, list)):
        x, y = split
    else:
        x, y = split, None
    return inference.evaluate_scalable(model, x, y, thresholds, batch_size=batch_size)


def _latency_report(scalable, latency):
    """Expected LiteRT latency at the measured exit shares (cost table of --export)."""
    from keras_scan.latency import expected_speedup

    report = expected_speedup(scalable["exit_shares"], latency)
    report["latency_source"] = {
        key: latency[key] for key in ("export", "variant", "threads", "device")
    }
    return report
