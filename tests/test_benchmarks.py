"""benchmarks/run.py: the smoke profile end to end, and what its results.json holds.

The smoke profile trains tiny models (numbers are meaningless), so these tests
check the structure and the relations that must hold whatever the accuracy:
costs that add up, speedups bounded by the ceiling, Keras early exit agreeing
with the simulated cascade, file sizes, positive timings, a rerun that
recomputes a section from the saved model and finds the same thresholds.

The smoke profile runs in a child process that starts with this module (when a
selected test needs it); the tests defined before the smoke tests
(distillation, exit latency) run in this process meanwhile. Compiling models
and converting them to LiteRT, most of both, keeps one core busy each.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, profiles  # noqa: E402

SECTIONS = ("accuracy", "scalable", "litert", "training_cost", "seeds")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    return env


def _run(*args, timeout=1800):
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc, time.perf_counter() - start


class _Background:
    """benchmarks/run.py started in a child process; its output goes to files."""

    def __init__(self, args, logs):
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = logs / "stdout.txt", logs / "stderr.txt"
        self.start = time.perf_counter()
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUN), *args],
                cwd=ROOT,
                env=_env(),
                stdout=out,
                stderr=err,
                start_new_session=True,  # stop() ends its own children too
            )

    def wait(self, timeout=1800):
        """Seconds from the start to the end of the run, which must succeed."""
        left = timeout - (time.perf_counter() - self.start)
        try:
            self.proc.wait(timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        seconds = time.perf_counter() - self.start
        out, err = self.stdout.read_text(), self.stderr.read_text()
        assert self.proc.returncode == 0, out[-3000:] + err[-5000:]
        return seconds

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module", autouse=True)
def smoke_started(request, tmp_path_factory):
    """Starts the smoke profile as the module starts, if a selected test needs it."""
    needed = any(
        getattr(item, "module", None) is request.module
        and "smoke" in getattr(item, "fixturenames", ())
        for item in request.session.items
    )
    if not needed:
        yield None
        return
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "smoke"
    run = _Background(("--profile", "smoke", "--out", str(out), "--quiet"), folder)
    try:
        yield out, run
    finally:
        run.stop()  # still running: a test failed or the session was interrupted


@pytest.fixture(scope="module")
def smoke(smoke_started):
    out, run = smoke_started
    print(f"smoke profile: {run.wait():.0f} s from the module's start")
    return out, json.loads((out / "results.json").read_text())


def _close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1.0)


@pytest.mark.slow
def test_distillation_ablations_smoke(tmp_path, capsys):
    """benchmarks/distillation.py: rows trained alike, a report, reuse on rerun.

    Two rows: the plain backbone (one exit) and a distilled SCAN row; deep
    supervision (`ds`) would take the same code path as the latter, so its
    settings are checked without training it.
    """
    from benchmarks import distillation

    out = tmp_path / "distillation"
    names = ["plain", "kl_a0.3_ramp"]
    results = distillation.main(
        ["--budget", "smoke", "--variants", ",".join(names), "--out", str(out)]
    )
    rows = results["variants"]
    assert list(rows) == names
    assert len(rows["plain"]["exits"]) == 1 and len(rows["kl_a0.3_ramp"]["exits"]) == 4
    for r in rows.values():
        assert all(0.0 <= a <= 1.0 for a in r["exits"])
        assert r["command"].startswith("keras-scan train")
    # The pinned base recipe: the ds row keeps the paper's loss settings
    # whatever the package defaults are.
    ds = distillation.variant_config("smoke", "ds")
    assert ds["distillation"] is False and ds["head"] == "scan"
    assert "--no-distill" in distillation.cli_command(ds)
    assert rows["kl_a0.3_ramp"]["config"]["distill_warmup"] == 0.5
    # The loss rows keep the paper's exits whatever the package's default exits.
    assert rows["kl_a0.3_ramp"]["config"]["head"] == "scan"
    assert "--head scan --attention scan" in rows["kl_a0.3_ramp"]["command"]
    report = (out / "REPORT.md").read_text()
    assert "| kl_a0.3_ramp |" in report and "| plain |" in report
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["variants"]) == names

    capsys.readouterr()
    distillation.main(["--budget", "smoke", "--variants", "plain", "--out", str(out)])
    assert "plain: reused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        distillation.main(["--budget", "smoke", "--variants", "nope"])


def test_distillation_rows_keep_the_settings_they_were_measured_with():
    """A row that does not set adaptive clipping or the teacher was measured
    before either became the default: it pins the old value, so a change of
    the defaults neither relabels it nor makes a rerun think it changed."""
    from benchmarks import distillation

    old = distillation.variant_config("cpu", "no_augment")
    assert old["adaptive_clip"] is None and old["teacher"] == "final"
    agc = distillation.variant_config("cpu", "agc")
    assert agc["adaptive_clip"] == 1.0 and agc["teacher"] == "final"
    assert "--teacher final" in distillation.cli_command(agc)
    ens = distillation.variant_config("cpu", "ens")
    assert (ens["adaptive_clip"], ens["teacher"]) == (1.0, "ensemble")
    assert ens == training_defaults(distillation, "cpu")


def training_defaults(distillation, budget):
    """Today's defaults at the budget's size (what the `ens` row spells out)."""
    from keras_scan import training

    b = distillation.BUDGETS[budget]
    return training.resolve_config(
        dict(
            width=b["width"],
            limit=b["limit"],
            epochs=b["epochs"],
            backbone="cifar_resnet18",
            dataset="fashion_mnist",
            image_size=32,
            batch_size=128,
            seed=0,
        )
    )


def test_distillation_seed_means_group_rows_that_differ_only_in_the_seed():
    from benchmarks import distillation

    def row(name, seed, exits):
        config = distillation.variant_config("smoke", name)
        return {"config": dict(config, seed=seed), "exits": exits}

    rows = {
        "plain": row("plain", 0, [0.80]),
        "plain_s1": row("plain", 1, [0.82]),
        "default": row("default", 0, [0.70, 0.80, 0.81, 0.82]),
        "ge": row("default", 0, [0.70, 0.80, 0.81, 0.82]),  # the same run
        "ge_s1": row("default", 1, [0.72, 0.82, 0.83, 0.84]),
        "ds_default": row("ds_default", 0, [0.7, 0.8, 0.8, 0.8]),  # one seed
    }
    # The plain backbone ignores exit settings: rows with other heads group.
    assert rows["plain"]["config"]["head"] == "scan"
    rows["plain_s1"]["config"].update(head="lite", attention="gate")
    lines = distillation.seed_means(rows)
    table = [line for line in lines if line.startswith("| ")][1:]
    assert table == [
        "| plain, plain_s1 | 0, 1 |  |  |  | 81.00 | 80.00..82.00 |  |",
        "| default, ge_s1 | 0, 1 | 71.00 | 81.00 | 82.00 | 83.00 | 82.00..84.00 "
        "| +2.00 |",
    ]
    assert distillation.seed_means({"plain": rows["plain"]}) == []
    # Each group against the plain backbone trained alike: rows without crop
    # + flip are compared with the plain rows without it, not with the first.
    rows.update(
        plain_no_augment=row("plain_no_augment", 0, [0.90]),
        plain_no_augment_s1=row("plain_no_augment", 1, [0.92]),
        no_augment=row("no_augment", 0, [0.8, 0.85, 0.9, 0.90]),
        no_augment_s1=row("no_augment", 1, [0.8, 0.85, 0.9, 0.91]),
    )
    table = [line for line in distillation.seed_means(rows) if line.startswith("| ")]
    assert table[-1].startswith("| no_augment, no_augment_s1 |")
    assert table[-1].endswith("| -0.50 |")  # 90.50 vs 91.00, not vs 81.00


@pytest.mark.slow
def test_exit_latency_smoke(tmp_path):
    """benchmarks/exit_latency.py: a row with ratios that hold; designs compared.

    One design is exported and timed (each export converts nine int8 files,
    the bulk of the time); the other design's row figures that come from the
    graph (taps, MACs) are computed as the script computes them, unexported.
    """
    from benchmarks import exit_latency

    out = tmp_path / "exit-latency"
    backbone = "cifar_resnet18_w8@32"
    argv = ["--backbones", backbone, "--designs", "paper", "--floor"]
    argv += ["--images", "5", "--warmup", "1", "--out", str(out)]
    assert exit_latency.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    # The floor: the backbone alone cut at the same taps, each prefix cheaper
    # in MACs than the whole backbone and timed.
    floor = results["floors"][backbone]
    assert len(floor["taps"]) == len(floor["prefix_ms"]) == 3
    assert floor["prefix_macs"] == sorted(floor["prefix_macs"])
    assert 0 < floor["prefix_macs"][-1] < floor["full_macs"]
    assert floor["full_ms"] > 0 and all(t > 0 for t in floor["prefix_ms"])
    rows = results["rows"]
    assert sorted(rows) == [f"{backbone}/paper"]
    paper = rows[f"{backbone}/paper"]
    default = exit_latency.describe(
        exit_latency.build(backbone, "default"), backbone, "default"
    )
    assert set(default) < set(paper)  # the same figures, less the timings
    k = len(paper["exits"])
    assert k == 3 and len(paper["stage_ms"]) == len(paper["up_to_exit_ms"]) == k + 1
    assert paper["full_ms"] > 0 and all(t > 0 for t in paper["stage_ms"])
    # Cumulative: each exit costs at least the one before, in time and MACs.
    assert paper["up_to_exit_ms"] == sorted(paper["up_to_exit_ms"])
    for row in (paper, default):
        assert len(row["exits"]) == len(row["head_macs"]) == k
        assert row["up_to_exit_macs"] == sorted(row["up_to_exit_macs"])
        assert row["up_to_exit_macs"][-1] > row["full_macs"]  # heads on the way
    assert paper["full_macs"] == default["full_macs"]  # same backbone
    assert all(d < p for d, p in zip(default["head_macs"], paper["head_macs"]))
    report = (out / "REPORT.md").read_text()
    assert f"| {backbone} | paper |" in report
    assert "## Backbone floor" in report and floor["taps"] == paper["exits"]
    # `first_cut`: exit 0 moves to the end of the first block, the rest stay.
    first = exit_latency.describe(
        exit_latency.build(backbone, "linear_first_cut"), backbone, "linear_first_cut"
    )
    assert first["exits"] == ["stage1_block1_out", *default["exits"][1:]]
    assert first["up_to_exit_mac_ratio"][0] < default["up_to_exit_mac_ratio"][0]
    with pytest.raises(SystemExit):
        exit_latency.main(["--designs", "nope", "--out", str(out)])
    with pytest.raises(SystemExit):  # nothing to measure
        exit_latency.main(["--designs", "", "--out", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_engine_benchmark_sets_the_shares_and_splits_the_speedup(tmp_path, capsys):
    """benchmarks/engine.py: the cascade answers the asked shares; the wall
    speedup is split into the stages' ceiling and the engine's overhead."""
    from benchmarks import engine

    out = tmp_path / "engine"
    argv = ["--widths", "4", "--images", "256", "--batch-size", "64"]
    argv += ["--repeats", "2", "--shares", "0.5,0.25,0.125", "--out", str(out)]
    assert engine.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    (row,) = results["rows"]
    assert row["width"] == 4 and row["images"] == 256
    # Thresholds set from the confidences answer the asked shares (ties aside).
    assert row["exit_shares"][:3] == pytest.approx([0.5, 0.25, 0.125], abs=0.02)
    assert row["stage_rows"][0] == 256 and row["stage_rows"] == sorted(
        row["stage_rows"], reverse=True
    )
    assert row["mac_speedup"] > 1.0 and row["wall_speedup"] > 0
    assert row["wall_over_mac"] == pytest.approx(
        row["wall_speedup"] / row["mac_speedup"]
    )
    assert row["engine_overhead"] == pytest.approx(
        row["engine_s"] / row["ceiling_s"] - 1.0
    )
    assert len(row["stage_time_fraction"]) == len(row["stage_mac_fraction"]) == 4
    assert sum(row["stage_mac_fraction"]) > 1.0  # the exits' heads on the way
    assert "| 4 |" in (out / "REPORT.md").read_text()
    for bad in (["--shares", "0.9,0.9,0.1"], ["--widths", "x"], ["--images", "0"]):
        with pytest.raises(SystemExit) as e:
            engine.main([*bad, "--out", str(tmp_path / "bad")])
        assert e.value.code == 2
    assert not (tmp_path / "bad").exists()
    assert "--shares" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_writes_every_section_report_and_plots(smoke):
    out, r = smoke
    assert r["profile"] == "smoke"
    assert r["commands"][0].endswith(f"--profile smoke --out {out} --quiet")
    assert set(r["sections"]) == set(SECTIONS)
    assert all("skipped" not in r["sections"][s] for s in SECTIONS)
    assert set(r["section_seconds"]) == set(SECTIONS)
    assert all(v > 0 for v in r["section_seconds"].values())
    assert r["duration_s"] >= sum(r["section_seconds"].values())
    env = r["environment"]
    assert env["backend"] == "tensorflow" and env["cpu_count"] >= 1
    assert env["versions"]["keras"] and env["versions"]["tensorflow"]
    assert r["seeds"]["data_split_and_weights"] == r["settings"]["seed"] == 0
    assert r["settings"]["width"] == 8 and r["settings"]["epochs"] == 1
    assert r["data"]["sizes"] == {"train": 360, "val": 40, "test": 200}
    report = (out / "REPORT.md").read_text()
    for title in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## Run time"):
        assert title in report
    for plot in ("tradeoff.png", "latency.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h = r["headline"]
    assert (
        h["scan_final_accuracy"]
        == r["sections"]["accuracy"]["summary"]["scan_final_accuracy"]
    )
    assert h["ceiling_speedup"] == r["sections"]["scalable"]["ceiling_speedup"]


@pytest.mark.slow
def test_smoke_accuracy_section(smoke):
    _, r = smoke
    sec = r["sections"]["accuracy"]
    variants = sec["variants"]
    assert list(variants) == r["settings"]["variants"]
    scan, plain = variants["scan"], variants["plain"]
    assert [e["name"] for e in scan["exits"]] == ["exit_0", "exit_1", "exit_2", "final"]
    assert [e["name"] for e in plain["exits"]] == ["final"]
    for v in variants.values():
        assert all(0 <= e["accuracy"] <= 1 for e in v["exits"])
        assert v["num_test"] == 200 and len(v["epoch_seconds"]) == 1
        assert v["command"].startswith("keras-scan train --width 8 --limit 400")
    # Answering later costs more; the final exit alone costs what the plain
    # backbone costs (same graph), less than the whole multi-exit model.
    macs = [e["macs"] for e in scan["exits"]]
    assert macs == sorted(macs) and len(set(macs)) == len(macs)
    assert scan["final_macs"] == plain["final_macs"] < macs[-1]
    assert 0 <= scan["ensemble"]["accuracy"] <= 1 and plain["ensemble"] is None
    assert "--no-exits" in plain["command"]


@pytest.mark.slow
def test_smoke_scalable_section_is_consistent(smoke):
    _, r = smoke
    sec = r["sections"]["scalable"]
    exit_macs = sec["exit_macs"]
    assert sec["plain_backbone_macs"] == sec["plain_variant_macs"]
    assert _close(sec["ceiling_speedup"], sec["plain_backbone_macs"] / exit_macs[0])
    assert set(sec["points"]) == {"no_loss", "drop_0.5pt"}
    for label, p in sec["points"].items():
        t = p["test"]
        assert len(p["thresholds"]) == 3
        assert all(0 <= v <= 1 for v in p["thresholds"])
        assert _close(sum(t["exit_shares"]), 1.0)
        mean = sum(s * m for s, m in zip(t["exit_shares"], exit_macs))
        assert _close(t["mean_macs"], mean)
        assert _close(t["speedup"], sec["plain_backbone_macs"] / mean)
        assert t["speedup"] <= sec["ceiling_speedup"] + 1e-9
        assert p["source"] in ("ga", "global_threshold")
        assert {"ga", "global"} <= set(p["val"])
        # Real early exit in Keras answers like the simulated cascade.
        k = sec["keras"][label]
        assert _close(k["mac_speedup"], t["speedup"])
        assert abs(k["accuracy"] - t["accuracy"]) <= 2 / sec["num_test"]
        assert k["full_accuracy"] == pytest.approx(sec["scan_final_test_accuracy"])
        assert k["wall_time_s"] > 0 and k["full_wall_time_s"] > 0
        assert _close(k["wall_over_mac_speedup"], k["wall_speedup"] / k["mac_speedup"])


@pytest.mark.slow
def test_smoke_litert_section(smoke):
    _, r = smoke
    sec = r["sections"]["litert"]
    assert sec["modes"] == ["int8"] and sec["thresholds_from"] == "drop_0.5pt"
    v = sec["variants"]["int8"]
    sizes = v["files_bytes"]
    names = ["exit_0", "exit_1", "exit_2", "full"] + [f"stage_{i}" for i in range(4)]
    assert all(sizes[n] > 0 for n in names + ["cascade"])
    assert sizes["cascade"] > max(sizes[f"stage_{i}"] for i in range(4))
    assert [e["name"] for e in v["exit_accuracy"]] == [
        "exit_0",
        "exit_1",
        "exit_2",
        "final",
    ]
    for e in v["exit_accuracy"]:
        assert 0 <= e["accuracy"] <= 1
        assert _close(e["drop_pt"], 100 * (e["keras_accuracy"] - e["accuracy"]))
    ms = v["latency_ms"]
    assert ms["cascade_mean"] > 0 and ms["full_mean"] > 0
    assert len(ms["exit_models_mean"]) == 4 and all(
        t > 0 for t in ms["exit_models_mean"]
    )
    assert v["stage_runs"][0] == v["bench_images"] == 50
    assert _close(v["speedup_vs_full"], ms["full_mean"] / ms["cascade_mean"])
    assert _close(
        v["measured_over_mac_speedup"], v["speedup_vs_full"] / v["mac_speedup"]
    )
    assert v["mac_speedup"] <= r["sections"]["scalable"]["ceiling_speedup"] + 1e-9


@pytest.mark.slow
def test_smoke_training_cost_and_seed_methods(smoke):
    _, r = smoke
    tc = r["sections"]["training_cost"]
    assert tc["median_step_s"]["plain"] > 0 and tc["median_step_s"]["scan"] > 0
    assert _close(
        tc["ratio_scan_over_plain"],
        tc["median_step_s"]["scan"] / tc["median_step_s"]["plain"],
    )
    assert tc["params"]["scan"] > tc["params"]["plain"]
    assert len(tc["rounds"]) == 2
    for kind in ("plain", "scan"):
        m = tc["memory"][kind]
        assert m["method"] in ("VmHWM after clear_refs", "ru_maxrss")
        assert m["peak_rss_mib"] >= m["rss_before_model_mib"] > 0
    seeds = r["sections"]["seeds"]
    c = seeds["compress"]
    assert c["macs_ratio"] <= c["budget"]["fraction"] + 1e-9
    assert c["teacher_variant"] == "plain"
    # The teacher is section 1's model, unchanged by section 5's timed steps.
    plain_accuracy = r["sections"]["accuracy"]["variants"]["plain"]["final_accuracy"]
    teacher_accuracy = c["teacher"]["accuracy"]["test"]["final"]
    assert abs(teacher_accuracy - plain_accuracy) <= 2 / r["data"]["sizes"]["test"]
    for who in ("teacher", "student"):
        assert 0 <= c[who]["accuracy"]["test"]["final"] <= 1
    assert 0 <= c["scratch"]["accuracy"]["test"]["final"] <= 1
    assert c["student"]["macs"] < c["teacher"]["macs"]
    g = seeds["grow"]
    assert 1 <= g["depth"] <= g["num_blocks"] == 8
    assert g["chosen"]["params"] <= g["full"]["params"]
    assert [s["depth"] for s in g["steps"]] == [1, 5]
    assert 0 <= g["test_accuracy"] <= 1


@pytest.mark.slow
def test_resume_recomputes_a_section_from_the_saved_model(smoke):
    out, r = smoke
    results = json.loads((out / "results.json").read_text())
    del results["sections"]["scalable"]
    (out / "results.json").write_text(json.dumps(results))
    proc, _ = _run(
        "--profile",
        "smoke",
        "--out",
        str(out),
        "--resume",
        "--sections",
        "accuracy,scalable",
    )
    assert "accuracy: reused" in proc.stdout
    again = json.loads((out / "results.json").read_text())
    before, after = r["sections"]["scalable"], again["sections"]["scalable"]
    # Same cached probabilities, same seed: the same thresholds and test figures.
    for label in before["points"]:
        assert (
            after["points"][label]["thresholds"]
            == before["points"][label]["thresholds"]
        )
        assert after["points"][label]["test"] == before["points"][label]["test"]
    assert again["sections"]["accuracy"] == r["sections"]["accuracy"]
    assert len(again["commands"]) == 2


def test_profile_overrides_are_parsed_checked_and_recorded():
    s = profiles.resolve(
        "cpu",
        ["epochs=2", "variants=scan,plain", "compress.enabled=false", "width=8"],
    )
    assert s["epochs"] == 2 and s["width"] == 8
    assert s["variants"] == ["scan", "plain"]
    assert s["compress"]["enabled"] is False
    assert s["overrides"] == {
        "epochs": 2,
        "variants": ["scan", "plain"],
        "compress.enabled": False,
        "width": 8,
    }
    assert profiles.resolve("cpu")["epochs"] != 2  # the profile itself is untouched
    with pytest.raises(ValueError, match="Unknown setting 'epoch'"):
        profiles.resolve("cpu", ["epoch=2"])
    with pytest.raises(ValueError, match="key=value"):
        profiles.resolve("cpu", ["epochs"])
    with pytest.raises(ValueError, match="`variants` must include 'scan'"):
        profiles.resolve("cpu", ["variants=plain"])
    with pytest.raises(ValueError, match="compress.teacher"):
        profiles.resolve("cpu", ["variants=scan", "compress.teacher=plain"])
    with pytest.raises(ValueError, match="profile"):
        profiles.resolve("tpu")


def test_variant_configs_use_the_training_recipe():
    s = profiles.resolve("cpu")
    scan = accuracy.variant_config(s, "scan")
    assert scan["width"] == 16 and scan["limit"] == 20000 and scan["epochs"] == 3
    assert scan["schedule"] == "cosine" and scan["lr"] == 0.1
    assert scan["distill_warmup"] == 0.5 and scan["bn_recalibration"] > 0
    assert accuracy.variant_config(s, "plain")["no_exits"] is True
    assert accuracy.variant_config(s, "no_feature_loss")["beta"] == 0.0
    cmd = accuracy.cli_command(accuracy.variant_config(s, "no_distillation"), "nd")
    assert cmd == (
        "keras-scan train --width 16 --limit 20000 --epochs 3 --no-distill --out runs/nd"
    )
    # A head override reaches the command (the smoke profile trains no such
    # variant: it would take the same code path as the others).
    linear = accuracy.variant_config(s, "linear_head")
    assert linear["head"] == "linear"
    assert "--head linear" in accuracy.cli_command(linear, "linear_head")
    gpu = accuracy.variant_config(profiles.resolve("gpu"), "scan")
    assert (gpu["width"], gpu["limit"], gpu["epochs"]) == (64, None, 24)


def test_msdnet_allocation_answers_geometric_shares():
    """The MSDNet-style baseline of benchmarks/thresholds.py: exit k answers
    a share q^k of the images (normalised), the most confident first."""
    import numpy as np

    from benchmarks import thresholds as bench

    rng = np.random.default_rng(0)
    n, c = 1000, 10
    probs = []
    for _ in range(3):
        p = rng.dirichlet(np.full(c, 0.3), size=n)
        probs.append(p)
    labels = rng.integers(0, c, n)
    from keras_scan import thresholds

    for q in (0.5, 1.0, 2.0):
        values = bench.geometric_thresholds(probs, labels, q)
        r = thresholds.evaluate_thresholds(probs, labels, values, [1, 2, 3])
        want = q ** np.arange(3) / np.sum(q ** np.arange(3))
        np.testing.assert_allclose(r["exit_shares"], want, atol=2 / n)
    # A final exit nothing matches: no q meets "no loss", never exit early.
    perfect = np.eye(c)[labels]
    assert bench.choose_geometric([probs[0], perfect], labels, [1, 2], 2) == [1.0]


def test_clip_engagement_counts_the_steps_each_kernel_is_clipped():
    """The counting optimizer: an outsized gradient is counted every step with
    its shortfall, a small one and a vector never; the update is the clip's."""
    import keras
    import numpy as np

    from benchmarks import clip_engagement
    from keras_scan import training
    from keras_scan.training import schedule

    optimizers = []
    with clip_engagement.counting_clip(optimizers):
        optimizer = schedule.make_optimizer(
            training.resolve_config(
                {
                    "schedule": "constant",
                    "warmup": 0.0,
                    "momentum": 0.0,
                    "weight_decay": 0.0,
                    "adaptive_clip": 0.5,
                }
            ),
            steps_per_epoch=10,
        )
    assert schedule.ScaledSGD is not type(optimizer)  # restored after the block
    big = keras.Variable(np.ones((2, 2)), name="big")  # |w| = 2: limit 1
    small = keras.Variable(np.ones((2, 2)), name="small")
    bias = keras.Variable(np.zeros(2), name="bias")
    grads = [np.full((2, 2), 2.0), np.full((2, 2), 0.1), np.full(2, 50.0)]
    optimizer.build([big, small, bias])
    for _ in range(3):
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads])
    steps, kernels, rows = clip_engagement.counts(optimizers[0])
    assert (steps, kernels) == (3, 2)
    (row,) = rows  # |g| = 4 against a limit of 0.5 * |w| (2 at step 1)
    assert row["kernel"] == big.path and row["steps"] == 3
    assert (row["first_step"], row["last_step"]) == (1, 3)
    assert 0.7 < row["mean_shortfall"] < 0.8  # 1 - 1/4 at step 1, |w| shrinks


@pytest.mark.slow
def test_clip_engagement_smoke_and_bad_flags(tmp_path, capsys):
    """benchmarks/clip_engagement.py on a tiny run: counts within the run's
    steps, every exit reported; refusals before any training."""
    from benchmarks import clip_engagement

    for argv, said in (
        (["--adaptive-clip", "0"], "adaptive clipping is off"),
        (["--out", "x"], "--out is not allowed"),
    ):
        with pytest.raises(SystemExit, match=said):
            clip_engagement.main(["--name", "x", "--out", str(tmp_path), "--", *argv])
    for argv, said in (
        (["--name", " ", "--", "--epochs", "1"], "--name must not be empty"),
        (["--name", "x"], "flags after `--`"),
    ):
        with pytest.raises(SystemExit) as e:
            clip_engagement.main([*argv[:2], "--out", str(tmp_path), *argv[2:]])
        assert e.value.code == 2 and said in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    tiny = "--width 8 --limit 200 --epochs 1 --batch-size 32 --image-size 32"
    clip_engagement.main(
        ["--name", "tiny", "--out", str(tmp_path), "--", *tiny.split()]
    )
    run = json.loads((tmp_path / "results.json").read_text())["runs"]["tiny"]
    assert run["steps"] == 6 and run["kernels"] == 45  # 180 images / 32
    assert list(run["exits"]) == ["exit_0", "exit_1", "exit_2", "final"]
    for row in run["clipped"]:
        assert 1 <= row["first_step"] <= row["last_step"] <= run["steps"]
        assert 1 <= row["steps"] <= row["last_step"] - row["first_step"] + 1
        assert 0 < row["mean_shortfall"] < 1
    report = (tmp_path / "REPORT.md").read_text()
    assert "in 6 steps; exits" in report and "`keras-scan train --width 8" in report


def test_first_try_refuses_unknown_names_and_reports_every_exit(tmp_path, capsys):
    """benchmarks/first_try.py: flags checked before any training; the table."""
    from benchmarks import first_try

    for argv, name in (
        (["--cases", "resnet5"], "--cases: unknown ['resnet5']"),
        (["--variants", "plain,fast"], "--variants: unknown ['fast']"),
    ):
        with pytest.raises(SystemExit) as e:
            first_try.main([*argv, "--out", str(tmp_path / "out")])
        assert e.value.code == 2 and name in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    row = {"exits": {"exit_0": 0.535, "final": 0.3757}, "command": "keras-scan train"}
    results = {
        "runs": {"c/default": dict(row, case="c", variant="default")},
        "environment": {"cpu": "x86", "cpu_count": 2},
    }
    results["runs"]["c/old"] = dict(row, case="c", variant="old", note="then")
    table = first_try.report(results)
    assert "| c | default | 53.50 / 37.57 | 37.57 | `keras-scan train` |" in table
    assert "| c | old | 53.50 / 37.57 | 37.57 | `keras-scan train` (then) |" in table
    failed = {"exits": {}, "command": "keras-scan train", "error": "NaN"}
    results["runs"]["c/nan"] = dict(failed, case="c", variant="nan")
    table = first_try.report(results)
    assert "| c | nan | failed: NaN | failed | `keras-scan train` |" in table

    # A run that fails is a row with the CLI's own error, not a crash.
    def fail(argv, **kwargs):
        said = (
            "noise\nkeras-scan train: Training stopped after 1 of 2 epochs; "
            f"the run is in '{tmp_path / '.run.incomplete'}'\n"
        )
        return subprocess.CompletedProcess(argv, 1, stderr=said)

    with mock.patch.object(first_try.subprocess, "run", fail):
        row = first_try.run_case("resnet50", "default", tmp_path / "run")
    assert row["exits"] == {}
    assert row["error"] == (
        "keras-scan train: Training stopped after 1 of 2 epochs; "
        "the run is in '.run.incomplete'"
    )
    assert row["command"].startswith("keras-scan train --backbone resnet50")


def test_first_try_families_cover_the_registry_at_each_smallest_size(
    tmp_path, monkeypatch
):
    """`--cases families`: one backbone of every registry family, each at
    32 pixels or its smallest input; the default stays the issue's three."""
    import keras

    from benchmarks import first_try
    from keras_scan.backbones import registry

    ran = []

    def fake_run(case, variant, folder):
        ran.append((case, first_try.image_size(case)))
        return {"exits": {"final": 0.5}, "command": "keras-scan train"}

    monkeypatch.setattr(first_try, "run_case", fake_run)
    first_try.main(
        ["--cases", "mobilenet,families", "--variants", "default"]
        + ["--out", str(tmp_path)]
    )
    names = [case for case, _ in ran]
    assert names[0] == "mobilenet" and len(names) == len(set(names))
    assert set(names) == set(first_try.FAMILIES)
    sizes = dict(ran)
    assert sizes["xception"] == 71 and sizes["inception_v3"] == 75
    assert sizes["mobilenet"] == 32

    # Every family of the registry (its Keras Applications module, the depth
    # dropped: vgg16 -> vgg, resnet_v2 stays) is a default case or a family case.
    def family(name):
        if name not in registry.APPLICATIONS:
            return "cifar_resnet"
        constructor = getattr(
            keras.applications, registry.APPLICATIONS[name].constructor
        )
        return re.sub(r"(?<!_v)\d+$", "", constructor.__module__.split(".")[-1])

    covered = {family(n) for n in first_try.CASES}
    assert {family(n) for n in registry.available()} == covered
    assert len(first_try.CASES) == len(covered)  # one backbone per family
    assert first_try.DEFAULT_CASES == ("cifar_resnet18", "resnet50", "mobilenet_v2")
    assert (
        "| xception | default | 50.00 | 50.00 |" in (tmp_path / "REPORT.md").read_text()
    )
