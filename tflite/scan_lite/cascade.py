"""`Cascade`: early-exit inference over a keras_scan LiteRT export, batch 1."""

import dataclasses
import math
import time

import numpy as np

from scan_lite import images as images_lib
from scan_lite import manifest as manifest_lib
from scan_lite import native_logs, quant


def confidence(probs, measure):
    """Confidence of one prediction in [0, 1] (same rule as keras_scan.thresholds).

    Args:
        probs: 1-D array of class probabilities.
        measure: `"max_prob"` (largest probability), `"margin"` (largest minus
            second largest) or `"entropy"` (`1 - H(p) / log(C)`).
    """
    p = np.asarray(probs, np.float64).reshape(-1)
    if measure == "max_prob":
        c = p.max()
    elif measure == "margin":
        top2 = np.partition(p, p.size - 2)[-2:]
        c = top2[1] - top2[0]
    elif measure == "entropy":
        plogp = p * np.log(np.where(p > 0, p, 1.0))
        c = 1.0 + plogp.sum() / math.log(p.size)
    else:
        raise ValueError(
            f"`measure` must be one of {manifest_lib.MEASURES}. Received: {measure!r}"
        )
    return float(np.clip(c, 0.0, 1.0))


def should_exit(conf, threshold):
    """The exit rule: `threshold < 1` and `conf >= threshold` (1.0 disables)."""
    return threshold < 1.0 and conf >= threshold


@dataclasses.dataclass
class Result:
    """What the cascade answered for one image.

    Attributes:
        label: int. The predicted class.
        label_name: str. Its name from the manifest.
        probability: float. The answering exit's probability of `label` (the
            mean over exits with the `"ensemble"` fallback).
        confidence: float. The answering exit's confidence (the measure).
        exit_index: int. Which exit answered: 0..K-1 shallow, K the final exit.
        probs: float32 array (C,). The probabilities the answer came from.
        stage_probs: list of float32 arrays, one per stage run.
        stage_latency_ms: list of float, wall time of each stage run
            (input quantization, invoke, output dequantization).
        latency_ms: float. Wall time of the whole cascade for this image.
    """

    label: int
    label_name: str
    probability: float
    confidence: float
    exit_index: int
    probs: np.ndarray
    stage_probs: list
    stage_latency_ms: list
    latency_ms: float


class _Signature:
    """One signature of a .tflite file, fed and read with raw tensor values.

    Tensor descriptions come from the interpreter (the file is the truth) and
    must agree with the manifest's.
    """

    def __init__(self, interpreter, key, description, file_name):
        self.key = key
        try:
            self.runner = interpreter.get_signature_runner(key)
        except ValueError as e:
            raise manifest_lib.ManifestError(
                f"{file_name} has no signature {key!r} that LiteRT can run ({e}); "
                "the manifest names it. Re-export the folder."
            ) from None
        self.inputs = _describe(self.runner.get_input_details())
        self.outputs = _describe(self.runner.get_output_details())
        for side, actual in (("inputs", self.inputs), ("outputs", self.outputs)):
            _check_tensors(file_name, key, side, actual, description[side])
        if len(self.inputs) != 1:
            raise manifest_lib.ManifestError(
                f"{file_name} signature {key} must have one input. Received: "
                f"{sorted(self.inputs)}"
            )
        (self.input_name,) = self.inputs
        self.input = self.inputs[self.input_name]
        self.input_codec = quant.Codec(self.input)
        self.probs_codec = quant.Codec(self.outputs["probs"])

    def __call__(self, value):
        return self.runner(**{self.input_name: value})


def _describe(details):
    out = {}
    for name, d in details.items():
        scale, zero_point = d["quantization"]
        out[name] = {
            "name": name,
            "shape": [int(v) for v in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return out


def _check_tensors(file_name, key, side, actual, recorded):
    problem = None
    if sorted(actual) != sorted(recorded):
        problem = f"tensors {sorted(actual)} vs manifest {sorted(recorded)}"
    else:
        for name, a in actual.items():
            r = recorded[name]
            same_scale = math.isclose(a["scale"], float(r["scale"]), rel_tol=1e-6)
            if (
                a["dtype"] != r["dtype"]
                or a["shape"] != list(r["shape"])
                or not same_scale
                or a["zero_point"] != r["zero_point"]
            ):
                problem = f"{name}: file {a} vs manifest {r}"
                break
    if problem:
        raise manifest_lib.ManifestError(
            f"{file_name} signature {key} {side} disagree with the manifest: "
            f"{problem}. Re-export the folder."
        )


class Cascade:
    """Runs a keras_scan export stage by stage, exiting early on confident images.

    Loads `manifest.json`, validates it (JSON Schema when `jsonschema` is
    installed, else built-in checks), refuses file names that leave the folder,
    verifies the size and SHA-256 of every file, then runs the chained stages
    of one variant: stage 0 on the image, each next stage on the previous
    stage's features (requantized when the two tensors' quantization differ),
    answering at the first shallow exit `i` with `threshold[i] < 1` and
    `confidence >= threshold[i]`, else at the final exit with the fallback
    (`"final"`: its argmax; `"ensemble"`: argmax of the mean of all exits).

    Args:
        export_dir: str or path. The export folder.
        variant: str. Quantization variant (`"int8"`, `"float32"`, ...).
            Defaults to the manifest's `default_variant`.
        stage_files: bool. Run the separate `stage_K` files instead of the
            multi-signature `cascade` file. Defaults to `False`.
        num_threads: int. LiteRT CPU threads per interpreter. Defaults to 1.
        verify: bool. Verify SHA-256 of every file. Defaults to `True`.

    Example:
    ```python
    import numpy as np
    import scan_lite
    cascade = scan_lite.Cascade("exports/fm18")
    result = cascade.run(np.load("shirt.npy"))
    print(result.label_name, result.probability, result.exit_index)
    ```
    """

    def __init__(
        self, export_dir, variant=None, stage_files=False, num_threads=1, verify=True
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.export_dir = export_dir
        self.manifest = manifest_lib.load_manifest(export_dir, verify=verify)
        self._verified = bool(verify)
        m = self.manifest
        variant = m["default_variant"] if variant is None else variant
        if variant not in m["variants"]:
            raise ValueError(
                f"`variant` must be one of {sorted(m['variants'])} (this export). "
                f"Received: variant={variant!r}"
            )
        if isinstance(num_threads, bool) or not isinstance(num_threads, int):
            raise ValueError(
                f"`num_threads` must be a positive int. Received: {num_threads!r}"
            )
        self.variant = variant
        self.stage_files = bool(stage_files)
        self.num_threads = num_threads
        self.labels = list(m["labels"])
        self.thresholds = [float(v) for v in m["thresholds"]["values"]]
        self.measure = m["thresholds"]["measure"]
        self.fallback = m["thresholds"]["fallback"]
        inp = m["input"]
        self.input_shape = (int(inp["height"]), int(inp["width"]), int(inp["channels"]))
        self.num_exits = int(m["model"]["num_exits"])
        self._Interpreter = Interpreter
        spec = m["variants"][variant]
        self.input_dtype = spec["input_dtype"]

        self.stages = []
        if stage_files:
            for entry in sorted(spec["stages"], key=lambda e: e["index"]):
                interpreter = self._open(entry["file"])
                ((key, description),) = entry["signatures"].items()
                self.stages.append(
                    _Signature(interpreter, key, description, entry["file"])
                )
        else:
            entry = spec["cascade"]
            interpreter = self._open(entry["file"])
            for i in range(self.num_exits):
                key = f"stage_{i}"
                self.stages.append(
                    _Signature(
                        interpreter, key, entry["signatures"][key], entry["file"]
                    )
                )
        self._check_stages()
        # Stage links whose quantization differs (the runtime requantizes there).
        self.requantized_links = [
            i
            for i in range(1, len(self.stages))
            if not quant.same_quantization(
                self.stages[i - 1].outputs["features"], self.stages[i].input
            )
        ]
        # Per link: None (feed the features unchanged) or (source, target) codecs.
        self._links = [None] + [
            (quant.Codec(self.stages[i - 1].outputs["features"]), stage.input_codec)
            if i in self.requantized_links
            else None
            for i, stage in enumerate(self.stages[1:], start=1)
        ]
        self._exit_models = None

    def _open(self, name):
        path = manifest_lib.safe_path(self.export_dir, name)
        try:
            # Allocating applies LiteRT's default CPU delegate (XNNPACK) here,
            # not in the first (timed) run, and LiteRT announces it once per
            # process on stderr: that INFO line is dropped (native_logs).
            with native_logs.quiet_litert():
                interpreter = self._Interpreter(
                    model_path=str(path), num_threads=self.num_threads
                )
                interpreter.allocate_tensors()
            return interpreter
        except (ValueError, RuntimeError) as e:
            raise manifest_lib.ManifestError(
                f"LiteRT cannot load {name} ({str(path)!r}): {e}. "
                + (
                    "Its size and SHA-256 match the manifest: the export itself "
                    "holds a broken model; re-export it."
                    if self._verified
                    else "Load it with verify=True to check it against the manifest."
                )
            ) from None

    def _check_stages(self):
        h, w, c = self.input_shape
        first = self.stages[0].input
        if tuple(first["shape"]) != (1, h, w, c):
            raise manifest_lib.ManifestError(
                f"stage_0 takes shape {first['shape']} but the manifest's input is "
                f"1x{h}x{w}x{c}."
            )
        for i, stage in enumerate(self.stages):
            last = i == len(self.stages) - 1
            need = {"probs"} if last else {"features", "probs"}
            if set(stage.outputs) != need:
                raise manifest_lib.ManifestError(
                    f"stage_{i} must output {sorted(need)}. Received: "
                    f"{sorted(stage.outputs)}"
                )
            if i > 0:
                produced = self.stages[i - 1].outputs["features"]["shape"]
                if produced != stage.input["shape"]:
                    raise manifest_lib.ManifestError(
                        f"stage_{i - 1} outputs features of shape {produced} but "
                        f"stage_{i} takes {stage.input['shape']}."
                    )

    # ------------------------------------------------------------- inputs
    def prepare(self, image, fit=False):
        """Checks (or with `fit=True` pads/resizes) one image to the model input.

        Args:
            image: array (H, W) or (H, W, C) of raw pixels 0..255.
            fit: bool. Pad or resize to the input size and convert channels,
                as the training pipeline did. Defaults to `False` (refuse).

        Returns:
            float32 array (1, height, width, channels).
        """
        x = np.asarray(image)
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim == 2:
            x = x[..., None]
        h, w, c = self.input_shape
        if x.ndim != 3:
            raise ValueError(
                f"`image` must be H x W or H x W x C. Received: shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
            x.dtype, np.complexfloating
        ):
            raise ValueError(f"`image` must hold numbers. Received: dtype {x.dtype}")
        if tuple(x.shape) != (h, w, c):
            if not fit:
                raise ValueError(
                    f"`image` has shape {tuple(x.shape)} (height, width, channels) "
                    f"but the model takes {h}x{w}x{c}. Pass fit=True (`--fit`) to "
                    "pad or resize it and convert its channels like the training "
                    "data, or prepare it yourself."
                )
            x = images_lib.fit_images(x[None], h, w, c)[0]
        x = x.astype(np.float32)
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 255):
            raise ValueError(
                "`image` must hold raw pixels in 0..255 (the model normalises them). "
                f"Received: values in [{x.min()}, {x.max()}]"
            )
        return x[None]

    # ---------------------------------------------------------------- run
    def run(self, image, fit=False):
        """Classifies one image, stopping at the first confident exit.

        Args:
            image: array (H, W[, C]) of raw pixels 0..255.
            fit: bool. See `prepare`. Defaults to `False`.

        Returns:
            A `Result`.
        """
        return self._run(self.prepare(image, fit=fit), early_exit=True)

    def run_all(self, image, fit=False):
        """Runs every stage (no early exit); returns a `Result` with all stage_probs.

        The answer is still the one the exit rule gives.
        """
        return self._run(self.prepare(image, fit=fit), early_exit=False)

    def _run(self, x, early_exit):
        start = time.perf_counter()
        stage_probs, latencies = [], []
        answer = None
        value = None
        k = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            t0 = time.perf_counter()
            link = self._links[i]
            if i == 0:  # stage_0's time includes quantizing the image
                value = stage.input_codec.quantize(x)
            elif link is not None:
                value = link[1].quantize(link[0].dequantize(value))
            out = stage(value)
            probs = stage.probs_codec.dequantize(out["probs"])[0]
            latencies.append((time.perf_counter() - t0) * 1e3)
            stage_probs.append(probs)
            if i < k:
                value = out["features"]
                if answer is None:
                    conf = confidence(probs, self.measure)
                    if should_exit(conf, self.thresholds[i]):
                        answer = (i, probs, conf)
                        if early_exit:
                            break
        if answer is None:
            final = stage_probs[-1]
            conf = confidence(final, self.measure)
            if self.fallback == "ensemble":
                final = np.mean(np.stack(stage_probs), axis=0).astype(np.float32)
            answer = (k, final, conf)
        index, probs, conf = answer
        label = int(np.argmax(probs))
        return Result(
            label=label,
            label_name=self.labels[label],
            probability=float(probs[label]),
            confidence=float(conf),
            exit_index=int(index),
            probs=probs,
            stage_probs=stage_probs,
            stage_latency_ms=latencies,
            latency_ms=(time.perf_counter() - start) * 1e3,
        )

    __call__ = run

    # -------------------------------------------------------- exit models
    def exit_model(self, index):
        """A callable `image (1, H, W, C) float32 -> (probs, latency_ms)` for one exit file.

        Args:
            index: int. 0..K-1 for `exit_i`, K for `full` (the final exit).
        """
        if self._exit_models is None:
            spec = self.manifest["variants"][self.variant]
            models = []
            for entry in sorted(spec["exits"], key=lambda e: e["index"]):
                ((key, description),) = entry["signatures"].items()
                models.append(
                    _Signature(
                        self._open(entry["file"]), key, description, entry["file"]
                    )
                )
            self._exit_models = models
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"`index` must be an int. Received: index={index!r}")
        if not 0 <= index < len(self._exit_models):
            raise ValueError(
                f"`index` must be in [0, {len(self._exit_models) - 1}]. "
                f"Received: index={index}"
            )
        model = self._exit_models[index]

        def call(x):
            t0 = time.perf_counter()
            out = model(model.input_codec.quantize(x))
            probs = model.probs_codec.dequantize(out["probs"])[0]
            return probs, (time.perf_counter() - t0) * 1e3

        return call
