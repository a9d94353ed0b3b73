"""`keras-scan search RUN`: evolve per-exit thresholds on the validation split."""

import argparse

from keras_scan.commands import arguments

EXAMPLE = """\
examples:
  keras-scan search runs/fm18 --max-accuracy-drop 0.5   # cheapest within 0.5 pt
  keras-scan search runs/fm18 --budget-macs 150e6       # most accurate within 150 M MACs
  keras-scan search runs/fm18 --measure margin --fallback ensemble --seed 1
  scan-lite profile exports/fm18 --variant int8           # measure -> costs.json
  keras-scan search runs/fm18 --cost latency --export exports/fm18 --variant int8

Thresholds are chosen on RUN's validation split (never the test split) and
written to RUN/thresholds.json; the accuracy/cost trade-off goes to
RUN/tradeoff.png. With --cost latency the search minimises the expected LiteRT
latency measured by `scan-lite profile` (EXPORT/costs.json, an export of RUN's
model): answering at exit k costs the cascade's latency through stage k, the
baseline is the full model file's latency. With --export the MAC and the latency
speedup are both reported.
"""


def add_parser(subparsers):
    from keras_scan.cascade_eval import COSTS
    from keras_scan.exit_rule import FALLBACKS, MEASURES
    from keras_scan.threshold_search import DEFAULT_MARGIN

    p = subparsers.add_parser(
        "search",
        help="evolve exit thresholds on the validation split (NSGA-II)",
        description="Runs the trained model of RUN once over its validation split, "
        "evolves one confidence threshold per shallow exit with DEAP's NSGA-II "
        "(accuracy vs mean MACs, or vs measured LiteRT latency with --cost "
        "latency), picks the operating point, and compares it with "
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
        type=arguments.finite_float,
        default=None,
        metavar="PTS",
        help="cheapest thresholds losing at most PTS percentage points vs the final "
        "exit's validation accuracy (default 0.5 unless --budget-macs is given)",
    )
    target.add_argument(
        "--budget-macs",
        type=arguments.finite_float,
        default=None,
        metavar="N",
        help="most accurate thresholds with mean MACs per image <= N (e.g. 150e6)",
    )
    target.add_argument(
        "--budget-ms",
        type=arguments.finite_float,
        default=None,
        metavar="MS",
        help="with --cost latency: most accurate thresholds with mean measured "
        "latency per image <= MS",
    )
    p.add_argument(
        "--cost",
        choices=COSTS,
        default="macs",
        help="what the search minimises: counted MACs (default) or the latency "
        "measured on LiteRT (needs --export with a cost table)",
    )
    p.add_argument(
        "--export",
        metavar="EXPORT",
        default=None,
        help="export folder of RUN's model with a cost table (EXPORT/costs.json "
        "from `scan-lite profile EXPORT`): latency costs and speedups",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="quantization variant of --export whose latency is used (default: "
        "the manifest's default_variant)",
    )
    p.add_argument(
        "--margin",
        type=arguments.float_at_least(0),
        default=DEFAULT_MARGIN,
        metavar="SE",
        help="standard errors of the validation accuracy drop a point must clear "
        "--max-accuracy-drop by, so it holds on unseen images (default "
        f"{DEFAULT_MARGIN:g}; 0 = the validation figure at face value)",
    )
    p.add_argument("--measure", choices=MEASURES, default="max_prob")
    p.add_argument("--fallback", choices=FALLBACKS, default="final")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--population",
        type=arguments.int_at_least(4),
        default=100,
        help="NSGA-II population, >= 4 (rounded up to a multiple of 4; default 100)",
    )
    p.add_argument(
        "--generations",
        type=arguments.int_at_least(1),
        default=100,
        help="NSGA-II generations, >= 1 (default 100)",
    )
    p.add_argument(
        "--batch-size",
        type=arguments.int_at_least(1),
        default=256,
        help="images per model call (default 256)",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder with the Fashion-MNIST files"
    )
    arguments.add_progress_flag(p, "the validation pass and the NSGA-II generations")
    return p


def _fmt_macs(macs):
    return f"{macs / 1e6:.2f} M"


def check_latency_flags(args, UserError):
    """`--cost latency` / `--budget-ms` / `--variant` need `--export` (before any work)."""
    if args.cost == "latency" and args.export is None:
        raise UserError(
            "`--cost latency` needs `--export EXPORT`: an export of this run's model "
            "with a cost table (EXPORT/costs.json, measured by `scan-lite profile "
            "EXPORT`). Received: --cost latency without --export"
        )
    if args.budget_ms is not None and args.cost != "latency":
        raise UserError(
            "`--budget-ms` bounds the measured latency: use it with `--cost latency "
            f"--export EXPORT`. Received: --budget-ms {args.budget_ms:g} with "
            f"--cost {args.cost}"
        )
    if args.budget_macs is not None and args.cost != "macs":
        raise UserError(
            "`--budget-macs` bounds MACs but `--cost latency` minimises latency; "
            f"give `--budget-ms`. Received: --budget-macs {args.budget_macs:g}"
        )
    if args.variant is not None and args.export is None:
        raise UserError(
            "`--variant` picks the variant of `--export`; give `--export EXPORT`. "
            f"Received: --variant {args.variant!r} without --export"
        )


def load_latency(args, exit_info, UserError, flag="--export"):
    """The export's measured costs, refused with the flag named; None without --export.

    Shared by `search` and `evaluate` (`args.export`, `args.variant`).
    """
    if args.export is None:
        return None
    from keras_scan import latency

    try:
        return latency.load_latency(args.export, args.variant, exit_info)
    except ValueError as e:
        raise UserError(f"`{flag}` cannot use {str(args.export)!r}: {e}") from None


def run(args):
    from keras_scan import data, files, plots, progress, runs, thresholds
    from keras_scan.cli import UserError

    check_latency_flags(args, UserError)
    run_dir = runs.run_path(args.run)
    runs.require_exits(run_dir, "search")
    model = runs.load_model(run_dir)
    runs.require_exits(run_dir, "search", model=model)
    flag = "--cost latency --export" if args.cost == "latency" else "--export"
    latency = load_latency(args, model.exit_info, UserError, flag)
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
        budget_ms=args.budget_ms,
        cost=args.cost,
        latency=latency,
        measure=args.measure,
        fallback=args.fallback,
        seed=args.seed,
        population=args.population,
        generations=args.generations,
        margin=args.margin,
        batch_size=args.batch_size,
        progress=progress.wanted(args.progress),
    )
    m = result.metrics
    # thresholds.json and tradeoff.png are replaced together or not at all.
    path, plot = run_dir / runs.THRESHOLDS, run_dir / runs.TRADEOFF
    with files.atomic_paths(path, plot) as (path_tmp, plot_tmp):
        plots.plot_tradeoff(result, plot_tmp, single_exits=m["single_exits_standalone"])
        result.save(path_tmp)

    names = m["exit_names"]
    g = m["global_threshold"]
    target = m["target"]
    if target["budget_macs"] is not None:
        goal = f"most accurate within {_fmt_macs(target['budget_macs'])} MACs"
    elif target.get("budget_ms") is not None:
        goal = f"most accurate within {target['budget_ms']:.4g} ms"
    else:
        goal = (
            f"cheapest within {target['max_accuracy_drop']:g} pt of the final exit "
            f"(>= {100 * target['min_accuracy']:.2f}%)"
        )
    lines = [
        f"search: {m['num_samples']} validation images, {goal}, "
        f"cost={m['cost']}, measure={result.measure}, fallback={result.fallback}",
        "thresholds: "
        + ", ".join(f"{n}={v:.6g}" for n, v in zip(names[:-1], result.values)),
        f"validation accuracy: {100 * m['accuracy']:.2f}% "
        f"(final exit {100 * m['final_exit_accuracy']:.2f}%)"
        + ("" if m["constraint_met"] else "  [target NOT met: most accurate point]"),
        f"mean MACs: {_fmt_macs(m['mean_macs'])} vs plain backbone "
        f"{_fmt_macs(m['full_macs'])}: speedup {m['speedup']:.2f}x "
        f"(ceiling {m['full_macs'] / m['exit_macs'][0]:.2f}x)",
        *_latency_lines(m, latency),
        "answered per exit: "
        + ", ".join(f"{n} {100 * s:.1f}%" for n, s in zip(names, m["exit_shares"])),
        f"global-threshold baseline: t={g['threshold']:.6g}, "
        f"accuracy {100 * g['accuracy']:.2f}%, {_fmt_macs(g['mean_macs'])} MACs, "
        f"speedup {g['speedup']:.2f}x"
        + (f" (latency {g['latency_speedup']:.2f}x)" if "latency_speedup" in g else "")
        + f"; chosen point from {m['source']}",
        f"time: predict {m['predict_seconds']:.1f} s, search "
        f"{m['search']['seconds']:.1f} s",
        f"wrote {path}",
        f"wrote {plot}",
    ]
    print("\n".join(lines))
    return 0


def _latency_lines(m, latency):
    if latency is None:
        return []
    return [
        f"mean LiteRT latency: {m['mean_latency_ms']:.4g} ms vs full model "
        f"{m['full_latency_ms']:.4g} ms: latency speedup {m['latency_speedup']:.2f}x "
        f"(ceiling {m['full_latency_ms'] / m['exit_latency_ms'][0]:.2f}x; "
        f"{latency['variant']}, {latency['threads']} thread(s), measured on "
        f"{latency['device'].get('platform', '?')})"
    ]
