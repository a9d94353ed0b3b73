"""What each benchmark profile runs: model, data, recipe and measurement sizes.

Every number a profile sets is written into results.json (`settings`), so a
report says exactly what was run. `--set key=value` (dotted keys for nested
entries, e.g. `--set compress.finetune_epochs=2`) overrides one setting; the
overrides are recorded too.
"""

import copy
import json

# The model variants of section 1: training-config overrides on top of the
# profile's recipe (keys of keras_scan.training.DEFAULTS).
VARIANTS = {
    "scan": {},
    "plain": {"no_exits": True},
    "no_attention": {"attention": False},
    "no_distillation": {"distillation": False},
    "no_feature_loss": {"beta": 0.0},
    "sepconv_head": {"head": "sepconv"},
    "linear_head": {"head": "linear"},
    # How the exits' gradients share the trunk (IMTA's gradient equilibrium).
    "gradient_equilibrium": {"gradient_equilibrium": True},
    # The SCAN paper's code exactly (`--recipe paper`): step schedule, no
    # warm-up, alpha 0.5 with the T^2 KL, no batch-norm re-estimation.
    "scan_paper": {"recipe": "paper", "schedule": "step"},
}

ALL_VARIANTS = list(VARIANTS)
EXPORT_MODES = ["float32", "float16", "dynamic", "int8"]

_COMMON = {
    "dataset": "fashion_mnist",
    # Where the Fashion-MNIST IDX files are (None: keras_scan.data's search:
    # /usr/share/datasets/fashion-mnist, the Keras cache).
    "data_dir": None,
    "backbone": "cifar_resnet18",
    "image_size": 32,
    "channels": 3,
    "val_fraction": 0.1,
    "seed": 0,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "augment": True,
    "variants": ALL_VARIANTS,
    # Section 2: thresholds chosen on the validation split.
    "accuracy_drops": [0.0, 0.5],
    "search": {"population": 100, "generations": 100, "seed": 0},
    # Section 3 (Keras): ScalableInference vs the final exit alone.
    "keras_batch_size": 256,
    # Sections 3 and 4 (LiteRT, batch 1, 1 thread).
    "export_modes": EXPORT_MODES,
    "calibration_samples": 300,
    "export_eval_limit": 1000,
    "litert_images": 1000,
    "litert_warmup": 10,
    "litert_threads": 1,
    # Section 5: training step time side by side, then peak memory.
    # batch_size None: the training batch (then section 1's models are reused).
    "step": {"batch_size": None, "rounds": 5, "steps": 10, "warmup": 2},
    "memory": {"enabled": True, "steps": 5},
    # Section 6: the seed methods.
    "compress": {
        "enabled": True,
        "teacher": "scan",
        "budget_flops": 0.5,
        "blockwise_epochs": 1,
        "finetune_epochs": 2,
        "batch_size": 64,
        "probe_batches": 10,
        "probe_images": 256,
        "train_images": 4000,
        "scratch_baseline": True,
    },
    "grow": {
        "enabled": True,
        "width": 16,
        "target_accuracy": 0.9,
        "epochs_per_step": 2,
        "patience": 1,
        "max_epochs": 8,
        "depth_step": 2,
        "batch_size": 128,
        "train_images": 4000,
    },
}


def _profile(**changes):
    p = copy.deepcopy(_COMMON)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(p.get(key), dict):
            p[key].update(value)
        else:
            p[key] = value
    return p


PROFILES = {
    # CI: every section runs, on a model and data set too small to mean anything.
    "smoke": _profile(
        description=(
            "CI smoke run: every measurement exercised on a tiny model "
            "(numbers are not meaningful)"
        ),
        width=8,
        # Compiling the models costs more than training them: few images,
        # and only the variants the later sections need (a third variant
        # would take the same code path).
        limit=400,
        test_limit=200,
        epochs=1,
        batch_size=128,
        variants=["scan", "plain"],
        search={"population": 24, "generations": 8},
        export_modes=["int8"],
        calibration_samples=32,
        export_eval_limit=50,
        litert_images=50,
        litert_warmup=2,
        step={"rounds": 2, "steps": 2, "warmup": 1},
        memory={"enabled": True, "steps": 2},
        compress={
            "teacher": "plain",
            "blockwise_epochs": 0,
            "finetune_epochs": 1,
            "probe_batches": 1,
            "probe_images": 32,
            "train_images": 256,
        },
        grow={
            "width": 8,
            "epochs_per_step": 1,
            "max_epochs": 2,
            "depth_step": 4,
            "train_images": 256,
        },
    ),
    # `make bench`: fits 2 CPU cores in about 30 minutes.
    "cpu": _profile(
        description=(
            "2 CPU cores, ~30 min: narrow CIFAR ResNet18 on a Fashion-MNIST subset, "
            "a few epochs of the default recipe (warm-up, cosine)"
        ),
        width=16,
        limit=20000,
        test_limit=None,
        epochs=3,
        batch_size=128,
    ),
    # A Keras Application end to end on the CPU (issue 15): MobileNetV2 from
    # scratch on the same Fashion-MNIST subset padded to 64x64 (28 M MACs,
    # about the CPU profile's CIFAR ResNet18 width 16), the default recipe.
    # `python benchmarks/run.py --profile cpu_mobilenet_v2 --sections
    # accuracy,scalable,litert`.
    "cpu_mobilenet_v2": _profile(
        description=(
            "2 CPU cores: Keras' MobileNetV2 from scratch on a Fashion-MNIST subset "
            "padded to 64x64 (each 28x28 image centred on black), a few epochs of "
            "the default recipe"
        ),
        backbone="mobilenet_v2",
        width=None,
        image_size=64,
        limit=20000,
        test_limit=None,
        epochs=3,
        batch_size=128,
        variants=["scan", "plain"],
        export_modes=["int8"],
    ),
    # `make bench-gpu`: the paper's recipe in full, KERAS_BACKEND=jax, no
    # TensorFlow needed; export and LiteRT follow on a CPU machine with
    # `--from-gpu DIR`.
    "gpu": _profile(
        description=(
            "GPU (KERAS_BACKEND=jax, no TensorFlow): CIFAR ResNet18 width 64 on full "
            "Fashion-MNIST padded to 32x32x3, 24 epochs of the paper's recipe"
        ),
        width=64,
        limit=None,
        test_limit=None,
        epochs=24,
        batch_size=128,
        export_modes=[],
        deferred_export_modes=EXPORT_MODES,
        compress={"train_images": 20000, "batch_size": 128},
        grow={"width": 64, "train_images": 20000, "max_epochs": 12},
    ),
}


def _parse_value(text, current):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(current, list) and isinstance(value, str):
        value = [v for v in value.split(",") if v]
    return value


def resolve(name, overrides=()):
    """The settings of profile `name` with `key=value` overrides applied.

    Args:
        name: str. A key of `PROFILES`.
        overrides: iterable of `"key=value"` strings; `value` is JSON when it
            parses (numbers, true/false, null, lists), else a string; a
            comma-separated string sets a list setting (`variants=scan,plain`).

    Returns:
        A new dict.
    """
    if name not in PROFILES:
        raise ValueError(
            f"`profile` must be one of {sorted(PROFILES)}. Received: profile={name!r}"
        )
    settings = copy.deepcopy(PROFILES[name])
    settings["profile"] = name
    applied = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"`--set` takes key=value. Received: {item!r}")
        *parents, leaf = key.split(".")
        target = settings
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ValueError(f"Unknown setting {key!r} for `--set`.")
            target = target[part]
        if leaf not in target:
            raise ValueError(
                f"Unknown setting {key!r} for `--set`. Settings: "
                f"{', '.join(sorted(target))}"
            )
        target[leaf] = _parse_value(text, target[leaf])
        applied[key] = target[leaf]
    unknown = [v for v in settings["variants"] if v not in VARIANTS]
    if unknown or "scan" not in settings["variants"]:
        raise ValueError(
            f"`variants` must include 'scan' and come from {ALL_VARIANTS}. "
            f"Received: {settings['variants']}"
        )
    teacher = settings["compress"]["teacher"]
    if teacher not in ("scan", "plain") or teacher not in settings["variants"]:
        raise ValueError(
            "`compress.teacher` must be 'scan' or 'plain' and among `variants`. "
            f"Received: {teacher!r}"
        )
    settings["overrides"] = applied
    return settings
