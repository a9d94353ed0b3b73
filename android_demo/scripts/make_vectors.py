"""Writes cascade-core's golden vectors from the Python reference implementations.

- rule_vectors.json: confidences, exit indices and predictions of
  keras_scan/thresholds.py (`confidence`, `simulate_cascade`); replayed by
  ExitRuleVectorsTest.
- fit_vectors.json: images fitted to a model input by tflite/scan_lite/images.py
  (`fit_images`: centre zero-pad, antialiased bilinear resize, grey <-> RGB); replayed
  by ImagePreprocessorTest.

So the Java code is checked against the reference code itself, not against a second copy
of the rules. Rerun from the repository root after a change to either:

    .venv/bin/python android_demo/scripts/make_vectors.py
"""

import json
import pathlib
import sys

import numpy as np

from keras_scan.thresholds import FALLBACKS, MEASURES, confidence, simulate_cascade

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "android_demo/cascade-core/src/test/resources"
OUT = RESOURCES / "rule_vectors.json"
FIT_OUT = RESOURCES / "fit_vectors.json"


def _probs(rng, n, c, k1):
    """K+1 float32 softmax arrays with a spread of confidences, ties and saturation."""
    out = []
    for e in range(k1):
        logits = rng.normal(size=(n, c)) * rng.uniform(0.2, 6.0, size=(n, 1)) * (1 + e)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        p[0] = np.float32(1.0 / c)  # uniform: confidence 0 for margin / entropy
        p[1] = 0
        p[1, e % c] = 1  # saturated: max_prob 1.0, must still not exit at threshold 1.0
        p[2] = 0
        p[2, 0] = p[2, 1] = 0.5  # tie: argmax takes the first
        out.append(p)
    return out


def fit_vectors():
    """Images of several sizes and channels fitted by scan_lite to 8x8 grey / RGB inputs."""
    sys.path.insert(0, str(ROOT / "tflite"))
    from scan_lite.images import fit_images

    rng = np.random.default_rng(7)
    cases = []
    # (height, width, channels) -> fitted to (8, 8, C): padding, identity, shrink by
    # integer and fractional factors, grey to RGB and RGB to grey.
    for h, w, c in [
        (6, 4, 1),
        (8, 8, 3),
        (16, 16, 3),
        (21, 21, 1),
        (13, 13, 3),
        (40, 40, 1),
    ]:
        image = rng.integers(0, 256, size=(h, w, c)).astype(np.uint8)
        for target_c in (1, 3):
            fitted = fit_images(image[None], 8, 8, target_c)[0]
            cases.append(
                {
                    "shape": [h, w, c],
                    "channels": target_c,
                    "image": image.reshape(-1).tolist(),
                    "fitted": [float(v) for v in fitted.reshape(-1)],
                }
            )
    doc = {
        "generator": "android_demo/scripts/make_vectors.py (scan_lite.fit_images)",
        "height": 8,
        "width": 8,
        "cases": cases,
    }
    FIT_OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {FIT_OUT} ({FIT_OUT.stat().st_size} bytes, {len(cases)} cases)")


def main():
    fit_vectors()
    rng = np.random.default_rng(6)
    n, c, k1 = 120, 5, 4
    probs = _probs(rng, n, c, k1)
    cases = []
    threshold_sets = [
        [0.9, 0.8, 0.7],
        [1.0, 0.5, 0.95],
        [0.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.55, 0.35, 0.2],
    ]
    for measure in MEASURES:
        for fallback in FALLBACKS:
            for th in threshold_sets:
                preds, exits = simulate_cascade(
                    probs, th, measure=measure, fallback=fallback
                )
                cases.append(
                    {
                        "thresholds": th,
                        "measure": measure,
                        "fallback": fallback,
                        "predictions": preds.tolist(),
                        "exit_index": exits.tolist(),
                    }
                )
    doc = {
        "generator": "android_demo/scripts/make_vectors.py (keras_scan.thresholds)",
        "num_samples": n,
        "num_classes": c,
        "probs": [[[float(v) for v in row] for row in p] for p in probs],
        "confidence": {m: [confidence(p, m).tolist() for p in probs] for m in MEASURES},
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
