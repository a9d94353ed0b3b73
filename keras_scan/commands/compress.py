"""`keras-scan compress RUN --budget-flops F --out RUN2`: a compact student run."""

import argparse

from keras_scan.commands import arguments

EXAMPLE = """\
examples:
  keras-scan compress runs/fm18 --budget-flops 0.5 --out runs/fm18-compact
  keras-scan compress runs/fm18 --budget-params 0.3 --out runs/fm18-small \\
      --epochs-blockwise 2 --epochs-finetune 5 --keep stage1_block1 --exclude drop
  keras-scan evaluate runs/fm18-compact          # then search / export as any run

The budget is a fraction of the teacher backbone's MACs (--budget-flops) or
parameters (--budget-params), counted by keras_scan.cost. RUN2 is a run
folder (model.keras, config.json with `compressed_from`) plus
compress_report.json: teacher vs student MACs, parameters, accuracy per exit,
and the choice made for every block. RUN2 is written atomically.
"""


def _names(values):
    """Flattens `--keep a b,c` into ['a', 'b', 'c']."""
    out = []
    for v in values or []:
        out.extend(part for part in v.split(",") if part)
    return out


def add_parser(subparsers):
    p = subparsers.add_parser(
        "compress",
        help="compact backbone by block-wise knowledge distillation under a budget",
        description="Replaces residual blocks of RUN's backbone with cheaper "
        "candidates (narrower, depthwise-separable, dropped) chosen greedily to "
        "meet a MACs or parameter budget, distils each new block from the "
        "teacher's block features, fine-tunes the student with logit "
        "distillation from the teacher (every exit of a SCAN model from the "
        "teacher's same exit), and writes the student as a new run folder.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="teacher run folder (with model.keras)")
    share = arguments.fraction(
        "a fraction of the teacher strictly between 0 and 1 (e.g. 0.5)"
    )
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--budget-flops",
        type=share,
        metavar="F",
        help="student backbone MACs <= F x the teacher's, 0 < F < 1",
    )
    budget.add_argument(
        "--budget-params",
        type=share,
        metavar="F",
        help="student backbone parameters <= F x the teacher's, 0 < F < 1",
    )
    p.add_argument("--out", required=True, metavar="RUN2", help="new run folder")
    p.add_argument("--overwrite", action="store_true", help="replace RUN2")
    p.add_argument(
        "--epochs-blockwise",
        type=arguments.int_at_least(0),
        default=1,
        metavar="N",
        help="epochs of block-wise feature distillation (default 1)",
    )
    p.add_argument(
        "--epochs-finetune",
        type=arguments.int_at_least(0),
        default=2,
        metavar="N",
        help="epochs of end-to-end logit distillation (default 2)",
    )
    p.add_argument(
        "--limit",
        type=arguments.int_at_least(1),
        default=None,
        metavar="N",
        help="use at most N images of each split (seeded choice), for quick runs",
    )
    p.add_argument(
        "--keep",
        nargs="+",
        default=None,
        metavar="BLOCK",
        help="blocks left as in the teacher (e.g. stage1_block1)",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        default=None,
        metavar="CAND",
        help="candidates never used (drop, sepconv, width_0.5, width_0.25), or "
        "BLOCK:CANDIDATE for one block",
    )
    p.add_argument("--batch-size", type=arguments.int_at_least(1), default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5, help="KL weight vs CE")
    p.add_argument(
        "--probe-batches",
        type=arguments.int_at_least(1),
        default=20,
        metavar="N",
        help="batches each candidate is distilled for before the allocation",
    )
    p.add_argument(
        "--scratch-baseline",
        action="store_true",
        help="also train the student architecture from scratch for the same "
        "number of epochs and report its accuracy (the distillation benefit)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-dir", default=None, help="folder with the Fashion-MNIST files"
    )
    return p


def _subset(split, n, seed):
    """At most `n` examples of `split` ((x, y) arrays or a tf.data.Dataset)."""
    import numpy as np

    if n is None:
        return split
    if isinstance(split, (tuple, list)):
        x, y = split
        if len(x) <= n:
            return split
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
        return x[idx], y[idx]
    return split.take(n)


def run(args):
    from keras_scan import compact, runs

    run_dir = runs.run_path(args.run)
    out = arguments.output_folder(
        args.out, args.overwrite, args.run, note=" (the teacher is kept)"
    )
    config = runs.load_config(run_dir)
    teacher = runs.load_model(run_dir)
    splits = runs.load_splits(run_dir, data_dir=args.data_dir)
    keep, exclude = _names(args.keep), _names(args.exclude)

    with runs.atomic_folder(out, overwrite=args.overwrite, what="run folder") as tmp:
        student, report = compact.compress_with_report(
            teacher,
            _subset(splits.train, args.limit, args.seed),
            _subset(splits.val, args.limit, args.seed),
            budget_flops=args.budget_flops,
            budget_params=args.budget_params,
            keep=keep or None,
            exclude=exclude or None,
            blockwise_epochs=args.epochs_blockwise,
            finetune_epochs=args.epochs_finetune,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            temperature=args.temperature,
            alpha=args.alpha,
            probe_batches=args.probe_batches,
            seed=args.seed,
            verbose=1,
            test_data=_subset(splits.test, args.limit, args.seed),
            scratch_baseline=args.scratch_baseline,
        )
        student.save(tmp / runs.MODEL)
        settings = dict(report["settings"])
        settings.update(
            {
                "budget_flops": args.budget_flops,
                "budget_params": args.budget_params,
                "limit": args.limit,
            }
        )
        new_config = dict(config)
        new_config["compressed_from"] = str(run_dir.resolve())
        new_config["compress"] = settings
        runs.write_json(tmp / runs.CONFIG, new_config)
        report["compressed_from"] = str(run_dir.resolve())
        runs.write_json(tmp / "compress_report.json", report)

    t, s = report["teacher"], report["student"]

    def acc(entry):
        test = entry["accuracy"].get("test") or entry["accuracy"]["val"]
        if not test:
            return "n/a"
        return ", ".join(f"{k} {100 * v:.2f}%" for k, v in test.items())

    split = "test" if report["teacher"]["accuracy"].get("test") else "val"
    choices = [f"{b['name']}={b['choice']}" for b in report["blocks"]]
    lines = [
        f"compress: budget {report['budget']['argument']}="
        f"{report['budget']['fraction']:g} -> student backbone "
        f"{100 * report['macs_ratio']:.1f}% of the MACs, "
        f"{100 * report['params_ratio']:.1f}% of the parameters",
        f"teacher: {t['macs'] / 1e6:.2f} M MACs, {t['params'] / 1e3:.1f} k params; "
        f"{split} accuracy {acc(t)}",
        f"student: {s['macs'] / 1e6:.2f} M MACs, {s['params'] / 1e3:.1f} k params; "
        f"{split} accuracy {acc(s)}",
    ]
    if report["scratch"] and report["scratch"]["accuracy"]:
        lines.append(
            f"scratch ({report['scratch']['epochs']} epochs): {split} accuracy "
            f"{acc(report['scratch'])}"
        )
    lines += ["blocks: " + ", ".join(choices), f"wrote {out}"]
    print("\n".join(lines))
    return 0
