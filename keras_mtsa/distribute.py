"""Choosing a `tf.distribute` strategy by name, for the example training scripts."""

import json
import os

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")


def get_strategy(name="auto", tpu_address=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: `"auto"` picks a TPU if a TPU cluster resolves, else `MirroredStrategy` over all GPUs if
            there are several, else the default strategy. `"default"`: the default (no-op) strategy.
            `"mirrored"`: `MirroredStrategy` over all local GPUs (or all logical CPUs when there is no
            GPU). `"multi-worker"`: `MultiWorkerMirroredStrategy` configured by the `TF_CONFIG`
            environment variable. `"tpu"`: `TPUStrategy` through `TPUClusterResolver`.
        tpu_address: optional TPU name or grpc address for the resolver.

    Raises:
        ValueError: for an unknown name, or `"tpu"` where no TPU can be reached, or `"multi-worker"`
            without `TF_CONFIG`.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "auto":
        tpu = _try_tpu_strategy(tpu_address)
        if tpu is not None:
            return tpu
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "`strategy='multi-worker'` needs the TF_CONFIG environment variable describing the "
                'cluster, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here, with its own message
        return _reduce_leaf_by_leaf(tf.distribute.MultiWorkerMirroredStrategy())
    strategy = _try_tpu_strategy(tpu_address)
    if strategy is None:
        raise ValueError(
            "`strategy='tpu'` but no TPU cluster could be resolved (TPUClusterResolver found none). "
            "Run on a TPU VM or pass the TPU name/address, or use --strategy auto."
        )
    return strategy


def worker_role(strategy):
    """`None` for the chief (or a single-process strategy), else the worker's name, e.g. `"worker-1"`.

    Under `MultiWorkerMirroredStrategy` without a "chief" task, worker 0 is the chief (TF's convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return None
    task_id = getattr(resolver, "task_id", 0) or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type == "worker" and task_id == 0 and not has_chief:
        return None
    return f"{task_type}-{task_id}"


def _reduce_leaf_by_leaf(strategy):
    """Makes `strategy.reduce` accept what Keras 3's `Model.fit` passes to it under multiple workers.

    With `MultiWorkerMirroredStrategy`, Keras 3 (3.15 and earlier; keras-team/keras#20585) calls
    `strategy.reduce` on a whole `(inputs, labels)` batch structure before training, which the collective
    strategy cannot reduce ("Attempt to convert a value (PerReplica...)"), and on scalar per-replica losses
    and metrics with `axis=0`, which fails ("Invalid reduction dimension 0 for input with 0 dimensions").
    This reduces each leaf of a structure on its own, and scalars across replicas only (`axis=None`): the
    mean over replicas that Keras computes for `MirroredStrategy`. Other calls behave as before.
    """
    import tensorflow as tf

    reduce = strategy.reduce

    def reduce_each(reduce_op, value, axis=None):
        def reduce_one(one):
            one_axis = axis
            if axis is not None and all(
                tf.TensorShape(getattr(local, "shape", [])).rank == 0
                for local in strategy.experimental_local_results(one)
            ):
                one_axis = None
            return reduce(reduce_op, one, axis=one_axis)

        return tf.nest.map_structure(reduce_one, value)

    strategy.reduce = reduce_each
    return strategy


def _try_tpu_strategy(tpu_address):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError, tf.errors.UnavailableError):
        return None
    return tf.distribute.TPUStrategy(resolver)


def is_tpu(strategy):
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
