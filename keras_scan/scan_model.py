"""`ScanModel`: a multi-exit CNN trained by self-distillation (SCAN)."""

import keras
from keras import ops

from keras_scan import distribute, graph, losses
from keras_scan.backbones import taps as taps_lib
from keras_scan.checks import is_number
from keras_scan.layers import HEADS, AttentionModule, ShallowClassifier
from keras_scan.layers.attention_module import KINDS as ATTENTIONS

FINAL = "final"
KD_LOSSES = losses.KD_LOSSES  # the distillation terms (`keras_scan.losses`)
# How the distillation term joins an exit's cross-entropy (see `ScanModel`).
KD_MIXES = ("convex", "add")
TEACHERS = ("final", "ensemble")


def _final_classifier(backbone, feature_map, num_classes):
    """Pre-logit features and the final classifier of `backbone`.

    A backbone that ends in `Dense` on a 2D tensor keeps its classifier (a new
    one with linear activation and copied weights when it applies softmax, a
    fresh one when the class count differs). Any other backbone gets global
    average pooling on its final feature map and a fresh `Dense`.
    """
    output = backbone.outputs[0]
    if len(output.shape) == 2:
        node = graph.producer(output)
        layer = node.operation
        if isinstance(layer, keras.layers.Dense) and len(node.input_tensors) == 1:
            features = node.input_tensors[0]
            linear = layer.activation in (None, keras.activations.linear)
            if layer.units == num_classes and linear:
                return features, layer
            dense = keras.layers.Dense(num_classes, name="final_logits")
            if layer.units == num_classes:
                dense.build(features.shape)
                dense.set_weights(layer.get_weights())
            return features, dense
        if layer is not None and not isinstance(layer, keras.layers.Dense):
            # e.g. `include_top=False, pooling="avg"`: the output is pre-logit.
            if _is_pooled(feature_map.tensor, output):
                return output, keras.layers.Dense(num_classes, name="final_logits")
    pooled = keras.layers.GlobalAveragePooling2D(name="final_pool")(feature_map.tensor)
    return pooled, keras.layers.Dense(num_classes, name="final_logits")


def _is_pooled(feature_tensor, output):
    node = graph.producer(output)
    return any(t is feature_tensor for t in node.input_tensors)


@keras.saving.register_keras_serializable(package="keras_scan")
class ScanModel(keras.Model):
    """A backbone with shallow exits, trained by self-distillation (SCAN).

    The model outputs a dict: `"exit_0"`.. `"exit_{K-1}"` and `"final"` (logits),
    and `"<exit>_features"` (pre-logit features, for the hint loss). The loss is
    built in (`compute_loss`):

    `CE(final) + sum_i [CE_i + alpha KD_i] + beta * sum_i mean((f_i - f_final)^2)`

    with `KD_i = T^2 KL(p_final^T || p_i^T)` (`kd_loss="kl_t2"`, Hinton's and
    the paper's code; `"kl"` without `T^2`) and the teacher (final exit) side
    stop-gradient. The default adds the teacher's term to the labels'
    (`kd_mix="add"`, alpha 0.1); the paper mixes them,
    `(1 - alpha) CE_i + alpha KD_i` (`kd_mix="convex"`, alpha 0.5). `distill_scale` (a variable, 1 by default) multiplies
    `alpha`; `keras_scan.training.DistillationWarmup` ramps it from 0. Per-exit loss and accuracy
    are Keras metrics (`exit_0_accuracy`, ..., `final_accuracy`).

    Args:
        backbone: a single-input functional `keras.Model` with a fixed input size.
        num_classes: int. Number of classes (>= 2).
        exits: `None` (one tap at the end of each resolution stage but the
            last, at most 3), an int k (k taps spread evenly by MACs), or a list
            of layer names whose outputs are cut points. Defaults to `None`.
        head: str. Exit head variant (`ShallowClassifier`): `"lite"`
            (downsample before widening: cheap on LiteRT), `"scan"` (the
            paper's), `"sepconv"` or `"linear"`. Defaults to `"lite"`.
        attention: str or bool. The `AttentionModule` in front of each head:
            `"gate"` (a channel gate), `"scan"` (the paper's spatial mask) or
            `None`/`"none"`; `True` means `"scan"` and `False` `None`.
            Defaults to `"gate"`. The paper's exits exactly:
            `head="scan", attention="scan"` (measured side by side in
            `benchmarks/results/exit-latency` and `distillation-cpu`).
        distillation: bool. Distil the final exit into the shallow ones; with
            `False` the shallow exits learn from labels only (deep
            supervision) and the KL term is zero. Defaults to `True`.
        alpha: float in [0, 1]. Weight of the distillation term vs CE.
            Defaults to 0.1 (measured: `benchmarks/results/distillation-*`;
            the paper's code: 0.5 with `kd_mix="convex"`).
        temperature: float > 0. Softmax temperature T. Defaults to 3.0.
        beta: float >= 0. Weight of the feature (hint) loss; 0 disables it.
            Defaults to 1.0.
        kd_loss: str. The distillation term: `"kl_t2"` (Hinton's
            `T^2 KL(p_final^T || p_i^T)`, the SCAN paper's code), `"kl"` (the
            same without the `T^2` factor, as in SCAN's journal version),
            `"reverse_kl_t2"` / `"reverse_kl"` (`KL(p_i^T || p_final^T)`).
            Defaults to `"kl_t2"`.
        teacher: str. `"ensemble"` (the mean of every exit's softened
            probabilities teaches every exit, the final one included) or
            `"final"` (the paper: the final exit teaches the shallow ones).
            Defaults to `"ensemble"`.
        kd_mix: str. `"convex"` (the paper: `(1 - alpha) CE_i + alpha KD_i`)
            or `"add"` (`CE_i + alpha KD_i`: the labels keep their full
            weight, as in deep supervision, and the teacher adds to them).
            Defaults to `"add"`.
        exit_weights: `None` or `"equal"` (every exit's loss counts once,
            the paper), `"depth"` (exit k of K weighs (k + 1) / K: 0.25, 0.5,
            0.75, 1 for four exits) or one number >= 0 per exit, the final
            exit last: each exit's loss (its cross-entropy, distillation and
            feature terms) is multiplied by its weight in the total.
            Defaults to `None`.
        **kwargs: passed to `keras.Model`.

    Example:
    ```python
    backbone = keras_scan.backbones.cifar_resnet(depth=18, input_shape=(32, 32, 3))
    model = keras_scan.ScanModel(backbone, num_classes=10)
    model.compile(optimizer="sgd", metrics=["accuracy"])
    ```

    Reference: Zhang et al., "SCAN: A Scalable Neural Networks Framework
    Towards Compact and Efficient Models", NeurIPS 2019.
    """

    def __init__(
        self,
        backbone,
        num_classes,
        exits=None,
        head="lite",
        attention="gate",
        distillation=True,
        alpha=0.1,
        temperature=3.0,
        beta=1.0,
        kd_loss="kl_t2",
        teacher="ensemble",
        kd_mix="add",
        exit_weights=None,
        **kwargs,
    ):
        taps_lib.check_functional(backbone, "backbone")
        _check_number("num_classes", num_classes, low=2, integer=True)
        _check_number("alpha", alpha, low=0.0, high=1.0)
        _check_number("temperature", temperature, low=0.0, low_open=True)
        _check_number("beta", beta, low=0.0)
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        attention = resolve_attention(attention)
        if teacher not in TEACHERS:
            raise ValueError(
                f"`teacher` must be one of {TEACHERS}. Received: teacher={teacher!r}"
            )
        losses.check_kd_loss(kd_loss)
        if kd_mix not in KD_MIXES:
            raise ValueError(
                f"`kd_mix` must be one of {KD_MIXES}. Received: kd_mix={kd_mix!r}"
            )

        # === Layers ===
        taps = taps_lib.resolve_exits(backbone, exits)
        feature_map = taps_lib.feature_map(backbone)
        features, classifier = _final_classifier(backbone, feature_map, num_classes)
        feature_dim = int(features.shape[-1])

        # === Functional Model ===
        outputs = {}
        exit_features = {}
        for i, tap in enumerate(taps):
            name = f"exit_{i}"
            x = tap.tensor
            if attention is not None:
                x = AttentionModule(kind=attention, name=f"{name}_attention")(x)
            stride = max(1, tap.spatial[0] // feature_map.spatial[0])
            f, logits = ShallowClassifier(
                num_classes, feature_dim, stride, head=head, name=f"{name}_head"
            )(x)
            outputs[name] = logits
            exit_features[f"{name}_features"] = f
        exit_weights = _check_exit_weights(exit_weights, len(taps) + 1)
        outputs[FINAL] = classifier(features)
        exit_features[f"{FINAL}_features"] = features
        outputs.update(exit_features)
        super().__init__(inputs=backbone.inputs[0], outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.exits = [t.name for t in taps]
        self.head = head
        self.attention = attention
        self.distillation = bool(distillation)
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.beta = float(beta)
        self.kd_loss = kd_loss
        self.teacher = teacher
        self.kd_mix = kd_mix
        self.exit_weights = exit_weights
        # The share of `alpha` in force (1 = all of it): a training schedule
        # (`keras_scan.training.DistillationWarmup`) ramps it from 0 so the
        # exits learn from labels while the teacher is still untrained.
        self.distill_scale = keras.Variable(
            1.0, trainable=False, dtype="float32", name="distill_scale"
        )

        self.exit_names = [f"exit_{i}" for i in range(len(taps))] + [FINAL]
        self._taps = taps
        self._feature_map = feature_map
        self._tensors = dict(outputs)
        self._loss_trackers = {
            n: keras.metrics.Mean(name=f"{n}_loss") for n in self.exit_names
        }
        self._accuracy_trackers = {
            n: keras.metrics.SparseCategoricalAccuracy(name=f"{n}_accuracy")
            for n in self.exit_names
        }
        self._cached_stages = None
        self._exit_info_cache = None

    # ------------------------------------------------------------------ info
    @property
    def taps(self):
        """Dict exit name -> tapped backbone `KerasTensor` (keras-hub's pyramid_outputs)."""
        return {f"exit_{i}": t.tensor for i, t in enumerate(self._taps)}

    @property
    def num_exits(self):
        """Number of exits including the final one."""
        return len(self.exit_names)

    @property
    def exit_info(self):
        """Per exit: tapped layer, channels, stride, and costs (MACs, params, batch 1).

        `macs` is the cost of answering at this exit when exits are tried in
        order (backbone prefix plus every head on the way); `standalone_macs`
        the cost of this exit alone (prefix plus its own head).
        """
        if self._exit_info_cache is not None:
            return [dict(row) for row in self._exit_info_cache]
        from keras_scan import cost

        info = []
        stages = self.stage_models()
        cumulative = 0
        prefix = 0
        for i, (name, stage) in enumerate(zip(self.exit_names, stages)):
            stage_macs = cost.count_macs(stage)
            if name != FINAL:
                trunk_macs = cost.count_macs(
                    keras.Model(stage.inputs, stage.outputs[0])
                )
                tap = self._taps[i]
                layer, channels, stride = tap.name, tap.channels, tap.reduction
            else:
                trunk_macs = stage_macs
                fm = self._feature_map
                layer, channels, stride = fm.name, fm.channels, fm.reduction
            head_macs = stage_macs - trunk_macs
            cumulative += stage_macs
            prefix += trunk_macs
            info.append(
                {
                    "name": name,
                    "layer": layer,
                    "channels": channels,
                    "stride": stride,
                    "macs": int(cumulative),
                    "standalone_macs": int(prefix + head_macs),
                    "head_macs": int(head_macs),
                    "params": int(cost.count_params(self.exit_model(name))),
                }
            )
        self._exit_info_cache = info  # the graph is fixed: count once
        return [dict(row) for row in info]

    def gradient_equilibrium_scales(self):
        """Per trainable variable, 1 / the number of exits whose loss reaches it.

        Gradient equilibrium (IMTA, Li et al., "Improved Techniques for
        Training Adaptive Deep Networks", ICCV 2019): a backbone section
        shared by `n` exits receives the mean of their losses' gradients
        instead of the sum, so the early sections, which every exit's loss
        reaches, do not get `K` times the gradient of the last one. On a chain
        of sections this is exactly IMTA's rescaling at each branch point (the
        exit branch by `1 / n`, the trunk by `(n - 1) / n`); here it is counted
        on the graph, so any functional backbone works. The exits' own heads
        and the final classifier get 1.

        Returns:
            dict mapping `variable.path` to a float in (0, 1], for an
            optimizer that scales each variable's gradient
            (`keras_scan.training.make_optimizer(..., model=...)`).
        """
        reach = {}
        for name in self.exit_names:  # the layers each exit's output depends on
            for layer in self.exit_model(name).layers:
                reach[id(layer)] = reach.get(id(layer), 0) + 1
        scales = {}
        for layer in self.layers:
            n = reach.get(id(layer), 0)
            for variable in layer.trainable_variables if n else ():
                scales[variable.path] = 1.0 / n
        return scales

    # ------------------------------------------------------------ sub-models
    def exit_model(self, name, probabilities=False):
        """`image -> logits` (or probabilities) of one exit, sharing weights."""
        if name not in self.exit_names:
            raise ValueError(
                f"`name` must be one of {self.exit_names}. Received: name={name!r}"
            )
        out = self._tensors[name]
        if probabilities:
            out = keras.layers.Softmax(name=f"{name}_probs")(out)
        return keras.Model(self.inputs[0], out, name=f"{self.name}_{name}")

    def stage_models(self):
        """The cascade's sections, sharing weights with this model.

        `stage_0: image -> [tap_0, logits_0]`, `stage_k: tap_{k-1} -> [tap_k,
        logits_k]`, and the last: `tap_{K-1} -> final logits`. Running them in
        order never recomputes a prefix.
        """
        if self._cached_stages is None:
            stages = []
            previous = self.inputs[0]
            for i, tap in enumerate(self._taps):
                stages.append(
                    keras.Model(
                        previous,
                        [tap.tensor, self._tensors[f"exit_{i}"]],
                        name=f"stage_{i}",
                    )
                )
                previous = tap.tensor
            stages.append(
                keras.Model(
                    previous, self._tensors[FINAL], name=f"stage_{len(self._taps)}"
                )
            )
            self._cached_stages = stages
        return self._cached_stages

    # ------------------------------------------------------------- training
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; the loss is built in.

        `metrics` may be `None` or `["accuracy"]`: accuracy of every exit is
        always tracked (`exit_0_accuracy`, ..., `final_accuracy`).
        """
        if loss is not None:
            raise ValueError(
                "`loss` must be None: ScanModel computes its self-distillation loss "
                f"itself (set alpha/temperature/beta in `build`). Received: loss={loss!r}"
            )
        allowed = {"accuracy", "acc", "sparse_categorical_accuracy"}
        for m in metrics or []:
            if m not in allowed:
                raise ValueError(
                    "`metrics` may only contain 'accuracy' (tracked for every exit). "
                    f"Received: metrics={metrics!r}"
                )
        kwargs.pop("loss_weights", None)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        labels = self._sparse_labels(y)
        T = self.temperature
        final_logits = y_pred[FINAL]
        if self.teacher == "ensemble":
            probs = [ops.softmax(y_pred[n] / T, axis=-1) for n in self.exit_names]
            mean = ops.stop_gradient(sum(probs) / len(probs))
            teacher_log_probs = ops.log(ops.maximum(mean, 1e-12))
            students = self.exit_names
        else:
            teacher_logits = ops.stop_gradient(final_logits)
            teacher_log_probs = losses.softened_log_probs(teacher_logits, T)
            students = self.exit_names[:-1]
        teacher_features = ops.stop_gradient(y_pred[f"{FINAL}_features"])

        def weighted_mean(values):
            if sample_weight is None:
                return ops.mean(values)
            w = ops.reshape(ops.cast(sample_weight, values.dtype), (-1,))
            return ops.sum(values * w) / ops.maximum(ops.sum(w), 1e-12)

        def cross_entropy(logits):
            return weighted_mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True
                )
            )

        # Per-exit losses are tracked weighted by the examples in the batch, so
        # an epoch's value is the mean over examples, however the batches are
        # split (a smaller last batch, replicas, zero-weight padding).
        count = (
            ops.cast(ops.shape(labels)[0], "float32")
            if sample_weight is None
            else ops.sum(ops.cast(sample_weight, "float32"))
        )

        def distilled(logits, ce):
            """`(1 - alpha) CE + alpha KD` (`kd_mix="add"`: `CE + alpha KD`)
            with the ramp's share of alpha."""
            kd = losses.distillation_loss(
                teacher_log_probs, logits, T, self.kd_loss, reduce=weighted_mean
            )
            alpha = self.alpha * ops.cast(self.distill_scale, kd.dtype)
            if self.kd_mix == "add":
                return ce + alpha * kd
            return (1.0 - alpha) * ce + alpha * kd

        total = cross_entropy(final_logits)
        if self.distillation and FINAL in students:
            total = distilled(final_logits, total)
        self._loss_trackers[FINAL].update_state(total, sample_weight=count)
        weights = dict(zip(self.exit_names, self.exit_weights or ()))
        if FINAL in weights:
            total = weights[FINAL] * total
        for name in self.exit_names[:-1]:
            logits = y_pred[name]
            ce = cross_entropy(logits)
            loss = distilled(logits, ce) if self.distillation else ce
            features = y_pred[f"{name}_features"]
            if self.beta > 0 and features.shape[-1] == teacher_features.shape[-1]:
                sq = ops.mean(ops.square(features - teacher_features), axis=-1)
                loss = loss + self.beta * weighted_mean(sq)
            self._loss_trackers[name].update_state(loss, sample_weight=count)
            total = total + weights.get(name, 1.0) * loss
        # Under tf.distribute each replica returns its share of the batch mean
        # (the replicas' gradients are summed); a no-op otherwise.
        return distribute.scale_loss(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels = self._sparse_labels(y)
        for name in self.exit_names:
            self._accuracy_trackers[name].update_state(
                labels, y_pred[name], sample_weight
            )
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def _sparse_labels(self, y):
        if y is None:
            raise ValueError(
                "ScanModel needs labels `y` to compute its loss. Received: y=None"
            )
        if (
            len(y.shape) == 2
            and y.shape[-1] == self.num_classes
            and self.num_classes > 1
        ):
            return ops.argmax(y, axis=-1)
        if len(y.shape) == 2 and y.shape[-1] == 1:
            y = ops.squeeze(y, axis=-1)
        return y

    # --------------------------------------------------------------- config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            # Portable: no tf.distribute-only `synchronized` BatchNorm.
            "backbone": distribute.portable_config(
                keras.layers.serialize(self.backbone)
            ),
            "num_classes": self.num_classes,
            "exits": self.exits,
            "head": self.head,
            "attention": self.attention,
            "distillation": self.distillation,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "beta": self.beta,
            "kd_loss": self.kd_loss,
            "kd_mix": self.kd_mix,
            "teacher": self.teacher,
            "exit_weights": self.exit_weights,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        backbone = config.pop("backbone")
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        return cls(backbone=backbone, **config)


def resolve_attention(attention):
    """`attention` as a kind (`"scan"`, `"gate"`) or `None`; `True` is `"scan"`."""
    if attention is True:
        return "scan"
    if attention is False or attention is None or attention == "none":
        return None
    if attention not in ATTENTIONS:
        raise ValueError(
            f"`attention` must be one of {ATTENTIONS}, 'none', True, False or None. "
            f"Received: attention={attention!r}"
        )
    return attention


def _check_exit_weights(exit_weights, num_exits):
    """`exit_weights` as a list of `num_exits` floats >= 0, or `None`."""
    if exit_weights is None or exit_weights == "equal":
        return None
    if exit_weights == "depth":
        return [(k + 1) / num_exits for k in range(num_exits)]
    values = list(exit_weights) if isinstance(exit_weights, (list, tuple)) else None
    if (
        values is None
        or len(values) != num_exits
        or not all(is_number(v) and v >= 0 for v in values)
        or not any(v > 0 for v in values)
    ):
        raise ValueError(
            f"`exit_weights` must be None, 'equal', 'depth' or {num_exits} numbers "
            ">= 0, one per exit in order, the final exit last (not all 0). "
            f"Received: exit_weights={exit_weights!r}"
        )
    return [float(v) for v in values]


def _check_number(name, value, low=None, high=None, low_open=False, integer=False):
    ok = is_number(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        kind = "an integer" if integer else "a number"
        raise ValueError(
            f"`{name}` must be {kind} {' and '.join(bounds)}. Received: {name}={value!r}"
        )
