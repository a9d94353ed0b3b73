"""Atomic writes: a file or folder is replaced whole, or left as it was.

Every file keras_scan writes goes through here. A file is written to a
temporary name in the same folder, flushed and fsynced, then renamed over the
target with `os.replace` (atomic on POSIX and Windows). On any failure, the
serializer's own exceptions included, the temporary file is removed and the
previous file is left byte for byte as it was; readers never see a
half-written file.

JSON goes through `jsonable`: numpy scalars and arrays become Python numbers
and lists, paths become strings, and NaN and infinities become `null` (JSON has
no such numbers; a strict reader, scan_lite's included, refuses the `NaN`
Python would otherwise write).
"""

import contextlib
import json
import math
import numbers
import os
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np


def jsonable(obj):
    """`obj` as plain JSON types.

    Mappings become dicts with string keys, tuples and numpy arrays lists,
    numpy scalars Python numbers, paths strings, and non-finite floats (NaN,
    inf) `None`.

    Raises:
        TypeError: `obj` holds a value JSON cannot represent.
    """
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    raise TypeError(f"Cannot write {type(obj).__name__} to JSON: {obj!r}")


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`, renamed onto `path` on success.

    For writers that take a file name (`model.save`, `figure.savefig`): the
    file is fsynced and renamed when the block ends; on any exception it is
    removed and `path` is untouched. Parent folders are created.

    Args:
        path: str or path-like. The file to write.
        suffix: str. Ending of the temporary name, for writers that check it
            (Keras needs `".keras"`). Defaults to `""`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, f".{path.name}.", f".tmp{suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def atomic_write_text(path, text, encoding="utf-8"):
    """Writes `text` to `path` atomically, newlines as given; returns `path`."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, payload):
    """Writes `jsonable(payload)` as indented JSON to `path` atomically.

    Returns `path`. Raises `TypeError` (and writes nothing) when `payload`
    holds a value JSON cannot represent.
    """
    text = json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


@contextlib.contextmanager
def atomic_folder(dest, overwrite=False, what="output folder", arg="out"):
    """Yields a temporary sibling folder that replaces `dest` on success.

    On any exception the temporary folder is removed and `dest` is untouched,
    so an interrupted export or run never leaves a half-written folder.

    Args:
        dest: str or path-like. The folder to write.
        overwrite: bool. Replace an existing `dest`; else raise
            `FileExistsError`. Defaults to `False`.
        what: str. What `dest` is, for the error message.
        arg: str. The argument that named `dest`, for the error message.
    """
    dest = pathlib.Path(dest).expanduser()
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"`{arg}` already exists: {str(dest)!r}. Pass --overwrite (or "
            f"`overwrite=True`) to replace this {what}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        yield tmp
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(src, dest):
    """Renames folder `src` to `dest`, replacing (then deleting) any `dest`.

    The old `dest` is moved aside first and put back if the rename fails.
    """
    src, dest = pathlib.Path(src), pathlib.Path(dest)
    if not dest.exists():
        os.replace(src, dest)
    else:
        old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(4)}")
        os.replace(dest, old)
        try:
            os.replace(src, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(dest.parent)


def _new_file(folder, prefix, suffix):
    """Creates an empty file with a fresh name, in the usual mode (umask)."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder):
    """Makes a rename in `folder` durable; best effort (POSIX only)."""
    if os.name == "posix":
        with contextlib.suppress(OSError):
            _fsync(folder)
