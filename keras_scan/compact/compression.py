"""Compact backbones by block-wise knowledge distillation under a budget.

Method: Ahmed, Zunino, Morerio, Murino, "Compact CNN Structure Learning by
Knowledge Distillation" (arXiv 2104.09191): a teacher's blocks are replaced by
cheaper candidates chosen per block to meet a FLOPs or parameter budget, each
new block learns to reproduce its teacher block's features, then the whole
student is fine-tuned with logit distillation from the teacher.

What `compress` does, step by step:

1. **Blocks** are found from the graph (`find_blocks`): a block is the section
   between two consecutive cut points of the backbone (see
   `keras_scan.backbones.taps.cut_points`) that contains a merge (a residual
   `Add`), extended over a trailing activation. In `cifar_resnet` these are the
   residual blocks `stage{s}_block{b}` (input: the previous block's output,
   output: `stage{s}_block{b}_out`). Everything else (stem, non-residual
   layers, classifier) is kept as it is.
2. **Candidates** per block (`CANDIDATES`): `"keep"` (the teacher's block and
   weights), `"width_0.5"` / `"width_0.25"` (a basic residual block whose inner
   width is 0.5x / 0.25x the narrowest convolution of the teacher's block),
   `"sepconv"` (a residual block of two depthwise-separable 3x3 convolutions)
   and `"drop"` (identity, only where the block's input and output shapes are
   equal). Every candidate keeps the block's output shape, so features are
   matched without adapters and SCAN exits keep their taps. Costs are counted
   by `keras_scan.cost` on each candidate; a candidate that is not cheaper than
   the teacher's block in the budget's metric is never chosen.
3. **Allocation** (greedy multiple-choice knapsack): every candidate of every
   block is first distilled for a few batches (`probe_batches`) and its relative
   feature error `mean((student - teacher)^2) / mean(teacher^2)` is measured on
   held-out images; `keep` has error 0. Starting from the teacher, the move
   (block -> cheaper candidate) with the smallest error increase per MAC (or
   parameter) saved is applied until the budget is met, then leftover budget is
   spent on the moves that lower the error most per unit of cost that still
   fit. `keep=[...]` pins blocks; `exclude=[...]` rules candidates out.
4. **Distillation**: the chosen new blocks are trained block-wise, each to
   reproduce its teacher block's output given the teacher block's input
   (relative MSE; all blocks share one frozen teacher pass per batch, which is
   the same as training them one after another since their losses do not
   interact), then the whole student is fine-tuned end to end with
   `(1 - alpha) CE + alpha T^2 KL(teacher^T || student^T)` on every output:
   the final classifier of a plain model, every exit of a SCAN model (each
   student exit learns from the teacher's same exit).

TensorFlow is never imported here: data goes through numpy and
`keras_scan.data.NumpyDataset`.
"""

import dataclasses
import math
import time

import keras
import numpy as np
from keras import ops

from keras_scan import cost
from keras_scan.backbones import taps as taps_lib
from keras_scan.scan_model import FINAL, ScanModel

__all__ = [
    "CANDIDATES",
    "Block",
    "find_blocks",
    "compress",
    "compress_with_report",
]

CANDIDATES = ("keep", "width_0.5", "width_0.25", "sepconv", "drop")
_WIDTHS = {"width_0.5": 0.5, "width_0.25": 0.25}
_TAGS = {"width_0.5": "w50", "width_0.25": "w25", "sepconv": "sep", "drop": "drop"}
_NAME_SUFFIXES = ("_out", "_add", "_relu", "_activation")
_ACTIVATIONS = (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
)
SUPPORTED = (
    "backbones made of residual blocks whose outputs are cut points: "
    "`keras_scan.backbones.cifar_resnet` (tested), and by the same graph rules "
    "Keras Applications ResNet/ResNetV2/MobileNetV2"
)
ALLOCATION_RULE = (
    "greedy: from the teacher, repeatedly replace the block whose cheaper "
    "candidate adds the least relative feature error (measured after a short "
    "block-wise distillation probe) per unit of cost saved, until the budget is "
    "met; then spend leftover budget on the upgrades that remove the most error "
    "per unit of cost"
)
_BN_MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class Block:
    """One replaceable block of a backbone.

    Attributes:
        name: stable block name (`"stage2_block1"`): the output layer's name
            without a trailing `_out`/`_add`/`_relu`/`_activation`.
        output_layer: name of the layer whose output ends the block.
        start: topological position of the node producing the block's input.
        end: topological position of the node producing the block's output.
        input_shape: `(height, width, channels)` of the block's input.
        output_shape: `(height, width, channels)` of its output.
        stride: int stride that maps input to output size with `"same"`
            padding, or `None` when there is none (only `keep`/`drop` then).
        inner_channels: narrowest convolution inside the teacher's block.
        input_tensor: the teacher's input `KerasTensor` of the block.
        output_tensor: the teacher's output `KerasTensor`.
        final_layer: the trailing activation layer of the block, or `None`
            when the block ends in its merge.
    """

    name: str
    output_layer: str
    start: int
    end: int
    input_shape: tuple
    output_shape: tuple
    stride: object
    inner_channels: int
    input_tensor: object = dataclasses.field(repr=False, compare=False)
    output_tensor: object = dataclasses.field(repr=False, compare=False)
    final_layer: object = dataclasses.field(repr=False, compare=False)

    def allowed(self):
        """Candidates that fit this block's shapes (before costs and `exclude`)."""
        out = ["keep"]
        if self.stride is not None:
            out += ["width_0.5", "width_0.25", "sepconv"]
        if self.input_shape == self.output_shape:
            out.append("drop")
        return out


# === Blocks ===


def _block_name(layer_name, used):
    for suffix in _NAME_SUFFIXES:
        if layer_name.endswith(suffix) and len(layer_name) > len(suffix):
            base = layer_name[: -len(suffix)]
            if base not in used:
                return base
    return layer_name


def _stride(in_shape, out_shape):
    (h, w, _), (h2, w2, _) = in_shape, out_shape
    if h2 < 1 or w2 < 1 or h < h2:
        return None
    s = max(1, round(h / h2))
    if math.ceil(h / s) == h2 and math.ceil(w / s) == w2:
        return s
    return None


def find_blocks(backbone):
    """The replaceable residual blocks of a functional backbone, in order.

    A block is the section between two consecutive cut points that contains a
    merge (a node with several inputs, e.g. a residual `Add`), extended over a
    trailing activation (`stage1_block1_add` -> `stage1_block1_out`).

    Args:
        backbone: a single-input functional `keras.Model` with a fixed input size.

    Returns:
        A list of `Block`; empty when the backbone has no residual blocks.

    Example:
    ```python
    backbone = keras_scan.backbones.cifar_resnet(18, width=16)
    [b.name for b in keras_scan.compact.find_blocks(backbone)]
    # ['stage1_block1', 'stage1_block2', ..., 'stage4_block2']
    ```
    """
    points = taps_lib.cut_points(backbone)
    nodes = taps_lib._topological_nodes(backbone)
    blocks, used = [], set()
    i = 1
    while i < len(points):
        start, end = points[i - 1], points[i]
        section = nodes[start.position + 1 : end.position + 1]
        if not any(len(n.input_tensors) > 1 for n in section):
            i += 1
            continue
        final_layer = None
        while i + 1 < len(points):
            nxt = points[i + 1]
            tail = nodes[end.position + 1 : nxt.position + 1]
            if (
                len(tail) == 1
                and isinstance(tail[0].operation, _ACTIVATIONS)
                and tuple(nxt.tensor.shape) == tuple(end.tensor.shape)
            ):
                final_layer, end = tail[0].operation, nxt
                i += 1
            else:
                break
        section = nodes[start.position + 1 : end.position + 1]
        filters = [
            int(n.operation.filters)
            for n in section
            if isinstance(getattr(n.operation, "filters", None), int)
        ]
        in_shape = tuple(int(d) for d in start.tensor.shape[1:])
        out_shape = tuple(int(d) for d in end.tensor.shape[1:])
        name = _block_name(end.name, used)
        used.add(name)
        blocks.append(
            Block(
                name=name,
                output_layer=end.name,
                start=start.position,
                end=end.position,
                input_shape=in_shape,
                output_shape=out_shape,
                stride=_stride(in_shape, out_shape),
                inner_channels=min(filters) if filters else out_shape[-1],
                input_tensor=start.tensor,
                output_tensor=end.tensor,
                final_layer=final_layer,
            )
        )
        i += 1
    return blocks


# === Graph replay and candidate blocks ===


def _clone_layer(layer):
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer)
    return type(layer).from_config(layer.get_config())


def _replay(nodes, tensors, clones):
    """Re-applies `nodes` (teacher graph) to new tensors with cloned layers.

    `tensors` maps `id(teacher tensor)` -> new tensor and is updated; cloned
    layers keep their names and get the teacher's weights.
    """
    for node in nodes:
        if node.is_input:
            continue
        op = node.operation
        fresh = False
        if isinstance(op, keras.layers.Layer):
            new = clones.get(id(op))
            if new is None:
                new = clones[id(op)] = _clone_layer(op)
                fresh = True
        else:
            new = op  # a stateless keras.ops operation
        args, kwargs = node.arguments.fill_in(tensors)
        out = new(*args, **kwargs)
        if fresh and op.weights:
            new.set_weights(op.get_weights())
        for ref, t in zip(node.outputs, keras.tree.flatten(out)):
            tensors[id(ref)] = t


def _bn(name, momentum):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5, name=name)


def _apply_candidate(x, block, kind, prefix, final_name, bn_momentum):
    """Applies candidate `kind` of `block` to `x`; the last layer is `final_name`."""
    if kind == "drop":
        return keras.layers.Identity(name=final_name)(x)
    out_ch, s = block.output_shape[-1], block.stride
    shortcut = x
    if s != 1 or int(x.shape[-1]) != out_ch:
        shortcut = keras.layers.Conv2D(
            out_ch,
            1,
            strides=s,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{prefix}_0_conv",
        )(x)
        shortcut = _bn(f"{prefix}_0_bn", bn_momentum)(shortcut)
    if kind in _WIDTHS:
        mid = max(1, round(block.inner_channels * _WIDTHS[kind]))
        convs = [
            keras.layers.Conv2D(
                mid,
                3,
                strides=s,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"{prefix}_1_conv",
            ),
            keras.layers.Conv2D(
                out_ch,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"{prefix}_2_conv",
            ),
        ]
    else:  # sepconv
        convs = [
            keras.layers.SeparableConv2D(
                out_ch,
                3,
                strides=s,
                padding="same",
                use_bias=False,
                name=f"{prefix}_1_sepconv",
            ),
            keras.layers.SeparableConv2D(
                out_ch, 3, padding="same", use_bias=False, name=f"{prefix}_2_sepconv"
            ),
        ]
    y = convs[0](x)
    y = _bn(f"{prefix}_1_bn", bn_momentum)(y)
    y = keras.layers.ReLU(name=f"{prefix}_1_relu")(y)
    y = convs[1](y)
    y = _bn(f"{prefix}_2_bn", bn_momentum)(y)
    if block.final_layer is None:
        return keras.layers.Add(name=final_name)([shortcut, y])
    y = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
    config = dict(block.final_layer.get_config(), name=final_name)
    return type(block.final_layer).from_config(config)(y)


def _chain(tensor, stop):
    """Operations from `stop` to `tensor` along single-input nodes, or `None`."""
    chain = []
    while tensor is not stop:
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            return None
        node = history.operation._inbound_nodes[history.node_index]
        if len(node.input_tensors) != 1:
            return None
        chain.append(node.operation)
        tensor = node.input_tensors[0]
    return chain[::-1]


def _basic_block_layers(block, nodes):
    """The teacher's layers when `block` is a basic residual block, else `None`.

    Basic block: `conv3x3 -> BN -> ReLU -> conv3x3 -> BN` plus an identity or
    `conv1x1 -> BN` shortcut, merged by one `Add` (cifar_resnet's ResNet18/34).
    Returns `{"1_conv", "1_bn", "2_conv", "2_bn"[, "0_conv", "0_bn"]}`.
    """
    section = nodes[block.start + 1 : block.end + 1]
    merges = [n for n in section if len(n.input_tensors) > 1]
    if len(merges) != 1 or not isinstance(merges[0].operation, keras.layers.Add):
        return None
    chains = [_chain(t, block.input_tensor) for t in merges[0].input_tensors]
    if any(c is None for c in chains) or len(chains) != 2:
        return None
    chains.sort(key=len)
    shortcut, branch = chains
    kinds = [type(op) for op in branch]
    conv, bn = keras.layers.Conv2D, keras.layers.BatchNormalization
    if kinds[:2] != [conv, bn] or kinds[3:] != [conv, bn] or len(kinds) != 5:
        return None
    if not isinstance(branch[2], _ACTIVATIONS):
        return None
    layers = {"1_conv": branch[0], "1_bn": branch[1], "2_conv": branch[3]}
    layers["2_bn"] = branch[4]
    if [type(op) for op in shortcut] == [conv, bn]:
        layers["0_conv"], layers["0_bn"] = shortcut
    elif shortcut:
        return None
    return layers


def _assign(target, source, transform=None):
    """Copies same-named variables (`kernel`, `gamma`, ...) where shapes agree."""
    by_name = {v.name: v for v in source.weights}
    for var in target.weights:
        src = by_name.get(var.name)
        if src is None:
            continue
        value = ops.convert_to_numpy(src)
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) == tuple(var.shape):
            var.assign(value)


def _init_from_teacher(model, block, kind, nodes):
    """Warm-starts a candidate from its teacher block where shapes allow.

    A shortcut convolution is copied. For `width_*` candidates of a basic
    residual block, the inner channels with the largest
    `||W2[..., c, :]||_1 * (|gamma_c| + |beta_c|)` (how much channel `c` of
    the first convolution feeds the second) are kept, i.e. the block starts
    as the teacher's block pruned to that width; distillation then repairs it.
    """
    teacher = _basic_block_layers(block, nodes)
    if teacher is None:
        return False
    prefix = _prefix(block, kind)
    mine = {layer.name: layer for layer in model.layers}
    for part in ("0_conv", "0_bn"):
        if f"{prefix}_{part}" in mine and part in teacher:
            _assign(mine[f"{prefix}_{part}"], teacher[part])
    if kind not in _WIDTHS:
        return True
    conv1, bn1 = teacher["1_conv"], teacher["1_bn"]
    conv2, bn2 = teacher["2_conv"], teacher["2_bn"]
    mid = mine[f"{prefix}_1_conv"].filters
    if tuple(conv1.strides) != tuple(mine[f"{prefix}_1_conv"].strides):
        return True
    if mid > conv1.filters:
        return True
    w2 = ops.convert_to_numpy(conv2.kernel)
    gamma = np.abs(ops.convert_to_numpy(bn1.gamma)) if bn1.scale else 1.0
    beta = np.abs(ops.convert_to_numpy(bn1.beta)) if bn1.center else 0.0
    importance = np.abs(w2).sum(axis=(0, 1, 3)) * (gamma + beta)
    kept = np.sort(np.argsort(-importance, kind="stable")[:mid])
    _assign(mine[f"{prefix}_1_conv"], conv1, lambda w: np.take(w, kept, axis=-1))
    _assign(mine[f"{prefix}_1_bn"], bn1, lambda w: np.take(w, kept, axis=0))
    _assign(
        mine[f"{prefix}_2_conv"],
        conv2,
        lambda w: np.take(w, kept, axis=2) if w.ndim == 4 else w,
    )
    _assign(mine[f"{prefix}_2_bn"], bn2)
    return True


def _prefix(block, kind):
    return f"{block.name}_{_TAGS[kind]}"


def _candidate_model(backbone, block, kind, nodes, bn_momentum):
    """A standalone `block input -> block output` model of one candidate."""
    inputs = keras.Input(block.input_shape, name=f"{block.name}_{kind}_input")
    if kind == "keep":
        tensors = {id(block.input_tensor): inputs}
        _replay(nodes[block.start + 1 : block.end + 1], tensors, {})
        outputs = tensors[id(block.output_tensor)]
    else:
        prefix = _prefix(block, kind)
        outputs = _apply_candidate(
            inputs, block, kind, prefix, f"{prefix}_out", bn_momentum
        )
    name = f"{block.name}_{_TAGS.get(kind, kind)}_model"
    model = keras.Model(inputs, outputs, name=name)
    if kind != "keep":
        _init_from_teacher(model, block, kind, nodes)
    return model


def _build_backbone(backbone, blocks, choices, trained, bn_momentum):
    """The student backbone: the teacher's graph replayed with blocks replaced.

    Kept layers are cloned with the teacher's weights and names; replacement
    layers take the weights of the same-named layers of `trained` (the
    block-wise distilled candidate models), and each block's last layer keeps
    the teacher's name, so taps and exits stay where they were.
    """
    nodes = taps_lib._topological_nodes(backbone)
    source = backbone.inputs[0]
    input_name = nodes[0].operation.name if nodes[0].operation else "image"
    inputs = keras.Input(source.shape[1:], dtype=source.dtype, name=input_name)
    tensors = {id(source): inputs}
    replaced = {}
    for b in blocks:
        if choices[b.name] != "keep":
            for p in range(b.start + 1, b.end + 1):
                replaced[p] = b
    clones = {}
    for position, node in enumerate(nodes):
        b = replaced.get(position)
        if b is None:
            _replay([node], tensors, clones)
        elif position == b.end:
            kind = choices[b.name]
            tensors[id(b.output_tensor)] = _apply_candidate(
                tensors[id(b.input_tensor)],
                b,
                kind,
                _prefix(b, kind),
                b.output_layer,
                bn_momentum,
            )
    outputs = [tensors[id(t)] for t in backbone.outputs]
    student = keras.Model(
        inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=_student_name(backbone),
    )
    donors = {}
    for model in trained:
        for layer in model.layers:
            if layer.weights:
                donors[layer.name] = layer
    for layer in student.layers:
        donor = donors.get(layer.name)
        if donor is not None:
            layer.set_weights(donor.get_weights())
    return student


def _student_name(model):
    return f"{model.name}_compact"


def _bn_momentum(backbone):
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            return min(float(layer.momentum), _BN_MOMENTUM)
    return _BN_MOMENTUM


# === Training helpers ===


class _BlockDistiller(keras.Model):
    """Trains candidate blocks to map teacher block inputs to block outputs.

    `features` (frozen) maps an image to the teacher's block input/output
    tensors; each candidate model gets the teacher's input of its block and its
    loss is `mean((student - teacher)^2) / scale` of that block.
    """

    def __init__(self, features, candidates, spec, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.candidates = candidates
        self._spec = spec  # per candidate: (key, input index, output index, scale)

    def call(self, x, training=False):
        feats = self.features(x, training=False)
        out = {}
        for (key, i, o, _), model in zip(self._spec, self.candidates):
            out[key] = model(ops.stop_gradient(feats[i]), training=training)
            out[f"target_{o}"] = feats[o]
        return out

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        total = 0.0
        for key, _, o, scale in self._spec:
            diff = y_pred[key] - ops.stop_gradient(y_pred[f"target_{o}"])
            total = total + ops.mean(ops.square(diff)) / scale
        return total


class _LogitDistiller(keras.Model):
    """Fine-tunes `student` end to end on the outputs of a frozen `teacher`.

    Per output: `(1 - alpha) CE + alpha T^2 KL(p_teacher^T || p_student^T)`
    (logits or probabilities), or a relative MSE for feature outputs.
    """

    def __init__(self, student, teacher, names, kind, alpha, temperature, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self._names = names
        self._kind = kind
        self._alpha = float(alpha)
        self._temperature = float(temperature)

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _logits(self, out):
        if self._kind == "probabilities":
            return ops.log(ops.maximum(out, 1e-12))
        return out

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        teacher_out = self.teacher(x, training=False)
        if self._names is None:
            pairs = [(y_pred, teacher_out)]
        else:
            pairs = [(y_pred[n], teacher_out[n]) for n in self._names]
        T, alpha = self._temperature, self._alpha
        total = 0.0
        for student_out, target in pairs:
            target = ops.stop_gradient(target)
            if self._kind == "features":
                scale = ops.mean(ops.square(target)) + 1e-8
                total = total + ops.mean(ops.square(student_out - target)) / scale
                continue
            logits = self._logits(student_out)
            ce = ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    y, logits, from_logits=True
                )
            )
            teacher_log_probs = ops.log_softmax(self._logits(target) / T, axis=-1)
            student_log_probs = ops.log_softmax(logits / T, axis=-1)
            kl = ops.sum(
                ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs),
                axis=-1,
            )
            total = total + (1.0 - alpha) * ce + alpha * T**2 * ops.mean(kl)
        return total


def _clone_model(model):
    """A copy of `model` with its own layers and the same weights."""
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )
    clone.set_weights(model.get_weights())
    return clone


def _fresh_model(model):
    """The same architecture as `model`, randomly initialised."""
    return keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )


def _output_kind(model):
    """`"logits"`, `"probabilities"` or `"features"` for a plain model's output."""
    out = model.outputs[0]
    if len(out.shape) != 2:
        return "features"
    layer = out._keras_history.operation
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax) or (
        activation is not None and getattr(activation, "__name__", "") == "softmax"
    ):
        return "probabilities"
    return "logits"


def _batches(x, y, batch_size, seed, training=True):
    from keras_scan.data import NumpyDataset

    return NumpyDataset(x, y, batch_size, training=training, augment=False, seed=seed)


def _as_arrays(data, arg):
    """`(x, y)` numpy arrays from a pair of arrays or a tf.data-like dataset."""
    if data is None:
        raise ValueError(f"`{arg}` must be (x, y) arrays. Received: {arg}=None")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(
                f"`{arg}` must be an (x, y) pair. Received: {arg} of length {len(data)}"
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
    elif hasattr(data, "as_numpy_iterator"):
        xs, ys = [], []
        for item in data.as_numpy_iterator():
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(
                    f"`{arg}` must yield (image, label) pairs. Received: elements "
                    f"of type {type(item).__name__}"
                )
            xs.append(np.asarray(item[0]))
            ys.append(np.asarray(item[1]))
        if not xs:
            raise ValueError(f"`{arg}` holds no examples. Received: {arg}={data!r}")
        batched = xs[0].ndim == 4
        x = np.concatenate(xs) if batched else np.stack(xs)
        y = np.concatenate(ys) if batched else np.stack(ys)
    else:
        raise TypeError(
            f"`{arg}` must be (x, y) numpy arrays or a tf.data.Dataset of "
            f"(image, label). Received: {arg} of type {type(data).__name__}"
        )
    if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"`{arg}` must be non-empty images (N, H, W, C) with N labels. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}"
        )
    return x.astype(np.float32, copy=False), y.reshape(-1).astype(np.int32)


def _predict(model, x, batch_size):
    """Outputs of `model` on `x` in eager batches (no new traced function)."""
    parts = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size], training=False)
        parts.append(keras.tree.map_structure(ops.convert_to_numpy, out))
    return keras.tree.map_structure(lambda *a: np.concatenate(a), *parts)


def _accuracy(model, x, y, batch_size, kind):
    """Accuracy per exit (`{"final": acc}` for a plain model), or `None`."""
    if kind == "features":
        return None
    if isinstance(model, ScanModel):
        pred = _predict(model, x, batch_size)
        return {
            n: float(np.mean(np.argmax(pred[n], axis=-1) == y))
            for n in model.exit_names
        }
    pred = _predict(model, x, batch_size)
    return {FINAL: float(np.mean(np.argmax(pred, axis=-1) == y))}


def _feature_errors(distiller, spec, x, batch_size):
    """Relative feature error of each candidate on images `x`."""
    sums = {key: 0.0 for key, *_ in spec}
    sizes = {}
    for start in range(0, len(x), batch_size):
        out = distiller(x[start : start + batch_size], training=False)
        for key, _, o, scale in spec:
            diff = out[key] - out[f"target_{o}"]
            sums[key] += float(ops.convert_to_numpy(ops.sum(ops.square(diff)))) / scale
            sizes[key] = math.prod(diff.shape[1:])
    return {key: sums[key] / (len(x) * sizes[key]) for key in sums}


def _fit(
    model, x, y, batch_size, seed, epochs=1, steps=None, learning_rate=1e-3, eager=False
):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        jit_compile=False,
        run_eagerly=eager,
    )
    model.fit(
        _batches(x, y, batch_size, seed),
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=0,
    )


# === Validation ===


def _check_int(name, value, low):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
    ):
        raise ValueError(
            f"`{name}` must be an int >= {low}. Received: {name}={value!r}"
        )
    return int(value)


def _check_float(name, value, low, high=None, low_open=True):
    ok = (
        isinstance(value, (int, float, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (high is None or value <= high)
    )
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + (
            f" and <= {high}" if high is not None else ""
        )
        raise ValueError(
            f"`{name}` must be a number {bound}. Received: {name}={value!r}"
        )
    return float(value)


def _check_budget(budget_flops, budget_params):
    given = [
        (n, v)
        for n, v in (("budget_flops", budget_flops), ("budget_params", budget_params))
        if v is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "Exactly one of `budget_flops` and `budget_params` must be given (a "
            "fraction of the teacher's backbone MACs or parameters in (0, 1)). "
            f"Received: budget_flops={budget_flops!r}, budget_params={budget_params!r}"
        )
    name, value = given[0]
    ok = (
        isinstance(value, (int, float, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value < 1
    )
    if not ok:
        raise ValueError(
            f"`{name}` must be a fraction of the teacher strictly between 0 and 1 "
            f"(e.g. 0.5 for half). Received: {name}={value!r}"
        )
    return name, float(value)


def _names_list(value, arg):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    value = list(value)
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{arg}` must be a list of str. Received: {arg}={value!r}")
    return value


def _resolve_keep_exclude(blocks, keep, exclude):
    """Pinned block names and `{block: set(excluded candidates)}`."""
    lookup = {}
    for b in blocks:
        lookup[b.name] = b.name
        lookup[b.output_layer] = b.name
    valid = [b.name for b in blocks]
    pinned = set()
    for name in _names_list(keep, "keep"):
        if name not in lookup:
            raise ValueError(
                f"`keep` must name blocks of the teacher: {valid}. "
                f"Received: keep={keep!r} ({name!r} is not a block)"
            )
        pinned.add(lookup[name])
    excluded = {b.name: set() for b in blocks}
    replaceable = [c for c in CANDIDATES if c != "keep"]
    for item in _names_list(exclude, "exclude"):
        block, _, kind = item.rpartition(":")
        if kind not in replaceable or (block and block not in lookup):
            raise ValueError(
                "`exclude` entries must be a candidate "
                f"({replaceable}) or 'BLOCK:CANDIDATE' with BLOCK one of {valid}. "
                f"Received: exclude={exclude!r} ({item!r} is neither)"
            )
        targets = [lookup[block]] if block else valid
        for t in targets:
            excluded[t].add(kind)
    return pinned, excluded


# === Public API ===


def compress(
    teacher,
    train_data,
    val_data,
    budget_flops=None,
    budget_params=None,
    keep=None,
    exclude=None,
    blockwise_epochs=1,
    finetune_epochs=2,
    batch_size=64,
    learning_rate=1e-3,
    temperature=4.0,
    alpha=0.5,
    probe_batches=20,
    probe_images=512,
    seed=0,
    verbose=0,
):
    """Compresses a backbone (or a SCAN model) by block-wise distillation.

    Replaces residual blocks of the teacher's backbone with cheaper candidates
    (narrower, depthwise-separable, or dropped) chosen greedily to meet a
    budget, distils each new block from its teacher block's features, then
    fine-tunes the student end to end with logit distillation. A SCAN model
    keeps its exits (same taps, heads warm-started from the teacher's) and each
    exit is distilled from the teacher's same exit. See the module docstring
    for the rule; `compress_with_report` also returns the report.

    Args:
        teacher: a trained `keras_scan.ScanModel`, or a single-input,
            single-output functional `keras.Model` (its output: logits,
            probabilities, or a feature map). Not modified.
        train_data: `(x, y)` numpy arrays (images 0..255 as the model expects,
            integer labels) or a `tf.data.Dataset` of `(image, label)`; read
            into memory.
        val_data: same; held-out images for the probe errors and the report.
        budget_flops: float in (0, 1). Student backbone MACs <= this fraction
            of the teacher backbone's MACs (counted by `keras_scan.cost`).
        budget_params: float in (0, 1). The same for parameters. Give exactly
            one of the two.
        keep: list of block names (`"stage1_block1"` or its output layer name)
            left exactly as in the teacher. Defaults to `None`.
        exclude: list of candidates never used (`"drop"`), or for one block
            (`"stage4_block2:drop"`). Defaults to `None`.
        blockwise_epochs: int >= 0. Epochs of block-wise feature distillation.
            Defaults to 1.
        finetune_epochs: int >= 0. Epochs of end-to-end logit distillation.
            Defaults to 2.
        batch_size: int. Defaults to 64.
        learning_rate: float. Adam learning rate of both phases. Defaults to 1e-3.
        temperature: float > 0. Distillation temperature T. Defaults to 4.0.
        alpha: float in [0, 1]. Weight of the KL term vs cross-entropy.
            Defaults to 0.5.
        probe_batches: int >= 1. Batches each candidate is distilled for before
            its error is measured (the allocation's loss estimate). Defaults to 20.
        probe_images: int >= 1. Validation images the probe errors are measured
            on. Defaults to 512.
        seed: int. Seeds Keras (`keras.utils.set_random_seed`) and batching.
            Defaults to 0.
        verbose: int. 1 prints one line per phase. Defaults to 0.

    Returns:
        The student: a `keras_scan.ScanModel` for a SCAN teacher, else a
        functional `keras.Model`, with the teacher's input and outputs.

    Example:
    ```python
    student = keras_scan.compress(
        teacher, (x_train, y_train), (x_val, y_val), budget_flops=0.5)
    keras_scan.cost.count_macs(student.backbone)  # <= 0.5 x the teacher's
    ```

    Reference: Ahmed et al., "Compact CNN Structure Learning by Knowledge
    Distillation", arXiv 2104.09191.
    """
    student, _ = compress_with_report(
        teacher,
        train_data,
        val_data,
        budget_flops=budget_flops,
        budget_params=budget_params,
        keep=keep,
        exclude=exclude,
        blockwise_epochs=blockwise_epochs,
        finetune_epochs=finetune_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temperature=temperature,
        alpha=alpha,
        probe_batches=probe_batches,
        probe_images=probe_images,
        seed=seed,
        verbose=verbose,
    )
    return student


def compress_with_report(
    teacher,
    train_data,
    val_data,
    budget_flops=None,
    budget_params=None,
    keep=None,
    exclude=None,
    blockwise_epochs=1,
    finetune_epochs=2,
    batch_size=64,
    learning_rate=1e-3,
    temperature=4.0,
    alpha=0.5,
    probe_batches=20,
    probe_images=512,
    seed=0,
    verbose=0,
    test_data=None,
    scratch_baseline=False,
):
    """`compress`, returning `(student, report)`.

    Args:
        (as `compress`, plus:)
        test_data: optional `(x, y)`; accuracies on it are added to the report.
        scratch_baseline: bool. Also train the student's architecture from a
            random initialisation for `blockwise_epochs + finetune_epochs`
            epochs with the same optimizer and its plain loss (cross-entropy;
            SCAN's own self-distillation for a SCAN model) and report its
            accuracy: the benefit of distillation, measured side by side.
            Defaults to `False`.

    Returns:
        `(student, report)`; `report` is a JSON-ready dict: budget, teacher
        and student MACs/params/accuracy (per exit for SCAN models), block
        choices with every candidate's cost and probe error, feature errors
        before/after the block-wise stage, timings.

    Example:
    ```python
    student, report = keras_scan.compact.compress_with_report(
        teacher, (x, y), (xv, yv), budget_params=0.3)
    report["student"]["params"], report["blocks"][0]["choice"]
    ```
    """
    # --- arguments (all checked before any work) ---
    budget_arg, fraction = _check_budget(budget_flops, budget_params)
    metric = "macs" if budget_arg == "budget_flops" else "params"
    blockwise_epochs = _check_int("blockwise_epochs", blockwise_epochs, 0)
    finetune_epochs = _check_int("finetune_epochs", finetune_epochs, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    probe_batches = _check_int("probe_batches", probe_batches, 1)
    probe_images = _check_int("probe_images", probe_images, 1)
    seed = _check_int("seed", seed, 0)
    learning_rate = _check_float("learning_rate", learning_rate, 0.0)
    temperature = _check_float("temperature", temperature, 0.0)
    alpha = _check_float("alpha", alpha, 0.0, 1.0, low_open=False)
    is_scan = isinstance(teacher, ScanModel)
    if not is_scan:
        taps_lib.check_functional(teacher, "teacher")
        if len(teacher.outputs) != 1:
            raise ValueError(
                "`teacher` must be a keras_scan.ScanModel or a functional model "
                f"with one output. Received: teacher={teacher.name!r} with "
                f"{len(teacher.outputs)} outputs"
            )
    x_train, y_train = _as_arrays(train_data, "train_data")
    x_val, y_val = _as_arrays(val_data, "val_data")
    test = None if test_data is None else _as_arrays(test_data, "test_data")
    expected = tuple(teacher.inputs[0].shape[1:])
    for arg, x in (("train_data", x_train), ("val_data", x_val)):
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"`{arg}` images must have the teacher's input shape {expected}. "
                f"Received: images of shape {tuple(x.shape[1:])}"
            )

    def log(message):
        if verbose:
            print(f"compress: {message}", flush=True)

    keras.utils.set_random_seed(seed)
    seconds = {}

    # --- blocks, candidates, costs ---
    frozen = _clone_model(teacher)
    frozen.trainable = False
    backbone = frozen.backbone if is_scan else frozen
    blocks = find_blocks(backbone)
    if not blocks:
        raise ValueError(
            f"`teacher` has no residual blocks to compress; `compress` supports "
            f"{SUPPORTED}. Received: teacher={teacher.name!r} (backbone "
            f"{backbone.name!r})"
        )
    pinned, excluded = _resolve_keep_exclude(blocks, keep, exclude)
    nodes = taps_lib._topological_nodes(backbone)
    bn_momentum = _bn_momentum(backbone)
    teacher_cost = {
        "macs": cost.count_macs(backbone),
        "params": cost.count_params(backbone),
    }
    candidates = _candidate_table(
        backbone, blocks, nodes, pinned, excluded, metric, bn_momentum
    )
    limit = fraction * teacher_cost[metric]
    smallest = teacher_cost[metric] - sum(
        c["keep"][metric] - min(e[metric] for e in c.values())
        for c in candidates.values()
    )
    if smallest > limit:
        extra = []
        if pinned:
            extra.append(f"keep={sorted(pinned)}")
        if exclude:
            extra.append(f"exclude={_names_list(exclude, 'exclude')}")
        raise ValueError(
            f"`{budget_arg}` cannot be met: the smallest reachable student has "
            f"{smallest / teacher_cost[metric]:.4f} of the teacher backbone's "
            f"{'MACs' if metric == 'macs' else 'parameters'} ({int(smallest)} of "
            f"{teacher_cost[metric]}) with every block at its cheapest candidate"
            + (f" ({', '.join(extra)})" if extra else "")
            + f". Received: {budget_arg}={fraction}"
        )

    # --- teacher features for the block-wise distillation ---
    feature_tensors, index = [], {}
    for b in blocks:
        for t in (b.input_tensor, b.output_tensor):
            if id(t) not in index:
                index[id(t)] = len(feature_tensors)
                feature_tensors.append(t)
    features = keras.Model(backbone.inputs[0], feature_tensors, name="teacher_blocks")
    features.trainable = False
    n_probe = min(probe_images, len(x_val))
    x_probe = x_val[:n_probe]
    sample = _predict(features, x_train[: min(256, len(x_train))], batch_size)
    scales = {
        b.name: float(np.mean(np.square(sample[index[id(b.output_tensor)]]))) + 1e-8
        for b in blocks
    }
    del sample

    def distiller_for(pairs):
        spec, models = [], []
        for b, kind in pairs:
            spec.append(
                (
                    f"{b.name}/{kind}",
                    index[id(b.input_tensor)],
                    index[id(b.output_tensor)],
                    scales[b.name],
                )
            )
            models.append(candidates[b.name][kind]["model"])
        return _BlockDistiller(features, models, spec, name="block_distiller"), spec

    # --- probe: every candidate distilled for a few batches, errors measured ---
    t0 = time.time()
    probe_pairs = [
        (b, kind) for b in blocks for kind in candidates[b.name] if kind != "keep"
    ]
    errors = {b.name: {"keep": 0.0} for b in blocks}
    initial = {}
    if probe_pairs:
        distiller, spec = distiller_for(probe_pairs)
        initial = _feature_errors(distiller, spec, x_probe, batch_size)
        if distiller.trainable_weights:
            _fit(
                distiller,
                x_train,
                y_train,
                batch_size,
                seed,
                steps=min(probe_batches, math.ceil(len(x_train) / batch_size)),
                learning_rate=learning_rate,
                eager=True,
            )
        for key, err in _feature_errors(distiller, spec, x_probe, batch_size).items():
            name, kind = key.split("/")
            errors[name][kind] = err
    seconds["probe"] = time.time() - t0
    log(
        f"probe: {len(probe_pairs)} candidates over {len(blocks)} blocks, "
        f"{probe_batches} batches, {seconds['probe']:.1f} s"
    )

    # --- allocation ---
    choices = _allocate(blocks, candidates, errors, metric, teacher_cost[metric], limit)
    log("choices: " + ", ".join(f"{n}={k}" for n, k in choices.items() if k != "keep"))

    # --- block-wise distillation of the chosen new blocks ---
    t0 = time.time()
    chosen = [(b, choices[b.name]) for b in blocks if choices[b.name] != "keep"]
    after = {}
    if chosen:
        distiller, spec = distiller_for(chosen)
        if distiller.trainable_weights and blockwise_epochs > 0:
            _fit(
                distiller,
                x_train,
                y_train,
                batch_size,
                seed + 1,
                epochs=blockwise_epochs,
                learning_rate=learning_rate,
            )
        after = _feature_errors(distiller, spec, x_probe, batch_size)
    seconds["blockwise"] = time.time() - t0
    log(
        f"block-wise distillation: {blockwise_epochs} epoch(s), {seconds['blockwise']:.1f} s"
    )

    # --- the student ---
    trained = [candidates[b.name][k]["model"] for b, k in chosen]
    student_backbone = _build_backbone(backbone, blocks, choices, trained, bn_momentum)
    student_cost = {
        "macs": cost.count_macs(student_backbone),
        "params": cost.count_params(student_backbone),
    }
    if student_cost[metric] > limit:
        raise RuntimeError(
            f"Internal error: the student backbone has {student_cost[metric]} "
            f"{metric}, over the budget {limit:.0f}; please report this."
        )
    if is_scan:
        student = _scan_student(frozen, student_backbone)
        kind, names = "logits", list(student.exit_names)
    else:
        student = student_backbone
        kind, names = _output_kind(frozen), None

    # --- end-to-end logit distillation ---
    before_finetune = _accuracy(student, x_val, y_val, 256, kind)
    t0 = time.time()
    if finetune_epochs > 0:
        tuner = _LogitDistiller(
            student, frozen, names, kind, alpha, temperature, name="logit_distiller"
        )
        _fit(
            tuner,
            x_train,
            y_train,
            batch_size,
            seed + 2,
            epochs=finetune_epochs,
            learning_rate=learning_rate,
        )
    seconds["finetune"] = time.time() - t0
    log(f"fine-tuning: {finetune_epochs} epoch(s), {seconds['finetune']:.1f} s")

    # --- report ---
    def describe(model, costs):
        entry = {
            "name": model.name,
            "macs": int(costs["macs"]),
            "params": int(costs["params"]),
            "model_macs": int(cost.count_macs(model)),
            "model_params": int(cost.count_params(model)),
            "accuracy": {"val": _accuracy(model, x_val, y_val, 256, kind)},
        }
        if test is not None:
            entry["accuracy"]["test"] = _accuracy(model, *test, 256, kind)
        if isinstance(model, ScanModel):
            entry["exits"] = model.exit_info
        return entry

    report = {
        "method": "block-wise knowledge distillation (Ahmed et al., arXiv 2104.09191)",
        "budget": {
            "argument": budget_arg,
            "metric": metric,
            "fraction": fraction,
            "limit": float(limit),
            "teacher": int(teacher_cost[metric]),
            "student": int(student_cost[metric]),
            "student_fraction": student_cost[metric] / teacher_cost[metric],
            "smallest_reachable_fraction": smallest / teacher_cost[metric],
            "counted_on": "backbone (keras_scan.cost, batch size 1)",
        },
        "allocation": ALLOCATION_RULE,
        "teacher": describe(frozen, teacher_cost),
        "student": dict(
            describe(student, student_cost),
            accuracy_before_finetune={"val": before_finetune},
        ),
        "macs_ratio": student_cost["macs"] / teacher_cost["macs"],
        "params_ratio": student_cost["params"] / teacher_cost["params"],
        "blocks": [
            _block_report(b, choices[b.name], candidates, errors, initial, after)
            | {"pinned": b.name in pinned}
            for b in blocks
        ],
        "settings": {
            "blockwise_epochs": blockwise_epochs,
            "finetune_epochs": finetune_epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "temperature": temperature,
            "alpha": alpha,
            "probe_batches": probe_batches,
            "probe_images": n_probe,
            "keep": sorted(pinned),
            "exclude": _names_list(exclude, "exclude"),
            "seed": seed,
            "train_images": int(len(x_train)),
            "val_images": int(len(x_val)),
            "test_images": None if test is None else int(len(test[0])),
        },
        "seconds": seconds,
        "scratch": None,
    }

    if scratch_baseline:
        report["scratch"] = _scratch_baseline(
            student,
            kind,
            x_train,
            y_train,
            batch_size,
            seed,
            blockwise_epochs + finetune_epochs,
            learning_rate,
            (x_val, y_val),
            test,
        )
        seconds["scratch"] = report["scratch"]["seconds"]
    return student, report


def _candidate_table(backbone, blocks, nodes, pinned, excluded, metric, bn_momentum):
    """`{block: {kind: {"macs", "params", "model"}}}` of the usable candidates.

    `keep` is always there (its model is `None`: the teacher's block); another
    candidate only when allowed by the shapes, `keep` and `exclude`, and
    cheaper than the teacher's block in the budget's `metric`.
    """
    table = {}
    for b in blocks:
        table[b.name] = {}
        for kind in b.allowed():
            if kind != "keep" and (b.name in pinned or kind in excluded[b.name]):
                continue
            model = _candidate_model(backbone, b, kind, nodes, bn_momentum)
            entry = {
                "macs": cost.count_macs(model),
                "params": cost.count_params(model),
                "model": None if kind == "keep" else model,
            }
            if kind == "keep" or entry[metric] < table[b.name]["keep"][metric]:
                table[b.name][kind] = entry
    return table


def _scan_student(teacher, student_backbone):
    """A `ScanModel` on the student backbone with the teacher's settings and taps.

    Heads, attention modules and the final classifier start from the
    teacher's weights (the taps keep their shapes, so they fit).
    """
    config = teacher.get_config()
    student = ScanModel(
        student_backbone,
        num_classes=config["num_classes"],
        exits=config["exits"],
        head=config["head"],
        attention=config["attention"],
        distillation=config["distillation"],
        alpha=config["alpha"],
        temperature=config["temperature"],
        beta=config["beta"],
        name=_student_name(teacher),
    )
    teacher_layers = {layer.name: layer for layer in teacher.layers}
    backbone_names = {layer.name for layer in student_backbone.layers}
    for layer in student.layers:
        donor = teacher_layers.get(layer.name)
        if layer.name in backbone_names or donor is None or not layer.weights:
            continue
        if [w.shape for w in donor.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(donor.get_weights())
    return student


def _block_report(block, choice, candidates, errors, initial, after):
    """The report entry of one block: choice, costs, errors."""
    table = candidates[block.name]
    key = f"{block.name}/{choice}"
    return {
        "name": block.name,
        "output_layer": block.output_layer,
        "input_shape": list(block.input_shape),
        "output_shape": list(block.output_shape),
        "choice": choice,
        "macs": {
            "teacher": int(table["keep"]["macs"]),
            "student": int(table[choice]["macs"]),
        },
        "params": {
            "teacher": int(table["keep"]["params"]),
            "student": int(table[choice]["params"]),
        },
        "candidates": {
            k: {
                "macs": int(e["macs"]),
                "params": int(e["params"]),
                "probe_error": errors[block.name].get(k),
            }
            for k, e in table.items()
        },
        "feature_error": None
        if choice == "keep"
        else {
            "initial": initial.get(key),
            "after_probe": errors[block.name][choice],
            "after_blockwise": after.get(key),
        },
    }


def _allocate(blocks, candidates, errors, metric, total, limit):
    """Greedy multiple-choice knapsack (see `ALLOCATION_RULE`)."""
    choices = {b.name: "keep" for b in blocks}

    def moves(cheaper):
        for b in blocks:
            cur = choices[b.name]
            cur_cost, cur_err = candidates[b.name][cur][metric], errors[b.name][cur]
            for kind, entry in candidates[b.name].items():
                delta_cost = cur_cost - entry[metric]
                delta_err = errors[b.name][kind] - cur_err
                if kind == cur or (delta_cost > 0) != cheaper:
                    continue
                yield b.name, kind, delta_cost, delta_err

    while total > limit:
        # Least error added per unit of cost saved; ties: the larger saving.
        name, kind, saved, _ = min(
            moves(cheaper=True), key=lambda m: (m[3] / m[2], -m[2])
        )
        choices[name] = kind
        total -= saved
    while True:
        # Upgrades that fit: most error removed per unit of cost added.
        fits = [m for m in moves(cheaper=False) if m[3] < 0 and total - m[2] <= limit]
        if not fits:
            break
        name, kind, saved, _ = min(fits, key=lambda m: (m[3] / max(-m[2], 1e-12), m[2]))
        choices[name] = kind
        total -= saved
    return choices


def _scratch_baseline(
    student, kind, x, y, batch_size, seed, epochs, learning_rate, val, test
):
    """Trains the student's architecture from scratch; returns its accuracies."""
    t0 = time.time()
    keras.utils.set_random_seed(seed + 3)
    scratch = _fresh_model(student)
    optimizer = keras.optimizers.Adam(learning_rate)
    if isinstance(scratch, ScanModel):
        scratch.compile(optimizer=optimizer, metrics=["accuracy"], jit_compile=False)
    elif kind == "features":
        return {"epochs": epochs, "accuracy": None, "seconds": 0.0}
    else:
        scratch.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=kind == "logits"
            ),
            jit_compile=False,
        )
    if epochs > 0:
        scratch.fit(_batches(x, y, batch_size, seed + 4), epochs=epochs, verbose=0)
    accuracy = {"val": _accuracy(scratch, *val, 256, kind)}
    if test is not None:
        accuracy["test"] = _accuracy(scratch, *test, 256, kind)
    return {
        "epochs": epochs,
        "recipe": "random initialisation, same optimizer and batches, the "
        "model's own loss (no teacher)",
        "accuracy": accuracy,
        "seconds": time.time() - t0,
    }
