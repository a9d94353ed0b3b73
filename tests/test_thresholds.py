"""Tests for keras_scan.thresholds (cascade simulation, DEAP search) and plots."""

import gzip
import json
import math
import os
import random
import time

import numpy as np
import pytest

from keras_scan import plots, thresholds
from keras_scan.thresholds import Thresholds

MACS = [60e6, 150e6, 300e6, 560e6]
FULL_MACS = 556e6
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def make_probs(n=2000, k=3, c=10, seed=0):
    """Synthetic exits: deeper = more accurate; confidence tracks correctness.

    Every sample has a difficulty shared by all exits; each exit adds its own
    noise, and its signal on the true class grows with depth and shrinks with
    difficulty. Probabilities are float32 softmax outputs, like a real model's.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    difficulty = rng.gamma(2.0, 1.0, n)
    probs = []
    for i in range(k + 1):
        logits = rng.normal(0.0, 1.0, (n, c))
        logits[np.arange(n), labels] += (1.2 + i) * 3.0 / (0.5 + difficulty)
        logits *= 1.5
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append((e / e.sum(axis=1, keepdims=True)).astype(np.float32))
    return probs, labels


def _read_idx(name):
    with gzip.open(os.path.join(FASHION_MNIST, name)) as f:
        data = f.read()
    if "labels" in name:
        return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


def _fit_exit(x, y, train, c=10):
    """Ridge least-squares classifier + softmax with a temperature fitted on train."""
    x = np.c_[x, np.ones(len(x))].astype(np.float64)
    a = x[train].T @ x[train] + 1e-3 * len(x[train]) * np.eye(x.shape[1])
    w = np.linalg.solve(a, x[train].T @ np.eye(c)[y[train]])
    scores = x @ w

    def softmax(t):
        z = scores * t
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def train_nll(t):
        p = softmax(t)[train]
        return -np.mean(np.log(p[np.arange(len(p)), y[train]] + 1e-12))

    best = min(np.logspace(0, 2, 30), key=train_nll)
    return softmax(best).astype(np.float32)


@pytest.fixture(scope="module")
def fashion_exits():
    """A real small case: four classifiers trained on Fashion-MNIST that see more
    and more of the image (4x4, 7x7, 14x14 average-pooled, then 14x14 plus 1000
    random ReLU features of the full image), standing in for exits of growing
    depth. Returns validation probabilities, labels, cumulative and full MACs."""
    if not os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
        pytest.skip("Fashion-MNIST (Debian package dataset-fashion-mnist) not found")
    images = _read_idx("train-images-idx3-ubyte.gz")[:14000].astype(np.float32) / 255
    labels = _read_idx("train-labels-idx1-ubyte.gz")[:14000]
    train, val = slice(0, 8000), slice(8000, 14000)
    rng = np.random.default_rng(0)
    probs, head_macs = [], []
    for pool, extra in ((7, 0), (4, 0), (2, 0), (2, 1000)):
        side = 28 // pool
        x = images.reshape(-1, side, pool, side, pool).mean(axis=(2, 4))
        x = x.reshape(len(x), -1)
        macs = 0
        if extra:
            proj = rng.normal(0, 1 / 28, (784, extra)).astype(np.float32)
            z = images.reshape(len(images), -1) @ proj
            x = np.c_[x, np.maximum(z - np.median(z[train], axis=0), 0)]
            macs = 784 * extra
        x = (x - x[train].mean(axis=0)) / (x[train].std(axis=0) + 1e-3)
        probs.append(_fit_exit(x, labels, train)[val])
        head_macs.append(macs + 10 * x.shape[1])
    exit_macs = [float(m) for m in np.cumsum(head_macs)]
    return probs, labels[val], exit_macs, float(head_macs[-1])


def reference_cascade(probs, values, measure, fallback):
    """Naive per-sample loop, with confidence computed independently."""
    k = len(probs) - 1
    preds, exits = [], []
    for n in range(len(probs[0])):
        for i in range(k):
            p = probs[i][n].astype(np.float64)
            top = np.sort(p)
            if measure == "max_prob":
                conf = top[-1]
            elif measure == "margin":
                conf = top[-1] - top[-2]
            else:
                h = -sum(q * math.log(q) for q in p if q > 0)
                conf = 1.0 - h / math.log(len(p))
            conf = min(max(conf, 0.0), 1.0)
            if values[i] < 1.0 and conf >= values[i]:
                preds.append(int(np.argmax(p)))
                exits.append(i)
                break
        else:
            if fallback == "final":
                preds.append(int(np.argmax(probs[k][n])))
            else:
                mean = sum(q[n].astype(np.float64) for q in probs) / len(probs)
                preds.append(int(np.argmax(mean)))
            exits.append(k)
    return np.array(preds), np.array(exits)


def sweep_points(probs, labels, candidates, measure="max_prob", fallback="final"):
    """(accuracy, mean_macs) of one global threshold per candidate value."""
    out = []
    for t in candidates:
        r = thresholds.evaluate_thresholds(
            probs,
            labels,
            [t] * (len(probs) - 1),
            MACS[: len(probs)],
            FULL_MACS,
            measure,
            fallback,
        )
        out.append((r["accuracy"], r["mean_macs"]))
    return out


def assert_front_dominates(front, points):
    acc = np.array([p[1] for p in front])
    macs = np.array([p[2] for p in front])
    for a, m in points:
        ok = (acc >= a - 1e-12) & (macs <= m + 1e-12 * max(1.0, m))
        assert ok.any(), f"sweep point (acc={a}, macs={m}) not dominated by the front"


# --- confidence and cascade -------------------------------------------------


def test_confidence_known_values():
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(thresholds.confidence(p), [0.7, 1 / 3, 1.0])
    np.testing.assert_allclose(
        thresholds.confidence(p, "margin"), [0.5, 0.0, 1.0], atol=1e-15
    )
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(
        thresholds.confidence(p, "entropy"), [1 - h / math.log(3), 0.0, 1.0], atol=1e-12
    )
    probs, _ = make_probs(500)
    for measure in thresholds.MEASURES:
        conf = thresholds.confidence(probs[0], measure)
        assert conf.shape == (500,) and conf.min() >= 0.0 and conf.max() <= 1.0


@pytest.mark.parametrize("fallback", thresholds.FALLBACKS)
@pytest.mark.parametrize("measure", thresholds.MEASURES)
def test_simulate_cascade_matches_loop_reference(measure, fallback):
    probs, _ = make_probs(700, seed=1)
    rng = np.random.default_rng(2)
    for values in ([0.9, 0.8, 0.7], list(rng.uniform(0.3, 1.0, 3)), [0.5, 1.0, 0.2]):
        preds, exits = thresholds.simulate_cascade(probs, values, measure, fallback)
        ref_preds, ref_exits = reference_cascade(probs, values, measure, fallback)
        np.testing.assert_array_equal(exits, ref_exits)
        np.testing.assert_array_equal(preds, ref_preds)
        assert preds.shape == exits.shape == (700,)


def test_extreme_thresholds():
    probs, _ = make_probs(400)
    probs[0][:5] = np.eye(10, dtype=np.float32)[:5]  # saturated float32 softmax
    _, exits = thresholds.simulate_cascade(probs, [1.0, 1.0, 1.0])
    assert np.all(exits == 3)
    preds, exits = thresholds.simulate_cascade(probs, [0.0, 0.0, 0.0])
    assert np.all(exits == 0)
    np.testing.assert_array_equal(preds, probs[0].argmax(axis=1))
    # A Thresholds carries its own measure and fallback.
    th = Thresholds([0.0, 1.0, 1.0], measure="entropy", fallback="ensemble")
    _, exits = thresholds.simulate_cascade(probs, th)
    assert np.all(exits == 0)
    with pytest.raises(ValueError, match="measure"):
        thresholds.simulate_cascade(probs, th, measure="margin")


def test_evaluate_thresholds_reports_consistent_figures():
    probs, labels = make_probs(1000)
    r = thresholds.evaluate_thresholds(probs, labels, [0.9, 0.8, 0.7], MACS, FULL_MACS)
    assert len(r["exit_shares"]) == 4
    assert sum(r["exit_counts"]) == 1000
    np.testing.assert_allclose(sum(r["exit_shares"]), 1.0)
    np.testing.assert_allclose(r["mean_macs"], np.dot(r["exit_shares"], MACS))
    np.testing.assert_allclose(r["speedup"], FULL_MACS / r["mean_macs"])
    preds, _ = thresholds.simulate_cascade(probs, [0.9, 0.8, 0.7])
    assert r["accuracy"] == np.mean(preds == labels)
    assert r["final_exit_accuracy"] == np.mean(probs[-1].argmax(axis=1) == labels)
    never = thresholds.evaluate_thresholds(probs, labels, [1, 1, 1], MACS)
    assert never["mean_macs"] == MACS[-1] and never["speedup"] == 1.0
    assert never["accuracy"] == never["final_exit_accuracy"]


# --- search -----------------------------------------------------------------


def test_front_dominates_exhaustive_global_sweep():
    probs, labels = make_probs(500, seed=3)
    th = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, FULL_MACS, population=40, generations=20
    )
    conf = np.concatenate([thresholds.confidence(p) for p in probs[:-1]])
    candidates = np.r_[0.0, np.unique(conf), 1.0]  # every distinct outcome
    assert_front_dominates(th.metrics["front"], sweep_points(probs, labels, candidates))
    # Front points are real settings: re-evaluating reproduces them exactly.
    for values, acc, macs in th.metrics["front"][
        :: max(1, len(th.metrics["front"]) // 40)
    ]:
        r = thresholds.evaluate_thresholds(probs, labels, values, MACS, FULL_MACS)
        assert (r["accuracy"], r["mean_macs"]) == (acc, macs)


@pytest.mark.parametrize("measure", thresholds.MEASURES)
def test_front_dominates_quantile_sweep_on_trained_exits(fashion_exits, measure):
    probs, labels, exit_macs, full_macs = fashion_exits
    accs = [np.mean(p.argmax(axis=1) == labels) for p in probs]
    assert np.all(np.diff(accs) > 0) and accs[-1] > 0.83, accs
    th = thresholds.search_thresholds_from_probs(
        probs, labels, exit_macs, full_macs, measure=measure, max_accuracy_drop=0.5
    )
    m = th.metrics
    conf = np.concatenate([thresholds.confidence(p, measure) for p in probs[:-1]])
    candidates = np.r_[0.0, np.quantile(conf, np.linspace(0, 1, 301)), 1.0]
    points = []
    for t in candidates:
        r = thresholds.evaluate_thresholds(
            probs, labels, [t] * 3, exit_macs, full_macs, measure
        )
        points.append((r["accuracy"], r["mean_macs"]))
    assert_front_dominates(m["front"], points)
    assert m["constraint_met"]
    assert m["accuracy"] >= m["final_exit_accuracy"] - 0.005 - 1e-12
    assert m["mean_macs"] <= m["global_threshold"]["mean_macs"]
    print(
        f"\n[fashion-mnist {measure}] exits acc={np.round(accs, 4).tolist()} "
        f"chosen acc={m['accuracy']:.4f} speedup={m['speedup']:.3f} "
        f"(global {m['global_threshold']['speedup']:.3f}, source {m['source']})"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"max_accuracy_drop": 0.0},
        {"max_accuracy_drop": 2.0},
        {"budget_macs": 150e6},
        {"budget_macs": 60e6},
        {"budget_macs": 1e12},
        {"max_accuracy_drop": 1.0, "fallback": "ensemble", "measure": "margin"},
    ],
)
def test_chosen_point_satisfies_constraint_and_beats_global(kwargs):
    probs, labels = make_probs(3000, seed=4)
    th = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, FULL_MACS, population=48, generations=30, **kwargs
    )
    m = th.metrics
    r = thresholds.evaluate_thresholds(probs, labels, th, MACS, FULL_MACS)
    assert (r["accuracy"], r["mean_macs"]) == (m["accuracy"], m["mean_macs"])
    g = m["global_threshold"]
    if "budget_macs" in kwargs:
        assert m["mean_macs"] <= kwargs["budget_macs"]
        assert m["accuracy"] >= g["accuracy"]
        if m["accuracy"] == g["accuracy"]:
            assert m["mean_macs"] <= g["mean_macs"]
    else:
        drop = kwargs.get("max_accuracy_drop", 0.5)
        assert m["target"]["max_accuracy_drop"] == drop
        assert m["accuracy"] >= m["final_exit_accuracy"] - drop / 100 - 1e-12
        assert m["mean_macs"] <= g["mean_macs"]
    assert m["constraint_met"] and m["source"] in ("ga", "global_threshold")
    assert th.measure == kwargs.get("measure", "max_prob")
    assert th.fallback == kwargs.get("fallback", "final")


def test_unreachable_accuracy_target_warns_and_returns_most_accurate():
    n, c = 300, 4
    labels = np.arange(n) % c
    final = np.full((n, c), 0.5 / 3, np.float32)
    final[np.arange(n), labels] = 0.5
    wrong = np.full((n, c), 0.1 / 3, np.float32)
    wrong[np.arange(n), (labels + 1) % c] = 0.9
    probs = [wrong, wrong, final]
    with pytest.warns(UserWarning, match="accuracy target"):
        th = thresholds.search_thresholds_from_probs(
            probs,
            labels,
            [1, 2, 3],
            fallback="ensemble",
            max_accuracy_drop=0.0,
            population=8,
            generations=2,
        )
    assert not th.metrics["constraint_met"]


def test_margin_refuses_a_point_that_meets_the_target_by_disagreeing():
    """One shallow exit as accurate as the final exit on 100 images, but right
    on different ones (10 each way): answering everything there is free on
    validation (drop 0) and 4.5 pt of noise (sqrt(10 + 10) standard error)."""
    n, c = 100, 10
    labels = np.zeros(n, np.int64)
    idx = np.arange(n)

    def probs(correct):
        p = np.full((n, c), 0.1 / (c - 1))
        p[idx, np.where(correct, 0, 1)] = 0.9
        return p

    arrays = [probs((idx >= 10) & (idx < 90)), probs(idx < 80)]

    def search(drop, margin):
        return thresholds.search_thresholds_from_probs(
            arrays,
            labels,
            [1.0, 4.0],
            max_accuracy_drop=drop,
            margin=margin,
            population=8,
            generations=3,
        ).metrics

    face_value = search(0.5, 0.0)
    assert face_value["exit_shares"] == [1.0, 0.0]
    assert face_value["discordant"] == [10, 10]
    assert face_value["drop_standard_error"] == pytest.approx(np.sqrt(20) / n)
    held = search(0.5, 1.0)  # (10 - 10) + 1 * 4.47 > 0.5: not a safe point
    assert held["exit_shares"] == [0.0, 1.0] and held["discordant"] == [0, 0]
    assert held["constraint_met"] and held["target"]["margin"] == 1.0
    assert search(5.0, 1.0)["exit_shares"] == [1.0, 0.0]  # 4.47 <= 5


def test_search_is_seeded_and_leaves_global_random_state_alone():
    probs, labels = make_probs(2000, seed=5)
    random.seed(123)
    py_state = random.getstate()
    np_state = np.random.get_state()[1].copy()
    a = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, seed=7, population=32, generations=15
    )
    assert random.getstate() == py_state
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    b = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, seed=7, population=32, generations=15
    )
    assert a.values == b.values
    assert a.metrics["front"] == b.metrics["front"]
    c = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, seed=8, population=32, generations=15
    )
    assert len(c.metrics["front"]) > 0


def test_search_runtime_n10000_k3():
    probs, labels = make_probs(10000, seed=6)
    start = time.perf_counter()
    th = thresholds.search_thresholds_from_probs(probs, labels, MACS, FULL_MACS)
    seconds = time.perf_counter() - start
    s = th.metrics["search"]
    print(
        f"\nsearch N=10000 K=3 population={s['population']} "
        f"generations={s['generations']}: {seconds:.2f} s, "
        f"speedup {th.metrics['speedup']:.3f} vs global "
        f"{th.metrics['global_threshold']['speedup']:.3f}"
    )
    assert seconds < 60


# --- Thresholds and plots ---------------------------------------------------


def test_thresholds_save_load_round_trip(tmp_path):
    probs, labels = make_probs(1000)
    th = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, FULL_MACS, measure="entropy", population=16, generations=3
    )
    path = tmp_path / "run" / "thresholds.json"
    th.save(path)
    assert os.listdir(tmp_path / "run") == ["thresholds.json"]
    with open(path) as f:
        raw = json.load(f)
    assert raw["values"] == th.values and raw["measure"] == "entropy"
    loaded = Thresholds.load(path)
    assert loaded.to_dict() == th.to_dict()
    assert loaded.values == th.values and loaded.fallback == "final"
    assert Thresholds.from_dict(th.to_dict()).to_dict() == th.to_dict()
    plain = Thresholds(np.array([0.5, 1.0]))
    assert plain.values == [0.5, 1.0] and plain.metrics == {}


def test_plot_tradeoff_writes_png(tmp_path):
    probs, labels = make_probs(2000)
    th = thresholds.search_thresholds_from_probs(
        probs, labels, MACS, FULL_MACS, population=16, generations=5
    )
    path = plots.plot_tradeoff(th, tmp_path / "tradeoff.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000
    th.save(tmp_path / "thresholds.json")
    loaded = Thresholds.load(tmp_path / "thresholds.json")
    single = [(0.5, 50e6), (0.8, 120e6), (0.9, 250e6), (0.96, 520e6)]
    plots.plot_tradeoff(loaded, tmp_path / "b.png", single_exits=single, title="t")
    assert os.path.getsize(tmp_path / "b.png") > 10_000
    assert sorted(os.listdir(tmp_path)) == ["b.png", "thresholds.json", "tradeoff.png"]
    with pytest.raises(ValueError, match="front"):
        plots.plot_tradeoff(Thresholds([0.5, 0.5, 0.5]), tmp_path / "c.png")
    with pytest.raises(ValueError, match="single_exits"):
        plots.plot_tradeoff(th, tmp_path / "c.png", single_exits=[1, 2])


# --- bad input ----------------------------------------------------------------

_P, _Y = make_probs(50)


def _search(**kwargs):
    args = {
        "probs": _P,
        "labels": _Y,
        "exit_macs": MACS,
        "population": 8,
        "generations": 1,
    }
    args.update(kwargs)
    return thresholds.search_thresholds_from_probs(**args)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: thresholds.simulate_cascade(_P, [1.2, 0.5, 0.5]), r"thresholds.*1\.2"),
        (
            lambda: thresholds.simulate_cascade(_P, [-0.1, 0.5, 0.5]),
            r"thresholds.*-0\.1",
        ),
        (
            lambda: thresholds.simulate_cascade(_P, [float("nan"), 0.5, 0.5]),
            "thresholds",
        ),
        (lambda: thresholds.simulate_cascade(_P, [0.5, 0.5]), r"thresholds.*K=3"),
        (lambda: Thresholds([0.5, 1.5]), r"thresholds.*1\.5"),
        (lambda: Thresholds([]), "thresholds"),
        (lambda: Thresholds(["a"]), "thresholds"),
        (
            lambda: thresholds.simulate_cascade([_P[0][:10]] + _P[1:], [0.5] * 3),
            "same shape",
        ),
        (lambda: thresholds.simulate_cascade(_P[:1], []), "at least 2"),
        (lambda: thresholds.simulate_cascade(_P[0], [0.5]), "probs"),
        (
            lambda: thresholds.simulate_cascade([p * 3 for p in _P], [0.5] * 3),
            "probabilities",
        ),
        (
            lambda: thresholds.evaluate_thresholds(_P, _Y[:-1], [0.5] * 3, MACS),
            r"labels.*N=50",
        ),
        (
            lambda: thresholds.evaluate_thresholds(_P, _Y + 10, [0.5] * 3, MACS),
            "labels",
        ),
        (
            lambda: thresholds.evaluate_thresholds(_P, _Y, [0.5] * 3, MACS[:3]),
            "exit_macs",
        ),
        (
            lambda: thresholds.evaluate_thresholds(_P, _Y, [0.5] * 3, MACS[::-1]),
            "exit_macs",
        ),
        (
            lambda: thresholds.evaluate_thresholds(_P, _Y, [0.5] * 3, MACS, -1),
            "full_macs=-1",
        ),
        (lambda: _search(probs=[p[:0] for p in _P], labels=_Y[:0]), "N=0"),
        (lambda: _search(labels=_Y[:10]), "labels"),
        (lambda: _search(max_accuracy_drop=-1), r"max_accuracy_drop=-1"),
        (lambda: _search(budget_macs=1e6), r"budget_macs.*6e\+07.*1e\+06"),
        (lambda: _search(max_accuracy_drop=1, budget_macs=2e8), "not both"),
        (lambda: _search(measure="confidence"), "measure='confidence'"),
        (lambda: _search(fallback="vote"), "fallback='vote'"),
        (lambda: _search(population=2), "population"),
        (lambda: _search(margin=-1), r"margin=-1"),
        (lambda: _search(margin=float("nan")), r"margin=nan"),
        (
            lambda: thresholds.simulate_cascade(_P, [0.5] * 3, measure="max"),
            "measure='max'",
        ),
        (lambda: thresholds.confidence(_P[0], "Entropy"), "measure='Entropy'"),
        (lambda: Thresholds([0.5], measure="top1"), "measure='top1'"),
        (lambda: Thresholds([0.5], fallback="first"), "fallback='first'"),
        (lambda: Thresholds.from_dict({"measure": "max_prob"}), "values"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- model-level search (runs the trained SCAN model on real validation images) ---


@pytest.mark.slow
def test_search_thresholds_on_trained_model(trained, fm_small):
    import keras_scan
    from keras_scan import inference

    model = trained[0]
    val = fm_small["val"]
    kwargs = {"population": 40, "generations": 25, "seed": 1}
    th = keras_scan.search_thresholds(model, val, max_accuracy_drop=0.5, **kwargs)
    m = th.metrics
    info = model.exit_info
    # Costs come from exit_info; the speedup baseline is the plain backbone.
    assert m["exit_macs"] == [i["macs"] for i in info]
    assert m["full_macs"] == info[-1]["standalone_macs"]
    assert m["num_samples"] == len(val[1])
    assert [a for a, _ in m["single_exits_standalone"]] == [
        a for a, _ in m["single_exits"]
    ]
    assert [c for _, c in m["single_exits_standalone"]] == [
        i["standalone_macs"] for i in info
    ]
    # The figures are those of the model's own validation outputs.
    probs, labels = inference.collect_probs(model, val)
    r = thresholds.evaluate_thresholds(
        probs, labels, th, m["exit_macs"], m["full_macs"]
    )
    assert (r["accuracy"], r["mean_macs"]) == (m["accuracy"], m["mean_macs"])
    # The front dominates or equals every single global threshold.
    conf = np.concatenate([thresholds.confidence(p) for p in probs[:-1]])
    points = []
    for t in np.r_[0.0, np.quantile(conf, np.linspace(0, 1, 201)), 1.0]:
        g = thresholds.evaluate_thresholds(probs, labels, [t] * 3, m["exit_macs"])
        points.append((g["accuracy"], g["mean_macs"]))
    assert_front_dominates(m["front"], points)
    assert m["constraint_met"]
    assert m["accuracy"] >= m["final_exit_accuracy"] - 0.005 - 1e-12
    assert m["mean_macs"] <= m["global_threshold"]["mean_macs"]
    assert m["speedup"] > 1.0
    # Seeded: the same call gives the same thresholds and front.
    again = keras_scan.search_thresholds(model, val, max_accuracy_drop=0.5, **kwargs)
    assert again.values == th.values and again.metrics["front"] == m["front"]
    # A budget between the first and second exit's cost is respected.
    budget = (info[0]["macs"] + info[1]["macs"]) / 2
    b = keras_scan.search_thresholds(model, val, budget_macs=budget, **kwargs)
    assert b.metrics["mean_macs"] <= budget and b.metrics["constraint_met"]


def test_search_thresholds_bad_input(trained, fm_small):
    import keras_scan

    model = trained[0]
    x, y = fm_small["val"]
    first = model.exit_info[0]["macs"]
    with pytest.raises(ValueError, match=rf"{first} MACs, the minimum.*={first - 1}"):
        keras_scan.search_thresholds(model, (x, y), budget_macs=first - 1)
    with pytest.raises(ValueError, match="max_accuracy_drop=-0.1"):
        keras_scan.search_thresholds(model, (x, y), max_accuracy_drop=-0.1)
    with pytest.raises(ValueError, match="no samples"):
        keras_scan.search_thresholds(model, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="no labels"):
        keras_scan.search_thresholds(model, x[:16])
    with pytest.raises(ValueError, match="ScanModel"):
        keras_scan.search_thresholds(object(), (x, y))
    with pytest.raises(ValueError, match="measure='top1'"):
        keras_scan.search_thresholds(model, (x, y), measure="top1")
