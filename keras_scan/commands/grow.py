"""`keras-scan grow`: optimally deep networks (ODN) by progressive depth expansion.

Two modes, both writing a run folder whose `model.keras` is a plain
`image -> logits` model (usable by `keras-scan evaluate --no-exits`, search and
export like any run):

- `--backbone NAME --dataset SPEC`: train block by block until the validation
  accuracy reaches `--target-accuracy` (`keras_scan.grow`).
- `--from-run RUN`: cut an already trained SCAN model at the shallowest exit
  that reaches the target on the validation split (`keras_scan.cut_at_exit`).

OUT holds `model.keras`, `config.json` (resolved arguments, the data settings
`load_splits` needs, and a `grown` summary), `grow_report.json`,
`grow_accuracy.png` and, when training, `history.csv`. OUT is written into a
temporary folder and renamed into place: an error leaves nothing behind.
"""

import argparse
import csv
import io

from keras_scan import depth
from keras_scan.cli import UserError
from keras_scan.commands import arguments

REPORT = "grow_report.json"
PLOT = "grow_accuracy.png"

EXAMPLES = """examples:
  keras-scan grow --backbone cifar_resnet18 --dataset fashion_mnist \\
      --target-accuracy 0.92 --out runs/fm-grow
  keras-scan grow --backbone cifar_resnet18 --width 16 --limit 4000 \\
      --epochs-per-step 3 --patience 1 --target-accuracy 0.85 --out runs/fm-grow-small
  keras-scan grow --from-run runs/fm18 --target-accuracy 0.9 --out runs/fm18-cut
"""

# Flags of the training mode that choose the data and the backbone, with their
# defaults (`keras_scan.depth.grow` takes the data and backbone themselves).
DATA_DEFAULTS = {
    "backbone": "cifar_resnet18",
    "dataset": "fashion_mnist",
    "image_size": 32,
    "channels": 3,
    "val_fraction": 0.1,
    "limit": None,
}
# Flags of the training mode that are `keras_scan.depth.grow` arguments (flag
# name -> argument name); their defaults are grow's own.
GROW_FLAGS = {
    "width": "width",
    "head": "head",
    "epochs_per_step": "epochs_per_step",
    "patience": "patience",
    "min_delta": "min_delta",
    "max_epochs": "max_epochs",
    "freeze": "freeze",
    "start_depth": "start_depth",
    "depth_step": "depth_step",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "augment": "augment",
    "seed": "seed",
    "baseline_epochs": "baseline_epochs",
}
# Every flag of the training mode with its default (None on the parser, so
# that `--from-run` can refuse them when given).
GROW_DEFAULTS = {
    **DATA_DEFAULTS,
    **{flag: depth.GROW_DEFAULTS[arg] for flag, arg in GROW_FLAGS.items()},
}


def add_parser(subparsers):
    d = GROW_DEFAULTS
    p = subparsers.add_parser(
        "grow",
        help="find the optimal depth: grow a backbone block by block, or cut a "
        "trained SCAN run at the shallowest exit that reaches a target accuracy",
        description=(
            "Optimally deep networks (ODN, arXiv 2510.10764). Trains a backbone at "
            "one residual block, adds blocks (starting as the identity, earlier "
            "weights kept) when the validation accuracy has converged (plateau: no "
            "gain above --min-delta for --patience epochs, or --epochs-per-step "
            "epochs), and stops at the first depth whose validation accuracy "
            "reaches --target-accuracy. With --from-run, cuts a trained SCAN model "
            "at the shallowest exit that reaches the target on the validation "
            "split instead. Writes a run folder with a plain image -> logits model."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target-accuracy",
        type=float,
        required=True,
        help="validation accuracy to reach, a fraction in (0, 1] (0.92 = 92%%)",
    )
    p.add_argument("--out", required=True, help="run folder to write (must not exist)")
    p.add_argument(
        "--from-run",
        metavar="RUN",
        help="cut this trained SCAN run (RUN/model.keras) instead of training",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with code 1 when the target is not reached (the run is still "
        "written, at full depth)",
    )
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST files / tfds data")
    p.add_argument(
        "--download", action="store_true", help="allow downloading the data set"
    )
    g = p.add_argument_group("training mode (not with --from-run)")
    g.add_argument(
        "--backbone",
        help=f"one of {', '.join(sorted(depth.BACKBONES))} (default {d['backbone']})",
    )
    g.add_argument(
        "--dataset",
        help="fashion_mnist | tfds:NAME[:SPLIT] | folder:PATH "
        f"(default {d['dataset']})",
    )
    g.add_argument(
        "--image-size", type=int, help=f"input size (default {d['image_size']})"
    )
    g.add_argument(
        "--channels", type=int, choices=(1, 3), help=f"default {d['channels']}"
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help=f"share of train held out (default {d['val_fraction']})",
    )
    g.add_argument("--limit", type=int, help="use only N training images")
    g.add_argument(
        "--width",
        type=int,
        help=f"channels of the first stage (default {d['width']})",
    )
    g.add_argument(
        "--head",
        choices=depth.HEADS,
        help="classifier at each depth: scan (SCAN exit head, default), sepconv, "
        "or dense (pooling + Dense)",
    )
    g.add_argument(
        "--epochs-per-step",
        type=int,
        help=f"most epochs at one depth (default {d['epochs_per_step']})",
    )
    g.add_argument(
        "--patience",
        type=int,
        help="epochs without a gain above --min-delta that count as converged "
        f"(default {d['patience']})",
    )
    g.add_argument(
        "--min-delta",
        type=float,
        help=f"smallest val-accuracy gain that counts (default {d['min_delta']})",
    )
    g.add_argument(
        "--max-epochs", type=int, help="budget of epochs over all depths (default none)"
    )
    g.add_argument(
        "--freeze",
        action="store_const",
        const=True,
        help="freeze the stem and converged blocks",
    )
    g.add_argument(
        "--start-depth",
        type=int,
        help=f"blocks to start with (default {d['start_depth']})",
    )
    g.add_argument(
        "--depth-step",
        type=int,
        help=f"blocks added per expansion (default {d['depth_step']})",
    )
    g.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    g.add_argument("--lr", type=float, help=f"SGD learning rate (default {d['lr']})")
    g.add_argument(
        "--augment",
        action="store_const",
        const=True,
        help="random crop + flip of training images",
    )
    g.add_argument("--seed", type=int, help=f"default {d['seed']}")
    g.add_argument(
        "--baseline-epochs",
        type=int,
        help="also train the full-depth network from scratch until it matches the "
        "grown model's val accuracy (at most N epochs) and report both training "
        "costs (default: no baseline)",
    )
    return p


def _check_args(args):
    target = args.target_accuracy
    if not 0 < target <= 1:
        raise arguments.refuse(
            "--target-accuracy",
            "a fraction in (0, 1] (e.g. 0.92 for 92%)",
            f"--target-accuracy={target}",
        )
    arguments.output_folder(args.out, args.overwrite, args.from_run, "--from-run")
    if args.from_run is not None:
        given = [
            arguments.flag(k)
            for k in GROW_DEFAULTS
            if getattr(args, k, None) is not None
        ]
        if given:
            raise UserError(
                f"{', '.join(given)} only apply to training; with --from-run the "
                "data and model come from the run. Received: --from-run="
                f"{args.from_run!r} with {' '.join(given)}"
            )
        return
    for key, default in GROW_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, default)
    if args.backbone not in depth.BACKBONES:
        raise UserError(
            f"`--backbone` must be one of {sorted(depth.BACKBONES)}. "
            f"Received: --backbone={args.backbone!r}"
        )
    for key, low in (
        ("image_size", 8),
        ("width", 1),
        ("epochs_per_step", 1),
        ("patience", 1),
        ("start_depth", 1),
        ("depth_step", 1),
        ("batch_size", 1),
    ):
        arguments.check(args, key, arguments.at_least(low))
    for key in ("max_epochs", "baseline_epochs"):
        arguments.check(args, key, arguments.at_least(1), optional=True)
    arguments.check(args, "lr", arguments.above(0))
    arguments.check(args, "min_delta", arguments.at_least(0))


def _write_history(path, report):
    from keras_scan.files import atomic_write_text

    rows = []
    for step in report["steps"]:
        for i, acc in enumerate(step["val_history"], start=1):
            rows.append(
                {
                    "depth": step["depth"],
                    "block": step["block"],
                    "epoch_at_depth": i,
                    "val_accuracy": acc,
                }
            )
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["depth", "block", "epoch_at_depth", "val_accuracy"]
    )
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _grown_summary(report):
    keys = (
        "mode",
        "target_accuracy",
        "reached",
        "stopped_because",
        "depth",
        "num_blocks",
        "block",
        "exit",
        "val_accuracy",
        "test_accuracy",
        "epochs",
        "train_images",
    )
    summary = {k: report[k] for k in keys if k in report}
    summary["params"] = report["chosen"]["params"]
    summary["macs"] = report["chosen"]["macs"]
    summary["full_params"] = report["full"]["params"]
    summary["full_macs"] = report["full"]["macs"]
    summary["report"] = REPORT
    return summary


def _train(args):
    from keras_scan import data

    splits = data.load_dataset(
        args.dataset,
        args.image_size,
        channels=args.channels,
        val_fraction=args.val_fraction,
        seed=args.seed,
        limit=args.limit,
        data_dir=args.data_dir,
        download=args.download,
    )
    model, report = depth.grow(
        args.backbone,
        splits.train,
        splits.val,
        args.target_accuracy,
        num_classes=splits.num_classes,
        test_data=splits.test,
        **{arg: getattr(args, flag) for flag, arg in GROW_FLAGS.items()},
    )
    config = {"command": "grow", "mode": "grow"}
    config.update({k: getattr(args, k) for k in GROW_DEFAULTS})
    config.update(
        {
            "target_accuracy": args.target_accuracy,
            "data_dir": args.data_dir,
            "download": args.download,
            "strict": args.strict,
            "num_classes": splits.num_classes,
            "class_names": splits.class_names,
            "image_shape": list(splits.image_shape),
        }
    )
    return model, report, config


def _cut(args):
    from keras_scan import runs

    arg = "--from-run"
    src = runs.run_path(args.from_run, what="run folder with a trained model", arg=arg)
    runs.check_model_file(src / runs.MODEL, arg)  # before the rest of the run
    source_config = runs.load_config(src, arg)
    runs.require_exits(src, "grow --from-run", arg=arg)
    model = runs.load_model(src, arg=arg)
    runs.require_exits(src, "grow --from-run", arg=arg, model=model)
    val_accuracies = _val_accuracies(src, model, arg)
    splits = runs.load_splits(src, data_dir=args.data_dir, download=args.download)
    model_out, report = depth.from_scan_model(
        model,
        args.target_accuracy,
        val_data=splits.val,
        val_accuracies=val_accuracies,
        test_data=splits.test,
    )
    if val_accuracies is not None:
        report["val_accuracies_source"] = f"{runs.EVAL}"
    config = {
        k: source_config[k]
        for k in (
            "backbone",
            "dataset",
            "image_size",
            "channels",
            "val_fraction",
            "seed",
            "limit",
            "data_dir",
            "num_classes",
            "class_names",
        )
        if k in source_config
    }
    config.update(
        {
            "command": "grow",
            "mode": "from_run",
            "from_run": str(src),
            "target_accuracy": args.target_accuracy,
            "strict": args.strict,
        }
    )
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    return model_out, report, config


def _val_accuracies(src, model, arg):
    """Per-exit validation accuracies from `src/eval.json`, or None (measure them).

    A damaged eval.json, or one whose validation accuracies are not fractions
    in [0, 1], is refused (naming the file) rather than silently measured over.
    """
    from keras_scan import runs

    path = src / runs.EVAL
    if not path.is_file():
        return None
    payload = runs.load_json(path, arg)
    val_accuracies = None
    if isinstance(payload, dict) and payload.get("model", runs.MODEL) == runs.MODEL:
        try:
            val_accuracies = depth.validation_accuracies(payload, model.exit_names)
        except (TypeError, ValueError) as e:
            raise UserError(
                f"`{arg}` has a corrupt {runs.EVAL}: {path} holds an accuracy that "
                f"is not a number ({e}). Rerun `keras-scan evaluate` or delete it. "
                f"Received: {arg}={str(src)!r}"
            ) from None
    if val_accuracies is None:
        print(
            f"grow: {runs.EVAL} has no per-exit validation accuracies of "
            f"{runs.MODEL} (exits are chosen on validation, never test); "
            "measuring them now"
        )
        return None
    for name, value in val_accuracies.items():
        if not (arguments.is_number(value) and 0 <= value <= 1):
            raise UserError(
                f"`{arg}` has a corrupt {runs.EVAL}: the validation accuracy of "
                f"{name!r} in {path} must be a fraction in [0, 1]. Rerun `keras-scan "
                f"evaluate` or delete it. Received: {name}={value!r}"
            )
    return val_accuracies


def run(args):
    from keras_scan import runs

    _check_args(args)
    if args.from_run is not None:
        model, report, config = _cut(args)
    else:
        model, report, config = _train(args)
    config["no_exits"] = True  # model.keras is a plain image -> logits model
    config["grown"] = _grown_summary(report)
    with runs.atomic_folder(
        args.out, overwrite=args.overwrite, what="run folder", arg="--out"
    ) as tmp:
        model.save(tmp / runs.MODEL)
        report["chosen"]["saved_file_bytes"] = (tmp / runs.MODEL).stat().st_size
        runs.write_json(tmp / runs.CONFIG, config)
        runs.write_json(tmp / REPORT, report)
        if report["mode"] == "grow":
            _write_history(tmp / runs.HISTORY, report)
        depth.plot_accuracy_vs_depth(report, tmp / PLOT)
    files = [runs.MODEL, runs.CONFIG, REPORT, PLOT]
    if report["mode"] == "grow":
        files.append(runs.HISTORY)
    print(f"grow: wrote {args.out}: {', '.join(files)}")
    if not report["reached"]:
        held = (
            "full-depth model"
            if report["stopped_because"] == "full_depth"
            else "deepest model trained"
        )
        print(
            f"grow: the target {args.target_accuracy} was not reached; the run holds "
            f"the {held}" + (" (exit code 1: --strict)" if args.strict else "")
        )
        if args.strict:
            return 1
    return 0
