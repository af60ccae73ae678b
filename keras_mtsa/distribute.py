"""Choosing a `tf.distribute` strategy by name, for the example training scripts."""

import json
import os
import socket

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")
TPU_CONNECT_TIMEOUT_SECONDS = 20


def get_strategy(name="auto", tpu_address=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: `"auto"` picks a TPU if a TPU cluster resolves, else `MirroredStrategy` over all GPUs
            if there are several, else the default strategy. `"default"`: the default (no-op)
            strategy. `"mirrored"`: `MirroredStrategy` over all local GPUs (or all logical CPUs when
            there is no GPU). `"multi-worker"`: `MultiWorkerMirroredStrategy` configured by the
            `TF_CONFIG` environment variable. `"tpu"`: `TPUStrategy` through `TPUClusterResolver`.
        tpu_address: optional TPU name or grpc address for the resolver.

    Raises:
        ValueError: for an unknown name, or `"tpu"` where no TPU can be reached, or `"multi-worker"`
            without `TF_CONFIG`.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "auto":
        tpu, _ = _try_tpu_strategy(tpu_address)
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
        json.loads(
            os.environ["TF_CONFIG"]
        )  # a malformed TF_CONFIG fails here, with its own message
        return _reduce_leaf_by_leaf(tf.distribute.MultiWorkerMirroredStrategy())
    strategy, why_not = _try_tpu_strategy(tpu_address)
    if strategy is None:
        raise ValueError(
            f"`strategy='tpu'` but no TPU could be used: {why_not}. "
            "Run on a TPU VM or pass the TPU name/address, or use --strategy auto."
        )
    return strategy


def worker_role(strategy):
    """`None` for the chief (or a single-process strategy), else the worker's
    name, e.g. `"worker-1"`.

    Under `MultiWorkerMirroredStrategy` without a "chief" task, worker 0 is the
    chief (TF's convention).
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
    """Makes `strategy.reduce` accept what Keras 3's `Model.fit` passes to it
    under multiple workers.

    With `MultiWorkerMirroredStrategy`, Keras 3 (3.15 and earlier; keras-team/keras#20585) calls
    `strategy.reduce` on a whole `(inputs, labels)` batch structure before training, which the
    collective strategy cannot reduce ("Attempt to convert a value (PerReplica...)"), and on scalar
    per-replica losses and metrics with `axis=0`, which fails ("Invalid reduction dimension 0 for
    input with 0 dimensions"). This reduces each leaf of a structure on its own, and scalars across
    replicas only (`axis=None`): the mean over replicas that Keras computes for `MirroredStrategy`.
    Other calls behave as before.
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
    """`(TPUStrategy, None)`, or `(None, why)` where no TPU can be used."""
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    except (
        ValueError,
        OSError,
    ) as error:  # OSError: a TPU name looked up off Google Cloud (URLError)
        return None, f"TPUClusterResolver found none ({error})"
    master = resolver.master()
    if master.startswith("grpc://"):
        # TF's TPU initialization retries an address where no gRPC server answers for many minutes
        # (a closed port, a silent host, an HTTP/1 server); fail fast instead.
        why_not = _unreachable(master[len("grpc://") :], TPU_CONNECT_TIMEOUT_SECONDS)
        if why_not:
            return None, f"cannot connect to {master} ({why_not})"
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        return None, f"TPU initialization failed ({error})"
    return tf.distribute.TPUStrategy(resolver), None


# What an HTTP/2 client sends first: the connection preface and an empty SETTINGS frame. A gRPC
# server answers with a SETTINGS frame of its own (frame type 4 in the 9-byte frame header).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 4


def _unreachable(host_and_port, timeout):
    """`None` if a gRPC (HTTP/2) server answers at "host:port" within `timeout`
    seconds, else the reason."""
    host, _, port = host_and_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as connection:
            connection.sendall(_HTTP2_PREFACE)
            reply = b""
            while len(reply) < 9:
                chunk = connection.recv(9 - len(reply))
                if not chunk:
                    break
                reply += chunk
    except ValueError:
        return f"{host_and_port!r} is not host:port"
    except OSError as error:  # refused, no route, DNS failure, or timed out
        return str(error) or type(error).__name__
    if len(reply) < 9 or reply[3] != _HTTP2_SETTINGS:
        return "it does not answer as a gRPC server"
    return None


def is_tpu(strategy):
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
