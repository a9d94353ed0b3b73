"""Export a SCAN model to LiteRT (TFLite): see `keras_scan.export.exporter`."""

from keras_scan.export.exporter import (
    DEFAULT_CALIBRATION_SAMPLES,
    FORMAT_VERSION,
    MANIFEST,
    MODES,
    describe_model,
    export,
    validate_manifest,
)

__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODES",
    "describe_model",
    "export",
    "validate_manifest",
]
