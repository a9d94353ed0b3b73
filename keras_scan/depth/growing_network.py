"""`GrowingNetwork`: truncated models of one backbone, sharing one graph.

All depths share one set of weights (one functional graph), so expanding from
d to d + 1 keeps the weights of blocks 1..d exactly; each new block starts
near the identity (`keras_scan.depth.blocks`).

Classifier at each depth (SCAN's idea). `head="scan"` (default) uses
`keras_scan.layers.ShallowClassifier`, SCAN's exit head, as the temporary
classifier; `head="dense"` is the backbone's own top (global average pooling +
`Dense`). Measured on Fashion-MNIST (1,800 train / 200 val images, 32x32,
cifar_resnet18 width 8, SGD 0.05, 3 epochs at a fixed depth): after 1 block
the exit head reaches 0.66 validation accuracy, pooling + Dense 0.15 (after 2
blocks 0.645 vs 0.18): pooling 8 full-resolution channels throws the spatial
layout away, the exit head's strided convolution keeps it. A whole growth
(target 0.8, at most 2 epochs per depth, patience 1) ended at full depth with
0.765 val / 0.746 test accuracy with the exit head (0.605 / 0.602 when each
stage's head started fresh instead of transferred) and 0.605 / 0.609 with
pooling + Dense. The exit head costs parameters and MACs of its own, which the
report counts in the chosen model.

Warm start of the classifier. Within a stage the classifier is reused, so the
outputs are exactly unchanged right after the expansion. At a stage boundary
the width changes, so a new classifier is needed, started from the previous
one: with `head="dense"` a `Dense` with zero rows for the new channels; with
`head="scan"` the previous stage's exit head with zero input rows and its
strided kernel folded to the new stride (`_transfer_scan_head`); `"sepconv"`
heads start fresh.
"""

import keras
import numpy as np

from keras_scan import graph
from keras_scan.backbones import taps as taps_lib
from keras_scan.checks import check_int
from keras_scan.depth.blocks import residual_blocks, warm_start_block
from keras_scan.layers import ShallowClassifier

__all__ = ["HEADS", "GrowingNetwork"]

HEADS = ("dense", "scan", "sepconv")


def _transfer_scan_head(old, new):
    """Starts the `"scan"` head of a new stage from the previous stage's head.

    At a stage boundary the new block's output starts as the previous
    features subsampled by 2 with zero channels appended (identity
    projection, zero residual branch). The 1x1 reduce conv and every
    per-pixel op commute with that subsampling, so the new head copies the
    old one (zero rows for the new channels) and folds each r x r group of
    taps of the old k x k strided kernel into one tap of its (k / r) x
    (k / r) kernel: exact where the reduced features are constant over r x r
    cells, close otherwise.
    """
    ratio = old.stride // new.stride
    if ratio < 1 or old.stride % new.stride or len(old.blocks) != len(new.blocks):
        return False
    (old_reduce, old_reduce_bn), (old_down, old_down_bn), old_expand = old.blocks
    (new_reduce, new_reduce_bn), (new_down, new_down_bn), new_expand = new.blocks
    kernel = np.asarray(old_reduce.kernel)
    padded = np.zeros(tuple(new_reduce.kernel.shape), "float32")
    if padded.shape[2] < kernel.shape[2]:
        return False
    padded[:, :, : kernel.shape[2]] = kernel
    new_reduce.kernel.assign(padded)
    k = np.asarray(old_down.kernel)
    kk, _, c_in, c_out = k.shape
    folded = k.reshape(kk // ratio, ratio, kk // ratio, ratio, c_in, c_out).sum((1, 3))
    new_down.kernel.assign(folded)
    for src, dst in (
        (old_reduce_bn, new_reduce_bn),
        (old_down_bn, new_down_bn),
        (old_expand[0], new_expand[0]),
        (old_expand[1], new_expand[1]),
        (old.classifier, new.classifier),
    ):
        dst.set_weights(src.get_weights())
    return True


class GrowingNetwork:
    """A backbone trained block by block: truncated models sharing one graph.

    `model(d)` is `image -> logits` for the stem, the first `d` residual
    blocks and a classifier (an exit head, or pooling + `Dense`). All depths share the
    backbone's layers, so training at depth d and then asking for depth d + 1
    carries blocks 1..d over exactly. One classifier per resolution stage:
    reused while the width stays, a new one at a stage boundary (see the
    module docstring for how it starts).

    Args:
        backbone: a single-input functional `keras.Model` (e.g.
            `make_backbone("cifar_resnet18", (32, 32, 3))`).
        num_classes: int. Number of classes (>= 2).
        head: str. The classifier at each depth: `"scan"` / `"sepconv"` (a
            `keras_scan.layers.ShallowClassifier` exit head per stage, SCAN's
            idea) or `"dense"` (global average pooling + `Dense`, the
            backbone's own top). Defaults to `"scan"`: on tiny Fashion-MNIST
            runs a shallow prefix learns far better through the exit head
            (see the module docstring).
        blocks: optional list of block-output layer names; see
            `residual_blocks`. Defaults to `None`.
        warm_start: bool. Make every block start near the identity (zero
            last gamma of each residual branch, identity projection
            shortcuts). Defaults to `True`.

    Example:
    ```python
    backbone = keras_scan.depth.make_backbone("cifar_resnet18", (32, 32, 3), width=16)
    net = keras_scan.depth.GrowingNetwork(backbone, num_classes=10)
    shallow = net.model(1)   # stem + stage1_block1 + classifier
    deeper = net.model(2)    # same weights, one more block
    ```
    """

    def __init__(
        self, backbone, num_classes, head="scan", blocks=None, warm_start=True
    ):
        taps_lib.check_functional(backbone, "backbone")
        check_int("num_classes", num_classes, 2)
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.head = head
        self.blocks = residual_blocks(backbone, blocks)
        self.warm_start = bool(warm_start)
        self.warm_started = []
        if warm_start:
            for tap in self.blocks:
                self.warm_started.append(
                    warm_start_block(backbone.inputs[0], tap) or {}
                )
        self._final_spatial = taps_lib.feature_map(backbone).spatial
        self._feature_dim = int(taps_lib.feature_map(backbone).channels)
        # Classifier stages: a new one whenever resolution or width changes.
        self._stage_of = []
        last, stage = None, -1
        for tap in self.blocks:
            key = (tap.spatial, tap.channels)
            if key != last:
                stage, last = stage + 1, key
            self._stage_of.append(stage)
        self._classifiers = {}
        self._models = {}

    # ------------------------------------------------------------------ info
    @property
    def num_blocks(self):
        """Number of residual blocks (the full depth)."""
        return len(self.blocks)

    @property
    def block_names(self):
        """Layer names of the block outputs, shallowest first."""
        return [t.name for t in self.blocks]

    def stage_of(self, depth):
        """Index of the classifier stage (resolution + width) at `depth`."""
        self._check_depth(depth)
        return self._stage_of[depth - 1]

    def _check_depth(self, depth):
        if (
            isinstance(depth, bool)
            or not isinstance(depth, (int, np.integer))
            or not 1 <= depth <= self.num_blocks
        ):
            raise ValueError(
                f"`depth` must be an int in [1, {self.num_blocks}] (number of "
                f"residual blocks). Received: depth={depth!r}"
            )

    def block_layers(self, depth):
        """Layers of block `depth` (1-based); depth 0 is the stem."""
        if depth == 0:
            return list(keras.Model(self.backbone.inputs[0], self._prefix(0)).layers)
        self._check_depth(depth)
        inner = {
            id(x)
            for x in keras.Model(
                self.backbone.inputs[0], self._prefix(depth - 1)
            ).layers
        }
        return [
            layer
            for layer in keras.Model(
                self.backbone.inputs[0], self._prefix(depth)
            ).layers
            if id(layer) not in inner
        ]

    def _prefix(self, depth):
        """The tensor after `depth` blocks (depth 0: the input of block 1)."""
        if depth > 0:
            return self.blocks[depth - 1].tensor
        # The stem output: the last cut point before block 1 that forks (feeds
        # the residual branch and the shortcut of block 1).
        uses = graph.tensor_uses(self.backbone)
        points = taps_lib.cut_points(self.backbone)
        before = [
            t
            for t in points
            if t.position < self.blocks[0].position and uses.get(id(t.tensor), 0) > 1
        ]
        return before[-1].tensor if before else self.backbone.inputs[0]

    # ------------------------------------------------------------ classifier
    def _classifier(self, depth):
        stage = self.stage_of(depth)
        if stage in self._classifiers:
            return self._classifiers[stage]
        tap = self.blocks[depth - 1]
        if self.head == "dense":
            layer = keras.layers.Dense(self.num_classes, name=f"grow_logits_{stage}")
            layer.build((None, tap.channels))
            previous = self._classifiers.get(stage - 1)
            if self.warm_start and previous is not None:
                kernel, bias = previous.get_weights()
                padded = np.zeros((tap.channels, self.num_classes), "float32")
                rows = min(kernel.shape[0], tap.channels)
                padded[:rows] = kernel[:rows]
                layer.set_weights([padded, bias])
        else:
            stride = max(1, tap.spatial[0] // self._final_spatial[0])
            layer = ShallowClassifier(
                self.num_classes,
                self._feature_dim,
                stride,
                head=self.head,
                name=f"grow_head_{stage}",
            )
            layer.build((None, *tap.spatial, tap.channels))
            previous = self._classifiers.get(stage - 1)
            if self.warm_start and previous is not None and self.head == "scan":
                _transfer_scan_head(previous, layer)
        self._classifiers[stage] = layer
        return layer

    def model(self, depth):
        """`image -> logits` at `depth` blocks, sharing weights with every depth.

        Args:
            depth: int in [1, num_blocks].

        Returns:
            A functional `keras.Model` (cached: the same object per depth).
        """
        self._check_depth(depth)
        if depth in self._models:
            return self._models[depth]
        x = self._prefix(depth)
        classifier = self._classifier(depth)
        if self.head == "dense":
            pooled = keras.layers.GlobalAveragePooling2D(name=f"grow_pool_d{depth}")(x)
            logits = classifier(pooled)
        else:
            _, logits = classifier(x)
        model = keras.Model(
            self.backbone.inputs[0], logits, name=f"{self.backbone.name}_d{depth}"
        )
        self._models[depth] = model
        return model

    def set_frozen(self, depth):
        """Freezes the stem and blocks 1..depth (0 unfreezes everything)."""
        for layer in self.backbone.layers:
            layer.trainable = True
        if depth > 0:
            for layer in keras.Model(
                self.backbone.inputs[0], self._prefix(depth)
            ).layers:
                layer.trainable = False
