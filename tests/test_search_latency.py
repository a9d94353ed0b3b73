"""Threshold search priced in measured LiteRT latency (`--cost latency`).

The cost table comes from `scan-lite profile` on a real export of a tiny model;
the search, `evaluate --scalable` and the plot read it through
`keras_scan.latency` (which validates it with `scan_lite.load_costs`).
"""

import json
import pathlib
import re
import shutil
import sys

import keras
import numpy as np
import pytest
from helpers import tiny_backbone

import keras_scan
from keras_scan import cli, latency, plots, runs, thresholds

TFLITE = pathlib.Path(__file__).resolve().parents[1] / "tflite"
if str(TFLITE) not in sys.path:
    sys.path.insert(0, str(TFLITE))
import scan_lite  # noqa: E402
from scan_lite import profile as profile_lib  # noqa: E402

TESTDATA_EXPORT = TFLITE / "testdata" / "export"


# ---------------------------------------------------------------------------
# The search on cached probabilities: one cost vector, MACs or latency
# ---------------------------------------------------------------------------


def _probs(conf, correct, c=10):
    """Probabilities whose max is `conf`, at class 0 when correct, else class 1."""
    p = np.empty((len(conf), c))
    for i, (q, ok) in enumerate(zip(conf, correct)):
        p[i] = (1.0 - q) / (c - 1)
        p[i, 0 if ok else 1] = q
    return p


@pytest.fixture(scope="module")
def case():
    """100 images where MACs and latency prefer different operating points.

    Exit 0: images 0-39 right (confidence 0.9), 40-49 wrong (0.85), the rest
    unsure and wrong (0.2). Exit 1: 0-79 right (0.9), 80-89 wrong (0.85), the
    rest unsure and wrong. Final: all right.
    Allowed: 10 mistakes. (a) exit 0 takes 0-49, exit 1 50-79: shares
    .5/.3/.2; (b) exit 0 takes 0-39, exit 1 40-89: .4/.5/.1. With MACs
    10/30/40, (a) costs 22 and (b) 23; with latency 10/11/40 ms (exit 1 almost
    free after exit 0), (a) costs 16.3 ms and (b) 13.5 ms.
    """
    n = 100
    idx = np.arange(n)
    conf0 = np.where(idx < 40, 0.9, np.where(idx < 50, 0.85, 0.2))
    conf1 = np.where(idx < 80, 0.9, np.where(idx < 90, 0.85, 0.2))
    probs = [
        _probs(conf0, idx < 40),
        _probs(conf1, idx < 80),
        _probs(np.full(n, 0.95), np.ones(n, bool)),
    ]
    return {
        "probs": probs,
        "labels": np.zeros(n, np.int64),
        "macs": [10.0, 30.0, 40.0],
        "ms": [10.0, 11.0, 40.0],
        "full_ms": 35.0,
    }


def _search(case, **kwargs):
    kwargs.setdefault("max_accuracy_drop", 10)
    kwargs.setdefault("margin", 0.0)  # the cases are built at the target exactly
    return thresholds.search_thresholds_from_probs(
        case["probs"],
        case["labels"],
        case["macs"],
        38.0,
        population=24,
        generations=15,
        exit_latency_ms=case["ms"],
        full_latency_ms=case["full_ms"],
        **kwargs,
    )


def test_latency_cost_picks_the_cheaper_point_in_ms(case):
    by_macs = _search(case)
    by_ms = _search(case, cost="latency")
    m, t = by_macs.metrics, by_ms.metrics
    assert m["exit_shares"] == pytest.approx([0.5, 0.3, 0.2])
    assert t["exit_shares"] == pytest.approx([0.4, 0.5, 0.1])
    assert m["accuracy"] == t["accuracy"] == pytest.approx(0.9)
    # Both report both speedups; each is cheaper in its own unit.
    assert m["mean_macs"] == pytest.approx(22.0) and t["mean_macs"] == pytest.approx(23)
    assert t["mean_latency_ms"] == pytest.approx(13.5)
    assert m["mean_latency_ms"] == pytest.approx(16.3)
    assert t["latency_speedup"] == pytest.approx(35.0 / 13.5)
    assert t["speedup"] == pytest.approx(38.0 / 23.0)
    assert t["cost"] == "latency" and t["cost_unit"] == "ms"
    assert m["cost"] == "macs" and m["cost_unit"] == "MACs"
    assert t["exit_latency_ms"] == case["ms"] and t["full_latency_ms"] == 35.0
    # The curves are in the unit searched.
    assert (
        t["full_model"][1] == 35.0 and [c for _, c in t["single_exits"]] == case["ms"]
    )
    for _, _, cost in t["front"]:
        assert case["ms"][0] <= cost <= case["ms"][-1]
    g = t["global_threshold"]
    assert {"mean_macs", "speedup", "mean_latency_ms", "latency_speedup"} <= set(g)
    assert t["gain_vs_global"]["mean_latency_ms"] <= 0
    # Round trip through thresholds.json.
    again = thresholds.Thresholds.from_dict(json.loads(json.dumps(by_ms.to_dict())))
    assert again.metrics["latency_speedup"] == t["latency_speedup"]


def test_latency_budget(case):
    th = _search(case, cost="latency", max_accuracy_drop=None, budget_ms=12.0)
    assert th.metrics["mean_latency_ms"] <= 12.0
    assert th.metrics["target"]["budget_ms"] == 12.0
    assert th.metrics["target"]["budget_macs"] is None
    with pytest.raises(
        ValueError, match=r"exit_latency_ms\[0\]=10 ms, the minimum budget.*budget_ms=9"
    ):
        _search(case, cost="latency", max_accuracy_drop=None, budget_ms=9.0)


def test_macs_default_is_unchanged_without_latency(case):
    plain = thresholds.search_thresholds_from_probs(
        case["probs"],
        case["labels"],
        case["macs"],
        38.0,
        max_accuracy_drop=10,
        population=24,
        generations=15,
        margin=0.0,
    )
    with_latency = _search(case)
    assert plain.values == with_latency.values
    assert "mean_latency_ms" not in plain.metrics and plain.metrics["cost"] == "macs"
    for key in ("accuracy", "mean_macs", "speedup", "front", "exit_shares"):
        assert plain.metrics[key] == with_latency.metrics[key], key


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"cost": "latency", "exit_latency_ms": None, "full_latency_ms": None},
            "`cost='latency'` needs",
        ),
        ({"exit_latency_ms": None}, "`full_latency_ms` needs `exit_latency_ms`"),
        ({"cost": "time"}, "cost='time'"),
        ({"exit_latency_ms": [1.0, float("nan"), 3.0]}, "exit_latency_ms="),
        ({"exit_latency_ms": [-1.0, 2.0, 3.0]}, "positive"),
        ({"exit_latency_ms": [0.0, 2.0, 3.0]}, "positive"),
        ({"exit_latency_ms": [1.0, 2.0]}, "K+1=3"),
        ({"full_latency_ms": 0.0}, "full_latency_ms=0.0"),
        (
            {"budget_macs": 30.0, "cost": "latency", "max_accuracy_drop": None},
            "give `budget_ms`",
        ),
        ({"budget_ms": 30.0, "max_accuracy_drop": None}, "cost='latency'"),
    ],
)
def test_bad_latency_input(case, kwargs, message):
    args = {
        "exit_latency_ms": case["ms"],
        "full_latency_ms": case["full_ms"],
        "max_accuracy_drop": 10,
        **kwargs,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        thresholds.search_thresholds_from_probs(
            case["probs"],
            case["labels"],
            case["macs"],
            38.0,
            generations=1,
            population=4,
            **args,
        )


def test_plot_in_latency(case, tmp_path):
    th = _search(case, cost="latency")
    path = plots.plot_tradeoff(th, tmp_path / "t.png")
    assert pathlib.Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_expected_speedup():
    costs = {"exit_latency_ms": [1.0, 2.0, 4.0], "full_latency_ms": 3.0}
    got = latency.expected_speedup([0.5, 0.25, 0.25], costs)
    assert got["mean_latency_ms"] == pytest.approx(0.5 + 0.5 + 1.0)
    assert got["latency_speedup"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="one share per exit"):
        latency.expected_speedup([1.0], costs)


# ---------------------------------------------------------------------------
# keras_scan.latency on a profiled export (scan_lite's checks, plus the model)
# ---------------------------------------------------------------------------


def _exit_info(manifest):
    return [{"name": e["name"], "macs": e["macs"]} for e in manifest["exits"]]


def test_load_latency_checks_the_model(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(TESTDATA_EXPORT, export)
    with pytest.raises(ValueError, match="no cost table"):
        latency.load_latency(export)
    profile_lib.profile(export, "int8", warmup=0, repeats=3)
    manifest = scan_lite.load_manifest(export)
    costs = latency.load_latency(export, "int8", _exit_info(manifest))
    stages = [s["median_ms"] for s in costs_table(export)["stages"]]
    assert costs["exit_latency_ms"] == pytest.approx(np.cumsum(stages).tolist())
    assert costs["variant"] == "int8" and costs["threads"] == 1
    with pytest.raises(ValueError, match="has 3 stages .* model has 4 exits"):
        latency.load_latency(export, "int8", [*_exit_info(manifest), {"macs": 1}])
    info = _exit_info(manifest)
    info[1]["macs"] += 1
    with pytest.raises(ValueError, match="export of another model"):
        latency.load_latency(export, "int8", info)
    with pytest.raises(ValueError, match="`variant`='float32'"):
        latency.load_latency(export, "float32")


def costs_table(export, variant="int8"):
    return json.loads((export / "costs.json").read_text())["variants"][variant]


# ---------------------------------------------------------------------------
# `keras-scan search --cost latency` and `evaluate --scalable --export`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A RUN of a tiny (untrained) 3-exit model, its int8 export and cost table."""
    keras.utils.set_random_seed(2)
    model = keras_scan.build(tiny_backbone(), num_classes=10, exits=2)
    root = tmp_path_factory.mktemp("latency")
    run = root / "run"
    run.mkdir()
    model.save(run / runs.MODEL)
    runs.write_json(
        run / runs.CONFIG,
        {
            "dataset": "fashion_mnist",
            "image_size": 32,
            "channels": 3,
            "val_fraction": 0.1,
            "seed": 0,
            "limit": 600,
        },
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 32, 32, 3)).astype("float32")
    export = root / "export"
    keras_scan.export(
        model,
        export,
        thresholds=[0.9, 0.9],
        quantize="int8",
        representative_data=x,
        calibration_samples=32,
    )
    profiled = root / "profiled"
    shutil.copytree(export, profiled)
    profile_lib.profile(profiled, warmup=1, repeats=5)
    return {"run": run, "export": export, "profiled": profiled, "model": model}


def _cli_search(run, *flags):
    return cli.main(
        ["search", str(run), "--population", "8", "--generations", "2", *flags]
    )


@pytest.mark.slow
def test_search_cost_latency_end_to_end(tiny, capsys):
    run = tiny["run"]
    flags = ["--cost", "latency", "--export", str(tiny["profiled"])]
    assert _cli_search(run, *flags, "--max-accuracy-drop", "100") == 0
    out = capsys.readouterr().out
    th = thresholds.Thresholds.load(run / runs.THRESHOLDS)
    m = th.metrics
    costs = scan_lite.load_costs(tiny["profiled"], "int8")
    assert m["cost"] == "latency"
    assert m["exit_latency_ms"] == pytest.approx(list(costs.cumulative_ms))
    assert m["full_latency_ms"] == pytest.approx(costs.full_ms)
    shares = np.asarray(m["exit_shares"])
    assert m["mean_latency_ms"] == pytest.approx(shares @ costs.cumulative_ms)
    assert m["latency_speedup"] == pytest.approx(costs.full_ms / m["mean_latency_ms"])
    # Any accuracy allowed: the cheapest point in ms answers everything at exit 0.
    assert m["exit_shares"][0] == 1.0
    assert m["latency_source"]["variant"] == "int8"
    assert [c for _, c in m["single_exits_standalone"]] == pytest.approx(
        list(costs.standalone_ms)
    )
    assert "MAC" in out and "speedup" in out
    assert f"latency speedup {m['latency_speedup']:.2f}x" in out
    assert (run / runs.TRADEOFF).read_bytes()[:4] == b"\x89PNG"

    # --cost macs with --export: the MAC search, both speedups reported.
    assert _cli_search(run, "--export", str(tiny["profiled"])) == 0
    out = capsys.readouterr().out
    m = thresholds.Thresholds.load(run / runs.THRESHOLDS).metrics
    assert m["cost"] == "macs" and "latency_speedup" in m and "latency speedup" in out

    # evaluate --scalable --export: the expected LiteRT speedup at the shares.
    argv = ["evaluate", str(run), "--scalable", "--export", str(tiny["profiled"])]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    s = json.loads((run / runs.EVAL).read_text())["scalable"]
    expected = costs.full_ms / (np.asarray(s["exit_shares"]) @ costs.cumulative_ms)
    assert s["latency_speedup"] == pytest.approx(expected)
    assert "MAC speedup" in out and "wall-clock speedup" in out
    # The engine runs at the inference batch (256), not the run's training batch.
    assert s["batch_size"] == 256 and f"{s['backend']}, batch 256)" in out
    assert f"LiteRT latency speedup {s['latency_speedup']:.2f}x" in out


@pytest.mark.slow
def test_search_cost_latency_refusals(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny["run"], run)
    for name in (runs.THRESHOLDS, runs.TRADEOFF, runs.EVAL):
        (run / name).unlink(missing_ok=True)

    def refused(*flags, named):
        assert _cli_search(run, *flags) == 2
        err = capsys.readouterr().err
        assert "keras-scan search: error:" in err
        for text in named:
            assert text in err, (text, err)
        assert not (run / runs.THRESHOLDS).exists()
        assert not (run / runs.TRADEOFF).exists()
        return err

    refused("--cost", "latency", named=["`--cost latency` needs `--export EXPORT`"])
    # An export without a cost table.
    refused(
        "--cost",
        "latency",
        "--export",
        str(tiny["export"]),
        named=["`--cost latency --export`", "no cost table", "scan-lite profile"],
    )
    # A variant the table does not hold.
    refused(
        "--cost",
        "latency",
        "--export",
        str(tiny["profiled"]),
        "--variant",
        "float32",
        named=["`variant`='float32'"],
    )
    # A table of another model: 3 exits, other MACs (another architecture; a
    # model of the same architecture has the same latencies, and is accepted).
    other = tmp_path / "other"
    shutil.copytree(TESTDATA_EXPORT, other)
    manifest = json.loads((other / "manifest.json").read_text())
    for entry in manifest["exits"]:
        entry["macs"] += 1000
    (other / "manifest.json").write_text(json.dumps(manifest))
    profile_lib.profile(other, "int8", warmup=0, repeats=2)
    refused(
        "--cost", "latency", "--export", str(other), named=["export of another model"]
    )
    # NaN, zero and negative latencies; a stale SHA-256.
    for field, value, shown in (
        ("median_ms", "NaN", "NaN is not a number"),
        ("median_ms", "0", "median_ms"),
        ("p90_ms", "-2.5", "-2.5"),
        ("sha256", '"' + "1" * 64 + '"', "1" * 64),
    ):
        bad = tmp_path / f"bad_{field}_{value[:3]}"
        shutil.copytree(tiny["profiled"], bad)
        path = bad / "costs.json"
        table = json.loads(path.read_text())
        table["variants"]["int8"]["stages"][1][field] = "@@"
        path.write_text(json.dumps(table).replace('"@@"', value))
        err = refused("--cost", "latency", "--export", str(bad), named=[shown])
        assert "variants/int8/stages/1" in err
    # Budgets in the other unit.
    refused("--budget-ms", "1", named=["`--budget-ms`", "--cost macs"])
    refused(
        "--cost",
        "latency",
        "--export",
        str(tiny["profiled"]),
        "--budget-macs",
        "1e6",
        named=["`--budget-macs`", "--budget-ms"],
    )
    refused("--variant", "int8", named=["`--variant`", "without --export"])


@pytest.mark.slow
def test_evaluate_export_refusals(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny["run"], run)
    (run / runs.EVAL).unlink(missing_ok=True)
    argv = ["evaluate", str(run), "--export", str(tiny["profiled"])]
    assert cli.main(argv) == 2
    assert "use it with `--scalable`" in capsys.readouterr().err
    thresholds.Thresholds([0.9, 0.9]).save(run / runs.THRESHOLDS)
    argv = ["evaluate", str(run), "--scalable", "--export", str(tiny["export"])]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "`--export` cannot use" in err and "no cost table" in err
    assert not (run / runs.EVAL).exists()
