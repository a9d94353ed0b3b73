"""Thresholds that hold on unseen images: margin vs face value vs baselines.

For each trained run, every exit's probabilities are collected once on its
validation split and on the test split. Operating points at "no loss vs the
final exit" (`max_accuracy_drop=0`) are chosen on a selection set and judged
on held-out images, for four rules:

- `ga mN`: keras_scan's NSGA-II search with a margin of N standard errors of
  the accuracy drop (`margin=0`: the validation figure at face value);
- `msdnet`: MSDNet-style budgeted allocation (Huang et al. 2018): exit k
  answers a share q^k (normalised) of the images, its threshold taken from
  the sorted selection-set confidences; the cheapest q meeting the target;
- `global`: one threshold for every exit (the SDN baseline).

Two protocols: `val->test` (the product's: the run's validation split, then
the whole test split) and `resampled` (S draws of a selection set of the
validation split's size from the test split, judged on the rest of it: how
the drop varies with the images the thresholds were chosen on).

```
python benchmarks/thresholds.py RUN [RUN ...] [--splits 5]
```

Results: `benchmarks/results/thresholds/` (`results.json`, `REPORT.md`).
"""

import argparse
import pathlib
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

MARGINS = (0.0, 1.0, 2.0)
Q_GRID = np.geomspace(0.02, 8.0, 60)


def geometric_thresholds(probs, labels, q, measure="max_prob"):
    """MSDNet-style thresholds: exit k answers a share q^k / sum_j q^j of the
    images, the most confident of those still undecided."""
    from keras_scan import thresholds

    k = len(probs) - 1
    n = probs[0].shape[0]
    shares = q ** np.arange(k + 1)
    shares = shares / shares.sum()
    undecided = np.ones(n, dtype=bool)
    values = []
    for i in range(k):
        conf = thresholds.confidence(probs[i], measure)
        want = int(round(shares[i] * n))
        pool = np.sort(conf[undecided])[::-1]
        if want <= 0 or pool.size == 0:
            values.append(1.0)
            continue
        t = float(pool[min(want, pool.size) - 1])
        values.append(t)
        undecided &= ~(conf >= t)
    return values


def choose_geometric(probs, labels, exit_macs, full_macs, max_accuracy_drop=0.0):
    """The cheapest q of `Q_GRID` whose thresholds meet the target on
    `probs`/`labels`; never-exit if none does."""
    from keras_scan import thresholds

    final = float(np.mean(np.argmax(probs[-1], axis=1) == labels))
    best = None
    for q in Q_GRID:
        values = geometric_thresholds(probs, labels, q)
        r = thresholds.evaluate_thresholds(
            probs, labels, values, exit_macs, full_macs, "max_prob", "final"
        )
        if r["accuracy"] >= final - max_accuracy_drop / 100 - 1e-12:
            if best is None or r["mean_macs"] < best[1]:
                best = (values, r["mean_macs"])
    k = len(probs) - 1
    return best[0] if best else [1.0] * k


def rules(probs, labels, exit_macs, full_macs, seed=0):
    """{rule name: thresholds} chosen on (probs, labels) at no loss."""
    from keras_scan import thresholds

    out = {}
    for margin in MARGINS:
        th = thresholds.search_thresholds_from_probs(
            probs,
            labels,
            exit_macs,
            full_macs,
            max_accuracy_drop=0.0,
            margin=margin,
            seed=seed,
        )
        out[f"ga m{margin:g}"] = list(th.values)
        if margin == 0:
            out["global"] = [th.metrics["global_threshold"]["threshold"]] * len(
                th.values
            )
    out["msdnet"] = choose_geometric(probs, labels, exit_macs, full_macs)
    return out


def judge(probs, labels, values, exit_macs, full_macs):
    from keras_scan import thresholds

    r = thresholds.evaluate_thresholds(
        probs, labels, values, exit_macs, full_macs, "max_prob", "final"
    )
    final = float(np.mean(np.argmax(probs[-1], axis=1) == labels))
    return {
        "accuracy": r["accuracy"],
        "final_accuracy": final,
        "drop_pt": 100 * (final - r["accuracy"]),
        "speedup": r["speedup"],
        "exit_shares": r["exit_shares"],
    }


def bench_run(run, splits_count):
    import keras

    from keras_scan import inference, runs

    model = keras.saving.load_model(pathlib.Path(run) / "model.keras")
    info = model.exit_info
    exit_macs = [int(i["macs"]) for i in info]
    full_macs = int(info[-1]["standalone_macs"])
    splits = runs.load_splits(run)
    val_p, val_y = inference.collect_probs(model, splits.val)
    test_p, test_y = inference.collect_probs(model, splits.test)
    config = runs.load_config(run)
    result = {
        "run": str(run),
        "config": {
            k: config.get(k)
            for k in ("backbone", "width", "limit", "epochs", "head", "attention")
        },
        "val_size": int(val_y.size),
        "test_size": int(test_y.size),
    }
    chosen = rules(val_p, val_y, exit_macs, full_macs)
    result["val->test"] = {
        name: dict(
            judge(test_p, test_y, v, exit_macs, full_macs),
            thresholds=v,
            val=judge(val_p, val_y, v, exit_macs, full_macs),
        )
        for name, v in chosen.items()
    }
    rng = np.random.default_rng(0)
    draws = []
    for s in range(splits_count):
        idx = rng.permutation(test_y.size)
        sel, rest = idx[: val_y.size], idx[val_y.size :]
        chosen = rules([p[sel] for p in test_p], test_y[sel], exit_macs, full_macs, s)
        draws.append(
            {
                name: judge(
                    [p[rest] for p in test_p], test_y[rest], v, exit_macs, full_macs
                )
                for name, v in chosen.items()
            }
        )
    result["resampled"] = {
        name: {
            "drop_pt": [d[name]["drop_pt"] for d in draws],
            "speedup": [d[name]["speedup"] for d in draws],
        }
        for name in draws[0]
    }
    return result


def report(results):
    lines = [
        "# Thresholds on unseen images",
        "",
        "Operating point: no loss vs the final exit (`max_accuracy_drop=0`), "
        "MAC speedups vs the plain backbone. `drop` = final exit's accuracy "
        "minus the cascade's on the held-out images (pt; negative = the "
        "cascade is more accurate). One machine, one run of this script: "
        f"{results['environment'].get('cpu', '?')}.",
        "",
    ]
    for r in results["runs"]:
        settings = ", ".join(f"{k} {v}" for k, v in r.get("config", {}).items())
        lines += [
            f"## `{r['run']}`",
            "",
            f"Trained with: {settings}.",
            "",
            f"val->test: chosen on the validation split ({r['val_size']} images), "
            f"judged on the test split ({r['test_size']}).",
            "",
            "| rule | val drop | val speedup | test drop | test speedup | "
            "test exit shares |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in r["val->test"].items():
            shares = ", ".join(f"{100 * s:.0f}%" for s in m["exit_shares"])
            lines.append(
                f"| {name} | {m['val']['drop_pt']:+.2f} | {m['val']['speedup']:.2f}x "
                f"| {m['drop_pt']:+.2f} | {m['speedup']:.2f}x | {shares} |"
            )
        n = len(next(iter(r["resampled"].values()))["drop_pt"])
        lines += [
            "",
            f"resampled: {n} selection sets of {r['val_size']} test images, each "
            "judged on the other test images; mean (min..max).",
            "",
            "| rule | drop (pt) | speedup |",
            "|---|---|---|",
        ]
        for name, m in r["resampled"].items():
            d, s = np.array(m["drop_pt"]), np.array(m["speedup"])
            lines.append(
                f"| {name} | {d.mean():+.2f} ({d.min():+.2f}..{d.max():+.2f}) | "
                f"{s.mean():.2f}x ({s.min():.2f}..{s.max():.2f}) |"
            )
        lines.append("")
    lines += [f"Reproduce: `{results['reproduce']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="trained run folders")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--out", help="results folder")
    args = parser.parse_args(argv)
    if args.splits < 1:
        parser.error(f"--splits must be >= 1. Received: {args.splits}")
    for run in args.runs:
        if not (pathlib.Path(run) / "model.keras").is_file():
            parser.error(f"RUN must be a trained run folder. Received: {run!r}")
    out = pathlib.Path(
        args.out or common.ROOT / "benchmarks" / "results" / "thresholds"
    )
    results = {
        "environment": common.environment(),
        "reproduce": "python benchmarks/thresholds.py "
        + " ".join(args.runs)
        + f" --splits {args.splits}",
        "runs": [bench_run(run, args.splits) for run in args.runs],
    }
    out.mkdir(parents=True, exist_ok=True)
    common.write_json(out / "results.json", results)
    (out / "REPORT.md").write_text(report(results))
    print(report(results))
    return results


if __name__ == "__main__":
    main()
