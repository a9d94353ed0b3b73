"""`scan-lite profile` and the cost table EXPORT/costs.json (scan_lite.costs)."""

import json
import math
import shutil
import sys

import numpy as np
import pytest
import scan_lite
from conftest import EXPORT, TESTDATA, TFLITE
from scan_lite import cli
from scan_lite import costs as costs_lib
from scan_lite import profile as profile_lib

REPEATS = 5


@pytest.fixture(params=["jsonschema", "builtin"])
def validator(request, monkeypatch):
    """Runs a test with jsonschema, then with it made unimportable."""
    if request.param == "builtin":
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    else:
        pytest.importorskip("jsonschema")
    return request.param


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A copy of the test export with a cost table of both variants."""
    dest = tmp_path_factory.mktemp("profiled") / "export"
    shutil.copytree(EXPORT, dest)
    profile_lib.profile(dest, threads=1, warmup=1, repeats=REPEATS)
    return dest


@pytest.fixture()
def copy(profiled, tmp_path):
    """A private copy of the profiled export, safe to tamper with."""
    dest = tmp_path / "export"
    shutil.copytree(profiled, dest)
    return dest


def _edit_costs(folder, edit):
    path = folder / costs_lib.COSTS
    table = json.loads(path.read_text())
    edit(table)
    path.write_text(json.dumps(table))


def test_profile_writes_a_valid_table(profiled):
    manifest = scan_lite.load_manifest(profiled, verify=True)  # extra file tolerated
    assert costs_lib.COSTS not in manifest["files"]
    table = json.loads((profiled / costs_lib.COSTS).read_text())
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((TFLITE / "costs.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(table)
    assert table["num_exits"] == manifest["model"]["num_exits"] == 3
    assert set(table["variants"]) == {"int8", "float32"}
    for variant, entry in table["variants"].items():
        spec = manifest["variants"][variant]
        assert entry["threads"] == 1 and entry["repeats"] == REPEATS
        assert entry["warmup"] == 1 and entry["images"] == "random"
        assert entry["device"]["platform"] and entry["device"]["processor"]
        assert [s["name"] for s in entry["stages"]] == ["stage_0", "stage_1", "stage_2"]
        assert {s["file"] for s in entry["stages"]} == {spec["cascade"]["file"]}
        assert [e["file"] for e in entry["exits"]] == [
            "exit_0." + variant + ".tflite",
            "exit_1." + variant + ".tflite",
        ]
        assert entry["full"]["file"] == f"full.{variant}.tflite"
        for timed in [*entry["stages"], *entry["exits"], entry["full"]]:
            assert timed["sha256"] == manifest["files"][timed["file"]]["sha256"]
            assert timed["runs"] == REPEATS
            values = [timed[k] for k in ("p10_ms", "median_ms", "mean_ms", "p90_ms")]
            assert all(math.isfinite(v) and v > 0 for v in values)
            assert timed["p10_ms"] <= timed["median_ms"] <= timed["p90_ms"]
        medians = [s["median_ms"] for s in entry["stages"]]
        assert entry["cumulative_ms"] == pytest.approx(np.cumsum(medians).tolist())
        costs = scan_lite.load_costs(profiled, variant)
        assert costs.stage_ms == tuple(medians)
        assert costs.cumulative_ms == pytest.approx(entry["cumulative_ms"])
        assert costs.full_ms == entry["full"]["median_ms"]
        assert len(costs.standalone_ms) == 3 and costs.threads == 1
    # The default variant is the manifest's.
    assert scan_lite.load_costs(profiled).variant == manifest["default_variant"]


def test_schema_copy_in_package_is_the_contract():
    packaged = TFLITE / "scan_lite" / "costs.schema.json"
    contract = TFLITE / "costs.schema.json"
    assert packaged.read_bytes() == contract.read_bytes()
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json.loads(contract.read_text()))


def test_profile_one_variant_keeps_the_others_and_takes_images(copy):
    before = json.loads((copy / costs_lib.COSTS).read_text())
    images = np.load(TESTDATA / "images.npy")  # 28x28 grey: fitted to 32x32x3
    table = profile_lib.profile(copy, "int8", warmup=0, repeats=2, images=images)
    assert table["variants"]["float32"] == before["variants"]["float32"]
    assert table["variants"]["int8"]["repeats"] == 2
    assert table["variants"]["int8"]["images"] == f"{len(images)} images"
    assert json.loads((copy / costs_lib.COSTS).read_text()) == table


def test_profile_stage_files(copy):
    table = profile_lib.profile(copy, "float32", warmup=0, repeats=2, stage_files=True)
    entry = table["variants"]["float32"]
    assert entry["stage_source"] == "stage_files"
    assert [s["file"] for s in entry["stages"]] == [
        f"stage_{i}.float32.tflite" for i in range(3)
    ]
    scan_lite.load_costs(copy, "float32")


@pytest.mark.parametrize(
    "text, shown",
    [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")],
)
def test_refuses_non_numbers(copy, validator, text, shown):
    path = copy / costs_lib.COSTS
    table = json.loads(path.read_text())
    table["variants"]["int8"]["stages"][1]["median_ms"] = "@@"
    path.write_text(json.dumps(table).replace('"@@"', text))
    with pytest.raises(scan_lite.CostsError) as e:
        scan_lite.load_costs(copy, "int8")
    assert "variants/int8/stages/1/median_ms" in str(e.value)
    assert shown in str(e.value)


@pytest.mark.parametrize("value", [0, 0.0, -0.5])
@pytest.mark.parametrize("field", ["median_ms", "p10_ms"])
def test_refuses_zero_and_negative_latency(copy, validator, value, field):
    _edit_costs(copy, lambda t: t["variants"]["int8"]["full"].update({field: value}))
    with pytest.raises(scan_lite.CostsError) as e:
        scan_lite.load_costs(copy, "int8")
    assert f"variants/int8/full/{field}" in str(e.value)
    assert str(value) in str(e.value)


def test_refuses_wrong_stage_count(copy, validator):
    _edit_costs(copy, lambda t: t["variants"]["int8"]["stages"].pop())
    with pytest.raises(scan_lite.CostsError, match="variants/int8/stages"):
        scan_lite.load_costs(copy, "int8")


def test_refuses_wrong_num_exits(copy, validator):
    _edit_costs(copy, lambda t: t.update(num_exits=4))
    with pytest.raises(scan_lite.CostsError, match="num_exits=4"):
        scan_lite.load_costs(copy, "int8")


def test_refuses_missing_and_foreign_variant(copy, validator):
    _edit_costs(copy, lambda t: t["variants"].pop("float32"))
    with pytest.raises(scan_lite.CostsError, match="`variant`='float32'"):
        scan_lite.load_costs(copy, "float32")

    def add_dynamic(t):
        t["variants"]["dynamic"] = t["variants"]["int8"]

    _edit_costs(copy, add_dynamic)
    with pytest.raises(scan_lite.CostsError, match="no variant 'dynamic'"):
        scan_lite.load_costs(copy, "int8")


def test_refuses_wrong_cumulative(copy, validator):
    _edit_costs(copy, lambda t: t["variants"]["int8"]["cumulative_ms"].reverse())
    with pytest.raises(scan_lite.CostsError, match="cumulative_ms"):
        scan_lite.load_costs(copy, "int8")


def test_refuses_table_of_another_export(copy, validator):
    def other(t):
        t["variants"]["int8"]["exits"][0]["sha256"] = "0" * 64

    _edit_costs(copy, other)
    with pytest.raises(scan_lite.CostsError) as e:
        scan_lite.load_costs(copy, "int8")
    assert "variants/int8/exits/0/sha256" in str(e.value) and "0" * 64 in str(e.value)

    def swapped(t):  # a file of the export, but not the one of this model
        files = scan_lite.load_manifest(copy)["files"]
        t["variants"]["int8"]["exits"][0]["sha256"] = files["exit_0.int8.tflite"][
            "sha256"
        ]
        t["variants"]["int8"]["full"]["file"] = "exit_0.int8.tflite"

    _edit_costs(copy, swapped)
    with pytest.raises(scan_lite.CostsError, match="variants/int8/full/file"):
        scan_lite.load_costs(copy, "int8")


def test_refuses_a_changed_file_and_a_missing_table(copy, tmp_path):
    path = copy / "full.int8.tflite"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(scan_lite.ManifestError, match="SHA-256 mismatch"):
        scan_lite.load_costs(copy, "int8")
    # Re-listing the changed file in the manifest (a re-export) leaves the table stale.
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["full.int8.tflite"]["sha256"] = scan_lite.manifest.sha256(path)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(scan_lite.CostsError, match="variants/int8/full/sha256"):
        scan_lite.load_costs(copy, "int8", verify=False)

    bare = tmp_path / "bare"
    shutil.copytree(EXPORT, bare)
    with pytest.raises(scan_lite.CostsError, match="no cost table.*scan-lite profile"):
        scan_lite.load_costs(bare)


def test_nothing_written_on_failure(copy, monkeypatch):
    before = (copy / costs_lib.COSTS).read_bytes()
    # A measurement that cannot be a latency is refused before writing.
    real = profile_lib.stats

    def broken(samples):
        return dict(real(samples), median_ms=float("nan"))

    monkeypatch.setattr(profile_lib, "stats", broken)
    with pytest.raises(scan_lite.CostsError, match="median_ms"):
        profile_lib.profile(copy, "int8", warmup=0, repeats=1)
    assert (copy / costs_lib.COSTS).read_bytes() == before
    assert sorted(p.name for p in copy.iterdir() if p.name.startswith(".")) == []
    monkeypatch.setattr(profile_lib, "stats", real)
    # A tampered file is refused before anything is measured.
    (copy / costs_lib.COSTS).unlink()
    path = copy / "stage_1.int8.tflite"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(scan_lite.ManifestError, match="stage_1.int8.tflite"):
        profile_lib.profile(copy, "int8", warmup=0, repeats=1)
    assert not (copy / costs_lib.COSTS).exists()


def test_cli_profile(copy, capsys):
    (copy / costs_lib.COSTS).unlink()
    args = ["profile", str(copy), "--variant", "int8", "--repeats", "3"]
    assert cli.main([*args, "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    for text in ("variant int8", "stage_0", "stage_2", "exit_1", "full", "costs.json"):
        assert text in out
    assert set(scan_lite.load_costs(copy, "int8").table) >= {"stages", "full"}
    assert cli.main(["profile", str(copy), "--repeats", "2", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table["variants"]) == {"int8", "float32"}


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--repeats", "0"], "`--repeats` must be >= 1"),
        (["--warmup", "-1"], "`--warmup` must be >= 0"),
        (["--threads", "0"], "`--threads` must be >= 1"),
        (["--variant", "int4"], "variant='int4'"),
        (["--images", "x.png"], "--images 'x.png'"),
    ],
)
def test_cli_profile_bad_input(tmp_path, capsys, flags, named):
    dest = tmp_path / "export"
    shutil.copytree(EXPORT, dest)
    assert cli.main(["profile", str(dest), *flags]) == 2
    err = capsys.readouterr().err
    assert "scan-lite profile: error:" in err and named in err
    assert not (dest / costs_lib.COSTS).exists()


def test_cli_profile_tampered_export(tmp_path, capsys):
    dest = tmp_path / "export"
    shutil.copytree(EXPORT, dest)
    path = dest / "cascade.int8.tflite"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    assert cli.main(["profile", str(dest), "--repeats", "1"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert not (dest / costs_lib.COSTS).exists()


def test_exit_models_are_optional(copy, validator):
    """A device that runs only the cascade and the full model may leave them out."""
    _edit_costs(copy, lambda t: t["variants"]["int8"].pop("exits"))
    costs = scan_lite.load_costs(copy, "int8")
    assert costs.exit_ms == () and costs.standalone_ms is None
    assert len(costs.cumulative_ms) == 3
    _edit_costs(copy, lambda t: t["variants"]["int8"].update(exits=[]))
    with pytest.raises(scan_lite.CostsError, match="variants/int8/exits"):
        scan_lite.load_costs(copy, "int8")
