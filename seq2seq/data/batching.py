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

Beyond the original (all keyword arguments of `make_batched_dataset`):

- `batch_type="tokens"`: `batch_size` counts tokens. Examples are bucketed on
  `example_length` = `max(source_len, target_len)` and a bucket whose longest
  length is `L` makes batches of `max(1, batch_size // L)` examples, so that
  `B * max(S, T) <= batch_size` (a single example longer than `batch_size` is
  a batch of its own). Without boundaries, `default_bucket_boundaries` are
  used.
- `pad_to_bucket=True`: the time dimensions are padded to the bucket's
  longest length rather than the batch's, so that with `drop_remainder` each
  bucket's batches have one static shape (for XLA), one per bucket. The last
  bucket is padded to `max_source_len` / `max_target_len`, which it needs.
  The element_spec keeps its `None` dimensions all the same.
- `max_source_len` / `max_target_len`: examples are cut to these lengths
  before batching, as the model cuts them to `*.max_seq_len`; an input
  pipeline already cuts them while splitting its lines, so that a very long
  line never becomes a very long token tensor.
- `cache_max_bytes`: small corpora are parsed once and cached in memory.
"""

import tensorflow as tf
from absl import logging

from seq2seq.configurable import INT32_MAX, ModeKeys
from seq2seq.data import auto_buckets
from seq2seq.errors import ConfigError


def parse_buckets(text):
    """Parses a `--buckets` value into a list of bucket boundaries.

    Args:
      text: A comma-separated string of increasing positive integers such as
        `"10,20,30"`, a list of integers, `"auto"` (boundaries derived from
        the training data when the dataset is built, see `auto_buckets`), or
        `None` / `""` for no bucketing.

    Returns:
      A list of ints, `"auto"`, or `None` when bucketing is off.

    Raises:
      ConfigError: The value is not a list of increasing positive integers.
    """
    if text is None:
        return None
    if isinstance(text, str):
        if not text.strip():
            return None
        if text.strip().lower() == auto_buckets.AUTO:
            return auto_buckets.AUTO
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
                "positive source lengths separated by commas, e.g. --buckets "
                "10,20,30, or auto."
            )
        boundaries.append(value)
    return _check_boundaries(boundaries)


def _check_boundaries(boundaries):
    for value in boundaries:
        if not 1 <= value <= INT32_MAX:
            raise ConfigError(
                f"buckets: boundary {value} in {boundaries} must be a positive "
                f"integer up to {INT32_MAX}, e.g. --buckets 10,20,30."
            )
    for low, high in zip(boundaries, boundaries[1:]):
        if high <= low:
            raise ConfigError(
                f"buckets: boundaries {boundaries} must be strictly increasing, "
                "e.g. --buckets 10,20,30."
            )
    return list(boundaries)


BATCH_TYPES = ("examples", "tokens")

# Default bucket widths: buckets hold lengths up to 8, 16, ..., 128, then the
# width doubles every 8 buckets (16 up to 256, 32 up to 512, ...), so that the
# padding stays under about 1/8 of a long bucket's length while the number of
# buckets grows only logarithmically.
_DEFAULT_WIDTH = 8
_BUCKETS_BEFORE_WIDENING = 16
# Lengths per batch when `--buckets auto` counts them example by example.
_LENGTH_BATCH = 8192


def default_bucket_boundaries(max_length, width=_DEFAULT_WIDTH):
    """Bucket boundaries for lengths up to `max_length`.

    The buckets hold the lengths `1..8`, `9..16`, ..., `121..128` (width
    `width`), then `129..144`, ... (width `2 * width`) up to 256, and so on,
    doubling the width every 8 buckets past the first 16. The last bucket
    starts after the last multiple below `max_length` and so holds
    `max_length` itself.

    Args:
      max_length: The longest length to expect (a positive int).
      width: The width of the first buckets.

    Returns:
      The increasing boundaries (for `bucket_by_sequence_length`), i.e. each
      bucket's largest length plus one; empty when `max_length <= width`.
    """
    boundaries = []
    upper = width
    step = width
    count = 0
    while upper < max_length:
        boundaries.append(upper + 1)
        count += 1
        if count >= _BUCKETS_BEFORE_WIDENING and count % 8 == 0:
            step *= 2
        upper += step
    return boundaries


def example_length(example):
    """The length an example is bucketed by (for token batching and
    `pad_to_bucket`): `max(source_len, target_len)`, or `source_len` when it
    has no target. [] tf.int32."""
    length = tf.cast(example["source_len"], tf.int32)
    if "target_len" in example:
        length = tf.maximum(length, tf.cast(example["target_len"], tf.int32))
    return length


def truncate_example(example, max_source_len=None, max_target_len=None):
    """Cuts an example's tokens to the maximum lengths, as the model does.

    `source_tokens[:max_source_len]` and `source_len` clipped to it (likewise
    for targets), which is what `Seq2SeqModel.preprocess` does with
    `source.max_seq_len` / `target.max_seq_len`; `None` or `0` leaves a side
    as it is.
    """
    example = dict(example)
    for side, limit in (("source", max_source_len), ("target", max_target_len)):
        key = f"{side}_tokens"
        if limit and key in example:
            example[key] = example[key][:limit]
            example[f"{side}_len"] = _cut_length(example[f"{side}_len"], limit)
    return example


def _cut_length(length, limit):
    """`length` ([] or [N] ints) clipped to `limit`, as int32."""
    return tf.minimum(tf.cast(length, tf.int32), limit)


class BucketPlan:
    """How examples are grouped: boundaries, per-bucket sizes and widths.

    Attributes:
      boundaries: Increasing bucket boundaries on `example_length` (bucket
        `i` holds `boundaries[i-1] <= length < boundaries[i]`).
      batch_sizes: Examples per batch of each bucket (one more entry than
        `boundaries`).
      max_lengths: Each bucket's largest possible `example_length`, or `None`
        for an unbounded last bucket.
      source_widths, target_widths: With `pad_to_bucket`, the padded time
        dimension of each bucket's sources and targets; otherwise `None`
        (padded to the longest of each batch).
    """

    def __init__(
        self,
        boundaries,
        batch_sizes,
        max_lengths,
        source_widths=None,
        target_widths=None,
    ):
        self.boundaries = list(boundaries)
        self.batch_sizes = list(batch_sizes)
        self.max_lengths = list(max_lengths)
        self.source_widths = source_widths
        self.target_widths = target_widths

    def __repr__(self):
        return (
            f"BucketPlan(boundaries={self.boundaries}, batch_sizes="
            f"{self.batch_sizes}, max_lengths={self.max_lengths}, source_widths="
            f"{self.source_widths}, target_widths={self.target_widths})"
        )


def plan_buckets(
    batch_size,
    bucket_boundaries=None,
    batch_type="examples",
    pad_to_bucket=False,
    max_source_len=None,
    max_target_len=None,
    has_targets=True,
):
    """Works out the buckets of `make_batched_dataset` (see there).

    Returns:
      A `BucketPlan`.

    Raises:
      ConfigError: Bad values, or `pad_to_bucket` without maximum lengths.
    """
    boundaries = parse_buckets(bucket_boundaries) or []
    limits = [max_source_len] + ([max_target_len] if has_targets else [])
    longest = max(limits) if all(limits) else None
    if pad_to_bucket and longest is None:
        raise ConfigError(
            "pad_to_bucket pads the last bucket to the maximum lengths, so it "
            "needs max_source_len"
            + (" and max_target_len" if has_targets else "")
            + f" (got {max_source_len!r}"
            + (f" and {max_target_len!r}" if has_targets else "")
            + "); pass the model's source.max_seq_len / target.max_seq_len."
        )
    if batch_type == "tokens" and not boundaries:
        boundaries = default_bucket_boundaries(longest or batch_size)
        if longest is None:
            # An unbounded last bucket: let it start past batch_size, so that
            # each of its examples alone fills a batch.
            boundaries.append(batch_size + 1)
    elif batch_type == "tokens" and longest is None and boundaries[-1] <= batch_size:
        extra = [b for b in default_bucket_boundaries(batch_size) if b > boundaries[-1]]
        boundaries += extra + [batch_size + 1]
    if longest is not None:
        # Lengths are cut to `longest`, so buckets past it would stay empty.
        boundaries = [b for b in boundaries if b <= longest]
    max_lengths = [max(1, b - 1) for b in boundaries] + [longest]
    if batch_type == "tokens":
        batch_sizes = [max(1, batch_size // (m or batch_size + 1)) for m in max_lengths]
    else:
        batch_sizes = [batch_size] * len(max_lengths)
    source_widths = target_widths = None
    if pad_to_bucket:
        source_widths = [min(m, max_source_len) for m in max_lengths]
        if has_targets:
            target_widths = [min(m, max_target_len) for m in max_lengths]
    return BucketPlan(
        boundaries, batch_sizes, max_lengths, source_widths, target_widths
    )


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    if value > INT32_MAX:
        raise ConfigError(f"{name} must be at most {INT32_MAX}, got {value}.")


def _length_limit(name, value):
    """`None` for no limit (`None`, 0 or negative, as the model's
    `*.max_seq_len`), else the positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer or None, got {value!r}.")
    if value > INT32_MAX:
        raise ConfigError(f"{name} must be at most {INT32_MAX}, got {value}.")
    return value if value > 0 else None


def _group_into_buckets(dataset, plan, padding_values, drop_remainder):
    """Batches `dataset` per bucket of `plan` with `group_by_window`.

    Batch sizes and padded widths are looked up from the bucket id, a tensor,
    so the element_spec keeps every dimension `None` even though, with
    `pad_to_bucket`, each bucket's batches all have one shape.
    """
    boundaries = tf.constant(plan.boundaries or [0], tf.int32)
    num_boundaries = len(plan.boundaries)
    batch_sizes = tf.constant(plan.batch_sizes, tf.int64)
    widths = {}
    if plan.source_widths is not None:
        widths["source_tokens"] = tf.constant(plan.source_widths, tf.int64)
    if plan.target_widths is not None:
        widths["target_tokens"] = tf.constant(plan.target_widths, tf.int64)
    element_spec = dataset.element_spec

    def bucket_of(example):
        if not num_boundaries:
            return tf.constant(0, tf.int64)
        above = tf.cast(example_length(example) >= boundaries, tf.int64)
        return tf.reduce_sum(above)

    def batch_window(bucket, window):
        padded_shapes = {
            key: (
                tf.reshape(tf.gather(widths[key], bucket), [1])
                if key in widths
                else spec.shape
            )
            for key, spec in element_spec.items()
        }
        return window.padded_batch(
            tf.gather(batch_sizes, bucket),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )

    return dataset.group_by_window(
        key_func=tf.autograph.experimental.do_not_convert(bucket_of),
        reduce_func=tf.autograph.experimental.do_not_convert(batch_window),
        window_size_func=tf.autograph.experimental.do_not_convert(
            lambda bucket: tf.gather(batch_sizes, bucket)
        ),
    )


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
    pipeline,
    batch_size,
    bucket_boundaries=None,
    allow_smaller_final_batch=False,
    *,
    batch_type="examples",
    pad_to_bucket=False,
    max_source_len=None,
    max_target_len=None,
    cache_max_bytes=0,
):
    """Builds the padded, optionally bucketed, prefetched batch dataset.

    Args:
      pipeline: An `InputPipeline`, or a `tf.data.Dataset` of unbatched
        example dicts as made by `InputPipeline.make_dataset()`.
      batch_size: Examples per batch with `batch_type="examples"`, tokens per
        batch with `batch_type="tokens"` (a positive int).
      bucket_boundaries: Increasing lengths (a list, or a string for
        `parse_buckets`); `"auto"`: derived from the lengths of the first
        examples of `pipeline` in file order (see `auto_buckets`); `None` or
        empty: no bucketing for `"examples"` (unless `pad_to_bucket`),
        `default_bucket_boundaries` for `"tokens"`.
      allow_smaller_final_batch: Keep a last batch (per bucket) with fewer
        examples than the bucket's batch size; if false it is dropped.
      batch_type: `"examples"` (the default; with neither `pad_to_bucket`
        nor maximum lengths it is exactly the original batching, bucketed
        on `source_len`) or `"tokens"`: each bucket's batches have
        `max(1, batch_size // L)` examples, `L` the longest
        `example_length` (`max(source_len, target_len)`) the bucket can
        hold, so `B * max(S, T) <= batch_size` for every batch except one of
        a single example longer than `batch_size`.
      pad_to_bucket: Pad the time dimension of `source_tokens` and
        `target_tokens` to the bucket's longest length (the last bucket to
        `max_source_len` / `max_target_len`) instead of the batch's, so that
        each bucket's batches all have one shape (for XLA); buckets are then
        on `example_length`. Needs the maximum lengths. The element_spec
        still has only `None` dimensions.
      max_source_len, max_target_len: Cut sources / targets to these lengths
        before batching (see `truncate_example`); `None`, 0 or negative: no
        limit (as the model's `source.max_seq_len` / `target.max_seq_len`).
      cache_max_bytes: Cache the parsed examples in memory (see
        `InputPipeline.make_dataset(cache=True)`) when the pipeline's files
        take at most this many bytes on disk; 0 never caches. Ignored when
        `pipeline` is a dataset.

    Returns:
      A `tf.data.Dataset` of dicts of `[B, ...]` tensors whose element_spec
      has only `None` dimensions.

    Raises:
      ConfigError, DataError: Bad batching values or bad input files.
    """
    _check_positive("batch_size", batch_size)
    if batch_type not in BATCH_TYPES:
        raise ConfigError(
            f"batch_type must be one of {', '.join(BATCH_TYPES)}, got {batch_type!r}."
        )
    max_source_len = _length_limit("max_source_len", max_source_len)
    max_target_len = _length_limit("max_target_len", max_target_len)
    if isinstance(cache_max_bytes, bool) or not isinstance(cache_max_bytes, int):
        raise ConfigError(
            f"cache_max_bytes must be a number of bytes, got {cache_max_bytes!r}."
        )
    boundaries = parse_buckets(bucket_boundaries)
    if isinstance(pipeline, tf.data.Dataset):
        dataset = pipeline
    else:
        corpus_bytes = pipeline.corpus_bytes() if cache_max_bytes > 0 else None
        cache = corpus_bytes is not None and corpus_bytes <= cache_max_bytes
        # The pipeline splits long lines only as far as these limits need.
        dataset = pipeline.make_dataset(
            cache=cache, max_source_len=max_source_len, max_target_len=max_target_len
        )
        if (boundaries or batch_type == "tokens" or pad_to_bucket) and (
            pipeline.mode == ModeKeys.INFER
        ):
            logging.warning(
                "Bucketing reorders examples; inference outputs will not follow "
                "the input order."
            )
    padding_values = _padding_values(dataset.element_spec)

    def truncate(examples):
        if not (max_source_len or max_target_len):
            return examples
        return examples.map(
            tf.autograph.experimental.do_not_convert(
                lambda example: truncate_example(
                    example, max_source_len, max_target_len
                )
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    dataset = truncate(dataset)
    if boundaries == auto_buckets.AUTO:
        by_example_length = batch_type == "tokens" or pad_to_bucket
        boundaries = auto_buckets.auto_boundaries(
            _lengths_in_file_order(
                pipeline,
                example_length if by_example_length else lambda e: e["source_len"],
                max_source_len,
                max_target_len,
            )
        )

    if batch_type == "tokens" or pad_to_bucket:
        plan = plan_buckets(
            batch_size,
            boundaries,
            batch_type,
            pad_to_bucket,
            max_source_len,
            max_target_len,
            has_targets="target_len" in dataset.element_spec,
        )
        dataset = _group_into_buckets(
            dataset, plan, padding_values, drop_remainder=not allow_smaller_final_batch
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    if boundaries:
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=tf.autograph.experimental.do_not_convert(
                lambda example: example["source_len"]
            ),
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
            tf.autograph.experimental.do_not_convert(
                lambda batch: tf.equal(tf.shape(batch["source_len"])[0], batch_size)
            )
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _lengths_in_file_order(pipeline, key_fn, max_source_len, max_target_len):
    """The lengths the batching groups by, of one pass over `pipeline`'s
    files in file order, for `--buckets auto`.

    Args:
      pipeline: An `InputPipeline`, or a dataset of unbatched examples.
      key_fn: `example_length` or another function of an example's
        `source_len` / `target_len` only that also maps [N] lengths
        element-wise.
      max_source_len, max_target_len: The cuts of `truncate_example`.

    Returns:
      A dataset of [N] int32 batches of `key_fn` of the cut lengths, read
      without tf.data's autotuning (`read_once`). A pipeline that parses
      records a batch at a time is counted in those batches: splitting them
      into examples first took 2.7 of 3.0 s on 35k sentence pairs.
    """

    def cut_key(example):
        lengths = {}
        for side, limit in (("source", max_source_len), ("target", max_target_len)):
            key = f"{side}_len"
            if key in example:
                lengths[key] = _cut_length(example[key], limit or INT32_MAX)
        return key_fn(lengths)

    def keyed(dataset):
        return dataset.map(
            tf.autograph.experimental.do_not_convert(cut_key),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    if isinstance(pipeline, tf.data.Dataset):
        examples = pipeline
    elif pipeline.parses_batches:
        return read_once(keyed(pipeline._parse_batches(pipeline.read_records())))
    else:
        examples = pipeline._parse_dataset(pipeline.read_records())
    return read_once(keyed(examples).batch(_LENGTH_BATCH))


def create_input_fn(
    pipeline,
    batch_size,
    bucket_boundaries=None,
    allow_smaller_final_batch=False,
    scope=None,
    **kwargs,
):
    """The original's name for `make_batched_dataset`; returns the dataset.

    Unlike the original (which returned a function for an Estimator), this
    returns the batched `tf.data.Dataset` itself, since a `tf.data` pipeline
    is already built lazily.

    Args:
      pipeline: An `InputPipeline` (or a dataset of unbatched examples).
      batch_size: Examples (or tokens) per batch.
      bucket_boundaries: See `make_batched_dataset`.
      allow_smaller_final_batch: See `make_batched_dataset`.
      scope: Unused; kept for the original's signature.
      **kwargs: The keyword-only arguments of `make_batched_dataset`
        (`batch_type`, `pad_to_bucket`, `max_source_len`, `max_target_len`,
        `cache_max_bytes`).

    Returns:
      The batched, prefetched `tf.data.Dataset` of `make_batched_dataset`.
    """
    del scope
    return make_batched_dataset(
        pipeline, batch_size, bucket_boundaries, allow_smaller_final_batch, **kwargs
    )


def read_once(dataset):
    """`dataset` with tf.data's autotuning turned off, for a dataset that is
    read from start to end once per iterator (evaluation, inference).

    Destroying a finished autotuned iterator waits for the next wake-up of
    its tuning thread, whose period doubles as the iterator lives. With
    TensorFlow 2.21 on 2 cores, greedy decoding passes of 1.3-1.8 s over
    1,000 sentences ended 2.6 s after they began in 7 of 16 passes, and the
    first pass over a dev set took 10.3 s instead of 5.2 s: idle waits up
    to the wake-ups at 10 ms x (2^k - 1) (docs/performance.md, session 31).
    One pass gives the tuning nothing to learn from; `AUTOTUNE` parallelism
    and buffer sizes take tf.data's fixed defaults instead.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
