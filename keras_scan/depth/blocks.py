"""The residual blocks a network grows by, and how a new block starts.

Depth schedule. The unit is a residual block: the blocks are the cut points
of the backbone whose layer name ends in `block<N>_out` (cifar_resnet's
`stage{s}_block{b}_out`, Keras Applications ResNets' `conv{s}_block{b}_out`),
or the layer names passed as `blocks`. The network at depth d is the stem, the
first d blocks and a classifier.

Warm start. Each block starts near the identity, so accuracy does not collapse
at an expansion: the last batch-norm gamma (and beta) of every residual branch
starts at zero (the branch outputs zero and `relu(x + 0) = x` for the
post-ReLU input x), and a 1x1 projection shortcut (the first block of a stage,
where the resolution halves and the width doubles) starts as a channel-padded
identity (kernel `[I, 0]`, gamma 1, beta 0).
"""

import re

import keras
import numpy as np

from keras_scan import graph
from keras_scan.backbones import registry
from keras_scan.backbones import taps as taps_lib
from keras_scan.backbones.cifar_resnet import cifar_resnet

__all__ = [
    "BACKBONES",
    "BLOCK_NAME",
    "make_backbone",
    "residual_blocks",
    "warm_start_block",
]

# Backbones `grow` builds by name: the registry's CIFAR ResNets (name ->
# cifar_resnet depth).
BACKBONES = registry.CIFAR_RESNETS
# Layer names of residual block outputs.
BLOCK_NAME = re.compile(r".*block\d+_out$")


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
        found = [t for t in points if BLOCK_NAME.fullmatch(t.name)]
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


def _residual_add(tensor):
    """The merge node (`Add`) a block output comes from, through activations."""
    node = graph.producer(tensor)
    for _ in range(4):
        op = node.operation
        if isinstance(op, keras.layers.Add) or type(op).__name__ == "Add":
            return node
        if len(node.input_tensors) != 1:
            return None
        node = graph.producer(node.input_tensors[0])
    return None


def _ancestor_count(model_input, tensor):
    if tensor is model_input:
        return 0
    return len(keras.Model(model_input, tensor).layers)


def warm_start_block(model_input, tap):
    """Makes one residual block start as (close to) the identity.

    Args:
        model_input: the backbone's input tensor.
        tap: the block's output, a `keras_scan.backbones.Tap`.

    Returns:
        A dict of what was done (`"zero_gamma"`: the batch norm zeroed,
        `"identity_shortcut"`: the projection set to the identity), or None
        when the block has no residual merge to work on.
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
    bn = graph.producer(branch).operation
    if isinstance(bn, keras.layers.BatchNormalization) and bn.gamma is not None:
        bn.gamma.assign(np.zeros(bn.gamma.shape, bn.gamma.dtype))
        bn.beta.assign(np.zeros(bn.beta.shape, bn.beta.dtype))
        done["zero_gamma"] = bn.name
    sc_node = graph.producer(shortcut)
    sc_bn = sc_node.operation
    if isinstance(sc_bn, keras.layers.BatchNormalization):
        conv = graph.producer(sc_node.input_tensors[0]).operation
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
