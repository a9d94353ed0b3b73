"""Small helpers shared by the tests (imported as `helpers`; tests/ is on sys.path)."""

import keras_scan


def small_backbone(**kwargs):
    """A narrow CIFAR ResNet18 (width 16, 32x32x3): fast on 2 CPU cores."""
    kwargs.setdefault("width", 16)
    return keras_scan.backbones.cifar_resnet(18, input_shape=(32, 32, 3), **kwargs)


def tiny_backbone():
    """A 3-stage CNN (8-16-32 channels, 32x32x3): converts to LiteRT in seconds."""
    import keras

    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, (filters, stride) in enumerate([(8, 1), (16, 2), (32, 2)]):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"c{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"stage{i}_out")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def write_run(folder, model, limit=600):
    """A RUN folder holding `model` and a Fashion-MNIST config (`limit` images)."""
    from keras_scan import runs

    folder.mkdir()
    model.save(folder / runs.MODEL)
    config = {"dataset": "fashion_mnist", "image_size": 32, "channels": 3}
    config.update(val_fraction=0.1, seed=0, limit=limit)
    runs.write_json(folder / runs.CONFIG, config)
    return folder
