"""Section 5: training cost of a ScanModel vs its plain backbone.

Step time: both models come from `keras_scan.training` (`make_model`, the
recipe's optimizer, `compile_model`, the backend's default compilation) and
train on the same batch of real images in the same process; steps alternate
between the two models in rounds so that machine noise hits both alike; the
median round is reported.

Peak memory: each model is built and trains for a few steps in a fresh child
process, which reports its peak resident set size (the kernel's VmHWM, what
`resource.getrusage(...).ru_maxrss` reports, reset after the imports through
/proc/self/clear_refs because importing TensorFlow peaks higher than a small
model needs) and its resident size just before building the model; on JAX with
an accelerator also the device's `peak_bytes_in_use`.

Standalone use (random images, writes train_step.json and .md):

    python benchmarks/train_step.py --width 16 --batch-size 64 --rounds 5 --out /tmp/step
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402


def time_steps(model, x, y, steps):
    """Mean seconds per `train_on_batch` over `steps` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def build_pair(config, num_classes):
    """`(plain, scan)`, compiled with the recipe's optimizer."""
    import keras

    from keras_scan import training

    models = []
    for no_exits in (True, False):
        c = dict(config, no_exits=no_exits)
        keras.utils.set_random_seed(c["seed"])
        model = training.make_model(c, num_classes)
        training.compile_model(model, training.make_optimizer(c, 100))
        models.append(model)
    return tuple(models)


def side_by_side(plain, scan, x, y, rounds, steps, warmup):
    """Alternating rounds of `steps` steps; medians and the ratio."""
    for model in (plain, scan):  # compile and warm up
        time_steps(model, x, y, warmup)
    rows = []
    for _ in range(rounds):
        rows.append(
            {
                "plain_s": time_steps(plain, x, y, steps),
                "scan_s": time_steps(scan, x, y, steps),
            }
        )
    plain_s = float(np.median([r["plain_s"] for r in rows]))
    scan_s = float(np.median([r["scan_s"] for r in rows]))
    return {
        "rounds": rows,
        "median_step_s": {"plain": plain_s, "scan": scan_s},
        "images_per_s": {"plain": len(y) / plain_s, "scan": len(y) / scan_s},
        "ratio_scan_over_plain": scan_s / plain_s,
    }


def _device_peak_bytes():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vm_hwm_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def memory_child(config, num_classes, batch_size, steps):
    """Runs in a fresh process: peak memory of building and training one model.

    Importing TensorFlow alone peaks above what a small model needs, so the
    kernel's peak mark is reset (`/proc/self/clear_refs`) after the imports;
    where that is not possible the process peak (`ru_maxrss`) is reported.
    """
    import keras

    from keras_scan import training

    rng = np.random.default_rng(0)
    size, channels = config["image_size"], config["channels"]
    x = rng.uniform(0, 255, (batch_size, size, size, channels)).astype("float32")
    y = rng.integers(0, num_classes, batch_size).astype("int32")
    import_peak = common.peak_rss_mib()
    reset = _reset_peak_rss()
    before = common.current_rss_mib()
    keras.utils.set_random_seed(config["seed"])
    model = training.make_model(config, num_classes)
    training.compile_model(model, training.make_optimizer(config, 100))
    for _ in range(steps):
        model.train_on_batch(x, y)
    peak = _vm_hwm_mib() if reset else common.peak_rss_mib()
    return {
        "method": "VmHWM after clear_refs" if reset else "ru_maxrss",
        "rss_before_model_mib": before,
        "peak_rss_imports_mib": import_peak,
        "peak_rss_mib": peak,
        "process_peak_rss_mib": common.peak_rss_mib(),
        "device_peak_bytes": _device_peak_bytes(),
        "params": int(model.count_params()),
    }


def measure_memory(config, num_classes, batch_size, steps, log=print):
    """Peak memory of training the plain backbone and the ScanModel, each alone."""
    out, procs = {}, {}
    log("training_cost: peak memory of plain and scan, one child process each")
    for kind in ("plain", "scan"):
        c = dict(config, no_exits=kind == "plain")
        cmd = [
            sys.executable,
            str(pathlib.Path(__file__).resolve()),
            "--memory-child",
            json.dumps(common.jsonable(c)),
            "--num-classes",
            str(num_classes),
            "--batch-size",
            str(batch_size),
            "--steps",
            str(steps),
        ]
        # Both children run at once: each measures only its own process.
        procs[kind] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for kind, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"memory child for {kind} failed ({proc.returncode}):\n"
                + stderr[-3000:]
            )
        out[kind] = json.loads(stdout.strip().splitlines()[-1])
    for kind in ("plain", "scan"):
        r = out[kind]
        r["training_increase_mib"] = r["peak_rss_mib"] - r["rss_before_model_mib"]
    out["ratio_peak_rss_scan_over_plain"] = (
        out["scan"]["peak_rss_mib"] / out["plain"]["peak_rss_mib"]
    )
    out["ratio_increase_scan_over_plain"] = (
        out["scan"]["training_increase_mib"] / out["plain"]["training_increase_mib"]
        if out["plain"]["training_increase_mib"] > 0
        else None
    )
    return out


def run(ctx, config):
    """The section: step time on real images, then peak memory.

    When section 1 trained the SCAN model and the plain backbone in this run
    and the step batch is the training batch, those two models are timed (their
    compiled training functions are reused); otherwise both are built fresh.
    """
    from keras_scan import cost

    s = ctx.settings["step"]
    x_train, y_train = ctx.splits.train
    b = int(s["batch_size"] or config["batch_size"])
    x = np.asarray(x_train[:b], np.float32)
    y = np.asarray(y_train[:b]).astype("int32")
    trained = getattr(ctx, "trained", {})
    if b == config["batch_size"] and {"plain", "scan"} <= set(trained):
        plain, scan = trained["plain"], trained["scan"]
        models = "trained in section 1 (same compiled training functions)"
    else:
        plain, scan = build_pair(config, ctx.splits.num_classes)
        models = "built fresh with the recipe's optimizer"
    ctx.log(f"training_cost: step time plain vs SCAN, batch {b} ({models})")
    # The timed steps train; section 6 needs the trained weights back.
    saved = [plain.get_weights(), scan.get_weights()]
    result = side_by_side(plain, scan, x, y, s["rounds"], s["steps"], s["warmup"])
    plain.set_weights(saved[0])
    scan.set_weights(saved[1])
    result.update(
        {
            "what": (
                "seconds per training step (train_on_batch), same batch of real "
                "images, alternating rounds in one process, median round"
            ),
            "models": models,
            "batch_size": b,
            "rounds_count": s["rounds"],
            "steps_per_round": s["steps"],
            "macs": {"plain": cost.count_macs(plain), "scan": cost.count_macs(scan)},
            "params": {"plain": plain.count_params(), "scan": scan.count_params()},
            "jit_compile": {"plain": plain.jit_compile, "scan": scan.jit_compile},
        }
    )
    ctx.log(
        f"training_cost: step {result['median_step_s']['plain']:.4f} s plain vs "
        f"{result['median_step_s']['scan']:.4f} s SCAN "
        f"({result['ratio_scan_over_plain']:.2f}x)"
    )
    del plain, scan
    m = ctx.settings["memory"]
    if m["enabled"]:
        result["memory"] = measure_memory(
            config, ctx.splits.num_classes, b, int(m["steps"]), log=ctx.log
        )
        result["memory"]["measure"] = (
            "peak resident set size of a fresh child process per model while "
            "it builds, compiles and trains (Linux VmHWM, the quantity "
            "getrusage's ru_maxrss reports, reset with /proc/self/clear_refs "
            "after the imports so TensorFlow's import peak does not mask it); "
            "increase = that peak - RSS just before building the model"
        )
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--num-classes", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.memory_child is not None:
        config = json.loads(args.memory_child)
        r = memory_child(config, args.num_classes, args.batch_size, args.steps)
        print(json.dumps(common.jsonable(r)))
        return

    import keras

    from keras_scan import cost, training

    config = training.resolve_config(
        {"backbone": f"cifar_resnet{args.depth}", "width": args.width}
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size).astype("int32")
    plain, scan = build_pair(config, 10)
    result = side_by_side(plain, scan, x, y, args.rounds, args.steps, 3)
    result.update(
        {
            "benchmark": "train_step",
            "backend": keras.backend.backend(),
            "environment": common.environment(),
            "config": vars(args),
            "macs": {"plain": cost.count_macs(plain), "scan": cost.count_macs(scan)},
            "params": {"plain": plain.count_params(), "scan": scan.count_params()},
        }
    )
    plain_s, scan_s = result["median_step_s"]["plain"], result["median_step_s"]["scan"]
    md = (
        f"# Training step: ScanModel vs plain backbone\n\n"
        f"CIFAR ResNet{args.depth} width {args.width}, batch {args.batch_size}, "
        f"32x32x3 random images, {keras.backend.backend()} backend, "
        f"{os.cpu_count()} CPUs; median of {args.rounds} alternating rounds of "
        f"{args.steps} steps.\n\n"
        f"| model | MACs/image | params | step (s) |\n|---|---|---|---|\n"
        f"| plain | {result['macs']['plain'] / 1e6:.1f} M | "
        f"{result['params']['plain']:,} | {plain_s:.4f} |\n"
        f"| SCAN (3 exits, attention) | {result['macs']['scan'] / 1e6:.1f} M | "
        f"{result['params']['scan']:,} | {scan_s:.4f} |\n\n"
        f"Ratio SCAN / plain: **{scan_s / plain_s:.2f}x**\n"
    )
    print(md)
    if args.out:
        out = pathlib.Path(args.out)
        common.write_json(out / "train_step.json", result)
        (out / "train_step.md").write_text(md)


if __name__ == "__main__":
    main()
