"""Exit taps: the cut points and resolution stages of a functional backbone.

A *cut point* is a tensor that separates the model's input from its output:
every path from input to output passes through it, so the network can be run
as `prefix(image) -> tap` then `suffix(tap) -> output` without recomputing
anything. ResNet block outputs, DenseNet transitions and MobileNet block
outputs are cut points; tensors inside a residual block are not.

Taps are found from the graph, never from layer names, because some Keras
Applications (MobileNetV3) name layers from a global counter.
"""

import dataclasses
import re

import keras

from keras_scan import graph

# Layers that only move pixels around: their outputs are cut points of a
# different size from the stage they sit in (MobileNet's `block_6_pad`), so
# they are never taps.
_GLOBAL_POOLS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten")
_NOT_TAPS = (
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping2D",
    "InputLayer",
)


def is_counter_name(layer):
    """Whether `layer`'s name was generated from Keras' global counter
    (`activation_11`, `re_lu_3`): such names change with what else was built
    in the process, so they must never identify a tap."""
    # The same snake-casing as Keras' auto-naming (`ReLU` -> `re_lu`).
    snake = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", snake).lower()
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", layer.name) is not None


@dataclasses.dataclass(frozen=True)
class Tap:
    """One candidate exit position (timm's feature_info, keras-hub's pyramid level).

    Attributes:
        name: name of the layer whose output is tapped.
        position: index of that layer's node in topological order.
        channels: channels of the tapped feature map.
        spatial: `(height, width)` of the feature map.
        reduction: input height // feature height (the stride).
        stage: index of the resolution stage (0 = input resolution).
        macs: MACs (batch 1) of the backbone up to and including this tensor.
        tensor: the `KerasTensor` itself.
    """

    name: str
    position: int
    channels: int
    spatial: tuple
    reduction: int
    stage: int
    macs: int
    tensor: object = dataclasses.field(repr=False, compare=False)

    def as_dict(self):
        return {
            "name": self.name,
            "position": self.position,
            "channels": self.channels,
            "spatial": list(self.spatial),
            "reduction": self.reduction,
            "stage": self.stage,
            "macs": self.macs,
        }


def check_functional(model, arg_name="model"):
    """Raises a clear error unless `model` is a single-input functional model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{arg_name}` must be a functional `keras.Model`. Received: "
            f"{arg_name}={model!r} of type {type(model).__name__}"
        )
    if isinstance(model, keras.Sequential) or graph.functional_graph(model) is None:
        kind = "Sequential" if isinstance(model, keras.Sequential) else "subclassed"
        raise TypeError(
            f"`{arg_name}` must be a functional Keras model (built with "
            f"`keras.Model(inputs, outputs)`); a {kind} model has no graph to cut. "
            f"Received: {arg_name}={model.name!r} ({type(model).__name__}). "
            "Wrap it: `inputs = keras.Input(shape); "
            "model = keras.Model(inputs, layer_by_layer(inputs))`."
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"`{arg_name}` must have exactly one input (an image). Received: "
            f"{arg_name}={model.name!r} with {len(model.inputs)} inputs"
        )
    shape = model.inputs[0].shape
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"`{arg_name}` must take images of a fixed size (batch, height, width, "
            f"channels). Received: input shape {tuple(shape)}; build it with "
            "`input_shape=(height, width, channels)`"
        )


def cut_points(model):
    """All 4D cut points of a functional model, in topological order.

    Args:
        model: a single-input functional `keras.Model` with a fixed input size.

    Returns:
        A list of `Tap`.
    """
    from keras_scan import cost

    check_functional(model)
    nodes = graph.topological_nodes(model)
    consumers = graph.tensor_uses(model)
    for t in model.outputs:
        consumers[id(t)] = consumers.get(id(t), 0) + 1

    # Calls per layer within THIS graph (a layer also used by another model,
    # e.g. a stage sub-model, has more inbound nodes but is not shared here).
    calls = {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    macs = cost.macs_to_tensors(model)
    input_height = model.inputs[0].shape[1]
    remaining = dict(consumers)
    live = set()
    found = []
    for position, node in enumerate(nodes):
        for t in node.input_tensors:
            remaining[id(t)] -= 1
            if remaining[id(t)] == 0:
                live.discard(id(t))
        outputs = node.outputs
        for t in outputs:
            if remaining.get(id(t), 0) > 0:
                live.add(id(t))
        if node.is_input or len(outputs) != 1 or len(live) != 1:
            continue
        t = outputs[0]
        if id(t) not in live or len(t.shape) != 4:
            continue
        op = node.operation
        if type(op).__name__ in _GLOBAL_POOLS:
            break  # the classifier top starts: no feature maps after it
        if type(op).__name__ in _NOT_TAPS:
            continue
        if calls[id(op)] > 1:
            continue  # a shared layer: its name does not identify one tensor
        found.append(
            Tap(
                name=op.name,
                position=position,
                channels=int(t.shape[-1]),
                spatial=(int(t.shape[1]), int(t.shape[2])),
                reduction=max(1, round(input_height / int(t.shape[1]))),
                stage=0,
                macs=int(macs.get(id(t), 0)),
                tensor=t,
            )
        )
    # Number resolution stages in order of appearance.
    stage, last = -1, None
    staged = []
    for tap in found:
        if tap.spatial != last:
            stage, last = stage + 1, tap.spatial
        staged.append(dataclasses.replace(tap, stage=stage))
    return staged


def feature_map(model):
    """The last 4D cut point: the backbone's final feature map."""
    points = cut_points(model)
    if not points:
        raise ValueError(
            f"`model` has no 4D feature map that separates input and output. "
            f"Received: model={model.name!r}"
        )
    return points[-1]


_POINTWISE = (
    "BatchNormalization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
)


def _is_pointwise(layer):
    """A layer that mixes channels pixel by pixel and nothing else: batch norm,
    an activation, or a 1x1 convolution with stride 1."""
    if type(layer).__name__ in _POINTWISE:
        return True
    if type(layer).__name__ == "Conv2D":
        return tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1)
    return False


def _feeds(previous, tap):
    """Whether `tap` is computed from `previous` alone by one pointwise layer."""
    node = graph.producer(tap.tensor)
    if not _is_pointwise(node.operation):
        return False
    inputs = node.input_tensors
    return len(inputs) == 1 and inputs[0] is previous.tensor


def _stage_end(stage_points, layers):
    """The tap of one resolution stage: its narrowest cut point at the end.

    A stage often ends with the first 1x1 convolution of the next block
    (MobileNet and EfficientNet widen 6x there before the strided depthwise
    conv); an exit tapped there would read the widest tensor of the stage
    for no extra information. So from the stage's last cut point this walks
    back over pointwise layers (1x1 conv, batch norm, activation) fed by the
    previous cut point, and picks the narrowest tensor of that run (ties: the
    latest, with a stable layer name if one exists). A stage that ends in a
    block output (ResNet, DenseNet's transition) keeps it."""
    run = [stage_points[-1]]
    for previous in reversed(stage_points[:-1]):
        if not _feeds(previous, run[-1]):
            break
        run.append(previous)
    return min(
        run,
        key=lambda t: (t.channels, is_counter_name(layers[t.name]), -t.position),
    )


def default_taps(model, max_exits=3):
    """The paper's default: one tap at the end of each resolution stage but the
    last one (its narrowest cut point there, see `_stage_end`), keeping the
    deepest `max_exits` (3 shallow exits for ResNets)."""
    points = cut_points(model)
    final = points[-1]
    layers = {layer.name: layer for layer in model.layers}
    stages = {}
    for tap in points:
        if tap.spatial == final.spatial or tap.macs == 0:
            continue
        stages.setdefault(tap.stage, []).append(tap)
    taps = [_stage_end(stage_points, layers) for stage_points in stages.values()]
    if not taps:
        raise ValueError(
            "The input is too small for any shallow exit: the backbone "
            f"{model.name!r} reaches its final resolution {final.spatial} without "
            "an earlier resolution stage. Received: input_shape="
            f"{tuple(model.inputs[0].shape[1:])}; use a larger image size"
        )
    return taps[-max_exits:]


def resolve_exits(model, exits=None):
    """Turns `exits` (None, an int, or layer names) into a list of `Tap`.

    Args:
        model: the backbone.
        exits: `None` for `default_taps`; an int k for k taps spread evenly by
            MACs; or a list of layer names whose outputs are cut points.
    """
    points = cut_points(model)
    final = points[-1]
    candidates = [t for t in points if t.position < final.position and t.macs > 0]
    if exits is None:
        return default_taps(model)
    if isinstance(exits, bool):
        raise TypeError(
            f"`exits` must be None, an int or layer names. Received: exits={exits!r}"
        )
    if isinstance(exits, int):
        if exits < 1 or exits > len(candidates):
            raise ValueError(
                f"`exits` as an int must be between 1 and {len(candidates)} (the cut "
                f"points before the final feature map of {model.name!r} at this input "
                f"size). Received: exits={exits}"
            )
        total = final.macs
        chosen = []
        for j in range(1, exits + 1):
            target = total * j / (exits + 1)
            free = [t for t in candidates if t not in chosen]
            chosen.append(min(free, key=lambda t: abs(t.macs - target)))
        return sorted(chosen, key=lambda t: t.position)
    if isinstance(exits, str) or not all(isinstance(e, str) for e in exits):
        raise TypeError(
            f"`exits` must be None, an int or a list of layer names. Received: exits={exits!r}"
        )
    if len(exits) == 0:
        raise ValueError("`exits` must name at least one layer. Received: exits=[]")
    by_name = {t.name: t for t in candidates}
    layer_names = {layer.name for layer in model.layers}
    taps = []
    for name in exits:
        if name not in layer_names:
            raise ValueError(
                f"`exits` must be layer names of the backbone {model.name!r}; no layer "
                f"is named {name!r}. Received: exits={list(exits)}. Default taps: "
                f"{[t.name for t in default_taps(model)]}"
            )
        if name not in by_name:
            near = [t.name for t in candidates][-12:]
            raise ValueError(
                f"`exits` must be cut points (tensors every path from input to output "
                f"passes through, before the final feature map); {name!r} is not. "
                f"Received: exits={list(exits)}. Cut points include: {near}"
            )
        taps.append(by_name[name])
    if len({t.name for t in taps}) != len(taps):
        raise ValueError(
            f"`exits` must not repeat a layer. Received: exits={list(exits)}"
        )
    return sorted(taps, key=lambda t: t.position)
