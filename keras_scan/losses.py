"""The knowledge-distillation loss shared by `ScanModel` and `compress`.

One rule, backend-agnostic (`keras.ops` only): the teacher's and the
student's logits are softened by a temperature `T`, and the student pays the
KL divergence between the two distributions, times `T^2` for the `"_t2"`
kinds (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015:
the factor keeps the soft targets' gradients on the same scale as the
labels' when `T` changes).

- `ScanModel.compute_loss` (self-distillation): the final exit (or the
  ensemble of all exits) teaches each exit, with the kind chosen by
  `kd_loss`.
- `keras_scan.compress` (end-to-end fine-tuning of a compact student): the
  frozen teacher's output teaches the student's same output with `"kl_t2"`.
"""

from keras import ops

# `"kl*"`: KL(teacher || student), whose student gradient is the soft
# cross-entropy's; `"reverse_kl*"`: KL(student || teacher). `"_t2"`: times T^2.
KD_LOSSES = ("kl_t2", "kl", "reverse_kl_t2", "reverse_kl")


def check_kd_loss(kind):
    """`kind` if it is one of `KD_LOSSES`, else a `ValueError` naming `kd_loss`."""
    if kind not in KD_LOSSES:
        raise ValueError(
            f"`kd_loss` must be one of {KD_LOSSES}. Received: kd_loss={kind!r}"
        )
    return kind


def softened_log_probs(logits, temperature):
    """`log softmax(logits / T)` over the last axis."""
    return ops.log_softmax(logits / temperature, axis=-1)


def divergence(teacher_log_probs, student_log_probs, kind="kl_t2"):
    """Per-example KL divergence between two log-probability tensors.

    Args:
        teacher_log_probs: tensor `(batch, classes)`, the teacher's softened
            log-probabilities (no gradient should flow into it).
        student_log_probs: tensor `(batch, classes)`, the student's.
        kind: str, one of `KD_LOSSES`. `"kl*"`: `KL(teacher || student)`;
            `"reverse_kl*"`: `KL(student || teacher)`. Defaults to `"kl_t2"`.

    Returns:
        A tensor `(batch,)`. The `T^2` factor is not applied here.
    """
    if kind.startswith("reverse"):
        p, q = student_log_probs, teacher_log_probs
    else:
        p, q = teacher_log_probs, student_log_probs
    return ops.sum(ops.exp(p) * (p - q), axis=-1)


def distillation_loss(
    teacher_log_probs,
    student_logits,
    temperature,
    kind="kl_t2",
    reduce=ops.mean,
    weight=1.0,
):
    """The distillation term: `weight * reduce(KL)`, times `T^2` for `"_t2"`.

    Args:
        teacher_log_probs: tensor `(batch, classes)`: the teacher's softened
            log-probabilities (`softened_log_probs(teacher_logits, T)` of
            stop-gradient logits, or the log of an ensemble's mean softened
            probabilities).
        student_logits: tensor `(batch, classes)`: the student's raw logits;
            softened here by `temperature`.
        temperature: float > 0. The softmax temperature `T`.
        kind: str, one of `KD_LOSSES`. Defaults to `"kl_t2"` (Hinton's).
        reduce: callable mapping the per-example divergences `(batch,)` to a
            scalar (e.g. a sample-weighted mean). Defaults to `ops.mean`.
        weight: float. A constant factor of the term, folded into the `T^2`
            factor (`(weight * T^2) * reduce(KL)`); a weight that changes
            during training (a tensor) belongs outside. Defaults to 1.0.

    Returns:
        A scalar tensor.

    Example:
    ```python
    teacher = keras_scan.losses.softened_log_probs(
        keras.ops.stop_gradient(teacher_logits), 3.0)
    kd = keras_scan.losses.distillation_loss(teacher, student_logits, 3.0)
    ```
    """
    check_kd_loss(kind)
    student_log_probs = softened_log_probs(student_logits, temperature)
    kd = reduce(divergence(teacher_log_probs, student_log_probs, kind))
    factor = weight * temperature**2 if kind.endswith("_t2") else weight
    if factor != 1.0:
        kd = factor * kd
    return kd
