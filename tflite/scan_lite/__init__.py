"""scan_lite: the device-side runtime of keras_scan exports (numpy + ai-edge-litert).

Never imports TensorFlow or Keras. Public API:
"""

from scan_lite.cascade import Cascade, Result, confidence, should_exit
from scan_lite.costs import Costs, CostsError, load_costs
from scan_lite.images import fit_images, read_idx, read_image, read_npz
from scan_lite.manifest import ManifestError, load_manifest, verify_files
from scan_lite.quant import dequantize, quantize, requantize

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Cascade",
    "Result",
    "ManifestError",
    "load_manifest",
    "verify_files",
    "Costs",
    "CostsError",
    "load_costs",
    "confidence",
    "should_exit",
    "quantize",
    "dequantize",
    "requantize",
    "read_image",
    "read_idx",
    "read_npz",
    "fit_images",
]
