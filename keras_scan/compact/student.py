"""Student construction for `keras_scan.compress`.

The candidate blocks (`"width_*"`, `"sepconv"`, `"drop"`, or the teacher's
own block replayed), each as a standalone `block input -> block output` model
warm-started from the teacher (`candidate_model`); the student backbone, the
teacher's graph replayed with the chosen blocks swapped in
(`build_backbone`); and a SCAN student on it (`scan_student`).
"""

import keras
import numpy as np
from keras import ops

from keras_scan import graph
from keras_scan.compact import blocks as blocks_lib
from keras_scan.scan_model import ScanModel

_WIDTHS = {"width_0.5": 0.5, "width_0.25": 0.25}

_TAGS = {"width_0.5": "w50", "width_0.25": "w25", "sepconv": "sep", "drop": "drop"}

_BN_MOMENTUM = 0.9


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
        node = graph.producer(tensor)
        if node is None:
            return None
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
    if not isinstance(branch[2], blocks_lib.ACTIVATIONS):
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


def candidate_model(backbone, block, kind, nodes, bn_momentum):
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


def build_backbone(backbone, blocks, choices, trained, bn_momentum):
    """The student backbone: the teacher's graph replayed with blocks replaced.

    Kept layers are cloned with the teacher's weights and names; replacement
    layers take the weights of the same-named layers of `trained` (the
    block-wise distilled candidate models), and each block's last layer keeps
    the teacher's name, so taps and exits stay where they were.
    """
    nodes = blocks_lib.graph_nodes(backbone)
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


def scan_student(teacher, student_backbone):
    """A `ScanModel` on the student backbone with the teacher's settings and taps.

    Heads, attention modules and the final classifier start from the
    teacher's weights (the taps keep their shapes, so they fit).
    """
    # Every setting of the teacher (its get_config), only the backbone and name new.
    config = teacher.get_config()
    config.update(backbone=student_backbone, name=_student_name(teacher))
    student = ScanModel.from_config(config)
    teacher_layers = {layer.name: layer for layer in teacher.layers}
    backbone_names = {layer.name for layer in student_backbone.layers}
    for layer in student.layers:
        donor = teacher_layers.get(layer.name)
        if layer.name in backbone_names or donor is None or not layer.weights:
            continue
        if [w.shape for w in donor.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(donor.get_weights())
    return student


def _student_name(model):
    return f"{model.name}_compact"


def batchnorm_momentum(backbone):
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            return min(float(layer.momentum), _BN_MOMENTUM)
    return _BN_MOMENTUM
