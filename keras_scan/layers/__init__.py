"""Layers of SCAN exits."""

from keras_scan.layers.attention_module import AttentionModule
from keras_scan.layers.shallow_classifier import HEADS, ShallowClassifier

__all__ = ["AttentionModule", "ShallowClassifier", "HEADS"]
