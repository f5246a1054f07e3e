"""Vocabulary files and the lookup tables built from them.

A vocabulary file lists one token per line. A line may also carry a count,
`token<TAB>count`, as written by `bin/tools/generate_vocab.py`; whether a file
has counts is decided once per file from its first line (its last
tab-separated field parses as a number). Only the line ending (`\\n` or
`\\r\\n`) is removed from a line: any other whitespace belongs to the token,
so a character-level vocabulary may contain the token `" "`.

Token ids are line numbers starting at 0. The three special tokens follow the
file's tokens: with `N` tokens in the file, `UNK` is `N`, `SEQUENCE_START` is
`N + 1` and `SEQUENCE_END` is `N + 2`, so a model's vocabulary has
`N + 3` entries (`VocabInfo.total_size`).

Rejected with a one-line `DataError` naming the file: a missing file, an empty
file, an empty token, a token listed twice (both line numbers are given), a
special token name inside the file, a line without a valid count in a file
with counts, and bytes that are not UTF-8.
"""

import collections
import hashlib

import tensorflow as tf
from absl import logging

from seq2seq.errors import DataError

SpecialVocab = collections.namedtuple(
    "SpecialVocab", ["UNK", "SEQUENCE_START", "SEQUENCE_END"]
)

SPECIAL_TOKENS = SpecialVocab._fields


class VocabInfo(
    collections.namedtuple("VocabInfo", ["path", "vocab_size", "special_vocab"])
):
    """Size and special ids of a vocabulary file.

    Attributes:
      path: The vocabulary file.
      vocab_size: Number of tokens in the file (without the special tokens).
      special_vocab: A `SpecialVocab` of the special tokens' ids.
    """

    __slots__ = ()

    @property
    def total_size(self):
        """Number of ids a model needs: the file's tokens plus the specials."""
        return self.vocab_size + len(self.special_vocab)


def get_special_vocab(vocab_size):
    """Returns the ids of the special tokens for a file of `vocab_size` tokens.

    Args:
      vocab_size: Number of tokens in the vocabulary file.

    Returns:
      `SpecialVocab(UNK=vocab_size, SEQUENCE_START=vocab_size + 1,
      SEQUENCE_END=vocab_size + 2)`.
    """
    return SpecialVocab(*range(vocab_size, vocab_size + len(SPECIAL_TOKENS)))


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_lines(path):
    """Reads a vocabulary file as a list of lines without their endings."""
    if not tf.io.gfile.exists(path):
        raise DataError(
            f"vocabulary file not found: {path}. Check vocab_source/vocab_target "
            "or create it with bin/tools/generate_vocab.py."
        )
    if tf.io.gfile.isdir(path):
        raise DataError(f"vocabulary path is a directory, not a file: {path}.")
    with tf.io.gfile.GFile(path, "rb") as handle:
        data = handle.read()
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(
                f"vocabulary file {path}: line {number} is not valid UTF-8; "
                "save the file as UTF-8."
            ) from None
    # `split` leaves one empty piece after the final newline.
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_vocab(path):
    """Reads and checks a vocabulary file.

    Args:
      path: A vocabulary file, one token per line, optionally
        `token<TAB>count`.

    Returns:
      A tuple `(tokens, counts)`: the list of the file's tokens in id order
      and a list of their counts as floats (all `-1.0` when the file has no
      counts).

    Raises:
      DataError: The file is missing, empty or malformed.
    """
    lines = _read_lines(path)
    if not lines:
        raise DataError(
            f"vocabulary file is empty: {path}. It needs one token per line."
        )
    first = lines[0].rsplit("\t", 1)
    has_counts = len(first) == 2 and _is_number(first[1])

    tokens, counts = [], []
    seen = {}
    for number, line in enumerate(lines, start=1):
        if has_counts:
            parts = line.rsplit("\t", 1)
            if len(parts) != 2 or not _is_number(parts[1]):
                raise DataError(
                    f"vocabulary file {path}: line {number} {line!r} is not "
                    "'token<TAB>count' like the first line; give every line a "
                    "numeric count or none at all."
                )
            token, count = parts[0], float(parts[1])
        else:
            token, count = line, -1.0
        if token == "":
            raise DataError(
                f"vocabulary file {path}: line {number} has an empty token; "
                "remove the blank line."
            )
        if token in SPECIAL_TOKENS:
            raise DataError(
                f"vocabulary file {path}: line {number} lists the reserved token "
                f"{token!r}, which is added automatically after the file's tokens; "
                "remove that line."
            )
        if token in seen:
            raise DataError(
                f"vocabulary file {path}: token {token!r} appears twice, on lines "
                f"{seen[token]} and {number}; each token must be listed once."
            )
        seen[token] = number
        tokens.append(token)
        counts.append(count)
    return tokens, counts


def get_vocab_info(path):
    """Returns the `VocabInfo` of a vocabulary file (the file is checked).

    Args:
      path: A vocabulary file.

    Returns:
      A `VocabInfo(path, vocab_size, special_vocab)`.

    Raises:
      DataError: The file is missing, empty or malformed.
    """
    tokens, _ = read_vocab(path)
    return VocabInfo(path, len(tokens), get_special_vocab(len(tokens)))


def create_vocabulary_lookup_table(filename, default_value=None):
    """Builds the token <-> id lookup tables of a vocabulary file.

    The tables are `tf.lookup.StaticHashTable`s and can be used eagerly or
    inside `tf.function`; keep a reference to them (e.g. on a Keras layer) so
    that they are tracked by checkpoints and SavedModel export.

    Args:
      filename: A vocabulary file.
      default_value: The id given to tokens not in the vocabulary; `None`
        means the `UNK` id.

    Returns:
      A tuple `(vocab_to_id_table, id_to_vocab_table, word_to_count_table,
      vocab_size)`:
        vocab_to_id_table: tf.string -> tf.int64 id (unknown -> default).
        id_to_vocab_table: tf.int64 id -> tf.string (unknown -> "UNK").
        word_to_count_table: tf.string -> tf.float32 count (unknown or no
          counts -> -1).
        vocab_size: The number of ids INCLUDING the three special tokens
          (as in the original), i.e. `VocabInfo.total_size`.

    Raises:
      DataError: The file is missing, empty or malformed.
    """
    tokens, counts = read_vocab(filename)
    special_vocab = get_special_vocab(len(tokens))
    all_tokens = tokens + list(SPECIAL_TOKENS)
    all_counts = counts + [-1.0] * len(SPECIAL_TOKENS)
    total_size = len(all_tokens)
    if default_value is None:
        default_value = special_vocab.UNK
    logging.info(
        "Creating vocabulary lookup table of size %d for %s", total_size, filename
    )

    token_tensor = tf.constant(all_tokens, dtype=tf.string)
    id_tensor = tf.range(total_size, dtype=tf.int64)
    count_tensor = tf.constant(all_counts, dtype=tf.float32)

    vocab_to_id_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(token_tensor, id_tensor),
        default_value=tf.constant(default_value, dtype=tf.int64),
    )
    id_to_vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(id_tensor, token_tensor),
        default_value="UNK",
    )
    word_to_count_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(token_tensor, count_tensor),
        default_value=tf.constant(-1.0, dtype=tf.float32),
    )
    return vocab_to_id_table, id_to_vocab_table, word_to_count_table, total_size


class Vocab:
    """A vocabulary held in Python, for work outside TensorFlow graphs.

    Attributes:
      path: The vocabulary file.
      tokens: All tokens in id order, the three special tokens last
        (`total_size` entries).
      counts: The counts of the file's tokens (`-1.0` where absent).
      vocab_size: Number of tokens in the file.
      special_vocab: A `SpecialVocab` of ids.
      total_size: `vocab_size + 3`.
    """

    def __init__(self, path):
        file_tokens, counts = read_vocab(path)
        self.path = path
        self.vocab_size = len(file_tokens)
        self.special_vocab = get_special_vocab(self.vocab_size)
        self.tokens = file_tokens + list(SPECIAL_TOKENS)
        self.counts = counts
        self.total_size = len(self.tokens)
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    @property
    def info(self):
        """The `VocabInfo` of this vocabulary."""
        return VocabInfo(self.path, self.vocab_size, self.special_vocab)

    def token_to_id(self, token):
        """Returns the id of `token`, or the `UNK` id if it is unknown."""
        return self._ids.get(token, self.special_vocab.UNK)

    def id_to_token(self, token_id):
        """Returns the token of `token_id`, or `"UNK"` if it is out of range."""
        token_id = int(token_id)
        if 0 <= token_id < self.total_size:
            return self.tokens[token_id]
        return "UNK"

    def __len__(self):
        return self.total_size

    def __contains__(self, token):
        return token in self._ids


def file_checksum(path, chunk_size=1 << 20):
    """Returns the SHA-256 hex digest of a file's bytes.

    Used to record which vocabulary a model was trained with, so that a
    different file at the same path is noticed at inference time.

    Raises:
      DataError: The file does not exist.
    """
    if not tf.io.gfile.exists(path):
        raise DataError(f"file not found: {path}; cannot compute its checksum.")
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()
