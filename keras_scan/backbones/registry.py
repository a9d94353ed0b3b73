"""Backbones by name, for `keras-scan train --backbone NAME`.

Two families:

- `cifar_resnet18`, `cifar_resnet34`, `cifar_resnet50`: the SCAN paper's CIFAR
  ResNets (`keras_scan.backbones.cifar_resnet`; `width` sets the channels of the
  first stage, 64 in the paper).
- every Keras Applications CNN that `keras_scan.build` can cut into exits
  (`mobilenet_v2`, `resnet50`, `efficientnet_b0`, ...; `available()` lists them),
  always without the ImageNet classifier (`include_top=False`).

Every backbone takes raw 0..255 pixels, like every keras_scan pipeline: the
preprocessing each application expects (`keras.applications.<module>.
preprocess_input`) is put *inside* the model, in front of the application, by
building the application with `input_tensor=` the output of the preprocessing
layers. The taps therefore stay in one graph, and a saved or exported model
needs no separate preprocessing step. Applications that rescale their input
themselves (MobileNetV3, EfficientNet, EfficientNetV2) get nothing
extra. The modes (`preprocessing(name)`):

| mode | applications | what it computes |
| --- | --- | --- |
| `"rescale"` | the CIFAR ResNets | `x / 255` (their own `Rescaling` layer) |
| `"none"` | MobileNetV3, EfficientNet, EfficientNetV2 | nothing (the model rescales) |
| `"tf"` | MobileNet(V2), ResNet*V2, Inception*, Xception | `x / 127.5 - 1` |
| `"torch"` | DenseNet | `(x / 255 - mean) / std` (ImageNet RGB statistics) |
| `"caffe"` | ResNet50/101/152, VGG16/19 | RGB -> BGR, minus the ImageNet BGR mean |

Applications are built as Keras ships them (batch-norm momentum 0.99 or
0.999); the training recipe sets one momentum on every backbone
(`keras_scan.training.set_batchnorm_momentum`, `bn_momentum`).
"""

import dataclasses

import keras

from keras_scan.backbones.cifar_resnet import cifar_resnet

CIFAR_RESNETS = {"cifar_resnet18": 18, "cifar_resnet34": 34, "cifar_resnet50": 50}

# ImageNet statistics used by `keras.applications.imagenet_utils.preprocess_input`.
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PREPROCESSING_MODES = ("rescale", "none", "tf", "torch", "caffe")


@dataclasses.dataclass(frozen=True)
class _Application:
    constructor: str  # attribute of `keras.applications`
    preprocessing: str  # one of PREPROCESSING_MODES
    min_size: int  # smallest image size the application accepts
    self_preprocessing: bool = False  # takes `include_preprocessing=`
    normalized: bool = True  # has normalization layers (VGG has none)


def _apps(names, preprocessing, min_size=32, self_preprocessing=False, normalized=True):
    return {
        name: _Application(
            constructor, preprocessing, min_size, self_preprocessing, normalized
        )
        for name, constructor in names.items()
    }


# Every Keras Applications CNN that `keras_scan.build` cuts into exits (checked
# by building each family at its minimum size). Left out:
# - NASNetMobile/NASNetLarge: each NASNet cell reads the two previous cells, so
#   the only cut points are in the stem (the exits would hang on the input);
# - ConvNeXt*: `keras_scan.build` does not support it yet (its residual adds are
#   `keras.ops` calls, not layers, and `LayerScale` has no MAC rule).
APPLICATIONS = {
    **_apps(
        {
            "densenet121": "DenseNet121",
            "densenet169": "DenseNet169",
            "densenet201": "DenseNet201",
        },
        "torch",
    ),
    **_apps(
        {f"efficientnet_b{i}": f"EfficientNetB{i}" for i in range(8)},
        "none",
    ),
    **_apps(
        {
            "efficientnet_v2_b0": "EfficientNetV2B0",
            "efficientnet_v2_b1": "EfficientNetV2B1",
            "efficientnet_v2_b2": "EfficientNetV2B2",
            "efficientnet_v2_b3": "EfficientNetV2B3",
            "efficientnet_v2_s": "EfficientNetV2S",
            "efficientnet_v2_m": "EfficientNetV2M",
            "efficientnet_v2_l": "EfficientNetV2L",
        },
        "none",
        self_preprocessing=True,
    ),
    **_apps(
        {"inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2"},
        "tf",
        min_size=75,
    ),
    **_apps(
        {
            "mobilenet": "MobileNet",
            "mobilenet_v2": "MobileNetV2",
            "resnet50_v2": "ResNet50V2",
            "resnet101_v2": "ResNet101V2",
            "resnet152_v2": "ResNet152V2",
        },
        "tf",
    ),
    **_apps(
        {
            "mobilenet_v3_small": "MobileNetV3Small",
            "mobilenet_v3_large": "MobileNetV3Large",
        },
        "none",
        self_preprocessing=True,
    ),
    **_apps(
        {
            "resnet50": "ResNet50",
            "resnet101": "ResNet101",
            "resnet152": "ResNet152",
        },
        "caffe",
    ),
    **_apps({"vgg16": "VGG16", "vgg19": "VGG19"}, "caffe", normalized=False),
    **_apps({"xception": "Xception"}, "tf", min_size=71),
}


def available():
    """Names `build_backbone` accepts, sorted (CIFAR ResNets first)."""
    return list(CIFAR_RESNETS) + sorted(APPLICATIONS)


def _check_name(name):
    if name not in CIFAR_RESNETS and name not in APPLICATIONS:
        import difflib

        close = difflib.get_close_matches(str(name), available(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown backbone.{hint} Valid names: {', '.join(available())}. "
            f"Received: backbone={name!r}"
        )


def preprocessing(name):
    """The preprocessing mode built into backbone `name` (see the module docs).

    Args:
        name: str. A backbone name from `available()`.

    Returns:
        One of `"rescale"`, `"none"`, `"tf"`, `"torch"`, `"caffe"`.
    """
    _check_name(name)
    if name in CIFAR_RESNETS:
        return "rescale"
    return APPLICATIONS[name].preprocessing


def has_normalization(name):
    """Whether backbone `name` has normalization layers (batch norm).

    Every registry backbone has but VGG16/19, a plain stack of convolutions:
    the training recipe gives those a tenth of the learning rate
    (`keras_scan.training.TrainingConfig.lr`).
    """
    _check_name(name)
    return name in CIFAR_RESNETS or APPLICATIONS[name].normalized


def min_image_size(name):
    """The smallest `image_size` backbone `name` accepts."""
    _check_name(name)
    return 8 if name in CIFAR_RESNETS else APPLICATIONS[name].min_size


def apply_preprocessing(mode, inputs):
    """Applies preprocessing `mode` to raw 0..255 pixels, as Keras layers.

    The result equals `keras.applications.imagenet_utils.preprocess_input(x,
    mode=mode)` for `"tf"`, `"torch"` and `"caffe"`; `"none"` returns `inputs`.

    Args:
        mode: str. `"none"`, `"tf"`, `"torch"` or `"caffe"`.
        inputs: a `KerasTensor` (or tensor) of RGB images, 0..255, channels last.

    Returns:
        The preprocessed tensor.

    Example:
    ```python
    image = keras.Input((96, 96, 3))
    x = keras_scan.backbones.registry.apply_preprocessing("tf", image)
    ```
    """
    if mode == "none":
        return inputs
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(
            inputs
        )
    if mode == "torch":
        return keras.layers.Normalization(
            mean=[255.0 * m for m in _TORCH_MEAN],
            variance=[(255.0 * s) ** 2 for s in _TORCH_STD],
            name="preprocess",
        )(inputs)
    if mode == "caffe":
        bgr = keras.ops.flip(inputs, axis=-1)
        return keras.layers.Normalization(
            mean=list(_CAFFE_BGR_MEAN), variance=[1.0, 1.0, 1.0], name="preprocess"
        )(bgr)
    raise ValueError(
        f"`mode` must be one of {PREPROCESSING_MODES[1:]}. Received: mode={mode!r}"
    )


def build_backbone(name, image_size=32, channels=3, weights=None, width=None):
    """Builds a backbone by name, taking raw 0..255 pixels.

    Args:
        name: str. One of `available()`: `"cifar_resnet18"`, `"cifar_resnet34"`,
            `"cifar_resnet50"` or a Keras Applications name such as
            `"mobilenet_v2"`, `"resnet50"`, `"efficientnet_b0"`.
        image_size: int. Height and width of the input images. Defaults to 32.
        channels: int. 3, or 1 for grey images (CIFAR ResNets only).
            Defaults to 3.
        weights: `None` (random initialisation), `"imagenet"` (Keras
            Applications only; downloaded by Keras unless cached in
            `~/.keras/models`) or the path of a weights file. Defaults to `None`.
        width: int, optional. Channels of the first stage of a CIFAR ResNet
            (the paper: 64). Only for CIFAR ResNets. Defaults to 64.

    Returns:
        A functional `keras.Model` without classifier, from raw pixels of shape
        `(image_size, image_size, channels)` to its last feature map.

    Example:
    ```python
    backbone = keras_scan.backbones.registry.build_backbone("mobilenet_v2", 96)
    model = keras_scan.build(backbone, num_classes=10)
    ```
    """
    _check_name(name)
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or image_size < min_image_size(name)
    ):
        raise ValueError(
            f"`image_size` must be an int >= {min_image_size(name)} for backbone "
            f"{name!r}. Received: image_size={image_size!r}"
        )
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    shape = (image_size, image_size, channels)
    if name in CIFAR_RESNETS:
        return _build_cifar_resnet(name, shape, weights, width)
    if width is not None:
        raise ValueError(
            "`width` only applies to the CIFAR ResNets (cifar_resnet18/34/50); "
            f"Keras Applications have fixed widths. Received: width={width!r} "
            f"with backbone={name!r}"
        )
    if channels != 3:
        raise ValueError(
            f"Keras Applications backbones take RGB images: `channels` must be 3. "
            f"Received: channels={channels} with backbone={name!r}"
        )
    return _build_application(name, shape, weights)


def _build_cifar_resnet(name, shape, weights, width):
    width = 64 if width is None else width
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int. Received: width={width!r}")
    if weights == "imagenet":
        raise ValueError(
            "There are no pretrained ImageNet weights for the CIFAR ResNets: "
            "`weights` must be None or the path of a weights file. Received: "
            f"weights={weights!r} with backbone={name!r}"
        )
    model = cifar_resnet(CIFAR_RESNETS[name], width=width, input_shape=shape, name=name)
    if weights is not None:
        _load_weights_file(model, weights, name)
    return model


def _load_weights_file(model, weights, name):
    import os

    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"`weights` must be None, 'imagenet' or an existing weights file. "
            f"Received: weights={weights!r} (no such file) with backbone={name!r}"
        )
    model.load_weights(weights)


def _build_application(name, shape, weights):
    spec = APPLICATIONS[name]
    constructor = getattr(keras.applications, spec.constructor)
    inputs = keras.Input(shape=shape, name="image")
    x = apply_preprocessing(spec.preprocessing, inputs)
    kwargs = dict(include_top=False, input_shape=shape, input_tensor=x)
    if spec.self_preprocessing:
        kwargs["include_preprocessing"] = True
    try:
        model = constructor(weights=weights, **kwargs)
    except ValueError as e:
        raise ValueError(
            f"Cannot build backbone {name!r} (keras.applications."
            f"{spec.constructor}) for image_size={shape[0]}, weights={weights!r}: {e}"
        ) from None
    except Exception as e:  # e.g. no network to download "imagenet" weights
        if weights is None:
            raise
        raise FileNotFoundError(
            f"Cannot load weights={weights!r} for backbone {name!r}: {e}. ImageNet "
            "weights are downloaded by Keras into ~/.keras/models on first use; "
            "on a machine without internet copy the file there first."
        ) from None
    return model
