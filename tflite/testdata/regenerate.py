"""Regenerates tflite/testdata: a tiny exported SCAN model and conformance vectors.

Needs keras_scan with TensorFlow (the exporter); the files it writes are read by
the Python runtime tests (tflite/tests) and the Android JVM tests with numpy /
LiteRT only. Run from the repository root (about a minute on 2 CPU cores):

    python tflite/testdata/regenerate.py

What it does (seeded, so a rerun gives the same model on the same software):
1. trains a tiny 3-stage CNN (8-16-32 channels, 32x32x3 Fashion-MNIST) as a
   SCAN model with 2 shallow exits for 3 epochs (Adam) on 4,500 training images;
2. sets each shallow exit's max_prob threshold to the 60th percentile of its
   confidence on 500 validation images (so every exit answers some images);
3. saves it (model.keras) and exports it with `keras_scan.export` (int8 default variant + float32, int8
   calibrated on 300 training images, accuracy measured on 500 test images);
4. picks up to 4 test images answered by each exit, whose decision is the same
   in Keras, float32 and int8 and whose confidence is not within 2/256 of a
   threshold (so a 1-LSB difference between LiteRT builds cannot flip it), and
   records what each variant must return for them. The reference is computed
   here without scan_lite: each cascade signature is invoked directly with
   ai_edge_litert and the exit rule applied by keras_scan.thresholds.
"""

import json
import os
import pathlib
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_scan  # noqa: E402
from keras_scan import data  # noqa: E402
from keras_scan import thresholds as thresholds_lib  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
EXPORT = HERE / "export"
MODEL = HERE / "model.keras"  # the trained model, so a test can export it again
PER_EXIT = 4
CANDIDATES = 500
MARGIN = 2 / 256
QUANTILE = 0.6


def tiny_backbone():
    """A 3-stage CNN (8, 16, 32 channels at 32, 16, 8 px), raw 0..255 input."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, (filters, stride) in enumerate([(8, 1), (16, 2), (32, 2)]):
        x = layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}"
        )(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"stage{i}_out")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def train():
    keras.utils.set_random_seed(0)
    splits = load_splits()
    model = keras_scan.build(tiny_backbone(), num_classes=10, name="scan_tiny_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        metrics=["accuracy"],
    )
    model.fit(*splits.train, batch_size=64, epochs=3, verbose=0)
    return model, splits


def load_splits():
    """The data the model was trained, calibrated and evaluated on."""
    return data.load_dataset("fashion_mnist", 32, limit=5000, seed=0)


def export(model, splits, thresholds, folder):
    """The golden export's settings (`tests/test_conformance.py` reruns them)."""
    return keras_scan.export(
        model,
        folder,
        thresholds=thresholds,
        quantize=["int8", "float32"],
        representative_data=splits.train,
        labels=splits.class_names,
        test_data=splits.test,
        eval_limit=500,
        calibration_samples=300,
        dataset="fashion_mnist",
    )


def probs_of(model, x):
    out = model.predict(x, batch_size=256, verbose=0)
    probs = []
    for name in model.exit_names:
        z = np.asarray(out[name], np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probs.append(e / e.sum(axis=1, keepdims=True))
    return probs


def run_cascade_directly(path, x):
    """Every stage of a cascade file on each image: (probs per stage, raw outputs)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    keys = sorted(interpreter.get_signature_list(), key=lambda k: int(k.split("_")[1]))
    runners = [interpreter.get_signature_runner(k) for k in keys]
    probs = [[] for _ in keys]
    raw = [[] for _ in keys]
    for image in x:
        value = image[None]
        for s, runner in enumerate(runners):
            ((name, detail),) = runner.get_input_details().items()
            scale, zero_point = detail["quantization"]
            if s == 0 and scale > 0:
                info = np.iinfo(detail["dtype"])
                # LiteRT's rounding (halves away from zero; pixels are whole here).
                q = value / scale
                q = np.sign(q) * np.floor(np.abs(q) + 0.5)
                value = np.clip(q + zero_point, info.min, info.max)
            out = runner(**{name: np.asarray(value, detail["dtype"])})
            p_detail = runner.get_output_details()["probs"]
            p_scale, p_zero = p_detail["quantization"]
            q = out["probs"][0]
            raw[s].append(q.tolist())
            p = (q.astype(np.float64) - p_zero) * p_scale if p_scale > 0 else q
            probs[s].append(np.asarray(p, np.float64))
            value = out.get("features")
    return [np.clip(np.stack(p), 0.0, 1.0) for p in probs], raw


def main():
    model, splits = train()
    x_val, _ = splits.val
    val_probs = probs_of(model, x_val)
    values = [
        round(float(np.quantile(p.max(axis=1), QUANTILE)), 4) for p in val_probs[:-1]
    ]
    th = thresholds_lib.Thresholds(values, measure="max_prob", fallback="final")
    if EXPORT.exists():
        shutil.rmtree(EXPORT)
    model.save(MODEL)
    manifest = export(model, splits, th, EXPORT)

    x_test, y_test = splits.test
    x = x_test[:CANDIDATES]
    keras_probs = probs_of(model, x)
    decisions = {"keras": thresholds_lib.simulate_cascade(keras_probs, th)}
    per_variant = {}
    for mode in ("float32", "int8"):
        path = EXPORT / manifest["variants"][mode]["cascade"]["file"]
        probs, raw = run_cascade_directly(path, x)
        per_variant[mode] = (probs, raw)
        decisions[mode] = thresholds_lib.simulate_cascade(probs, th)

    def safe(i):
        for probs in [keras_probs, per_variant["float32"][0], per_variant["int8"][0]]:
            for e, t in enumerate(values):
                if abs(probs[e][i].max() - t) < MARGIN:
                    return False
        preds = {k: (int(v[0][i]), int(v[1][i])) for k, v in decisions.items()}
        return len(set(preds.values())) == 1

    chosen, counts = [], {}
    for i in range(len(x)):
        e = int(decisions["int8"][1][i])
        if counts.get(e, 0) < PER_EXIT and safe(i):
            chosen.append(i)
            counts[e] = counts.get(e, 0) + 1
    if len(counts) < len(model.exit_names):
        sys.exit(f"not every exit answers a safe image: {counts}; change QUANTILE")

    images = x[chosen].round().astype(np.uint8)
    np.save(HERE / "images.npy", images)
    expected = {
        "format_version": 1,
        "export": "export",
        "images": "images.npy",
        "images_shape": list(images.shape),
        "images_dtype": "uint8",
        "test_indices": chosen,
        "labels": [int(y_test[i]) for i in chosen],
        "thresholds": manifest["thresholds"],
        "keras": {
            "stage_probs": [
                [keras_probs[e][i].tolist() for e in range(3)] for i in chosen
            ]
        },
        "variants": {},
    }
    for mode, tolerance in (("float32", 1e-5), ("int8", 0.0)):
        probs, raw = per_variant[mode]
        preds, exits = decisions[mode]
        cases = []
        for i in chosen:
            e = int(exits[i])
            case = {
                "label": int(preds[i]),
                "exit_index": e,
                "probability": float(probs[e][i][int(preds[i])]),
                "stage_probs": [probs[s][i].tolist() for s in range(len(probs))],
            }
            if mode == "int8":
                case["stage_probs_q"] = [raw[s][i] for s in range(len(raw))]
            cases.append(case)
        expected["variants"][mode] = {"tolerance": tolerance, "cases": cases}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    sizes = sum(f.stat().st_size for f in EXPORT.iterdir())
    print(
        f"wrote {EXPORT} ({sizes / 1024:.0f} KiB), {len(chosen)} images "
        f"(per exit {dict(sorted(counts.items()))}), thresholds {values}"
    )
    for mode, variant in manifest["variants"].items():
        ev = variant["evaluation"]
        print(mode, [round(e["accuracy"], 3) for e in ev["exits"]], ev["cascade"])


if __name__ == "__main__":
    main()
