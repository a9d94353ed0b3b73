"""LiteRT's INFO lines are dropped from stderr unless asked for; nothing else is."""

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import scan_lite
from conftest import EXPORT, TESTDATA, TFLITE
from scan_lite import native_logs

DELEGATE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
KEPT = (
    b"WARNING: a LiteRT warning\n"
    b"ERROR: a LiteRT error\n"
    b"INFO without the colon stays\n"
    b"Traceback (most recent call last):\n"
)


def test_only_matching_lines_are_dropped(capfd):
    with native_logs.dropped_lines(native_logs.LITERT_INFO):
        os.write(2, DELEGATE + KEPT + DELEGATE)
    assert capfd.readouterr().err.encode() == KEPT

    with native_logs.dropped_lines(native_logs.LITERT_INFO, enabled=False):
        os.write(2, DELEGATE)
    assert capfd.readouterr().err.encode() == DELEGATE


def test_lines_are_written_back_when_the_call_fails(capfd):
    with pytest.raises(RuntimeError, match="boom"):
        with native_logs.dropped_lines(native_logs.LITERT_INFO):
            os.write(2, DELEGATE + b"ERROR: failed to allocate\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "ERROR: failed to allocate\n"


def test_python_writes_to_stderr_pass_through(capfd):
    with native_logs.dropped_lines(native_logs.LITERT_INFO):
        print("INFO: printed by Python, kept in order", file=sys.stderr, end="")
        os.write(2, b"\n" + DELEGATE)
    # Only whole lines match: Python's line started first, so it stays.
    assert capfd.readouterr().err == "INFO: printed by Python, kept in order\n"


def test_stderr_without_a_descriptor(capsys):
    """pytest's capsys (like a notebook) replaces sys.stderr by a stream with no fd."""
    with native_logs.dropped_lines(native_logs.LITERT_INFO):
        print("a message", file=sys.stderr)
        os.write(2, DELEGATE)
    assert capsys.readouterr().err == "a message\n"


@pytest.mark.parametrize("broken", ["dup", "TemporaryFile"])
def test_no_capture_when_descriptor_2_cannot_be_captured(broken, capfd):
    def fail(*args, **kwargs):
        raise OSError("no descriptor")

    module = native_logs.os if broken == "dup" else native_logs.tempfile
    # Patched only around the call: pytest's own capture needs both.
    with mock.patch.object(module, broken, fail):
        with native_logs.dropped_lines(native_logs.LITERT_INFO):
            os.write(2, DELEGATE + KEPT)
    assert capfd.readouterr().err.encode() == DELEGATE + KEPT


@pytest.mark.parametrize("level, shown", [(None, False), ("3", False), ("0", True)])
def test_the_level_decides(level, shown, monkeypatch):
    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    assert native_logs.litert_info_shown() is shown


def test_cascade_opens_its_models_quietly(capfd, monkeypatch):
    """`Cascade` allocates each model at load, inside the capture: its INFO lines
    are dropped, its warnings and errors kept."""
    from ai_edge_litert import interpreter as litert

    class Noisy(litert.Interpreter):
        def allocate_tensors(self):
            os.write(2, DELEGATE + b"WARNING: kept\n")
            return super().allocate_tensors()

    monkeypatch.setattr(litert, "Interpreter", Noisy)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    scan_lite.Cascade(EXPORT, variant="int8", stage_files=True, verify=False)
    assert capfd.readouterr().err == "WARNING: kept\n" * 3


# Fresh processes: LiteRT prints the delegate line once per process.
SCRIPT = """
import os, sys
import numpy as np
import scan_lite

images = np.load(sys.argv[2])
cascades = [scan_lite.Cascade(sys.argv[1], variant=v) for v in ("float32", "int8")]
os.write(2, b"models loaded\\n")
for cascade in cascades:
    cascade.run(images[0])
"""


def _stderr(level, *args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    # The checkout's scan_lite first (conftest does the same in-process).
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TFLITE), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    out = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, timeout=300
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stderr.decode()


@pytest.mark.parametrize("level", [None, "2", "0"], ids=["unset", "2", "0"])
def test_delegate_line_only_at_level_0_and_before_any_run(level):
    err = _stderr(level, "-c", SCRIPT, str(EXPORT), str(TESTDATA / "images.npy"))
    if level == "0":
        # Printed while the models load, not in the first (timed) run.
        assert err == DELEGATE.decode() + "models loaded\n", err
    else:
        assert err == "models loaded\n", err


@pytest.mark.parametrize("flags", [[], ["-v"], ["run", "--verbose"]])
def test_scan_lite_run_verbose(flags, tmp_path):
    image = tmp_path / "one.npy"
    np.save(image, np.load(TESTDATA / "images.npy")[0])
    command = ["-m", "scan_lite.cli", *flags]
    if "run" not in flags:
        command.append("run")
    err = _stderr(None, *command, str(EXPORT), str(image))
    if flags:
        assert err == DELEGATE.decode(), err
    else:
        assert "XNNPACK" not in err and "INFO:" not in err, err
