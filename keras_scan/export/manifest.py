"""The export manifest: assembled from the written files and the model, validated by scan_lite.

`manifest.json` is the contract between the exporter, the Python runtime
(`tflite/scan_lite`) and the Android app: `tflite/manifest.schema.json` says
what it holds. Key order is part of what is written (readers diff it).
"""

import datetime

import numpy as np

from keras_scan.export import arguments

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def assemble(
    model,
    *,
    modes,
    entries,
    files,
    exit_keys,
    stage_keys,
    rule,
    labels,
    calibration,
    seed,
    uint8_input,
    exit_costs,
    dataset,
):
    """The manifest (a dict, `evaluation` still `None` in every variant).

    `entries[mode][key]` is `{"file", "signatures"}` of each written file,
    `files[file_name]` its `{"bytes", "sha256"}`.
    """
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

    return {
        "format_version": FORMAT_VERSION,
        "exporter": _versions(),
        "model": {
            "name": model.name,
            "num_classes": int(model.num_classes),
            "num_exits": len(model.exit_names),
            "exit_names": list(model.exit_names),
        },
        "input": dict(
            zip(
                ("height", "width", "channels"),
                (int(s) for s in arguments.input_shape(model)),
            ),
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


def exit_costs(model):
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


def sha256(path):
    """Hex SHA-256 of a written file: scan_lite's, which verifies it on load."""
    return load_scan_lite().manifest.sha256(path)


# ---------------------------------------------------------------------------
# Validation (scan_lite's, the one check every Python reader runs)
# ---------------------------------------------------------------------------


def load_scan_lite():
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


def validate_manifest(manifest):
    """Raises `ValueError` naming the first problem if `manifest` is not a valid export manifest.

    The one check every Python reader runs: scan_lite's (thresholds finite in
    [0, 1] whatever validator is installed, `manifest.schema.json`, then what a
    schema cannot say: counts match, every file is listed).

    Args:
        manifest: dict, a parsed `manifest.json`.
    """
    load_scan_lite().manifest.validate(manifest)
