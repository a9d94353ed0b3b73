"""`keras-scan search RUN`: evolve per-exit thresholds on the validation split."""

import argparse
import math

EXAMPLE = """\
examples:
  keras-scan search runs/fm18 --max-accuracy-drop 0.5   # cheapest within 0.5 pt
  keras-scan search runs/fm18 --budget-macs 150e6       # most accurate within 150 M MACs
  keras-scan search runs/fm18 --measure margin --fallback ensemble --seed 1

Thresholds are chosen on RUN's validation split (never the test split) and
written to RUN/thresholds.json; the accuracy/MACs trade-off goes to
RUN/tradeoff.png.
"""


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def add_parser(subparsers):
    from keras_scan.thresholds import FALLBACKS, MEASURES

    p = subparsers.add_parser(
        "search",
        help="evolve exit thresholds on the validation split (NSGA-II)",
        description="Runs the trained model of RUN once over its validation split, "
        "evolves one confidence threshold per shallow exit with DEAP's NSGA-II "
        "(accuracy vs mean MACs), picks the operating point, and compares it with "
        "the best single global threshold.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run", metavar="RUN", help="run folder written by `keras-scan train`"
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--max-accuracy-drop",
        type=_finite_float,
        default=None,
        metavar="PTS",
        help="cheapest thresholds losing at most PTS percentage points vs the final "
        "exit's validation accuracy (default 0.5 unless --budget-macs is given)",
    )
    target.add_argument(
        "--budget-macs",
        type=_finite_float,
        default=None,
        metavar="N",
        help="most accurate thresholds with mean MACs per image <= N (e.g. 150e6)",
    )
    p.add_argument("--measure", choices=MEASURES, default="max_prob")
    p.add_argument("--fallback", choices=FALLBACKS, default="final")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--population", type=int, default=100, help="NSGA-II population")
    p.add_argument("--generations", type=int, default=100, help="NSGA-II generations")
    p.add_argument("--batch-size", type=int, default=256, help="images per model call")
    p.add_argument(
        "--data-dir", default=None, help="folder with the Fashion-MNIST files"
    )
    return p


def _fmt_macs(macs):
    return f"{macs / 1e6:.2f} M"


def run(args):
    from keras_scan import data, plots, runs, thresholds
    from keras_scan.cli import UserError

    run_dir = runs.run_path(args.run)
    model = runs.load_model(run_dir)
    splits = runs.load_splits(run_dir, data_dir=args.data_dir)
    n_val = data.num_examples(splits.val)
    if n_val == 0:
        raise UserError(
            f"`run` has an empty validation split ({splits.source}); thresholds "
            f"need validation images. Received: run={str(args.run)!r}"
        )
    result = thresholds.search_thresholds(
        model,
        splits.val,
        max_accuracy_drop=args.max_accuracy_drop,
        budget_macs=args.budget_macs,
        measure=args.measure,
        fallback=args.fallback,
        seed=args.seed,
        population=args.population,
        generations=args.generations,
        batch_size=args.batch_size,
    )
    m = result.metrics
    path = result.save(run_dir / runs.THRESHOLDS)
    plot = plots.plot_tradeoff(
        result,
        run_dir / runs.TRADEOFF,
        single_exits=m["single_exits_standalone"],
    )

    names = m["exit_names"]
    g = m["global_threshold"]
    target = m["target"]
    if target["budget_macs"] is not None:
        goal = f"most accurate within {_fmt_macs(target['budget_macs'])} MACs"
    else:
        goal = (
            f"cheapest within {target['max_accuracy_drop']:g} pt of the final exit "
            f"(>= {100 * target['min_accuracy']:.2f}%)"
        )
    lines = [
        f"search: {m['num_samples']} validation images, {goal}, "
        f"measure={result.measure}, fallback={result.fallback}",
        "thresholds: "
        + ", ".join(f"{n}={v:.6g}" for n, v in zip(names[:-1], result.values)),
        f"validation accuracy: {100 * m['accuracy']:.2f}% "
        f"(final exit {100 * m['final_exit_accuracy']:.2f}%)"
        + ("" if m["constraint_met"] else "  [target NOT met: most accurate point]"),
        f"mean MACs: {_fmt_macs(m['mean_macs'])} vs plain backbone "
        f"{_fmt_macs(m['full_macs'])}: speedup {m['speedup']:.2f}x "
        f"(ceiling {m['full_macs'] / m['exit_macs'][0]:.2f}x)",
        "answered per exit: "
        + ", ".join(f"{n} {100 * s:.1f}%" for n, s in zip(names, m["exit_shares"])),
        f"global-threshold baseline: t={g['threshold']:.6g}, "
        f"accuracy {100 * g['accuracy']:.2f}%, {_fmt_macs(g['mean_macs'])} MACs, "
        f"speedup {g['speedup']:.2f}x; chosen point from {m['source']}",
        f"time: predict {m['predict_seconds']:.1f} s, search "
        f"{m['search']['seconds']:.1f} s",
        f"wrote {path}",
        f"wrote {plot}",
    ]
    print("\n".join(lines))
    return 0
