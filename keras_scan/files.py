"""Atomic writes: a file or folder is replaced whole, or left as it was.

Every file keras_scan writes goes through here. A file is written to a
temporary name in the same folder, flushed and fsynced, then renamed over the
target with `os.replace` (atomic on POSIX and Windows). On any failure, the
serializer's own exceptions included, the temporary file is removed and the
previous file is left byte for byte as it was; readers never see a
half-written file. A write that fails with an `OSError` (a full disk, a
read-only folder) raises `WriteError`, which names the file or folder and says
that the previous one was kept.

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
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np


class WriteError(OSError):
    """A file or folder could not be written; the previous one was left as it was.

    Raised by the atomic writers in place of the `OSError` that stopped them
    (chained as `__cause__`; `errno` is kept), with a message naming the target.
    """


def _write_error(error, path, what="file"):
    """`error` (an `OSError`) as a `WriteError` naming `path`.

    A `WriteError` from a writer nested in this one is passed on as it is (it
    names the file that failed); a temporary file of this module written
    atomically itself is named by the file it stands for.
    """
    if isinstance(error, WriteError):
        return error
    names = []
    for target in map(pathlib.Path, path if isinstance(path, list) else [path]):
        match = _TEMPORARY_FILE.fullmatch(target.name)
        target = target.with_name(match.group(1)) if match else target
        names.append(repr(str(target)))
    reason = error.strerror or str(error) or type(error).__name__
    what = f"{what}s, if any, were" if len(names) > 1 else f"{what}, if any, was"
    new = WriteError(
        f"Cannot write {' and '.join(names)}: {reason}. The previous {what} left "
        "as it was."
    )
    new.errno = error.errno
    return new


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
    with atomic_paths(path, suffix=suffix) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths, suffix=""):
    """`atomic_path` for files that belong together: all are replaced, or none.

    Yields a list of temporary paths, one beside each of `paths`. Every one is
    written and fsynced before the first is renamed, so a failed write (a full
    disk) leaves all of `paths` as they were; only a crash between two renames
    can leave some new and some old.

    Args:
        *paths: str or path-like. The files to write.
        suffix: str. Ending of the temporary names (see `atomic_path`).
    """
    paths = [pathlib.Path(p) for p in paths]
    tmps, failed = [], paths
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps.append(_new_file(path.parent, f".{path.name}.", f".tmp{suffix}"))
        yield list(tmps)
        for tmp, path in zip(tmps, paths):
            failed = path
            _fsync(tmp)
        for tmp, path in zip(tmps, paths):
            failed = path
            os.replace(tmp, path)
    except BaseException as e:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(e, failed) from e
        raise
    for folder in {path.parent for path in paths}:
        _fsync_folder(folder)


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
    so an interrupted export or run never leaves a half-written folder; a
    failed rename onto `dest` is raised as a `WriteError` naming it.

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
        try:
            replace_folder(tmp, dest)
        except OSError as e:
            raise _write_error(e, dest, what="folder") from e
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


def remove_temporaries(folder):
    """Removes the temporary files and folders left in `folder`; returns them.

    A process killed while writing (SIGKILL, power loss) cannot remove its
    temporary file or folder: `atomic_path`'s `.NAME.XXXXXXXX.tmp[.suffix]`
    and `atomic_folder`'s `.NAME.tmp-XXXXXXXX` stay behind. The next writer of
    `folder` calls this first. Only for a folder no other process is writing;
    the previous files themselves are never touched.
    """
    folder = pathlib.Path(folder)
    removed = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if _TEMPORARY_FILE.fullmatch(path.name) and path.is_file():
            path.unlink()
        elif _TEMPORARY_FOLDER.fullmatch(path.name) and path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        removed.append(path)
    return removed


_TEMPORARY_FILE = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp(\.\w+)?")
_TEMPORARY_FOLDER = re.compile(r"\.(.+)\.tmp-\w{8}")


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
