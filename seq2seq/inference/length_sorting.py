"""Decoding in batches of similar source length, with outputs in input order.

A batch decodes until its slowest sentence ends, and its sources are padded
to its longest one. `bin/infer.py` therefore reads the input in windows of
`sort_window` examples, sorts each window by source length (`sort_windows`)
and batches the sorted stream; `InputOrder` puts the predictions back in
input order before the tasks see them, so the output files are the same as
with unsorted batches.
"""

import numpy as np

# The feature that carries each example's position in the input.
INDEX_KEY = "example_index"

# Inputs per sorted window (`bin/infer.py --sort_window`): large enough for
# batches of near-equal lengths, small enough to hold its predictions.
DEFAULT_WINDOW = 2048


def sort_windows(examples, window):
    """Sorts each window of `window` consecutive examples by source length.

    Args:
      examples: A `tf.data.Dataset` of unbatched example dicts with a
        `source_len` scalar and `[S]` / `[T]` token vectors.
      window: Examples per window (a positive int; 1 keeps the input
        order).

    Returns:
      The same examples, each with an int64 `example_index` (its position in
      `examples`), in increasing `source_len` within each window; equal
      lengths keep their input order.
    """
    # Imported here: bin/infer.py reads DEFAULT_WINDOW for its flags
    # before TensorFlow is loaded.
    import tensorflow as tf

    def add_index(index, example):
        return dict(example, **{INDEX_KEY: index})

    def sort(batch):
        order = tf.argsort(batch["source_len"], stable=True)
        return {key: tf.gather(value, order) for key, value in batch.items()}

    # Plain TensorFlow code: AutoGraph's conversion would only cost start-up.
    plain = tf.autograph.experimental.do_not_convert
    dataset = examples.enumerate().map(plain(add_index))
    # Ragged, so that unbatching gives each example back at its own length.
    dataset = dataset.ragged_batch(window).map(plain(sort))
    return dataset.unbatch()


class InputOrder:
    """Puts batches of predictions made in sorted order back in input order.

    `add` takes each decoded batch with the input positions of its rows and
    returns the batches that can now be given to the tasks: the predictions
    of consecutive inputs from the first not yet returned, `batch_size` rows
    at a time (fewer only for the last one, from `flush`).

    Args:
      batch_size: Rows per returned batch.
    """

    def __init__(self, batch_size):
        self._batch_size = max(1, int(batch_size))
        self._waiting = {}  # input position -> one row's arrays
        self._ready = []  # rows in input order, not yet returned
        self._next = 0
        self._shared = {}  # 0-d values, the same for every row

    def add(self, indices, predictions):
        """Takes one decoded batch.

        Args:
          indices: [B] int input positions of the rows.
          predictions: A dict of numpy arrays, batch-major ([B, ...]; 0-d
            arrays and other values are shared by the rows).

        Returns:
          A list of prediction dicts in input order (maybe empty).
        """
        arrays = {key: np.asarray(value) for key, value in predictions.items()}
        self._shared.update({k: v for k, v in arrays.items() if v.ndim == 0})
        rows = {k: v for k, v in arrays.items() if v.ndim > 0}
        for row, index in enumerate(np.asarray(indices).tolist()):
            self._waiting[index] = {key: value[row] for key, value in rows.items()}
        while self._next in self._waiting:
            self._ready.append(self._waiting.pop(self._next))
            self._next += 1
        batches = []
        while len(self._ready) >= self._batch_size:
            batches.append(self._take())
        return batches

    def _take(self):
        batch = stack_rows(self._ready[: self._batch_size])
        del self._ready[: self._batch_size]
        batch.update(self._shared)
        return batch

    def flush(self):
        """The rows still held, as batches in input order.

        Raises:
          ValueError: An input position was never decoded.
        """
        if self._waiting:
            raise ValueError(
                f"input position {self._next} was never decoded "
                f"({len(self._waiting)} later rows are waiting)"
            )
        batches = []
        while self._ready:
            batches.append(self._take())
        return batches


def stack_rows(rows):
    """Stacks one-row prediction dicts into a batch, padding each array to
    the largest shape among the rows.

    Rows of different decoded batches were padded to different lengths;
    the padding added here (0, False, or b"" / "" as the text's items)
    lies past the lengths that the tasks trim to.

    Args:
      rows: A non-empty list of dicts with the same keys, each value one
        row's array (e.g. a scalar, `[T]`, `[T, S]`).

    Returns:
      A dict of `[len(rows), ...]` arrays.
    """
    batch = {}
    for key in rows[0]:
        values = [np.asarray(row[key]) for row in rows]
        shape = (
            tuple(np.max([v.shape for v in values], axis=0)) if values[0].ndim else ()
        )
        stacked = np.zeros((len(values),) + shape, dtype=np.result_type(*values))
        if stacked.dtype == object:
            stacked[...] = _empty_like_items(values)
        for i, value in enumerate(values):
            stacked[(i,) + tuple(slice(0, n) for n in value.shape)] = value
        batch[key] = stacked
    return batch


def _empty_like_items(arrays):
    """b"" or "": the empty value of the items of object arrays of text."""
    for array in arrays:
        if array.size:
            return type(array.flat[0])()
    return b""
