"""Evaluation of a written export: every file run by scan_lite, batch 1, as a phone runs it."""

import numpy as np

from keras_scan.exit_rule import softmax
from keras_scan.export import manifest as manifest_lib

# An exported exit this many points below the Keras model on the same test
# images is reported (paired on the same images: not sampling noise).
DROP_WARNING_POINTS = 2.0


def accuracy_drops(manifest, points=None):
    """Warnings for exported exits more than `points` below Keras on test.

    Args:
        manifest: an export's manifest with `evaluation` in its variants.
        points: float. Accuracy points below the Keras model that are
            reported. Defaults to `DROP_WARNING_POINTS`.

    Returns:
        list of str, one per exit and variant (empty without an evaluation).
    """
    points = DROP_WARNING_POINTS if points is None else float(points)
    messages = []
    names = manifest["model"]["exit_names"]
    for mode, variant in manifest["variants"].items():
        ev = variant.get("evaluation")
        if not ev:
            continue
        for name, e in zip(names, ev["exits"]):
            # Rounded: accuracies are counts over the same images.
            drop = round(100 * (e["keras_accuracy"] - e["accuracy"]), 6)
            if drop <= points:
                continue
            advice = (
                " Full-integer quantization does not fit this exit: compare "
                "the `dynamic` variant (int8 weights, float activations), "
                "e.g. `--quantize int8 dynamic` (`quantize=['int8', 'dynamic']`)."
                if mode == "int8"
                else ""
            )
            messages.append(
                f"{mode} {name} answers {100 * e['accuracy']:.2f}% of "
                f"{ev['num_samples']} test images, {drop:.2f} points below the "
                f"Keras model on the same images ({100 * e['keras_accuracy']:.2f}%)."
                + advice
            )
    return messages


def keras_probabilities(model, x):
    """Per exit, Keras' softmax probabilities of `x` (float64: the reference)."""
    outputs = model.predict(x, batch_size=128, verbose=0)
    return [softmax(outputs[name], dtype=np.float64) for name in model.exit_names]


def evaluate_variant(folder, mode, test, keras_probs, rule, exit_costs):
    """Test accuracy of one written variant, run by scan_lite as a phone runs it.

    Every exit file on its own (against Keras' probabilities), then the
    cascade file stage by stage with the manifest's exit rule.
    """
    from keras_scan import thresholds as thresholds_lib

    x, y = test
    cascade = manifest_lib.load_scan_lite().Cascade(folder, variant=mode, verify=False)
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
