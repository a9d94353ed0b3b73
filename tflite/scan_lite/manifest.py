"""Loading and checking an export's `manifest.json`.

The manifest is validated against `manifest.schema.json` with `jsonschema` when it
is importable, else with a built-in minimal check of the fields the runtime uses.
Either way the runtime then checks what a schema cannot: counts agree, every
file name stays inside the export folder, and (unless told not to) every file
has the size and SHA-256 the manifest records.
"""

import hashlib
import math
import os
import pathlib
import re

from scan_lite import jsonfile

MANIFEST = "manifest.json"
SCHEMA = pathlib.Path(__file__).resolve().parent / "manifest.schema.json"
FORMAT_VERSION = 1
MODES = ("float32", "float16", "dynamic", "int8")
MEASURES = ("max_prob", "margin", "entropy")
FALLBACKS = ("final", "ensemble")
_FILE_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class ManifestError(ValueError):
    """The export folder or its manifest is broken, tampered with or unsafe."""


def load_manifest(export_dir, verify=True):
    """Reads, validates and (by default) verifies the files of an export.

    Args:
        export_dir: str or path. A folder written by `keras-scan export`.
        verify: bool. Check the size and SHA-256 of every file listed.
            Defaults to `True`.

    Returns:
        The manifest as a dict.

    Raises:
        ManifestError: the folder, the manifest or a file is missing, invalid,
            unsafe (a name leaving the folder) or does not match its SHA-256.
    """
    folder = pathlib.Path(export_dir).expanduser()
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(
            f"`export_dir` must be a folder written by `keras-scan export` (with "
            f"{MANIFEST}). Received: export_dir={str(export_dir)!r}"
            + ("" if folder.is_dir() else " (no such folder)")
        )
    manifest = jsonfile.read_json(path, ManifestError)
    validate(manifest)
    for name in manifest["files"]:
        safe_path(folder, name)
    if verify:
        verify_files(folder, manifest)
    return manifest


def validate(manifest):
    """Schema check (jsonschema when importable, else minimal) + consistency."""
    if not isinstance(manifest, dict):
        raise ManifestError(
            f"{MANIFEST} must hold a JSON object. Received: {type(manifest).__name__}"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"Unsupported manifest format_version={version!r}; this scan_lite reads "
            f"version {FORMAT_VERSION}. Re-export with a matching keras_scan."
        )
    # A NaN threshold would pass a schema's bounds and silently disable early
    # exit: refused here, whatever validator runs.
    jsonfile.check_finite(manifest, MANIFEST, ManifestError)
    _check_thresholds(manifest)
    if not jsonfile.check_schema(manifest, SCHEMA, MANIFEST, ManifestError):
        _minimal_check(manifest)
    _check_consistency(manifest)


def _check_thresholds(m):
    """Thresholds are finite numbers in [0, 1], whatever validator runs."""
    th = m.get("thresholds")
    values = th.get("values") if isinstance(th, dict) else None
    for i, value in enumerate(values if isinstance(values, list) else []):
        _require(
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= 1,
            f"thresholds/values/{i}",
            f"must be a finite number in [0, 1]. Received: {value!r}",
        )


def _require(condition, where, what):
    if not condition:
        raise ManifestError(f"{MANIFEST} is invalid at {where}: {what}")


def _is_int(value, low=None):
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (low is None or value >= low)


def _minimal_check(m):
    """The fields the runtime reads, checked without jsonschema."""
    for key in (
        "model",
        "input",
        "labels",
        "thresholds",
        "exits",
        "stages",
        "default_variant",
        "variants",
        "files",
    ):
        _require(key in m, "(root)", f"{key!r} is a required property")
    model, inp, th = m["model"], m["input"], m["thresholds"]
    _require(isinstance(model, dict), "model", "must be an object")
    _require(_is_int(model.get("num_classes"), 2), "model/num_classes", "int >= 2")
    _require(_is_int(model.get("num_exits"), 2), "model/num_exits", "int >= 2")
    _require(isinstance(inp, dict), "input", "must be an object")
    for key in ("height", "width"):
        _require(_is_int(inp.get(key), 1), f"input/{key}", "int >= 1")
    _require(inp.get("channels") in (1, 3), "input/channels", "1 or 3")
    _require(inp.get("layout") == "NHWC", "input/layout", "must be 'NHWC'")
    _require(
        isinstance(m["labels"], list) and all(isinstance(s, str) for s in m["labels"]),
        "labels",
        "must be a list of str",
    )
    _require(isinstance(th, dict), "thresholds", "must be an object")
    values = th.get("values")
    _require(  # each value: _check_thresholds
        isinstance(values, list) and values,
        "thresholds/values",
        "must be a non-empty list of numbers in [0, 1]",
    )
    _require(th.get("measure") in MEASURES, "thresholds/measure", f"one of {MEASURES}")
    _require(
        th.get("fallback") in FALLBACKS, "thresholds/fallback", f"one of {FALLBACKS}"
    )
    _require(isinstance(m["files"], dict) and m["files"], "files", "non-empty object")
    for name, entry in m["files"].items():
        _require(
            isinstance(name, str) and _FILE_NAME.match(name),
            "files",
            f"{name!r} is not a plain file name",
        )
        _require(
            isinstance(entry, dict)
            and _is_int(entry.get("bytes"), 1)
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]),
            f"files/{name}",
            "needs bytes (int >= 1) and sha256 (64 hex digits)",
        )
    _require(isinstance(m["variants"], dict) and m["variants"], "variants", "non-empty")
    for mode, variant in m["variants"].items():
        where = f"variants/{mode}"
        _require(mode in MODES, where, f"variant names are {MODES}")
        _require(isinstance(variant, dict), where, "must be an object")
        for key in ("exits", "stages"):
            _require(isinstance(variant.get(key), list), f"{where}/{key}", "a list")
        _require(isinstance(variant.get("cascade"), dict), f"{where}/cascade", "object")
        for entry in [variant["cascade"], *variant["exits"], *variant["stages"]]:
            _require(
                isinstance(entry, dict)
                and isinstance(entry.get("file"), str)
                and _FILE_NAME.match(entry["file"])
                and isinstance(entry.get("signatures"), dict),
                where,
                f"model entry {entry!r} needs a plain file name and signatures",
            )
            for key, sig in entry["signatures"].items():
                for side in ("inputs", "outputs"):
                    tensors = sig.get(side) if isinstance(sig, dict) else None
                    _require(
                        isinstance(tensors, dict)
                        and all(
                            isinstance(t, dict)
                            and {"dtype", "scale", "zero_point", "shape"} <= set(t)
                            for t in tensors.values()
                        ),
                        f"{where}/{entry['file']}/{key}/{side}",
                        "tensors need dtype, shape, scale and zero_point",
                    )


def _check_consistency(m):
    """What JSON Schema cannot say: counts agree, every file is listed."""
    k = m["model"]["num_exits"]
    _require(
        len(m["labels"]) == m["model"]["num_classes"],
        "labels",
        f"{m['model']['num_classes']} entries (model/num_classes)",
    )
    _require(
        len(m["thresholds"]["values"]) == k - 1,
        "thresholds/values",
        f"one value per shallow exit ({k - 1})",
    )
    for key in ("exits", "stages"):
        _require(len(m[key]) == k, key, f"{k} entries (model/num_exits)")
    _require(
        m["default_variant"] in m["variants"],
        "default_variant",
        f"{m['default_variant']!r} is not a key of variants",
    )
    for mode, variant in m["variants"].items():
        where = f"variants/{mode}"
        _require(len(variant["exits"]) == k, f"{where}/exits", f"{k} entries")
        _require(len(variant["stages"]) == k, f"{where}/stages", f"{k} entries")
        stages = variant["cascade"]["signatures"]
        _require(
            sorted(stages) == sorted(f"stage_{i}" for i in range(k)),
            f"{where}/cascade/signatures",
            f"must be stage_0..stage_{k - 1}",
        )
        named = [("cascade", variant["cascade"])]
        for key in ("exits", "stages"):
            named += [(f"{key}/{i}", e) for i, e in enumerate(variant[key])]
        for path, entry in named:
            _require(
                entry["file"] in m["files"],
                f"{where}/{path}/file",
                f"{entry['file']!r} is not listed in files",
            )


def safe_path(folder, name):
    """`folder / name`, refusing names that are not plain names inside `folder`."""
    folder = pathlib.Path(folder)
    bad = (
        not isinstance(name, str)
        or not _FILE_NAME.match(name)
        or os.path.basename(name) != name
        or os.path.isabs(name)
    )
    if not bad:
        path = folder / name
        root = folder.resolve()
        bad = path.resolve().parent != root
    if bad:
        raise ManifestError(
            f"{MANIFEST} names a file outside the export folder or not a plain file "
            f"name: {name!r}. File names must be plain names inside {str(folder)!r}."
        )
    return path


def sha256(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder, manifest):
    """Checks every listed file exists with the recorded size and SHA-256."""
    for name, entry in manifest["files"].items():
        path = safe_path(folder, name)
        if not path.is_file():
            raise ManifestError(f"{name} is listed in {MANIFEST} but missing: {path}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ManifestError(
                f"{name} has {size} bytes but {MANIFEST} records {entry['bytes']}: "
                "the file was changed or truncated; re-export or re-copy the folder."
            )
        digest = sha256(path)
        if digest != entry["sha256"]:
            raise ManifestError(
                f"{name}: SHA-256 mismatch (file {digest}, manifest "
                f"{entry['sha256']}): the file was changed; re-export or re-copy "
                "the folder."
            )
