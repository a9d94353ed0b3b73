"""Attention in front of an exit head: the SCAN paper's mask and a channel gate."""

import keras
from keras import layers, ops

KINDS = ("scan", "gate")


@keras.saving.register_keras_serializable(package="keras_scan")
class AttentionModule(keras.layers.Layer):
    """Attention for a shallow exit: the layer returns `features * mask`.

    Only the exit branch sees the masked features; the backbone continues
    unmasked. Kinds:
    - `"scan"` (the paper, Zhang et al. 2019): `conv3x3/2 -> BN -> ReLU ->
      transposed conv4x4/2 -> BN -> sigmoid` gives a mask of the input's
      shape (odd sizes are handled by cropping the upsampled mask). Cheap in
      MACs but slow on LiteRT: a transposed convolution and a sigmoid at the
      tap's full resolution.
    - `"gate"`: a channel gate (squeeze-and-excitation, Hu et al. 2018):
      global average pooling -> 1x1 conv `channels // 4` -> ReLU -> 1x1 conv
      `channels` -> sigmoid, one weight per channel. Its cost is one pass
      over the features, so its latency follows its MACs.

    Args:
        kind: str. `"scan"` or `"gate"`. Defaults to `"scan"`.
        bn_momentum: float. Batch-norm momentum. Defaults to 0.9.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    features = keras.Input((32, 32, 64))
    masked = keras_scan.layers.AttentionModule()(features)
    ```

    Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework
    Towards Compact and Efficient Models", NeurIPS 2019.
    """

    def __init__(self, kind="scan", bn_momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.bn_momentum = bn_momentum

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "`AttentionModule` expects (batch, height, width, channels) "
                f"features. Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        if self.kind == "gate":
            # 1x1 convs, not Dense: Dense on a 4D tensor converts to LiteRT
            # with dynamic-shape ops (SHAPE, GATHER, ...) around the matmul.
            self.pool = layers.GlobalAveragePooling2D(keepdims=True, name="pool")
            self.squeeze = layers.Conv2D(
                max(8, channels // 4), 1, activation="relu", name="squeeze"
            )
            self.excite = layers.Conv2D(
                channels, 1, activation="sigmoid", name="excite"
            )
            pooled = (input_shape[0], 1, 1, channels)
            self.squeeze.build(pooled)
            self.excite.build(self.squeeze.compute_output_shape(pooled))
            return
        self.down = layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name="down",
        )
        self.down_bn = layers.BatchNormalization(
            momentum=self.bn_momentum, name="down_bn"
        )
        self.up = layers.Conv2DTranspose(
            channels,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name="up",
        )
        self.up_bn = layers.BatchNormalization(momentum=self.bn_momentum, name="up_bn")
        self.down.build(input_shape)
        shape = self.down.compute_output_shape(input_shape)
        self.down_bn.build(shape)
        self.up.build(shape)
        self.up_bn.build(self.up.compute_output_shape(shape))

    def call(self, inputs, training=None):
        if self.kind == "gate":
            return inputs * self.excite(self.squeeze(self.pool(inputs)))
        x = self.down(inputs)
        x = ops.relu(self.down_bn(x, training=training))
        x = self.up(x)
        mask = ops.sigmoid(self.up_bn(x, training=training))
        height, width = inputs.shape[1], inputs.shape[2]
        if (mask.shape[1], mask.shape[2]) != (height, width):
            mask = mask[:, :height, :width, :]
        return inputs * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_macs(self, input_shapes):
        """MACs (batch 1) for `keras_scan.cost`: convs, BNs, ReLU, sigmoid, product."""
        from keras_scan.cost import chain_macs

        shape = tuple(input_shapes[0])
        if self.kind == "gate":
            gate = chain_macs([self.pool, self.squeeze, self.excite], shape)
            return gate + chain_macs(["elementwise"], shape)
        down = chain_macs([self.down, self.down_bn, "elementwise"], shape)
        small = self.down.compute_output_shape(shape)
        up = chain_macs([self.up, self.up_bn, "elementwise"], small)
        return down + up + chain_macs(["elementwise"], shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "bn_momentum": self.bn_momentum})
        return config
