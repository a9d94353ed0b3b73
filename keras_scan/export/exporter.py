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
"""

import datetime
import hashlib
import json
import pathlib
import tempfile
import time
import warnings

import numpy as np

MODES = ("float32", "float16", "dynamic", "int8")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_CALIBRATION_SAMPLES = 300
_FINAL_FILE = "full"


def export(
    model,
    out_dir,
    thresholds=None,
    quantize="int8",
    representative_data=None,
    labels=None,
    test_data=None,
    overwrite=False,
    *,
    uint8_input=False,
    calibration_samples=DEFAULT_CALIBRATION_SAMPLES,
    eval_limit=None,
    seed=0,
    dataset=None,
    verbose=False,
):
    """Exports every exit and the chained cascade of a SCAN model to LiteRT.

    Args:
        model: a trained `keras_scan.ScanModel` (TensorFlow backend).
        out_dir: str or path. The export folder to create.
        thresholds: a `keras_scan.thresholds.Thresholds`, a dict as in
            `thresholds.json`, or K floats (one per shallow exit, measure
            `"max_prob"`, fallback `"final"`). With `None` a warning is issued
            and every threshold is 1.0: the cascade never exits early (it runs
            every stage and answers with the final exit). Defaults to `None`.
        quantize: str or list of str, from `"float32"`, `"float16"`,
            `"dynamic"` (dynamic-range int8 weights) and `"int8"` (full
            integer post-training quantization). Several modes go into one
            folder with the mode in each file name. Defaults to `"int8"`.
        representative_data: images for int8 calibration (required for
            `"int8"`): `(x, y)` arrays, an image array or a `tf.data.Dataset`,
            normally the training split. `calibration_samples` images are drawn
            from it, seeded.
        labels: list of str. Class names; defaults to `"0"`, `"1"`, ...
        test_data: `(x, y)` arrays or a `tf.data.Dataset` of `(image, label)`.
            When given, every exported model is run on it (batch 1) and its
            accuracy, argmax agreement with Keras and largest probability
            difference go into the manifest. Defaults to `None`.
        overwrite: bool. Replace an existing `out_dir`. Defaults to `False`.
        uint8_input: bool. int8 models take and return uint8 tensors (image,
            features and probabilities) instead of int8. Defaults to `False`.
        calibration_samples: int. Images drawn for int8 calibration.
            Defaults to `300`.
        eval_limit: int, optional. Evaluate on the first N test images only.
        seed: int. Seeds the calibration draw. Defaults to `0`.
        dataset: str, optional. The dataset spec the model was trained on,
            recorded in the manifest's preprocessing.
        verbose: bool. Print one line per file written. Defaults to `False`.

    Returns:
        The manifest (a dict), as written to `out_dir/manifest.json`.

    Example:
    ```python
    splits = keras_scan.data.load_dataset("fashion_mnist", 32)
    manifest = keras_scan.export(
        model, "exports/fm18", thresholds=th, quantize=["int8", "float32"],
        representative_data=splits.train, test_data=splits.test,
        labels=splits.class_names)
    ```
    """
    import keras

    _check_model(model)
    modes = _resolve_modes(quantize)
    if "int8" in modes and representative_data is None:
        raise ValueError(
            "`representative_data` is required for quantize='int8' (full integer "
            "quantization calibrates on real images, e.g. the training split). "
            "Received: representative_data=None"
        )
    if not isinstance(uint8_input, bool):
        raise ValueError(
            f"`uint8_input` must be a bool. Received: uint8_input={uint8_input!r}"
        )
    _check_positive_int("calibration_samples", calibration_samples)
    if eval_limit is not None:
        _check_positive_int("eval_limit", eval_limit)
    num_shallow = len(model.exit_names) - 1
    rule = _resolve_thresholds(thresholds, num_shallow)
    labels = _resolve_labels(labels, model.num_classes)
    out_dir = pathlib.Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(
            f"`out_dir` already exists: {str(out_dir)!r}. Pass overwrite=True "
            "(`--overwrite`) to replace this export folder."
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "LiteRT export needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
            f"Received: backend={keras.backend.backend()!r}"
        )
    height, width, channels = _input_shape(model)

    calibration = None
    if "int8" in modes:
        from keras_scan import data

        images = data.representative_images(
            representative_data, n=int(calibration_samples), seed=int(seed)
        )
        _check_images("representative_data", images, (height, width, channels))
        calibration = _calibration_inputs(model, images)
    test = None
    if test_data is not None:
        test = _test_arrays(test_data, eval_limit, (height, width, channels))

    from keras_scan import runs

    with runs.atomic_folder(
        out_dir, overwrite=overwrite, what="export folder", arg="out_dir"
    ) as tmp:
        manifest = _export_into(
            model,
            tmp,
            modes=modes,
            rule=rule,
            labels=labels,
            calibration=calibration,
            calibration_samples=int(calibration_samples),
            seed=int(seed),
            uint8_input=uint8_input,
            test=test,
            dataset=dataset,
            verbose=verbose,
        )
    return manifest


# ---------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------


def _check_model(model):
    if not all(hasattr(model, a) for a in ("stage_models", "exit_model", "exit_names")):
        raise ValueError(
            "`model` must be a keras_scan.ScanModel (from `keras_scan.build`). "
            f"Received: model={type(model).__name__}"
        )


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def _resolve_modes(quantize):
    values = [quantize] if isinstance(quantize, str) else quantize
    try:
        values = list(values)
    except TypeError:
        values = None
    if not values or not all(isinstance(v, str) and v in MODES for v in values):
        raise ValueError(
            f"`quantize` must be one of {MODES} or a list of them. "
            f"Received: quantize={quantize!r}"
        )
    return list(dict.fromkeys(values))


def _resolve_thresholds(thresholds, num_shallow):
    """-> dict(values, measure, fallback, source) for the manifest."""
    from keras_scan import thresholds as thresholds_lib

    if thresholds is None:
        warnings.warn(
            "No thresholds given: exporting with every threshold at 1.0, so the "
            "cascade never exits early. Run `keras-scan search` (or pass "
            "`thresholds=`) to enable early exit.",
            UserWarning,
            stacklevel=3,
        )
        return {
            "values": [1.0] * num_shallow,
            "measure": "max_prob",
            "fallback": "final",
            "source": "none",
        }
    source = "given"
    if isinstance(thresholds, dict):
        thresholds = thresholds_lib.Thresholds.from_dict(thresholds)
        source = "search"
    elif not isinstance(thresholds, thresholds_lib.Thresholds):
        thresholds = thresholds_lib.Thresholds(thresholds)
    elif thresholds.metrics:
        source = "search"
    if len(thresholds.values) != num_shallow:
        raise ValueError(
            f"`thresholds` must hold one value per shallow exit of the model "
            f"({num_shallow}). Received: thresholds={thresholds.values!r}"
        )
    return {
        "values": [float(v) for v in thresholds.values],
        "measure": thresholds.measure,
        "fallback": thresholds.fallback,
        "source": source,
    }


def _resolve_labels(labels, num_classes):
    if labels is None:
        return [str(i) for i in range(num_classes)]
    labels = [labels] if isinstance(labels, str) else list(labels)
    if len(labels) != num_classes or not all(isinstance(s, str) for s in labels):
        raise ValueError(
            f"`labels` must be {num_classes} class names (str), one per class. "
            f"Received: labels={labels!r}"
        )
    return labels


def _input_shape(model):
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(
            "LiteRT export needs a fixed image input size (height, width, "
            f"channels). Received: model input shape {model.inputs[0].shape}"
        )
    if shape[-1] not in (1, 3):
        raise ValueError(
            "LiteRT export supports 1- or 3-channel images (NHWC). Received: "
            f"model input shape {model.inputs[0].shape}"
        )
    return shape


def _check_images(name, images, shape):
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(
            f"`{name}` must hold images of shape {tuple(shape)} (the model input). "
            f"Received: images of shape {tuple(images.shape[1:])}"
        )


def _test_arrays(test_data, limit, shape):
    if isinstance(test_data, (tuple, list)) and len(test_data) == 2:
        x, y = np.asarray(test_data[0]), np.asarray(test_data[1])
        if limit is not None:
            x, y = x[:limit], y[:limit]
    else:
        import tensorflow as tf

        if not isinstance(test_data, tf.data.Dataset):
            raise ValueError(
                "`test_data` must be (x, y) arrays or a tf.data.Dataset of "
                f"(image, label). Received: {type(test_data).__name__}"
            )
        ds = test_data
        if ds.element_spec[0].shape.rank == 4:
            ds = ds.unbatch()
        if limit is not None:
            ds = ds.take(limit)
        pairs = list(ds.as_numpy_iterator())
        x = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, *shape))
        y = np.asarray([p[1] for p in pairs])
    y = y.reshape(-1)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            "`test_data` must hold at least one image and one label per image. "
            f"Received: {len(x)} images and {len(y)} labels"
        )
    _check_images("test_data", x, shape)
    return x.astype(np.float32), y.astype(np.int64)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


def _artifacts(model):
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
        key = _FINAL_FILE if name == model.exit_names[-1] else name
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


def _write_saved_model(artifacts, path):
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


def _convert(saved_model, keys, mode, calibration, uint8_input):
    """Converts the endpoints `keys` of the SavedModel to one .tflite (bytes)."""
    import tensorflow as tf

    from keras_scan import native_logs

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

        def representative_dataset():
            n = len(calibration["image"])
            for j in range(n):
                for key in keys:
                    name, array = calibration[key]
                    yield key, {name: array[j : j + 1]}

        converter.representative_dataset = representative_dataset
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


def _calibration_inputs(model, images):
    """Per endpoint key: (input name, float inputs) from the representative images."""
    stages = model.stage_models()
    x = images
    keys = {"image": images}
    for i, stage in enumerate(stages):
        keys[f"stage_{i}"] = ("image" if i == 0 else "features", x)
        if i < len(stages) - 1:
            x = np.asarray(stage.predict(x, batch_size=64, verbose=0)[0], np.float32)
    for name in model.exit_names:
        key = _FINAL_FILE if name == model.exit_names[-1] else name
        keys[key] = ("image", images)
    return keys


# ---------------------------------------------------------------------------
# The export itself
# ---------------------------------------------------------------------------


def _export_into(
    model,
    folder,
    *,
    modes,
    rule,
    labels,
    calibration,
    calibration_samples,
    seed,
    uint8_input,
    test,
    dataset,
    verbose,
):
    folder = pathlib.Path(folder)
    artifacts = _artifacts(model)
    stage_keys = [a[0] for a in artifacts if a[0].startswith("stage_")]
    exit_keys = [a[0] for a in artifacts if not a[0].startswith("stage_")]
    keras_probs = _keras_probs(model, test[0]) if test is not None else None
    exit_costs = _exit_costs(model)

    groups = {"cascade": stage_keys}
    groups.update({key: [key] for key in stage_keys + exit_keys})
    entries = {mode: {} for mode in modes}
    files = {}
    for stem, keys in groups.items():
        with tempfile.TemporaryDirectory(prefix="keras_scan_export_") as work:
            # One small SavedModel per file: the converter loads the whole
            # SavedModel twice per conversion, which dominates its run time.
            saved_model = pathlib.Path(work) / stem
            _write_saved_model([a for a in artifacts if a[0] in keys], saved_model)
            for mode in modes:
                file_name = f"{stem}.{mode}.tflite"
                start = time.perf_counter()
                blob = _convert(saved_model, keys, mode, calibration, uint8_input)
                path = folder / file_name
                path.write_bytes(blob)
                files[file_name] = {"bytes": len(blob), "sha256": _sha256(path)}
                entries[mode][stem] = {
                    "file": file_name,
                    "signatures": describe_model(path),
                }
                if verbose:
                    print(
                        f"  {file_name}: {len(blob) / 1024:.1f} KiB "
                        f"({time.perf_counter() - start:.1f} s)"
                    )

    variants = {}
    for mode in modes:
        variant = {
            "mode": mode,
            "input_dtype": (
                ("uint8" if uint8_input else "int8") if mode == "int8" else "float32"
            ),
        }
        if mode == "int8":
            variant["calibration"] = {
                "samples": int(len(calibration["image"])),
                "seed": seed,
                "source": "representative_data (training split)",
            }
        variant["exits"] = [
            dict(entries[mode][key], name=name, index=i)
            for i, (key, name) in enumerate(zip(exit_keys, model.exit_names))
        ]
        variant["cascade"] = entries[mode]["cascade"]
        variant["stages"] = [
            dict(entries[mode][key], name=key, index=i)
            for i, key in enumerate(stage_keys)
        ]
        variant["evaluation"] = None
        variants[mode] = variant

    manifest = {
        "format_version": FORMAT_VERSION,
        "exporter": _versions(),
        "model": {
            "name": model.name,
            "num_classes": int(model.num_classes),
            "num_exits": len(model.exit_names),
            "exit_names": list(model.exit_names),
        },
        "input": dict(
            zip(("height", "width", "channels"), (int(s) for s in _input_shape(model))),
            layout="NHWC",
            batch=1,
            pixel_range=[0, 255],
        ),
        "preprocessing": _preprocessing(model, dataset),
        "labels": labels,
        "thresholds": rule,
        "exits": exit_costs,
        "stages": _stage_costs(model),
        "default_variant": modes[0],
        "variants": variants,
        "files": dict(sorted(files.items())),
    }
    validate_manifest(manifest)
    from keras_scan import runs

    runs.write_json(folder / MANIFEST, manifest)
    if test is not None:
        # Evaluated from the folder as written, by the Python cascade runtime.
        for mode in modes:
            variants[mode]["evaluation"] = _evaluate_variant(
                folder, mode, test, keras_probs, rule, exit_costs
            )
        validate_manifest(manifest)
        runs.write_json(folder / MANIFEST, manifest)
    # Temporary files and folders are private (0600/0700); an export is not.
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)
    return json.loads((folder / MANIFEST).read_text())


def _versions():
    import keras
    import tensorflow as tf

    import keras_scan

    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001  (not installed: recorded as unknown)
        litert = None
    return {
        "keras_scan": keras_scan.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "ai_edge_litert": litert,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def _preprocessing(model, dataset):
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            found.append(
                {
                    "layer": layer.name,
                    "type": "Rescaling",
                    "scale": _jsonable_number(layer.scale),
                    "offset": _jsonable_number(layer.offset),
                }
            )
        elif isinstance(layer, keras.layers.Normalization):
            found.append({"layer": layer.name, "type": "Normalization"})
    return {
        "normalization": "in_model",
        "description": (
            "Feed raw pixels 0..255 (RGB, or grey for 1 channel) as the input dtype "
            "says: float32 values, or quantized with the input tensor's scale and "
            "zero point. The models normalise the pixels themselves."
        ),
        "in_model": found,
        "fit": (
            "Images of another size are zero-padded in the centre when the size "
            "difference is even on both axes (28 -> 32 pads 2 pixels a side), else "
            "resized bilinearly (antialiased when shrinking); grey is repeated to 3 "
            "channels, RGB turned grey with weights 0.2989, 0.5870, 0.1140 "
            "(keras_scan.data.resize_images)."
        ),
        "dataset": dataset,
    }


def _jsonable_number(value):
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else array.tolist()


def _exit_costs(model):
    info = model.exit_info
    return [
        {
            "index": i,
            "name": e["name"],
            "layer": str(e["layer"]),
            "channels": int(e["channels"]),
            "stride": int(e["stride"]),
            "macs": int(e["macs"]),
            "standalone_macs": int(e["standalone_macs"]),
            "head_macs": int(e["head_macs"]),
            "params": int(e["params"]),
        }
        for i, e in enumerate(info)
    ]


def _stage_costs(model):
    from keras_scan import cost

    stages = model.stage_models()
    return [
        {
            "index": i,
            "name": f"stage_{i}",
            "input": "image" if i == 0 else "features",
            "outputs": ["probs"] if i == len(stages) - 1 else ["features", "probs"],
            "macs": int(cost.count_macs(stage)),
            "params": int(cost.count_params(stage)),
        }
        for i, stage in enumerate(stages)
    ]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Reading exported models back (LiteRT interpreter, batch 1)
# ---------------------------------------------------------------------------


def _interpreter(path, num_threads=1):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=num_threads)


def _scan_lite():
    """The Python cascade runtime (`tflite/`): validates and evaluates exports."""
    try:
        import scan_lite
        import scan_lite.manifest
    except ImportError as e:
        raise ImportError(
            "keras_scan.export validates and evaluates what it writes with "
            "scan_lite, the Python cascade runtime in the repository's tflite/ "
            f"folder: `pip install ./tflite` (`make venv` does). ({e})"
        ) from None
    return scan_lite


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


def _keras_probs(model, x):
    outputs = model.predict(x, batch_size=128, verbose=0)
    probs = []
    for name in model.exit_names:
        logits = np.asarray(outputs[name], np.float64)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs.append(e / e.sum(axis=1, keepdims=True))
    return probs


def _evaluate_variant(folder, mode, test, keras_probs, rule, exit_costs):
    """Test accuracy of one written variant, run by scan_lite as a phone runs it.

    Every exit file on its own (against Keras' probabilities), then the
    cascade file stage by stage with the manifest's exit rule.
    """
    from keras_scan import thresholds as thresholds_lib

    x, y = test
    cascade = _scan_lite().Cascade(folder, variant=mode, verify=False)
    exits = []
    for i, (name, reference) in enumerate(
        zip(cascade.manifest["model"]["exit_names"], keras_probs)
    ):
        call = cascade.exit_model(i)
        probs = np.stack(
            [call(x[j : j + 1].astype(np.float32))[0] for j in range(len(x))]
        )
        exits.append(
            {
                "name": name,
                "accuracy": float(np.mean(probs.argmax(1) == y)),
                "keras_accuracy": float(np.mean(reference.argmax(1) == y)),
                "argmax_agreement": float(
                    np.mean(probs.argmax(1) == reference.argmax(1))
                ),
                "max_abs_diff": float(np.max(np.abs(probs - reference))),
            }
        )
    runs = [cascade.run_all(x[j]).stage_probs for j in range(len(x))]
    stage_probs = [
        np.clip(np.stack([r[s] for r in runs]), 0.0, 1.0)
        for s in range(cascade.num_exits)
    ]
    result = thresholds_lib.evaluate_thresholds(
        stage_probs,
        y,
        rule["values"],
        [e["macs"] for e in exit_costs],
        full_macs=exit_costs[-1]["standalone_macs"],
        measure=rule["measure"],
        fallback=rule["fallback"],
    )
    speedup = result["speedup"]
    return {
        "split": "test",
        "num_samples": int(len(x)),
        "exits": exits,
        "cascade": {
            "accuracy": float(result["accuracy"]),
            "exit_shares": [float(s) for s in result["exit_shares"]],
            "stage_accuracy": [float(np.mean(p.argmax(1) == y)) for p in stage_probs],
            "mean_macs": float(result["mean_macs"]),
            # vs the plain backbone (the final exit alone), as in the search.
            "speedup": None if speedup is None else float(speedup),
        },
    }


# ---------------------------------------------------------------------------
# The manifest schema
# ---------------------------------------------------------------------------


def validate_manifest(manifest):
    """Raises `ValueError` naming the first problem if `manifest` is not a valid export manifest.

    The one check every Python reader runs: scan_lite's (thresholds finite in
    [0, 1] whatever validator is installed, `manifest.schema.json`, then what a
    schema cannot say: counts match, every file is listed).

    Args:
        manifest: dict, a parsed `manifest.json`.
    """
    _scan_lite().manifest.validate(manifest)
