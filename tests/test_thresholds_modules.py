"""The threshold modules' layout: a leaf exit rule, no import cycle, one API namespace."""

import ast
import pathlib
import sys

import pytest

from keras_scan import cascade_eval, exit_rule, threshold_search, thresholds

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_scan"
MODEL_FREE = ("exit_rule", "cascade_eval", "nsga", "threshold_search")
SEARCH = ("thresholds", "threshold_search", "nsga", "cascade_eval")


def _imports(module):
    """(module imported, name imported or None) for every import, lazy ones too."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module, a.name) for a in node.names]
    return found


def _keras_scan_modules(module):
    out = set()
    for mod, name in _imports(module):
        if mod == "keras_scan":
            out.add(name)
        elif mod.startswith("keras_scan."):
            out.add(mod.split(".")[1])
    return out


def test_exit_rule_is_a_leaf():
    for mod, name in _imports("exit_rule"):
        top = mod.split(".")[0]
        assert (
            top in sys.stdlib_module_names
            or top in ("numpy", "__future__")
            or ((mod, name) == ("keras_scan", "files"))
        ), (mod, name)


@pytest.mark.parametrize("module", ["inference", "batches"])
def test_the_engine_does_not_import_the_search(module):
    assert not _keras_scan_modules(module) & set(SEARCH)


@pytest.mark.parametrize("module", MODEL_FREE)
def test_the_search_on_arrays_does_not_import_the_model_side(module):
    assert not _keras_scan_modules(module) & {"inference", "batches", "thresholds"}


@pytest.mark.parametrize("module", ["inference", "batches", "thresholds", *MODEL_FREE])
def test_no_private_name_crosses_modules(module):
    for mod, name in _imports(module):
        if mod.startswith("keras_scan") and name is not None:
            assert not name.startswith("_"), (module, mod, name)
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    for other in ("exit_rule", "cascade_eval", "nsga", "threshold_search", "inference"):
        assert f"{other}._" not in source, (module, other)


def test_thresholds_re_exports_the_owners_objects():
    owners = (exit_rule, cascade_eval, threshold_search)
    for name in thresholds.__all__:
        obj = getattr(thresholds, name)
        homes = [m for m in owners if getattr(m, name, None) is obj]
        assert homes or name == "search_thresholds", name
