#!/usr/bin/env python3
"""Reproducible keras_scan measurements: one command, one results folder.

    python benchmarks/run.py --profile smoke   # CI: everything exercised, 1-2 min
    python benchmarks/run.py --profile cpu     # `make bench`: 2 cores, ~30 min
    KERAS_BACKEND=jax python3 benchmarks/run.py --profile gpu   # `make bench-gpu`
    python benchmarks/run.py --from-gpu benchmarks/results/gpu  # export + LiteRT after it

Writes `<out>/results.json` (hardware, versions, commands, seeds, settings and
every number), `<out>/REPORT.md` (tables), `<out>/tradeoff.png` (accuracy vs
MACs) and `<out>/latency.png`. Models and exports go to `<out>/runs/` (not
committed). Sections (each side by side in one run):

1. accuracy       SCAN per exit + ensemble vs the plain backbone and ablations
2. scalable       thresholds on validation -> test accuracy and MAC speedup;
                  Keras ScalableInference wall time vs the final exit (section 3)
3/4. litert       export sizes, LiteRT latency (scan_lite, batch 1) per exit,
                  per stage and of the cascade, int8 accuracy drop per exit
5. training_cost  step time ScanModel vs plain, peak memory
6. seeds          compress (student vs teacher vs scratch) and grow (depth)
"""

import argparse
import json
import os
import pathlib
import shlex
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
try:  # the device-side runtime; from the checkout when not installed
    import scan_lite  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "tflite"))

SECTIONS = ("accuracy", "scalable", "litert", "training_cost", "seeds")
RESULTS = "results.json"
REPORT = "REPORT.md"


def parse_args(argv=None):
    from benchmarks import profiles

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--profile", choices=sorted(profiles.PROFILES), default="cpu")
    p.add_argument(
        "--out", help="results folder (default benchmarks/results/<profile>)"
    )
    p.add_argument(
        "--work", help="models and exports (default <out>/runs, not committed)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile setting, e.g. --set epochs=2 --set "
        "variants=scan,plain --set compress.enabled=false (recorded)",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the sections (and trained variants) already in <out> when "
        "their settings match",
    )
    p.add_argument(
        "--redo",
        default="",
        help="with --resume: comma-separated sections to measure again",
    )
    p.add_argument(
        "--from-gpu",
        metavar="DIR",
        help="complete a GPU run's results in DIR here (TensorFlow backend): "
        "export and LiteRT on the SCAN model it saved; writes into DIR unless "
        "--out is given",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rewrite REPORT.md and latency.png from <out>/results.json",
    )
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    args.redo = [s for s in args.redo.split(",") if s]
    bad = [s for s in args.sections + args.redo if s not in SECTIONS]
    if bad:
        p.error(f"--sections: unknown {bad}; choose from {','.join(SECTIONS)}")
    return args


def _command(argv):
    backend = os.environ.get("KERAS_BACKEND")
    prefix = f"KERAS_BACKEND={backend} " if backend else ""
    return prefix + "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    previous = None
    if args.from_gpu:
        source = pathlib.Path(args.from_gpu)
        previous = json.loads((source / RESULTS).read_text())
        args.profile = previous["profile"]
        out = pathlib.Path(args.out) if args.out else source
        work = pathlib.Path(args.work) if args.work else source / "runs"
    else:
        out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" / args.profile)
        work = pathlib.Path(args.work) if args.work else out / "runs"
    if args.profile == "gpu" and not args.from_gpu:
        # Child processes (peak memory) need the device too: no preallocation.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    from benchmarks import common, profiles, report

    if args.report_only:
        results = json.loads((out / RESULTS).read_text())
        _write_report(results, out, report)
        return results
    if args.from_gpu:
        settings = previous["settings"]
    else:
        settings = profiles.resolve(args.profile, args.set)
    if args.resume and (out / RESULTS).is_file():
        previous = json.loads((out / RESULTS).read_text())
        new = json.loads(json.dumps(common.jsonable(settings)))
        old = previous.get("settings", {})
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
        if changed <= {"variants", "overrides"}:
            if changed:  # section 1 again, reusing the variants trained before
                previous["sections"].pop("accuracy", None)
                previous["settings"], previous["overrides"] = new, new["overrides"]
        else:
            print(
                f"--resume: settings {sorted(changed)} differ from the saved run; "
                "starting over."
            )
            previous = None

    import keras

    ctx = common.Context(settings, out, work, quiet=args.quiet)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if previous is not None:
        results = previous
        results["commands"] = list(results.get("commands", [])) + [_command(argv)]
        ctx.sections = dict(results["sections"])
        prior_seconds = results.get("duration_s", 0.0)
    else:
        results = {
            "format_version": 1,
            "profile": args.profile,
            "commands": [_command(argv)],
            "started": common.now(),
            "environment": common.environment(),
            "load_average": {"start": common.load_average()},
            "settings": settings,
            "overrides": settings["overrides"],
            "seeds": {
                "data_split_and_weights": settings["seed"],
                "threshold_search": settings["search"]["seed"],
                "int8_calibration": settings["seed"],
                "compress_and_grow": settings["seed"],
            },
            "sections": {},
            "section_seconds": {},
        }
        prior_seconds = 0.0
    if args.from_gpu:
        results["environment_export"] = common.environment()

    def save():
        results["duration_s"] = prior_seconds + time.time() - started
        results["load_average"]["end"] = common.load_average()
        results["finished"] = common.now()
        common.write_json(out / RESULTS, results)

    results["data"] = {"sizes": ctx.splits.sizes(), "dataset": settings["dataset"]}
    ctx.log(
        f"profile {args.profile}: {common.model_label(settings)}, "
        f"data {results['data']['sizes']}, backend {keras.backend.backend()}"
    )
    # A GPU run leaves LiteRT (no TensorFlow there), and the threshold search
    # where DEAP is missing, to this machine.
    selected = ["scalable", "litert"] if args.from_gpu else args.sections
    for name in SECTIONS:
        if name not in selected:
            continue
        done = results["sections"].get(name)
        if (
            done is not None
            and "skipped" not in done
            and (args.resume or args.from_gpu)
            and name not in args.redo
        ):
            ctx.log(f"{name}: reused from {out / RESULTS}")
            continue
        ctx.log(f"=== {name}")
        t0, c0 = time.perf_counter(), common.cpu_seconds()
        section = _run_section(name, ctx, args, settings, common)
        results["sections"][name] = section
        ctx.sections[name] = section
        results["section_seconds"][name] = time.perf_counter() - t0
        results.setdefault("section_cpu_seconds", {})[name] = common.cpu_seconds() - c0
        save()
    results["headline"] = report.headline(results)
    save()
    _write_report(results, out, report)
    ctx.log(f"wrote {out / RESULTS}, {out / REPORT}")
    return results


def _write_report(results, out, report):
    results["latency_plot"] = (
        report.latency_plot(results, out / "latency.png") is not None
    )
    (out / REPORT).write_text(report.markdown(results) + "\n")


def _run_section(name, ctx, args, settings, common):
    import keras

    if name == "accuracy":
        from benchmarks import accuracy

        return accuracy.run(ctx, resume=args.resume)
    if name == "scalable":
        from benchmarks import scalable

        return scalable.run(ctx)
    if name == "litert":
        modes = settings["export_modes"]
        if args.from_gpu:
            modes = settings.get("deferred_export_modes") or modes
        if not modes:
            return {
                "skipped": "no export modes in this profile (TensorFlow-free run); "
                "complete it on a CPU machine with "
                f"`python benchmarks/run.py --from-gpu {ctx.out}`"
            }
        if keras.backend.backend() != "tensorflow" or not common.tensorflow_available():
            return {
                "skipped": "LiteRT export needs TensorFlow (KERAS_BACKEND=tensorflow)"
            }
        from benchmarks import litert

        return litert.run(ctx, modes)
    if name == "training_cost":
        from benchmarks import accuracy, train_step

        return train_step.run(ctx, accuracy.variant_config(settings, "scan"))
    if name == "seeds":
        from benchmarks import seeds

        return seeds.run(ctx)
    raise ValueError(name)


if __name__ == "__main__":
    main()
