"""The model a training configuration describes, and how it is compiled."""

import keras

from keras_scan.backbones import registry
from keras_scan.scan_model import FINAL, ScanModel
from keras_scan.training.recipe import set_batchnorm_momentum


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
            exit_weights=config["exit_weights"],
        )
    except ValueError as e:
        if "`exit_weights`" in str(e):  # one weight per exit: says how many
            raise
        raise ValueError(
            f"Cannot hang exits on backbone {config['backbone']!r} at "
            f"image_size={config['image_size']} (exits={config['exits']!r}): {e}"
        ) from None


def compile_model(model, optimizer):
    """Compiles a `ScanModel` (built-in loss) or the baseline (cross-entropy).

    Both log `final_accuracy` / `val_final_accuracy`. The optimizer's
    variables are created here, outside any trace (under the caller's
    distribution scope, if any): left to Keras, the TensorFlow backend creates
    them in the first trace of the train step, and a `tf.function` that
    creates variables is traced twice, which doubles the compile time of every
    training run (about 12 s of CPU for a small CIFAR ResNet, measured). The
    variables, their initial values and the training are the same.
    """
    if isinstance(model, ScanModel):
        model.compile(optimizer=optimizer, metrics=["accuracy"])
    else:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name=f"{FINAL}_accuracy")],
        )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model
