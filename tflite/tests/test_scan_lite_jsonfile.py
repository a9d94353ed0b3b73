"""scan_lite.jsonfile: strict JSON reading (no NaN / Infinity) and atomic writes."""

import errno
import os

import pytest
from scan_lite import jsonfile


class Refused(ValueError):
    pass


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device (simulated)")


@pytest.mark.parametrize("step", ["fsync", "chmod", "replace"])
def test_a_failing_write_leaves_the_previous_file_and_no_temp_file(
    step, tmp_path, monkeypatch
):
    path = tmp_path / "report.json"
    path.write_text('{"old": true}\n')
    monkeypatch.setattr(os, step, _disk_full)
    with pytest.raises(OSError, match="No space left"):
        jsonfile.write_text_atomic(path, '{"new": true}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_an_interrupted_write_removes_its_temp_file(tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        jsonfile.write_text_atomic(tmp_path / "new.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_the_file(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    assert jsonfile.write_text_atomic(path, "new") == path
    assert path.read_text() == "new"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_read_json_refuses_non_numbers_naming_the_field(text, tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, {"b": ' + text + "}]}")
    value = jsonfile.read_json(path, Refused)
    with pytest.raises(Refused, match=f"x.json is invalid at a/1/b: {text} is not"):
        jsonfile.check_finite(value, "x.json", Refused)


def test_check_finite_on_python_floats_and_unreadable_files(tmp_path):
    with pytest.raises(Refused, match="at k: NaN is not a number .*; must be > 0"):
        jsonfile.check_finite({"k": float("nan")}, "t.json", Refused, "must be > 0")
    jsonfile.check_finite({"k": [0.5, 1, "NaN"]}, "t.json", Refused)  # a string is fine
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(Refused, match="Cannot read"):
        jsonfile.read_json(tmp_path / "bad.json", Refused)
