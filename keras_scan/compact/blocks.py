"""Step 1 of `keras_scan.compress`: the replaceable blocks of a backbone.

A block is the section between two consecutive cut points of the graph that
contains a merge (a residual `Add`), extended over a trailing activation; see
`find_blocks`. `CANDIDATES` lists what a block may be replaced with.
"""

import dataclasses
import math

import keras

from keras_scan import graph
from keras_scan.backbones import taps as taps_lib

CANDIDATES = ("keep", "width_0.5", "width_0.25", "sepconv", "drop")

_NAME_SUFFIXES = ("_out", "_add", "_relu", "_activation")

ACTIVATIONS = (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
)


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


def graph_nodes(backbone):
    """The nodes of `backbone` in topological order (positions as in `Block`).

    The one place the compact package reads the graph order, the same
    `keras_scan.backbones.taps` numbers its cut points by.
    """
    return graph.topological_nodes(backbone)


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
    nodes = graph_nodes(backbone)
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
                and isinstance(tail[0].operation, ACTIVATIONS)
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
