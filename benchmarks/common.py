"""Shared pieces of the benchmark sections: the run context, the machine, JSON."""

import datetime
import functools
import importlib.metadata
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCAN_RUN = "scan"  # work/<SCAN_RUN>/ holds the SCAN model the later sections use
PROBS = "probs.npz"

PACKAGES = (
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "numpy",
    "ai-edge-litert",
    "deap",
    "matplotlib",
    "keras_scan",
    "scan_lite",
)


def jsonable(obj):
    """Plain JSON types (numpy scalars/arrays converted; NaN and inf -> None)."""
    from keras_scan import files  # lazily: the package imports Keras

    return files.jsonable(obj)


def write_json(path, payload):
    from keras_scan import files

    files.atomic_write_json(path, payload)


def model_label(settings):
    """`"cifar_resnet18 width 16"`, or the backbone's name when it has no width."""
    width = settings.get("width")
    backbone = settings["backbone"]
    return backbone if width is None else f"{backbone} width {width}"


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib():
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git():
    def git(*args):
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("branch", "--show-current"),
    }


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def accelerators():
    """Devices of the Keras backend in use (JAX: its devices; TF: none listed)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    return []


def environment():
    """Hardware, software versions and machine load, for results.json."""
    import keras

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_cores_usable": cores,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "accelerators": accelerators(),
        "versions": {name: _version(name) for name in PACKAGES},
        "git": _git(),
        "env": {
            k: os.environ.get(k)
            for k in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS")
            if os.environ.get(k) is not None
        },
    }


def tensorflow_available():
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def peak_rss_mib():
    """This process's peak resident set size (`resource.getrusage`, MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds():
    """CPU time of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def current_rss_mib():
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class Context:
    """What the sections share: settings, data, the trained SCAN model, logging.

    The SCAN model and its cached probabilities are saved under
    `work/scan/` by the accuracy section and loaded back from there by later
    sections (e.g. with `--resume` or `--from-gpu`).
    """

    def __init__(self, settings, out, work, quiet=False):
        self.settings = settings
        self.out = pathlib.Path(out)
        self.work = pathlib.Path(work)
        self.quiet = quiet
        self.started = time.perf_counter()
        self.sections = {}
        self.scan_model = None
        self.trained = {}
        self.thresholds = {}

    def log(self, message):
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:7.1f}s] {message}", flush=True)

    @functools.cached_property
    def splits(self):
        from keras_scan import data

        s = self.settings
        data_dir = s.get("data_dir")
        if data_dir and not pathlib.Path(data_dir).is_dir():
            # e.g. --from-gpu: the GPU machine's folder; the same files are
            # found here by keras_scan.data's search.
            self.log(f"data_dir {data_dir} is not here; searching the usual places")
            data_dir = None
        splits = data.load_dataset(
            s["dataset"],
            s["image_size"],
            channels=s["channels"],
            val_fraction=s["val_fraction"],
            seed=s["seed"],
            limit=s["limit"],
            data_dir=data_dir,
        )
        if s.get("test_limit"):
            x, y = splits.test
            splits.test = (x[: s["test_limit"]], y[: s["test_limit"]])
        return splits

    @property
    def scan_dir(self):
        return self.work / SCAN_RUN

    def model(self):
        """The trained SCAN model (trained here, or loaded from work/scan/)."""
        if self.scan_model is None:
            import keras

            path = self.scan_dir / "model.keras"
            if not path.is_file():
                raise FileNotFoundError(
                    f"No trained SCAN model in {path}: run the accuracy section first."
                )
            self.scan_model = keras.saving.load_model(path)
        return self.scan_model

    def load_variant(self, name):
        """A model of section 1: kept from this run, else its saved model.keras."""
        if name in self.trained:
            return self.trained[name]
        import keras

        return keras.saving.load_model(self.work / name / "model.keras")

    def probs(self):
        """Cached per-exit probabilities: dict with val/test probs and labels."""
        with np.load(self.scan_dir / PROBS) as z:
            return {
                "val": (list(z["val_probs"]), z["val_labels"]),
                "test": (list(z["test_probs"]), z["test_labels"]),
            }


def python():
    return sys.executable
