#!/usr/bin/env python3
"""Throughput of the input pipeline alone (no model), and checkpoint sizes.

Reads a parallel corpus (e.g. from `benchmarks/synthetic_data.py`) through
`ParallelTextInputPipeline` and `seq2seq.data.batching.make_batched_dataset`
for a few epochs and prints examples per second (wall clock and per
CPU-second of this process) for several batching variants, rounds
alternating between variants:

    python -m benchmarks.synthetic_data --output_dir /tmp/synth_data \\
        --num_examples 20000
    python -m benchmarks.input_throughput --data_dir /tmp/synth_data

The batches are consumed inside `tf.data` (`Dataset.reduce`), so Python's
per-batch overhead is not measured. Variants that need arguments the
imported `seq2seq` does not have are skipped, so the same script can time an
older copy of the package (`PYTHONPATH=/path/to/old/checkout`).

`--checkpoint_sizes` also saves a training iterator with
`tf.train.Checkpoint` after a few batches and after the first epoch, with
and without caching, and prints the size of each checkpoint.
"""

import argparse
import inspect
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# This directory, for `common.py`, rather than the repository root, which
# would shadow an older `seq2seq` given on PYTHONPATH.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import tensorflow as tf  # noqa: E402

from seq2seq.configurable import ModeKeys  # noqa: E402
from seq2seq.data import batching  # noqa: E402
from seq2seq.data import input_pipeline as ip  # noqa: E402


class _PerRecordPipeline(ip.ParallelTextInputPipeline):
    """The pipeline with its vectorized parser turned off."""

    parses_batches = False


def _pipeline(data_dir, epochs, per_record=False):
    cls = _PerRecordPipeline if per_record else ip.ParallelTextInputPipeline
    return cls(
        {
            "source_files": [os.path.join(data_dir, "sources.txt")],
            "target_files": [os.path.join(data_dir, "targets.txt")],
            "num_epochs": epochs,
        },
        ModeKeys.TRAIN,
    )


def _supports(**kwargs):
    params = inspect.signature(batching.make_batched_dataset).parameters
    return all(name in params for name in kwargs)


def variants(args):
    """(name, make_dataset) pairs; make_dataset() -> batched dataset."""
    big = 1 << 40
    table = [
        ("examples b64 (default)", {}, False),
        ("examples b64, buckets", {"bucket_boundaries": args.buckets}, False),
        (
            "examples b64, buckets, per-record parse",
            {"bucket_boundaries": args.buckets},
            True,
        ),
        (
            "examples b64, buckets, cache",
            {"bucket_boundaries": args.buckets, "cache_max_bytes": big},
            False,
        ),
        ("tokens 2048, default buckets", {"batch_type": "tokens"}, False),
        (
            "tokens 2048, pad_to_bucket",
            {
                "batch_type": "tokens",
                "pad_to_bucket": True,
                "max_source_len": 50,
                "max_target_len": 50,
            },
            False,
        ),
    ]
    result = []
    for name, kwargs, per_record in table:
        if per_record and not hasattr(ip.InputPipeline, "parses_batches"):
            continue
        extra = {k: v for k, v in kwargs.items() if k != "bucket_boundaries"}
        if not _supports(**extra):
            continue
        size = 2048 if kwargs.get("batch_type") == "tokens" else 64

        def make(kwargs=kwargs, size=size, per_record=per_record):
            pipeline = _pipeline(args.data_dir, args.epochs, per_record)
            return batching.make_batched_dataset(pipeline, size, **kwargs)

        result.append((name, make))
    return result


def count_examples(dataset):
    """Runs the dataset to its end inside tf.data; returns the examples."""
    return int(
        dataset.reduce(
            tf.constant(0, tf.int64),
            lambda total, batch: total
            + tf.cast(tf.shape(batch["source_len"])[0], tf.int64),
        )
    )


def time_variants(args):
    table = variants(args)
    results = {name: [] for name, _ in table}
    for round_index in range(args.rounds):
        for name, make in table:
            dataset = make()
            clock = common.Stopwatch()
            count = count_examples(dataset)
            wall, cpu = clock.seconds(), clock.cpu_seconds()
            results[name].append((count / wall, count / cpu))
            print(
                f"round {round_index + 1} {name:42s} {count} ex "
                f"{count / wall:8.0f} ex/s {count / cpu:8.0f} ex/CPU-s",
                flush=True,
            )
    print("\nmedians (examples/s wall, examples per CPU-second):")
    for name, values in results.items():
        wall = common.middle([v[0] for v in values], upper=True)
        cpu = common.middle([v[1] for v in values], upper=True)
        print(f"  {name:42s} {wall:8.0f} {cpu:8.0f}")


def checkpoint_sizes(args):
    if not _supports(cache_max_bytes=0):
        return
    print("\ncheckpoint size of the training iterator (shuffle buffer 10000):")
    for cache in (False, True):
        pipeline = _pipeline(args.data_dir, None)
        dataset = batching.make_batched_dataset(
            pipeline, 64, args.buckets, cache_max_bytes=(1 << 40) if cache else 0
        )
        iterator = iter(dataset)
        steps_per_epoch = pipeline.check() // 64
        done = 0
        for label, steps in (("after 10 batches", 10), ("after 1.1 epochs", None)):
            target = steps if steps else int(steps_per_epoch * 1.1)
            while done < target:
                next(iterator)
                done += 1
            with tempfile.TemporaryDirectory() as tmp:
                path = tf.train.Checkpoint(data=iterator).write(
                    os.path.join(tmp, "ckpt")
                )
                size = sum(
                    os.path.getsize(os.path.join(tmp, name))
                    for name in os.listdir(tmp)
                    if name.startswith(os.path.basename(path))
                )
            print(f"  cache={cache!s:5s} {label:18s} {size / 1e6:8.1f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="/tmp/synth_data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--buckets", default="10,20,30,40")
    parser.add_argument("--checkpoint_sizes", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    time_variants(args)
    if args.checkpoint_sizes:
        checkpoint_sizes(args)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
