"""The JSON files of an export (`manifest.json`, `costs.json`): read strictly, written atomically.

JSON has no NaN or Infinity (RFC 8259), but Python's json module reads them, and a
JSON Schema's `minimum`/`maximum` do not reject NaN: a NaN threshold or latency
would pass validation. `read_json` keeps such a value as the text it was written
with and `check_finite` refuses it (or a non-finite float built in Python),
naming the field that holds it.

`write_text_atomic` writes a file so that readers see the old file or the new
one, never a half-written one.
"""

import json
import math
import os
import pathlib
import tempfile


class _Constant:
    """A NaN / Infinity / -Infinity read from JSON, kept so an error can show it."""

    def __init__(self, text):
        self.text = text


def read_json(path, error):
    """Parses a JSON file; NaN / Infinity are kept as markers for `check_finite`.

    Args:
        path: str or path.
        error: exception class raised when the file cannot be read or parsed.
    """
    try:
        return json.loads(
            pathlib.Path(path).read_text(encoding="utf-8"), parse_constant=_Constant
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"Cannot read {path}: {e}") from None


def check_finite(value, file_name, error, hint="", where=()):
    """Raises `error` at the first NaN / Infinity in `value` (nested dicts and lists).

    Args:
        value: a parsed JSON value.
        file_name: str. Named in the message (`manifest.json`, `costs.json`).
        error: exception class to raise.
        hint: str. Appended to the message (what the field must hold).
    """
    if isinstance(value, _Constant) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        text = value.text if isinstance(value, _Constant) else json.dumps(value)
        at = "/".join(map(str, where)) or "(root)"
        raise error(
            f"{file_name} is invalid at {at}: {text} is not a number (JSON has no "
            f"NaN or Infinity{'; ' + hint if hint else ''})"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, file_name, error, hint, (*where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, file_name, error, hint, (*where, i))


def check_schema(value, schema_path, file_name, error):
    """Raises `error` at the first JSON Schema violation of `value`.

    Returns whether a check ran: `False` when jsonschema is not importable or
    the schema file is missing (the caller then runs its own minimal check).

    Args:
        value: a parsed JSON value.
        schema_path: `pathlib.Path` of a Draft 2020-12 schema.
        file_name: str. Named in the message (`manifest.json`, `costs.json`).
        error: exception class to raise.
    """
    try:
        import jsonschema
    except ImportError:
        return False
    if not schema_path.is_file():
        return False
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise error(f"{file_name} is invalid at {at}: {e.message}")
    return True


def write_text_atomic(path, text, mode=0o644):
    """Writes `text` to `path` atomically: all of it or, on any failure, nothing.

    The text goes to a temporary file in the same folder, is flushed to disk
    (fsync), then renamed over `path` (`os.replace`). On any failure the
    temporary file is removed and a previous `path` is left as it was.

    Args:
        path: str or path. Its folder must exist.
        text: str. Written as UTF-8.
        mode: int. Permission bits of the new file. Defaults to `0o644`.

    Returns:
        The path written, as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
