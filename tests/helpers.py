"""Small helpers shared by the tests (imported as `helpers`; tests/ is on sys.path)."""

import keras_scan


def small_backbone(**kwargs):
    """A narrow CIFAR ResNet18 (width 16, 32x32x3): fast on 2 CPU cores."""
    kwargs.setdefault("width", 16)
    return keras_scan.backbones.cifar_resnet(18, input_shape=(32, 32, 3), **kwargs)
