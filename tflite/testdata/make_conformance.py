"""Writes tflite/testdata/conformance/: the vectors every cascade runtime replays.

One rule, three runtimes: keras_scan (training side, `tests/test_conformance.py`),
scan_lite (`tflite/tests/test_scan_lite_conformance.py`) and the Java cascade core
(`ConformanceTest`, run by `android_demo/scripts/test_core.sh`) all replay the
same files, so a change to the rule in one of them fails the others' tests.

- exit_rule.json: confidence measures and the exit rule (which exit answers,
  which class) from keras_scan's reference (`confidence`, `simulate_cascade`).
- quantization.json: quantize / dequantize / requantize as LiteRT defines them
  (`real = scale * (q - zero_point)`, rounding halves away from zero), ties,
  clipping and stage links with differing scales. The expected integers are the
  rule itself, checked against hand-written values below, not against any one
  runtime's code.
- image_fitting.json: images fitted to a model input (centre zero-pad when the
  difference is even, else antialiased bilinear resize with half-pixel centres;
  grey <-> RGB) from random pixels, real Fashion-MNIST test images and the PNG
  files in png/ (their decoded pixels are recorded too).
- invalid_manifests.json: patches of export/manifest.json that every runtime
  must refuse, each with the manifest location its error must name.

Run from the repository root after changing a rule (numpy, Pillow, keras_scan
and scan_lite importable; Fashion-MNIST from the Debian package
`dataset-fashion-mnist`):

    .venv/bin/python tflite/testdata/make_conformance.py           # write
    .venv/bin/python tflite/testdata/make_conformance.py --check   # stale?
"""

import argparse
import gzip
import io
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "conformance"
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
FORMAT_VERSION = 1

# A NaN cannot be written in strict JSON: a case that needs one puts this string
# in its patch, and the runtime replaces `"__NaN__"` (quotes included) by `NaN`
# in the manifest text it parses.
NAN_MARK = "__NaN__"


def _f32(values):
    """Python floats that are exactly float32 values (what the runtimes hold)."""
    return [float(v) for v in np.asarray(values, np.float32).reshape(-1)]


# ---------------------------------------------------------------------------
# Exit rule
# ---------------------------------------------------------------------------


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


def exit_rule():
    from keras_scan.exit_rule import FALLBACKS, MEASURES, confidence, simulate_cascade

    rng = np.random.default_rng(6)
    n, c, k1 = 120, 5, 4
    probs = _probs(rng, n, c, k1)
    cases = []
    for measure in MEASURES:
        for fallback in FALLBACKS:
            for th in (
                [0.9, 0.8, 0.7],
                [1.0, 0.5, 0.95],
                [0.0, 1.0, 1.0],
                [1.0, 1.0, 1.0],
                [0.55, 0.35, 0.2],
            ):
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
    return {
        "format_version": FORMAT_VERSION,
        "reference": "keras_scan.exit_rule (confidence, simulate_cascade)",
        "rule": (
            "the first shallow exit i with thresholds[i] < 1 and "
            "confidence(probs_i) >= thresholds[i] answers with argmax(probs_i); "
            "else the final exit: argmax(probs_K) ('final') or argmax of the mean "
            "of all exits' probs ('ensemble'); argmax ties take the first class"
        ),
        "confidence_tolerance": 1e-6,
        "num_samples": n,
        "num_classes": c,
        "probs": [[_f32(row) for row in p] for p in probs],
        "confidence": {m: [confidence(p, m).tolist() for p in probs] for m in MEASURES},
        "cases": cases,
    }


# ---------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------


def _tensor(dtype, scale, zero_point):
    return {"dtype": dtype, "scale": _f32([scale])[0], "zero_point": zero_point}


def _round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _quantize(real, t):
    info = np.iinfo(np.dtype(t["dtype"]))
    q = _round_half_away(np.asarray(real, np.float64) / t["scale"]) + t["zero_point"]
    return np.clip(q, info.min, info.max).astype(np.int64)


def _dequantize(q, t):
    # float32(scale * (q - zero_point)), the product taken in float64.
    return np.asarray(
        t["scale"] * (np.asarray(q, np.float64) - t["zero_point"]), np.float32
    )


def quantization():
    rng = np.random.default_rng(11)
    quantize_cases = []

    def add_quantize(name, t, real, expected=None):
        real = _f32(real)
        q = _quantize(real, t).tolist()
        if expected is not None and q != expected:
            raise AssertionError(f"{name}: the rule gives {q}, expected {expected}")
        quantize_cases.append({"name": name, "tensor": t, "real": real, "q": q})

    image = _tensor("int8", 1.0, -128)
    add_quantize(
        "image int8: halves away from zero, clipped",
        image,
        [0, 0.5, 1.5, 2.5, 127.5, 128, 254.5, 255, 300, -3],
        [-128, -127, -126, -125, 0, 0, 127, 127, 127, -128],
    )
    add_quantize(
        "negative ties round away from zero",
        _tensor("int8", 0.5, 0),
        [-0.25, 0.25, -0.75, 0.75, -1.25, 1.25, 63.75, -64.25, 100],
        [-1, 1, -2, 2, -3, 3, 127, -128, 127],
    )
    add_quantize(
        "probabilities int8 scale 1/256",
        _tensor("int8", 1 / 256, -128),
        [0, 1 / 512, 3 / 512, 5 / 512, 0.5, 1.0],
        [-128, -127, -126, -125, 0, 127],
    )
    add_quantize(
        "uint8 image input",
        _tensor("uint8", 1.0, 0),
        [0, 0.5, 1.5, 2.5, 254.5, 255.5, -1],
        [0, 1, 2, 3, 255, 255, 0],
    )
    add_quantize(
        "int16",
        _tensor("int16", 0.25, 0),
        [-0.125, 0.125, -0.375, 8191.875, -8192.125, 9000],
        [-1, 1, -2, 32767, -32768, 32767],
    )
    feature = _tensor("int8", 0.018657824024558067, -128)
    add_quantize("features, a converter scale", feature, rng.uniform(-0.5, 5, 64))

    dequantize_cases = []
    for name, t, q in [
        ("image int8", image, [-128, -127, 0, 127]),
        ("probabilities", _tensor("int8", 1 / 256, -128), [-128, -1, 0, 127]),
        ("features, a converter scale", feature, rng.integers(-128, 128, 64)),
        ("uint8", _tensor("uint8", 0.0235294122248888, 3), [0, 3, 128, 255]),
    ]:
        q = [int(v) for v in q]
        dequantize_cases.append(
            {"name": name, "tensor": t, "q": q, "real": _f32(_dequantize(q, t))}
        )

    requantize_cases = []

    def add_requantize(name, src, dst, q, expected=None):
        q = [int(v) for v in q]
        same = (
            src["dtype"] == dst["dtype"]
            and src["zero_point"] == dst["zero_point"]
            and abs(src["scale"] - dst["scale"])
            <= 1e-5 * max(src["scale"], dst["scale"])
        )
        out = q if same else _quantize(_dequantize(q, src), dst).tolist()
        if expected is not None and out != expected:
            raise AssertionError(f"{name}: the rule gives {out}, expected {expected}")
        requantize_cases.append(
            {"name": name, "src": src, "dst": dst, "q": q, "expected": out}
        )

    add_requantize(
        "scales equal to 1e-5 relative: fed unchanged",
        _tensor("int8", 0.022678732872009277, -128),
        _tensor("int8", 0.022678731009364128, -128),
        [-128, -1, 0, 5, 127],
        [-128, -1, 0, 5, 127],
    )
    add_requantize(
        "scale doubles: ties away from zero",
        _tensor("int8", 0.5, 0),
        _tensor("int8", 1.0, 0),
        [1, -1, 3, -3, 2, 127, -128],
        [1, -1, 2, -2, 1, 64, -64],
    )
    add_requantize(
        "scale halves: clipped",
        _tensor("int8", 1.0, 0),
        _tensor("int8", 0.5, 0),
        [1, -1, 63, 64, -64, -65],
        [2, -2, 126, 127, -128, -128],
    )
    add_requantize(
        "zero point moves",
        _tensor("int8", 0.0625, -128),
        _tensor("int8", 0.0625, 0),
        [-128, -100, 0, 127],
        [0, 28, 127, 127],
    )
    add_requantize(
        "int8 to uint8",
        _tensor("int8", 0.0625, -128),
        _tensor("uint8", 0.0625, 0),
        [-128, -1, 0, 127],
        [0, 127, 128, 255],
    )
    add_requantize(
        "converter scales that differ",
        _tensor("int8", 0.022678732872009277, -128),
        _tensor("int8", 0.031250994652509689, -120),
        rng.integers(-128, 128, 64),
    )
    return {
        "format_version": FORMAT_VERSION,
        "rule": (
            "real = float32(scale * (q - zero_point)) with the product in float64; "
            "q = clip(round_half_away_from_zero(real / scale) + zero_point, dtype "
            "range) with real/scale in float64; requantize = quantize(dequantize(q)) "
            "unless dtype and zero point are equal and the scales agree to 1e-5 "
            "relative (then q is fed unchanged)"
        ),
        "scale_rtol": 1e-5,
        "quantize": quantize_cases,
        "dequantize": dequantize_cases,
        "requantize": requantize_cases,
    }


# ---------------------------------------------------------------------------
# Image fitting
# ---------------------------------------------------------------------------


def _fashion_mnist_test(count):
    with gzip.open(FASHION_MNIST / "t10k-images-idx3-ubyte.gz", "rb") as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12))
    images = np.frombuffer(data, np.uint8, offset=16).reshape(n, h, w)
    return images[:count]


def _png_images():
    """Small images as PNG bytes: grey, RGB and RGBA (alpha is dropped on reading)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    fm = _fashion_mnist_test(3)
    specs = {
        "fashion_mnist_0_grey.png": (fm[0], "L"),
        "fashion_mnist_1_rgb.png": (
            np.stack([fm[1], fm[1] // 2, 255 - fm[1]], axis=-1),
            "RGB",
        ),
        "noise_17x23_rgba.png": (
            rng.integers(0, 256, (17, 23, 4)).astype(np.uint8),
            "RGBA",
        ),
    }
    out = {}
    for name, (pixels, mode) in specs.items():
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels), mode).save(buf, format="PNG")
        decoded = pixels if pixels.ndim == 3 else pixels[..., None]
        out[name] = (buf.getvalue(), decoded[..., :3])
    return out


def image_fitting(png):
    sys.path.insert(0, str(ROOT / "tflite"))
    from scan_lite.images import fit_images

    rng = np.random.default_rng(7)
    cases = []

    def add(source, image, targets):
        image = np.asarray(image, np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        for h, w, c in targets:
            fitted = fit_images(image[None], h, w, c)[0]
            case = {"source": source, "shape": list(image.shape)}
            if not source.endswith(".png"):
                case["image"] = image.reshape(-1).tolist()
            case.update(
                target=[h, w, c],
                method="pad"
                if h >= image.shape[0]
                and (h - image.shape[0]) % 2 == 0
                and w >= image.shape[1]
                and (w - image.shape[1]) % 2 == 0
                else "resize",
                fitted=_f32(fitted),
            )
            cases.append(case)

    # Random pixels: padding, identity, shrink by integer and fractional
    # factors, grey to RGB and RGB to grey.
    for h, w, c in [(6, 4, 1), (8, 8, 3), (16, 16, 3), (21, 21, 1), (13, 13, 3)]:
        image = rng.integers(0, 256, size=(h, w, c))
        add(f"random {h}x{w}x{c}", image, [(8, 8, 1), (8, 8, 3)])
    # Real Fashion-MNIST test images, as the demo and the app fit them.
    for i, image in enumerate(_fashion_mnist_test(3)):
        add(
            f"fashion_mnist t10k[{i}]",
            image,
            [(32, 32, 3), (28, 28, 1), (24, 24, 1), (20, 16, 3), (33, 33, 3)],
        )
    for name, (_, pixels) in sorted(png.items()):
        add(name, pixels, [(32, 32, 3), (16, 16, 1), (12, 20, 3)])
    return {
        "format_version": FORMAT_VERSION,
        "reference": "scan_lite.images.fit_images",
        "rule": (
            "centre zero-pad when the target is at least as large and both "
            "differences are even; else resize, height then width, with bilinear "
            "weights at half-pixel centres widened by in/out when shrinking "
            "(antialiased; tf.image.resize(..., antialias=True)), then channels: "
            "grey repeated to RGB, RGB to grey as 0.2989 R + 0.5870 G + 0.1140 B; "
            "PNG alpha dropped"
        ),
        "tolerance": 2e-3,
        "png": {
            name: {"shape": list(pixels.shape), "pixels": pixels.reshape(-1).tolist()}
            for name, (_, pixels) in sorted(png.items())
        },
        "cases": cases,
    }


# ---------------------------------------------------------------------------
# Invalid manifests
# ---------------------------------------------------------------------------


def invalid_manifests():
    m = json.loads((HERE / "export" / "manifest.json").read_text())
    k = m["model"]["num_exits"]
    some_file = sorted(m["files"])[0]

    def case(name, where, *patch):
        return {"name": name, "where": where, "patch": list(patch)}

    def op(kind, path, value=None):
        out = {"op": kind, "path": path}
        if kind != "remove":
            out["value"] = value
        return out

    return {
        "format_version": FORMAT_VERSION,
        "base": "export/manifest.json",
        "how": (
            "apply each patch (JSON Patch, RFC 6902: add / remove / replace) to "
            "the base manifest, write it as JSON text, replace every "
            f'"{NAN_MARK}" (with its quotes) by NaN, parse and validate it as the '
            "runtime does when it loads an export: the runtime must refuse it with "
            "its manifest error, and the message must name `where` (slash-"
            "separated; '(root)' for the top level)"
        ),
        "nan_mark": NAN_MARK,
        "cases": [
            case(
                "NaN threshold",
                "thresholds/values/0",
                op("replace", "/thresholds/values/0", NAN_MARK),
            ),
            case(
                "threshold above 1",
                "thresholds/values/1",
                op("replace", "/thresholds/values/1", 1.5),
            ),
            case(
                "negative threshold",
                "thresholds/values/0",
                op("replace", "/thresholds/values/0", -0.1),
            ),
            case(
                "threshold as text",
                "thresholds/values/0",
                op("replace", "/thresholds/values/0", "0.5"),
            ),
            case(
                "one threshold too few",
                "thresholds/values",
                op("remove", f"/thresholds/values/{k - 2}"),
            ),
            case(
                "unknown confidence measure",
                "thresholds/measure",
                op("replace", "/thresholds/measure", "top2"),
            ),
            case(
                "unknown fallback",
                "thresholds/fallback",
                op("replace", "/thresholds/fallback", "vote"),
            ),
            case(
                "newer format version",
                "format_version",
                op("replace", "/format_version", FORMAT_VERSION + 1),
            ),
            case("no files table", "files", op("remove", "/files")),
            case(
                "file name leaving the folder",
                "files",
                op("add", "/files/..~1escape.tflite", m["files"][some_file]),
            ),
            case(
                "default variant not exported",
                "default_variant",
                op("replace", "/default_variant", "float16"),
            ),
            case(
                "labels do not match num_classes",
                "labels",
                op("remove", "/labels/0"),
            ),
            case(
                "one exit too few",
                "exits",
                op("remove", "/exits/0"),
            ),
            case(
                "one int8 stage too few",
                "variants/int8/stages",
                op("remove", "/variants/int8/stages/1"),
            ),
            case(
                "input channels 2",
                "input/channels",
                op("replace", "/input/channels", 2),
            ),
            case(
                "variant file not listed in files",
                "variants/int8/cascade/file",
                op("replace", "/variants/int8/cascade/file", "missing.int8.tflite"),
            ),
        ],
    }


def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document, patch):
    """A copy of `document` with a JSON Patch (add / remove / replace) applied."""
    document = json.loads(json.dumps(document))
    for step in patch:
        *parents, last = [_unescape(t) for t in step["path"].split("/")[1:]]
        node = document
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if step["op"] == "remove":
                del node[index]
            elif step["op"] == "add":
                node.insert(index, step["value"])
            else:
                node[index] = step["value"]
        elif step["op"] == "remove":
            del node[last]
        else:
            node[last] = step["value"]
    return document


def invalid_manifest_text(base, case):
    """The manifest text of one invalid_manifests.json case (NaN marks replaced)."""
    text = json.dumps(apply_patch(base, case["patch"]))
    return text.replace(f'"{NAN_MARK}"', "NaN")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def build():
    """{relative path: bytes} of every file under conformance/."""
    png = _png_images()
    docs = {
        "exit_rule.json": exit_rule(),
        "quantization.json": quantization(),
        "image_fitting.json": image_fitting(png),
        "invalid_manifests.json": invalid_manifests(),
    }
    files = {
        name: (json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n").encode()
        for name, doc in docs.items()
    }
    files.update({f"png/{name}": blob for name, (blob, _) in png.items()})
    return files


def stale_files(out=OUT):
    """Names under `out` that differ from what the generator writes now."""
    stale = []
    for name, blob in build().items():
        path = out / name
        if name.endswith(".png"):
            # PNG bytes depend on the encoder's version; the pixels are the vector.
            if not path.is_file():
                stale.append(name)
            continue
        if not path.is_file() or json.loads(path.read_bytes()) != json.loads(blob):
            stale.append(name)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed vectors differ from what would be written",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {OUT / name}")
        return 1 if stale else 0
    for name, blob in build().items():
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        print(f"wrote {path.relative_to(ROOT)} ({len(blob)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
