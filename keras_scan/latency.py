"""Measured device latency of an export's exits, for the threshold search and reports.

An export's cost table (`EXPORT/costs.json`, written by `scan-lite profile EXPORT`
or by a phone, see android_demo/README.md) holds the LiteRT latency of every
cascade stage, exit model and the full model. It is read and checked by
`scan_lite.load_costs` (one reader for both sides: variant, stage count,
finite positive latencies, SHA-256 of every timed file against the manifest);
this module turns it into the cost vector of `keras_scan.thresholds` and checks
it belongs to the model at hand.

The cost of answering at exit k is the cascade's latency through stage k (the
sum of the stage medians 0..k); the baseline is the full model file's latency.
"""

from __future__ import annotations

import pathlib


def _scan_lite():
    try:
        import scan_lite
    except ImportError:
        raise ValueError(
            "Reading an export's cost table needs the `scan_lite` runtime: "
            "`pip install ./tflite` from the keras_scan repository."
        ) from None
    return scan_lite


def load_latency(export_dir, variant=None, exit_info=None):
    """The measured latency costs of one variant of an export.

    Args:
        export_dir: str or path. An export folder with a cost table
            (`scan-lite profile EXPORT` writes `EXPORT/costs.json`).
        variant: str. Quantization variant. Defaults to the manifest's
            `default_variant`.
        exit_info: list of dict or None. `model.exit_info` of the model the
            costs are for: the export must have as many exits, with the same
            MACs (i.e. be an export of this model). Defaults to None (not
            checked).

    Returns:
        dict with `exit_latency_ms` (K+1 cumulative cascade latencies, the
        final exit last), `full_latency_ms`, `standalone_latency_ms` (each exit
        model file alone, then the full model; None when the table has no exit
        models), `stage_latency_ms`, `variant`,
        `threads`, `device` and `export`.

    Raises:
        ValueError: no table, an invalid one, one of another export, or an
            export of another model.

    Example:
    ```python
    latency = keras_scan.latency.load_latency("exports/fm18", "int8", model.exit_info)
    th = keras_scan.search_thresholds(model, val, cost="latency", latency=latency)
    ```
    """
    scan_lite = _scan_lite()
    manifest = scan_lite.load_manifest(export_dir, verify=True)
    costs = scan_lite.load_costs(export_dir, variant, manifest=manifest)
    if exit_info is not None:
        check_model(manifest, exit_info, export_dir)
    return {
        "export": str(pathlib.Path(export_dir)),
        "variant": costs.variant,
        "threads": costs.threads,
        "device": costs.device,
        "stage_latency_ms": list(costs.stage_ms),
        "exit_latency_ms": list(costs.cumulative_ms),
        "full_latency_ms": costs.full_ms,
        "standalone_latency_ms": None
        if costs.standalone_ms is None
        else list(costs.standalone_ms),
    }


def check_model(manifest, exit_info, export_dir):
    """Refuses an export whose exits are not the model's (count, then MACs)."""
    k = manifest["model"]["num_exits"]
    if len(exit_info) != k:
        raise ValueError(
            f"The export's cascade has {k} stages (manifest model/num_exits) but the "
            f"model has {len(exit_info)} exits: the cost table belongs to another "
            f"model. Received: export_dir={str(export_dir)!r}"
        )
    exported = [int(e["macs"]) for e in manifest.get("exits", [])]
    own = [int(e["macs"]) for e in exit_info]
    if exported and exported != own:
        raise ValueError(
            f"The export's exits cost {exported} MACs but the model's {own}: it is "
            f"an export of another model. Received: export_dir={str(export_dir)!r}"
        )


def expected_speedup(exit_shares, latency):
    """Expected latency speedup at given exit shares.

    `full_latency_ms / sum_k(share_k * exit_latency_ms[k])`.

    Args:
        exit_shares: K+1 fractions answered at each exit (summing to 1).
        latency: dict from `load_latency`.

    Returns:
        dict with `mean_latency_ms`, `full_latency_ms` and `latency_speedup`.
    """
    cumulative = latency["exit_latency_ms"]
    if len(exit_shares) != len(cumulative):
        raise ValueError(
            f"`exit_shares` must hold one share per exit ({len(cumulative)}). "
            f"Received: exit_shares={list(exit_shares)!r}"
        )
    mean = float(sum(float(s) * c for s, c in zip(exit_shares, cumulative)))
    full = float(latency["full_latency_ms"])
    return {
        "mean_latency_ms": mean,
        "full_latency_ms": full,
        "latency_speedup": full / mean if mean > 0 else None,
    }
