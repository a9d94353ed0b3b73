"""Section 6: the seed methods, compress (block-wise KD) and grow (ODN).

compress: a model trained in section 1 is the teacher (the SCAN model; the
smoke profile takes the plain backbone, which compiles faster);
`keras_scan.compact.compress_with_report` (what `keras_scan.compress` and
`keras-scan compress` run) distils a student under a MAC budget and, with
`scratch_baseline`, trains the student's architecture from random weights for
the same number of epochs: student vs teacher vs scratch, per exit, on the
test split.

grow: `keras_scan.grow` deepens a CIFAR ResNet18 block by block on a training
subset until the validation target or the epoch budget; reported: the depth it
chose, its params / MACs against the full depth, its accuracy.
"""

import numpy as np

import keras_scan
from keras_scan import compact


def _subset(split, n, seed):
    x, y = split
    n = min(int(n), len(y))
    idx = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    return np.asarray(x[idx]), np.asarray(y[idx])


def compress(ctx):
    c = ctx.settings["compress"]
    splits = ctx.splits
    train = _subset(splits.train, c["train_images"], ctx.settings["seed"])
    ctx.log(
        f"seeds: compress (budget_flops={c['budget_flops']}) on {len(train[1])} images"
    )
    teacher_name = c["teacher"]
    teacher = ctx.model() if teacher_name == "scan" else ctx.load_variant(teacher_name)
    _, report = compact.compress_with_report(
        teacher,
        train,
        splits.val,
        budget_flops=c["budget_flops"],
        blockwise_epochs=c["blockwise_epochs"],
        finetune_epochs=c["finetune_epochs"],
        batch_size=c["batch_size"],
        probe_batches=c["probe_batches"],
        probe_images=c["probe_images"],
        seed=ctx.settings["seed"],
        test_data=splits.test,
        scratch_baseline=c["scratch_baseline"],
    )
    teacher, student, scratch = report["teacher"], report["student"], report["scratch"]

    def entry(d):
        if d is None:
            return None
        return {
            "macs": d.get("macs"),
            "params": d.get("params"),
            "model_macs": d.get("model_macs"),
            "model_params": d.get("model_params"),
            "accuracy": d.get("accuracy"),
        }

    return {
        "what": (
            "keras_scan.compact.compress_with_report on a model trained in section "
            "1 (the teacher); student and scratch (same architecture, random "
            "init, same epochs) test accuracy per exit"
        ),
        "teacher_variant": teacher_name,
        "settings": report["settings"],
        "budget": report["budget"],
        "macs_ratio": report["macs_ratio"],
        "params_ratio": report["params_ratio"],
        "choices": {b["name"]: b["choice"] for b in report["blocks"]},
        "teacher": entry(teacher),
        "student": entry(student),
        "scratch": scratch,
        "seconds": report["seconds"],
    }


def grow(ctx):
    g = ctx.settings["grow"]
    splits = ctx.splits
    train = _subset(splits.train, g["train_images"], ctx.settings["seed"])
    ctx.log(
        f"seeds: grow cifar_resnet18 width {g['width']} to val accuracy "
        f"{g['target_accuracy']} on {len(train[1])} images"
    )
    lines = []
    _, report = keras_scan.grow(
        ctx.settings["backbone"],
        train,
        splits.val,
        target_accuracy=g["target_accuracy"],
        width=g["width"],
        epochs_per_step=g["epochs_per_step"],
        patience=g["patience"],
        max_epochs=g["max_epochs"],
        depth_step=g["depth_step"],
        batch_size=g["batch_size"],
        seed=ctx.settings["seed"],
        test_data=splits.test,
        log=lines.append,
    )
    keep = (
        "backbone",
        "target_accuracy",
        "reached",
        "stopped_because",
        "depth",
        "num_blocks",
        "block",
        "val_accuracy",
        "test_accuracy",
        "best_depth",
        "best_val_accuracy",
        "epochs",
        "train_images",
        "seconds",
        "chosen",
        "full",
        "reduction",
        "criterion",
    )
    out = {k: report.get(k) for k in keep}
    out["steps"] = [
        {
            k: s[k]
            for k in ("depth", "block", "epochs", "val_accuracy", "macs", "params")
        }
        for s in report["steps"]
    ]
    out["log"] = lines
    out["what"] = (
        "keras_scan.grow (progressive depth expansion, ODN) from 1 block; depth, "
        "params and MACs of the chosen network against the full depth"
    )
    return out


def run(ctx):
    result = {}
    if ctx.settings["compress"]["enabled"]:
        result["compress"] = compress(ctx)
    if ctx.settings["grow"]["enabled"]:
        result["grow"] = grow(ctx)
    return result
