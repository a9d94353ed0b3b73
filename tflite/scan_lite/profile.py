"""Measures an export's latency on LiteRT: every stage, exit model and the full model.

For each variant, batch 1, on one image at a time: the cascade is run through
every stage as `Cascade` runs it (stage_0 includes quantizing the image, each
later stage the requantization of the previous features, every stage the
dequantization of its probabilities), then each exit model file and the full
model file on the same image. Interleaving them spreads the machine's load over
all models alike. Random images 0..255 are used by default: latency does not
depend on the pixels.

The result is the cost table of `scan_lite.costs` (`EXPORT/costs.json`).
"""

import datetime
import platform

import numpy as np

from scan_lite import costs as costs_lib
from scan_lite import images as images_lib
from scan_lite import manifest as manifest_lib
from scan_lite.cascade import Cascade


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(
            f"`{name}` must be an int >= {low}. Received: {name}={value!r}"
        )
    return value


def device_info():
    """The machine the numbers belong to."""
    try:
        from importlib.metadata import version

        runtime = f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # metadata missing (e.g. a vendored runtime)
        runtime = "ai-edge-litert"
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "runtime": runtime,
    }


def stats(samples):
    """median / mean / p10 / p90 (ms) and the number of runs."""
    t = np.asarray(samples, np.float64)
    p10, median, p90 = np.percentile(t, [10, 50, 90])
    return {
        "median_ms": float(median),
        "mean_ms": float(t.mean()),
        "p10_ms": float(p10),
        "p90_ms": float(p90),
        "runs": int(t.size),
    }


def profile_variant(
    export_dir,
    variant,
    *,
    threads=1,
    warmup=10,
    repeats=100,
    images=None,
    stage_files=False,
    seed=0,
    manifest=None,
):
    """Times one variant of an export; returns its entry of the cost table.

    Args:
        export_dir: str or path. The export folder.
        variant: str. The quantization variant.
        threads: int >= 1. LiteRT CPU threads per interpreter. Defaults to 1.
        warmup: int >= 0. Untimed runs of every model first. Defaults to 10.
        repeats: int >= 1. Timed runs of every model. Defaults to 100.
        images: array (N, H, W[, C]) of pixels 0..255, fitted to the model input,
            used in turn; or None for random pixels. Defaults to None.
        stage_files: bool. Time the separate stage_K files instead of the
            cascade file's signatures. Defaults to `False`.
        seed: int. Seeds the random images. Defaults to 0.
        manifest: dict. The already verified manifest. Defaults to loading it.

    Returns:
        dict (one entry of `costs.json`'s `variants`).
    """
    _check_int("threads", threads, 1)
    _check_int("warmup", warmup, 0)
    _check_int("repeats", repeats, 1)
    cascade = Cascade(
        export_dir,
        variant=variant,
        stage_files=stage_files,
        num_threads=threads,
        verify=manifest is None,
    )
    m = cascade.manifest if manifest is None else manifest
    h, w, c = cascade.input_shape
    if images is None:
        rng = np.random.default_rng(seed)
        pool = rng.integers(0, 256, size=(8, h, w, c)).astype(np.float32)
        source = "random"
    else:
        x = np.asarray(images)
        if x.ndim not in (3, 4) or len(x) == 0:
            raise ValueError(
                "`images` must be a non-empty array (N, H, W[, C]) of pixels 0..255. "
                f"Received: shape {x.shape}"
            )
        pool = images_lib.fit_images(x[:256], h, w, c).astype(np.float32)
        if not np.all(np.isfinite(pool)) or pool.min() < 0 or pool.max() > 255:
            raise ValueError(
                "`images` must hold raw pixels in 0..255. Received: values in "
                f"[{pool.min()}, {pool.max()}]"
            )
        source = f"{len(x)} images"
    k = cascade.num_exits
    models = [cascade.exit_model(i) for i in range(k)]  # exit_0..exit_{K-1}, full
    stage_ms = [[] for _ in range(k)]
    model_ms = [[] for _ in range(k)]
    for j in range(warmup + repeats):
        image = pool[j % len(pool)][None]
        result = cascade._run(image, early_exit=False)
        times = [model(image)[1] for model in models]
        if j < warmup:
            continue
        for i, t in enumerate(result.stage_latency_ms):
            stage_ms[i].append(t)
        for i, t in enumerate(times):
            model_ms[i].append(t)

    spec = m["variants"][variant]
    files = m["files"]
    if stage_files:
        stage_names = [e["file"] for e in sorted(spec["stages"], key=_index)]
    else:
        stage_names = [spec["cascade"]["file"]] * k
    exit_entries = sorted(spec["exits"], key=_index)

    def timed(index, name, file, samples):
        return {
            "index": index,
            "name": name,
            "file": file,
            "sha256": files[file]["sha256"],
            **stats(samples),
        }

    stages = [timed(i, f"stage_{i}", stage_names[i], stage_ms[i]) for i in range(k)]
    cumulative = np.cumsum([s["median_ms"] for s in stages]).tolist()
    return {
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "images": source,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "tool": f"scan-lite profile {_version()}",
        "device": device_info(),
        "stage_source": "stage_files" if stage_files else "cascade",
        "requantized_links": list(cascade.requantized_links),
        "stages": stages,
        "cumulative_ms": [float(v) for v in cumulative],
        "exits": [
            timed(i, e["name"], e["file"], model_ms[i])
            for i, e in enumerate(exit_entries[:-1])
        ],
        "full": timed(k - 1, "full", exit_entries[-1]["file"], model_ms[k - 1]),
    }


def _version():
    import scan_lite

    return scan_lite.__version__


def _index(entry):
    return entry["index"]


def profile(
    export_dir,
    variants=None,
    *,
    threads=1,
    warmup=10,
    repeats=100,
    images=None,
    stage_files=False,
    seed=0,
    write=True,
):
    """Times the variants of an export and (by default) writes `EXPORT/costs.json`.

    Entries of other variants already in a valid `costs.json` are kept when
    they still match the export; the table is validated against the manifest
    before it is written, and written atomically, so a failure leaves the old
    file (or none) in place.

    Args:
        export_dir: str or path. The export folder.
        variants: list of str, one str, or None for every variant of the export.
        threads, warmup, repeats, images, stage_files, seed: see `profile_variant`.
        write: bool. Write `EXPORT/costs.json`. Defaults to `True`.

    Returns:
        The cost table (dict).

    Example:
    ```python
    table = scan_lite.profile.profile("exports/fm18", "int8", repeats=200)
    table["variants"]["int8"]["cumulative_ms"]
    ```
    """
    m = manifest_lib.load_manifest(export_dir, verify=True)
    if variants is None:
        variants = sorted(m["variants"])
    elif isinstance(variants, str):
        variants = [variants]
    for v in variants:
        if v not in m["variants"]:
            raise ValueError(
                f"`variant` must be one of {sorted(m['variants'])} or 'all' (this "
                f"export). Received: variant={v!r}"
            )
    entries = {}
    old = costs_lib.costs_path(export_dir)
    if old.is_file():
        try:
            previous = costs_lib.read_table(old)
            costs_lib.validate(previous, m)
            entries.update(previous["variants"])
        except costs_lib.CostsError:
            pass  # stale or broken: replaced by what is measured now
    for v in variants:
        entries[v] = profile_variant(
            export_dir,
            v,
            threads=threads,
            warmup=warmup,
            repeats=repeats,
            images=images,
            stage_files=stage_files,
            seed=seed,
            manifest=m,
        )
    table = {
        "format_version": costs_lib.FORMAT_VERSION,
        "num_exits": int(m["model"]["num_exits"]),
        "variants": {v: entries[v] for v in sorted(entries)},
    }
    if write:
        try:
            costs_lib.write_costs(export_dir, table, m)
        except OSError as e:  # a full disk, a read-only folder
            path = costs_lib.costs_path(export_dir)
            error = OSError(
                f"Cannot write {str(path)!r}: {e.strerror or e}. The previous "
                "file, if any, was left as it was."
            )
            error.errno = e.errno
            raise error from e
    else:
        costs_lib.validate(table, m)
    return table


def format_table(table, variants=None):
    """The cost table as text, one block per variant."""
    lines = []
    for v, e in table["variants"].items():
        if variants is not None and v not in variants:
            continue
        d = e["device"]
        lines.append(
            f"variant {v}: {e['threads']} thread(s), {e['warmup']} warm-up + "
            f"{e['repeats']} timed runs, images {e.get('images', '?')}, stages from "
            f"{e.get('stage_source', 'cascade')}; {d.get('processor') or ''} "
            f"{d['platform']}"
        )
        lines.append(
            f"  {'model':<10} {'median':>8} {'mean':>8} {'p10':>8} {'p90':>8} "
            f"{'cascade to here':>16}   ms"
        )
        cumulative = e.get("cumulative_ms") or np.cumsum(
            [s["median_ms"] for s in e["stages"]]
        )
        for s, cum in zip(e["stages"], cumulative):
            lines.append(_row(s, f"{cum:16.3f}"))
        for x in [*e["exits"], e["full"]]:
            lines.append(_row(x, ""))
        full = e["full"]["median_ms"]
        lines.append(
            "  cascade to each exit / full model: "
            + ", ".join(f"{c / full:.2f}x" for c in cumulative)
        )
    return "\n".join(lines)


def _row(t, extra):
    return (
        f"  {t['name']:<10} {t['median_ms']:8.3f} {t['mean_ms']:8.3f} "
        f"{t['p10_ms']:8.3f} {t['p90_ms']:8.3f} {extra}".rstrip()
    )
