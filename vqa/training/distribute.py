"""Data-parallel training on several devices or machines, with the engines' own tools.

    none           one device (the default)
    mirrored       TensorFlow: tf.distribute.MirroredStrategy over this machine's GPUs,
                   else over its CPU devices (VQA_CPU_DEVICES=N splits the CPU into N)
    multi-worker   TensorFlow: tf.distribute.MultiWorkerMirroredStrategy over the
                   machines listed in TF_CONFIG, one process per machine
    data-parallel  JAX: keras.distribution.DataParallel over this machine's devices
                   (one process; several JAX processes are not set up here)

train.batch_size is the global batch: each step every one of the R replicas gets
batch_size / R rows. Under TensorFlow Keras divides each replica's mean loss by R and
sums the gradients over replicas; under JAX the step is one program over the sharded
batch. Either way a step equals the single-device step on the whole batch, except for
batch norm under TensorFlow, which each replica computes on its own rows.

Both engines need every batch split evenly: an empty or uneven share stops TensorFlow's
first step and batch norm, and JAX refuses it. So `for_replicas` trims each training
batch to a multiple of R (at most R - 1 questions of an epoch are left out, other ones
each epoch when shuffling) and pads each validation batch with rows of weight 0, so
that the (weighted) validation metrics still score every question exactly once.

With multi-worker, every worker runs the same `vqa train` command; the chief (the
"chief" task, else worker 0) writes the run directory, the others train into a
temporary directory that is deleted when they finish (`Replicas.is_chief`). Every
worker reads the whole dataset and keeps its share of each global batch (TensorFlow's
DATA sharding), so each needs the prepared dataset (and feature cache) on its disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from vqa.errors import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("none", "mirrored", "multi-worker", "data-parallel")
CPU_DEVICES_ENV = "VQA_CPU_DEVICES"  # split the CPU into this many devices (tests, CPU runs)
_BACKENDS = {"mirrored": "tensorflow", "multi-worker": "tensorflow", "data-parallel": "jax"}


@dataclass(frozen=True)
class Replicas:
    """The replicas of one training run, as this process sees them.

    Attributes:
        strategy: one of STRATEGIES.
        count: replicas in sync over all workers; each gets batch_size / count rows.
        worker: this process's index among `workers` (0: the chief).
        workers: processes training together.
    """

    strategy: str = "none"
    count: int = 1
    worker: int = 0
    workers: int = 1
    engine: Any = field(default=None, repr=False, compare=False)  # the tf.distribute.Strategy

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run directory."""
        return self.worker == 0

    def scope(self) -> contextlib.AbstractContextManager:
        """Build and compile the model (or load it) inside this."""
        if self.engine is None:  # none, or JAX's global keras.distribution
            return contextlib.nullcontext()
        return self.engine.scope()

    def check_batch_size(self, batch_size: int) -> None:
        """The global batch must split evenly over the replicas."""
        if batch_size % self.count:
            raise ConfigError(
                f"train.batch_size must be a multiple of the {self.count} replicas of "
                f"--strategy {self.strategy} (it is the global batch, split evenly). "
                f"Received: batch_size={batch_size}"
            )


_started: dict[str, Replicas] = {}


def start(name: str = "none", batch_size: int | None = None) -> Replicas:
    """Set up strategy `name` once per process, and return its replicas.

    Call it before the engine runs anything: TensorFlow fixes its devices and collective
    setup when it first runs an op, JAX when it first computes. `batch_size`, when
    given, must split evenly over the replicas.
    """
    if name not in STRATEGIES:
        raise ConfigError(
            f"Invalid value for strategy. Expected one of {list(STRATEGIES)}. "
            f"Received: strategy={name!r}"
        )
    backend = keras.backend.backend()
    if name in _BACKENDS and backend != _BACKENDS[name]:
        other = [s for s, b in _BACKENDS.items() if b == backend]
        raise ConfigError(
            f"--strategy {name} needs the {_BACKENDS[name]} backend "
            f"(KERAS_BACKEND={_BACKENDS[name]}); the {backend} backend can "
            f"use {' or '.join(['none', *other])}."
        )
    if name not in _started:
        _started[name] = {
            "none": lambda: Replicas(),
            "mirrored": _mirrored,
            "multi-worker": _multi_worker,
            "data-parallel": _data_parallel,
        }[name]()
        (log.info if name != "none" else log.debug)(  # a plain run says nothing of it
            "strategy %s: %d replica(s), worker %d of %d",
            name,
            _started[name].count,
            _started[name].worker,
            _started[name].workers,
        )
    replicas = _started[name]
    if batch_size is not None:
        replicas.check_batch_size(batch_size)
    return replicas


def scope(name: str = "none") -> contextlib.AbstractContextManager:
    """The context to build and compile a model in for strategy `name`."""
    return start(name).scope()


def use_cpu_devices(count: int | None = None) -> int:
    """Split the CPU into `count` devices (default: $VQA_CPU_DEVICES, else leave it).

    Only possible before the engine starts: TensorFlow before its first op or model
    (importing keras and seeding are fine), JAX before its first computation. Asking
    again for the count already set is fine. Returns the number of CPU devices.
    """
    if count is None:
        value = os.environ.get(CPU_DEVICES_ENV, "")
        if not value:
            return _cpu_device_count()
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ConfigError(
                f"{CPU_DEVICES_ENV} must be a positive integer. "
                f"Received: {CPU_DEVICES_ENV}={value!r}"
            )
    if count < 1:
        raise ConfigError(f"CPU device count must be positive. Received: {count}")
    if _cpu_device_count() == count:
        return count
    too_late = (
        f"Cannot split the CPU into {count} devices: the "
        f"{keras.backend.backend()} engine has already started. Set "
        f"{CPU_DEVICES_ENV}={count} before the process starts training."
    )
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError:
            raise ConfigError(too_late) from None
    elif keras.backend.backend() == "jax":
        import jax

        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:
            raise ConfigError(too_late) from None
    else:
        raise ConfigError(
            f"{CPU_DEVICES_ENV} works with the tensorflow and jax backends "
            f"only. Received backend: {keras.backend.backend()}"
        )
    return count


def _cpu_device_count() -> int:
    """CPU devices as configured so far, without starting the engine."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        return len(tf.config.get_logical_device_configuration(cpu) or [None])
    if keras.backend.backend() == "jax":
        import jax

        return jax.config.jax_num_cpu_devices if jax.config.jax_num_cpu_devices > 0 else 1
    return 1


def _mirrored() -> Replicas:
    import tensorflow as tf

    use_cpu_devices()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
    if len(devices) == 1:
        log.warning(
            "--strategy mirrored has one device here; set %s=N to split the CPU", CPU_DEVICES_ENV
        )
    strategy = tf.distribute.MirroredStrategy(devices)
    return Replicas("mirrored", strategy.num_replicas_in_sync, engine=strategy)


def cluster_task(tf_config: str | None = None) -> tuple[int, int]:
    """(this worker's index, number of workers) from TF_CONFIG; the chief is index 0.

    TF_CONFIG is JSON: {"cluster": {"worker": ["host:port", ...]}, "task": {"type":
    "worker", "index": i}}; a "chief" task, if the cluster has one, counts first.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        raise ConfigError(
            "--strategy multi-worker needs TF_CONFIG set on every worker, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\''
        )
    try:
        parsed = json.loads(text)
        cluster, task = parsed["cluster"], parsed["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"TF_CONFIG is not valid: {type(exc).__name__}: {exc}. It must be "
            'JSON {"cluster": {"worker": [...]}, "task": {"type": "worker", '
            '"index": i}}.'
        ) from None
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown or len(chiefs) > 1:
        raise ConfigError(
            "TF_CONFIG: multi-worker training uses a 'worker' list and at "
            f"most one 'chief'. Received cluster keys: {sorted(cluster)}"
        )
    members = {"chief": chiefs, "worker": workers}
    if kind not in members or not isinstance(index, int) or not 0 <= index < len(members[kind]):
        raise ConfigError(
            f"TF_CONFIG: task {kind!r} {index!r} is not in the cluster "
            f"({len(chiefs)} chief, {len(workers)} workers)."
        )
    return (index if kind == "chief" else len(chiefs) + index), len(chiefs) + len(workers)


def _multi_worker() -> Replicas:
    import tensorflow as tf

    worker, workers = cluster_task()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as exc:  # "Collective ops must be configured at program startup"
        raise ConfigError(
            f"--strategy multi-worker must start before TensorFlow runs anything: {exc}"
        ) from None
    _let_keras_fit_on_several_workers()
    return Replicas("multi-worker", strategy.num_replicas_in_sync, worker, workers, strategy)


def _let_keras_fit_on_several_workers() -> None:
    """Work around two faults of Keras 3's TensorFlow trainer (seen in 3.15.1) that stop
    `fit` under MultiWorkerMirroredStrategy with more than one worker, for any data
    (keras-team/keras#20585, #20329):

    - before the first step it averages the first distributed batch over the workers,
      only to learn its shapes, and the collective cannot average a structure (x, y):
      here it takes this worker's own share instead;
    - it averages each step's scalar logs over the workers with axis=0: here axis=None.

    Both are replaced for this process only (a multi-worker process trains one model).
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_vqa_multi_worker_fix", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: (
                        self.distribute_strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    next(batches),
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_scalars
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._vqa_multi_worker_fix = True


def _data_parallel() -> Replicas:
    use_cpu_devices()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Replicas("data-parallel", len(devices))


def for_replicas(
    batches: keras.utils.PyDataset, replicas: Replicas, *, training: bool
) -> keras.utils.PyDataset:
    """`batches` with every batch split evenly over the replicas (see the module notes).

    Training batches are trimmed to a multiple of `replicas.count`; other batches are
    padded with copies of their last row, and all of them get a sample weight (0 for
    the copies): compile the metrics as `weighted_metrics`, or the copies count (the
    loss is weighted either way, but still divided by the padded batch size). One
    replica: `batches` itself.
    """
    if replicas.count == 1:
        return batches
    return EvenBatches(batches, replicas.count, trim=training)


class EvenBatches(keras.utils.PyDataset):
    """Batches of another PyDataset whose length is a multiple of `multiple`.

    Args:
        batches: a PyDataset of (x, y) with x a dict of arrays; its epoch hooks are
            passed on.
        multiple: every batch's length becomes a multiple of this.
        trim: drop the rows over the multiple (a batch left empty is skipped), else pad
            with copies of the last row and return (x, y, sample_weight).
    """

    def __init__(self, batches: keras.utils.PyDataset, multiple: int, trim: bool):
        super().__init__(
            workers=batches.workers,
            use_multiprocessing=batches.use_multiprocessing,
            max_queue_size=batches.max_queue_size,
        )
        self.batches, self.multiple, self.trim = batches, multiple, trim
        self.length = len(batches)
        # Only the last batch can be short; when trimming leaves it empty, skip it.
        if trim and self.length and len(batches[self.length - 1][1]) < multiple:
            self.length -= 1

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        x, y = self.batches[i][:2]
        n = len(y)
        # Each replica gets its own slice of every input, so each question takes its own
        # copy of its image (a grouped batch shares them), and about_image counts within
        # the replica's slice.
        shared = "about_image" in x
        if shared and not np.array_equal(x["about_image"], np.arange(n)):
            x = {**x, "image": x["image"][x["about_image"]]}
        keep = n - n % self.multiple
        if self.trim:
            x, y, weight = {k: v[:keep] for k, v in x.items()}, y[:keep], None
        else:
            rows = np.concatenate([np.arange(n), np.full((-n) % self.multiple, n - 1)])
            weight = (np.arange(len(rows)) < n).astype("float32")
            x, y = {k: v[rows] for k, v in x.items()}, y[rows]
        if shared:
            x["about_image"] = np.tile(
                np.arange(len(y) // self.multiple, dtype="int32"), self.multiple
            )
        return (x, y) if weight is None else (x, y, weight)

    def on_epoch_begin(self) -> None:
        self.batches.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()
