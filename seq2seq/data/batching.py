"""Batching of input pipeline examples: padding, bucketing, prefetching.

`make_batched_dataset` turns the unbatched examples of an input pipeline into
padded batches of dicts

    source_tokens  [B, S] tf.string  (padded with "")
    source_len     [B]    tf.int32
    target_tokens  [B, T] tf.string  (padded with "", when there are targets)
    target_len     [B]    tf.int32

Every dimension of the batches' `element_spec` is `None`, the batch dimension
included (a short final batch is dropped with a filter rather than with
`drop_remainder`), so a `tf.function` whose input signature is the dataset's
`element_spec` is traced once for training and evaluation batches alike.

Bucketing groups examples of similar source length (`source_len`, which
counts the appended `SEQUENCE_END`) so that batches need less padding. The
boundaries follow the original `--buckets` flag: `"10,20,30"` makes the four
buckets `len < 10`, `10 <= len < 20`, `20 <= len < 30` and `len >= 30`; each
bucket makes batches of `batch_size` examples. Bucketing changes the order of
the examples, so it is meant for training, not inference.
"""

import tensorflow as tf
from absl import logging

from seq2seq.configurable import ModeKeys
from seq2seq.errors import ConfigError


def parse_buckets(text):
    """Parses a `--buckets` value into a list of bucket boundaries.

    Args:
      text: A comma-separated string of increasing positive integers such as
        `"10,20,30"`, a list of integers, or `None` / `""` for no bucketing.

    Returns:
      A list of ints, or `None` when bucketing is off.

    Raises:
      ConfigError: The value is not a list of increasing positive integers.
    """
    if text is None:
        return None
    if isinstance(text, str):
        if not text.strip():
            return None
        items = [item.strip() for item in text.split(",")]
    elif isinstance(text, (list, tuple)):
        if not text:
            return None
        items = list(text)
    else:
        items = [text]
    boundaries = []
    for item in items:
        value = None
        if isinstance(item, int) and not isinstance(item, bool):
            value = item
        elif isinstance(item, str) and item.lstrip("+-").isdigit():
            value = int(item)
        if value is None:
            raise ConfigError(
                f"buckets: {item!r} in {text!r} is not an integer; give increasing "
                "positive source lengths separated by commas, e.g. --buckets 10,20,30."
            )
        boundaries.append(value)
    return _check_boundaries(boundaries)


def _check_boundaries(boundaries):
    for value in boundaries:
        if value < 1:
            raise ConfigError(
                f"buckets: boundary {value} in {boundaries} must be a positive "
                "integer, e.g. --buckets 10,20,30."
            )
    for low, high in zip(boundaries, boundaries[1:]):
        if high <= low:
            raise ConfigError(
                f"buckets: boundaries {boundaries} must be strictly increasing, "
                "e.g. --buckets 10,20,30."
            )
    return list(boundaries)


def _padding_values(element_spec):
    return {
        key: (
            tf.constant("", tf.string)
            if spec.dtype == tf.string
            else tf.constant(0, spec.dtype)
        )
        for key, spec in element_spec.items()
    }


def make_batched_dataset(
    pipeline, batch_size, bucket_boundaries=None, allow_smaller_final_batch=False
):
    """Builds the padded, optionally bucketed, prefetched batch dataset.

    Args:
      pipeline: An `InputPipeline`, or a `tf.data.Dataset` of unbatched
        example dicts as made by `InputPipeline.make_dataset()`.
      batch_size: The number of examples per batch (a positive int).
      bucket_boundaries: Increasing source lengths (a list, or a string for
        `parse_buckets`); `None` or empty turns bucketing off.
      allow_smaller_final_batch: Keep a last batch (per bucket) with fewer
        than `batch_size` examples; if false it is dropped.

    Returns:
      A `tf.data.Dataset` of dicts of `[B, ...]` tensors whose element_spec
      has only `None` dimensions.

    Raises:
      ConfigError, DataError: Bad batching values or bad input files.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    boundaries = parse_buckets(bucket_boundaries)
    if isinstance(pipeline, tf.data.Dataset):
        dataset = pipeline
    else:
        dataset = pipeline.make_dataset()
        if boundaries and pipeline.mode == ModeKeys.INFER:
            logging.warning(
                "Bucketing reorders examples; inference outputs will not follow "
                "the input order."
            )
    padding_values = _padding_values(dataset.element_spec)

    if boundaries:
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda example: example["source_len"],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=padding_values,
            drop_remainder=False,
        )
    else:
        dataset = dataset.padded_batch(
            batch_size, padding_values=padding_values, drop_remainder=False
        )
    if not allow_smaller_final_batch:
        dataset = dataset.filter(
            lambda batch: tf.equal(tf.shape(batch["source_len"])[0], batch_size)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def create_input_fn(
    pipeline,
    batch_size,
    bucket_boundaries=None,
    allow_smaller_final_batch=False,
    scope=None,
):
    """The original's name for `make_batched_dataset`; returns the dataset.

    Unlike the original (which returned a function for an Estimator), this
    returns the batched `tf.data.Dataset` itself, since a `tf.data` pipeline
    is already built lazily.

    Args:
      pipeline: An `InputPipeline` (or a dataset of unbatched examples).
      batch_size: The number of examples per batch.
      bucket_boundaries: See `make_batched_dataset`.
      allow_smaller_final_batch: See `make_batched_dataset`.
      scope: Unused; kept for the original's signature.

    Returns:
      The batched, prefetched `tf.data.Dataset` of `make_batched_dataset`.
    """
    del scope
    return make_batched_dataset(
        pipeline, batch_size, bucket_boundaries, allow_smaller_final_batch
    )
