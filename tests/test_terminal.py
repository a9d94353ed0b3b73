"""What `keras-scan` prints around its answer: no framework noise unless asked.

The subprocess tests run the installed command the way a user does, without
TF_CPP_MIN_LOG_LEVEL (conftest sets it for the test process itself).
"""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_scan import cli, native_logs, plots, thresholds

# What TensorFlow prints on start-up, through absl (INFO lines and its banner).
NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cpu_feature_guard"
    r"|^[IW]\d{4} ",
    re.M,
)


def _user_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    env.pop("KERAS_SCAN_DEBUG", None)
    return {**env, **extra}


def keras_scan(*args, **env):
    exe = shutil.which("keras-scan", path=os.path.dirname(sys.executable))
    command = [exe] if exe else [sys.executable, "-m", "keras_scan.cli"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env=_user_env(**env),
        timeout=600,
    )


# ------------------------------------------------------------------ subprocess


def test_help_is_quiet_by_default_and_verbose_shows_the_logs():
    proc = keras_scan("--help")
    assert proc.returncode == 0, proc.stderr
    assert "-v, --verbose" in proc.stdout
    assert proc.stderr == ""

    proc = keras_scan("-v", "--help")
    assert proc.returncode == 0, proc.stderr
    # Which start-up lines TensorFlow prints depends on the machine (oneDNN's
    # line is missing on some CPUs); absl's banner is printed everywhere.
    assert "absl::InitializeLog" in proc.stderr


def test_an_error_is_one_line_and_verbose_adds_the_logs(tmp_path):
    missing = tmp_path / "no_run"
    proc = keras_scan("evaluate", missing)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("keras-scan evaluate: error:") and "no_run" in lines[0]
    assert not NOISE.search(proc.stderr)

    proc = keras_scan("evaluate", missing, "--verbose")
    assert proc.returncode == 2, proc.stderr
    assert NOISE.search(proc.stderr), proc.stderr
    assert "keras-scan evaluate: error:" in proc.stderr
    assert not tmp_path.joinpath("no_run").exists()


def test_the_users_own_log_level_is_kept(tmp_path):
    # TF_CPP_MIN_LOG_LEVEL=0 set by the user: nothing is dropped.
    proc = keras_scan("evaluate", tmp_path / "no_run", TF_CPP_MIN_LOG_LEVEL="0")
    assert proc.returncode == 2
    assert "absl::InitializeLog" in proc.stderr, proc.stderr


# -------------------------------------------------------------- the flag itself


@pytest.mark.parametrize(
    "argv, detail",
    [
        (["evaluate", "RUN"], False),
        (["-v", "evaluate", "RUN"], True),
        (["--verbose", "train"], True),
        (["evaluate", "RUN", "--verbose"], True),
        (["train", "--verbose", "2"], False),  # Keras' progress output
        (["train", "--verbose", "2", "-v"], True),
        (["train", "--", "-v"], False),
    ],
)
def test_which_flags_ask_for_detail(argv, detail):
    assert cli.wants_detail(argv) is detail


def test_train_keeps_its_own_verbose():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--verbose", "2", "--out", "r"])
    assert args.verbose == 2 and args.detail is False
    args = parser.parse_args(["-v", "train", "--out", "r"])
    assert args.verbose is None and args.detail is True
    args = parser.parse_args(["train", "-v", "--verbose", "0", "--out", "r"])
    assert args.verbose == 0 and args.detail is True
    args = parser.parse_args(["evaluate", "RUN", "--verbose"])
    assert args.detail is True


def test_only_the_command_sets_up_the_terminal():
    assert cli.is_cli_process("/venv/bin/keras-scan", ["python"])
    assert cli.is_cli_process("-m", ["python", "-m", "keras_scan.cli", "--help"])
    assert not cli.is_cli_process("/venv/bin/pytest", ["python", "-m", "pytest"])
    assert not cli.is_cli_process("app.py", ["python", "app.py"])


# ------------------------------------------------------------ native log filter

ABSL_INFO = (
    b"WARNING: All log messages before absl::InitializeLog() is called are "
    b"written to STDERR\n"
    b"I0000 00:00:1796299631.122168   10446 port.cc:153] oneDNN custom "
    b"operations are on.\n"
)
QUANTIZER = (
    b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, "
    b"output_inference_type: INT8\n"
)
KEPT = (
    b"E0000 00:00:1796299767.480358   10999 cuda_platform.cc:52] failed call\n"
    b"W0000 00:00:1796299767.480358   10999 x.cc:1] a warning\n"
    b"Traceback (most recent call last):\n"
)


@pytest.mark.parametrize(
    "pattern, noise",
    [
        (native_logs.LOAD_TIME_INFO, ABSL_INFO),
        (native_logs.QUANTIZER_SETTINGS, QUANTIZER),
    ],
)
def test_only_the_matching_native_lines_are_dropped(pattern, noise, capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_logs.dropped_lines(pattern):
        os.write(2, noise + KEPT + noise)
    assert capfd.readouterr().err.encode() == KEPT

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with native_logs.dropped_lines(pattern):
        os.write(2, noise)
    assert capfd.readouterr().err.encode() == noise


def test_lines_are_written_back_when_the_call_fails(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(RuntimeError, match="boom"):
        with native_logs.dropped_lines(native_logs.QUANTIZER_SETTINGS):
            os.write(2, QUANTIZER + b"E0000 the converter failed\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "E0000 the converter failed\n"


# ---------------------------------------------------------------- plot labels


def _search():
    rng = np.random.default_rng(0)
    n, c = 600, 10
    labels = rng.integers(0, c, n)
    probs = []
    for depth in range(4):
        logits = rng.normal(0.0, 1.0, (n, c))
        logits[np.arange(n), labels] += 1.0 + depth
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append((e / e.sum(axis=1, keepdims=True)).astype(np.float32))
    return thresholds.search_thresholds_from_probs(
        probs,
        labels,
        [60e6, 150e6, 300e6, 560e6],
        556e6,
        population=8,
        generations=2,
    )


def _labels(fig):
    (ax,) = fig.axes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    notes = [child.get_text() for child in ax.texts]
    return legend, notes


def test_plot_labels_say_what_each_point_is(tmp_path):
    th = _search()
    legend, notes = _labels(plots.tradeoff_figure(th))
    # The model's own final exit is not a "plain backbone".
    assert "final exit, no early exit (this model)" in legend
    assert "each exit alone (this model)" in legend
    assert not any("plain backbone" in label for label in legend)
    assert notes == ["exit 0", "exit 1", "exit 2", "final exit"]

    th.metrics["exit_names"] = ["exit_0", "exit_1", "exit_2", "final"]
    legend, notes = _labels(
        plots.tradeoff_figure(th, plain_backbone=(0.91, 556e6), title="t")
    )
    assert notes == ["exit_0", "exit_1", "exit_2", "final exit"]
    assert [x for x in legend if "plain backbone" in x] == [
        "plain backbone (trained separately)"
    ]
    assert len(legend) == len(set(legend))

    path = plots.plot_tradeoff(th, tmp_path / "t.png", plain_backbone=(0.9, 5e8))
    assert os.listdir(tmp_path) == ["t.png"] and path.endswith("t.png")
    with pytest.raises(ValueError, match="plain_backbone"):
        plots.tradeoff_figure(th, plain_backbone=(0.9,))
    with pytest.raises(ValueError, match="plain_backbone"):
        plots.tradeoff_figure(th, plain_backbone=(0.9, float("nan")))
