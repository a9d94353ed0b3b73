"""Bad input to every `keras-scan` command: refused with exit code 2, a clear
error naming the argument or file and the value, and nothing written.

One table, one line per case: the command line (`{scan}` a SCAN run,
`{plain}` a `--no-exits` run, `{tmp}` the case's own folder), what is damaged
before it runs, and a regex the error must match. Every case runs on fresh
copies of two tiny real runs (trained once per module); the whole case folder
(both runs and every `--out` target) is compared, file by file with sizes and
modification times, before and after the command.

Not here: `compress` on a `--no-exits` run is supported (a plain teacher
distils its final classifier, `keras_scan.compact`), so it is not refused.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from keras_scan import cli, runs, training
from keras_scan.thresholds import Thresholds

TINY = dict(backbone="cifar_resnet18", width=8, limit=300, batch_size=32, epochs=1)
TRAIN = "train --backbone cifar_resnet18 --width 8 --limit 300 --batch-size 32"
EXITS = ["exit_0", "exit_1", "exit_2", "final"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A tiny SCAN run (with thresholds.json) and a tiny `--no-exits` run."""
    root = tmp_path_factory.mktemp("bad_input")
    training.train(root / "scan", verbose=0, **TINY)
    Thresholds([0.5, 0.5, 0.5]).save(root / "scan" / runs.THRESHOLDS)
    training.train(root / "plain", verbose=0, evaluate=False, no_exits=True, **TINY)
    return root


# ------------------------------------------------------- what is damaged


def truncate(rel):
    def damage(folder):
        path = folder / rel
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def flip(rel):
    """Flips bytes in the middle of a file (a zip member's checksum breaks)."""

    def damage(folder):
        path = folder / rel
        raw = bytearray(path.read_bytes())
        middle = len(raw) // 2
        raw[middle : middle + 64] = bytes(b ^ 0xFF for b in raw[middle : middle + 64])
        path.write_bytes(bytes(raw))

    return damage


def write(rel, text):
    def damage(folder):
        (folder / rel).write_text(text)

    return damage


def config(**changes):
    """Edits scan/config.json (a value of None removes the key)."""

    def damage(folder):
        path = folder / "scan" / runs.CONFIG
        c = json.loads(path.read_text())
        c.update(changes)
        c = {k: v for k, v in c.items() if v is not None}
        path.write_text(json.dumps(c))

    return damage


def thresholds(values):
    return write(f"scan/{runs.THRESHOLDS}", json.dumps({"values": values}))


def val_eval(*accuracies):
    """scan/eval.json with per-exit validation accuracies (read by grow)."""
    exits = [{"name": n, "accuracy": a} for n, a in zip(EXITS, accuracies)]
    payload = {"split": "val", "model": runs.MODEL, "exits": exits}
    return write(f"scan/{runs.EVAL}", json.dumps(payload))


NAN = float("nan")
CORRUPT_MODEL = r"`run` has a corrupt model file: \S*scan/model\.keras"
CORRUPT_CONFIG = r"`run` has a corrupt config\.json: \S*scan/config\.json is not valid"
BAD_THRESHOLDS = r"`run` has an invalid thresholds\.json: \S*scan/thresholds\.json"
NO_EXITS = r"`run` has no exits: \S*plain/model\.keras is a plain model.*--no-exits"
FROM_RUN = "grow --target-accuracy 0.5 --out {tmp}/cut --from-run"
EXPORT = "--out {tmp}/export --quantize float32"
COMPRESS = "--budget-flops 0.5 --out {tmp}/small"

# (command line, damage or None, exit code, regex the error must match)
CASES = [
    # evaluate: damaged files
    ("evaluate {scan}", truncate("scan/model.keras"), 2, CORRUPT_MODEL + " is not a Keras archive"),
    ("evaluate {scan}", flip("scan/model.keras"), 2, CORRUPT_MODEL + " (has a damaged member|cannot be)"),
    ("evaluate {scan} --model last", truncate("scan/last.keras"), 2, r"corrupt model file: \S*scan/last\.keras"),
    ("evaluate {scan}", truncate("scan/config.json"), 2, CORRUPT_CONFIG + " JSON"),
    ("evaluate {scan}", write("scan/config.json", "[32, 32]"), 2, r"config\.json: \S*config\.json must hold a mapping of settings, not a list"),
    ("evaluate {scan}", config(image_size=None), 2, r"config\.json: \S*config\.json has no 'image_size' setting"),
    ("evaluate {scan}", config(image_size="big"), 2, r"'image_size' in \S*config\.json must be an int >= 1. Received: image_size='big'"),
    ("evaluate {scan}", config(val_fraction=1.5), 2, r"'val_fraction' .* strictly between 0 and 1. Received: val_fraction=1\.5"),
    ("evaluate {scan} --scalable", truncate("scan/thresholds.json"), 2, r"corrupt thresholds\.json: \S*thresholds\.json is not valid JSON"),
    ("evaluate {scan} --scalable", thresholds([0.5, 0.5]), 2, BAD_THRESHOLDS + r" holds 2 thresholds but the model has 4 exits.*values=\[0\.5, 0\.5\]"),
    ("evaluate {scan} --scalable", thresholds([NAN, 0.5, 0.5]), 2, BAD_THRESHOLDS + r": `thresholds` must lie in \[0, 1\]; value nan at index 0"),
    ("evaluate {scan} --scalable", thresholds([0.5, 1.5, 0.5]), 2, BAD_THRESHOLDS + r".* value 1\.5 at index 1"),
    ("evaluate {scan} --scalable", thresholds([0.5, 0.5, -0.1]), 2, BAD_THRESHOLDS + r".* value -0\.1 at index 2"),
    ("evaluate {scan} --scalable", thresholds("high"), 2, r"`run` has an invalid thresholds\.json: 'values' in \S*thresholds\.json must be a list of numbers in \[0, 1\].*Received: values='high'"),
    ("evaluate {plain} --scalable", None, 2, r"`--scalable` needs a model with exits; \S*plain' has none"),
    ("evaluate {scan} --batch-size 0", None, 2, r"`--batch-size` must be a positive int. Received: 0"),
    # search
    ("search {plain}", None, 2, NO_EXITS + r".*keras-scan search` needs a SCAN model"),
    ("search {scan}", truncate("scan/model.keras"), 2, CORRUPT_MODEL),
    ("search {scan}", truncate("scan/config.json"), 2, CORRUPT_CONFIG),
    ("search {scan} --population 2", None, 2, r"argument --population: must be >= 4. Received: 2"),
    ("search {scan} --generations 0", None, 2, r"argument --generations: must be >= 1. Received: 0"),
    ("search {scan} --batch-size 0", None, 2, r"argument --batch-size: must be >= 1. Received: 0"),
    ("search {scan} --margin -1", None, 2, r"argument --margin: must be >= 0. Received: -1"),
    ("search {scan} --margin nan", None, 2, r"argument --margin: not a finite number: 'nan'"),
    # export
    ("export {plain} " + EXPORT, None, 2, NO_EXITS + r".*keras-scan export` needs"),
    ("export {scan} " + EXPORT, truncate("scan/model.keras"), 2, CORRUPT_MODEL),
    ("export {scan} " + EXPORT, flip("scan/model.keras"), 2, CORRUPT_MODEL),
    ("export {scan} " + EXPORT, truncate("scan/config.json"), 2, CORRUPT_CONFIG),
    ("export {scan} " + EXPORT, truncate("scan/thresholds.json"), 2, r"corrupt thresholds\.json: \S*thresholds\.json is not valid JSON"),
    ("export {scan} " + EXPORT, thresholds([0.5] * 4), 2, BAD_THRESHOLDS + r" holds 4 thresholds but the model has 4 exits"),
    ("export {scan} " + EXPORT, thresholds([0.5, NAN, 0.5]), 2, BAD_THRESHOLDS + r".* value nan at index 1"),
    ("export {scan} " + EXPORT, thresholds([2, 0.5, 0.5]), 2, BAD_THRESHOLDS + r".* value 2\.0 at index 0"),
    # compress
    ("compress {scan} " + COMPRESS, truncate("scan/model.keras"), 2, CORRUPT_MODEL),
    ("compress {scan} " + COMPRESS, flip("scan/model.keras"), 2, CORRUPT_MODEL),
    ("compress {scan} " + COMPRESS, truncate("scan/config.json"), 2, CORRUPT_CONFIG),
    ("compress {scan} " + COMPRESS, config(dataset=None), 2, r"config\.json has no 'dataset' setting"),
    # grow --from-run
    (FROM_RUN + " {plain}", None, 2, r"`--from-run` has no exits: \S*plain/model\.keras is a plain model"),
    (FROM_RUN + " {scan}", truncate("scan/model.keras"), 2, r"`--from-run` has a corrupt model file: \S*scan/model\.keras"),
    (FROM_RUN + " {scan}", truncate("scan/config.json"), 2, r"`--from-run` has a corrupt config\.json: \S*scan/config\.json"),
    (FROM_RUN + " {scan}", truncate("scan/eval.json"), 2, r"`--from-run` has a corrupt eval\.json: \S*scan/eval\.json is not valid JSON"),
    (FROM_RUN + " {scan}", val_eval(0.5, NAN, 0.7, 0.8), 2, r"corrupt eval\.json: the validation accuracy of 'exit_1' in \S*eval\.json must be a fraction in \[0, 1\].*Received: exit_1=nan"),
    (FROM_RUN + " {scan}", val_eval(0.5, 0.6, 0.7, 1.7), 2, r"accuracy of 'final' .* Received: final=1\.7"),
    (FROM_RUN + " {scan}", val_eval(0.5, "high", 0.7, 0.8), 2, r"corrupt eval\.json: \S*eval\.json holds an accuracy that is not a number"),
    # grow (training mode)
    ("grow --target-accuracy 0.5 --out {tmp}/g --start-depth 0", None, 2, r"`--start-depth` must be >= 1. Received: --start-depth=0"),
    ("grow --target-accuracy 0.5 --out {tmp}/g --width 4 --limit 100 --start-depth 9", None, 2, r"`start_depth` must be in \[1, 8\] \(blocks of 'cifar_resnet18'\). Received: start_depth=9"),
    # train
    (TRAIN + " --config {tmp}/bad.yaml --out {tmp}/run", write("bad.yaml", "epochs: [1\n"), 2, r"`config` is not valid YAML.*Received: config='\S*bad\.yaml'"),
    (TRAIN + " --config {tmp}/list.yaml --out {tmp}/run", write("list.yaml", "- 1\n"), 2, r"`config` must hold a mapping.*list\.yaml' holding a list"),
    (TRAIN + " --limit 20 --out {tmp}/run", None, 2, r"`limit` must be at least `batch_size` \(32\).*Received: limit=20, batch_size=32"),
    (TRAIN + " --limit 8 --batch-size 4 --out {tmp}/run", None, 2, r"`limit` must be at least the number of classes \(10 .*Received: limit=8"),
    (TRAIN + " --batch-size 0 --out {tmp}/run", None, 2, r"`batch_size` must be an int >= 1. Received: batch_size=0"),
    (TRAIN + " --exit-weights 1,2 --out {tmp}/run", None, 2, r"`exit_weights` must be None, 'equal', 'depth' or 4 numbers >= 0, one per exit.*Received: exit_weights=\[1.0, 2.0\]"),
    (TRAIN + " --exit-weights 1,x --out {tmp}/run", None, 2, r"`exit_weights` must be 'equal', 'depth' or comma-separated numbers >= 0. Received: exit_weights='1,x'"),
    (TRAIN + " --exit-weights 1,1,nan,1 --out {tmp}/run", None, 2, r"`exit_weights` must be 'equal', 'depth' or a list of numbers >= 0.*Received: exit_weights=\[1.0, 1.0, nan, 1.0\]"),
    (TRAIN + " --min-warmup-steps -1 --out {tmp}/run", None, 2, r"`min_warmup_steps` must be an int >= 0 \(steps\). Received: min_warmup_steps=-1"),
    (TRAIN + " --epochs 2 --resume --out {scan}", truncate("scan/last.keras"), 2, r"`out` has a corrupt model file: \S*scan/last\.keras is not a Keras archive"),
    (TRAIN + " --epochs 2 --resume --out {scan}", flip("scan/last.keras"), 2, r"`out` has a corrupt model file: \S*scan/last\.keras"),
]  # fmt: skip


def _case_id(case):
    args, damage, _, _ = case
    words = args.split()
    what = damage.__qualname__.split(".")[0] if damage else "args"
    detail = next((w for w in reversed(words) if w.startswith("--")), "")
    return f"{words[0]}-{what}-{detail.strip('-')}"


def _snapshot(folder):
    """Every path under `folder` with (size, mtime) for files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        out[str(path.relative_to(folder))] = (
            (stat.st_size, stat.st_mtime_ns) if path.is_file() else "dir"
        )
    return out


def _copy_runs(pristine, folder):
    for name in ("scan", "plain"):
        shutil.copytree(pristine / name, folder / name)


def _main(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse's own checks (types, choices)
        return e.code


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_refused_and_nothing_is_written(pristine, tmp_path, capsys, case):
    args, damage, code, message = case
    _copy_runs(pristine, tmp_path)
    if damage is not None:
        damage(tmp_path)
    before = _snapshot(tmp_path)
    argv = args.format(
        scan=tmp_path / "scan", plain=tmp_path / "plain", tmp=tmp_path
    ).split()

    assert _main(argv) == code
    err = capsys.readouterr().err
    assert f"keras-scan {argv[0]}: error:" in err, err
    assert re.search(message, err), err
    assert "Traceback" not in err and "File not found" not in err, err
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
def test_the_undamaged_runs_are_accepted(pristine, tmp_path, capsys):
    """The control: what the table damages works when it is intact."""
    _copy_runs(pristine, tmp_path)
    scan = tmp_path / "scan"
    assert cli.main(["evaluate", str(scan), "--scalable", "--model", "last"]) == 0
    assert runs.load_json(scan / runs.EVAL)["scalable"]["num_samples"] == 300
    assert cli.main(["evaluate", str(tmp_path / "plain")]) == 0
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_the_installed_command_says_corrupt_not_missing(pristine, tmp_path):
    """Through the `keras-scan` entry point, as a user meets it."""
    _copy_runs(pristine, tmp_path)
    truncate("scan/model.keras")(tmp_path)
    before = _snapshot(tmp_path)
    exe = shutil.which("keras-scan", path=os.path.dirname(sys.executable))
    command = [exe] if exe else [sys.executable, "-m", "keras_scan.cli"]
    proc = subprocess.run(
        [*command, "evaluate", str(tmp_path / "scan")],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert re.search(CORRUPT_MODEL + " is not a Keras archive", proc.stderr)
    assert "Traceback" not in proc.stderr and "File not found" not in proc.stderr
    assert _snapshot(tmp_path) == before
