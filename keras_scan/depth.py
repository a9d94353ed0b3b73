"""Optimally deep networks: progressive depth expansion, and cutting a SCAN model.

Method: "Optimally Deep Networks -- Adapting Model Depth to Datasets for
Superior Efficiency" (ODN, arXiv 2510.10764): train a deep architecture at a
shallow depth first, add blocks as the earlier ones converge, and stop at the
first depth that reaches a target accuracy, so only the depth the data set
needs is kept. Two ways to get there:

- `grow(backbone, train_data, val_data, target_accuracy)` trains from scratch,
  block by block (`keras-scan grow --backbone ...`).
- `cut_at_exit(scan_model, exit_name)` is the instant version on an already
  trained SCAN model: the shallowest exit that reaches the target on the
  validation split, cut out with its backbone prefix (`keras-scan grow
  --from-run RUN`).

Depth schedule. The unit is a residual block: the blocks are the cut points
of the backbone whose layer name ends in `block<N>_out` (cifar_resnet's
`stage{s}_block{b}_out`, Keras Applications ResNets' `conv{s}_block{b}_out`),
or the layer names passed as `blocks`. The network at depth d is the stem, the
first d blocks and a classifier. All depths share one set of weights (one
functional graph), so expanding from d to d + 1 keeps the weights of blocks
1..d exactly.

Convergence criterion ("the earlier blocks have converged"). The paper does
not publish its exact rule. Here a depth has converged when its validation
accuracy has not improved by more than `min_delta` for `patience` epochs in a
row (Keras `EarlyStopping`'s plateau rule), or after `epochs_per_step` epochs
at that depth. The target is checked after every epoch, so the search stops at
the first epoch that reaches it. Validation accuracy is used because it is the
quantity the target is stated in and is measured anyway; per-block weight or
gradient norms keep moving under SGD noise long after accuracy is flat. When a
depth has converged, its best weights (by validation accuracy) are restored
before the next block is added.

Warm start. Each block starts near the identity, so accuracy does not collapse
at an expansion: the last batch-norm gamma (and beta) of every residual branch
starts at zero (the branch outputs zero and `relu(x + 0) = x` for the
post-ReLU input x), and a 1x1 projection shortcut (the first block of a stage,
where the resolution halves and the width doubles) starts as a channel-padded
identity (kernel `[I, 0]`, gamma 1, beta 0). Within a stage the classifier is
reused, so the outputs are exactly unchanged right after the expansion. At a
stage boundary the width changes, so a new classifier is needed, started from
the previous one: with `head="dense"` a `Dense` with zero rows for the new
channels; with `head="scan"` the previous stage's exit head with zero input
rows and its strided kernel folded to the new stride (`_transfer_scan_head`);
`"sepconv"` heads start fresh. `freeze=True` stops training the stem and the
earlier blocks (they keep their batch-norm statistics).

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

Peak activation memory is estimated from the graph: the ops run one after
another in topological order, a tensor is alive from the op that produces it
until its last consumer has run, and the peak is the largest sum of the sizes
(float32, batch 1) of the tensors alive at once, the input included and the
weights excluded. This is the lower bound an arena planner such as LiteRT's
can reach for a sequential schedule. Composite layers (keras_scan's
`AttentionModule`, `ShallowClassifier`) count only their inputs and outputs.
For CIFAR ResNets the peak sits in the first stage (full resolution), so it
only drops when the chosen depth ends inside that stage; parameters (model
size) are what shrink most.
"""

import math
import os
import re
import tempfile
import time

import keras
import numpy as np

from keras_scan import cost
from keras_scan.backbones import taps as taps_lib
from keras_scan.backbones.cifar_resnet import cifar_resnet
from keras_scan.layers import ShallowClassifier

__all__ = [
    "BACKBONES",
    "HEADS",
    "GrowingNetwork",
    "make_backbone",
    "residual_blocks",
    "grow",
    "cut_at_exit",
    "select_exit",
    "validation_accuracies",
    "model_costs",
    "peak_activation_bytes",
    "model_file_bytes",
    "plot_accuracy_vs_depth",
]

# Backbones `grow` builds by name: name -> cifar_resnet depth.
BACKBONES = {"cifar_resnet18": 18, "cifar_resnet34": 34, "cifar_resnet50": 50}
HEADS = ("dense", "scan", "sepconv")
_BLOCK_NAME = re.compile(r".*block\d+_out$")


# === Argument checks ===


def _check_target(target_accuracy):
    if (
        isinstance(target_accuracy, bool)
        or not isinstance(target_accuracy, (int, float, np.floating, np.integer))
        or not 0 < float(target_accuracy) <= 1
    ):
        raise ValueError(
            "`target_accuracy` must be a number in (0, 1] (a fraction, e.g. 0.92 "
            f"for 92%). Received: target_accuracy={target_accuracy!r}"
        )
    return float(target_accuracy)


def _check_int(name, value, low, allow_none=False):
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"`{name}` must be an int >= {low}{extra}. Received: {name}={value!r}"
        )
    return int(value)


def _check_float(name, value, low, low_open=False):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value))
    ok = ok and (float(value) > low if low_open else float(value) >= low)
    if not ok:
        sign = ">" if low_open else ">="
        raise ValueError(
            f"`{name}` must be a number {sign} {low}. Received: {name}={value!r}"
        )
    return float(value)


# === Backbone and blocks ===


def make_backbone(name, input_shape, width=64):
    """A backbone by name, built for growing (every residual block starts as
    the identity: `zero_init_residual=True`).

    Args:
        name: str. One of `keras_scan.depth.BACKBONES` (`"cifar_resnet18"`,
            `"cifar_resnet34"`, `"cifar_resnet50"`).
        input_shape: tuple. `(height, width, channels)`.
        width: int. Channels of the first stage. Defaults to 64 (the paper).

    Returns:
        A functional `keras.Model` ending at the last feature map.

    Example:
    ```python
    backbone = keras_scan.depth.make_backbone("cifar_resnet18", (32, 32, 3), width=16)
    ```
    """
    if name not in BACKBONES:
        raise ValueError(
            f"`backbone` must be one of {sorted(BACKBONES)} (or a functional "
            f"keras.Model, or a function input_shape -> keras.Model). "
            f"Received: backbone={name!r}"
        )
    return cifar_resnet(
        BACKBONES[name],
        width=width,
        input_shape=tuple(input_shape),
        zero_init_residual=True,
        name=name,
    )


def residual_blocks(backbone, blocks=None):
    """The residual blocks of `backbone`, in order, as `Tap`s (cut points).

    Args:
        backbone: a single-input functional `keras.Model`.
        blocks: optional list of layer names (block outputs, cut points of the
            graph). Defaults to every cut point whose layer name ends in
            `block<N>_out`.

    Returns:
        list of `keras_scan.backbones.Tap`, shallowest first.
    """
    points = taps_lib.cut_points(backbone)
    if blocks is None:
        found = [t for t in points if _BLOCK_NAME.fullmatch(t.name)]
        if not found:
            raise ValueError(
                "`blocks` must be given for this backbone: none of its cut points "
                f"is named like '<...>block<N>_out'. Received: backbone="
                f"{backbone.name!r}. Cut points: {[t.name for t in points][:20]}"
            )
        return found
    if isinstance(blocks, str) or not all(isinstance(b, str) for b in blocks):
        raise TypeError(
            f"`blocks` must be a list of layer names. Received: blocks={blocks!r}"
        )
    by_name = {t.name: t for t in points}
    missing = [b for b in blocks if b not in by_name]
    if missing or not blocks:
        raise ValueError(
            "`blocks` must be cut points of the backbone (block outputs). "
            f"Received: blocks={list(blocks)}; not cut points: {missing}. "
            f"Cut points: {[t.name for t in points][:40]}"
        )
    return sorted((by_name[b] for b in blocks), key=lambda t: t.position)


def _producer(tensor):
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]


def _residual_add(tensor):
    """The merge node (`Add`) a block output comes from, through activations."""
    node = _producer(tensor)
    for _ in range(4):
        op = node.operation
        if isinstance(op, keras.layers.Add) or type(op).__name__ == "Add":
            return node
        if len(node.input_tensors) != 1:
            return None
        node = _producer(node.input_tensors[0])
    return None


def _ancestor_count(model_input, tensor):
    if tensor is model_input:
        return 0
    return len(keras.Model(model_input, tensor).layers)


def _warm_start_block(model_input, tap):
    """Makes one residual block start as (close to) the identity.

    Returns a dict of what was done, or None when the block has no residual
    merge to work on.
    """
    add = _residual_add(tap.tensor)
    if add is None or len(add.input_tensors) != 2:
        return None
    a, b = add.input_tensors
    branch, shortcut = (
        (a, b)
        if _ancestor_count(model_input, a) >= _ancestor_count(model_input, b)
        else (b, a)
    )
    done = {}
    bn = _producer(branch).operation
    if isinstance(bn, keras.layers.BatchNormalization) and bn.gamma is not None:
        bn.gamma.assign(np.zeros(bn.gamma.shape, bn.gamma.dtype))
        bn.beta.assign(np.zeros(bn.beta.shape, bn.beta.dtype))
        done["zero_gamma"] = bn.name
    sc_node = _producer(shortcut)
    sc_bn = sc_node.operation
    if isinstance(sc_bn, keras.layers.BatchNormalization):
        conv = _producer(sc_node.input_tensors[0]).operation
        if (
            isinstance(conv, keras.layers.Conv2D)
            and tuple(conv.kernel_size) == (1, 1)
            and conv.kernel.shape[3] >= conv.kernel.shape[2]
        ):
            c_in, c_out = conv.kernel.shape[2], conv.kernel.shape[3]
            kernel = np.zeros((1, 1, c_in, c_out), "float32")
            kernel[0, 0, np.arange(c_in), np.arange(c_in)] = 1.0
            conv.kernel.assign(kernel)
            if sc_bn.gamma is not None:
                sc_bn.gamma.assign(np.ones(sc_bn.gamma.shape, "float32"))
                sc_bn.beta.assign(np.zeros(sc_bn.beta.shape, "float32"))
            done["identity_shortcut"] = conv.name
    return done or None


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
        _check_int("num_classes", num_classes, 2)
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
                    _warm_start_block(backbone.inputs[0], tap) or {}
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
        uses = {}
        for node in taps_lib._topological_nodes(self.backbone):
            for t in node.input_tensors:
                uses[id(t)] = uses.get(id(t), 0) + 1
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


# === Costs ===


def peak_activation_bytes(model, bytes_per_element=4):
    """Peak memory of the activations of one forward pass, batch size 1.

    Ops run one after another in topological order; a tensor is alive from the
    op that produces it until its last consumer in the model has run (model
    outputs until the end). The peak is the largest total size of the tensors
    alive at once (the input included, weights excluded). A layer's internal
    temporaries are not seen (composite layers count their inputs and outputs).

    Args:
        model: a functional `keras.Model` with a fixed input size.
        bytes_per_element: int. 4 for float32, 1 for int8. Defaults to 4.

    Returns:
        int. Bytes.
    """
    taps_lib.check_functional(model, "model")
    nodes = taps_lib._topological_nodes(model)
    consumers = {}
    for node in nodes:
        for t in node.input_tensors:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    for t in model.outputs:
        consumers[id(t)] = consumers.get(id(t), 0) + 1

    def size(t):
        return math.prod(int(d) for d in t.shape[1:]) * bytes_per_element

    live, peak = 0, 0
    for node in nodes:
        for t in node.outputs:
            live += size(t)
        peak = max(peak, live)
        for t in node.input_tensors:
            consumers[id(t)] -= 1
            if consumers[id(t)] == 0:
                live -= size(t)
        for t in node.outputs:
            if consumers.get(id(t), 0) == 0:
                live -= size(t)
    return int(peak)


def model_file_bytes(model):
    """Size in bytes of `model` saved as a `.keras` file (no optimizer state)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path, include_optimizer=False)
        return os.path.getsize(path)


def model_costs(model):
    """`{"params", "macs", "file_bytes", "peak_activation_bytes"}` of a model."""
    return {
        "params": int(cost.count_params(model)),
        "macs": int(cost.count_macs(model)),
        "file_bytes": int(model_file_bytes(model)),
        "peak_activation_bytes": int(peak_activation_bytes(model)),
    }


def _compare(chosen, full):
    out = {"chosen": chosen, "full": full, "reduction": {}}
    for key in ("params", "macs", "file_bytes", "peak_activation_bytes"):
        if full.get(key):
            out["reduction"][key] = round(1.0 - chosen[key] / full[key], 6)
    return out


# === Training helpers ===


def _copy_model(model, name=None):
    """An independent copy of a functional model (same graph, copied weights)."""
    config = model.get_config()
    if name is not None:
        config["name"] = name
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _num_examples(split):
    if isinstance(split, (tuple, list)):
        return len(split[0])
    n = int(split.cardinality())
    if n < 0:
        raise ValueError(
            "`train_data` / `val_data` must have a known size (a finite "
            "tf.data.Dataset, not repeated). Received a dataset of unknown cardinality"
        )
    return n


def _check_split(name, split):
    if isinstance(split, (tuple, list)):
        if len(split) != 2:
            raise ValueError(
                f"`{name}` must be (x, y) arrays or an unbatched tf.data.Dataset "
                f"of (image, label). Received: a sequence of length {len(split)}"
            )
        x, y = np.asarray(split[0]), np.asarray(split[1])
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise ValueError(
                f"`{name}` must be non-empty images (N, H, W, C) with labels (N,). "
                f"Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        return (x, y)
    if hasattr(split, "cardinality") and hasattr(split, "element_spec"):
        return split
    raise TypeError(
        f"`{name}` must be (x, y) numpy arrays or an unbatched tf.data.Dataset of "
        f"(image, label). Received: {name} of type {type(split).__name__}"
    )


def _batched(split, batch_size, training, augment, seed):
    from keras_scan import data

    if isinstance(split, tuple):
        return data.NumpyDataset(
            split[0],
            split[1],
            batch_size,
            training=training,
            augment=augment,
            seed=seed,
        )
    return data.make_tf_dataset(
        split, batch_size, training=training, augment=augment, seed=seed
    )


def _image_shape(split):
    if isinstance(split, tuple):
        return tuple(int(d) for d in split[0].shape[1:])
    spec = split.element_spec[0]
    return tuple(int(d) for d in spec.shape[-3:])


def _resolve_backbone(backbone, input_shape, width):
    if isinstance(backbone, str):
        return make_backbone(backbone, input_shape, width=width), backbone
    if isinstance(backbone, keras.Model):
        return backbone, backbone.name
    if callable(backbone):
        model = backbone(tuple(input_shape))
        if not isinstance(model, keras.Model):
            raise TypeError(
                "`backbone` as a function must return a functional keras.Model. "
                f"Received: {backbone!r} returned {type(model).__name__}"
            )
        return model, model.name
    raise TypeError(
        f"`backbone` must be one of {sorted(BACKBONES)}, a functional keras.Model "
        f"or a function input_shape -> keras.Model. Received: backbone={backbone!r}"
    )


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )


def _accuracy(model, batches):
    return float(model.evaluate(batches, verbose=0, return_dict=True)["accuracy"])


def grow(
    backbone,
    train_data,
    val_data,
    target_accuracy,
    *,
    num_classes=None,
    width=64,
    head="scan",
    epochs_per_step=5,
    patience=2,
    min_delta=0.002,
    max_epochs=None,
    freeze=False,
    start_depth=1,
    depth_step=1,
    batch_size=128,
    learning_rate=0.05,
    augment=False,
    seed=0,
    test_data=None,
    blocks=None,
    baseline_epochs=None,
    log=print,
):
    """Finds the optimal depth of a backbone by progressive depth expansion (ODN).

    Trains the network at `start_depth` blocks; when the validation accuracy
    has converged (no gain above `min_delta` for `patience` epochs, or
    `epochs_per_step` epochs) adds `depth_step` blocks (near identity, earlier
    weights carried over) and goes on, until the validation accuracy reaches
    `target_accuracy` (checked every epoch) or the full depth has converged.

    Args:
        backbone: a name from `keras_scan.depth.BACKBONES` (built with
            `width`), a functional `keras.Model` whose residual block outputs
            are cut points (warm-started and trained in place), or a function
            `input_shape -> keras.Model`.
        train_data: `(x, y)` numpy arrays (x float32 0..255 NHWC, y int) or an
            unbatched `tf.data.Dataset` of `(image, label)` (a
            `keras_scan.data.DataSplits` member).
        val_data: same; the target is checked on it.
        target_accuracy: float in (0, 1]. Validation accuracy to reach.
        num_classes: int. Defaults to `max(y) + 1` of numpy `train_data`
            (required for a tf.data.Dataset).
        width: int. First-stage width of a backbone built by name. Defaults to 64.
        head: str. The classifier at each depth: `"scan"` (SCAN's exit
            head), `"sepconv"` or `"dense"` (pooling + Dense); see
            `GrowingNetwork`. Defaults to `"scan"`.
        epochs_per_step: int. Most epochs at one depth. Defaults to 5.
        patience: int. Epochs without a gain above `min_delta` that count as
            converged. Defaults to 2.
        min_delta: float. Smallest validation-accuracy gain that counts.
            Defaults to 0.002.
        max_epochs: int or None. Budget of epochs over all depths; the search
            stops (at the current depth) when it is spent. Defaults to None.
        freeze: bool. Freeze the stem and converged blocks; only the new
            blocks and the classifier train. Defaults to `False`.
        start_depth: int. Blocks to start with. Defaults to 1.
        depth_step: int. Blocks added per expansion. Defaults to 1.
        batch_size: int. Defaults to 128.
        learning_rate: float. SGD (momentum 0.9, Nesterov) learning rate, a
            fresh optimizer at each depth. Defaults to 0.05.
        augment: bool. Random crop + flip of training images. Defaults to `False`.
        seed: int. Seeds weights and data order. Defaults to 0.
        test_data: optional split like `val_data`: the chosen model's test
            accuracy goes into the report.
        blocks: optional list of block-output layer names. Defaults to `None`.
        baseline_epochs: int or None. Also train the full-depth network
            (pooling + Dense, standard initialisation, same data and
            optimizer) from scratch, epoch by epoch, until its validation
            accuracy reaches the grown model's (at most this many epochs),
            and report its training cost next to the growth's
            (`report["baseline"]`). Defaults to None (no baseline).
        log: callable taking a str, or None. Progress lines. Defaults to `print`.

    Returns:
        `(model, report)`: `model` a plain functional `keras.Model` `image ->
        logits` at the chosen depth (independent weights, not compiled);
        `report` a JSON-ready dict (chosen depth, per-depth history, training
        cost, params / MACs / file size / peak activation memory against the
        full depth, test accuracy).

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32, limit=4000)
    model, report = keras_scan.grow(
        "cifar_resnet18", splits.train, splits.val, target_accuracy=0.85, width=16)
    report["depth"], report["reduction"]["macs"]
    ```

    Reference: "Optimally Deep Networks -- Adapting Model Depth to Datasets
    for Superior Efficiency", arXiv 2510.10764.
    """
    target = _check_target(target_accuracy)
    train_data = _check_split("train_data", train_data)
    val_data = _check_split("val_data", val_data)
    if test_data is not None:
        test_data = _check_split("test_data", test_data)
    epochs_per_step = _check_int("epochs_per_step", epochs_per_step, 1)
    patience = _check_int("patience", patience, 1)
    min_delta = _check_float("min_delta", min_delta, 0.0)
    max_epochs = _check_int("max_epochs", max_epochs, 1, allow_none=True)
    baseline_epochs = _check_int("baseline_epochs", baseline_epochs, 1, allow_none=True)
    depth_step = _check_int("depth_step", depth_step, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    learning_rate = _check_float("learning_rate", learning_rate, 0.0, low_open=True)
    width = _check_int("width", width, 1)
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
    if num_classes is None:
        if not isinstance(train_data, tuple):
            raise ValueError(
                "`num_classes` must be given when `train_data` is a tf.data.Dataset. "
                "Received: num_classes=None"
            )
        num_classes = int(np.max(train_data[1])) + 1
    say = log or (lambda _: None)

    keras.utils.set_random_seed(seed)
    net_backbone, backbone_name = _resolve_backbone(
        backbone, _image_shape(train_data), width
    )
    net = GrowingNetwork(net_backbone, num_classes, head=head, blocks=blocks)
    start_depth = _check_int("start_depth", start_depth, 1)
    if start_depth > net.num_blocks:
        raise ValueError(
            f"`start_depth` must be in [1, {net.num_blocks}] (blocks of "
            f"{backbone_name!r}). Received: start_depth={start_depth}"
        )
    depths = list(range(start_depth, net.num_blocks + 1, depth_step))
    if depths[-1] != net.num_blocks:
        depths.append(net.num_blocks)

    n_train = _num_examples(train_data)
    n_val = _num_examples(val_data)
    train_batches = _batched(train_data, batch_size, True, augment, seed)
    val_batches = _batched(val_data, max(batch_size, 256), False, False, seed)

    say(
        f"grow: {backbone_name}, {net.num_blocks} blocks, target val accuracy "
        f"{target:.4f}; {n_train} train / {n_val} val images; head={head}, "
        f"freeze={freeze}"
    )
    steps = []
    total_epochs = 0
    train_macs = 0
    reached = False
    stopped = "full_depth"
    started = time.time()
    depth = depths[0]
    for depth in depths:
        if max_epochs is not None and total_epochs >= max_epochs:
            stopped = "max_epochs"
            depth = steps[-1]["depth"]
            break
        model = net.model(depth)
        net.set_frozen(steps[-1]["depth"] if freeze and steps else 0)
        _compile(model, learning_rate)
        macs = cost.count_macs(model)
        at_expansion = _accuracy(model, val_batches)
        # The state at expansion is a candidate too: a depth never ends worse
        # than it started.
        history, best, best_weights, wait = [], at_expansion, model.get_weights(), 0
        epoch = 0
        while epoch < epochs_per_step:
            if max_epochs is not None and total_epochs >= max_epochs:
                stopped = "max_epochs"
                break
            model.fit(train_batches, epochs=1, verbose=0)
            epoch += 1
            total_epochs += 1
            train_macs += 3 * macs * n_train
            acc = _accuracy(model, val_batches)
            history.append(round(acc, 6))
            if acc > best + min_delta:
                best, best_weights, wait = acc, model.get_weights(), 0
            else:
                wait += 1
                if acc > best:
                    best, best_weights = acc, model.get_weights()
            if acc >= target:
                reached = True
                stopped = "target"
                break
            if wait >= patience:
                break
        if not reached:
            model.set_weights(best_weights)
        step = {
            "depth": depth,
            "block": net.block_names[depth - 1],
            "stage": net.stage_of(depth),
            "epochs": epoch,
            "val_accuracy_at_expansion": round(at_expansion, 6),
            "val_accuracy": round(history[-1] if reached else best, 6),
            "val_history": history,
            "macs": int(macs),
            "params": int(cost.count_params(model)),
        }
        steps.append(step)
        say(
            f"  depth {depth:2d}/{net.num_blocks} ({step['block']}): "
            f"{epoch} epoch(s), val accuracy {at_expansion:.4f} at expansion -> "
            f"{step['val_accuracy']:.4f}" + ("  target reached" if reached else "")
        )
        if reached or stopped == "max_epochs":
            break
    net.set_frozen(0)
    chosen = net.model(depth)
    final = _copy_model(chosen, name=f"odn_{backbone_name}_d{depth}")

    # The full-depth model a user would train instead: all blocks, pooling, Dense.
    full_model = GrowingNetwork(
        net_backbone, num_classes, head="dense", blocks=blocks, warm_start=False
    ).model(net.num_blocks)
    best_step = max(steps, key=lambda s: s["val_accuracy"])

    val_accuracy = steps[-1]["val_accuracy"]
    report = {
        "mode": "grow",
        "backbone": backbone_name,
        "target_accuracy": target,
        "reached": reached,
        "stopped_because": stopped,
        "depth": int(depth),
        "num_blocks": net.num_blocks,
        "block": net.block_names[depth - 1],
        "blocks": net.block_names,
        "head": head,
        "freeze": bool(freeze),
        "val_accuracy": val_accuracy,
        "best_depth": best_step["depth"],
        "best_val_accuracy": best_step["val_accuracy"],
        "criterion": {
            "rule": "validation-accuracy plateau",
            "patience": patience,
            "min_delta": min_delta,
            "epochs_per_step": epochs_per_step,
            "max_epochs": max_epochs,
        },
        "steps": steps,
        "epochs": total_epochs,
        "train_images": int(total_epochs * n_train),
        "train_macs_estimate": int(train_macs),
        "val_images_evaluated": int(n_val * (total_epochs + len(steps))),
        "seconds": round(time.time() - started, 1),
        **_compare(model_costs(final), model_costs(full_model)),
    }
    if test_data is not None:
        report["test_accuracy"] = round(_plain_accuracy(final, test_data), 6)
    if baseline_epochs is not None:
        # The same accuracy: the target when it was reached, else what the
        # growth ended with.
        baseline_target = target if reached else report["val_accuracy"]
        say(
            f"baseline: the full-depth network from scratch, until val accuracy "
            f">= {baseline_target:.4f} (at most {baseline_epochs} epochs)"
        )
        report["baseline"] = _full_depth_baseline(
            backbone,
            net_backbone,
            width,
            num_classes,
            blocks,
            # A fresh pipeline with the same seed: the baseline sees the data
            # in the order the growth saw it first.
            _batched(train_data, batch_size, True, augment, seed),
            val_batches,
            n_train,
            baseline_target,
            baseline_epochs,
            learning_rate,
            seed,
            test_data,
            say,
        )
        base = report["baseline"]
        report["train_images_vs_baseline"] = round(
            report["train_images"] / max(base["train_images"], 1), 6
        )
        report["train_macs_vs_baseline"] = round(
            report["train_macs_estimate"] / max(base["train_macs_estimate"], 1), 6
        )
    say(_summary(report))
    return final, report


def _full_depth_baseline(
    backbone,
    net_backbone,
    width,
    num_classes,
    blocks,
    train_batches,
    val_batches,
    n_train,
    target,
    max_epochs,
    learning_rate,
    seed,
    test_data,
    say,
):
    """Trains the full-depth network from scratch until `target` val accuracy."""
    keras.utils.set_random_seed(seed)
    shape = tuple(net_backbone.inputs[0].shape[1:])
    if isinstance(backbone, str):
        fresh = cifar_resnet(
            BACKBONES[backbone], width=width, input_shape=shape, name=backbone
        )
    elif isinstance(backbone, keras.Model):
        fresh = keras.models.clone_model(backbone)
    else:
        fresh = backbone(shape)
    net = GrowingNetwork(
        fresh, num_classes, head="dense", blocks=blocks, warm_start=False
    )
    model = net.model(net.num_blocks)
    _compile(model, learning_rate)
    macs = cost.count_macs(model)
    history = []
    reached = False
    started = time.time()
    for _ in range(max_epochs):
        model.fit(train_batches, epochs=1, verbose=0)
        history.append(round(_accuracy(model, val_batches), 6))
        say(f"  baseline epoch {len(history)}: val accuracy {history[-1]:.4f}")
        if history[-1] >= target:
            reached = True
            break
    out = {
        "target_val_accuracy": target,
        "reached": reached,
        "epochs": len(history),
        "train_images": int(len(history) * n_train),
        "train_macs_estimate": int(3 * macs * n_train * len(history)),
        "val_history": history,
        "val_accuracy": history[-1],
        "seconds": round(time.time() - started, 1),
    }
    if test_data is not None:
        out["test_accuracy"] = round(_plain_accuracy(model, test_data), 6)
    return out


def _summary(report):
    red = report["reduction"]
    where = f"depth {report['depth']}/{report['num_blocks']} ({report['block']})"
    if report["mode"] == "from_run":
        where = f"exit {report['exit']} ({report['block']})"
    if report["reached"]:
        head = f"target {report['target_accuracy']:.4f} reached at {where}"
    elif report["stopped_because"] == "max_epochs":
        head = (
            f"epoch budget spent before the target {report['target_accuracy']:.4f}: "
            f"stopped at {where}"
        )
    else:
        head = (
            f"target {report['target_accuracy']:.4f} NOT reached, even at full depth: "
            f"kept {where}"
        )
    lines = [
        head
        + f", val accuracy {report['val_accuracy']:.4f}"
        + (
            f", test accuracy {report['test_accuracy']:.4f}"
            if "test_accuracy" in report
            else ""
        ),
        "  chosen vs full depth: "
        + ", ".join(
            f"{k} {report['chosen'][k]:,} vs {report['full'][k]:,} ({-100 * v:+.1f}%)"
            for k, v in red.items()
        ),
    ]
    if "baseline" in report:
        base = report["baseline"]
        lines.append(
            f"  full depth from scratch: {base['epochs']} epoch(s), "
            f"{base['train_images']:,} images to val accuracy "
            f"{base['val_accuracy']:.4f}"
            + (
                ""
                if base["reached"]
                else f" (never reached {base['target_val_accuracy']:.4f}: its "
                "cost is a lower bound)"
            )
            + f"; growth used {report['train_images_vs_baseline']:.2f}x its "
            f"images, {report['train_macs_vs_baseline']:.2f}x its training MACs"
        )
    if report["mode"] == "grow":
        crit = report["criterion"]
        lines.append(
            f"  trained {report['epochs']} epoch(s), {report['train_images']:,} "
            f"images; a depth counted as converged after {crit['patience']} "
            f"epoch(s) without a val-accuracy gain > {crit['min_delta']} or "
            f"{crit['epochs_per_step']} epochs (the ODN paper's exact rule is not "
            "public; a plateau rule like Keras EarlyStopping)"
        )
    return "\n".join(lines)


# === Cutting a trained SCAN model ===


def cut_at_exit(scan_model, exit_name, copy=True):
    """The backbone prefix and one exit of a SCAN model, as a plain model.

    Args:
        scan_model: a `keras_scan.ScanModel`.
        exit_name: str. One of `scan_model.exit_names` (`"exit_0"`, ...,
            `"final"`).
        copy: bool. `True` gives an independent model with copied weights;
            `False` shares the weights with `scan_model`. Defaults to `True`.

    Returns:
        A functional `keras.Model` `image -> logits` holding only the layers on
        the way to that exit (the deeper blocks and other heads are gone).

    Example:
    ```python
    model = keras.saving.load_model("runs/fm18/model.keras")
    small = keras_scan.cut_at_exit(model, "exit_1")
    small.save("exit_1.keras")
    ```
    """
    from keras_scan.scan_model import ScanModel

    if not isinstance(scan_model, ScanModel):
        raise TypeError(
            "`scan_model` must be a keras_scan.ScanModel (with exits). Received: "
            f"scan_model of type {type(scan_model).__name__}"
        )
    if exit_name not in scan_model.exit_names:
        raise ValueError(
            f"`exit_name` must be one of {scan_model.exit_names}. "
            f"Received: exit_name={exit_name!r}"
        )
    sub = scan_model.exit_model(exit_name)
    name = f"{scan_model.name}_cut_{exit_name}"
    if not copy:
        return keras.Model(sub.inputs, sub.outputs, name=name)
    return _copy_model(sub, name=name)


def select_exit(accuracies, target_accuracy, exit_names=None):
    """The shallowest exit whose accuracy reaches the target.

    Args:
        accuracies: dict exit name -> accuracy (validation split).
        target_accuracy: float in (0, 1].
        exit_names: list of exit names, shallowest first. Defaults to the
            dict's order.

    Returns:
        `(exit_name, reached)`; when no exit reaches the target, the deepest
        exit and `False`.
    """
    target = _check_target(target_accuracy)
    names = list(exit_names or accuracies)
    missing = [n for n in names if n not in accuracies]
    if missing:
        raise ValueError(
            f"`accuracies` must give every exit {names}; missing {missing}. "
            f"Received: accuracies={accuracies!r}"
        )
    for name in names:
        if float(accuracies[name]) >= target:
            return name, True
    return names[-1], False


def _accuracy_table(entries, exit_names):
    """Per-exit accuracy from one eval.json layout, or None."""
    if isinstance(entries, list):
        out = {}
        for e in entries:
            if isinstance(e, dict) and "name" in e and "accuracy" in e:
                out[e["name"]] = float(e["accuracy"])
        entries = out
    if not isinstance(entries, dict):
        return None
    out = {}
    for name in exit_names:
        value = entries.get(name)
        if isinstance(value, dict):
            value = value.get("accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out if len(out) == len(exit_names) else None


def validation_accuracies(eval_payload, exit_names):
    """Per-exit validation accuracy read from an `eval.json` payload, or None.

    Only numbers that are stated to be on the validation split count (the
    exit must be chosen on validation data, never on test). Understood
    layouts: a top-level `"split"` of `"val"`/`"validation"` with the
    accuracies under `"exits"` (a list of `{"name", "accuracy"}` or a dict
    name -> accuracy or name -> `{"accuracy"}`) or `"accuracy"` (a dict), or
    the same under a top-level `"val"` / `"validation"` key.

    Args:
        eval_payload: the parsed JSON.
        exit_names: list of exit names that must all be present.

    Returns:
        dict exit name -> accuracy, or None.
    """
    if not isinstance(eval_payload, dict):
        return None
    candidates = []
    if str(eval_payload.get("split", "")).lower() in ("val", "validation"):
        candidates.append(eval_payload)
    for key in ("val", "validation"):
        if isinstance(eval_payload.get(key), dict):
            candidates.append(eval_payload[key])
    for payload in candidates:
        for key in ("exits", "accuracy", "per_exit"):
            table = _accuracy_table(payload.get(key), exit_names)
            if table is not None:
                return table
    return None


def _iterate(batches):
    if isinstance(batches, keras.utils.PyDataset):
        for i in range(len(batches)):
            yield batches[i]
    else:
        yield from batches


def _scan_accuracies(model, split, batch_size=256):
    """Validation accuracy of every exit of a ScanModel, one pass over `split`."""
    from keras_scan import data

    if isinstance(split, tuple):
        batches = data.NumpyDataset(split[0], split[1], batch_size, training=False)
    else:
        batches = data.make_tf_dataset(split, batch_size, training=False)
    correct = {n: 0 for n in model.exit_names}
    total = 0
    for x, y in _iterate(batches):
        out = model(x, training=False)
        y = np.asarray(y)
        for n in model.exit_names:
            correct[n] += int(np.sum(np.argmax(np.asarray(out[n]), -1) == y))
        total += len(y)
    return {n: correct[n] / max(total, 1) for n in model.exit_names}


def _plain_accuracy(model, split, batch_size=256):
    """Accuracy of an `image -> logits` model on a split (no compile needed)."""
    from keras_scan import data

    if isinstance(split, tuple):
        batches = data.NumpyDataset(split[0], split[1], batch_size, training=False)
    else:
        batches = data.make_tf_dataset(split, batch_size, training=False)
    correct = total = 0
    for x, y in _iterate(batches):
        logits = np.asarray(model(x, training=False))
        correct += int(np.sum(np.argmax(logits, -1) == np.asarray(y)))
        total += len(y)
    return correct / max(total, 1)


def from_scan_model(
    scan_model,
    target_accuracy,
    *,
    val_data=None,
    val_accuracies=None,
    test_data=None,
    log=print,
):
    """Cuts a trained SCAN model at the shallowest exit reaching the target.

    Args:
        scan_model: a trained `keras_scan.ScanModel`.
        target_accuracy: float in (0, 1]. Validation accuracy to reach.
        val_data: `(x, y)` or an unbatched tf.data.Dataset: the exits'
            validation accuracies are measured on it when `val_accuracies`
            is None.
        val_accuracies: optional dict exit name -> validation accuracy (e.g.
            from `eval.json`).
        test_data: optional split: test accuracy of the cut and the full model.
        log: callable taking a str, or None. Defaults to `print`.

    Returns:
        `(model, report)` like `grow`: the cut model (`cut_at_exit`, copied
        weights) and a JSON-ready report.
    """
    from keras_scan.scan_model import ScanModel

    target = _check_target(target_accuracy)
    if not isinstance(scan_model, ScanModel):
        raise TypeError(
            "`scan_model` must be a keras_scan.ScanModel (a model with exits, "
            "as `keras-scan train` writes). Received: scan_model of type "
            f"{type(scan_model).__name__}"
        )
    say = log or (lambda _: None)
    names = scan_model.exit_names
    source = "given"
    if val_accuracies is None:
        if val_data is None:
            raise ValueError(
                "`val_data` or `val_accuracies` must be given to choose an exit "
                "on the validation split. Received: both None"
            )
        val_accuracies = _scan_accuracies(
            scan_model, _check_split("val_data", val_data)
        )
        source = "measured"
    chosen, reached = select_exit(val_accuracies, target, names)
    cut = cut_at_exit(scan_model, chosen)
    full = cut_at_exit(scan_model, names[-1])
    info = {i["name"]: i for i in scan_model.exit_info}
    # Block outputs by name, in graph order (not `residual_blocks`: a
    # ScanModel's stage sub-models add nodes to its backbone's layers).
    blocks = [
        layer.name
        for layer in scan_model.backbone.layers
        if _BLOCK_NAME.fullmatch(layer.name)
    ]
    layer = info[chosen]["layer"]
    report = {
        "mode": "from_run",
        "target_accuracy": target,
        "reached": reached,
        "stopped_because": "target" if reached else "full_depth",
        "exit": chosen,
        "block": layer,
        "depth": blocks.index(layer) + 1 if layer in blocks else None,
        "num_blocks": len(blocks) or None,
        "val_accuracy": round(float(val_accuracies[chosen]), 6),
        "val_accuracies": {n: round(float(val_accuracies[n]), 6) for n in names},
        "val_accuracies_source": source,
        "exits": [
            {
                "name": n,
                "block": info[n]["layer"],
                "depth": blocks.index(info[n]["layer"]) + 1
                if info[n]["layer"] in blocks
                else None,
                "val_accuracy": round(float(val_accuracies[n]), 6),
                "standalone_macs": info[n]["standalone_macs"],
                "params": info[n]["params"],
            }
            for n in names
        ],
        **_compare(model_costs(cut), model_costs(full)),
    }
    if test_data is not None:
        test_data = _check_split("test_data", test_data)
        report["test_accuracy"] = round(_plain_accuracy(cut, test_data), 6)
        report["full_test_accuracy"] = round(_plain_accuracy(full, test_data), 6)
    say(_summary(report))
    return cut, report


# === Plot ===


def plot_accuracy_vs_depth(report, path):
    """Validation accuracy against depth (or exit), with the target; a PNG.

    Args:
        report: the report of `grow` or `from_scan_model`.
        path: str or path. Written atomically.

    Returns:
        The path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from keras_scan.plots import _savefig_atomic

    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    if report["mode"] == "grow":
        xs = [s["depth"] for s in report["steps"]]
        ys = [s["val_accuracy"] for s in report["steps"]]
        for s in report["steps"]:
            ax.scatter(
                [s["depth"]] * len(s["val_history"]),
                s["val_history"],
                s=10,
                color="0.6",
                zorder=2,
            )
        ax.plot(
            xs, ys, "o-", color="C0", label="val accuracy (best per depth)", zorder=3
        )
        ax.set_xlabel(f"depth (residual blocks of {report['num_blocks']})")
        ax.set_xticks(list(range(1, report["num_blocks"] + 1)))
        if "baseline" in report:
            base = report["baseline"]
            ax.scatter(
                [report["num_blocks"]],
                [base["val_accuracy"]],
                marker="*",
                s=120,
                color="C1",
                zorder=4,
                label=f"full depth from scratch ({base['epochs']} epochs)",
            )
        chosen_x = report["depth"]
        title = f"Progressive depth expansion: {report['backbone']}"
    else:
        xs = list(range(len(report["exits"])))
        ys = [e["val_accuracy"] for e in report["exits"]]
        ax.plot(xs, ys, "o-", color="C0", label="val accuracy per exit", zorder=3)
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [f"{e['name']}\n{e['block']}" for e in report["exits"]], fontsize=7
        )
        ax.set_xlabel("exit (tapped block)")
        chosen_x = [e["name"] for e in report["exits"]].index(report["exit"])
        title = "Optimal-depth cut of a SCAN model"
    ax.axhline(report["target_accuracy"], color="C3", ls="--", lw=1, label="target")
    ax.axvline(chosen_x, color="C2", ls=":", lw=1.5, label="chosen")
    red = report["reduction"]
    ax.set_title(
        f"{title}\nchosen vs full depth: params {-100 * red.get('params', 0):+.0f}%, "
        f"MACs {-100 * red.get('macs', 0):+.0f}%",
        fontsize=9,
    )
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _savefig_atomic(fig, path)
