"""`scan-lite run` and `scan-lite bench` refuse bad input: exit code 2, a message that
names the argument or file and the value, and nothing written or changed on disk.

One case per line of `CASES`: an id, the command line (`{name}` is a file the
`inputs` fixture writes, `{export}` the conformance export, `{broken_export}` a
copy whose cascade.int8.tflite and stage_1.int8.tflite are not models LiteRT can
load although their size and SHA-256 match the manifest, `{out}` a report path
in a folder that does not exist yet) and the parts the error message must show.
"""

import gzip
import hashlib
import re
import struct

import numpy as np
import pytest
from conftest import EXPORT, edit_manifest
from scan_lite import cli

# fmt: off
CASES = [
    # run: arguments
    ("run-variant", "run {export} {image.npy} --variant int4", ["`--variant`", "'int4'", "float32"]),
    ("run-threads-0", "run {export} {image.npy} --threads 0", ["`--threads`", "--threads 0"]),
    ("run-threads-negative", "run {export} {image.npy} --threads -2", ["`--threads`", "--threads -2"]),
    ("run-threads-not-int", "run {export} {image.npy} --threads two", ["--threads", "'two'"]),
    # run: files
    ("run-npy-garbage", "run {export} {image.npy} {garbage.npy}", ["garbage.npy", "not a valid .npy"]),
    ("run-npy-truncated", "run {export} {truncated.npy}", ["truncated.npy", "not a valid .npy"]),
    ("run-npy-empty-file", "run {export} {empty.npy}", ["empty.npy", "not a valid .npy"]),
    ("run-npy-missing", "run {export} {missing.npy}", ["missing.npy", "does not exist"]),
    ("run-tflite-unloadable", "run {broken_export} {image.npy}", ["cascade.int8.tflite", "LiteRT cannot load", "SHA-256 match"]),
    ("run-stage-file-unloadable", "run {broken_export} {image.npy} --stage-files", ["stage_1.int8.tflite", "LiteRT cannot load"]),
    # bench: arguments
    ("bench-variant", "bench {export} --npz {data.npz} --variant int4 --json {out}", ["`--variant`", "'int4'"]),
    ("bench-threads-0", "bench {export} --npz {data.npz} --threads 0 --json {out}", ["`--threads`", "--threads 0"]),
    ("bench-limit-0", "bench {export} --npz {data.npz} --limit 0 --json {out}", ["`--limit`", "--limit 0"]),
    ("bench-limit-negative", "bench {export} --npz {data.npz} --limit -3 --json {out}", ["`--limit`", "--limit -3"]),
    ("bench-warmup-negative", "bench {export} --npz {data.npz} --warmup -1 --json {out}", ["`--warmup`", "--warmup -1"]),
    # bench: data sets
    ("bench-idx-counts-differ", "bench {export} --idx {images.idx.gz} {labels_11.idx.gz} --json {out}", ["images.idx.gz", "labels_11.idx.gz", "12 images", "11 labels"]),
    ("bench-idx-truncated", "bench {export} --idx {images_truncated.idx} {labels.idx.gz} --json {out}", ["images_truncated.idx", "truncated"]),
    ("bench-idx-header-cut", "bench {export} --idx {images_header_cut.idx} {labels.idx.gz} --json {out}", ["images_header_cut.idx", "truncated"]),
    ("bench-idx-gzip-cut", "bench {export} --idx {images_cut.idx.gz} {labels.idx.gz} --json {out}", ["images_cut.idx.gz", "corrupt or truncated"]),
    ("bench-idx-not-gzip", "bench {export} --idx {not_gzip.idx.gz} {labels.idx.gz} --json {out}", ["not_gzip.idx.gz", "corrupt or truncated"]),
    ("bench-idx-bad-magic", "bench {export} --idx {garbage.idx} {labels.idx.gz} --json {out}", ["garbage.idx", "magic"]),
    ("bench-idx-missing", "bench {export} --idx {missing.idx.gz} {labels.idx.gz} --json {out}", ["missing.idx.gz", "does not exist"]),
    ("bench-idx-label-out-of-range", "bench {export} --idx {images.idx.gz} {labels_10.idx.gz} --json {out}", ["labels_10.idx.gz", "0..9", "label 10 of image 3"]),
    ("bench-npz-label-negative", "bench {export} --npz {labels_negative.npz} --json {out}", ["labels_negative.npz", "0..9", "label -1 of image 0"]),
    ("bench-npz-label-fraction", "bench {export} --npz {labels_fraction.npz} --json {out}", ["labels_fraction.npz", "label 0.5 of image 2"]),
    ("bench-npz-label-nan", "bench {export} --npz {labels_nan.npz} --json {out}", ["labels_nan.npz", "label nan"]),
    ("bench-npz-counts-differ", "bench {export} --npz {labels_11.npz} --json {out}", ["labels_11.npz", "12 images, 11 labels"]),
    ("bench-idx-empty", "bench {export} --idx {empty_images.idx.gz} {empty_labels.idx.gz} --json {out}", ["empty", "empty_images.idx.gz"]),
    ("bench-npz-empty", "bench {export} --npz {empty.npz} --json {out}", ["empty", "empty.npz"]),
    ("bench-npz-no-arrays", "bench {export} --npz {no_arrays.npz} --json {out}", ["no_arrays.npz", "'x'"]),
    ("bench-tflite-unloadable", "bench {broken_export} --npz {data.npz} --json {out}", ["cascade.int8.tflite", "LiteRT cannot load"]),
]
# fmt: on


def _idx(array):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, images, expected):
    """Good and bad input files, written once; the tests must leave them as they are."""
    folder = tmp_path_factory.mktemp("inputs")
    labels = np.asarray(expected["labels"], np.uint8)
    grey = images[:, 2:30, 2:30, 0]
    npy = folder / "image.npy"
    np.save(npy, images[0])
    raw = {
        "garbage.npy": b"not a numpy file at all",
        "truncated.npy": npy.read_bytes()[:200],
        "empty.npy": b"",
        "images.idx.gz": gzip.compress(_idx(grey)),
        "labels.idx.gz": gzip.compress(_idx(labels)),
        "labels_11.idx.gz": gzip.compress(_idx(labels[:11])),
        "labels_10.idx.gz": gzip.compress(
            _idx(np.where(np.arange(12) == 3, 10, labels))
        ),
        "images_truncated.idx": _idx(grey)[:-100],
        "images_header_cut.idx": _idx(grey)[:9],
        "images_cut.idx.gz": gzip.compress(_idx(grey))[:-200],
        "not_gzip.idx.gz": _idx(grey),
        "garbage.idx": b"\x01\x02\x03\x04" * 10,
        "empty_images.idx.gz": gzip.compress(_idx(np.zeros((0, 28, 28)))),
        "empty_labels.idx.gz": gzip.compress(_idx(np.zeros((0,)))),
    }
    for name, data in raw.items():
        (folder / name).write_bytes(data)
    np.savez(folder / "data.npz", x=images, y=labels)
    negative = labels.astype(int)
    negative[0] = -1
    np.savez(folder / "labels_negative.npz", x=images, y=negative)
    fraction = labels.astype(float)
    fraction[2] = 0.5
    np.savez(folder / "labels_fraction.npz", x=images, y=fraction)
    np.savez(folder / "labels_nan.npz", x=images, y=np.full(12, np.nan))
    np.savez(folder / "labels_11.npz", x=images, y=labels[:11])
    np.savez(folder / "empty.npz", x=images[:0], y=labels[:0])
    np.savez(folder / "no_arrays.npz", a=labels)
    return folder


def _break(export):
    """Replaces two model files by bytes LiteRT refuses; the manifest records them."""
    for name in ("cascade.int8.tflite", "stage_1.int8.tflite"):
        data = b"TFL3 but not a flatbuffer model " * 8
        (export / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        edit_manifest(
            export,
            lambda m, name=name, data=data, digest=digest: m["files"][name].update(
                bytes=len(data), sha256=digest
            ),
        )


def _snapshot(*folders):
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _main(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse's own usage errors
        return e.code


@pytest.mark.parametrize(
    "command, shown", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused(command, shown, inputs, export_copy, tmp_path, capsys):
    files = {p.name: str(p) for p in inputs.iterdir()}
    files.update(
        export=str(EXPORT),
        broken_export=str(export_copy),
        out=str(tmp_path / "reports" / "bench.json"),
        **{"missing.npy": str(inputs / "missing.npy")},
        **{"missing.idx.gz": str(inputs / "missing.idx.gz")},
    )
    if "{broken_export}" in command:
        _break(export_copy)
    before = _snapshot(inputs, EXPORT, export_copy, tmp_path)

    argv = [re.sub(r"\{([^}]+)\}", lambda g: files[g[1]], p) for p in command.split()]
    code = _main(argv)

    captured = capsys.readouterr()
    assert code == 2, captured.err
    for part in shown:
        assert part in captured.err, f"{part!r} not in: {captured.err}"
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert _snapshot(inputs, EXPORT, export_copy, tmp_path) == before
    assert not (tmp_path / "reports").exists()


def test_the_good_inputs_are_accepted(inputs, tmp_path, capsys):
    """The cases fail for the reason they name: the same commands on good files pass."""
    out = tmp_path / "reports" / "bench.json"
    assert _main(["run", str(EXPORT), str(inputs / "image.npy")]) == 0
    idx = ["--idx", str(inputs / "images.idx.gz"), str(inputs / "labels.idx.gz")]
    assert _main(["bench", str(EXPORT), *idx, "--warmup", "0", "--json", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
