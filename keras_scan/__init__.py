"""keras_scan: scalable CNNs (SCAN) for Keras 3.

Public API (listed explicitly):
"""

# `keras-scan` imports this package before its `main` runs: TensorFlow's log
# level is set here, before the imports below load it (see keras_scan.cli).
from keras_scan import cli as _cli

if _cli.is_cli_process():
    _cli.prepare_terminal()

from keras_scan import backbones, latency, layers  # noqa: E402
from keras_scan.builder import build  # noqa: E402
from keras_scan.compact import compress  # noqa: E402
from keras_scan.depth import cut_at_exit, grow  # noqa: E402
from keras_scan.distribute import distribution  # noqa: E402
from keras_scan.export import export  # noqa: E402
from keras_scan.inference import ScalableInference  # noqa: E402
from keras_scan.scan_model import ScanModel  # noqa: E402
from keras_scan.thresholds import search_thresholds  # noqa: E402
from keras_scan.training import train  # noqa: E402

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
