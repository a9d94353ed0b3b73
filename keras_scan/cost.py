"""Costs of functional Keras 3 models: MACs, parameters, activation memory, file size.

Costs are read from the symbolic graph (layer attributes and the shapes of the
`KerasTensor`s each call consumes and produces); nothing is run and no backend
is called (`keras` and `numpy` only), so every backend gives the same numbers. The
one exception is `model_file_bytes`, which saves the model to a temporary file.

All MACs are multiply-accumulates for **batch size 1**: the leading (batch)
dimension of every shape is ignored, whatever its value. "Elements" below is the
product of the non-batch dimensions of a tensor. The conventions follow common
counters (fvcore, keras-flops, thop): a convolution or dense layer counts its
multiply-accumulates and nothing for the bias; cheap per-element work
(normalisation, activations, merges) counts one MAC per output element so that
heads made of many small layers are not free.

| Operation | MACs |
| --- | --- |
| `Conv1D`/`Conv2D`/`Conv3D` | out_elems * prod(kernel_size) * in_ch / groups |
| `DepthwiseConv1D`/`DepthwiseConv2D` | out_elems * prod(kernel_size) (the depth multiplier is in out_elems) |
| `SeparableConv1D`/`SeparableConv2D` | depthwise (out_positions * in_ch * depth_multiplier * prod(kernel_size)) + pointwise (out_elems * in_ch * depth_multiplier) |
| `Conv1DTranspose`/`Conv2DTranspose`/`Conv3DTranspose` | in_positions * prod(kernel_size) * in_ch * out_ch |
| `Dense` | out_elems * in_features (so leading non-batch dims multiply) |
| `EinsumDense` | out_elems * product of the contracted kernel dims |
| `BatchNormalization`, `LayerNormalization`, `GroupNormalization`, `UnitNormalization` | out_elems (the folded inference form y = a * x + b is one MAC per element; a converter may fold it into the previous convolution, which this count does not assume) |
| `MaxPooling*`/`AveragePooling*` | out_elems * prod(pool_size) |
| `GlobalAveragePooling*`/`GlobalMaxPooling*` | in_elems |
| `Add`/`Subtract`/`Multiply`/`Average`/`Maximum`/`Minimum` (n inputs) | (n - 1) * out_elems |
| activation layers (`Activation`, `ReLU`, `LeakyReLU`, `PReLU`, `ELU`, `Softmax`), `Rescaling`, `Normalization` | out_elems (`Activation("linear")`: 0) |
| `UpSampling*`, `Resizing` | 0 for nearest-neighbour, 4 * out_elems for any interpolating mode |
| `Reshape`, `Flatten`, `Concatenate`, `Permute`, `RepeatVector`, `ZeroPadding*`, `Cropping*`, dropout and noise layers, random augmentation layers (identity at inference), `Identity`, `InputLayer` | 0 |
| a layer whose `activation` attribute is not linear (`Conv2D(..., activation="relu")`, `Dense(..., activation="softmax")`) | + out_elems |
| `keras.ops` calls in the graph (`x + y`, `keras.ops.relu(x)`, ...) | elementwise: max(1, n_tensor_inputs - 1) * out_elems; reductions (`mean`, `sum`, `max`, ...): in_elems; `matmul`: out_elems * inner dim; shape ops (`reshape`, `transpose`, `concatenate`, ...): 0 |
| a nested functional or sequential model | the sum of its own layers, counted with the shapes it is called with |
| a custom layer with a `compute_macs(input_shapes)` method (keras_scan's `AttentionModule`, `ShallowClassifier`) | what that method returns; `chain_macs` helps it count its sublayers with these rules |

Any other operation counts 0 MACs and raises a `UserWarning` naming its class
(once per class per call), so a missing rule is never silent.

Parameters are the sizes of a layer's weights, trainable or not (batch-norm moving
statistics included, as in `model.count_params()`); a weight shared by several
calls or layers is counted once, on its first call in topological order.

Peak activation memory (`peak_activation_bytes`) is estimated from the graph: the
ops run one after another in topological order, a tensor is alive from the op that
produces it until its last consumer has run, and the peak is the largest sum of the
sizes (float32, batch 1) of the tensors alive at once, the input included and the
weights excluded. This is the lower bound an arena planner such as LiteRT's can
reach for a sequential schedule. Composite layers (keras_scan's `AttentionModule`,
`ShallowClassifier`) count only their inputs and outputs. For CIFAR ResNets the peak
sits in the first stage (full resolution), so it only drops when a model cut short
ends inside that stage; parameters (model size) are what shrink most.
"""

import dataclasses
import math
import os
import tempfile
import warnings

import keras
import numpy as np

from keras_scan import graph as graph_lib

__all__ = [
    "LayerCost",
    "count_macs",
    "count_params",
    "layer_costs",
    "macs_to_tensors",
    "node_macs",
    "chain_macs",
    "peak_activation_bytes",
    "model_file_bytes",
    "model_costs",
    "compare_costs",
]


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Cost of one call of an operation in a functional model.

    Args:
        name: str. The layer name; layers of a nested model are named
            `"outer/inner"`.
        class_name: str. The class name of the operation.
        macs: int. Multiply-accumulates of this call, batch size 1.
        params: int. Parameters owned by the layer, counted on its first call
            only (0 on later calls and for weights already counted).
        output_shape: tuple. The output shape of the call (batch dim included);
            a tuple of shapes when the call has several outputs.
    """

    name: str
    class_name: str
    macs: int
    params: int
    output_shape: tuple


# === Operation tables ===


def _layer_classes(*names):
    """Returns the `keras.layers` classes among `names` (missing ones skipped)."""
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


_CONV = _layer_classes("Conv1D", "Conv2D", "Conv3D")
_DEPTHWISE = _layer_classes("DepthwiseConv1D", "DepthwiseConv2D")
_SEPARABLE = _layer_classes("SeparableConv1D", "SeparableConv2D")
_TRANSPOSE = _layer_classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_DENSE = _layer_classes("Dense")
_EINSUM_DENSE = _layer_classes("EinsumDense")
_PER_ELEMENT = _layer_classes(
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Rescaling",
    "Normalization",
)
_ACTIVATION = _layer_classes("Activation")
_POOLING = _layer_classes(
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
)
_GLOBAL_POOLING = _layer_classes(
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
)
_MERGE = _layer_classes("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_RESAMPLING = _layer_classes("UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing")
_FREE = _layer_classes(
    "InputLayer",
    "Reshape",
    "Flatten",
    "Concatenate",
    "Permute",
    "RepeatVector",
    "Identity",
    "ActivityRegularization",
    "Masking",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
)

# `keras.ops` operations (not layers) that appear in functional graphs, by class name.
_OP_ELEMENTWISE = frozenset(
    "Abs Absolute Add Subtract Multiply Divide TrueDivide DivideNoNan FloorDivide "
    "Maximum Minimum Power Negative Reciprocal Square Sqrt Exp Log Tanh Sin Cos Clip "
    "Where Relu Relu6 Sigmoid HardSigmoid Silu HardSilu Gelu Glu Elu Selu Celu "
    "LeakyRelu Softplus Softsign Softmax LogSoftmax LogSigmoid HardTanh".split()
)
_OP_REDUCTION = frozenset("Mean Sum Max Min Prod Var Std Amax Amin".split())
_OP_FREE = frozenset(
    "Reshape Transpose Concatenate ExpandDims Squeeze Stack Hstack Vstack GetItem "
    "Slice Split Moveaxis Swapaxes Pad Copy StopGradient BroadcastTo Ravel Tile "
    "Repeat Cast ZerosLike OnesLike Flip Roll".split()
)


# === Shape helpers ===


def _elems(tensor, where):
    """Number of non-batch elements of `tensor`; `where` names the call for errors."""
    shape = tuple(tensor.shape)[1:]
    if any(d is None for d in shape):
        raise ValueError(
            f"Cannot count the MACs of {where}: a tensor it uses has an undefined "
            f"dimension, shape={tuple(tensor.shape)}. Build the model with a fixed "
            "input shape (e.g. `keras.Input((224, 224, 3))`)."
        )
    return math.prod(shape)


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _spatial(shape, layer):
    """Spatial dims of a (batch, ..., channels) or (batch, channels, ...) shape."""
    return tuple(shape[1:-1]) if _channels_last(layer) else tuple(shape[2:])


def _channels(shape, layer):
    return shape[-1] if _channels_last(layer) else shape[1]


def _is_linear(activation):
    if activation is None or activation is keras.activations.linear:
        return True
    return getattr(activation, "__name__", None) == "linear"


def _activation_macs(layer, out_elems):
    return 0 if _is_linear(getattr(layer, "activation", None)) else out_elems


# === Per-call MACs ===


class _Context:
    """State shared by one top-level count: warned classes and counted weights."""

    def __init__(self):
        self.warned = set()
        self.seen_weights = set()

    def warn_unknown(self, op):
        class_name = type(op).__name__
        if class_name in self.warned:
            return
        self.warned.add(class_name)
        warnings.warn(
            f"keras_scan.cost has no MAC rule for operations of class "
            f"`{class_name}` (e.g. `{getattr(op, 'name', op)}`); they are counted as "
            "0 MACs.",
            UserWarning,
            stacklevel=3,
        )


def _call_macs(op, inputs, outputs, ctx):
    """MACs of one call of `op` mapping `inputs` to `outputs` (KerasTensors)."""
    where = f"`{getattr(op, 'name', op)}` ({type(op).__name__})"
    if _is_graph_model(op):
        return sum(
            c.macs for c in _graph_costs(op, inputs, "", ctx, count_params=False)
        )
    if not isinstance(op, keras.layers.Layer):
        return _op_macs(op, inputs, outputs, ctx, where)
    if hasattr(op, "compute_macs"):
        return int(op.compute_macs([tuple(t.shape) for t in inputs]))
    if isinstance(op, _FREE):
        return 0
    out = outputs[0]
    if isinstance(op, _ACTIVATION):
        return _activation_macs(op, _elems(out, where))
    if isinstance(op, _PER_ELEMENT):
        return _elems(out, where)
    if isinstance(op, _MERGE):
        return (len(inputs) - 1) * _elems(out, where)
    if isinstance(op, _GLOBAL_POOLING):
        return _elems(inputs[0], where)
    if isinstance(op, _POOLING):
        return _elems(out, where) * math.prod(op.pool_size)
    if isinstance(op, _RESAMPLING):
        nearest = getattr(op, "interpolation", "nearest") == "nearest"
        return 0 if nearest else 4 * _elems(out, where)

    out_elems = _elems(out, where)
    in_shape = tuple(inputs[0].shape)
    if isinstance(op, _CONV):
        in_ch = _channels(in_shape, op)
        macs = out_elems * math.prod(op.kernel_size) * in_ch // op.groups
    elif isinstance(op, _DEPTHWISE):
        macs = out_elems * math.prod(op.kernel_size)
    elif isinstance(op, _SEPARABLE):
        in_ch = _channels(in_shape, op)
        mid_ch = in_ch * op.depth_multiplier
        positions = math.prod(_spatial(tuple(out.shape), op))
        macs = positions * mid_ch * math.prod(op.kernel_size) + out_elems * mid_ch
    elif isinstance(op, _TRANSPOSE):
        in_positions = _elems(inputs[0], where) // _channels(in_shape, op)
        in_ch = _channels(in_shape, op)
        out_ch = _channels(tuple(out.shape), op)
        macs = in_positions * math.prod(op.kernel_size) * in_ch * out_ch
    elif isinstance(op, _DENSE):
        macs = out_elems * in_shape[-1]
    elif isinstance(op, _EINSUM_DENSE):
        macs = out_elems * _einsum_contracted(op)
    else:
        ctx.warn_unknown(op)
        return 0
    return int(macs) + _activation_macs(op, out_elems)


def _einsum_contracted(layer):
    """Product of the kernel dims of an `EinsumDense` summed over (not in output)."""
    lhs, out_spec = layer.equation.split("->")
    kernel_spec = lhs.split(",")[1]
    kernel_shape = tuple(layer.kernel.shape)
    return math.prod(
        d for letter, d in zip(kernel_spec, kernel_shape) if letter not in out_spec
    )


def _op_macs(op, inputs, outputs, ctx, where):
    """MACs of a `keras.ops` operation (not a layer) in a functional graph."""
    name = type(op).__name__
    if not type(op).__module__.startswith("keras.") or not outputs:
        ctx.warn_unknown(op)
        return 0
    if name in _OP_FREE:
        return 0
    if name in _OP_ELEMENTWISE:
        return max(1, len(inputs) - 1) * _elems(outputs[0], where)
    if name in _OP_REDUCTION:
        return _elems(inputs[0], where) if inputs else 0
    if name == "Matmul" and inputs:
        return _elems(outputs[0], where) * int(inputs[0].shape[-1])
    ctx.warn_unknown(op)
    return 0


# === Graph traversal ===


def _is_graph_model(obj):
    """True for a functional model or a sequential model with a known input."""
    return graph_lib.functional_graph(obj) is not None


def _check_model(model):
    if isinstance(model, keras.Sequential) and not _is_graph_model(model):
        raise ValueError(
            "`model` is a Sequential model without a known input shape, so it has "
            "no graph to count. Start it with `keras.Input(shape)` or call "
            f"`model.build(input_shape)`. Received: model={model!r}"
        )
    if not _is_graph_model(model):
        raise TypeError(
            "`model` must be a functional (or sequential) Keras model. "
            f"Received: model={model!r}"
        )


def _same_shapes(refs, tensors):
    return len(refs) == len(tensors) and all(
        tuple(r.shape)[1:] == tuple(t.shape)[1:] for r, t in zip(refs, tensors)
    )


def _calls(graph, input_tensors=None):
    """Yields `(node, inputs, outputs)` for each node of `graph` in order.

    With `input_tensors` whose shapes differ from the graph's own inputs (a nested
    backbone built for `(None, None, 3)` and called on 96x96 images), the shapes are
    propagated again with each operation's `compute_output_spec`, which leaves the
    model untouched.
    """
    nodes = graph_lib.topological_nodes(graph)
    if input_tensors is None or _same_shapes(graph.inputs, input_tensors):
        for node in nodes:
            yield node, list(node.input_tensors), list(node.outputs)
        return
    tensors = {id(ref): x for ref, x in zip(graph.inputs, input_tensors)}
    for node in nodes:
        if node.is_input or not node.operation:
            yield node, [], [tensors.get(id(x), x) for x in node.outputs]
            continue
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = keras.tree.flatten(
            node.operation.compute_output_spec(*args, **kwargs)
        )
        for ref, x in zip(node.outputs, outputs):
            tensors[id(ref)] = x
        yield node, [tensors[id(x)] for x in node.input_tensors], outputs


def _new_params(op, ctx):
    """Size of the weights of `op` not counted yet (then marks them counted)."""
    total = 0
    for w in getattr(op, "weights", ()):
        if id(w) not in ctx.seen_weights:
            ctx.seen_weights.add(id(w))
            total += math.prod(w.shape)
    return int(total)


def _shape_of(outputs):
    shapes = tuple(tuple(x.shape) for x in outputs)
    return shapes[0] if len(shapes) == 1 else shapes


def _graph_costs(model, input_tensors, prefix, ctx, count_params=True):
    """Costs of every call in `model`'s graph, nested models expanded."""
    costs = []
    for node, inputs, outputs in _calls(
        graph_lib.functional_graph(model), input_tensors
    ):
        op = node.operation
        name = prefix + getattr(op, "name", type(op).__name__)
        if _is_graph_model(op):
            costs.extend(_graph_costs(op, inputs, name + "/", ctx, count_params))
            continue
        costs.append(
            LayerCost(
                name=name,
                class_name=type(op).__name__,
                macs=int(_call_macs(op, inputs, outputs, ctx)),
                params=_new_params(op, ctx) if count_params else 0,
                output_shape=_shape_of(outputs),
            )
        )
    return costs


# === Public API ===


def chain_macs(steps, input_shape):
    """MACs of layers applied one after another, batch size 1.

    For composite layers that run sublayers inside `call` (no graph to read):
    their `compute_macs` lists the steps. Each step is a built layer, or the
    string `"elementwise"` (one MAC per element of the current tensor, for a
    `keras.ops` activation or product).

    Args:
        steps: list of layers or `"elementwise"`.
        input_shape: tuple. Shape of the first step's input (batch dim included).

    Returns:
        int. The sum of the steps' MACs under this module's rules.
    """
    ctx = _Context()
    x = keras.KerasTensor(tuple(input_shape))
    total = 0
    for step in steps:
        if step == "elementwise":
            total += _elems(x, "elementwise step")
            continue
        out = step.compute_output_spec(x)
        total += _call_macs(step, [x], [out], ctx)
        x = out
    return int(total)


def node_macs(node):
    """MACs of one call of an operation (a Keras `Node`), batch size 1.

    The rules are those of the module docstring; a nested model's node costs the
    sum of its layers, counted with the shapes of this call.

    Args:
        node: a Keras `Node`, e.g. one of
            `keras_scan.graph.topological_nodes(model)` or
            `keras_scan.graph.producer(tensor)`.

    Returns:
        int. The multiply-accumulates of the call.
    """
    if not all(hasattr(node, a) for a in ("operation", "input_tensors", "outputs")):
        raise TypeError(f"`node` must be a Keras Node. Received: node={node!r}")
    if node.is_input or not node.operation:
        return 0
    return int(
        _call_macs(
            node.operation, list(node.input_tensors), list(node.outputs), _Context()
        )
    )


def layer_costs(model):
    """Per-call MACs and parameters of a functional model, in topological order.

    Layers of nested functional or sequential models are listed in place of the
    nested model (named `"outer/inner"`), counted with the shapes the nested model
    is called with.

    Args:
        model: a functional `keras.Model` (or a `keras.Sequential` with a known
            input shape).

    Returns:
        list of `LayerCost`, one per call of an operation.

    Example:

    ```python
    model = keras.applications.ResNet50(weights=None)
    costs = keras_scan.cost.layer_costs(model)
    sum(c.macs for c in costs)  # ~4.1e9
    ```
    """
    _check_model(model)
    return _graph_costs(model, None, "", _Context())


def count_macs(model):
    """Total MACs of one forward pass of `model` with batch size 1.

    Args:
        model: a functional `keras.Model` (or a `keras.Sequential` with a known
            input shape).

    Returns:
        int. The sum of `LayerCost.macs` over `layer_costs(model)`.
    """
    return sum(c.macs for c in layer_costs(model))


def count_params(model):
    """Number of parameters (trainable or not) of a built model.

    Equals `model.count_params()`; each shared weight is counted once.

    Args:
        model: a built `keras.Model` or layer.

    Returns:
        int. The number of scalar parameters.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"`model` must be a Keras model or layer. Received: model={model!r}"
        )
    if not model.built:
        raise ValueError(
            "`model` must be built to count its parameters; call it on data or "
            f"`model.build(input_shape)` first. Received: model={model!r}"
        )
    seen = {}
    for w in model.weights:
        seen[id(w)] = math.prod(w.shape)
    return int(sum(seen.values()))


def macs_to_tensors(model):
    """Cumulative MACs needed to compute each tensor of a functional graph.

    For every tensor of the top-level graph (the model inputs and the outputs of
    every call), the MACs of all calls it depends on, each call counted once even
    when reached along several paths (as in a residual block). Tensors inside a
    nested model are not listed; the nested model counts as one call.

    Args:
        model: a functional `keras.Model` (or a `keras.Sequential` with a known
            input shape).

    Returns:
        dict mapping `id(KerasTensor)` to int MACs.

    Example:

    ```python
    cum = keras_scan.cost.macs_to_tensors(model)
    cum[id(model.get_layer("conv4_block6_out").output)]  # MACs up to that tap
    ```
    """
    _check_model(model)
    ctx = _Context()
    nodes = graph_lib.topological_nodes(model)
    index = {id(n): i for i, n in enumerate(nodes)}
    macs = np.zeros(len(nodes), dtype=np.int64)
    ancestors = np.zeros((len(nodes), len(nodes)), dtype=bool)
    producer = {}  # id(tensor) -> index of the node that outputs it
    for node in nodes:
        i = index[id(node)]
        if not node.is_input and node.operation:
            macs[i] = _call_macs(
                node.operation, list(node.input_tensors), list(node.outputs), ctx
            )
        for x in node.input_tensors:
            if id(x) in producer:
                ancestors[i] |= ancestors[producer[id(x)]]
        ancestors[i, i] = True
        for x in node.outputs:
            producer[id(x)] = i
    cumulative = ancestors.astype(np.int64) @ macs
    return {t: int(cumulative[i]) for t, i in producer.items()}


# === Memory and file size ===


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
    from keras_scan.backbones.taps import check_functional

    check_functional(model, "model")
    nodes = graph_lib.topological_nodes(model)
    consumers = graph_lib.tensor_uses(model)
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
        "params": int(count_params(model)),
        "macs": int(count_macs(model)),
        "file_bytes": int(model_file_bytes(model)),
        "peak_activation_bytes": int(peak_activation_bytes(model)),
    }


def compare_costs(chosen, full):
    """Two `model_costs` side by side, with the relative reduction of each.

    Args:
        chosen: dict. `model_costs` of the smaller model.
        full: dict. `model_costs` of the model it is compared to.

    Returns:
        `{"chosen": chosen, "full": full, "reduction": {key: 1 - chosen / full}}`
        (rounded to 6 digits; a key whose `full` value is 0 is left out).
    """
    out = {"chosen": chosen, "full": full, "reduction": {}}
    for key in ("params", "macs", "file_bytes", "peak_activation_bytes"):
        if full.get(key):
            out["reduction"][key] = round(1.0 - chosen[key] / full[key], 6)
    return out
