"""LiteRT conversion: the artifacts of a SCAN model, int8 calibration, reading files back.

Conversion goes through `keras.export.ExportArchive` (one SavedModel with an
endpoint per artifact) and `tf.lite.TFLiteConverter.from_saved_model` with
signature keys, the path Keras itself uses for `format="litert"`; only builtin
LiteRT ops are allowed (no Flex delegate needed on a phone). Every endpoint has
batch size 1. TensorFlow is imported inside the functions that need it.
"""

import functools
import warnings

import numpy as np

MODES = ("float32", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION_SAMPLES = 300
FINAL_FILE = "full"


def list_artifacts(model):
    """[(key, keras callable returning a dict, input name, input shape)]."""
    import keras

    artifacts = []
    stages = model.stage_models()
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        artifacts.append(
            (
                f"stage_{i}",
                _stage_fn(stage, last, keras),
                "image" if i == 0 else "features",
                tuple(stage.inputs[0].shape[1:]),
                stage,
            )
        )
    for name in model.exit_names:
        key = FINAL_FILE if name == model.exit_names[-1] else name
        exit_model = model.exit_model(name, probabilities=True)
        artifacts.append(
            (
                key,
                _exit_fn(exit_model),
                "image",
                tuple(model.inputs[0].shape[1:]),
                exit_model,
            )
        )
    return artifacts


def _stage_fn(stage, last, keras):
    def fn(x):
        out = stage(x, training=False)
        if last:
            return {"probs": keras.ops.softmax(out, axis=-1)}
        return {"features": out[0], "probs": keras.ops.softmax(out[1], axis=-1)}

    return fn


def _exit_fn(exit_model):
    def fn(image):
        return {"probs": exit_model(image, training=False)}

    return fn


def write_saved_model(artifacts, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    for key, fn, input_name, shape, keras_model in artifacts:
        archive.track(keras_model)
        archive.add_endpoint(
            key,
            fn,
            input_signature=[tf.TensorSpec((1, *shape), tf.float32, name=input_name)],
        )
    archive.write_out(str(path), verbose=False)


def convert(
    saved_model, keys, mode, calibration, uint8_input, *, progress=False, name=None
):
    """Converts the endpoints `keys` of the SavedModel to one .tflite (bytes).

    With `progress` (int8 only), a bar on stderr counts the calibration images
    the converter reads, named after `name` (the file being written).
    """
    import tensorflow as tf

    from keras_scan import native_logs
    from keras_scan import progress as progress_lib

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=list(keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.uint8 if uint8_input else tf.int8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    calibrating = mode == "int8" and bool(progress)
    # The bar's stream is taken before `_convert_quietly` captures descriptor 2,
    # so the bar reaches the terminal while the converter calibrates.
    with progress_lib.terminal_stream(calibrating) as stream:
        if mode == "int8":
            new_bar = functools.partial(
                progress_lib.bar,
                calibrating,
                total=len(calibration["image"]),
                desc=f"calibrating {name or '+'.join(keys)}",
                unit="images",
                file=stream,
            )
            converter.representative_dataset = functools.partial(
                _calibration_samples, calibration, keys, new_bar
            )
        return _convert_quietly(converter, native_logs)


def _calibration_samples(calibration, keys, new_bar):
    """The converter's representative dataset: every image through each endpoint.

    `new_bar()` makes the bar (counting images), once the converter starts
    reading.
    """
    with new_bar() as bar:
        for j in range(len(calibration["image"])):
            for key in keys:
                input_name, array = calibration[key]
                yield key, {input_name: array[j : j + 1]}
            bar.update(1)


def _convert_quietly(converter, native_logs):
    """`converter.convert()` without the quantizer's settings lines and notes."""
    # The quantizer prints its settings once per endpoint with a plain stream,
    # whatever TF_CPP_MIN_LOG_LEVEL says; dropped unless the level shows INFO.
    with (
        warnings.catch_warnings(),
        native_logs.dropped_lines(native_logs.QUANTIZER_SETTINGS),
    ):
        # The converter calibrates through the deprecated tf.lite.Interpreter
        # itself and says so once per endpoint; nothing a user can act on.
        warnings.filterwarnings(
            "ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated"
        )
        return converter.convert()


def calibration_inputs(model, images):
    """Per endpoint key: (input name, float inputs) from the representative images."""
    stages = model.stage_models()
    x = images
    keys = {"image": images}
    for i, stage in enumerate(stages):
        keys[f"stage_{i}"] = ("image" if i == 0 else "features", x)
        if i < len(stages) - 1:
            x = np.asarray(stage.predict(x, batch_size=64, verbose=0)[0], np.float32)
    for name in model.exit_names:
        key = FINAL_FILE if name == model.exit_names[-1] else name
        keys[key] = ("image", images)
    return keys


# ---------------------------------------------------------------------------
# Reading exported models back (LiteRT interpreter, batch 1)
# ---------------------------------------------------------------------------


def _interpreter(path, num_threads=1):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=num_threads)


def describe_model(path):
    """Signatures of a .tflite file: inputs and outputs with dtype and quantization.

    Args:
        path: str or path of a .tflite file.

    Returns:
        dict signature key -> `{"inputs": {name: tensor}, "outputs": {...}}`,
        each tensor `{"name", "shape", "dtype", "scale", "zero_point"}`
        (scale 0 for float tensors), as recorded in the manifest.
    """
    interpreter = _interpreter(path)
    out = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        out[key] = {
            "inputs": {
                name: _tensor_entry(name, d)
                for name, d in sorted(runner.get_input_details().items())
            },
            "outputs": {
                name: _tensor_entry(name, d)
                for name, d in sorted(runner.get_output_details().items())
            },
        }
    return out


def _tensor_entry(name, detail):
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "shape": [int(s) for s in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }
