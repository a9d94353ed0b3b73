"""keras_scan.files: atomic writes keep the old file whole on any failure."""

import errno
import json
import math
import os
import pathlib

import numpy as np
import pytest

from keras_scan import files

OLD = b'{"old": true}\n'


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_bytes(OLD)
    return path


def _assert_untouched(path):
    assert path.read_bytes() == OLD
    assert os.listdir(path.parent) == [path.name]  # no temporary file left


# --- content ------------------------------------------------------------------


def test_writes_round_trip_and_create_parents(tmp_path):
    data = bytes(range(256)) * 3
    path = files.atomic_write_bytes(tmp_path / "a" / "b" / "blob.bin", data)
    assert path.read_bytes() == data
    files.atomic_write_text(tmp_path / "t.csv", "x,y\r\n1,é\n")
    assert (tmp_path / "t.csv").read_bytes() == "x,y\r\n1,é\n".encode()  # as given
    payload = {"a": [1, 2.5, None, "s"], "b": {"c": True}}
    files.atomic_write_json(str(tmp_path / "p.json"), payload)
    text = (tmp_path / "p.json").read_text()
    assert json.loads(text) == payload and text.endswith("}\n") and '\n  "a"' in text
    assert sorted(os.listdir(tmp_path)) == ["a", "p.json", "t.csv"]


def test_replaces_the_old_file_in_the_usual_mode(old_file):
    files.atomic_write_bytes(old_file, b"new")
    assert old_file.read_bytes() == b"new"
    assert os.listdir(old_file.parent) == [old_file.name]
    mask = os.umask(0)
    os.umask(mask)
    assert old_file.stat().st_mode & 0o777 == 0o666 & ~mask


def test_fsyncs_the_file_before_renaming(old_file, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", pathlib.Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.atomic_write_bytes(old_file, b"12345")
    # the written file (5 bytes) is synced, then renamed (then its folder synced)
    assert events[:2] == [("fsync", 5), ("replace", "out.json")]


# --- JSON ---------------------------------------------------------------------


def test_jsonable_converts_numpy_paths_and_non_finite_numbers():
    value = files.jsonable(
        {
            1: np.float32(0.5),
            "i": np.int64(3),
            "b": np.bool_(True),
            "a": np.arange(3),
            "m": np.ones((2, 2), np.float16),
            "t": (1, "x"),
            "p": pathlib.Path("/a/b"),
            "bad": [
                math.nan,
                math.inf,
                -math.inf,
                np.float64("nan"),
                np.float32("inf"),
            ],
        }
    )
    assert value == {
        "1": 0.5,
        "i": 3,
        "b": True,
        "a": [0, 1, 2],
        "m": [[1.0, 1.0], [1.0, 1.0]],
        "t": [1, "x"],
        "p": "/a/b",
        "bad": [None, None, None, None, None],
    }
    assert type(value["i"]) is int and type(value["b"]) is bool
    assert type(value["1"]) is float


def test_json_never_writes_nan(tmp_path):
    path = files.atomic_write_json(tmp_path / "x.json", {"loss": np.float32("nan")})
    assert path.read_text() == '{\n  "loss": null\n}\n'


def test_serializer_error_keeps_the_old_file(old_file):
    with pytest.raises(TypeError, match="Cannot write object to JSON"):
        files.atomic_write_json(old_file, {"fine": 1, "bad": object()})
    _assert_untouched(old_file)
    # an exception raised inside a writer, after the temporary file exists
    with pytest.raises(RuntimeError, match="mid-write"), files.atomic_path(old_file):
        raise RuntimeError("mid-write")
    _assert_untouched(old_file)


# --- failures -----------------------------------------------------------------


@pytest.mark.parametrize("fail", ["write", "fsync", "replace"])
def test_write_failure_keeps_the_old_file(old_file, monkeypatch, fail):
    if fail == "write":
        import builtins

        real_open = builtins.open

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:3])  # part of it reaches the disk
                _enospc()

        def open_(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            return Full(f) if "w" in mode else f

        monkeypatch.setattr(builtins, "open", open_)
    else:
        monkeypatch.setattr(os, fail, _enospc)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_json(old_file, {"new": list(range(100))})
    monkeypatch.undo()
    _assert_untouched(old_file)


def test_atomic_path_for_writers_taking_a_name(tmp_path):
    target = tmp_path / "m.keras"
    with files.atomic_path(target, suffix=".keras") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.keras")
        assert tmp.name.startswith(".m.keras.")
        tmp.write_bytes(b"model")
        assert not target.exists()
    assert target.read_bytes() == b"model"
    assert os.listdir(tmp_path) == ["m.keras"]


# --- folders ------------------------------------------------------------------


def _old_folder(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("previous")
    return dest


def test_atomic_folder_replaces_or_refuses(tmp_path):
    dest = _old_folder(tmp_path)
    with pytest.raises(FileExistsError, match="`--out` already exists.*overwrite"):
        with files.atomic_folder(dest, arg="--out"):
            pass
    with files.atomic_folder(dest, overwrite=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-")
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert os.listdir(tmp_path) == ["out"]


def test_atomic_folder_failure_keeps_the_old_folder(tmp_path, monkeypatch):
    dest = _old_folder(tmp_path)
    with pytest.raises(RuntimeError, match="injected"):
        with files.atomic_folder(dest, overwrite=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("injected")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(dest) == ["keep.txt"]

    # the rename of the new folder fails after the old one was moved aside
    real_replace = os.replace

    def replace(src, dst):
        if ".tmp-" in str(src):
            _enospc()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        with files.atomic_folder(dest, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(dest) == ["keep.txt"]
    assert (dest / "keep.txt").read_text() == "previous"
