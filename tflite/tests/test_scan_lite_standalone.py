"""scan_lite never imports TensorFlow or Keras, and installs on its own."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import EXPORT, TESTDATA, TFLITE

BLOCKER = """
import importlib.abc, sys
BLOCKED = ("tensorflow", "keras", "tf_keras", "jax", "keras_scan", "tensorboard")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, Blocker())
"""

SCRIPT = (
    BLOCKER
    + """
import json
import numpy as np
import scan_lite
from scan_lite import cli

images = np.load(sys.argv[2])
labels = []
for variant in ("int8", "float32"):
    cascade = scan_lite.Cascade(sys.argv[1], variant=variant, stage_files=False)
    labels.append([(r.label, r.exit_index) for r in map(cascade.run, images)])
code = cli.main(["run", sys.argv[1], sys.argv[3]])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"labels": labels, "cli": code, "leaked": leaked,
                  "file": scan_lite.__file__}))
"""
)


def _run(tmp_path, extra_path, cwd):
    (tmp_path / "one.npy").write_bytes(b"")
    import numpy as np

    np.save(tmp_path / "one.npy", np.load(TESTDATA / "images.npy")[0])
    env = dict(os.environ, PYTHONPATH=str(extra_path))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(EXPORT),
            str(TESTDATA / "images.npy"),
            str(tmp_path / "one.npy"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_runs_without_tensorflow_or_keras(tmp_path, expected):
    result = _run(tmp_path, TFLITE, tmp_path)
    assert result["leaked"] == []
    assert result["cli"] == 0
    for variant, got in zip(("int8", "float32"), result["labels"]):
        cases = expected["variants"][variant]["cases"]
        assert got == [[c["label"], c["exit_index"]] for c in cases]


@pytest.mark.slow
def test_pip_installs_it_on_its_own(tmp_path, expected):
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(TFLITE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    schema = target / "scan_lite" / "manifest.schema.json"
    assert schema.is_file() and not schema.is_symlink()
    assert schema.read_bytes() == (TFLITE / "manifest.schema.json").read_bytes()
    assert (target / "bin" / "scan-lite").is_file()
    result = _run(tmp_path, target, tmp_path)
    assert pathlib.Path(result["file"]).is_relative_to(target)
    assert result["leaked"] == []
    assert result["labels"][0] == [
        [c["label"], c["exit_index"]] for c in expected["variants"]["int8"]["cases"]
    ]
