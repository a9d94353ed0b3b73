"""The SCAN shallow classifier (exit head)."""

import keras
from keras import layers, ops

HEADS = ("scan", "sepconv", "lite", "linear")


def _downsample_steps(k):
    """(kernel size, stride) of the depthwise convs that reduce by k: 3x3/2
    per factor 2, then one r x r/r for an odd remainder r > 1; (3, 1) for k 1."""
    steps = []
    while k > 1 and k % 2 == 0:
        steps.append((3, 2))
        k //= 2
    if k > 1:
        steps.append((k, k))
    return steps or [(3, 1)]


@keras.saving.register_keras_serializable(package="keras_scan")
class ShallowClassifier(keras.layers.Layer):
    """Exit head: features of a backbone section -> (pre-logit features, logits).

    Variants:
    - `"scan"` (the paper's bottleneck): 1x1 conv to `feature_dim // 4`,
      k x k conv with stride k down to the final stage's resolution, 1x1 conv
      up to `feature_dim`, each with BN + ReLU; global average pooling; dense.
    - `"sepconv"`: the same with the k x k conv depthwise (much cheaper).
    - `"lite"` (downsample before widening): down to the final resolution
      in steps of a 3x3 depthwise conv with stride 2 (one per factor 2 of k;
      an odd remainder r is one r x r depthwise conv with stride r), each
      followed by a 1x1 conv that doubles the channels (at most
      `feature_dim // bottleneck_ratio`); a 1x1 conv to that width if not
      reached; global average pooling, then dense `feature_dim` (the
      pre-logit features) and the classifier. Each conv and the dense have
      BN + ReLU. Nothing but the
      depthwise conv touches the tap's resolution, so its cost is a small
      fraction of a backbone stage on any backbone, in MACs and on LiteRT
      (3x3 depthwise convs run on LiteRT's fast kernels; a k x k one with
      k = 8 measured 20x slower than three 3x3 ones).
    - `"linear"`: global average pooling and dense only; its features have
      the tap's width, so no feature (hint) loss applies to it unless that
      width equals `feature_dim`.

    Args:
        num_classes: int. Number of classes.
        feature_dim: int. Width of the final exit's pre-logit features; the
            `"scan"`, `"sepconv"` and `"lite"` heads project to it. Ignored by `"linear"`.
        stride: int. Spatial reduction k from the tap to the final feature
            map (`tap height // final height`, at least 1).
        head: str. One of `"scan"`, `"sepconv"`, `"lite"`, `"linear"`. Defaults to
            `"scan"`.
        bottleneck_ratio: int. `feature_dim // bottleneck_ratio` channels in
            the bottleneck. Defaults to 4 (the paper's code).
        bn_momentum: float. Defaults to 0.9.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    head = keras_scan.layers.ShallowClassifier(10, feature_dim=512, stride=8)
    features, logits = head(keras.Input((32, 32, 64)))
    ```
    """

    def __init__(
        self,
        num_classes,
        feature_dim,
        stride,
        head="scan",
        bottleneck_ratio=4,
        bn_momentum=0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        if int(stride) < 1:
            raise ValueError(f"`stride` must be >= 1. Received: stride={stride}")
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.stride = int(stride)
        self.head = head
        self.bottleneck_ratio = int(bottleneck_ratio)
        self.bn_momentum = bn_momentum

    def _conv_bn(self, kind, filters, kernel_size, strides, name):
        if kind == "depthwise":
            conv = layers.DepthwiseConv2D(
                kernel_size,
                strides=strides,
                padding="same",
                use_bias=False,
                depthwise_initializer="he_normal",
                name=name,
            )
        else:
            conv = layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=name,
            )
        return [
            conv,
            layers.BatchNormalization(momentum=self.bn_momentum, name=f"{name}_bn"),
        ]

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "`ShallowClassifier` expects (batch, height, width, channels) "
                f"features. Received: input_shape={input_shape}"
            )
        mid = max(1, self.feature_dim // self.bottleneck_ratio)
        k = self.stride
        self.blocks = []
        if self.head == "scan":
            self.blocks = [
                self._conv_bn("conv", mid, 1, 1, "reduce"),
                self._conv_bn("conv", mid, k, k, "downsample"),
                self._conv_bn("conv", self.feature_dim, 1, 1, "expand"),
            ]
        elif self.head == "sepconv":
            self.blocks = [
                self._conv_bn("conv", mid, 1, 1, "reduce"),
                self._conv_bn(
                    "depthwise", mid, max(k, 3) if k > 1 else 3, k, "downsample"
                ),
                self._conv_bn("conv", self.feature_dim, 1, 1, "expand"),
            ]
        elif self.head == "lite":
            channels = int(input_shape[-1])
            self.blocks = []
            for i, (size, step) in enumerate(_downsample_steps(k)):
                channels = min(2 * channels, mid)
                self.blocks += [
                    self._conv_bn("depthwise", None, size, step, f"downsample_{i}"),
                    self._conv_bn("conv", channels, 1, 1, f"mix_{i}"),
                ]
            if channels != mid:
                self.blocks.append(self._conv_bn("conv", mid, 1, 1, "reduce"))
        shape = tuple(input_shape)
        for conv, bn in self.blocks:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            bn.build(shape)
        self.pool = layers.GlobalAveragePooling2D(name="pool")
        shape = (shape[0], shape[-1])
        self.project = []
        if self.head == "lite":
            dense = layers.Dense(
                self.feature_dim,
                use_bias=False,
                kernel_initializer="he_normal",
                name="project",
            )
            bn = layers.BatchNormalization(momentum=self.bn_momentum, name="project_bn")
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            bn.build(shape)
            self.project = [dense, bn]
        self.classifier = layers.Dense(self.num_classes, name="logits")
        self.classifier.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for conv, bn in self.blocks:
            x = ops.relu(bn(conv(x), training=training))
        features = self.pool(x)
        if self.project:
            dense, bn = self.project
            features = ops.relu(bn(dense(features), training=training))
        return features, self.classifier(features)

    def compute_macs(self, input_shapes):
        """MACs (batch 1) for `keras_scan.cost`: each conv + BN + ReLU, pool, dense."""
        from keras_scan.cost import chain_macs

        steps = []
        for conv, bn in self.blocks:
            steps += [conv, bn, "elementwise"]
        steps.append(self.pool)
        if self.project:
            steps += [*self.project, "elementwise"]
        return chain_macs(steps + [self.classifier], tuple(input_shapes[0]))

    def compute_output_shape(self, input_shape):
        width = input_shape[-1] if self.head == "linear" else self.feature_dim
        return (input_shape[0], width), (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "feature_dim": self.feature_dim,
                "stride": self.stride,
                "head": self.head,
                "bottleneck_ratio": self.bottleneck_ratio,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
