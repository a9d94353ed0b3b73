"""The recipe's optimizer: SGD with momentum, coupled weight decay, schedules.

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
- step decay (the paper): the learning rate is divided by 10 at 37.5%, 65% and
  90% of the training steps (the paper's epochs 75, 130, 180 of 200); cosine
  decay (the package's default) or a constant rate; a linear warm-up in front.
"""

import keras

# Batch size the paper's learning rate is given for.
REFERENCE_BATCH_SIZE = 128
SCHEDULES = ("step", "cosine", "constant")


def scaled_learning_rate(lr, batch_size):
    """`lr` (given for a batch of 128) scaled linearly to `batch_size`."""
    return lr * batch_size / REFERENCE_BATCH_SIZE


# Saved models name it "keras_scan>Warmup" (package + class name): keep both.
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


# The longest share of a run the warm-up floor may take.
MAX_WARMUP_SHARE = 0.3


def warmup_length(config, total_steps):
    """Steps of the linear warm-up: `warmup` of the run, at least `min_warmup_steps`.

    `warmup` is a share of the run; `min_warmup_steps` a floor in steps,
    itself capped at 30% of the run. The floor is what makes a short run
    start safely: what the warm-up waits for (the momentum buffer and the
    batch-norm statistics of a fresh network settling) takes a number of
    steps, about `1 / (1 - momentum)` each, whatever the run's length. 5% of
    a one-epoch run on 3,000 images is 1 step; measured there
    (`benchmarks/results/first-try`), the final exit then ends at 38-46% and
    with 6 steps above 55%. `warmup = 0` means no warm-up at all (the
    paper's recipe).
    """
    share = config.get("warmup", 0.0)
    if not share or total_steps <= 0:
        return 0
    steps = int(round(share * total_steps))
    floor = min(
        int(config.get("min_warmup_steps", 0)),
        int(MAX_WARMUP_SHARE * total_steps),
    )
    return max(steps, floor)


def learning_rate_schedule(config, steps_per_epoch):
    """The learning rate (a float or a schedule over optimizer steps).

    `"step"`: `scaled_lr * gamma**i` after the i-th milestone (milestones are
    fractions of all training steps); `"cosine"`: cosine decay to 0 over all
    steps; `"constant"`: `scaled_lr`. With `warmup > 0` the rate rises
    linearly over that fraction of the steps first, and over at least
    `min_warmup_steps` steps (at most 30% of the run; `warmup_length`).
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
    warmup_steps = warmup_length(config, total)
    if warmup_steps > 0:
        return Warmup(schedule, warmup_steps)
    return schedule


@keras.saving.register_keras_serializable(package="keras_scan")
class ScaledSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` that first rescales chosen gradients.

    The recipe's optimizer under gradient equilibrium (`ScanModel.
    gradient_equilibrium_scales`): each gradient is multiplied by its
    variable's factor before clipping, momentum and the update; a variable
    without an entry keeps its gradient. With `adaptive_clip`, the gradient
    of every kernel (a variable of 2 or more dimensions) is then scaled down
    to at most `adaptive_clip` times the kernel's own norm (adaptive gradient
    clipping, Brock et al. 2021, per tensor): a layer whose gradient is
    outsized against its weights (a first layer, or a classifier on features
    of a large scale, in the first steps of a fresh network) takes a bounded
    step, while the others keep theirs. Biases and batch-norm parameters
    (which may start at zero) are not clipped.

    Args:
        gradient_scales: dict mapping `variable.path` to a float.
        adaptive_clip: None, or a float > 0: the largest gradient norm of a
            kernel, as a multiple of the kernel's norm.
        **kwargs: passed to `keras.optimizers.SGD`.
    """

    def __init__(self, gradient_scales=None, adaptive_clip=None, **kwargs):
        super().__init__(**kwargs)
        self.gradient_scales = {
            str(k): float(v) for k, v in (gradient_scales or {}).items()
        }
        self.adaptive_clip = None if adaptive_clip is None else float(adaptive_clip)

    def apply(self, grads, trainable_variables=None):
        variables = (
            self._trainable_variables
            if trainable_variables is None
            else trainable_variables
        )
        scaled = []
        for grad, variable in zip(grads, variables):
            if grad is not None:
                scale = self.gradient_scales.get(variable.path, 1.0)
                grad = grad if scale == 1.0 else grad * scale
                if self.adaptive_clip and len(variable.shape) >= 2:
                    grad = self._clip_to_weight(grad, variable)
            scaled.append(grad)
        return super().apply(scaled, trainable_variables)

    def _clip_to_weight(self, grad, variable):
        ops = keras.ops
        grad_norm = ops.sqrt(ops.sum(ops.square(grad)))
        weight_norm = ops.maximum(ops.sqrt(ops.sum(ops.square(variable))), 1e-3)
        limit = self.adaptive_clip * ops.cast(weight_norm, grad.dtype)
        return grad * ops.minimum(1.0, limit / ops.maximum(grad_norm, 1e-12))

    def get_config(self):
        return {
            **super().get_config(),
            "gradient_scales": self.gradient_scales,
            "adaptive_clip": self.adaptive_clip,
        }


def make_optimizer(config, steps_per_epoch, model=None):
    """SGD with momentum, the schedule and the paper's (coupled) weight decay.

    With `clipnorm`, the gradient of all weights together is scaled down to
    that global norm when it is larger (a guard against the first steps of a
    fresh network blowing up). With `variable_clipnorm`, each variable's
    gradient is clipped to that norm on its own (Keras' `clipnorm`): a layer
    whose gradient is far larger than the others' (e.g. a classifier on
    features of a large scale) takes a bounded step while the rest of the
    network keeps the full learning rate. With `adaptive_clip`, each kernel's
    gradient is bounded relative to the kernel's own norm (`ScaledSGD`). With
    `gradient_equilibrium` and a `ScanModel` as `model`, each variable's
    gradient is divided by the number of exits whose loss reaches it
    (`ScaledSGD`); the setting does nothing for a plain model.

    Keras' `weight_decay` is decoupled; `weight_decay / (1 - momentum)` gives
    the steady-state decay of PyTorch's coupled L2 (see the module docs).
    """
    momentum = config["momentum"]
    decay = (
        config["weight_decay"] / (1.0 - momentum) if config["weight_decay"] else None
    )
    clipnorm = config.get("clipnorm")
    variable_clipnorm = config.get("variable_clipnorm")
    kwargs = dict(
        learning_rate=learning_rate_schedule(config, steps_per_epoch),
        momentum=momentum,
        weight_decay=decay,
        global_clipnorm=float(clipnorm) if clipnorm else None,
        clipnorm=float(variable_clipnorm) if variable_clipnorm else None,
    )
    scales = getattr(model, "gradient_equilibrium_scales", None)
    scales = scales() if config.get("gradient_equilibrium") and scales else None
    adaptive_clip = config.get("adaptive_clip")
    if scales is not None or adaptive_clip:
        return ScaledSGD(
            gradient_scales=scales,
            adaptive_clip=adaptive_clip or None,
            **kwargs,
        )
    return keras.optimizers.SGD(**kwargs)
