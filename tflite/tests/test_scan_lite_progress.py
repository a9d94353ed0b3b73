"""`scan-lite bench`'s progress bar: on stderr when asked or on a terminal, never piped."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXPORT, TFLITE
from scan_lite import cli
from scan_lite import progress as progress_lib
from scan_lite.cascade import Cascade


@pytest.fixture()
def data_npz(tmp_path, images, expected):
    path = tmp_path / "d.npz"
    np.savez(path, x=images, y=np.asarray(expected["labels"]))
    return path


def test_bench_draws_a_bar_when_asked(images, expected, capsys):
    cascade = Cascade(EXPORT, variant="int8")
    y = np.asarray(expected["labels"])
    n = len(images)
    report = cli.bench(cascade, images, y, warmup=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bench int8" in captured.err
    assert "100%" in captured.err and f"{n}/{n}" in captured.err
    assert report["num_samples"] == n

    quiet = cli.bench(cascade, images, y, warmup=0)
    assert capsys.readouterr().err == ""
    assert quiet["cascade"]["exit_shares"] == report["cascade"]["exit_shares"]


def test_cli_bar_follows_the_terminal_and_the_flag(data_npz, monkeypatch, capsys):
    argv = ["bench", str(EXPORT), "--npz", str(data_npz), "--warmup", "0"]
    # pytest's captured stderr is no terminal: no bar.
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "cascade: accuracy" in captured.out and captured.err == ""
    # --progress forces it; the report on stdout is unchanged.
    assert cli.main([*argv, "--progress"]) == 0
    forced = capsys.readouterr()
    assert "bench int8" in forced.err and "12/12" in forced.err
    assert "bench" not in forced.out and "cascade: accuracy" in forced.out
    # On a terminal it is on by default, and --no-progress turns it off.
    monkeypatch.setattr(progress_lib, "stderr_is_terminal", lambda: True)
    assert cli.main(argv) == 0
    assert "12/12" in capsys.readouterr().err
    assert cli.main([*argv, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_piped_bench_prints_no_bar(data_npz):
    env = dict(os.environ, PYTHONPATH=str(TFLITE))
    proc = subprocess.run(
        [sys.executable, "-m", "scan_lite.cli", "bench", str(EXPORT)]
        + ["--npz", str(data_npz), "--warmup", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # LiteRT's own "INFO: Created ... XNNPACK delegate" line may be there; no bar.
    assert "bench int8" not in proc.stderr and "12/12" not in proc.stderr
    assert "cascade: accuracy" in proc.stdout


def test_without_tqdm_the_bar_is_silent(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` fails
    bar = progress_lib.bar(True, total=3, desc="bench")
    with bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
