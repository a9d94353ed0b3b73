"""Real faults: `keras-scan train` killed with SIGKILL, and writes that fail.

Kill and resume: `keras-scan train` runs in a real subprocess
(`tests/fault_train.py`: the command with pause points that only wait, so the
kill lands where it should) and is killed with SIGKILL mid-epoch and while
last.keras is being written (its temporary file holds half of the weights);
the same command is run again. The rerun must continue after the last
checkpointed epoch from exactly the weights an uninterrupted run (same seed,
trained in the same test) had there, and leave a valid run folder.

Failed writes: every command that writes (`evaluate`, `search`, `export`,
`compress`, `grow --from-run`, `scan-lite profile`) is run in-process with the
disk filling up at its last write (the flush of the temporary file, where a
full disk shows) or at the rename of its output folder. It must fail with one
clear line naming what it could not write (no traceback), and leave every file
byte for byte as it was (paths, sizes, hashes and modification times) with no
temporary file behind. One table, one line per case.
"""

import errno
import hashlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from keras_scan import cli, runs, training
from keras_scan.thresholds import Thresholds

HERE = pathlib.Path(__file__).parent
TFLITE = HERE.parent / "tflite"
if str(TFLITE) not in sys.path:
    sys.path.insert(0, str(TFLITE))
from scan_lite import cli as lite_cli  # noqa: E402

EPOCHS = 3
# With crop + flip (off by default): a resumed epoch must redraw the same
# augmentation too.
TRAIN = (
    "train --backbone cifar_resnet18 --width 8 --limit 300 --batch-size 32 "
    f"--epochs {EPOCHS} --augment --verbose 2"
).split()
RAMP = "distill_scale"  # set by the ramp at each epoch's start, not trained


def _train(out, weights, pause=None, marker=None, wait=True):
    """Starts (and with `wait` finishes) `keras-scan train` in a subprocess."""
    weights.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", FAULT_WEIGHTS=str(weights))
    env.pop("FAULT_PAUSE", None)
    if pause:
        env.update(FAULT_PAUSE=pause, FAULT_MARKER=str(marker))
    command = [sys.executable, str(HERE / "fault_train.py"), *TRAIN, "--out", str(out)]
    log = open(weights / "log.txt", "w")  # noqa: SIM115  (the child writes it)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not wait:
        return proc
    assert proc.wait(timeout=600) == 0, (weights / "log.txt").read_text()
    return (weights / "log.txt").read_text()


def _weights(path):
    """{variable path: array} of a .keras file or a hook's .npz."""
    if str(path).endswith(".npz"):
        return {k.replace("|", "/"): v for k, v in np.load(path).items()}
    model = runs.load_model(path.parent, path.name)
    return {w.path: w.numpy() for w in model.weights}


def _max_difference(a, b, skip=(RAMP,)):
    assert a.keys() == b.keys()
    return max(
        float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0
        for k in a
        if not k.endswith(skip)
    )


def _leftovers(folder):
    """Temporary files or folders anywhere under `folder`."""
    return [
        p
        for p in folder.rglob("*")
        if ".tmp" in p.name or ".incomplete" in p.name or ".old-" in p.name
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, with its weights after every epoch."""
    root = tmp_path_factory.mktemp("reference")
    _train(root / "run", root / "weights")
    return root


def _kill_at(out, folder, pause):
    """Runs the command until `pause`, SIGKILLs it; returns its log."""
    marker = folder.with_suffix(".paused")
    proc = _train(out, folder, pause, marker, wait=False)
    deadline = time.monotonic() + 600
    while not marker.exists():
        assert proc.poll() is None, (folder / "log.txt").read_text()
        assert time.monotonic() < deadline, "the run never reached the pause point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return (folder / "log.txt").read_text()


def _begun(folder):
    """The epochs a process started at (the hook saves the first one only)."""
    return sorted(p.name for p in folder.glob("begin_*.npz"))


# Measured (width 8, 300 images, 3 epochs of 9 steps, CPU, TensorFlow 2.21):
# two uninterrupted runs are bit-identical, and each rerun starts from exactly
# the checkpointed weights (difference 0.0). Epochs lost: none to the kill in
# Keras' backup write after epoch 0 (last.keras was complete); the kill in
# epoch 1 loses the 5 of its 9 steps already done; the kill while last.keras
# of epoch 2 is written loses all of epoch 2 (finished, not checkpointed).
# Every epoch's data order and augmentation depend on (seed, epoch) only
# (`training.make_pipelines`), so the resumed run ends with the uninterrupted
# run's weights, bit for bit (before that fix: max |dw| 4.68, while one epoch
# of training moves them 9.6).
@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_checkpoint_write_then_resume(reference, tmp_path):
    out = tmp_path / "run"
    work = training.work_folder(out)
    ref = reference / "weights"

    # 1. Killed while Keras' BackupAndRestore writes its weights file (in
    #    place) after epoch 0: RUN not written; last.keras and history.csv,
    #    written whole before the backup, hold epoch 0 as the uninterrupted
    #    run had it.
    _kill_at(out, tmp_path / "first", "backup:0")
    assert not out.exists() and _leftovers(work) == []
    history = training.read_history(work / runs.HISTORY)
    assert [int(r["epoch"]) for r in history] == [0]
    last = _weights(work / runs.LAST)
    assert _max_difference(last, _weights(ref / "end_0.npz"), skip=()) == 0.0

    # 2. The same command continues after epoch 0 from exactly those weights
    #    (the half-written backup removed); killed after step 5 of epoch 1.
    log = _kill_at(out, tmp_path / "second", "batch:1:4")
    assert f"Continuing {out} after epoch 1 of {EPOCHS}." in log, log
    assert "written only in part" in log and _begun(tmp_path / "second") == [
        "begin_1.npz"
    ]
    start = _weights(tmp_path / "second" / "begin_1.npz")
    assert _max_difference(start, _weights(ref / "end_0.npz")) == 0.0
    assert _leftovers(work) == []

    # 3. Again from after epoch 0; killed while last.keras of epoch 2 is
    #    written (half an archive).
    log = _kill_at(out, tmp_path / "third", "save:2")
    assert f"Continuing {out} after epoch 1 of {EPOCHS}." in log, log
    assert _begun(tmp_path / "third") == ["begin_1.npz"]
    start = _weights(tmp_path / "third" / "begin_1.npz")
    assert _max_difference(start, _weights(ref / "end_0.npz")) == 0.0
    (half,) = work.glob(".last.keras.*.tmp.keras")
    assert not zipfile.is_zipfile(half)
    history = training.read_history(work / runs.HISTORY)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]  # written before
    epoch_1 = _weights(tmp_path / "third" / "end_1.npz")
    assert _max_difference(_weights(work / runs.LAST), epoch_1, skip=()) == 0.0
    # Epoch 1 retrained after the resume is the uninterrupted run's epoch 1.
    assert _max_difference(epoch_1, _weights(ref / "end_1.npz"), skip=()) == 0.0

    # 4. Again: continues after epoch 1 (epoch 2 was not checkpointed).
    log = _train(out, tmp_path / "fourth")
    assert f"Continuing {out} after epoch 2 of {EPOCHS}." in log, log
    assert _begun(tmp_path / "fourth") == ["begin_2.npz"]
    start = _weights(tmp_path / "fourth" / "begin_2.npz")
    assert _max_difference(start, epoch_1) == 0.0
    final_history = training.read_history(out / runs.HISTORY)
    assert [int(r["epoch"]) for r in final_history] == [0, 1, 2]
    assert final_history[:2] == history[:2]  # the checkpointed epochs, as logged
    reference_history = training.read_history(reference / "run" / runs.HISTORY)
    assert final_history[0] == reference_history[0]

    # A valid run folder: the files of the uninterrupted run, the same
    # configuration, loadable models, nothing temporary left anywhere.
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (reference / "run").iterdir())
    config = (out / runs.CONFIG).read_bytes()
    assert config == (reference / "run" / runs.CONFIG).read_bytes()
    runs.load_model(out)
    assert not work.exists() and _leftovers(tmp_path) == []

    final = _weights(out / runs.LAST)
    difference = _max_difference(
        final, _weights(ref / f"end_{EPOCHS - 1}.npz"), skip=()
    )
    assert difference == 0.0, f"resumed != uninterrupted: max |dw| {difference:.3g}"
    assert final_history == reference_history


# ------------------------------------------------------- failed writes

TINY = dict(backbone="cifar_resnet18", width=8, limit=300, batch_size=32, epochs=1)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A tiny SCAN run with thresholds, its float32 export and an older output."""
    root = tmp_path_factory.mktemp("faults")
    training.train(root / "scan", verbose=0, **TINY)
    Thresholds([0.5, 0.5, 0.5]).save(root / "scan" / runs.THRESHOLDS)
    export = f"export {root / 'scan'} --out {root / 'export'} --quantize float32"
    export += " --eval-limit 0"
    assert cli.main(export.split()) == 0
    (root / "export" / "costs.json").write_text('{"previous": true}\n')
    (root / "out").mkdir()  # what --out --overwrite would replace
    (root / "out" / "previous.txt").write_text("the previous output\n")
    return root


def full_disk_at(name):
    """The disk fills up while `name` is written: its flush (fsync) fails."""

    def inject(monkeypatch):
        fsync = os.fsync

        def full(fd):
            written = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if written.startswith(f".{name}."):  # the temporary file of `name`
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return fsync(fd)

        monkeypatch.setattr(os, "fsync", full)

    inject.__name__ = name
    return inject


def full_disk_at_rename(monkeypatch):
    """The rename of the finished temporary output folder onto `--out` fails."""
    replace = os.replace

    def full(src, dst):
        if ".tmp-" in os.path.basename(str(src)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", full)


full_disk_at_rename.__name__ = "rename"
FULL = "No space left on device"
KEPT = r"\. The previous (file|folder), if any, was left as it was\."
SEARCH = "search {scan} --population 4 --generations 1"
EXPORT = "export {scan} --out {out} --overwrite --quantize float32 --eval-limit 0"
COMPRESS = (
    "compress {scan} --budget-flops 0.5 --out {out} --overwrite --limit 64 "
    "--epochs-blockwise 0 --epochs-finetune 1 --probe-batches 1"
)
GROW = "grow --target-accuracy 0.5 --out {out} --overwrite --from-run {scan}"
PROFILE = "profile {export} --variant float32 --warmup 0 --repeats 1"

# (command line, fault, exit code, regex the error must match)
CASES = [
    ("evaluate {scan}", full_disk_at("eval.json"), 1, rf"Cannot write '\S*scan/eval\.json': {FULL}{KEPT}"),
    (SEARCH, full_disk_at("thresholds.json"), 1, rf"Cannot write '\S*scan/thresholds\.json': {FULL}{KEPT}"),
    (SEARCH, full_disk_at("tradeoff.png"), 1, rf"Cannot write '\S*scan/tradeoff\.png': {FULL}{KEPT}"),
    (EXPORT, full_disk_at_rename, 1, rf"Cannot write '\S*/out': {FULL}{KEPT}"),
    (COMPRESS, full_disk_at("compress_report.json"), 1, rf"Cannot write '\S*/compress_report\.json': {FULL}{KEPT}"),
    (GROW, full_disk_at("grow_accuracy.png"), 1, rf"Cannot write '\S*/grow_accuracy\.png': {FULL}{KEPT}"),
    (GROW, full_disk_at_rename, 1, rf"Cannot write '\S*/out': {FULL}{KEPT}"),
    (PROFILE, full_disk_at("costs.json"), 2, rf"Cannot write '\S*export/costs\.json': {FULL}{KEPT}"),
]  # fmt: skip


def _snapshot(folder):
    """Every path under `folder`: (size, mtime, sha256) for files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(folder))] = (
                stat.st_size,
                stat.st_mtime_ns,
                digest,
            )
        else:
            out[str(path.relative_to(folder))] = "dir"
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0].split()[0]}-{c[1].__name__}" for c in CASES]
)
def test_a_failed_write_leaves_everything_as_it_was(
    outputs, tmp_path, monkeypatch, capsys, case
):
    args, fault, code, message = case
    for name in ("scan", "export", "out"):
        shutil.copytree(outputs / name, tmp_path / name)
    before = _snapshot(tmp_path)
    argv = args.format(
        scan=tmp_path / "scan", export=tmp_path / "export", out=tmp_path / "out"
    ).split()
    main, prog = (
        (lite_cli.main, "scan-lite")
        if argv[0] == "profile"
        else (cli.main, "keras-scan")
    )
    fault(monkeypatch)
    assert main(argv) == code
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert re.search(rf"{prog} {argv[0]}: error: {message}", err), err
    assert "Traceback" not in err, err
    assert _snapshot(tmp_path) == before
