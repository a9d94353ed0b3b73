"""Backbones and exit-tap discovery."""

from keras_scan.backbones import registry
from keras_scan.backbones.cifar_resnet import cifar_resnet
from keras_scan.backbones.taps import (
    Tap,
    cut_points,
    default_taps,
    feature_map,
    resolve_exits,
)

__all__ = [
    "cifar_resnet",
    "registry",
    "Tap",
    "cut_points",
    "default_taps",
    "feature_map",
    "resolve_exits",
]
