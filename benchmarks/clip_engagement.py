"""Where adaptive gradient clipping engages: per kernel, in how many steps, how hard.

Trains one `keras-scan train` run (the flags after `--`, in this process, in a
temporary folder) with the recipe's optimizer instrumented: for every kernel
the clip sees, the steps in which it scaled the gradient down, the mean
shortfall `1 - factor` over those steps, and the first and last such step
(counting from 1). Writes `benchmarks/results/clip-engagement/results.json`
(one entry per `--name`; entries already there for other names are kept) and
`REPORT.md`.

    python benchmarks/clip_engagement.py --name cifar_resnet18_cpu -- --width 16 --limit 20000 --epochs 3
    python benchmarks/clip_engagement.py --name efficientnet_b0_first_try -- \\
        --backbone efficientnet_b0 --epochs 2 --limit 2000 --batch-size 64
"""

import argparse
import contextlib
import json
import os
import pathlib
import shlex
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "clip-engagement"
SHOWN = 12  # kernels per run in the report, the most often clipped first


@contextlib.contextmanager
def counting_clip(optimizers):
    """Makes the recipe build a counting `ScaledSGD`; appends each one built."""
    import keras
    from keras import ops

    from keras_scan.training import schedule

    base = schedule.ScaledSGD

    class CountingSGD(base):
        def build(self, variables):
            super().build(variables)
            self._counts = {}
            with keras.name_scope("clip_counts"):
                for variable in variables:
                    if len(variable.shape) >= 2:
                        self._counts[variable.path] = [
                            self.add_variable((), initializer="zeros", name=name)
                            for name in ("steps", "shortfall", "first", "last")
                        ]
            self._step = self.add_variable((), initializer="zeros", name="step")
            optimizers.append(self)

        def apply(self, grads, trainable_variables=None):
            self._step.assign_add(1.0)
            return super().apply(grads, trainable_variables)

        def _clip_to_weight(self, grad, variable):
            clipped = super()._clip_to_weight(grad, variable)
            grad_norm = ops.sqrt(ops.sum(ops.square(grad)))
            kept = ops.sqrt(ops.sum(ops.square(clipped)))
            factor = ops.cast(kept / ops.maximum(grad_norm, 1e-12), "float32")
            hit = factor < 1.0 - 1e-6
            steps, shortfall, first, last = self._counts[variable.path]
            steps.assign_add(ops.cast(hit, "float32"))
            shortfall.assign_add(ops.where(hit, 1.0 - factor, 0.0))
            first.assign(ops.where(hit & (first == 0.0), self._step, first))
            last.assign(ops.where(hit, self._step, last))
            return clipped

    schedule.ScaledSGD = CountingSGD
    try:
        yield
    finally:
        schedule.ScaledSGD = base


def counts(optimizer):
    """`(steps, rows)`: rows of the kernels clipped at least once."""
    rows = []
    for path, values in optimizer._counts.items():
        steps, shortfall, first, last = (float(v.numpy()) for v in values)
        if steps:
            rows.append(
                {
                    "kernel": path,
                    "steps": int(steps),
                    "mean_shortfall": shortfall / steps,
                    "first_step": int(first),
                    "last_step": int(last),
                }
            )
    rows.sort(key=lambda r: (-r["steps"], r["kernel"]))
    return int(optimizer._step.numpy()), len(optimizer._counts), rows


def measure(train_args):
    """Trains with `keras-scan train train_args`; the counts and the accuracies."""
    from keras_scan import cli, training

    for flag in ("--out", "--resume", "--config"):
        if any(a == flag or a.startswith(flag + "=") for a in train_args):
            raise SystemExit(f"clip_engagement.py: {flag} is not allowed after --")
    parser = cli.build_parser()
    args = parser.parse_args(["train", *train_args, "--out", "unused"])
    config = training.resolve_config({k: getattr(args, k) for k in training.DEFAULTS})
    if not config["adaptive_clip"]:
        raise SystemExit(
            "clip_engagement.py: adaptive clipping is off for these flags "
            f"(adaptive_clip={config['adaptive_clip']!r}): nothing to count"
        )
    optimizers = []
    with tempfile.TemporaryDirectory() as work, counting_clip(optimizers):
        out = pathlib.Path(work) / "run"
        code = cli.main(["train", *train_args, "--verbose", "0", "--out", str(out)])
        if code:
            raise SystemExit(f"clip_engagement.py: keras-scan train exited {code}")
        evaluation = json.loads((out / "eval.json").read_text())
    steps, kernels, rows = counts(optimizers[-1])
    return {
        "command": "keras-scan train " + shlex.join(train_args),
        "adaptive_clip": config["adaptive_clip"],
        "steps": steps,
        "kernels": kernels,
        "clipped": rows,
        "exits": {e["name"]: e["accuracy"] for e in evaluation["exits"]},
    }


def report(results):
    lines = [
        "# Where adaptive gradient clipping engages",
        "",
        "Per run: the kernels whose gradient the clip scaled down, in how many of",
        "the run's steps, the mean shortfall (1 - the factor) over those steps,",
        "and the first and last such step. Test accuracy of every exit last.",
        f"Machine: {results['environment'].get('cpu', '?')}.",
        "",
    ]
    for name, run in results["runs"].items():
        exits = " / ".join(f"{100 * a:.2f}" for a in run["exits"].values())
        lines += [
            f"## {name}",
            "",
            f"`{run['command']}` (`--adaptive-clip {run['adaptive_clip']:g}`): "
            f"{len(run['clipped'])} of {run['kernels']} kernels clipped at least "
            f"once in {run['steps']} steps; exits {exits}.",
            "",
            "| kernel | steps clipped | mean shortfall | first step | last step |",
            "|---|---|---|---|---|",
        ]
        for row in run["clipped"][:SHOWN]:
            lines.append(
                f"| `{row['kernel']}` | {row['steps']} | "
                f"{row['mean_shortfall']:.3f} | {row['first_step']} | "
                f"{row['last_step']} |"
            )
        if len(run["clipped"]) > SHOWN:
            lines.append(f"| ({len(run['clipped']) - SHOWN} more) | | | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", required=True, help="the run's name in the report")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(own)
    if not args.name.strip():
        parser.error(f"--name must not be empty. Received: --name {args.name!r}")
    if not train_args:
        parser.error(
            "give the run's `keras-scan train` flags after `--` (e.g. -- --width 16 "
            "--epochs 3): without them it would train the defaults' 200 epochs"
        )
    run = measure(train_args)
    out = pathlib.Path(args.out)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["runs"][args.name] = run
    results["environment"] = common.environment()
    common.write_json(path, results)
    (out / "REPORT.md").write_text(report(results) + "\n")
    print(report({"runs": {args.name: run}, "environment": results["environment"]}))


if __name__ == "__main__":
    main()
