"""Writes cascade-core's golden vectors for the exit rule from keras_scan/thresholds.py.

The JVM test ExitRuleVectorsTest replays them, so the Java rule is checked against the
reference implementation itself, not against a second copy of the rule. Rerun after a change
to the rule:

    .venv/bin/python android_demo/scripts/make_rule_vectors.py
"""

import json
import pathlib

import numpy as np

from keras_scan.thresholds import FALLBACKS, MEASURES, confidence, simulate_cascade

OUT = (
    pathlib.Path(__file__).resolve().parents[1]
    / "cascade-core/src/test/resources/rule_vectors.json"
)


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


def main():
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
                preds, exits = simulate_cascade(probs, th, measure=measure, fallback=fallback)
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
        "generator": "android_demo/scripts/make_rule_vectors.py (keras_scan.thresholds)",
        "num_samples": n,
        "num_classes": c,
        "probs": [[[float(v) for v in row] for row in p] for p in probs],
        "confidence": {
            m: [confidence(p, m).tolist() for p in probs] for m in MEASURES
        },
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
