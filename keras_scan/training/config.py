"""The SCAN paper's training recipe, the run folder, and per-exit evaluation.

`train(out, **config)` is what `keras-scan train` runs, usable from Python
without the CLI: it resolves the configuration (defaults, then a YAML/JSON
file, then explicit arguments), loads the data, builds the model, trains it
with the paper's recipe and writes a run folder (see `keras_scan.runs`).

The recipe (every piece overridable):
- SGD with momentum 0.9, learning rate 0.1 for a batch of 128, scaled linearly
  with the batch size;
- weight decay 5e-4 with the paper's (PyTorch) meaning: L2 coupled into the
  gradient, which goes through the momentum. Keras' SGD `weight_decay` is
  decoupled (`w -= lr * wd * w` each step, outside the momentum); with momentum
  `m` the coupled decay settles at `lr * wd / (1 - m)` per step, so the
  optimizer gets `weight_decay = wd / (1 - m)` (5e-3 at the defaults). This
  keeps the built-in, serializable `keras.optimizers.SGD` (a saved run loads
  anywhere, on any backend) and matches the coupled decay to within the
  momentum's ~1 / (1 - m) step lag (`tests/test_training.py` measures it);
- step decay: the learning rate is divided by 10 at 37.5%, 65% and 90% of the
  training steps (the paper's epochs 75, 130, 180 of 200);
- random crop (zero-pad by 1/8 of the size) and horizontal flip;
- 200 epochs.

How a run folder is written: training happens in a sibling work folder
`.<RUN>.incomplete/` that is renamed to `RUN` only when training (and the test
evaluation) finished, so `RUN` is never half-written. The work folder holds
`keras.callbacks.BackupAndRestore` state (`backup/`), so rerunning the same
command after a crash or Ctrl-C continues from the last finished epoch with the
same weights and optimizer state.

Several devices or machines: `distribute="data-parallel"` or `"multi-worker"`
(`keras-scan train --distribute`) trains under `keras_scan.distribution`, with
`batch_size` the global batch; only the chief writes the run folder (see
`keras_scan.distribute`).
"""

import contextlib
import copy
import csv
import dataclasses
import io
import json
import math
import pathlib
import shutil
import sys

import keras
import numpy as np

from keras_scan import data, distribute, files, runs
from keras_scan.backbones import registry
from keras_scan.layers import HEADS
from keras_scan.layers.attention_module import KINDS as _KINDS
from keras_scan.scan_model import FINAL, KD_LOSSES, KD_MIXES, TEACHERS, ScanModel

ATTENTION_KINDS = (*_KINDS, "none")

# Batch size the paper's learning rate is given for.
REFERENCE_BATCH_SIZE = 128
MONITOR = f"val_{FINAL}_accuracy"
SCHEDULES = ("step", "cosine", "constant")
BACKUP = "backup"
LOGS = "logs"

DEFAULTS = {
    # Model.
    "backbone": "cifar_resnet18",
    "width": None,
    "weights": None,
    "head": "lite",
    "attention": "gate",
    "distillation": True,
    "alpha": 0.1,
    "temperature": 3.0,
    "beta": 1.0,
    "kd_loss": "kl_t2",
    "kd_mix": "add",
    "teacher": "final",
    "distill_warmup": 0.5,
    "exits": None,
    "no_exits": False,
    # Data.
    "dataset": "fashion_mnist",
    "image_size": 32,
    "channels": 3,
    "val_fraction": 0.1,
    "seed": 0,
    "limit": None,
    "data_dir": None,
    "augment": True,
    # Recipe.
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "milestones": [0.375, 0.65, 0.9],
    "gamma": 0.1,
    "warmup": 0.05,
    "clipnorm": None,
    "bn_momentum": 0.9,
    "bn_recalibration": 20,
    "recipe": "default",
    # Devices.
    "distribute": None,
}

# Named recipes: settings applied on top of `DEFAULTS` before a config file
# and explicit arguments (which still override them). "paper" is the SCAN
# paper's code exactly: step schedule without warm-up, alpha 0.5 with the T^2
# factor at T = 3, the feature loss, no batch-norm re-estimation.
RECIPES = {
    "default": {},
    "paper": {
        "schedule": "step",
        "warmup": 0.0,
        "clipnorm": None,
        "bn_recalibration": 0,
        "alpha": 0.5,
        "temperature": 3.0,
        "kd_loss": "kl_t2",
        "kd_mix": "convex",
        "teacher": "final",
        "beta": 1.0,
        "distill_warmup": 0.0,
    },
}

# Written to config.json for later commands, derived from the keys above;
# ignored when comparing configurations or reading a config file.
DERIVED = (
    "scaled_lr",
    "num_classes",
    "class_names",
    "preprocessing",
    "steps_per_epoch",
    "sizes",
    "backend",
    "keras_scan_version",
    "num_replicas",
    "num_workers",
)

# Keys that shape the model's weights: a run can only be continued (`resume`)
# when these are unchanged.
ARCHITECTURE = (
    "backbone",
    "width",
    "image_size",
    "channels",
    "head",
    "attention",
    "exits",
    "no_exits",
    "dataset",
)

# Keys that do not change what is trained (where the data lives, on how many
# devices: the same global batch trains the same model).
_NOT_COMPARED = ("data_dir", "distribute")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def read_config_file(path):
    """Reads a YAML or JSON configuration file into a dict of config keys.

    Keys may be written with dashes or underscores (`batch-size`, `batch_size`);
    the keys `keras-scan train` derives (`scaled_lr`, `num_classes`, ...) are
    ignored, so a run's `config.json` can be passed back as `--config`.
    """
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"`config` must be an existing YAML or JSON file. Received: "
            f"config={str(path)!r} (no such file)"
        )
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            loaded = json.loads(text)
        else:
            import yaml

            loaded = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError, json.JSONDecodeError
        detail = " ".join(str(e).split())  # YAML's message spans several lines
        raise ValueError(
            f"`config` is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
            f"{detail}. Received: config={str(path)!r}"
        ) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ValueError(
            "`config` must hold a mapping of settings (e.g. `epochs: 30`). "
            f"Received: config={str(path)!r} holding a {type(loaded).__name__}"
        )
    out = {}
    for key, value in loaded.items():
        key = str(key).replace("-", "_")
        if key in DERIVED:
            continue
        if key not in DEFAULTS:
            raise ValueError(
                f"Unknown setting {key!r} in `config` {str(path)!r}. Valid settings: "
                f"{', '.join(DEFAULTS)}"
            )
        out[key] = value
    return out


def resolve_config(overrides=None, config_file=None):
    """The full, validated training configuration.

    Precedence: `DEFAULTS`, then `config_file`, then `overrides` (entries that
    are `None` are ignored, so unset CLI flags do not override the file).

    Args:
        overrides: dict of config keys (see `DEFAULTS`), optional.
        config_file: str or path of a YAML or JSON file, optional.

    Returns:
        A dict with every key of `DEFAULTS`.
    """
    config = copy.deepcopy(DEFAULTS)
    from_file = read_config_file(config_file) if config_file is not None else {}
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in DEFAULTS:
            raise TypeError(
                f"Unknown training setting {key!r}. Valid settings: "
                f"{', '.join(DEFAULTS)}"
            )
    recipe = overrides.get("recipe") or from_file.get("recipe") or DEFAULTS["recipe"]
    if not isinstance(recipe, str) or recipe not in RECIPES:
        _fail("recipe", f"one of {', '.join(RECIPES)}", recipe)
    config.update(copy.deepcopy(RECIPES[recipe]))
    config.update(from_file)
    config.update({k: v for k, v in overrides.items() if v is not None})
    config["recipe"] = recipe
    return _check_config(config)


def _fail(key, requirement, value):
    raise ValueError(f"`{key}` must be {requirement}. Received: {key}={value!r}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def _check_config(c):
    """Validates types and ranges; normalises (width default, exits, milestones)."""
    registry.preprocessing(c["backbone"])  # unknown backbone: lists valid ones
    if not isinstance(c["dataset"], str) or not c["dataset"]:
        _fail("dataset", f"a dataset spec ({data.VALID_SPECS})", c["dataset"])
    for key, low in (("image_size", 1), ("epochs", 1), ("batch_size", 1)):
        if not _is_int(c[key]) or c[key] < low:
            _fail(key, f"an int >= {low}", c[key])
        c[key] = int(c[key])
    if c["channels"] not in (1, 3) or isinstance(c["channels"], bool):
        _fail("channels", "1 or 3", c["channels"])
    if not _is_int(c["seed"]):
        _fail("seed", "an int", c["seed"])
    if c["limit"] is not None and (not _is_int(c["limit"]) or c["limit"] < 2):
        _fail("limit", "None or an int >= 2", c["limit"])
    if not _is_number(c["val_fraction"]) or not 0 < c["val_fraction"] < 1:
        _fail("val_fraction", "a number strictly between 0 and 1", c["val_fraction"])
    for key in ("lr", "temperature"):
        if not _is_number(c[key]) or not c[key] > 0 or not math.isfinite(c[key]):
            _fail(key, "a finite number > 0", c[key])
    for key in ("weight_decay", "beta"):
        if not _is_number(c[key]) or not c[key] >= 0 or not math.isfinite(c[key]):
            _fail(key, "a finite number >= 0", c[key])
    for key in ("warmup", "distill_warmup"):
        if not _is_number(c[key]) or not 0 <= c[key] < 1:
            _fail(
                key,
                "a fraction of the run in [0, 1) (1 or more would last the whole "
                "run or longer)",
                c[key],
            )
        c[key] = float(c[key])
    if c["teacher"] not in TEACHERS:
        _fail("teacher", f"one of {', '.join(TEACHERS)}", c["teacher"])
    if c["kd_loss"] not in KD_LOSSES:
        _fail("kd_loss", f"one of {', '.join(KD_LOSSES)}", c["kd_loss"])
    if c["kd_mix"] not in KD_MIXES:
        _fail("kd_mix", f"one of {', '.join(KD_MIXES)}", c["kd_mix"])
    if c["bn_momentum"] is not None and (
        not _is_number(c["bn_momentum"]) or not 0 <= c["bn_momentum"] < 1
    ):
        _fail("bn_momentum", "None or a number in [0, 1)", c["bn_momentum"])
    if c["clipnorm"] is not None and (
        not _is_number(c["clipnorm"])
        or not c["clipnorm"] > 0
        or not math.isfinite(c["clipnorm"])
    ):
        _fail("clipnorm", "None or a finite number > 0", c["clipnorm"])
    if not _is_int(c["bn_recalibration"]) or c["bn_recalibration"] < 0:
        _fail("bn_recalibration", "an int >= 0 (batches)", c["bn_recalibration"])
    for key in ("momentum", "alpha"):
        high = 1 if key == "alpha" else 0.999
        if not _is_number(c[key]) or not 0 <= c[key] <= high:
            _fail(key, f"a number in [0, {high}]", c[key])
    if not _is_number(c["gamma"]) or not 0 < c["gamma"] <= 1:
        _fail("gamma", "a number in (0, 1]", c["gamma"])
    if c["schedule"] not in SCHEDULES:
        _fail("schedule", f"one of {', '.join(SCHEDULES)}", c["schedule"])
    c["milestones"] = _check_milestones(c["milestones"])
    if c["head"] not in HEADS:
        _fail("head", f"one of {', '.join(HEADS)}", c["head"])
    if c["attention"] is True or c["attention"] is False:
        # Run folders written before attention kinds existed: True was the paper's.
        c["attention"] = "scan" if c["attention"] else "none"
    if c["attention"] not in ATTENTION_KINDS:
        _fail("attention", f"one of {', '.join(ATTENTION_KINDS)}", c["attention"])
    for key in ("distillation", "no_exits", "augment"):
        if not isinstance(c[key], bool):
            _fail(key, "true or false", c[key])
    c["exits"] = _check_exits(c["exits"])
    if c["weights"] is not None and not isinstance(c["weights"], str):
        _fail("weights", "None, 'imagenet' or the path of a weights file", c["weights"])
    if c["weights"] in ("none", "None", ""):
        c["weights"] = None
    if c["backbone"] in registry.CIFAR_RESNETS:
        if c["width"] is None:
            c["width"] = 64
        if not _is_int(c["width"]) or c["width"] < 1:
            _fail("width", "a positive int", c["width"])
    elif c["width"] is not None:
        _fail(
            "width",
            f"unset for backbone {c['backbone']!r} (only the CIFAR ResNets take a "
            "width)",
            c["width"],
        )
    if c["image_size"] < registry.min_image_size(c["backbone"]):
        _fail(
            "image_size",
            f"at least {registry.min_image_size(c['backbone'])} for backbone "
            f"{c['backbone']!r}",
            c["image_size"],
        )
    if c["data_dir"] is not None:
        c["data_dir"] = str(c["data_dir"])
    if c["distribute"] in ("none", "None", ""):
        c["distribute"] = None
    if c["distribute"] is not None:
        distribute.check_mode(c["distribute"], "distribute")
    return c


def _check_milestones(milestones):
    if isinstance(milestones, str):
        milestones = [m for m in milestones.replace(",", " ").split() if m]
        try:
            milestones = [float(m) for m in milestones]
        except ValueError:
            _fail("milestones", "fractions of training in (0, 1)", milestones)
    if not isinstance(milestones, (list, tuple)) or not all(
        _is_number(m) and 0 < m < 1 for m in milestones
    ):
        _fail("milestones", "a list of fractions of training in (0, 1)", milestones)
    if list(milestones) != sorted(milestones):
        _fail("milestones", "in increasing order", milestones)
    return [float(m) for m in milestones]


def _check_exits(exits):
    """None, an int k, or a list of layer names (a comma-separated str too)."""
    if exits is None or exits == "":
        return None
    if isinstance(exits, str):
        exits = exits.strip()
        if exits.isdigit():
            return int(exits)
        return [e.strip() for e in exits.split(",") if e.strip()]
    if _is_int(exits):
        if exits < 1:
            _fail("exits", "an int >= 1 or a list of layer names", exits)
        return int(exits)
    if (
        isinstance(exits, (list, tuple))
        and exits
        and all(isinstance(e, str) for e in exits)
    ):
        return list(exits)
    _fail("exits", "None, an int >= 1 or a list of layer names", exits)


def check_limit(config, num_classes):
    """Refuses a `limit` that leaves less than one batch or fewer images than classes.

    Called once the data set (and so its number of classes) is known.
    """
    limit = config["limit"]
    if limit is None:
        return
    if limit < config["batch_size"]:
        raise ValueError(
            f"`limit` must be at least `batch_size` ({config['batch_size']}): "
            f"{limit} images do not fill one batch. Raise --limit or lower "
            f"--batch-size. Received: limit={limit}, batch_size={config['batch_size']}"
        )
    if limit < num_classes:
        raise ValueError(
            f"`limit` must be at least the number of classes ({num_classes} in "
            f"{config['dataset']!r}): with fewer images some classes are never "
            f"seen. Received: limit={limit}"
        )


def config_diff(old, new):
    """`{key: (old, new)}` for compared keys whose values differ."""
    diff = {}
    for key in DEFAULTS:
        if key in _NOT_COMPARED:
            continue
        a = _normalise(old.get(key, DEFAULTS[key]))
        b = _normalise(new.get(key, DEFAULTS[key]))
        if a != b:
            diff[key] = (a, b)
    return diff


def _normalise(value):
    return json.loads(json.dumps(value))


def _format_diff(diff):
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


# ---------------------------------------------------------------------------
# Recipe: learning rate, optimizer, model
# ---------------------------------------------------------------------------


def scaled_learning_rate(lr, batch_size):
    """`lr` (given for a batch of 128) scaled linearly to `batch_size`."""
    return lr * batch_size / REFERENCE_BATCH_SIZE


@keras.saving.register_keras_serializable(package="keras_scan")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear learning-rate warm-up in front of another schedule.

    `lr(step) = schedule(step) * min(1, (step + 1) / (warmup_steps + 1))`: the
    first step uses a small fraction of the rate, which reaches the wrapped
    schedule's value after `warmup_steps` steps.

    Args:
        schedule: a `LearningRateSchedule` or a float.
        warmup_steps: int >= 0.
    """

    def __init__(self, schedule, warmup_steps):
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        base = self.schedule(step) if callable(self.schedule) else self.schedule
        ramp = keras.ops.minimum(1.0, (step + 1.0) / (self.warmup_steps + 1.0))
        return base * ramp

    def get_config(self):
        schedule = self.schedule
        if callable(schedule):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(
                config["schedule"]
            )
        return cls(**config)


def learning_rate_schedule(config, steps_per_epoch):
    """The learning rate (a float or a schedule over optimizer steps).

    `"step"`: `scaled_lr * gamma**i` after the i-th milestone (milestones are
    fractions of all training steps); `"cosine"`: cosine decay to 0 over all
    steps; `"constant"`: `scaled_lr`. With `warmup > 0` the rate rises
    linearly over that fraction of the steps first (`Warmup`).
    """
    lr = scaled_learning_rate(config["lr"], config["batch_size"])
    total = config["epochs"] * steps_per_epoch
    if config["schedule"] == "constant" or (
        config["schedule"] == "step" and not config["milestones"]
    ):
        schedule = lr
    elif config["schedule"] == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=total)
    else:
        boundaries = [int(round(m * total)) for m in config["milestones"]]
        values = [lr * config["gamma"] ** i for i in range(len(boundaries) + 1)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    warmup_steps = int(round(config.get("warmup", 0.0) * total))
    if warmup_steps > 0:
        return Warmup(schedule, warmup_steps)
    return schedule


def make_optimizer(config, steps_per_epoch):
    """SGD with momentum, the schedule and the paper's (coupled) weight decay.

    With `clipnorm`, the gradient of all weights together is scaled down to
    that global norm when it is larger (a guard against the first steps of a
    fresh network blowing up).

    Keras' `weight_decay` is decoupled; `weight_decay / (1 - momentum)` gives
    the steady-state decay of PyTorch's coupled L2 (see the module docs).
    """
    momentum = config["momentum"]
    decay = (
        config["weight_decay"] / (1.0 - momentum) if config["weight_decay"] else None
    )
    clipnorm = config.get("clipnorm")
    return keras.optimizers.SGD(
        learning_rate=learning_rate_schedule(config, steps_per_epoch),
        momentum=momentum,
        weight_decay=decay,
        global_clipnorm=float(clipnorm) if clipnorm else None,
    )


def baseline_model(backbone, num_classes):
    """The plain backbone with global average pooling and a dense classifier.

    The `--no-exits` comparison point: the same backbone, trained with the same
    recipe, without exits. Outputs logits.
    """
    x = backbone.outputs[0]
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name=f"{FINAL}_pool")(x)
    logits = keras.layers.Dense(num_classes, name=f"{FINAL}_logits")(x)
    return keras.Model(backbone.inputs[0], logits, name=f"{backbone.name}_baseline")


def make_model(config, num_classes):
    """The model a configuration describes: a `ScanModel`, or the baseline."""
    from keras_scan.builder import build

    backbone = registry.build_backbone(
        config["backbone"],
        config["image_size"],
        channels=config["channels"],
        weights=config["weights"],
        width=config["width"],
    )
    set_batchnorm_momentum(backbone, config["bn_momentum"])
    if config["no_exits"]:
        return baseline_model(backbone, num_classes)
    try:
        return build(
            backbone,
            num_classes,
            exits=config["exits"],
            head=config["head"],
            attention=config["attention"],
            distillation=config["distillation"],
            alpha=config["alpha"],
            temperature=config["temperature"],
            beta=config["beta"],
            kd_loss=config["kd_loss"],
            kd_mix=config["kd_mix"],
            teacher=config["teacher"],
        )
    except ValueError as e:
        raise ValueError(
            f"Cannot hang exits on backbone {config['backbone']!r} at "
            f"image_size={config['image_size']} (exits={config['exits']!r}): {e}"
        ) from None


def _batchnorm_layers(model):
    # Keras has no public recursive layer walk; `_flatten_layers` reaches the
    # batch norms inside nested models and custom layers (exit heads).
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def set_batchnorm_momentum(model, momentum):
    """Sets the momentum of every `BatchNormalization` layer in `model`.

    Keras Applications ship different momenta (MobileNetV2/V3: 0.999, ResNet,
    EfficientNet, DenseNet: 0.99); after a short training from scratch such
    moving statistics are still mostly their initial values and inference
    collapses to one class. The recipe sets one momentum for every backbone
    (`bn_momentum`, default 0.9, PyTorch's 0.1). `None` keeps the model's own.
    """
    if momentum is None:
        return model
    for layer in _batchnorm_layers(model):
        layer.momentum = float(momentum)
    return model


def recalibrate_batchnorm(model, split, batches, batch_size=128):
    """Re-estimates every batch norm's moving statistics from training images.

    Runs `batches` batches of `split` (no augmentation) through `model` in
    training mode and sets each moving mean and variance to the average of
    the batch statistics (a cumulative average, not an exponential one), so
    the statistics describe the final weights even after a one-epoch run.
    Only the moving statistics change.

    Args:
        model: a Keras model.
        split: `(x, y)` arrays or an unbatched `tf.data.Dataset` of
            `(image, label)`.
        batches: int. Batches to average (0 does nothing).
        batch_size: int. Defaults to 128.

    Returns:
        The number of batches used.
    """
    layers = _batchnorm_layers(model)
    if not batches or not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for x, _ in _batches(split, batch_size):
            if used >= batches:
                break
            for layer in layers:  # moving = (used * moving + batch) / (used + 1)
                layer.momentum = used / (used + 1.0)
            model(x, training=True)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used


class DistillationWarmup(keras.callbacks.Callback):
    """Ramps a `ScanModel`'s distillation weight from 0 over the first epochs.

    At the start of epoch `e` the share of `alpha` in force is
    `min(1, e / (fraction * epochs))`: the shallow exits learn from the labels
    alone while the teacher (the final exit) is untrained, then the teacher's
    weight rises linearly. `fraction = 0` keeps the full weight throughout.

    Args:
        epochs: int. Epochs of the whole run.
        fraction: float in [0, 1). Share of the run the ramp lasts.
    """

    def __init__(self, epochs, fraction):
        super().__init__()
        self.length = float(fraction) * int(epochs)

    def scale(self, epoch):
        return 1.0 if self.length <= 0 else min(1.0, epoch / self.length)

    def on_epoch_begin(self, epoch, logs=None):
        if isinstance(self.model, ScanModel):
            self.model.distill_scale.assign(self.scale(epoch))

    def on_train_end(self, logs=None):
        if isinstance(self.model, ScanModel):
            self.model.distill_scale.assign(1.0)


def recipe_callbacks(config):
    """The callbacks the recipe adds to `fit` (the distillation ramp)."""
    return [DistillationWarmup(config["epochs"], config["distill_warmup"])]


def finish_training(model, splits, config):
    """What the recipe does after `fit`: re-estimates batch-norm statistics."""
    return recalibrate_batchnorm(
        model, splits.train, config["bn_recalibration"], config["batch_size"]
    )


def compile_model(model, optimizer):
    """Compiles a `ScanModel` (built-in loss) or the baseline (cross-entropy).

    Both log `final_accuracy` / `val_final_accuracy`.
    """
    if isinstance(model, ScanModel):
        model.compile(optimizer=optimizer, metrics=["accuracy"])
    else:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name=f"{FINAL}_accuracy")],
        )
    return model


def _uses_tf_data(splits):
    return keras.backend.backend() == "tensorflow" or not isinstance(
        splits.train, tuple
    )


def make_pipelines(splits, config, epoch=0, distribution=None):
    """Batched train (shuffled, augmented) and validation inputs.

    `tf.data` on the TensorFlow backend (or when the data is a `tf.data`
    pipeline), else `keras_scan.data.NumpyDataset` (no TensorFlow, e.g. JAX).
    `epoch` reseeds the shuffle and augmentation of a resumed run.

    Under a `distribution` every training step takes a full global batch (the
    last partial batch of an epoch is dropped); on JAX the last validation
    batch is padded to a multiple of the replicas with zero-weight rows, and
    each process of a multi-worker job feeds its own part of every batch.
    """
    batch_size, seed = config["batch_size"], config["seed"] + 1000 * epoch
    drop = distribution is not None
    if _uses_tf_data(splits):
        train = data.make_tf_dataset(
            splits.train,
            batch_size,
            training=True,
            augment=config["augment"],
            seed=seed,
            drop_remainder=drop,
        )
        val = data.make_tf_dataset(splits.val, batch_size, training=False)
    else:
        shard = distribution.process_shard if drop else (0, 1)
        train = data.NumpyDataset(
            *splits.train,
            batch_size,
            training=True,
            augment=config["augment"],
            seed=seed,
            drop_remainder=drop,
            process_shard=shard,
        )
        val = data.NumpyDataset(
            *splits.val,
            batch_size,
            training=False,
            multiple_of=distribution.num_replicas if drop else 1,
            process_shard=shard,
        )
    return train, val


def _steps_per_epoch(splits, batch_size, drop_remainder=False):
    n = data.num_examples(splits.train)
    if n is None:  # a tf.data pipeline of unknown length: count once
        n = sum(1 for _ in splits.train)
    if drop_remainder:
        if n < batch_size:
            raise ValueError(
                f"`batch_size` must not exceed the {n} training examples in "
                "distributed training (each step takes a full global batch). "
                f"Received: batch_size={batch_size}"
            )
        return n // batch_size
    return max(1, math.ceil(n / batch_size))


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def _batches(split, batch_size):
    """Yields `(images, labels)` numpy batches of a split, in order."""
    if isinstance(split, (tuple, list)):
        x, y = split
        for i in range(0, len(y), batch_size):
            yield (
                np.asarray(x[i : i + batch_size], np.float32),
                np.asarray(y[i : i + batch_size]),
            )
        return
    ds = split
    if hasattr(ds, "element_spec") and ds.element_spec[0].shape.rank == 3:
        ds = ds.batch(batch_size)
    for x, y in ds.as_numpy_iterator() if hasattr(ds, "as_numpy_iterator") else ds:
        yield np.asarray(x, np.float32), np.asarray(y)


def predict_exits(model, split, batch_size=128):
    """Logits of every exit on a split, with its labels.

    Args:
        model: a `ScanModel` or a single-output model (treated as `"final"`).
        split: `(x, y)` arrays or an unbatched `tf.data.Dataset` of
            `(image, label)`.
        batch_size: int. Defaults to 128.

    Returns:
        `(logits, labels)`: a dict exit name -> float32 array (N, classes), and
        an int array (N,).
    """
    names = model.exit_names if isinstance(model, ScanModel) else [FINAL]
    logits = {n: [] for n in names}
    labels = []
    for x, y in _batches(split, batch_size):
        out = model.predict_on_batch(x)
        if not isinstance(out, dict):
            out = {FINAL: out}
        for n in names:
            logits[n].append(np.asarray(out[n], np.float32))
        labels.append(y.reshape(-1))
    if not labels:
        raise ValueError("`split` holds no examples to evaluate.")
    return {n: np.concatenate(v) for n, v in logits.items()}, np.concatenate(
        labels
    ).astype(np.int64)


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def evaluate_model(model, split, batch_size=128):
    """Per-exit accuracy, ensemble accuracy, MACs and params of a model.

    The accuracy of exit `k` is the share of examples whose argmax logit is the
    label (what `model.evaluate` reports as `<exit>_accuracy`); the ensemble
    averages the softmax probabilities of all exits. Costs come from the graph
    (`ScanModel.exit_info`): `macs` is the cost of answering at this exit when
    the exits are tried in order, `standalone_macs` the exit alone.

    Args:
        model: a `ScanModel`, or a plain single-output classifier (e.g. a
            `--no-exits` baseline), reported as one `"final"` exit.
        split: `(x, y)` arrays or an unbatched `tf.data.Dataset` of
            `(image, label)`.
        batch_size: int. Defaults to 128.

    Returns:
        A JSON-compatible dict: `num_examples`, `exits` (a list of dicts with
        `name`, `layer`, `accuracy`, `macs`, `standalone_macs`, `params`, ...)
        and `ensemble` (`accuracy`, `macs`, `params`; `None` without exits).

    Example:
    ```python
    result = keras_scan.training.evaluate_model(model, (x_test, y_test))
    print(keras_scan.training.format_table(result))
    ```
    """
    from keras_scan import cost

    logits, labels = predict_exits(model, split, batch_size)
    accuracy = {
        n: float(np.mean(np.argmax(z, axis=-1) == labels)) for n, z in logits.items()
    }
    if isinstance(model, ScanModel):
        exits = [
            dict(info, accuracy=accuracy[info["name"]]) for info in model.exit_info
        ]
        probs = np.mean([_softmax(z) for z in logits.values()], axis=0)
        ensemble = {
            "accuracy": float(np.mean(np.argmax(probs, axis=-1) == labels)),
            "macs": exits[-1]["macs"],
            "params": int(cost.count_params(model)),
        }
    else:
        macs, params = int(cost.count_macs(model)), int(cost.count_params(model))
        exits = [
            {
                "name": FINAL,
                "layer": model.layers[-1].name,
                "accuracy": accuracy[FINAL],
                "macs": macs,
                "standalone_macs": macs,
                "head_macs": 0,
                "params": params,
            }
        ]
        ensemble = None
    return {"num_examples": int(len(labels)), "exits": exits, "ensemble": ensemble}


def format_table(result):
    """A plain-text table of an `evaluate_model` result."""
    lines = [
        f"{'exit':10} {'layer':26} {'accuracy':>9} {'MACs':>10} "
        f"{'MACs alone':>11} {'params':>10}"
    ]
    for e in result["exits"]:
        lines.append(
            f"{e['name']:10} {e['layer'][:26]:26} {e['accuracy']:9.4f} "
            f"{_human(e['macs']):>10} {_human(e['standalone_macs']):>11} "
            f"{_human(e['params']):>10}"
        )
    ens = result.get("ensemble")
    if ens:
        lines.append(
            f"{'ensemble':10} {'(mean of all exits)':26} {ens['accuracy']:9.4f} "
            f"{_human(ens['macs']):>10} {'':>11} {_human(ens['params']):>10}"
        )
    n = result.get("num_examples")
    where = " ".join(
        str(result[k]) for k in ("dataset", "split") if result.get(k) is not None
    )
    lines.append(f"({n} examples{' of ' + where if where else ''}; MACs at batch 1)")
    return "\n".join(lines)


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


# ---------------------------------------------------------------------------
# Run folder
# ---------------------------------------------------------------------------


def work_folder(run):
    """The sibling folder a run trains in until it is complete."""
    run = pathlib.Path(run).expanduser()
    return run.with_name(f".{run.name}.incomplete")


def _read_config(folder):
    try:
        return runs.read_json(folder / runs.CONFIG)
    except (OSError, ValueError):
        return None


def _plan(run, work, config, resume, overwrite):
    """What to do with `run`: "fresh", "continue", "extend" or "done".

    Raises (and writes nothing) when `run` holds something else.
    """
    if run.exists() and not run.is_dir():
        raise FileExistsError(
            f"`out` must be a folder; a file is in the way. Received: out={str(run)!r}"
        )
    if work.exists():
        old = _read_config(work)
        if old is not None:
            diff = config_diff(old, config)
            if not diff:
                return "continue"
            if resume:
                _check_architecture(diff, work)
                return "continue"
        if overwrite or old is None:
            return "fresh"
        raise FileExistsError(
            f"An interrupted run with a different configuration is in "
            f"{str(work)!r} ({_format_diff(diff)}). Pass --resume to continue it "
            "with the new settings, or --overwrite to start again. Received: "
            f"out={str(run)!r}"
        )
    if run.exists():
        old = _read_config(run)
        if old is None:
            if overwrite or not any(run.iterdir()):
                return "fresh"
            raise FileExistsError(
                f"`out` exists and is not a run folder (no {runs.CONFIG}). Pass "
                f"--overwrite to replace it, or choose another folder. Received: "
                f"out={str(run)!r}"
            )
        if overwrite:
            return "fresh"
        diff = config_diff(old, config)
        if not diff:
            return "done"
        if resume:
            _check_architecture(diff, run)
            return "extend"
        raise FileExistsError(
            f"`out` holds a run with a different configuration "
            f"({_format_diff(diff)}). Pass --resume to continue training it with "
            "the new settings (e.g. more epochs), --overwrite to replace it, or "
            f"choose another --out. Received: out={str(run)!r}"
        )
    return "fresh"


def _check_architecture(diff, folder):
    changed = {k: v for k, v in diff.items() if k in ARCHITECTURE}
    if changed:
        raise ValueError(
            f"Cannot resume the run in {str(folder)!r}: these settings change the "
            f"model, so its weights do not carry over ({_format_diff(changed)}). "
            "Pass --overwrite to train from scratch, or choose another --out."
        )


def _publish(work, run):
    """Renames the finished work folder to `run`, replacing what was there."""
    files.replace_folder(work, run)


def _read_history(path):
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_history(path, rows):
    keys = ["epoch", "learning_rate"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write_text(path, buf.getvalue())


def _save_atomic(model, path):
    # Keras requires the `.keras` suffix on the temporary name too.
    with files.atomic_path(path, suffix=".keras") as tmp:
        with distribute.local_batchnorm(model):  # loadable on any backend
            model.save(tmp)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: history.csv, last.keras and (when best) model.keras.

    `history.csv` has one row per epoch: `epoch` (0-based, like Keras'
    `CSVLogger`), `learning_rate` (at the start of the epoch) and every log.

    Every file is written to a temporary name and renamed, so a crash never
    leaves a broken file. "Best" is the highest `val_final_accuracy` so far,
    counting the epochs already in `history.csv` of a resumed run.

    Args:
        folder: path of the (work) run folder.
        history: list of dicts, the rows of the epochs already trained.
        monitor: str. Defaults to `"val_final_accuracy"`.
    """

    def __init__(self, folder, history=(), monitor=MONITOR):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.rows = [dict(r) for r in history]
        self.monitor = monitor
        previous = [
            float(r[monitor]) for r in self.rows if r.get(monitor) not in (None, "")
        ]
        self.best = max(previous, default=-math.inf)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_lr = _current_lr(self.model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch, "learning_rate": self._epoch_lr}
        row.update({k: float(v) for k, v in logs.items()})
        self.rows.append(row)
        _write_history(self.folder / runs.HISTORY, self.rows)
        _save_atomic(self.model, self.folder / runs.LAST)
        value = logs.get(self.monitor)
        if value is not None and math.isfinite(value) and value > self.best:
            self.best = float(value)
            _save_atomic(self.model, self.folder / runs.MODEL)
        elif not (self.folder / runs.MODEL).exists():
            _save_atomic(self.model, self.folder / runs.MODEL)


def _current_lr(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _backup_epoch(folder):
    """Epochs finished according to BackupAndRestore's state (0 if none)."""
    try:
        meta = runs.read_json(folder / BACKUP / "training_metadata.json")
        return int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _restore(model, folder):
    """Where training in `folder` starts: `(initial_epoch, history rows)`.

    BackupAndRestore's state when there is one (it restores the weights and
    optimizer itself in `fit`); else `last.keras` and `history.csv` (a finished
    run continued with `resume`, or a crash before the first backup); else
    nothing: epoch 0.
    """
    history = _read_history(folder / runs.HISTORY)
    epoch = _backup_epoch(folder)
    if epoch:
        return epoch, [r for r in history if int(r["epoch"]) < epoch]
    if history and (folder / runs.LAST).is_file():
        model.optimizer.build(model.trainable_variables)
        model.load_weights(folder / runs.LAST)  # weights and optimizer state
        return len(history), history
    return 0, []


def _tensorboard(folder, say):
    import importlib.util

    # Keras' TensorBoard callback writes through tf.summary, which needs the
    # `tensorboard` package (TensorFlow 2.21 no longer installs it).
    if importlib.util.find_spec("tensorboard") is None:
        say(f"note: `pip install tensorboard` to get TensorBoard logs in {LOGS}/.")
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(folder / LOGS), write_graph=False)]


class TrainingStopped(RuntimeError):
    """Training ended before the last epoch (e.g. the loss became NaN)."""


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        run: `pathlib.Path` of the run folder.
        status: str. `"trained"`, or `"up-to-date"` when the run folder already
            held a finished run with the same configuration.
        config: dict. The resolved configuration (as in `config.json`).
        history: list of dicts, one per epoch (as in `history.csv`).
        evaluation: dict or `None`. The test evaluation (as in `eval.json`).
        model: the trained model (best by `val_final_accuracy`), or `None`
            when nothing was trained.
    """

    run: pathlib.Path
    status: str
    config: dict
    history: list
    evaluation: dict = None
    model: object = None


def train(
    out,
    *,
    config_file=None,
    resume=False,
    overwrite=False,
    evaluate=True,
    download=False,
    callbacks=None,
    verbose="auto",
    **config,
):
    """Trains a SCAN model (or the `no_exits` baseline) into a run folder.

    Rerunning the same call after an interruption continues from the last
    finished epoch. A run folder with a different configuration is refused
    unless `resume` (continue it with the new settings, e.g. more epochs; the
    model-shaping settings must match) or `overwrite` (train from scratch and
    replace it when done). Nothing is written before the configuration, the data
    and the model are checked.

    Args:
        out: str or path. The run folder.
        config_file: str or path of a YAML or JSON file of settings, optional.
        resume: bool. Continue a run whose configuration differs. Defaults to
            `False`.
        overwrite: bool. Replace a finished run. Defaults to `False`.
        evaluate: bool. Evaluate the best model on the test split into
            `eval.json`. Defaults to `True`.
        download: bool. Let tensorflow-datasets / Keras download missing data.
            Defaults to `False`.
        callbacks: list of extra `keras.callbacks.Callback`, optional.
        verbose: `"auto"` (progress bar on a terminal, one line per epoch
            otherwise), 0, 1 or 2. Defaults to `"auto"`.
        **config: settings, see `DEFAULTS` (`backbone`, `dataset`, `epochs`,
            `batch_size`, `lr`, `width`, `limit`, ...).

    Returns:
        A `TrainResult`.

    Example:
    ```python
    result = keras_scan.training.train(
        "runs/fm", backbone="cifar_resnet18", width=16, dataset="fashion_mnist",
        epochs=3, limit=4000)
    print(keras_scan.training.format_table(result.evaluation))
    ```
    """
    config = resolve_config(config, config_file)
    run = pathlib.Path(out).expanduser()
    work = work_folder(run)
    plan = _plan(run, work, config, resume, overwrite)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    say = print if verbose else (lambda *a, **k: None)
    if plan == "done":
        say(
            f"{run} already holds a finished run with this configuration; nothing "
            "to do (pass --overwrite to train again)."
        )
        evaluation = (
            runs.read_json(run / runs.EVAL) if (run / runs.EVAL).is_file() else None
        )
        return TrainResult(
            run,
            "up-to-date",
            _read_config(run),
            _read_history(run / runs.HISTORY),
            evaluation,
        )

    if plan == "extend":
        finished = len(_read_history(run / runs.HISTORY))
        if config["epochs"] <= finished:
            raise ValueError(
                f"`epochs` must exceed the {finished} epochs {str(run)!r} already "
                f"trained to continue it with --resume. Received: "
                f"epochs={config['epochs']}"
            )

    # Check the devices, the data and the model before writing anything.
    dist = None
    if config["distribute"] is not None:
        dist = distribute.distribution(config["distribute"])
        dist.check_batch_size(config["batch_size"])
        say(
            f"Distributed: {dist.mode} on {dist.backend}, {dist.num_replicas} "
            f"replicas (worker {dist.worker_index} of {dist.num_workers}), global "
            f"batch {config['batch_size']} = {config['batch_size'] // dist.num_replicas}"
            " per replica."
        )
    scope = dist if dist is not None else contextlib.nullcontext()
    keras.utils.set_random_seed(config["seed"])
    splits = data.load_dataset(
        config["dataset"],
        config["image_size"],
        channels=config["channels"],
        val_fraction=config["val_fraction"],
        seed=config["seed"],
        limit=config["limit"],
        data_dir=config["data_dir"],
        download=download,
    )
    for note in splits.notes:
        say(f"note: {note}")
    steps = _steps_per_epoch(splits, config["batch_size"], drop_remainder=bool(dist))
    with scope:
        model = make_model(config, splits.num_classes)
        if dist is not None:
            dist.prepare(model)
    check_limit(config, splits.num_classes)
    resolved = dict(
        config,
        scaled_lr=scaled_learning_rate(config["lr"], config["batch_size"]),
        num_classes=splits.num_classes,
        class_names=list(splits.class_names),
        preprocessing=registry.preprocessing(config["backbone"]),
        steps_per_epoch=steps,
        sizes=splits.sizes(),
        backend=keras.backend.backend(),
        keras_scan_version=_version(),
        num_replicas=dist.num_replicas if dist else 1,
        num_workers=dist.num_workers if dist else 1,
    )

    # From here on only the work folder is written (by the chief; the other
    # workers of a multi-worker job write their own scratch folder).
    chief = dist is None or dist.is_chief
    folder = work if chief else _worker_folder(run, dist.worker_index)
    if chief:
        if plan == "fresh" and work.exists():
            shutil.rmtree(work)
        if plan == "extend":
            shutil.copytree(run, work)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        source = {"continue": work, "extend": run}.get(plan)
        if source is not None:  # restore from the chief's state (shared disk)
            shutil.copytree(source, folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_json(folder / runs.CONFIG, resolved)

    with scope:
        compile_model(model, make_optimizer(config, steps))
        initial_epoch, history = _restore(model, folder)
    if initial_epoch:
        say(f"Continuing {run} after epoch {initial_epoch} of {config['epochs']}.")
    say(f"Training into {folder} (renamed to {run} when done).")

    train_ds, val_ds = make_pipelines(splits, config, initial_epoch, dist)
    fit_callbacks = [
        keras.callbacks.TerminateOnNaN(),
        *(_tensorboard(folder, say) if chief else []),
        *recipe_callbacks(config),
        RunCheckpoint(folder, history),
        keras.callbacks.BackupAndRestore(str(folder / BACKUP), delete_checkpoint=False),
        *(callbacks or []),
    ]
    with scope:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config["epochs"],
            initial_epoch=initial_epoch,
            shuffle=False,  # the pipelines shuffle (seeded)
            callbacks=fit_callbacks,
            verbose=verbose if chief else 0,
        )
    history = _read_history(folder / runs.HISTORY)
    if len(history) < config["epochs"]:
        raise TrainingStopped(
            f"Training stopped after {len(history)} of {config['epochs']} epochs "
            f"(e.g. TerminateOnNaN: the loss became NaN; lower --lr). The "
            f"interrupted run is in {str(folder)!r}; {str(run)!r} was not written."
        )
    if not chief:
        shutil.rmtree(folder, ignore_errors=True)
        say(f"Worker {dist.worker_index} finished; the chief writes {run}.")
        return TrainResult(run, "trained", resolved, history, None, model)

    if dist is None:
        model.load_weights(work / runs.MODEL)  # the best epoch
    else:  # evaluate on one device, outside the distribution
        model = keras.saving.load_model(work / runs.MODEL, compile=False)
    if isinstance(model, ScanModel):
        # The ramp's share is training state: the published model carries the
        # full distillation weight (a checkpoint may hold a share mid-ramp).
        model.distill_scale.assign(1.0)
    used = finish_training(model, splits, config)
    _save_atomic(model, work / runs.MODEL)
    if used:
        say(f"Batch-norm statistics re-estimated from {used} training batches.")
    evaluation = None
    if evaluate:
        evaluation = evaluate_model(model, splits.test, config["batch_size"])
        evaluation.update(dataset=config["dataset"], split="test", model=runs.MODEL)
        runs.write_json(work / runs.EVAL, evaluation)
    shutil.rmtree(work / BACKUP, ignore_errors=True)
    _publish(work, run)
    say(f"Finished: {run}")
    return TrainResult(run, "trained", resolved, history, evaluation, model)


def _worker_folder(run, index):
    """The scratch folder a non-chief worker writes (removed when done)."""
    return run.with_name(f".{run.name}.worker-{index}")


def _version():
    import keras_scan

    return keras_scan.__version__
