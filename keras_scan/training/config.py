"""The training configuration: its settings, their checks, named recipes.

A configuration is a plain dict with every key of `DEFAULTS` (what `train`
takes as keyword arguments and writes to `RUN/config.json`, with the `DERIVED`
keys added). `TrainingConfig` is its schema: one typed field per setting, each
checked on construction. `resolve_config` builds one from the defaults, a named
recipe, a YAML/JSON file and explicit arguments.
"""

import copy
import dataclasses
import json
import pathlib

from keras_scan import data, distribute
from keras_scan.backbones import registry
from keras_scan.checks import is_int, is_number
from keras_scan.layers import HEADS
from keras_scan.layers.attention_module import KINDS as _KINDS
from keras_scan.scan_model import KD_LOSSES, KD_MIXES, TEACHERS
from keras_scan.training.schedule import SCHEDULES

ATTENTION_KINDS = (*_KINDS, "none")


def _milestones():
    return [0.375, 0.65, 0.9]


# The learning rate (for a batch of 128) when `lr` is left unset: the paper's
# 0.1 for a backbone with batch normalization, a tenth of it for one without
# (VGG16/19: from scratch at 0.1 the loss turns NaN within 3 epochs, and the
# plain network answers at chance after 2; benchmarks/results/first-try).
LR = 0.1
LR_WITHOUT_NORMALIZATION = 0.01


def default_lr(backbone):
    """The learning rate `lr` defaults to for registry backbone `backbone`."""
    return LR if registry.has_normalization(backbone) else LR_WITHOUT_NORMALIZATION


def recipe_defaults(recipe="default", backbone="cifar_resnet18"):
    """What each setting is when left unset: `DEFAULTS`, the named recipe on
    top, and `lr` resolved for `backbone` (what a stored configuration is
    compared with to print only the flags it needs)."""
    return {**DEFAULTS, **RECIPES[recipe], "lr": default_lr(backbone)}


@dataclasses.dataclass
class TrainingConfig:
    """Every setting of a training run, checked and normalised.

    The fields are the settings `train` and `keras-scan train` take (their
    defaults are `DEFAULTS`). Constructing one checks every value and raises a
    `ValueError` that names the setting and echoes the value; it also
    normalises a few: `lr` defaults to `LR`, or `LR_WITHOUT_NORMALIZATION` for
    a backbone without batch normalization (VGG16/19), the CIFAR ResNets'
    `width` defaults to 64, `exits` and
    `milestones` may be comma-separated strings, `attention` may be the bool of
    run folders written before attention kinds existed, and `"none"` means
    `None` for `weights` and `distribute`.

    Example:
    ```python
    config = keras_scan.training.TrainingConfig(epochs=30, batch_size=64)
    keras_scan.training.train("runs/fm", **config.to_dict())
    ```
    """

    # Model.
    backbone: str = "cifar_resnet18"
    width: int | None = None
    weights: str | None = None
    head: str = "lite"
    attention: str = "gate"
    distillation: bool = True
    alpha: float = 0.1
    temperature: float = 3.0
    beta: float = 1.0
    kd_loss: str = "kl_t2"
    kd_mix: str = "add"
    teacher: str = "ensemble"
    distill_warmup: float = 0.5
    exits: int | list[str] | None = None
    exit_weights: str | list[float] | None = None
    no_exits: bool = False
    # Data.
    dataset: str = "fashion_mnist"
    image_size: int = 32
    channels: int = 3
    val_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None
    data_dir: str | None = None
    # Crop + flip of training images: off by default (measured to cost
    # accuracy at every budget up to 12 epochs; the README's table), on in
    # the paper's recipe.
    augment: bool = False
    # Recipe.
    epochs: int = 200
    batch_size: int = 128
    lr: float | None = None  # None: LR, or LR_WITHOUT_NORMALIZATION (VGG)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: list[float] = dataclasses.field(default_factory=_milestones)
    gamma: float = 0.1
    warmup: float = 0.05
    min_warmup_steps: int = 20
    clipnorm: float | None = None
    variable_clipnorm: float | None = None
    adaptive_clip: float | None = 1.0
    gradient_equilibrium: bool = True
    bn_momentum: float | None = 0.9
    bn_recalibration: int = 20
    recipe: str = "default"
    # Devices.
    distribute: str | None = None

    def __post_init__(self):
        # Types and ranges, then normalisation; in this order (the first
        # bad setting is the one reported).
        registry.preprocessing(self.backbone)  # unknown backbone: lists valid ones
        if not isinstance(self.dataset, str) or not self.dataset:
            _fail("dataset", f"a dataset spec ({data.VALID_SPECS})", self.dataset)
        for key, low in (("image_size", 1), ("epochs", 1), ("batch_size", 1)):
            value = getattr(self, key)
            if not is_int(value) or value < low:
                _fail(key, f"an int >= {low}", value)
            setattr(self, key, int(value))
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            _fail("channels", "1 or 3", self.channels)
        if not is_int(self.seed):
            _fail("seed", "an int", self.seed)
        if self.limit is not None and (not is_int(self.limit) or self.limit < 2):
            _fail("limit", "None or an int >= 2", self.limit)
        if not is_number(self.val_fraction) or not 0 < self.val_fraction < 1:
            _fail(
                "val_fraction", "a number strictly between 0 and 1", self.val_fraction
            )
        if self.lr is None:
            self.lr = default_lr(self.backbone)
        for key in ("lr", "temperature"):
            value = getattr(self, key)
            if not is_number(value) or not value > 0:
                _fail(key, "a finite number > 0", value)
        for key in ("weight_decay", "beta"):
            value = getattr(self, key)
            if not is_number(value) or not value >= 0:
                _fail(key, "a finite number >= 0", value)
        for key in ("warmup", "distill_warmup"):
            value = getattr(self, key)
            if not is_number(value) or not 0 <= value < 1:
                _fail(
                    key,
                    "a fraction of the run in [0, 1) (1 or more would last the "
                    "whole run or longer)",
                    value,
                )
            setattr(self, key, float(value))
        _check_choice("teacher", self.teacher, TEACHERS)
        _check_choice("kd_loss", self.kd_loss, KD_LOSSES)
        _check_choice("kd_mix", self.kd_mix, KD_MIXES)
        if self.bn_momentum is not None and (
            not is_number(self.bn_momentum) or not 0 <= self.bn_momentum < 1
        ):
            _fail("bn_momentum", "None or a number in [0, 1)", self.bn_momentum)
        if self.clipnorm is not None and (
            not is_number(self.clipnorm) or not self.clipnorm > 0
        ):
            _fail("clipnorm", "None or a finite number > 0", self.clipnorm)
        for key in ("variable_clipnorm", "adaptive_clip"):  # 0 is off
            value = getattr(self, key)
            if value is not None and (not is_number(value) or not value >= 0):
                _fail(key, "None, 0 (off) or a finite number > 0", value)
            if value == 0:
                setattr(self, key, None)
        if self.clipnorm is not None and self.variable_clipnorm is not None:
            raise ValueError(
                "`clipnorm` (the global norm) and `variable_clipnorm` (each "
                "variable's) cannot both be set: Keras clips one way (0 turns "
                "`variable_clipnorm` off). Received: "
                f"clipnorm={self.clipnorm!r}, "
                f"variable_clipnorm={self.variable_clipnorm!r}"
            )
        if not is_int(self.min_warmup_steps) or self.min_warmup_steps < 0:
            _fail("min_warmup_steps", "an int >= 0 (steps)", self.min_warmup_steps)
        if not is_int(self.bn_recalibration) or self.bn_recalibration < 0:
            _fail("bn_recalibration", "an int >= 0 (batches)", self.bn_recalibration)
        for key, high in (("momentum", 0.999), ("alpha", 1)):
            value = getattr(self, key)
            if not is_number(value) or not 0 <= value <= high:
                _fail(key, f"a number in [0, {high}]", value)
        if not is_number(self.gamma) or not 0 < self.gamma <= 1:
            _fail("gamma", "a number in (0, 1]", self.gamma)
        _check_choice("schedule", self.schedule, SCHEDULES)
        self.milestones = _check_milestones(self.milestones)
        _check_choice("head", self.head, HEADS)
        if self.attention is True or self.attention is False:
            # Run folders written before attention kinds existed: True was the paper's.
            self.attention = "scan" if self.attention else "none"
        _check_choice("attention", self.attention, ATTENTION_KINDS)
        self.exit_weights = _check_exit_weights(self.exit_weights)
        for key in ("distillation", "no_exits", "augment", "gradient_equilibrium"):
            if not isinstance(getattr(self, key), bool):
                _fail(key, "true or false", getattr(self, key))
        self.exits = _check_exits(self.exits)
        if self.weights is not None and not isinstance(self.weights, str):
            _fail(
                "weights",
                "None, 'imagenet' or the path of a weights file",
                self.weights,
            )
        if self.weights in ("none", "None", ""):
            self.weights = None
        if self.backbone in registry.CIFAR_RESNETS:
            if self.width is None:
                self.width = 64
            if not is_int(self.width) or self.width < 1:
                _fail("width", "a positive int", self.width)
        elif self.width is not None:
            _fail(
                "width",
                f"unset for backbone {self.backbone!r} (only the CIFAR ResNets take "
                "a width)",
                self.width,
            )
        if self.image_size < registry.min_image_size(self.backbone):
            _fail(
                "image_size",
                f"at least {registry.min_image_size(self.backbone)} for backbone "
                f"{self.backbone!r}",
                self.image_size,
            )
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)
        if self.distribute in ("none", "None", ""):
            self.distribute = None
        if self.distribute is not None:
            distribute.check_mode(self.distribute, "distribute")
        if not isinstance(self.recipe, str) or self.recipe not in RECIPES:
            _fail("recipe", f"one of {', '.join(RECIPES)}", self.recipe)

    def to_dict(self):
        """The configuration as a dict (keys in the order of `DEFAULTS`)."""
        return dataclasses.asdict(self)


DEFAULTS = {
    field.name: (
        field.default
        if field.default is not dataclasses.MISSING
        else field.default_factory()
    )
    for field in dataclasses.fields(TrainingConfig)
}

# Named recipes: settings applied on top of `DEFAULTS` before a config file
# and explicit arguments (which still override them). "paper" is the SCAN
# paper's code exactly: step schedule without warm-up, alpha 0.5 with the T^2
# factor at T = 3, the feature loss, no batch-norm re-estimation, crop + flip.
RECIPES = {
    "default": {},
    "paper": {
        "schedule": "step",
        "warmup": 0.0,
        "min_warmup_steps": 0,
        "clipnorm": None,
        "variable_clipnorm": None,
        "adaptive_clip": None,
        "bn_recalibration": 0,
        "alpha": 0.5,
        "temperature": 3.0,
        "kd_loss": "kl_t2",
        "kd_mix": "convex",
        "teacher": "final",
        "beta": 1.0,
        "distill_warmup": 0.0,
        "exit_weights": None,
        "gradient_equilibrium": False,
        "augment": True,
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

    Precedence: `DEFAULTS`, then the named recipe (`RECIPES`), then
    `config_file`, then `overrides` (entries that are `None` are ignored, so
    unset CLI flags do not override the file).

    Args:
        overrides: dict of config keys (see `DEFAULTS`), optional.
        config_file: str or path of a YAML or JSON file, optional.

    Returns:
        A dict with every key of `DEFAULTS` (a checked `TrainingConfig` as a
        dict).
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
    return TrainingConfig(**config).to_dict()


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


def format_diff(diff):
    """A `config_diff` as one line: `key: old -> new, ...`."""
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


def _normalise(value):
    return json.loads(json.dumps(value))


def _fail(key, requirement, value):
    raise ValueError(f"`{key}` must be {requirement}. Received: {key}={value!r}")


def _check_choice(key, value, choices):
    if value not in choices:
        _fail(key, f"one of {', '.join(choices)}", value)


def _check_milestones(milestones):
    if isinstance(milestones, str):
        milestones = [m for m in milestones.replace(",", " ").split() if m]
        try:
            milestones = [float(m) for m in milestones]
        except ValueError:
            _fail("milestones", "fractions of training in (0, 1)", milestones)
    if not isinstance(milestones, (list, tuple)) or not all(
        is_number(m) and 0 < m < 1 for m in milestones
    ):
        _fail("milestones", "a list of fractions of training in (0, 1)", milestones)
    if list(milestones) != sorted(milestones):
        _fail("milestones", "in increasing order", milestones)
    return [float(m) for m in milestones]


def _check_exit_weights(weights):
    """`exit_weights` as `"depth"`, `None` (equal) or a list of floats >= 0
    (a string: comma-separated)."""
    if weights is None or weights in ("", "none", "None", "equal"):
        return None
    if weights == "depth":
        return weights
    if isinstance(weights, str):
        parts = [p.strip() for p in weights.split(",")]
        try:
            weights = [float(p) for p in parts]
        except ValueError:
            _fail(
                "exit_weights",
                "'equal', 'depth' or comma-separated numbers >= 0",
                weights,
            )
    if (
        not isinstance(weights, (list, tuple))
        or not weights
        or not all(is_number(w) and w >= 0 for w in weights)
        or not any(w > 0 for w in weights)
    ):
        _fail(
            "exit_weights",
            "'equal', 'depth' or a list of numbers >= 0 (one per exit, the final "
            "exit last; not all 0)",
            weights,
        )
    return [float(w) for w in weights]


def _check_exits(exits):
    """None, an int k, or a list of layer names (a comma-separated str too)."""
    if exits is None or exits == "":
        return None
    if isinstance(exits, str):
        exits = exits.strip()
        if exits.isdigit():
            return int(exits)
        return [e.strip() for e in exits.split(",") if e.strip()]
    if is_int(exits):
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
