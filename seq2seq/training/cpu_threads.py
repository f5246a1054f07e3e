"""How many threads split each op of a training run on a small CPU.

TensorFlow runs a step's ops on an inter-op thread pool and splits each
large op over an intra-op pool, both as wide as the machine. On a CPU with
at most `SMALL_CPU` cores and no GPU, training runs each op on the one
inter-op thread that starts it (one intra-op thread), and the other core
runs the independent ops beside it. On nmt_small and the real corpus of
`benchmarks/real_corpus.py` (2-core AMD EPYC, AVX2,
`benchmarks/train_levers.py --variants base,one_intraop`, 3 rounds) that
took 1.13x fewer CPU-seconds and 1.05x less wall time per step and 57 MB
less peak memory, with identical losses (docs/performance.md, "Session
32"); on a 2-core Intel Xeon (session 22) 1.12x fewer CPU-seconds in the
same wall time. Decoding keeps TensorFlow's threads: beam search over
large vocabularies was a third slower with one intra-op thread.

An explicit `TF_NUM_INTRAOP_THREADS` in the environment always wins (`0`
is TensorFlow's own choice, as wide as the machine).
"""

import os

from absl import logging

from seq2seq.training import cpu_features

SMALL_CPU = 2
INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"


def usable_cpus():
    """The number of CPUs this process may run on (its affinity mask where
    the platform has one, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def training_intra_op_threads(num_cpus, has_gpu, environ):
    """The intra-op threads a training run should ask for.

    Args:
      num_cpus: CPUs the process may use.
      has_gpu: Whether a GPU is visible (its host work keeps the default).
      environ: The environment (a mapping), for `TF_NUM_INTRAOP_THREADS`.

    Returns:
      1 on a CPU of at most `SMALL_CPU` cores without a GPU, unless the
      environment sets `TF_NUM_INTRAOP_THREADS`; else None (TensorFlow's
      default).
    """
    if INTRA_OP_ENV in environ or has_gpu or num_cpus > SMALL_CPU:
        return None
    return 1


def configure_training_threads(has_gpu=None):
    """Applies `training_intra_op_threads` to this process; call it before
    TensorFlow runs its first op.

    Args:
      has_gpu: Whether a GPU is visible; None: ask TensorFlow.

    Returns:
      The number of intra-op threads set, or None when TensorFlow's default
      stays (a larger machine, a GPU, the environment's own setting, or a
      TensorFlow runtime that has already started).
    """
    import tensorflow as tf

    if has_gpu is None:
        has_gpu = cpu_features.gpu_visible()
    num_cpus = usable_cpus()
    threads = training_intra_op_threads(num_cpus, has_gpu, os.environ)
    if threads is None:
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        logging.warning(
            "TensorFlow has already started; its intra-op threads stay as they "
            "are (set %s=%d before starting to use one).",
            INTRA_OP_ENV,
            threads,
        )
        return None
    logging.info(
        "%d CPUs and no GPU: each op runs on %d intra-op thread (set %s=0 for "
        "TensorFlow's default).",
        num_cpus,
        threads,
        INTRA_OP_ENV,
    )
    return threads
