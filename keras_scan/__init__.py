"""keras_scan: scalable CNNs (SCAN) for Keras 3.

Public API (listed explicitly):
"""

from keras_scan import backbones, latency, layers
from keras_scan.builder import build
from keras_scan.compact import compress
from keras_scan.depth import cut_at_exit, grow
from keras_scan.distribute import distribution
from keras_scan.export import export
from keras_scan.inference import ScalableInference
from keras_scan.scan_model import ScanModel
from keras_scan.thresholds import search_thresholds
from keras_scan.training import train

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "backbones",
    "layers",
    "latency",
    "build",
    "ScanModel",
    "export",
    "ScalableInference",
    "search_thresholds",
    "grow",
    "cut_at_exit",
    "compress",
    "train",
    "distribution",
]
