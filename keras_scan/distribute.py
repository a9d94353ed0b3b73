"""Training on several devices or machines, on Keras' own engines.

`keras_scan.distribution(mode)` picks the engine of the active Keras backend;
nothing here reduces gradients by hand:

| mode | JAX backend | TensorFlow backend |
| --- | --- | --- |
| `"data-parallel"` | `keras.distribution.DataParallel` over all local devices | `tf.distribute.MirroredStrategy` over all local GPUs (else all logical CPUs) |
| `"multi-worker"` | `keras.distribution.initialize()` (JAX distributed), then `DataParallel` over every process' devices | `tf.distribute.MultiWorkerMirroredStrategy` (reads `TF_CONFIG`) |

What replication changes, and what it does not:
- The batch size is the *global* batch: it is split evenly across the
  replicas, so it must be divisible by their number, and the learning rate
  (scaled linearly with the global batch, see `keras_scan.training`) is the same
  as on one device. The same global batch gives the same training as on one
  device (the tests compare losses and weights).
- BatchNormalization uses the statistics of the global batch: JAX computes
  them on the sharded global batch by itself; on TensorFlow the distribution
  turns on `synchronized` for every `BatchNormalization` layer of the models
  it prepares (`keras_scan.build` inside the scope, `keras_scan.train`). Saved
  models do not keep that flag (it is a training-time setting that other
  backends reject). `sync_batchnorm=False` keeps per-replica statistics on
  TensorFlow (faster; the result then depends on the device count).
- The SCAN loss is a mean over the batch; on TensorFlow each replica returns
  its share (`1 / replicas`) as Keras' built-in losses do, because
  `tf.distribute` sums the replicas' gradients.
- On TensorFlow with Keras 3.15, two fixes to Keras' TensorFlow trainer are
  in force while the distribution is entered, and only then (see
  `trainer_fix_status`): `fit` no longer draws an extra batch before the
  first step, and multi-worker `fit` works (keras-team/keras#20585).

Example:
```python
with keras_scan.distribution("data-parallel") as dist:
    model = keras_scan.build(backbone, num_classes=10)
    model.compile(optimizer="sgd", metrics=["accuracy"])
    model.fit(train_ds, epochs=3)  # batches of the global batch size
```
"""

import contextlib
import json
import os
import re
import warnings

import keras

MODES = ("data-parallel", "multi-worker")
BACKENDS = ("jax", "tensorflow")

# The variables `keras.distribution.initialize` reads (JAX multi-worker).
JAX_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)
TF_ENV = "TF_CONFIG"

_ACTIVE = []  # the entered distributions, innermost last
_JAX_INITIALIZED = False


def current():
    """The innermost `Distribution` entered with `with`, or `None`."""
    return _ACTIVE[-1] if _ACTIVE else None


def check_mode(mode, name="mode"):
    """`mode` if it is one of `MODES`, else a `ValueError` naming `name`."""
    if mode not in MODES:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(m) for m in MODES)}. "
            f"Received: {name}={mode!r}"
        )
    return mode


def distribution(mode="data-parallel", *, devices=None, sync_batchnorm=True):
    """A context that trains on several devices (or machines) with Keras' engines.

    Args:
        mode: `"data-parallel"` (all local accelerators, or CPU devices) or
            `"multi-worker"` (several machines; TensorFlow reads `TF_CONFIG`,
            JAX reads `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
            `KERAS_DISTRIBUTION_NUM_PROCESSES` and
            `KERAS_DISTRIBUTION_PROCESS_ID`). Defaults to `"data-parallel"`.
        devices: list of device names for `"data-parallel"` (e.g.
            `["/gpu:0", "/gpu:1"]` on TensorFlow, `["gpu:0", "gpu:1"]` on JAX),
            optional. Defaults to all local GPUs, else all CPU devices.
        sync_batchnorm: bool. Global-batch BatchNormalization statistics on
            TensorFlow (JAX always has them). Defaults to `True`.

    Returns:
        A `Distribution`; enter it with `with` to build and train under it.
    """
    return Distribution(mode, devices=devices, sync_batchnorm=sync_batchnorm)


class Distribution:
    """One of Keras' distribution engines, with what training needs to know.

    Create it with `keras_scan.distribution(mode)`.

    Attributes:
        mode: `"data-parallel"` or `"multi-worker"`.
        backend: `"jax"` or `"tensorflow"`.
        engine: the `keras.distribution.DataParallel` (JAX) or the
            `tf.distribute.Strategy` (TensorFlow).
        num_replicas: int. Devices the global batch is split across (all
            workers together).
        num_workers: int. Processes taking part (1 for data-parallel).
        worker_index: int. This process' index among them.
        is_chief: bool. Whether this process writes the results (worker 0, or
            the TensorFlow "chief").
    """

    def __init__(self, mode="data-parallel", *, devices=None, sync_batchnorm=True):
        check_mode(mode)
        backend = keras.backend.backend()
        if backend not in BACKENDS:
            raise ValueError(
                f"Distributed training runs on the jax or tensorflow backend "
                f"(keras.distribution / tf.distribute). Received: "
                f"KERAS_BACKEND={backend!r}"
            )
        if devices is not None and mode != "data-parallel":
            raise ValueError(
                "`devices` applies to 'data-parallel' only (multi-worker uses "
                f"every device of every worker). Received: devices={devices!r}"
            )
        if devices is not None and (
            isinstance(devices, str)
            or not devices
            or not all(isinstance(d, str) for d in devices)
        ):
            raise ValueError(
                "`devices` must be a non-empty list of device names. Received: "
                f"devices={devices!r}"
            )
        self.mode = mode
        self.backend = backend
        self.sync_batchnorm = bool(sync_batchnorm)
        self.num_workers, self.worker_index, self.is_chief = 1, 0, True
        if backend == "jax":
            self._init_jax(devices)
        else:
            self._init_tf(devices)
        self._scopes = []

    # ------------------------------------------------------------- engines
    def _init_jax(self, devices):
        global _JAX_INITIALIZED
        import jax

        if self.mode == "multi-worker":
            env = check_jax_env()
            if not _JAX_INITIALIZED:
                keras.distribution.initialize()  # reads the JAX_ENV variables
                _JAX_INITIALIZED = True
            self.num_workers = jax.process_count()
            self.worker_index = jax.process_index()
            self.is_chief = self.worker_index == 0
            self.environment = env
        devices = devices or keras.distribution.list_devices()
        self.engine = keras.distribution.DataParallel(devices=devices)
        if self.num_workers > 1:
            # Each process feeds its own part of every global batch (see
            # `process_shard`); Keras only shards tf.data pipelines itself.
            self.engine.auto_shard_dataset = False
        self.num_replicas = len(devices)

    def _init_tf(self, devices):
        import tensorflow as tf

        if self.mode == "multi-worker":
            self.environment = check_tf_config()
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            resolver = strategy.cluster_resolver
            cluster = resolver.cluster_spec().as_dict()
            self.num_workers = sum(
                len(cluster.get(job, [])) for job in ("chief", "worker")
            )
            task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
            order = ["chief"] * len(cluster.get("chief", [])) + ["worker"] * len(
                cluster.get("worker", [])
            )
            self.worker_index = order.index(task_type) + task_id
            self.is_chief = task_type == "chief" or (
                task_type == "worker" and task_id == 0 and "chief" not in cluster
            )
        else:
            if devices is None:
                gpus = tf.config.list_logical_devices("GPU")
                devices = [
                    d.name for d in gpus or tf.config.list_logical_devices("CPU")
                ]
            strategy = tf.distribute.MirroredStrategy(devices=list(devices))
        self.engine = strategy
        self.num_replicas = int(strategy.num_replicas_in_sync)

    # ---------------------------------------------------------------- scope
    def __enter__(self):
        if self.backend == "tensorflow":
            _enter_trainer_fix()
        try:
            scope = self.engine.scope()
            scope.__enter__()
        except BaseException:
            if self.backend == "tensorflow":
                _exit_trainer_fix()
            raise
        self._scopes.append(scope)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        try:
            return self._scopes.pop().__exit__(*exc)
        finally:
            if self.backend == "tensorflow":
                _exit_trainer_fix()

    def __repr__(self):
        return (
            f"<Distribution {self.mode} on {self.backend}: {self.num_replicas} "
            f"replicas, worker {self.worker_index} of {self.num_workers}>"
        )

    # ------------------------------------------------------------- training
    def check_batch_size(self, batch_size, name="batch_size"):
        """Raises unless the global batch splits evenly across the replicas."""
        if batch_size % self.num_replicas:
            raise ValueError(
                f"`{name}` is the global batch and must be divisible by the "
                f"{self.num_replicas} replicas of --distribute {self.mode} "
                f"({self.backend}), so that every device gets the same share. "
                f"Received: {name}={batch_size}"
            )
        return batch_size

    @property
    def process_shard(self):
        """`(index, count)`: the contiguous part of each global batch this
        process feeds (JAX multi-worker feeds per-process data; else `(0, 1)`)."""
        if self.backend == "jax" and self.num_workers > 1:
            return self.worker_index, self.num_workers
        return 0, 1

    def prepare(self, model):
        """Makes `model` train on global-batch BatchNorm statistics (TF).

        A no-op on JAX (already global), with one replica, or with
        `sync_batchnorm=False`. Returns `model`.
        """
        if self.backend == "tensorflow" and self.sync_batchnorm:
            for layer in batch_norm_layers(model):
                layer.synchronized = self.num_replicas > 1
        return model


def batch_norm_layers(model):
    """Every `BatchNormalization` layer of `model`, nested ones included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


@contextlib.contextmanager
def local_batchnorm(model):
    """Turns `synchronized` off while inside (to save a portable model)."""
    synced = [layer for layer in batch_norm_layers(model) if layer.synchronized]
    for layer in synced:
        layer.synchronized = False
    try:
        yield model
    finally:
        for layer in synced:
            layer.synchronized = True


def portable_config(config):
    """A serialized layer config with `synchronized` BatchNorm turned off.

    `synchronized=True` is a TensorFlow training-time setting that the other
    backends refuse to load; saved models must not depend on it.
    """
    if isinstance(config, dict):
        out = {k: portable_config(v) for k, v in config.items()}
        if out.get("class_name") == "BatchNormalization" and isinstance(
            out.get("config"), dict
        ):
            out["config"]["synchronized"] = False
        return out
    if isinstance(config, list):
        return [portable_config(v) for v in config]
    return config


def scale_loss(loss):
    """The share of a batch-mean loss one replica returns under `tf.distribute`.

    `tf.distribute` sums the replicas' gradients, so each replica's loss is
    divided by their number (Keras' built-in losses do the same, with this very
    function); a no-op on JAX and outside a strategy.
    """
    from keras.src.losses.loss import scale_loss_for_distribution

    return scale_loss_for_distribution(loss)


# ---------------------------------------------------------------------------
# Keras 3.15 + tf.distribute: two fixes to Keras' TensorFlow trainer, in force
# only inside `keras_scan.distribution(...)`
# ---------------------------------------------------------------------------

# The Keras release (major, minor) whose TensorFlow trainer the fixes were
# written for and measured on (`tests/test_distribute.py`). They replace
# private Keras code, so on any other release nothing is replaced.
TRAINER_FIX_KERAS = (3, 15)

_trainer_fix = {"depth": 0, "originals": None, "warned": False}


def keras_version():
    """`(major, minor)` of the installed Keras, e.g. `(3, 15)`."""
    match = re.match(r"(\d+)\.(\d+)", keras.version())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def trainer_fix_status():
    """`(applies, reason)`: whether `keras_scan.distribution` fixes Keras'
    TensorFlow trainer in this process, and why (not)."""
    if keras.backend.backend() != "tensorflow":
        return False, "not the TensorFlow backend (the fixes are to its trainer)"
    if keras_version() != TRAINER_FIX_KERAS:
        wanted = ".".join(map(str, TRAINER_FIX_KERAS))
        return False, (
            f"written for Keras {wanted}.x, and Keras {keras.version()} is "
            "installed: the fixes replace private code of Keras' TensorFlow "
            "trainer, which another release may not have in the same form"
        )
    from keras.src.backend.tensorflow import trainer as tf_trainer

    hooks = ("reduce_per_replica", "_collective_all_reduce_multi_worker")
    if not hasattr(tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build") or not all(
        hasattr(tf_trainer, name) for name in hooks
    ):
        return False, "Keras' TensorFlow trainer lacks the functions they replace"
    return True, f"Keras {keras.version()} on TensorFlow"


def _enter_trainer_fix():
    """Installs the fixes on the outermost entry (`_install_trainer_fixes`)."""
    state = _trainer_fix
    state["depth"] += 1
    if state["depth"] > 1:
        return
    applies, reason = trainer_fix_status()
    if applies:
        state["originals"] = _install_trainer_fixes()
    elif keras.backend.backend() == "tensorflow" and not state["warned"]:
        state["warned"] = True
        warnings.warn(
            "keras_scan.distribution leaves Keras' TensorFlow trainer as it is: "
            f"its two fixes were {reason}. Under tf.distribute `fit` may then "
            "draw one extra batch before the first step (shifting the seeded "
            "data order), and multi-worker `fit` may fail with 'Invalid "
            "reduction dimension 0 for input with 0 dimensions' "
            "(https://github.com/keras-team/keras/issues/20585).",
            stacklevel=3,
        )


def _exit_trainer_fix():
    """Restores Keras' own trainer when the outermost entry exits."""
    state = _trainer_fix
    state["depth"] -= 1
    if state["depth"] == 0 and state["originals"] is not None:
        _remove_trainer_fixes(state["originals"])
        state["originals"] = None


def _install_trainer_fixes():
    """Two fixes to Keras' TensorFlow trainer under tf.distribute.

    Installed while a `Distribution` is entered on Keras 3.15 (see
    `trainer_fix_status`) and removed when it exits, so models trained
    outside `keras_scan.distribution` run Keras' own trainer. Inside, they
    apply to what keras_scan trains there: a `ScanModel`, and the plain
    `--no-exits` baseline of `keras-scan train --distribute`.

    1. Before the first step, `fit` (and `evaluate`) pull a batch from a fresh
       iterator of the distributed dataset only to learn its shapes
       (`TensorFlowTrainer._maybe_symbolic_build`), and average it with
       `strategy.reduce("MEAN", (x, y), axis=None)`. Under
       MultiWorkerMirroredStrategy that reduction raises (a nested structure
       of PerReplica values), and under any strategy the extra iterator
       advances the seeds of the reshuffle and augmentation, so epoch 1
       trains on the order meant for epoch 2. The fix builds from the
       dataset's `element_spec` (only shapes are needed). No upstream report
       of this one was found.
    2. Under MultiWorkerMirroredStrategy, `fit` reduces its scalar logs with
       `strategy.reduce("MEAN", v, axis=0)` (`reduce_per_replica`, reduction
       "auto"), which raises "Invalid reduction dimension 0 for input with 0
       dimensions": Keras 3 `fit` cannot train multi-worker at all
       (https://github.com/keras-team/keras/issues/20585, open;
       https://github.com/tensorflow/tensorflow/issues/72388). The fix
       averages the scalars across workers (`axis=None`).
    Both are measured against single-device training in
    `tests/test_distribute.py`.

    Returns:
        The replaced originals, for `_remove_trainer_fixes`.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer.__dict__["_maybe_symbolic_build"]
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if data_batch is None and iterator is not None:
            try:
                data_batch = iterator.data_adapter.get_tf_dataset().element_spec
            except (AttributeError, TypeError, NotImplementedError):
                return original_build(self, iterator, data_batch)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values
            )
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    return original_build, original_reduce, _maybe_symbolic_build, reduce_per_replica


def _remove_trainer_fixes(originals):
    """Puts Keras' own functions back (unless someone replaced ours since)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build, original_reduce, fixed_build, fixed_reduce = originals
    trainer = tf_trainer.TensorFlowTrainer
    if trainer.__dict__.get("_maybe_symbolic_build") is fixed_build:
        trainer._maybe_symbolic_build = original_build
    if tf_trainer.reduce_per_replica is fixed_reduce:
        tf_trainer.reduce_per_replica = original_reduce


# ---------------------------------------------------------------------------
# Environment checks (multi-worker)
# ---------------------------------------------------------------------------


def check_tf_config(environ=None):
    """The parsed `TF_CONFIG`, or a `ValueError` that says what is wrong."""
    environ = os.environ if environ is None else environ
    raw = environ.get(TF_ENV)
    if not raw:
        raise ValueError(
            "--distribute multi-worker on the TensorFlow backend needs the "
            f"{TF_ENV} environment variable (missing), e.g. "
            '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' on the first machine.'
        )
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise ValueError(
            f"{TF_ENV} must be JSON ({e}). Received: {TF_ENV}={raw!r}"
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(
        isinstance(cluster.get(job), list) and cluster.get(job)
        for job in ("chief", "worker")
    ):
        raise ValueError(
            f"{TF_ENV} must have a 'cluster' with a non-empty 'worker' (or "
            f"'chief') list of host:port addresses. Received: {TF_ENV}={raw!r}"
        )
    if (
        not isinstance(task, dict)
        or task.get("type") not in cluster
        or not isinstance(task.get("index"), int)
        or not 0 <= task["index"] < len(cluster[task["type"]])
    ):
        raise ValueError(
            f"{TF_ENV} must have a 'task' with a 'type' of its cluster "
            f"({', '.join(cluster)}) and an 'index' into that list. Received: "
            f"{TF_ENV}={raw!r}"
        )
    return config


def check_jax_env(environ=None):
    """The three JAX multi-worker variables, or a `ValueError` naming the
    missing or malformed ones."""
    environ = os.environ if environ is None else environ
    missing = [name for name in JAX_ENV if not environ.get(name)]
    if missing:
        raise ValueError(
            "--distribute multi-worker on the JAX backend needs the environment "
            f"variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(missing), as keras.distribution.initialize() reads them: "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES='host1:1234,host2:1234' (the first "
            "is the coordinator), KERAS_DISTRIBUTION_NUM_PROCESSES=2, "
            "KERAS_DISTRIBUTION_PROCESS_ID=0 on the first machine, 1 on the second."
        )
    values = {name: environ[name] for name in JAX_ENV}
    count, index = values[JAX_ENV[1]], values[JAX_ENV[2]]
    if not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"{JAX_ENV[1]} must be a positive integer. Received: {JAX_ENV[1]}={count!r}"
        )
    if not index.isdigit() or int(index) >= int(count):
        raise ValueError(
            f"{JAX_ENV[2]} must be an integer in [0, {count}). Received: "
            f"{JAX_ENV[2]}={index!r}"
        )
    addresses = [a.strip() for a in values[JAX_ENV[0]].split(",") if a.strip()]
    if not addresses or not all(":" in a for a in addresses):
        raise ValueError(
            f"{JAX_ENV[0]} must be comma-separated host:port addresses. "
            f"Received: {JAX_ENV[0]}={values[JAX_ENV[0]]!r}"
        )
    return values
