"""What the recipe does to a model around `fit`, besides the optimizer.

- one batch-norm momentum for every backbone (`bn_momentum`, set when the model
  is made), and the moving statistics re-estimated from training images after
  `fit` (`bn_recalibration` batches);
- the distillation weight ramped from 0 over the first epochs
  (`distill_warmup`, a callback);
- with `augment` (off by default, on in the paper's recipe), random crop
  (zero-pad by 1/8 of the size) and horizontal flip of the
  training images (`augment`, in `keras_scan.data`).
"""

import keras

from keras_scan.scan_model import ScanModel
from keras_scan.training.evaluation import numpy_batches


def batchnorm_layers(model):
    """Every `BatchNormalization` layer of `model`, nested ones included."""
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
    for layer in batchnorm_layers(model):
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
    layers = batchnorm_layers(model)
    if not batches or not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for x, _ in numpy_batches(split, batch_size):
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
