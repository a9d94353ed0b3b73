"""Export a SCAN model to LiteRT (TFLite): per-exit models, a chained cascade, a manifest.

`export(model, out_dir, ...)` writes, for every quantization variant `<mode>`:

```
EXPORT/
  exit_0.<mode>.tflite .. exit_{K-1}.<mode>.tflite   image -> probs of one exit
  full.<mode>.tflite                                 image -> probs of the final exit
  cascade.<mode>.tflite    signatures stage_0(image) -> (features, probs),
                           stage_k(features) -> (features, probs), stage_K -> probs
  stage_0.<mode>.tflite .. stage_K.<mode>.tflite     the same stages, one per file
  manifest.json            validated against tflite/manifest.schema.json
```
Every model has batch size 1 and takes raw 0..255 pixels (the model normalises
them itself). Several modes share one folder and one manifest (the mode is in
each file name; the first mode is the manifest's `default_variant`). int8
models are fully integer: int8 (or, with `uint8_input=True`, uint8) image,
features and probabilities, with each tensor's scale and zero point in the
manifest. Without thresholds the export warns and records 1.0 for every exit,
which never exits early (the cascade then always answers with the final exit).
The folder is written to a temporary sibling and renamed into place, so an
exception mid-export leaves nothing behind.

Conversion goes through `keras.export.ExportArchive` (one SavedModel with an
endpoint per artifact) and `tf.lite.TFLiteConverter.from_saved_model` with
signature keys, the path Keras itself uses for `format="litert"`; only builtin
LiteRT ops are allowed (no Flex delegate needed on a phone). TensorFlow is
imported inside the functions that need it.

Where each part lives:

- `keras_scan.export.exporter`: `export`, the folder's lifecycle and the order
  of the steps;
- `keras_scan.export.arguments`: the argument checks, all run before anything
  is written;
- `keras_scan.export.litert`: the artifacts (stages and exits), SavedModels,
  conversion per mode with int8 calibration, `describe_model`;
- `keras_scan.export.manifest`: the manifest's assembly (versions,
  preprocessing, exit and stage costs, files) and `validate_manifest`
  (scan_lite's check);
- `keras_scan.export.evaluation`: the written files run by scan_lite on test
  images, against Keras' probabilities.
"""

from keras_scan.export.exporter import export
from keras_scan.export.litert import DEFAULT_CALIBRATION_SAMPLES, MODES, describe_model
from keras_scan.export.manifest import FORMAT_VERSION, MANIFEST, validate_manifest

__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODES",
    "describe_model",
    "export",
    "validate_manifest",
]
