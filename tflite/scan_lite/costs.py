"""The cost table of an export: measured latency per stage, exit model and full model.

`EXPORT/costs.json` sits next to `manifest.json` but is not listed in it (the
manifest's own verification ignores files it does not list). It is validated
against `costs.schema.json` (with `jsonschema` when importable) and always
against the manifest by the checks below, which need no schema:

- the variant exists in the table and in the manifest;
- one stage per exit (`model/num_exits`), one exit model per shallow exit;
- every latency is a finite number > 0 (NaN, Infinity, zero and negative values
  are refused; JSON has no NaN, but Python's json module would read it);
- every timed file is one the manifest lists for that variant, with the SHA-256
  the manifest records (a table of another export, or of a file that changed
  since it was timed, is refused).

Written by `scan_lite.profile` (`scan-lite profile EXPORT`); a device can write
the same format (android_demo/README.md, "Feeding costs.json from a phone").
"""

import dataclasses
import json
import math
import pathlib

from scan_lite import jsonfile
from scan_lite import manifest as manifest_lib

COSTS = "costs.json"
SCHEMA = pathlib.Path(__file__).resolve().parent / "costs.schema.json"
FORMAT_VERSION = 1
STATS = ("median_ms", "mean_ms", "p10_ms", "p90_ms")


class CostsError(manifest_lib.ManifestError):
    """The cost table is missing, invalid, or does not belong to this export."""


@dataclasses.dataclass(frozen=True)
class Costs:
    """The measured costs of one variant of an export (medians, milliseconds).

    Attributes:
        variant: str. The quantization variant.
        stage_ms: tuple of float. Median latency of stage_0..stage_K, chained.
        exit_ms: tuple of float. Median latency of each shallow exit model file
            (exit_0..exit_{K-1}), run on its own; empty when the table has no
            `exits` (they are optional).
        full_ms: float. Median latency of the full model file (the final exit).
        threads: int. LiteRT threads the numbers were measured with.
        device: dict. The machine (platform, machine, processor, runtime).
        table: dict. The variant's entry of costs.json as read.
    """

    variant: str
    stage_ms: tuple
    exit_ms: tuple
    full_ms: float
    threads: int
    device: dict
    table: dict

    @property
    def cumulative_ms(self):
        """Cascade latency up to each exit: sums of stage medians 0..k (K+1 values)."""
        total, out = 0.0, []
        for t in self.stage_ms:
            total += t
            out.append(total)
        return tuple(out)

    @property
    def standalone_ms(self):
        """Latency of each exit deployed alone (exit models, then full); None without exits."""
        if not self.exit_ms:
            return None
        return (*self.exit_ms, self.full_ms)


def costs_path(export_dir):
    """`EXPORT/costs.json`."""
    return pathlib.Path(export_dir).expanduser() / COSTS


def load_costs(export_dir, variant=None, manifest=None, verify=True):
    """Reads `EXPORT/costs.json` and checks one variant of it against the manifest.

    Args:
        export_dir: str or path. The export folder.
        variant: str. The quantization variant. Defaults to the manifest's
            `default_variant`.
        manifest: dict. The export's manifest when already loaded. Defaults to
            loading (and verifying) `EXPORT/manifest.json`.
        verify: bool. Verify the size and SHA-256 of the export's files when
            loading the manifest here. Defaults to `True`.

    Returns:
        A `Costs`.

    Raises:
        CostsError: no table, an invalid one, or one that does not match the
            export (variant, counts, files, SHA-256).
        ManifestError: the export itself is broken.

    Example:
    ```python
    costs = scan_lite.load_costs("exports/fm18", "int8")
    costs.cumulative_ms, costs.full_ms
    ```
    """
    if manifest is None:
        manifest = manifest_lib.load_manifest(export_dir, verify=verify)
    path = costs_path(export_dir)
    if not path.is_file():
        raise CostsError(
            f"The export has no cost table: {str(path)!r} does not exist. Measure "
            f"one with `scan-lite profile {export_dir}`."
        )
    table = read_table(path)
    validate(table, manifest)
    variant = manifest["default_variant"] if variant is None else variant
    if variant not in table["variants"]:
        raise CostsError(
            f"{COSTS} has no measurements for `variant`={variant!r}; it holds "
            f"{sorted(table['variants'])}. Measure it with `scan-lite profile "
            f"{export_dir} --variant {variant}`."
        )
    entry = table["variants"][variant]
    return Costs(
        variant=variant,
        stage_ms=tuple(float(s["median_ms"]) for s in entry["stages"]),
        exit_ms=tuple(float(e["median_ms"]) for e in entry.get("exits", [])),
        full_ms=float(entry["full"]["median_ms"]),
        threads=int(entry["threads"]),
        device=dict(entry["device"]),
        table=entry,
    )


def read_table(path):
    """Parses a cost table; refuses NaN / Infinity with the field that holds it."""
    table = jsonfile.read_json(path, CostsError)
    _check_finite(table)
    return table


def _check_finite(table):
    jsonfile.check_finite(
        table, COSTS, CostsError, "latencies must be finite numbers > 0"
    )


def _where(parts):
    return "/".join(map(str, parts)) or "(root)"


def _require(condition, where, what):
    if not condition:
        raise CostsError(f"{COSTS} is invalid at {_where(where)}: {what}")


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def validate(table, manifest):
    """Schema check (jsonschema when importable) + the checks against `manifest`."""
    _check_finite(table)
    _require(isinstance(table, dict), [], "must be a JSON object")
    version = table.get("format_version")
    _require(
        version == FORMAT_VERSION,
        ["format_version"],
        f"this scan_lite reads version {FORMAT_VERSION}. Received: {version!r}",
    )
    jsonfile.check_schema(table, SCHEMA, COSTS, CostsError)
    k = manifest["model"]["num_exits"]
    _require(
        table.get("num_exits") == k,
        ["num_exits"],
        f"the export's model has {k} exits (manifest model/num_exits). "
        f"Received: num_exits={table.get('num_exits')!r}",
    )
    variants = table.get("variants")
    _require(isinstance(variants, dict) and variants, ["variants"], "non-empty object")
    for name, entry in variants.items():
        _check_variant(name, entry, manifest)


def _check_variant(name, entry, manifest):
    where = ["variants", name]
    _require(
        name in manifest["variants"],
        where,
        f"the export has no variant {name!r} (it has {sorted(manifest['variants'])})",
    )
    _require(isinstance(entry, dict), where, "must be an object")
    for key, low in (("threads", 1), ("warmup", 0), ("repeats", 1)):
        _require(
            _is_int(entry.get(key), low),
            [*where, key],
            f"must be an int >= {low}. Received: {entry.get(key)!r}",
        )
    device = entry.get("device")
    _require(
        isinstance(device, dict) and isinstance(device.get("platform"), str),
        [*where, "device"],
        f"must be an object with a 'platform' string. Received: {device!r}",
    )
    spec = manifest["variants"][name]
    k = manifest["model"]["num_exits"]
    stages, exits = entry.get("stages"), entry.get("exits", [])
    _require(
        isinstance(stages, list) and len(stages) == k,
        [*where, "stages"],
        f"must hold one entry per stage of the export's cascade ({k}: stage_0.."
        f"stage_{k - 1}). Received: "
        + (f"{len(stages)} entries" if isinstance(stages, list) else repr(stages)),
    )
    _require(  # optional; when given, one per shallow exit
        "exits" not in entry or (isinstance(exits, list) and len(exits) == k - 1),
        [*where, "exits"],
        f"must hold one entry per shallow exit model ({k - 1}: exit_0..exit_"
        f"{k - 2}). Received: "
        + (f"{len(exits)} entries" if isinstance(exits, list) else repr(exits)),
    )
    stage_files = {e["index"]: e["file"] for e in spec["stages"]}
    exit_files = {e["index"]: e["file"] for e in spec["exits"]}
    for i, timed in enumerate(stages):
        allowed = {spec["cascade"]["file"], stage_files.get(i)}
        _check_timed(timed, [*where, "stages", i], allowed, manifest)
    for i, timed in enumerate(exits):
        _check_timed(timed, [*where, "exits", i], {exit_files.get(i)}, manifest)
    _check_timed(entry.get("full"), [*where, "full"], {exit_files.get(k - 1)}, manifest)
    cumulative = entry.get("cumulative_ms")
    if cumulative is not None:
        total, expected = 0.0, []
        for timed in stages:
            total += timed["median_ms"]
            expected.append(total)
        _require(
            isinstance(cumulative, list)
            and len(cumulative) == k
            and all(
                _is_positive(c) and math.isclose(c, e, rel_tol=1e-6)
                for c, e in zip(cumulative, expected)
            ),
            [*where, "cumulative_ms"],
            "must be the running sums of the stage medians "
            f"({[round(e, 6) for e in expected]}). Received: {cumulative!r}",
        )


def _is_positive(value):
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_timed(timed, where, allowed, manifest):
    _require(isinstance(timed, dict), where, f"must be an object. Received: {timed!r}")
    for key in STATS:
        value = timed.get(key)
        _require(
            _is_positive(value),
            [*where, key],
            f"must be a finite number of milliseconds > 0. Received: {key}={value!r}",
        )
    _require(
        timed["p10_ms"] <= timed["median_ms"] <= timed["p90_ms"],
        where,
        "needs p10_ms <= median_ms <= p90_ms. Received: "
        f"p10_ms={timed['p10_ms']!r}, median_ms={timed['median_ms']!r}, "
        f"p90_ms={timed['p90_ms']!r}",
    )
    _require(
        _is_int(timed.get("runs"), 1),
        [*where, "runs"],
        f"must be an int >= 1. Received: runs={timed.get('runs')!r}",
    )
    name = timed.get("file")
    allowed = sorted(a for a in allowed if a)
    _require(
        name in allowed,
        [*where, "file"],
        f"must be the export's file for it ({' or '.join(map(repr, allowed))}). "
        f"Received: file={name!r}",
    )
    recorded = manifest["files"][name]["sha256"]
    digest = timed.get("sha256")
    _require(
        digest == recorded,
        [*where, "sha256"],
        f"{name} was timed with SHA-256 {digest!r} but the manifest records "
        f"{recorded!r}: the table belongs to another export or an older file. "
        "Measure again with `scan-lite profile`.",
    )


def write_costs(export_dir, table, manifest):
    """Validates `table` against `manifest` and writes `EXPORT/costs.json` atomically.

    Nothing is written when the table is invalid.

    Returns:
        The path written.
    """
    validate(table, manifest)
    path = costs_path(export_dir)
    payload = json.dumps(table, indent=2, allow_nan=False) + "\n"
    return jsonfile.write_text_atomic(path, payload)
