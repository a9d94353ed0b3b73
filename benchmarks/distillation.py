"""Self-distillation ablations: what each piece of the loss and recipe changes.

Every variant of a budget is trained in one process, one after the other,
with the same data split, seed, epochs and evaluation (test split, every
exit), so the rows of a table differ only by the settings they name. Each
row is a set of `keras_scan.training` settings on top of the budget's; its
`keras-scan train` equivalent is recorded too.

```
python benchmarks/distillation.py --budget cpu      # the CPU profile's budget
python benchmarks/distillation.py --budget long     # 20k images x 12 epochs
python benchmarks/distillation.py --budget cpu --variants plain,ds,default
python benchmarks/distillation.py --budget smoke    # seconds; what the test runs
```

Results go to `benchmarks/results/distillation-<budget>/` (`results.json`,
`REPORT.md`); trained variants are cached in its `runs/` (ignored by git) and
reused by a rerun with the same settings (`--redo NAME` trains one again).
"""

import argparse
import json
import pathlib
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

BUDGETS = {
    # What the test runs: every code path, numbers meaningless.
    "smoke": {"width": 8, "limit": 400, "epochs": 2, "test_limit": 200},
    # The first table: 9k train / 1k validation images, 10 epochs.
    "short": {"width": 16, "limit": 10000, "epochs": 10, "test_limit": None},
    # The CPU profile of benchmarks/run.py: 18k / 2k images, 3 epochs.
    "cpu": {"width": 16, "limit": 20000, "epochs": 3, "test_limit": None},
    # A longer CPU budget: 18k / 2k images, 12 epochs.
    "long": {"width": 16, "limit": 20000, "epochs": 12, "test_limit": None},
}

# The paper's code: step schedule, no warm-up, alpha 0.5 with T^2 at T = 3.
PAPER = {"recipe": "paper", "head": "scan", "attention": "scan"}

# The recipe the loss ablations share, pinned here so that a change of the
# package's defaults does not silently change what a row means (the
# rows of FOLLOW_DEFAULTS follow `keras_scan.training.DEFAULTS`).
BASE = {
    "schedule": "cosine",
    "warmup": 0.05,
    "clipnorm": None,
    "adaptive_clip": None,
    "bn_momentum": 0.9,
    "bn_recalibration": 20,
    "alpha": 0.5,
    "temperature": 3.0,
    "kd_loss": "kl_t2",
    "kd_mix": "convex",
    "teacher": "final",
    "beta": 1.0,
    "distill_warmup": 0.0,
    "gradient_equilibrium": False,
    "exit_weights": None,
    # Every row was measured with crop + flip (the default until the
    # no-augmentation rows below).
    "augment": True,
    # The loss ablations were measured on the paper's exits.
    "head": "scan",
    "attention": "scan",
}

# Rows on top of `keras_scan.training.DEFAULTS` alone (no BASE pinning),
# measured while crop + flip was the default: they keep it.
CROP_FLIP_DEFAULTS = (
    "default",
    "ds_default",
    "add_kl_a0.3",
    "add_kl_t2_a0.3",
    "add_kl_t2_a0.1",
    "kl_a0.3_ramp_lite",
    "default_s1",
    "ds_default_s1",
    "ge",
    "ds_ge",
    "exit_w_depth",
    "exit_w_final2",
    "ge_exit_w_depth",
    "ds_ge_exit_w_depth",
    "plain_s1",
    "ge_s1",
    "ds_ge_s1",
    "plain_s2",
    "ge_s2",
    "ds_ge_s2",
)
# Every row on top of `keras_scan.training.DEFAULTS` (no BASE pinning).
FOLLOW_DEFAULTS = (
    *CROP_FLIP_DEFAULTS,
    *(
        f"{name}{suffix}"
        for suffix in ("", "_s1", "_s2")
        for name in (
            "no_augment",
            "plain_no_augment",
            "no_augment_ds",
            "no_augment_depth",
            "no_augment_ds_depth",
            "vclip",
            "plain_vclip",
            "ds_vclip",
            "agc",
            "plain_agc",
            "ds_agc",
            "ens",
        )
    ),
    "no_augment_no_ge",
    *(f"{n}{x}" for x in ("_s3", "_s4") for n in ("ens", "ds_agc", "plain_agc")),
)

# Rows: settings on top of the budget (and of `keras_scan.training.DEFAULTS`).
# "*_paper" rows use the paper's recipe; the others the package's defaults,
# with the named loss settings changed.
VARIANTS = {
    "plain_paper": dict(PAPER, no_exits=True),
    "ds_paper": dict(PAPER, distillation=False),
    "scan_paper": dict(PAPER),
    "plain": {"no_exits": True},
    "ds": {"distillation": False},
    "default": {},
    # Deep supervision on the package's default exits and recipe: the row
    # "default" must beat at every exit (issue 14).
    "ds_default": {"distillation": False},
    # The labels at full weight, the teacher added (`--kd-mix add`), on the
    # package's exits and recipe.
    "add_kl_a0.3": {"kd_mix": "add", "alpha": 0.3, "kd_loss": "kl"},
    "add_kl_t2_a0.3": {"kd_mix": "add", "alpha": 0.3, "kd_loss": "kl_t2"},
    "add_kl_t2_a0.1": {"kd_mix": "add", "alpha": 0.1, "kd_loss": "kl_t2"},
    # The default before the `add` rows were measured (the paper's mix, SCAN
    # journal's weight), on the default exits.
    "kl_a0.3_ramp_lite": {"kd_mix": "convex", "alpha": 0.3, "kd_loss": "kl"},
    # A second seed (initialisation and batch order; same data split) of the
    # default and of deep supervision: the run-to-run noise of a comparison.
    "default_s1": {"seed": 1},
    "ds_default_s1": {"distillation": False, "seed": 1},
    # How the exits' gradients enter the shared trunk: IMTA's gradient
    # equilibrium (each section gets the mean of the losses reaching it, not
    # the sum), with and without the teacher.
    "ge": {"gradient_equilibrium": True, "exit_weights": None},
    "ds_ge": {
        "distillation": False,
        "gradient_equilibrium": True,
        "exit_weights": None,
    },
    # Per-exit loss weights (exits 0-2, final last): rising with depth, and
    # the final exit counted twice.
    "exit_w_depth": {
        "gradient_equilibrium": False,
        "exit_weights": [0.25, 0.5, 0.75, 1.0],
    },
    "exit_w_final2": {
        "gradient_equilibrium": False,
        "exit_weights": [1.0, 1.0, 1.0, 2.0],
    },
    # Depth-rising weights on top of gradient equilibrium, with and without
    # the teacher.
    "ge_exit_w_depth": {
        "gradient_equilibrium": True,
        "exit_weights": [0.25, 0.5, 0.75, 1.0],
    },
    "ds_ge_exit_w_depth": {
        "distillation": False,
        "gradient_equilibrium": True,
        "exit_weights": [0.25, 0.5, 0.75, 1.0],
    },
    # Seeds 1 and 2 (initialisation and batch order; same data split) of the
    # plain backbone, today's defaults and deep supervision with them: the
    # targets judged on a three-seed mean, not on one data order.
    **{
        f"{name}_s{seed}": dict(settings, seed=seed)
        for seed in (1, 2)
        for name, settings in (
            ("plain", {"no_exits": True}),
            ("ge", {"gradient_equilibrium": True, "exit_weights": None}),
            (
                "ds_ge",
                {
                    "distillation": False,
                    "gradient_equilibrium": True,
                    "exit_weights": None,
                },
            ),
        )
    },
    # Crop + flip off on the pinned loss settings above (the paper's exits and
    # loss, no gradient equilibrium): a first measurement, kept.
    "base_no_augment": {"augment": False},
    # Crop + flip off, today's defaults and the plain backbone: what the
    # augmentation gives (or costs) at each budget.
    **{
        f"{name}{suffix}": dict(settings, augment=False, **seed)
        for suffix, seed in (("", {}), ("_s1", {"seed": 1}), ("_s2", {"seed": 2}))
        for name, settings in (
            ("no_augment", {}),
            ("plain_no_augment", {"no_exits": True}),
            ("no_augment_ds", {"distillation": False}),
            # Exit losses rising with depth (0.25 / 0.5 / 0.75 / 1), with and
            # without the teacher: the final exit's share of the trunk.
            ("no_augment_depth", {"exit_weights": [0.25, 0.5, 0.75, 1.0]}),
            (
                "no_augment_ds_depth",
                {"distillation": False, "exit_weights": [0.25, 0.5, 0.75, 1.0]},
            ),
            # Each variable's gradient clipped to norm 1 (`--variable-clipnorm
            # 1`), for SCAN, the plain backbone and deep supervision.
            ("vclip", {"variable_clipnorm": 1.0}),
            ("plain_vclip", {"no_exits": True, "variable_clipnorm": 1.0}),
            ("ds_vclip", {"distillation": False, "variable_clipnorm": 1.0}),
            # Adaptive gradient clipping: each kernel's gradient norm at most
            # its norm (`--adaptive-clip 1`).
            ("agc", {"adaptive_clip": 1.0}),
            ("plain_agc", {"no_exits": True, "adaptive_clip": 1.0}),
            ("ds_agc", {"distillation": False, "adaptive_clip": 1.0}),
            # The mean of every exit teaches every exit, the final one included
            # (`--teacher ensemble`): a teacher better than the final exit.
            ("ens", {"teacher": "ensemble", "adaptive_clip": 1.0}),
        )
    },
    # Two more seeds of today's defaults, deep supervision and the plain
    # backbone: is an exit's gap to deep supervision on three seeds noise?
    **{
        f"{name}_s{seed}": dict(settings, augment=False, adaptive_clip=1.0, seed=seed)
        for seed in (3, 4)
        for name, settings in (
            ("ens", {"teacher": "ensemble"}),
            ("ds_agc", {"distillation": False}),
            ("plain_agc", {"no_exits": True}),
        )
    },
    # Without augmentation the plain backbone gains more than SCAN's final
    # exit: is it gradient equilibrium (the final loss's share of the early
    # blocks' gradient) or the exits' weights?
    "no_augment_no_ge": {"augment": False, "gradient_equilibrium": False},
    "kl_t2_a0.5": {"kd_loss": "kl_t2", "alpha": 0.5},
    "kl_t2_a0.3": {"kd_loss": "kl_t2", "alpha": 0.3},
    "kl_t2_a0.1": {"kd_loss": "kl_t2", "alpha": 0.1},
    "kl_a0.3": {"kd_loss": "kl", "alpha": 0.3},
    "kl_a0.5": {"kd_loss": "kl", "alpha": 0.5},
    "kl_t2_a0.5_ramp": {"kd_loss": "kl_t2", "alpha": 0.5, "distill_warmup": 0.5},
    "kl_a0.3_ramp": {"kd_loss": "kl", "alpha": 0.3, "distill_warmup": 0.5},
    "kl_t2_a0.5_T1": {"kd_loss": "kl_t2", "alpha": 0.5, "temperature": 1.0},
    "reverse_kl_t2_a0.5": {"kd_loss": "reverse_kl_t2", "alpha": 0.5},
    "kl_a0.3_beta0": {"kd_loss": "kl", "alpha": 0.3, "beta": 0.0},
    "kl_a0.3_beta0_ramp": {
        "kd_loss": "kl",
        "alpha": 0.3,
        "beta": 0.0,
        "distill_warmup": 0.5,
    },
    "ds_beta0": {"distillation": False, "beta": 0.0},
    # Exit designs (issue 15) under the default loss: the paper's exits are
    # `kl_a0.3_ramp`; "default" has the package's (lite head, channel gate).
    "lite_no_attention": {
        "kd_loss": "kl",
        "alpha": 0.3,
        "distill_warmup": 0.5,
        "head": "lite",
        "attention": "none",
    },
    "ens_kl_a0.3": {"kd_loss": "kl", "alpha": 0.3, "teacher": "ensemble"},
    "ens_kl_a0.3_ramp": {
        "kd_loss": "kl",
        "alpha": 0.3,
        "teacher": "ensemble",
        "distill_warmup": 0.5,
    },
    "ens_kl_t2_a0.5_ramp": {
        "kd_loss": "kl_t2",
        "alpha": 0.5,
        "teacher": "ensemble",
        "distill_warmup": 0.5,
    },
}


def variant_config(budget, name, extra=None):
    from keras_scan import training

    b = BUDGETS[budget]
    overrides = dict(
        backbone="cifar_resnet18",
        width=b["width"],
        dataset="fashion_mnist",
        image_size=32,
        limit=b["limit"],
        epochs=b["epochs"],
        batch_size=128,
        seed=0,
    )
    row = VARIANTS[name] if extra is None else extra
    if name not in FOLLOW_DEFAULTS and row.get("recipe") != "paper":
        overrides.update(BASE)
    elif name in CROP_FLIP_DEFAULTS:
        overrides["augment"] = True
    if "adaptive_clip" not in row:
        # Every row that does not set it was measured before adaptive
        # clipping was the default (0 is off: None would leave the default).
        overrides["adaptive_clip"] = 0.0
    if "teacher" not in row:
        # ... and with the final exit as teacher, the default until the
        # ensemble teacher.
        overrides["teacher"] = "final"
    overrides.update(row)
    return training.resolve_config(overrides)


# Settings of the exits and their losses: inert on the plain backbone.
EXIT_SETTINGS = ("exit_weights", "gradient_equilibrium", "head", "attention", "exits")

# Settings of the distillation term alone: inert without it.
KD_SETTINGS = (
    "alpha",
    "temperature",
    "kd_loss",
    "kd_mix",
    "teacher",
    "distill_warmup",
)


def _same_settings(stored, config):
    """Whether a cached row was trained with `config` (settings added to the
    package since are compared only when the cached row has them; rows from
    before attention kinds stored `attention: true` for the paper's)."""
    stored = dict(stored)
    # Rows from before gradient equilibrium existed were trained without it.
    stored.setdefault("gradient_equilibrium", False)
    stored.setdefault("exit_weights", None)  # and before exit weights: equal
    if isinstance(stored.get("attention"), bool):
        stored["attention"] = "scan" if stored["attention"] else "none"
    if stored.get("distillation") is False or stored.get("no_exits"):
        for key in KD_SETTINGS:  # no distillation term: they change nothing
            stored.pop(key, None)
    if stored.get("no_exits"):
        for key in EXIT_SETTINGS:  # one exit: nothing to weigh or share
            stored.pop(key, None)
    return all(config.get(k) == v for k, v in stored.items())


def cli_command(config):
    from keras_scan import training

    parts = ["keras-scan train"]
    config = dict(config)
    config.setdefault("gradient_equilibrium", False)  # rows from before it
    config.setdefault("exit_weights", None)
    config.setdefault("adaptive_clip", None)  # rows from before it
    if isinstance(config.get("attention"), bool):  # rows from before kinds
        config["attention"] = "scan" if config["attention"] else "none"
    base = training.recipe_defaults(
        config["recipe"], config.get("backbone", "cifar_resnet18")
    )
    inert = (
        KD_SETTINGS
        if config.get("distillation") is False or config.get("no_exits")
        else ()
    ) + (EXIT_SETTINGS if config.get("no_exits") else ())
    for key, value in config.items():
        if key in ("data_dir", "distribute") or value == base.get(key):
            continue
        if key in inert:
            continue
        if key == "recipe":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flag = {
                "no_exits": "--no-exits",
                "distillation": "--no-distill",
                "augment": "--augment" if value else "--no-augment",
                "gradient_equilibrium": "--gradient-equilibrium"
                if value
                else "--no-gradient-equilibrium",
            }[key]
            parts.append(flag)
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if key == "exit_weights" and value is None:
            value = "equal"
        if key == "adaptive_clip" and value is None:
            value = 0
        parts.append(f"{flag} {value}")
    if config["recipe"] != "default":
        parts.insert(1, f"--recipe {config['recipe']}")
    return " ".join(parts + ["--out R"])


def train_variant(splits, config, test):
    import keras

    from keras_scan import training

    keras.utils.set_random_seed(config["seed"])
    model = training.make_model(config, splits.num_classes)
    steps = training.steps_per_epoch(splits, config["batch_size"])
    training.compile_model(model, training.make_optimizer(config, steps, model=model))
    train_ds, val_ds = training.make_pipelines(splits, config)
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config["epochs"],
        steps_per_epoch=steps,
        shuffle=False,
        callbacks=[
            keras.callbacks.TerminateOnNaN(),
            *training.recipe_callbacks(config),
        ],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    before = training.evaluate_model(model, test, config["batch_size"])
    used = training.finish_training(model, splits, config)
    after = (
        training.evaluate_model(model, test, config["batch_size"]) if used else before
    )
    logs = history.history
    return {
        "exits": [e["accuracy"] for e in after["exits"]],
        "exit_names": [e["name"] for e in after["exits"]],
        "exits_before_recalibration": [e["accuracy"] for e in before["exits"]],
        "ensemble": (after["ensemble"] or {}).get("accuracy"),
        "train_seconds": seconds,
        "recalibration_batches": used,
        "last_epoch": {k: v[-1] for k, v in logs.items()},
        "history": {
            k: v
            for k, v in logs.items()
            if k in ("loss", "final_loss", "final_accuracy", "val_final_accuracy")
        },
    }


def _fmt(x):
    return "" if x is None else f"{100 * x:.2f}"


def _exit_cells(exits):
    """Four table cells (exits 0-2, final); a plain backbone fills only the last."""
    return [""] * (4 - len(exits)) + [_fmt(a) for a in exits]


def report(results):
    budget = results["budget"]
    lines = [
        f"# Self-distillation ablations: budget `{budget['name']}`",
        "",
        f"CIFAR ResNet18 width {budget['width']}, Fashion-MNIST padded to 32x32x3, "
        f"{results['sizes']['train']} train / {results['sizes']['val']} validation "
        f"images, {budget['epochs']} epochs, batch 128, seed 0; test accuracy (%) "
        f"on {results['sizes']['test']} test images per exit, last-epoch weights "
        "(after the recipe's batch-norm re-estimation where it has one). One run, "
        "one machine: "
        f"{results['environment'].get('cpu', '?')}.",
        "",
        "| variant | exit 0 | exit 1 | exit 2 | final | ensemble | "
        "vs plain (final) | train s | settings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = results["variants"]
    plain = rows.get("plain", {}).get("exits", [None])[-1]
    defaults = json.loads(
        json.dumps(common.jsonable(variant_config(budget["name"], "default")))
    )
    for name, r in rows.items():
        exits = r["exits"]
        cells = _exit_cells(exits)
        delta = (
            ""
            if plain is None or name == "plain"
            else f"{100 * (exits[-1] - plain):+.2f}"
        )
        settings = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        if name != "default" and _same_settings(r["config"], defaults):
            name = f"{name} (= default)"
        lines.append(
            f"| {name} | {' | '.join(cells)} | {_fmt(r.get('ensemble'))} | {delta} | "
            f"{r['train_seconds']:.0f} | {settings} |"
        )
    lines += seed_means(rows)
    lines += [
        "",
        "Rows named `*_paper` use `--recipe paper` (step schedule, no warm-up, no "
        "batch-norm re-estimation); the others the package's default recipe with "
        "the settings named. `plain` is the backbone alone (`--no-exits`), `ds` "
        "deep supervision (`--no-distill`). `vs plain` compares with the `plain` "
        "row (the default recipe). `train s` is wall time on a shared machine "
        "where other runs trained at the same time: not a cost comparison (the "
        "training cost is measured side by side in `benchmarks/results/cpu`).",
        "",
        "Commands (one per row):",
        "",
    ]
    for name, r in rows.items():
        # From the stored settings, against today's defaults.
        lines.append(f"- {name}: `{cli_command(r['config'])}`")
    lines += [
        "",
        f"Reproduce: `{results['reproduce']}`",
        "",
    ]
    return "\n".join(lines)


def seed_means(rows):
    """Report lines: per exit, the mean over rows whose settings differ only
    in the seed (two seeds at least), and the final exit's spread."""
    groups = {}
    for name, r in rows.items():
        key = cli_command(dict(r["config"], seed=0))
        group = groups.setdefault(key, [])
        # One row per seed (a row kept under two names counts once).
        if r["config"]["seed"] not in [g["config"]["seed"] for _, g in group]:
            group.append((name, r))
    groups = {k: g for k, g in groups.items() if len(g) > 1}
    if not groups:
        return []
    means = {
        k: [float(np.mean(col)) for col in zip(*[r["exits"] for _, r in g])]
        for k, g in groups.items()
    }
    # Each group against the plain backbone trained alike (same recipe,
    # augmentation, clipping; the exits' settings are inert without exits).
    plains = {
        _plain_key(g[0][1]["config"]): means[k]
        for k, g in groups.items()
        if g[0][1]["config"].get("no_exits")
    }
    lines = [
        "",
        "## Means over seeds",
        "",
        "Rows whose settings differ only in the seed (initialisation and batch "
        "order; the same data split): mean test accuracy (%) per exit; `final` "
        "spread = lowest..highest seed; `vs plain` = against the mean of the "
        "plain backbone's rows trained alike (recipe, augmentation, clipping).",
        "",
        "| rows | seeds | exit 0 | exit 1 | exit 2 | final | final spread | "
        "vs plain mean (final) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, g in groups.items():
        m = means[key]
        finals = [r["exits"][-1] for _, r in g]
        cells = _exit_cells(m)
        plain = plains.get(_plain_key(g[0][1]["config"]))
        delta = (
            "" if plain is None or len(m) == 1 else f"{100 * (m[-1] - plain[-1]):+.2f}"
        )
        lines.append(
            f"| {', '.join(n for n, _ in g)} | "
            f"{', '.join(str(r['config']['seed']) for _, r in g)} | "
            f"{' | '.join(cells)} | {_fmt(min(finals))}..{_fmt(max(finals))} | "
            f"{delta} |"
        )
    return lines


def _plain_key(config):
    """The command of the plain backbone trained like `config` (seed 0)."""
    return cli_command(dict(config, seed=0, no_exits=True, distillation=True))


def _save(out, results, name=None):
    """Writes results.json and REPORT.md, keeping rows another run of this
    script wrote meanwhile (two budgets or variant lists may run at once)."""
    path = out / "results.json"
    if path.is_file():
        on_disk = json.loads(path.read_text())
        if on_disk.get("budget") == results["budget"]:
            merged = dict(on_disk.get("variants", {}))
            merged.update(
                {n: v for n, v in results["variants"].items() if n not in merged}
            )
            if name is not None:
                merged[name] = results["variants"][name]
            results["variants"] = merged
    results["variants"] = {
        n: results["variants"][n] for n in VARIANTS if n in results["variants"]
    }
    common.write_json(path, results)
    (out / "REPORT.md").write_text(report(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--variants", help="comma-separated (default: all)")
    parser.add_argument("--redo", default="", help="variants to train again")
    parser.add_argument("--out", help="results folder")
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    for n in names:
        if n not in VARIANTS:
            parser.error(
                f"--variants: unknown variant {n!r}; valid: {', '.join(VARIANTS)}"
            )
    out = pathlib.Path(
        args.out
        or common.ROOT / "benchmarks" / "results" / f"distillation-{args.budget}"
    )
    redo = set(filter(None, args.redo.split(",")))

    from keras_scan import data

    budget = dict(BUDGETS[args.budget], name=args.budget)
    base = variant_config(args.budget, "default")
    splits = data.load_dataset(
        "fashion_mnist", 32, channels=3, val_fraction=0.1, seed=0, limit=base["limit"]
    )
    test = splits.test
    if budget["test_limit"]:
        test = (test[0][: budget["test_limit"]], test[1][: budget["test_limit"]])
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("budget") != budget:
        results = {}
    results.update(
        budget=budget,
        sizes=dict(splits.sizes(), test=len(test[1])),
        environment=common.environment(),
        reproduce="python benchmarks/distillation.py --budget " + args.budget,
    )
    variants = results.setdefault("variants", {})
    for name in names:
        config = variant_config(args.budget, name)
        stored = json.loads(json.dumps(common.jsonable(config)))
        cached = variants.get(name)
        if cached and _same_settings(cached["config"], stored) and name not in redo:
            print(f"{name}: reused", flush=True)
            continue
        print(f"{name}: training", flush=True)
        record = train_variant(splits, config, test)
        record.update(
            overrides=VARIANTS[name], config=stored, command=cli_command(config)
        )
        variants[name] = record
        _save(out, results, name)
        variants = results["variants"]
        print(
            f"{name}: exits {', '.join(_fmt(a) for a in record['exits'])} "
            f"({record['train_seconds']:.0f} s)",
            flush=True,
        )
    _save(out, results)
    return results


if __name__ == "__main__":
    main()
