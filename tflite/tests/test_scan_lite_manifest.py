"""Manifest validation, unsafe file names and file integrity in scan_lite."""

import json
import sys

import pytest
import scan_lite
from conftest import EXPORT, edit_manifest
from scan_lite import manifest as manifest_lib

VALIDATORS = ["jsonschema", "builtin"]


@pytest.fixture(params=VALIDATORS)
def validator(request, monkeypatch):
    """Runs a test with jsonschema, then with it made unimportable."""
    if request.param == "builtin":
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    else:
        pytest.importorskip("jsonschema")
    return request.param


def test_testdata_manifest_is_valid(validator):
    manifest = scan_lite.load_manifest(EXPORT)
    assert manifest["format_version"] == 1
    assert set(manifest["variants"]) == {"int8", "float32"}
    assert len(manifest["files"]) == 14


def test_schema_copy_in_package_is_the_contract():
    contract = EXPORT.parents[1] / "manifest.schema.json"
    assert manifest_lib.SCHEMA.read_bytes() == contract.read_bytes()
    schema = json.loads(contract.read_text())
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "bad_name",
    [
        "../cascade.int8.tflite",
        "/etc/passwd",
        "sub/cascade.int8.tflite",
        ".hidden",
        "..",
    ],
)
def test_refuses_file_names_leaving_the_folder(bad_name, validator, export_copy):
    def edit(m):
        m["files"][bad_name] = m["files"].pop("cascade.int8.tflite")
        m["variants"]["int8"]["cascade"]["file"] = bad_name

    edit_manifest(export_copy, edit)
    with pytest.raises(scan_lite.ManifestError) as info:
        scan_lite.Cascade(export_copy)
    assert bad_name in str(info.value) or "files" in str(info.value)


def test_refuses_a_symlink_out_of_the_folder(export_copy, tmp_path):
    outside = tmp_path / "outside.tflite"
    outside.write_bytes((export_copy / "cascade.int8.tflite").read_bytes())
    (export_copy / "cascade.int8.tflite").unlink()
    (export_copy / "cascade.int8.tflite").symlink_to(outside)
    with pytest.raises(scan_lite.ManifestError, match="outside the export folder"):
        scan_lite.Cascade(export_copy)


def test_tampered_file_sha_mismatch(validator, export_copy):
    path = export_copy / "stage_1.float32.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        scan_lite.ManifestError, match="stage_1.float32.tflite: SHA-256"
    ):
        scan_lite.Cascade(export_copy, variant="int8")
    # verify=False skips the check (the caller takes the risk).
    scan_lite.load_manifest(export_copy, verify=False)


def test_truncated_and_missing_files(export_copy):
    path = export_copy / "full.int8.tflite"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(scan_lite.ManifestError, match="full.int8.tflite has .* bytes"):
        scan_lite.Cascade(export_copy)
    path.unlink()
    with pytest.raises(scan_lite.ManifestError, match="missing"):
        scan_lite.Cascade(export_copy)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(format_version=2), "format_version"),
        (lambda m: m["thresholds"].update(values=[0.5]), "thresholds"),
        (lambda m: m["thresholds"].update(values=[0.5, 1.5]), "thresholds"),
        # NaN passes a schema's minimum/maximum; it would disable early exit.
        (
            lambda m: m["thresholds"].update(values=[float("nan"), 0.5]),
            "at thresholds/values/0: NaN is not a number",
        ),
        (
            lambda m: m["thresholds"].update(values=[0.5, float("inf")]),
            "at thresholds/values/1: Infinity is not a number",
        ),
        (
            lambda m: m["variants"]["int8"]["cascade"]["signatures"]["stage_1"][
                "inputs"
            ]["features"].update(scale=float("nan")),
            "at variants/int8/cascade/signatures/stage_1/inputs/features/scale",
        ),
        (lambda m: m["thresholds"].update(measure="softmax"), "measure"),
        (lambda m: m.pop("files"), "files"),
        (lambda m: m.update(labels=["a", "b"]), "labels"),
        (lambda m: m.update(default_variant="float16"), "default_variant|float16"),
        (
            lambda m: m["files"]["cascade.int8.tflite"].update(sha256="xyz"),
            "sha256|files",
        ),
    ],
)
def test_invalid_manifests(edit, match, validator, export_copy):
    edit_manifest(export_copy, edit)
    with pytest.raises(scan_lite.ManifestError, match=match):
        scan_lite.load_manifest(export_copy)


def test_tensor_description_must_match_the_file(export_copy):
    def edit(m):
        sig = m["variants"]["int8"]["cascade"]["signatures"]["stage_1"]
        sig["inputs"]["features"]["scale"] *= 2

    edit_manifest(export_copy, edit)
    with pytest.raises(scan_lite.ManifestError, match="disagree with the manifest"):
        scan_lite.Cascade(export_copy, variant="int8")
    scan_lite.Cascade(export_copy, variant="float32")  # the other variant is fine


def test_missing_folder_and_broken_json(tmp_path, export_copy):
    with pytest.raises(scan_lite.ManifestError, match="no such folder"):
        scan_lite.Cascade(tmp_path / "nope")
    (export_copy / "manifest.json").write_text("{not json")
    with pytest.raises(scan_lite.ManifestError, match="Cannot read"):
        scan_lite.Cascade(export_copy)


@pytest.mark.parametrize(
    "value, shown",
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (-0.1, "-0.1"),
        (1.5, "1.5"),
        ("0.5", "'0.5'"),
        (True, "True"),
    ],
)
def test_thresholds_are_finite_numbers_in_0_1(value, shown, validator, export_copy):
    """Whatever validator runs: JSON Schema's bounds alone let NaN through."""
    edit_manifest(
        export_copy, lambda m: m["thresholds"]["values"].__setitem__(1, value)
    )
    with pytest.raises(scan_lite.ManifestError) as info:
        scan_lite.load_manifest(export_copy)
    message = str(info.value)
    assert "thresholds/values/1" in message and shown.lower() in message.lower()
