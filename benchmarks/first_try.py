"""A first try, as a new user makes it: a short run from scratch, every exit on test.

One `keras-scan train` per (case, variant), each on the same data, seed and
epochs; the variants differ by the flags listed below. The default cases are
the issue's: CIFAR ResNet18 (width 64) for one epoch on 3,000 Fashion-MNIST
images, and Keras Applications from scratch for two epochs on 2,000 images
(batch 64); `--cases families` adds one backbone of every other registry
family, trained the same way. Accuracies are read from each run's `eval.json`
(the test split, `--limit` images); the runs' own folders are temporary.

    python benchmarks/first_try.py                         # the issue's cases, every variant
    python benchmarks/first_try.py --cases resnet50 --variants default
    python benchmarks/first_try.py --cases families --variants default

Writes `benchmarks/results/first-try/results.json` and `REPORT.md` (rows
already there for other cases or variants are kept).
"""

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

BASE = "--dataset fashion_mnist --image-size {size} --verbose 0"
APPLICATION = "--backbone {} --epochs 2 --limit 2000 --batch-size 64"
# name -> the flags of the first try: the three cases (the default)...
CASES = {
    "cifar_resnet18": "--backbone cifar_resnet18 --epochs 1 --limit 3000",
    "resnet50": APPLICATION.format("resnet50"),
    "mobilenet_v2": APPLICATION.format("mobilenet_v2"),
}
DEFAULT_CASES = tuple(CASES)
# ... and one backbone of every other family in the registry, the same two
# epochs (`--cases families`): images fitted to the family's smallest size.
FAMILIES = (
    "mobilenet",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "efficientnet_v2_b0",
    "densenet121",
    "resnet50_v2",
    "vgg16",
    "xception",
    "inception_v3",
    "inception_resnet_v2",
)
CASES.update({name: APPLICATION.format(name) for name in FAMILIES})
# name -> extra flags: SCAN with the defaults, and the plain backbone trained by
# the same command (is the final exit held back by the exits, or by the budget?).
VARIANTS = {
    "default": "",
    "plain": "--no-exits",
    # A second seed (weights and batch order): how far one short run moves.
    "seed1": "--seed 1",
    # The same epoch in 4x the steps: is it the recipe or the step count?
    "batch32": "--batch-size 32",
    # IMTA's gradient equilibrium (the exits' losses averaged, not summed, in
    # the shared early blocks) with every exit's loss at weight 1: today's
    # default, spelled out so the row keeps its meaning.
    "ge": "--gradient-equilibrium --exit-weights equal",
    # The paper's loss weighting: neither (the default before both).
    "no_ge": "--no-gradient-equilibrium --exit-weights equal",
    # Exit losses weighted by depth (0.25/0.5/0.75/1), gradient equilibrium on.
    "exit_w_depth": "--exit-weights depth",
    # Crop + flip off: in one or two epochs, does augmentation cost more than
    # it gives? (at both seeds)
    "no_augment": "--no-augment",
    "no_augment_s1": "--no-augment --seed 1",
    # Each variable's gradient clipped to norm 1 on its own.
    "vclip1": "--no-augment --variable-clipnorm 1",
    "vclip1_s1": "--no-augment --variable-clipnorm 1 --seed 1",
    # Each kernel's gradient norm at most the kernel's norm.
    "agc1": "--no-augment --adaptive-clip 1",
    "agc1_s1": "--no-augment --adaptive-clip 1 --seed 1",
    # The mean of every exit teaches every exit, the final one included.
    "ens": "--no-augment --adaptive-clip 1 --teacher ensemble",
    "ens_s1": "--no-augment --adaptive-clip 1 --teacher ensemble --seed 1",
    # The plain backbone at a second seed.
    "plain_s1": "--no-exits --seed 1",
    # The learning rate of batch-normalized backbones (VGG16/19 default to a
    # tenth of it), SCAN and plain.
    "lr0.1": "--lr 0.1",
    "plain_lr0.1": "--no-exits --lr 0.1",
}
OUT = ROOT / "benchmarks" / "results" / "first-try"


def image_size(case):
    """32 pixels, or the backbone's smallest input when that is larger."""
    from keras_scan.backbones import registry

    backbone = shlex.split(CASES[case])[1]
    return max(32, registry.min_image_size(backbone))


def run_case(case, variant, folder):
    argv = [
        str(pathlib.Path(sys.executable).parent / "keras-scan"),
        "train",
        *shlex.split(CASES[case]),
        *shlex.split(BASE.format(size=image_size(case))),
        *shlex.split(VARIANTS[variant]),
        "--out",
        str(folder),
    ]
    command = "keras-scan " + shlex.join(argv[1:-2])
    start = time.perf_counter()
    done = subprocess.run(argv, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        # A run that fails (e.g. its loss became NaN) is a row, not a crash
        # of the whole benchmark: its error is what the user would see.
        said = [ln for ln in done.stderr.splitlines() if ln.startswith("keras-scan")]
        said = said or done.stderr.strip().splitlines()
        error = said[-1] if said else f"exit status {done.returncode}"
        error = error.replace(f"{folder.parent}{os.sep}", "")  # a temporary folder
        print(done.stderr[-2000:], file=sys.stderr)
        return {"command": command, "exits": {}, "error": error}
    result = json.loads((folder / "eval.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    return {
        "command": command,
        "exits": {e["name"]: e["accuracy"] for e in result["exits"]},
        "num_test": result["num_examples"],
        "seed": config["seed"],
        "seconds": round(seconds, 1),
    }


def report(results):
    lines = [
        "# A first try: every exit after a short run from scratch",
        "",
        "Test accuracy (%) of every exit, `keras-scan train` with the flags shown "
        "(Fashion-MNIST fitted to 32x32x3, or to the backbone's smallest input "
        "when larger; seed 0 unless the variant sets one). The issue's cases: "
        "CIFAR ResNet18 for one epoch on 3,000 images, ResNet50 and "
        "MobileNetV2 for two epochs on 2,000; every other case is one backbone "
        "of another registry family, two epochs on 2,000 images. "
        "`default`: SCAN with the package's defaults; `plain`: the backbone "
        "alone, same command with `--no-exits`; `seed1`: the default with "
        "`--seed 1` (how far one short run moves); `batch32`: the same epoch "
        "in 4x the steps; `ge`: gradient equilibrium with equal exit weights; "
        "`no_ge`: neither (the paper's sum of equally weighted losses); "
        "`exit_w_depth`: gradient equilibrium and exit losses weighted "
        "0.25/0.5/0.75/1; `no_augment(_s1)`: crop + flip off (seed 0, 1); "
        "`vclip1(_s1)`: crop + flip off, each variable's gradient clipped to "
        "norm 1 (`--variable-clipnorm 1`); `agc1(_s1)`: crop + flip off, each "
        "kernel's gradient norm at most the kernel's norm (`--adaptive-clip 1`); "
        "`plain_s1`: the plain backbone at seed 1; `lr0.1`, `plain_lr0.1`: SCAN and plain at lr 0.1 (the default but for "
        "VGG16/19, which have no batch norm and default to 0.01). "
        "Commands are as run: the flags a row's defaults meant are in its "
        "`variant`. Target: every exit >= 50%.",
        "",
        "| case | variant | exits | min | command |",
        "|---|---|---|---|---|",
    ]
    for key in sorted(results["runs"]):
        r = results["runs"][key]
        acc = [100 * a for a in r["exits"].values()]
        exits = " / ".join(f"{a:.2f}" for a in acc)
        low = f"{min(acc):.2f}" if acc else "failed"
        if r.get("error"):
            exits = f"failed: {r['error']}"
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(
            f"| {r['case']} | {r['variant']} | {exits} | {low} | "
            f"`{r['command']}`{note} |"
        )
    env = results["environment"]
    lines += [
        "",
        f"Machine: {env.get('cpu')}, {env.get('cpu_count')} cores. "
        "Reproduce: `python benchmarks/first_try.py`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help="comma-separated case names; `families` adds one backbone of "
        "every other registry family",
    )
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=pathlib.Path, default=OUT)
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if "families" in cases:
        at = cases.index("families")
        cases[at : at + 1] = [f for f in FAMILIES if f not in cases]
    variants = [v for v in args.variants.split(",") if v]
    for name, table, arg in (
        (cases, CASES, "--cases"),
        (variants, VARIANTS, "--variants"),
    ):
        unknown = [n for n in name if n not in table]
        if unknown:
            p.error(f"{arg}: unknown {unknown}; valid: {', '.join(table)}")
    from keras_scan import files

    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["environment"] = common.environment()
    for case in cases:
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                row = run_case(case, variant, pathlib.Path(tmp) / "run")
            row.update(case=case, variant=variant)
            results["runs"][f"{case}/{variant}"] = row
            print(
                case,
                variant,
                row.get("error")
                or {k: round(100 * v, 2) for k, v in row["exits"].items()},
            )
            args.out.mkdir(parents=True, exist_ok=True)
            common.write_json(path, results)
            files.atomic_write_text(args.out / "REPORT.md", report(results))


if __name__ == "__main__":
    main()
