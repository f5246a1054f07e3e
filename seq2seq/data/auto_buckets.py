"""`--buckets auto`: bucket boundaries derived from the training data.

Hand-written boundaries such as the tutorial's `10,20,30,40` suit sentences
of 10-40 words; on short text (software strings, dialogue turns, most of a
corpus under 10 words) nearly everything lands in the first bucket and each
batch is padded to its longest member. `auto` reads the lengths of the first
`AUTO_SAMPLE_EXAMPLES` examples of the training files (in file order, so the
same files always give the same boundaries) and cuts buckets that are
narrow where the data is dense and wider in the sparse tail:

* a bucket is at least `min_width` lengths wide (2 by default, as
  OpenNMT-tf's `length_bucket_width`), and
* it holds at least `min_fraction` of the examples (1% by default), so that
  every bucket fills its batches quickly and the number of buckets (and of
  XLA compilations with `--jit_compile`) stays below `1 / min_fraction`;
* the lengths past the last full bucket join it (the last bucket is open).

The length is the one the batching groups by: `source_len` (with its
`SEQUENCE_END`) for `--batch_type examples`, `max(source_len, target_len)`
with token batching or `--pad_to_bucket`.
"""

import numpy as np
from absl import logging

from seq2seq.errors import ConfigError

AUTO = "auto"
AUTO_SAMPLE_EXAMPLES = 100_000
MIN_WIDTH = 2
MIN_FRACTION = 0.01


def boundaries_from_histogram(counts, min_width=MIN_WIDTH, min_fraction=MIN_FRACTION):
    """Bucket boundaries for a length histogram (see the module docstring).

    Args:
      counts: A sequence of ints, `counts[L]` the number of examples of
        length `L` (index 0 is usually 0), or a dict length -> count.
      min_width: The narrowest bucket, in lengths (>= 1).
      min_fraction: The smallest share of the examples a bucket holds.

    Returns:
      Increasing boundaries for `bucket_by_sequence_length` (bucket `i` holds
      `boundaries[i-1] <= length < boundaries[i]`); empty when the examples
      fit in one bucket.

    Raises:
      ValueError: A negative count, `min_width < 1` or `min_fraction`
        outside `[0, 1]`.
    """
    if isinstance(counts, dict):
        size = max(counts, default=-1) + 1
        dense = [0] * size
        for length, count in counts.items():
            dense[int(length)] = count
        counts = dense
    counts = [int(c) for c in counts]
    if min_width < 1 or not 0.0 <= min_fraction <= 1.0:
        raise ValueError(
            f"min_width must be >= 1 and min_fraction in [0, 1], got {min_width} "
            f"and {min_fraction}"
        )
    if any(c < 0 for c in counts):
        raise ValueError("length counts must not be negative")
    total = sum(counts)
    if total == 0:
        return []
    need = max(1, min_fraction * total)
    present = [length for length, count in enumerate(counts) if count]
    first, last = present[0], present[-1]
    boundaries = []
    low, held = first, 0
    for length in range(first, last + 1):
        held += counts[length]
        if length - low + 1 >= min_width and held >= need:
            boundaries.append(length + 1)
            low, held = length + 1, 0
    if held and boundaries:
        # The tail past the last full bucket joins it.
        boundaries.pop()
    # No boundary at the very end: nothing is that long.
    return [b for b in boundaries if b <= last]


def length_histogram(lengths, max_examples=AUTO_SAMPLE_EXAMPLES):
    """Counts the first `max_examples` lengths of a dataset of [N] int
    batches of lengths (one entry per example).

    Returns:
      A list: entry `L` is the number of examples of length `L`.
    """
    counts = np.zeros([0], np.int64)
    remaining = max_examples
    for batch in lengths:
        found = np.bincount(batch.numpy().astype(np.int64)[:remaining])
        if len(found) > len(counts):
            found[: len(counts)] += counts
            counts = found
        else:
            counts[: len(found)] += found
        remaining -= min(remaining, int(batch.shape[0]))
        if not remaining:
            break
    return counts.tolist()


def auto_boundaries(lengths, what="the training data"):
    """`boundaries_from_histogram` of `length_histogram(lengths)` (logged).

    Args:
      lengths: A dataset of [N] int batches: the length the batching groups
        by of each example, in a fixed order (e.g. the input pipeline's
        records in file order).
      what: Names the data in the log line and the error.

    Raises:
      ConfigError: The data has no examples.
    """
    counts = length_histogram(lengths)
    total = sum(counts)
    if not total:
        raise ConfigError(
            f"--buckets auto: {what} has no examples to derive bucket boundaries "
            "from; give them by hand, e.g. --buckets 10,20,30."
        )
    boundaries = boundaries_from_histogram(counts)
    logging.info(
        "--buckets auto: boundaries %s from the lengths of %d examples of %s "
        "(lengths %d-%d).",
        ",".join(str(b) for b in boundaries) or "none (one bucket)",
        total,
        what,
        min(i for i, c in enumerate(counts) if c),
        len(counts) - 1,
    )
    return boundaries
