"""The base class of inference tasks and the per-example view of a batch.

`bin/infer.py` runs the model over the input and hands every batch of
predictions, a dict of numpy arrays (see `InferenceTask.process_batch`), to
each task the user listed under `--tasks`. A task turns them into output:
text on standard output (`DecodeText`), arrays and plots on disk
(`DumpAttention`, `DumpBeams`), scores (`ScoreText`).

The driver calls, for every task:

    task.begin()
    for predictions in batches:
        task.process_batch(predictions)
    task.end()
"""

import os
import sys

import numpy as np

from seq2seq.configurable import Configurable, ModeKeys
from seq2seq.errors import DataError

SEQUENCE_END = "SEQUENCE_END"

# Keys whose arrays are tokens (strings); `unbatch` gives them as `str`.
_TOKEN_KEYS = ("source_tokens", "predicted_tokens", "target_tokens")

# Keys that hold one step per row and a beam per column ([B, T, K]).
BEAM_KEYS = (
    "beam_search_output.predicted_ids",
    "beam_search_output.beam_parent_ids",
    "beam_search_output.scores",
    "beam_search_output.log_probs",
)


class InferenceTask(Configurable):
    """Base class of the tasks `bin/infer.py` runs on the model's predictions.

    A subclass defines `default_params()` and `process_batch()`, and may
    override `begin()` (before the first batch: open files, create
    directories) and `end()` (after the last batch: write what was collected,
    flush). Every task is built in mode `infer`.

    Attributes:
      needs_scores: Whether the task needs the log-probabilities of the
        given targets (`sequence_log_prob`, `token_log_probs`); the driver then
        scores the input's targets instead of only decoding.

    Args:
      params: The task's params (a dict or `None`), merged over the defaults.
    """

    needs_scores = False

    def __init__(self, params):
        super().__init__(params, ModeKeys.INFER)

    @staticmethod
    def default_params():
        return {}

    def output_paths(self):
        """The files this task writes, as `(param, path)` pairs.

        `param` names the task and parameter (`DecodeText: output`) for error
        messages; the last component of `path` may be an fnmatch pattern for
        a family of files. The driver refuses to run a task whose output is
        one of the input files before any task is begun.
        """
        return []

    def input_paths(self):
        """The files this task reads itself (e.g. a dictionary), a list."""
        return []

    def begin(self):
        """Called once before the first batch."""

    def process_batch(self, predictions):
        """Handles one batch of predictions.

        Args:
          predictions: A dict of batch-major numpy arrays:
            `source_tokens` [B, S] str (padded with "", ends with
            SEQUENCE_END), `source_len` [B], `predicted_tokens` [B, T] str
            (padded with "", includes SEQUENCE_END when produced),
            `predicted_len` [B], `log_probs` [B]; attention models add
            `attention_scores` [B, T, S]; beam search adds the
            `beam_search_output.*` arrays [B, T, K] and
            `beam_search_output.length` [B]; scoring adds `target_tokens`
            [B, T'], `target_len` [B], `sequence_log_prob` [B] and
            `token_log_probs` [B, T' - 1].
        """
        raise NotImplementedError

    def end(self):
        """Called once after the last batch."""


def _as_text(token):
    if isinstance(token, bytes):
        return token.decode("utf-8", errors="replace")
    return str(token)


def _text_array(values):
    """A 1-D object array of `str` (bytes are decoded as UTF-8)."""
    result = np.empty(len(values), dtype=object)
    for index, token in enumerate(values):
        result[index] = _as_text(token)
    return result


def _length_of(example, key, tokens=None):
    """The valid length stored under `key`, or found in `tokens`.

    Without a stored length, the tokens run up to and including the first
    SEQUENCE_END, or up to the first padding "".
    """
    if key in example:
        return int(example[key])
    if tokens is None:
        return None
    for index, token in enumerate(tokens):
        if token == SEQUENCE_END:
            return index + 1
        if token == "":
            return index
    return len(tokens)


def unbatch(predictions, trim=True):
    """Splits a batch of predictions into one dict per example.

    Every array is indexed by the example (its first dimension); 0-d arrays
    and non-array values are passed through unchanged. Token arrays become
    1-D object arrays of `str`.

    With `trim`, padding is cut off using the length arrays:

    - `source_tokens` to `source_len` ([S]);
    - `predicted_tokens` (and `predicted_ids`) to `predicted_len` ([T]);
      without `predicted_len`, up to and including the first SEQUENCE_END;
    - `attention_scores` to `[predicted_len, source_len]`;
    - `target_tokens` to `target_len` and `token_log_probs` to
      `target_len - 1` (the tokens after SEQUENCE_START);
    - the `beam_search_output.*` arrays to `[beam_search_output.length, K]`.

    Args:
      predictions: A dict of batch-major arrays (see
        `InferenceTask.process_batch`).
      trim: Whether to cut off padding.

    Yields:
      A dict per example with the same keys.

    Raises:
      ValueError: The arrays do not agree on the batch size.
    """
    arrays = {key: np.asarray(value) for key, value in predictions.items()}
    sizes = {key: value.shape[0] for key, value in arrays.items() if value.ndim > 0}
    if not sizes:
        return
    if len(set(sizes.values())) > 1:
        raise ValueError(f"predictions disagree on the batch size: {sizes}")
    batch_size = next(iter(sizes.values()))

    for index in range(batch_size):
        example = {
            key: (value[index] if value.ndim > 0 else value)
            for key, value in arrays.items()
        }
        for key in _TOKEN_KEYS:
            if key in example:
                example[key] = _text_array(example[key])
        if trim:
            _trim(example)
        yield example


def _trim(example):
    """Cuts the padding off one example's arrays, in place."""
    source_len = None
    if "source_tokens" in example:
        source_len = _length_of(example, "source_len", example["source_tokens"])
        example["source_tokens"] = example["source_tokens"][:source_len]

    predicted_len = None
    if "predicted_tokens" in example:
        predicted_len = _length_of(
            example, "predicted_len", example["predicted_tokens"]
        )
        example["predicted_tokens"] = example["predicted_tokens"][:predicted_len]
    elif "predicted_len" in example:
        predicted_len = int(example["predicted_len"])
    ids = example.get("predicted_ids")
    if predicted_len is not None and ids is not None and np.ndim(ids) == 1:
        example["predicted_ids"] = ids[:predicted_len]

    if "attention_scores" in example:
        scores = example["attention_scores"]
        if source_len is None and "source_len" in example:
            source_len = int(example["source_len"])
        example["attention_scores"] = scores[:predicted_len, :source_len]

    if "target_tokens" in example:
        target_len = _length_of(example, "target_len", example["target_tokens"])
        example["target_tokens"] = example["target_tokens"][:target_len]
    if "token_log_probs" in example and "target_len" in example:
        num_scored = max(int(example["target_len"]) - 1, 0)
        example["token_log_probs"] = example["token_log_probs"][:num_scored]

    if "beam_search_output.length" in example:
        steps = int(example["beam_search_output.length"])
        for key in BEAM_KEYS:
            if key in example:
                example[key] = example[key][:steps]


def make_parent_dirs(path, what):
    """Creates the directory that will hold the file `path`.

    Raises:
      DataError: The directory cannot be created; `what` names the parameter.
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"{what}: cannot create the directory {parent}: {err.strerror}. "
            "Choose a writable location."
        ) from None


class LineWriter:
    """Writes lines of text to standard output or to a UTF-8 file.

    Standard output is looked up at each write, so a redirected `sys.stdout`
    is honoured.

    Args:
      path: A file path, or "" (or `None`) for standard output.
      what: The parameter that gave the path, for error messages.
    """

    def __init__(self, path="", what="output"):
        self._path = path or ""
        self._what = what
        self._handle = None

    def open(self):
        """Opens the file (no-op for standard output).

        Raises:
          DataError: The file cannot be created.
        """
        if not self._path or self._handle is not None:
            return
        make_parent_dirs(self._path, self._what)
        try:
            self._handle = open(self._path, "w", encoding="utf-8", newline="\n")
        except OSError as err:
            raise DataError(
                f"{self._what}: cannot write {self._path}: {err.strerror}. "
                "Choose a writable file."
            ) from None

    def write_line(self, text):
        """Writes `text` and a newline; newlines inside `text` become spaces."""
        text = text.replace("\r", " ").replace("\n", " ")
        if self._path:
            self.open()
            self._handle.write(text + "\n")
        else:
            sys.stdout.write(text + "\n")

    def flush(self):
        if self._handle is not None:
            self._handle.flush()
        elif not self._path:
            sys.stdout.flush()

    def close(self):
        """Flushes, and closes the file if one was opened."""
        self.flush()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
