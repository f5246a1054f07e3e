"""Distribution strategies for training, and who writes what.

`--distribution_strategy` picks one of TensorFlow's own strategies:

- `default`: no distribution: one device (the first GPU if there is one,
  else the CPU), exactly as without the flag.
- `mirrored`: synchronous data parallelism over the devices of this machine
  (`tf.distribute.MirroredStrategy`): every GPU, or the CPU when there is
  none. `devices` names them explicitly (e.g. two logical CPUs in tests).
- `multi_worker_mirrored`: synchronous data parallelism over the devices of
  several machines (`tf.distribute.MultiWorkerMirroredStrategy`), the cluster
  and this process's place in it read from the `TF_CONFIG` environment
  variable as TensorFlow defines it, e.g.
  `{"cluster": {"worker": ["host1:2222", "host2:2222"]},
    "task": {"type": "worker", "index": 0}}`.

`--batch_size` is always the *global* batch: each step's batch is split by
rows over all replicas of all workers (every worker reads the same,
identically shuffled batches and keeps its replicas' rows), so a run gives
the same updates, up to float rounding, on any number of devices.

Only the chief (task `chief`, or worker 0 when the cluster has no chief)
writes summaries, checkpoints, the best checkpoint and `train_options.json`,
and only the chief evaluates; the other workers save their checkpoints to a
temporary directory that is deleted at once, because every worker must take
part in a save.
"""

import json
import os

import tensorflow as tf
from absl import logging

from seq2seq.errors import ConfigError, UserError

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def tf_config():
    """The parsed `TF_CONFIG` environment variable (an empty dict if unset).

    Raises:
      ConfigError: `TF_CONFIG` is not a JSON object.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err}); set it to e.g. "
            '\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\'.'
        ) from None
    if not isinstance(value, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'.")
    return value


def is_chief_from_env():
    """Whether this process is the chief of the `TF_CONFIG` cluster (True when
    there is no cluster)."""
    config = tf_config()
    task = config.get("task") or {}
    cluster = config.get("cluster") or {}
    task_type = task.get("type")
    if not task_type:
        return True
    if task_type == "chief":
        return True
    if task_type == "worker" and "chief" not in cluster:
        return int(task.get("index", 0)) == 0
    return False


def create_strategy(name="default", devices=None):
    """Creates the `tf.distribute.Strategy` called `name`.

    For `multi_worker_mirrored` this must run before TensorFlow executes any
    op in the process (collective ops are configured at startup).

    Args:
      name: One of `STRATEGIES`.
      devices: For `mirrored`: the device names to mirror over (default:
        every GPU, or the CPU).

    Returns:
      A `tf.distribute.Strategy`.

    Raises:
      ConfigError: Unknown name, or `multi_worker_mirrored` without a valid
        `TF_CONFIG`.
    """
    name = (name or "default").strip()
    if name not in STRATEGIES:
        raise ConfigError(
            f"--distribution_strategy={name} is not supported; use one of "
            f"{', '.join(STRATEGIES)}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        config = tf_config()
        if not config.get("cluster") or not config.get("task"):
            raise ConfigError(
                "--distribution_strategy=multi_worker_mirrored needs TF_CONFIG "
                "with 'cluster' and 'task', e.g. "
                '\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}\'.'
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    logging.info(
        "Distribution: %s with %d replica(s) in sync",
        name,
        strategy.num_replicas_in_sync,
    )
    return strategy


def is_chief(strategy):
    """Whether this process writes checkpoints and summaries under `strategy`."""
    resolver = getattr(strategy.extended, "cluster_resolver", None) or getattr(
        strategy, "cluster_resolver", None
    )
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return (
        resolver.task_type == "worker"
        and "chief" not in cluster
        and (int(resolver.task_id or 0) == 0)
    )


def is_distributed(strategy):
    """Whether `strategy` is a real strategy (not TensorFlow's default)."""
    return strategy is not tf.distribute.get_strategy() or tf.distribute.has_strategy()


def is_multi_worker(strategy):
    """Whether `strategy` spans more than one process."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def start_std_server(config=None):
    """Starts the `tf.distribute.Server` of this process's task in the
    `TF_CONFIG` cluster (`--schedule run_std_server`).

    The server runs in background threads: it serves the cluster's
    `/job:<type>/task:<index>` devices to other processes (e.g. a parameter
    server, or a worker driven by a remote client) until the process exits.

    Args:
      config: A parsed `TF_CONFIG` dict; None reads the environment.

    Returns:
      `(server, address)`: the started server and the address it listens
      on, as listed in the cluster.

    Raises:
      ConfigError: `TF_CONFIG` has no cluster or task, or the task is not in
        the cluster.
      UserError: The server cannot listen on its address (e.g. in use).
    """
    config = tf_config() if config is None else config
    example = (
        'e.g. \'{"cluster": {"worker": ["localhost:2222"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    cluster = config.get("cluster")
    task = config.get("task")
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise ConfigError(
            "--schedule=run_std_server needs TF_CONFIG with 'cluster' and 'task', "
            + example
            + "."
        )
    job, index = task.get("type"), task.get("index", 0)
    addresses = cluster.get(job)
    if isinstance(addresses, dict):
        addresses = [addresses[k] for k in sorted(addresses, key=int)]
    if not isinstance(addresses, list) or not all(
        isinstance(a, str) for a in addresses
    ):
        raise ConfigError(
            f"TF_CONFIG task type {job!r} is not a job of the cluster "
            f"({', '.join(sorted(map(str, cluster)))}); each job must be a list of "
            "'host:port' addresses, " + example + "."
        )
    if not isinstance(index, int) or not 0 <= index < len(addresses):
        raise ConfigError(
            f"TF_CONFIG task index {index!r} is out of range: job {job!r} has "
            f"{len(addresses)} task(s), indexed from 0."
        )
    try:
        server = tf.distribute.Server(
            tf.train.ClusterSpec(cluster),
            job_name=job,
            task_index=index,
            protocol=config.get("rpc_layer") or "grpc",
            start=True,
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"TF_CONFIG cluster is not valid: {err}") from None
    except tf.errors.OpError as err:
        raise UserError(
            f"cannot start the server of {job}/{index} at {addresses[index]}: "
            f"{str(err).strip().splitlines()[0]}. Is the port in use?"
        ) from None
    logging.info("Serving /job:%s/task:%d at %s", job, index, addresses[index])
    return server, addresses[index]
