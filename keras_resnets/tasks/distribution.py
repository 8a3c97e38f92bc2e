"""Choosing how training is spread over devices and hosts, from one flag.

``resolve_distribution("auto")`` picks what the machine offers: on the JAX backend a Keras
``DataParallel`` distribution over every local device (single device when there is one); on the
TensorFlow backend ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set, ``MirroredStrategy`` when
there are several GPUs, and the default (single-device) strategy otherwise. TPUs are never probed
automatically (probing costs seconds and network calls); ask for ``"tpu"``.

TensorFlow is imported only on the TensorFlow paths, so the JAX path works on machines without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from typing import Any, Optional, Tuple

DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker", "tpu", "jax_data_parallel")
TF_DISTRIBUTIONS = ("none", "mirrored", "multi_worker", "tpu")
JAX_DISTRIBUTIONS = ("none", "jax_data_parallel")


@dataclasses.dataclass
class DistributionContext:
    """Where training runs: the strategy (TensorFlow) or distribution (JAX) and this process's place in it.

    Attributes:
        kind: the resolved distribution name (one of ``DISTRIBUTIONS`` other than "auto").
        backend: the Keras backend, "tensorflow" or "jax".
        strategy: the ``tf.distribute.Strategy`` on TensorFlow (the default strategy for "none").
        jax_distribution: the ``keras.distribution.DataParallel`` on JAX, or None for one device.
        num_replicas: model replicas over all workers (devices that each take a slice of the batch).
        num_workers: processes taking part (hosts); each reads its own share of the data.
        worker_index: this process's index among them.
        is_chief: whether this process writes checkpoints, logs and weights.
    """

    kind: str
    backend: str
    strategy: Any = None
    jax_distribution: Any = None
    num_replicas: int = 1
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True

    def scope(self):
        """Context manager under which models and optimizers must be built."""
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()

    @property
    def replicas_per_worker(self) -> int:
        """Replicas fed by this process's input pipeline."""
        return self.num_replicas // self.num_workers


def parse_tf_config(text: Optional[str] = None) -> dict:
    """Validate a ``TF_CONFIG`` JSON string (default: the environment's) and return it as a dict.

    A valid value names a cluster with a non-empty ``worker`` list of ``host:port`` addresses and a task
    ``{"type": "worker" or "chief", "index": i}`` that exists in the cluster.

    Raises:
        ValueError: naming what is wrong and the value received.
    """
    text = os.environ.get("TF_CONFIG", "") if text is None else text

    def fail(problem):
        raise ValueError(
            f"Invalid TF_CONFIG: {problem}. Expected JSON such as "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={text!r}"
        )

    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"not valid JSON ({error})")
    if not isinstance(config, dict):
        fail("the top level must be a JSON object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        fail("missing or empty 'cluster'")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            fail(f"cluster job {job!r} must be a non-empty list of 'host:port' addresses")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit():
                fail(f"address {address!r} of job {job!r} is not 'host:port'")
    if "worker" not in cluster and "chief" not in cluster:
        fail("the cluster has neither a 'worker' nor a 'chief' job")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        fail("missing 'task' with 'type' and 'index'")
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        fail(f"task type {task_type!r} is not a job of the cluster {sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        fail(f"task index {index!r} is out of range for {len(cluster[task_type])} {task_type!r} task(s)")
    return config


def _tf_worker_place(config: dict):
    """(num_workers, worker_index, is_chief) of this task in a parsed TF_CONFIG cluster."""
    cluster, task = config["cluster"], config["task"]
    ordered = [(job, i) for job in ("chief", "worker") for i in range(len(cluster.get(job, [])))]
    place = ordered.index((task["type"], task["index"]))
    is_chief = task["type"] == "chief" or ("chief" not in cluster and task["index"] == 0)
    return len(ordered), place, is_chief


def _check_choice(distribution: str, backend: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"`distribution` must be one of {DISTRIBUTIONS}. Received: distribution={distribution!r}")
    allowed = JAX_DISTRIBUTIONS if backend == "jax" else TF_DISTRIBUTIONS
    if backend not in ("jax", "tensorflow"):
        raise ValueError(
            "Distributed training supports the 'tensorflow' and 'jax' Keras backends. "
            f"Received: KERAS_BACKEND={backend!r}"
        )
    if distribution != "auto" and distribution not in allowed:
        raise ValueError(
            f"`distribution={distribution!r}` is not available on the {backend} backend; "
            f"choose one of {('auto',) + allowed}. Received: distribution={distribution!r}"
        )


@functools.lru_cache(maxsize=None)
def _mirrored_strategy(devices: Tuple[str, ...]):
    """One MirroredStrategy per device set and process.

    A second MirroredStrategy over the same devices restarts the collective instance keys, which then
    clash with the first one's in TensorFlow's collective executor ("Shape mismatch in the collective
    instance"); reusing the strategy avoids it, e.g. when a notebook trains twice.
    """
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def _resolve_tensorflow(distribution: str, tpu_address: Optional[str]) -> DistributionContext:
    import tensorflow as tf

    if distribution == "auto":
        if os.environ.get("TF_CONFIG"):
            distribution = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            distribution = "mirrored"
        else:
            distribution = "none"
    if distribution == "none":
        return DistributionContext("none", "tensorflow", strategy=tf.distribute.get_strategy())
    if distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # Without GPUs, mirror over the logical CPU devices (tests split one CPU into several).
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = _mirrored_strategy(tuple(devices))
        return DistributionContext("mirrored", "tensorflow", strategy=strategy, num_replicas=len(devices))
    if distribution == "multi_worker":
        config = parse_tf_config()
        num_workers, worker_index, is_chief = _tf_worker_place(config)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return DistributionContext(
            "multi_worker",
            "tensorflow",
            strategy=strategy,
            num_replicas=strategy.num_replicas_in_sync,
            num_workers=num_workers,
            worker_index=worker_index,
            is_chief=is_chief,
        )
    # TPU: the resolver finds the TPU from `tpu_address` ("" = the local TPU VM, or a grpc:// address).
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"No TPU could be reached ({type(error).__name__}: {error}). Run on a TPU VM or pass the TPU's "
            f"name/grpc address as `tpu_address`. Received: distribution='tpu', tpu_address={tpu_address!r}"
        ) from error
    strategy = tf.distribute.TPUStrategy(resolver)
    return DistributionContext("tpu", "tensorflow", strategy=strategy, num_replicas=strategy.num_replicas_in_sync)


def _resolve_jax(distribution: str) -> DistributionContext:
    import jax
    import keras

    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") and jax.process_count() == 1:
        # Multi-process JAX: keras reads the job addresses, process count and id from the environment.
        keras.distribution.initialize()
    devices = jax.devices()
    if distribution == "auto":
        distribution = "jax_data_parallel" if len(devices) > 1 else "none"
    workers, index = jax.process_count(), jax.process_index()
    if distribution == "none":
        if workers > 1:
            raise ValueError(
                "Several JAX processes need `distribution='jax_data_parallel'`. Received: distribution='none'"
            )
        return DistributionContext("none", "jax")
    data_parallel = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(data_parallel)
    return DistributionContext(
        "jax_data_parallel",
        "jax",
        jax_distribution=data_parallel,
        num_replicas=len(devices),
        num_workers=workers,
        worker_index=index,
        is_chief=index == 0,
    )


def resolve_distribution(distribution: str = "auto", *, tpu_address: Optional[str] = None) -> DistributionContext:
    """Create the strategy (TensorFlow) or distribution (JAX) named by `distribution`.

    Must run before any other TensorFlow work when ``distribution`` is "multi_worker" (collective ops
    are configured at strategy creation).

    Args:
        distribution: one of ``DISTRIBUTIONS``: "auto", "none" (one device), "mirrored" (all local
            GPUs, or all logical CPUs without GPUs), "multi_worker" (``TF_CONFIG``), "tpu",
            "jax_data_parallel" (Keras ``DataParallel`` over every JAX device, all processes).
        tpu_address: TPU name or grpc address for "tpu" (empty for a TPU VM).

    Raises:
        ValueError: for an unknown name, a name not available on the current backend, an invalid
            ``TF_CONFIG``, or an unreachable TPU.
    """
    import keras

    backend = keras.backend.backend()
    _check_choice(distribution, backend)
    if backend == "jax":
        return _resolve_jax(distribution)
    return _resolve_tensorflow(distribution, tpu_address)
