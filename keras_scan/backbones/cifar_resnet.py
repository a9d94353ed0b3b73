"""CIFAR-style ResNets (the SCAN paper's backbones).

Keras Applications only ship ImageNet ResNets, whose 7x7/2 stem and max-pool
shrink a 32x32 image to 8x8 before the first block. The CIFAR variant keeps a
3x3 stride-1 stem, no max-pool and four stages of widths
``width * (1, 2, 4, 8)`` at strides 1, 2, 2, 2 (He et al. 2016; the SCAN
paper's ResNet18/34/50).
"""

import keras
from keras import layers

_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


def _conv_bn(
    x, filters, kernel_size, strides, name, bn_momentum, relu=True, gamma_zero=False
):
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(
        momentum=bn_momentum,
        epsilon=1e-5,
        gamma_initializer="zeros" if gamma_zero else "ones",
        name=f"{name}_bn",
    )(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def _block(x, kind, filters, strides, name, bn_momentum, zero_init_residual):
    expansion = 4 if kind == "bottleneck" else 1
    out_filters = filters * expansion
    shortcut = x
    if strides != 1 or x.shape[-1] != out_filters:
        shortcut = _conv_bn(
            x, out_filters, 1, strides, f"{name}_0", bn_momentum, relu=False
        )
    if kind == "basic":
        y = _conv_bn(x, filters, 3, strides, f"{name}_1", bn_momentum)
        y = _conv_bn(
            y,
            filters,
            3,
            1,
            f"{name}_2",
            bn_momentum,
            relu=False,
            gamma_zero=zero_init_residual,
        )
    else:
        y = _conv_bn(x, filters, 1, 1, f"{name}_1", bn_momentum)
        y = _conv_bn(y, filters, 3, strides, f"{name}_2", bn_momentum)
        y = _conv_bn(
            y,
            out_filters,
            1,
            1,
            f"{name}_3",
            bn_momentum,
            relu=False,
            gamma_zero=zero_init_residual,
        )
    x = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(x)


def cifar_resnet(
    depth=18,
    width=64,
    input_shape=(32, 32, 3),
    num_classes=None,
    rescale=True,
    bn_momentum=0.9,
    zero_init_residual=False,
    name=None,
):
    """A CIFAR-style ResNet as a functional Keras model.

    Block outputs are named ``stage{s}_block{b}_out`` (stable names, good exit
    taps); the last stage's last block output is the feature map.

    Args:
        depth: int. 18, 34 (basic blocks) or 50 (bottleneck blocks).
            Defaults to 18.
        width: int. Channels of the first stage; the stages have
            `width * (1, 2, 4, 8)` (times 4 for bottlenecks). Defaults to 64,
            the paper's width; use 16 for quick tests.
        input_shape: tuple. `(height, width, channels)`. Defaults to
            `(32, 32, 3)`.
        num_classes: int or `None`. With an int, add global average pooling
            and a `Dense(num_classes)` (logits) named `"predictions"`;
            with `None`, the model ends at the feature map. Defaults to `None`.
        rescale: bool. Prepend `Rescaling(1/255)`, so the model takes raw
            0..255 pixels like every keras_scan pipeline. Defaults to `True`.
        bn_momentum: float. Batch-norm momentum. Defaults to 0.9.
        zero_init_residual: bool. Initialise the last batch-norm gamma of each
            residual branch to zero (each block starts as the identity).
            Defaults to `False`.
        name: str. Model name. Defaults to `"cifar_resnet{depth}"`.

    Example:
    ```python
    backbone = keras_scan.backbones.cifar_resnet(depth=18, input_shape=(32, 32, 3))
    model = keras_scan.build(backbone, num_classes=10)
    ```

    Reference: He et al., "Deep Residual Learning for Image Recognition", 2016.
    """
    if depth not in _DEPTHS:
        raise ValueError(
            f"`depth` must be one of {sorted(_DEPTHS)}. Received: depth={depth}"
        )
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int. Received: width={width}")
    if len(tuple(input_shape)) != 3 or min(input_shape[:2]) < 8:
        raise ValueError(
            "`input_shape` must be (height, width, channels) with height and "
            f"width >= 8. Received: input_shape={input_shape}"
        )
    kind, blocks = _DEPTHS[depth]
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs) if rescale else inputs
    x = _conv_bn(x, width, 3, 1, "stem", bn_momentum)
    for stage, num_blocks in enumerate(blocks):
        for block in range(num_blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _block(
                x,
                kind,
                width * 2**stage,
                strides,
                f"stage{stage + 1}_block{block + 1}",
                bn_momentum,
                zero_init_residual,
            )
    if num_classes is not None:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(num_classes, name="predictions")(x)
    return keras.Model(inputs, x, name=name or f"cifar_resnet{depth}")
