"""`keras_scan.losses`: the one distillation loss of `ScanModel` and `compress`.

Each kind is checked against the formula its user wrote before the loss was
shared (copied below as it was), bit for bit, on random logits.
"""

import numpy as np
import pytest
from keras import ops

from keras_scan import losses

T_VALUES = (1.0, 3.0, 4.0, 2.5)


def _logits(seed, shape=(16, 10), scale=4.0):
    rng = np.random.default_rng(seed)
    return ops.convert_to_tensor((scale * rng.standard_normal(shape)).astype("float32"))


def _equal(a, b):
    np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


# --- the formulas as they were written before (scan_model.py, compact.py) ---


def _scan_model_divergence(teacher_log_probs, student_log_probs, kind):
    if kind.startswith("reverse"):
        p, q = student_log_probs, teacher_log_probs
    else:
        p, q = teacher_log_probs, student_log_probs
    return ops.sum(ops.exp(p) * (p - q), axis=-1)


def _scan_model_kd(teacher_logits, logits, T, kind, weighted_mean):
    """`ScanModel.compute_loss`'s term (teacher "final")."""
    teacher_log_probs = ops.log_softmax(ops.stop_gradient(teacher_logits) / T, axis=-1)
    student_log_probs = ops.log_softmax(logits / T, axis=-1)
    kd = weighted_mean(
        _scan_model_divergence(teacher_log_probs, student_log_probs, kind)
    )
    if kind.endswith("_t2"):
        kd = kd * T**2
    return kd


def _compact_term(target_logits, logits, T, alpha):
    """`_LogitDistiller.compute_loss`'s distillation term (with its `alpha`)."""
    teacher_log_probs = ops.log_softmax(target_logits / T, axis=-1)
    student_log_probs = ops.log_softmax(logits / T, axis=-1)
    kl = ops.sum(
        ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs),
        axis=-1,
    )
    return alpha * T**2 * ops.mean(kl)


def _weighted_mean(sample_weight):
    def mean(values):
        if sample_weight is None:
            return ops.mean(values)
        w = ops.reshape(ops.cast(sample_weight, values.dtype), (-1,))
        return ops.sum(values * w) / ops.maximum(ops.sum(w), 1e-12)

    return mean


# --- the checks ---


@pytest.mark.parametrize("kind", losses.KD_LOSSES)
@pytest.mark.parametrize("T", T_VALUES)
@pytest.mark.parametrize("weighted", [False, True])
def test_scan_model_kinds_equal_the_previous_formula(kind, T, weighted):
    teacher, student = _logits(0), _logits(1)
    weights = None
    if weighted:
        weights = np.random.default_rng(2).uniform(0, 1, 16).astype("float32")
        weights[:3] = 0.0  # padding rows
    reduce = _weighted_mean(weights)
    teacher_log_probs = losses.softened_log_probs(ops.stop_gradient(teacher), T)
    got = losses.distillation_loss(teacher_log_probs, student, T, kind, reduce=reduce)
    _equal(got, _scan_model_kd(teacher, student, T, kind, reduce))


def test_scan_model_ensemble_teacher_equals_the_previous_formula():
    """The ensemble teacher: log of the mean softened probabilities."""
    T = 3.0
    exits = [_logits(seed) for seed in range(4)]
    probs = [ops.softmax(e / T, axis=-1) for e in exits]
    mean = ops.stop_gradient(sum(probs) / len(probs))
    teacher_log_probs = ops.log(ops.maximum(mean, 1e-12))
    for kind in losses.KD_LOSSES:
        for student in exits:
            got = losses.distillation_loss(teacher_log_probs, student, T, kind)
            before = ops.mean(
                _scan_model_divergence(
                    teacher_log_probs, ops.log_softmax(student / T, axis=-1), kind
                )
            )
            if kind.endswith("_t2"):
                before = before * T**2
            _equal(got, before)


@pytest.mark.parametrize("T", T_VALUES)
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_compress_kl_t2_equals_the_previous_formula(T, kind):
    teacher, student = _logits(3), _logits(4)
    if kind == "probabilities":  # `_LogitDistiller._logits` of a softmax output
        teacher = ops.log(ops.maximum(ops.softmax(teacher, axis=-1), 1e-12))
    got = losses.distillation_loss(
        losses.softened_log_probs(teacher, T), student, T, "kl_t2"
    )
    _equal(got, _compact_term(teacher, student, T, alpha=1.0))


@pytest.mark.parametrize("T, alpha", [(4.0, 0.5), (3.0, 0.3), (2.5, 0.7), (1.0, 1.0)])
def test_compress_term_with_its_alpha_equals_the_previous_formula(T, alpha):
    """compress weights the term by alpha inside the T^2 factor, as before."""
    teacher, student = _logits(5), _logits(6)
    got = losses.distillation_loss(
        losses.softened_log_probs(teacher, T), student, T, "kl_t2", weight=alpha
    )
    _equal(got, _compact_term(teacher, student, T, alpha))


def test_divergence_is_zero_for_equal_distributions_and_positive_otherwise():
    a, b = _logits(7), _logits(8)
    for kind in losses.KD_LOSSES:
        same = losses.distillation_loss(losses.softened_log_probs(a, 2.0), a, 2.0, kind)
        assert abs(float(same)) < 1e-6
        assert (
            float(
                losses.distillation_loss(
                    losses.softened_log_probs(a, 2.0), b, 2.0, kind
                )
            )
            > 0
        )


def test_t2_kinds_are_the_plain_kinds_times_t_squared():
    teacher, student, T = _logits(9), _logits(10), 3.0
    t = losses.softened_log_probs(teacher, T)
    for plain in ("kl", "reverse_kl"):
        _equal(
            losses.distillation_loss(t, student, T, plain + "_t2"),
            losses.distillation_loss(t, student, T, plain) * T**2,
        )


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"`kd_loss` must be one of .*kd_loss='js'"):
        losses.check_kd_loss("js")
