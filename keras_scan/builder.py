"""`keras_scan.build`: the one-call entry point."""

from keras_scan import distribute
from keras_scan.backbones.taps import check_functional
from keras_scan.scan_model import ScanModel


def build(
    model,
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
    name=None,
):
    """Turns a functional Keras backbone into a SCAN multi-exit model.

    Exits are tapped at *cut points* of the graph (tensors that separate input
    from output), found automatically: by default one at the end of each
    resolution stage but the last (at most 3), like the paper. The final exit
    is the backbone's own classifier when it has one with `num_classes`
    outputs, else global average pooling and a new dense layer.

    Args:
        model: a single-input functional `keras.Model` with a fixed input size
            (Keras Applications with or without top, `cifar_resnet`, or your own).
        num_classes: int. Number of classes (>= 2).
        exits: `None`, an int k (k exits spread evenly by MACs) or a list of
            layer names. Defaults to `None`.
        head: str. `"lite"` (cheap on LiteRT), `"scan"` (the paper's),
            `"sepconv"` or `"linear"`. Defaults to `"lite"`.
        attention: str or bool. `"gate"` (channel gate), `"scan"` (the
            paper's spatial mask) or `None`; `True` is `"scan"`. Defaults to
            `"gate"`. `head="scan", attention="scan"` gives the paper's exits.
        distillation: bool. Self-distillation (see `teacher`); `False`
            gives plain deep supervision. Defaults to `True`.
        alpha: float in [0, 1]. Distillation weight. Defaults to 0.1 (the
            paper's code: 0.5 with `kd_mix="convex"`).
        temperature: float > 0. Distillation temperature. Defaults to 3.0.
        beta: float >= 0. Feature (hint) loss weight. Defaults to 1.0.
        kd_loss: str. `"kl_t2"`, `"kl"`, `"reverse_kl_t2"` or `"reverse_kl"`
            (see `ScanModel`). Defaults to `"kl_t2"`.
        teacher: str. `"ensemble"` (the mean of all exits' softened
            probabilities teaches every exit, the final one included) or
            `"final"` (the paper: the final exit teaches the shallow ones).
            Defaults to `"ensemble"` (README, "Self-distillation: measured").
        kd_mix: str. `"convex"` (`(1 - alpha) CE + alpha KD`, the paper) or
            `"add"` (`CE + alpha KD`). Defaults to `"add"`.
        exit_weights: `None` or `"equal"` (all 1, the paper), `"depth"` (exit
            k of K weighs (k + 1) / K) or one weight >= 0 per exit, the final
            exit last, multiplying each exit's loss. Defaults to `None`
            (README, "Self-distillation: measured", weighs the two).
        name: str. Model name. Defaults to `"scan_<backbone name>"`.

    Returns:
        A `keras_scan.ScanModel`. Built inside `keras_scan.distribution(...)`,
        it is prepared for it (global-batch BatchNorm on TensorFlow).

    Example:
    ```python
    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(96, 96, 3))
    model = keras_scan.build(backbone, num_classes=10)
    model.compile(optimizer="sgd", metrics=["accuracy"])
    ```
    """
    check_functional(model, "model")
    scan = ScanModel(
        model,
        num_classes,
        exits=exits,
        head=head,
        attention=attention,
        distillation=distillation,
        alpha=alpha,
        temperature=temperature,
        beta=beta,
        kd_loss=kd_loss,
        teacher=teacher,
        kd_mix=kd_mix,
        exit_weights=exit_weights,
        name=name or f"scan_{getattr(model, 'name', 'model')}",
    )
    active = distribute.current()
    return active.prepare(scan) if active is not None else scan
