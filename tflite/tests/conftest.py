"""Fixtures for the scan_lite runtime tests: the conformance vectors in tflite/testdata.

These tests need numpy and ai-edge-litert only; scan_lite is imported from the
checkout when it is not installed.
"""

import json
import pathlib
import shutil
import sys

import numpy as np
import pytest

TFLITE = pathlib.Path(__file__).resolve().parents[1]
TESTDATA = TFLITE / "testdata"
EXPORT = TESTDATA / "export"

try:
    import scan_lite  # noqa: F401
except ImportError:
    sys.path.insert(0, str(TFLITE))


@pytest.fixture(scope="session")
def expected():
    return json.loads((TESTDATA / "expected.json").read_text())


@pytest.fixture(scope="session")
def images(expected):
    x = np.load(TESTDATA / expected["images"])
    assert x.shape == tuple(expected["images_shape"]) and x.dtype == np.uint8
    return x


@pytest.fixture()
def export_copy(tmp_path):
    """A private copy of the test export, safe to tamper with."""
    dest = tmp_path / "export"
    shutil.copytree(EXPORT, dest)
    return dest


def edit_manifest(folder, edit):
    """Applies `edit(manifest_dict)` to folder/manifest.json."""
    path = pathlib.Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
