"""Section 1: accuracy per exit and ensemble of SCAN vs the plain backbone and ablations.

Every variant is trained in this process, one after the other, with the same
recipe (`keras_scan.training`: `make_model`, `make_optimizer` (SGD + momentum,
coupled weight decay, warm-up and cosine schedule), `compile_model`,
`make_pipelines` (crop + flip), `recipe_callbacks` (the distillation ramp),
`finish_training` (batch-norm re-estimation), `evaluate_model`), the same
data, seed and number of epochs;
the weights of the last epoch are evaluated on the test split. The SCAN
model is saved with its per-exit validation and test probabilities for the
later sections.
"""

import json
import time

import keras
import numpy as np

from benchmarks import common
from benchmarks.profiles import VARIANTS
from keras_scan import inference, training

# Training settings a profile passes to keras_scan.training.resolve_config.
RECIPE_KEYS = (
    "backbone",
    "width",
    "dataset",
    "image_size",
    "channels",
    "val_fraction",
    "seed",
    "limit",
    "augment",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
)

_FLAGS = {
    "no_exits": "--no-exits",
    "attention": "--no-attention",
    "distillation": "--no-distill",
    "augment": "--no-augment",
    "gradient_equilibrium": "--no-gradient-equilibrium",
}


def variant_config(settings, name):
    """The resolved `keras_scan.training` configuration of one variant."""
    overrides = {k: settings[k] for k in RECIPE_KEYS}
    overrides.update(VARIANTS[name])
    return training.resolve_config(overrides)


def cli_command(config, name):
    """The `keras-scan train` command that trains the same configuration."""
    parts = ["keras-scan train"]
    recipe = config.get("recipe", "default")
    defaults = training.recipe_defaults(recipe, config["backbone"])
    if recipe != "default":
        parts.append(f"--recipe {recipe}")
    for key in RECIPE_KEYS + ("head", "beta"):
        value = config[key]
        if key in _FLAGS:
            if value is False:
                parts.append(_FLAGS[key])
            continue
        if value is None or (value == defaults[key] and key not in ("epochs",)):
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    for key in ("no_exits", "attention", "distillation", "gradient_equilibrium"):
        if config[key] != defaults[key]:
            parts.append(_FLAGS[key])
    parts.append(f"--out runs/{name}")
    return " ".join(parts)


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def train_variant(ctx, name):
    """Trains one variant; returns `(model, record)`."""
    config = variant_config(ctx.settings, name)
    splits = ctx.splits
    keras.utils.set_random_seed(config["seed"])
    model = training.make_model(config, splits.num_classes)
    steps = training.steps_per_epoch(splits, config["batch_size"])
    training.compile_model(model, training.make_optimizer(config, steps, model=model))
    train_ds, val_ds = training.make_pipelines(splits, config)
    timer = EpochTimer()
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config["epochs"],
        steps_per_epoch=steps,
        shuffle=False,  # the pipelines shuffle (seeded)
        callbacks=[
            keras.callbacks.TerminateOnNaN(),
            timer,
            *training.recipe_callbacks(config),
        ],
        verbose=0,
    )
    training.finish_training(model, splits, config)  # batch-norm re-estimation
    train_seconds = time.perf_counter() - start
    if len(timer.seconds) < config["epochs"]:
        raise RuntimeError(f"Training of variant {name!r} stopped early (NaN loss?).")
    evaluation = training.evaluate_model(model, splits.test, config["batch_size"])
    exits = [
        {
            k: e[k]
            for k in ("name", "layer", "accuracy", "macs", "standalone_macs", "params")
        }
        for e in evaluation["exits"]
    ]
    keep = ("loss", "final_accuracy", "val_final_accuracy", "val_loss")
    record = {
        "variant": name,
        "overrides": VARIANTS[name],
        "command": cli_command(config, name),
        "exits": exits,
        "final_accuracy": exits[-1]["accuracy"],
        "best_exit_accuracy": max(e["accuracy"] for e in exits),
        "ensemble": evaluation["ensemble"],
        "params": int(model.count_params()),
        "final_macs": exits[-1]["standalone_macs"],
        "num_test": evaluation["num_examples"],
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "steps_per_epoch": steps,
        "history": {k: v for k, v in history.history.items() if k in keep},
        "config": {k: config[k] for k in sorted(config)},
    }
    return model, record


def _save_scan(ctx, model):
    folder = ctx.scan_dir
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras", include_optimizer=False)
    splits = ctx.splits
    batch = ctx.settings["keras_batch_size"]
    val_probs, val_labels = inference.collect_probs(model, splits.val, batch)
    test_probs, test_labels = inference.collect_probs(model, splits.test, batch)
    np.savez_compressed(
        folder / common.PROBS,
        val_probs=np.stack(val_probs),
        val_labels=val_labels,
        test_probs=np.stack(test_probs),
        test_labels=test_labels,
        exit_names=np.array(model.exit_names),
    )


def _cached(ctx, name):
    path = ctx.work / name / "variant.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    config = variant_config(ctx.settings, name)
    same = record.get("config") == json.loads(
        json.dumps(common.jsonable({k: config[k] for k in sorted(config)}))
    )
    if not same or (
        name == common.SCAN_RUN and not (ctx.scan_dir / common.PROBS).is_file()
    ):
        return None
    return record


def run(ctx, resume=False):
    """Trains every variant of the profile; returns the section's dict."""
    variants = {}
    for name in ctx.settings["variants"]:
        record = _cached(ctx, name) if resume else None
        if record is not None:
            ctx.log(f"accuracy: {name} (reused from {ctx.work / name})")
        else:
            ctx.log(f"accuracy: training {name}")
            model, record = train_variant(ctx, name)
            if name == common.SCAN_RUN:
                _save_scan(ctx, model)
                ctx.scan_model = model
            if name in ("scan", "plain"):  # timed again in section 5
                ctx.trained[name] = model
            if name == "plain":  # a teacher for section 6
                (ctx.work / name).mkdir(parents=True, exist_ok=True)
                model.save(ctx.work / name / "model.keras", include_optimizer=False)
            common.write_json(ctx.work / name / "variant.json", record)
            del model
        variants[name] = record
        ctx.log(
            f"accuracy: {name}: final {record['final_accuracy']:.4f}, exits "
            + ", ".join(f"{e['accuracy']:.3f}" for e in record["exits"])
            + f" ({record['train_seconds']:.0f} s)"
        )
    scan, plain = variants["scan"], variants.get("plain")
    summary = {
        "scan_final_accuracy": scan["final_accuracy"],
        "scan_ensemble_accuracy": (scan["ensemble"] or {}).get("accuracy"),
        "scan_exit_accuracy": [e["accuracy"] for e in scan["exits"]],
    }
    if plain is not None:
        summary["plain_accuracy"] = plain["final_accuracy"]
        summary["scan_final_minus_plain_pt"] = 100 * (
            scan["final_accuracy"] - plain["final_accuracy"]
        )
        summary["scan_ensemble_minus_plain_pt"] = (
            None
            if summary["scan_ensemble_accuracy"] is None
            else 100 * (summary["scan_ensemble_accuracy"] - plain["final_accuracy"])
        )
    return {
        "what": (
            "test accuracy per exit and of the ensemble (mean of all exits' "
            "softmax), last-epoch weights, every variant trained with the same "
            "recipe, data, seed and epochs in one run"
        ),
        "data": {"sizes": ctx.splits.sizes(), "num_classes": ctx.splits.num_classes},
        "variants": variants,
        "summary": summary,
    }
