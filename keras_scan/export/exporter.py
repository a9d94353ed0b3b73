"""`keras_scan.export`: checks the arguments, converts every file into a temporary folder, renames it into place.

The folder is written to a temporary sibling (`keras_scan.runs.atomic_folder`)
and renamed into place, so an exception mid-export leaves nothing behind.
"""

import json
import pathlib
import tempfile
import time
import warnings

from keras_scan import progress as progress_lib
from keras_scan.export import arguments, evaluation, litert
from keras_scan.export import manifest as manifest_lib
from keras_scan.export.litert import DEFAULT_CALIBRATION_SAMPLES


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
    progress=False,
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
            difference go into the manifest; an exit more than 2 points
            below Keras on those images is warned about. Defaults to `None`.
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
        progress: bool. Draw a bar on stderr over the calibration images of
            each int8 file as the converter calibrates it
            (`keras_scan.progress`); `keras-scan export` turns it on when
            stderr is a terminal. Defaults to `False`.

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

    arguments.check_model(model)
    modes = arguments.resolve_modes(quantize)
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
    arguments.check_positive_int("calibration_samples", calibration_samples)
    progress_lib.check(progress)
    if eval_limit is not None:
        arguments.check_positive_int("eval_limit", eval_limit)
    num_shallow = len(model.exit_names) - 1
    rule = arguments.resolve_thresholds(thresholds, num_shallow)
    labels = arguments.resolve_labels(labels, model.num_classes)
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
    height, width, channels = arguments.input_shape(model)

    calibration = None
    if "int8" in modes:
        from keras_scan import data

        images = data.representative_images(
            representative_data, n=int(calibration_samples), seed=int(seed)
        )
        arguments.check_images("representative_data", images, (height, width, channels))
        calibration = litert.calibration_inputs(model, images)
    test = None
    if test_data is not None:
        test = arguments.as_test_arrays(
            test_data, eval_limit, (height, width, channels)
        )

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
            seed=int(seed),
            uint8_input=uint8_input,
            test=test,
            dataset=dataset,
            verbose=verbose,
            progress=progress,
        )
    for message in evaluation.accuracy_drops(manifest):
        warnings.warn(message, UserWarning, stacklevel=2)
    return manifest


def _export_into(
    model,
    folder,
    *,
    modes,
    rule,
    labels,
    calibration,
    seed,
    uint8_input,
    test,
    dataset,
    verbose,
    progress=False,
):
    """Converts every file into `folder`, then writes (and evaluates) the manifest."""
    folder = pathlib.Path(folder)
    artifacts = litert.list_artifacts(model)
    stage_keys = [a[0] for a in artifacts if a[0].startswith("stage_")]
    exit_keys = [a[0] for a in artifacts if not a[0].startswith("stage_")]
    keras_probs = (
        evaluation.keras_probabilities(model, test[0]) if test is not None else None
    )
    exit_costs = manifest_lib.exit_costs(model)

    groups = {"cascade": stage_keys}
    groups.update({key: [key] for key in stage_keys + exit_keys})
    entries = {mode: {} for mode in modes}
    files = {}
    for stem, keys in groups.items():
        with tempfile.TemporaryDirectory(prefix="keras_scan_export_") as work:
            # One small SavedModel per file: the converter loads the whole
            # SavedModel twice per conversion, which dominates its run time.
            saved_model = pathlib.Path(work) / stem
            litert.write_saved_model(
                [a for a in artifacts if a[0] in keys], saved_model
            )
            for mode in modes:
                file_name = f"{stem}.{mode}.tflite"
                start = time.perf_counter()
                blob = litert.convert(
                    saved_model,
                    keys,
                    mode,
                    calibration,
                    uint8_input,
                    progress=progress,
                    name=file_name,
                )
                path = folder / file_name
                path.write_bytes(blob)
                files[file_name] = {
                    "bytes": len(blob),
                    "sha256": manifest_lib.sha256(path),
                }
                entries[mode][stem] = {
                    "file": file_name,
                    "signatures": litert.describe_model(path),
                }
                if verbose:
                    print(
                        f"  {file_name}: {len(blob) / 1024:.1f} KiB "
                        f"({time.perf_counter() - start:.1f} s)"
                    )

    manifest = manifest_lib.assemble(
        model,
        modes=modes,
        entries=entries,
        files=files,
        exit_keys=exit_keys,
        stage_keys=stage_keys,
        rule=rule,
        labels=labels,
        calibration=calibration,
        seed=seed,
        uint8_input=uint8_input,
        exit_costs=exit_costs,
        dataset=dataset,
    )
    manifest_lib.validate_manifest(manifest)
    from keras_scan import runs

    runs.write_json(folder / manifest_lib.MANIFEST, manifest)
    if test is not None:
        # Evaluated from the folder as written, by the Python cascade runtime.
        for mode in modes:
            manifest["variants"][mode]["evaluation"] = evaluation.evaluate_variant(
                folder, mode, test, keras_probs, rule, exit_costs
            )
        manifest_lib.validate_manifest(manifest)
        runs.write_json(folder / manifest_lib.MANIFEST, manifest)
    # Temporary files and folders are private (0600/0700); an export is not.
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)
    return json.loads((folder / manifest_lib.MANIFEST).read_text())
