"""keras_scan's manifest reader refuses thresholds that are not finite numbers in [0, 1].

JSON Schema's `minimum`/`maximum` do not reject NaN, and Python's json module reads
NaN and Infinity: `validate_manifest` must refuse them itself (a NaN threshold
never fires, silently disabling early exit). The valid manifest is the
conformance export's (tflite/testdata/export), the phone contract every reader
shares.
"""

import copy
import json
import pathlib
import sys

import pytest

import keras_scan  # noqa: F401  (registers keras_scan.export in sys.modules)

export_lib = sys.modules["keras_scan.export"]
MANIFEST = (
    pathlib.Path(__file__).resolve().parents[1]
    / "tflite"
    / "testdata"
    / "export"
    / "manifest.json"
)


@pytest.fixture(scope="module")
def manifest():
    return json.loads(MANIFEST.read_text())


def test_conformance_manifest_is_valid(manifest):
    export_lib.validate_manifest(copy.deepcopy(manifest))


@pytest.mark.parametrize(
    "value, shown",
    [
        (float("nan"), "NaN is not a number"),
        (float("inf"), "Infinity is not a number"),
        (-0.1, "-0.1"),
        (1.5, "1.5"),
        ("0.5", "'0.5'"),
        (True, "True"),
    ],
)
def test_refuses_a_bad_threshold(manifest, value, shown):
    bad = copy.deepcopy(manifest)
    bad["thresholds"]["values"][1] = value
    with pytest.raises(ValueError) as info:
        export_lib.validate_manifest(bad)
    message = str(info.value)
    assert "thresholds/values/1" in message
    assert f"Received: {shown}" in message or shown in message
