"""The training of `keras_scan.compress`: block-wise, then end to end.

`BlockDistiller` trains candidate blocks to reproduce their teacher block's
output from its input (relative MSE, one frozen teacher pass per batch);
`LogitDistiller` fine-tunes the whole student on a frozen teacher's outputs
with the knowledge-distillation loss of `keras_scan.losses`. Also: the
batches, predictions, accuracies and the from-scratch baseline the report
compares against. Data goes through numpy and `keras_scan.data.NumpyDataset`.
"""

import math
import time

import keras
import numpy as np
from keras import ops

from keras_scan import graph, inference, losses
from keras_scan.scan_model import ScanModel


class BlockDistiller(keras.Model):
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


class LogitDistiller(keras.Model):
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
            teacher_log_probs = losses.softened_log_probs(self._logits(target), T)
            kd = losses.distillation_loss(
                teacher_log_probs, logits, T, "kl_t2", weight=alpha
            )
            total = total + (1.0 - alpha) * ce + kd
        return total


def fit(
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


def feature_errors(distiller, spec, x, batch_size):
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


def _batches(x, y, batch_size, seed, training=True):
    from keras_scan.data import NumpyDataset

    return NumpyDataset(x, y, batch_size, training=training, augment=False, seed=seed)


def predict_arrays(model, x, batch_size):
    """Outputs of `model` on `x` in eager batches (no new traced function)."""
    parts = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size], training=False)
        parts.append(keras.tree.map_structure(ops.convert_to_numpy, out))
    return keras.tree.map_structure(lambda *a: np.concatenate(a), *parts)


def exit_accuracies(model, x, y, batch_size, kind):
    """Accuracy per exit (`{"final": acc}` for a plain model), or `None`."""
    if kind == "features":
        return None
    return inference.exit_accuracies(model, x, batch_size, y=y)


def output_kind(model):
    """`"logits"`, `"probabilities"` or `"features"` for a plain model's output."""
    out = model.outputs[0]
    if len(out.shape) != 2:
        return "features"
    layer = graph.producer(out).operation
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax) or (
        activation is not None and getattr(activation, "__name__", "") == "softmax"
    ):
        return "probabilities"
    return "logits"


def clone_model(model):
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


def scratch_baseline(
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
    accuracy = {"val": exit_accuracies(scratch, *val, 256, kind)}
    if test is not None:
        accuracy["test"] = exit_accuracies(scratch, *test, 256, kind)
    return {
        "epochs": epochs,
        "recipe": "random initialisation, same optimizer and batches, the "
        "model's own loss (no teacher)",
        "accuracy": accuracy,
        "seconds": time.time() - t0,
    }
