"""Pretrained word vectors: reading them for the rows of a vocabulary.

Two file kinds are read (see `embedding.*.init_file` in docs/training.md):

* text, as word2vec (`.txt`/`.vec`) and GloVe write it: one word per line
  followed by its values, separated by spaces (`the 0.418 0.24968 ...`).
  word2vec's optional first line `count dim` is recognised and skipped.
  A word may itself contain spaces (some GloVe files have such lines): the
  last `dim` fields of a line are the vector, the rest is the word. Only the
  vectors of vocabulary tokens are kept, so a large file costs one pass and
  the memory of the vocabulary. The first line of a word listed twice wins.
* `.npy`: a float array whose rows follow the vocabulary file, either
  `[vocab_size, dim]` (the file's tokens; the special tokens `UNK`,
  `SEQUENCE_START`, `SEQUENCE_END` are then not in it) or
  `[vocab_size + 3, dim]` (every id). Loaded without pickles.

A problem with the file (missing, unreadable, a value that is not a number,
vectors of another width than `embedding.dim`, an array of the wrong shape)
is one `DataError` line naming the file and the fix.
"""

import os

import numpy as np
from absl import logging

from seq2seq.errors import ConfigError, DataError

FILE_KEYS = (
    "embedding.init_file",
    "embedding.source.init_file",
    "embedding.target.init_file",
)


def plan(params):
    """Which file initialises which embedding matrix.

    `embedding.source.init_file` / `embedding.target.init_file` name the
    file of one side; `embedding.init_file` the file of every side that has
    no file of its own (each side looks its tokens up in its own
    vocabulary). With `embedding.share` there is one matrix, the source
    one, and at most one file.

    Args:
      params: Model params (keys of a model without a source side may be
        missing).

    Returns:
      A list of `(key, path, side)`: the param that named the file, the file,
      and `source`, `target` or `shared`.

    Raises:
      ConfigError: With `embedding.share`, two different files.
    """
    named = {key: params[key] for key in FILE_KEYS if params.get(key)}
    if params.get("embedding.share"):
        if len(set(named.values())) > 1:
            raise ConfigError(
                "model_params: embedding.share is true (one matrix) but "
                f"{' and '.join(sorted(named))} name different files; set only "
                "embedding.init_file."
            )
        return [(key, path, "shared") for key, path in sorted(named.items())[:1]]
    result = []
    for side in ("source", "target"):
        key = f"embedding.{side}.init_file"
        if key not in params:
            continue  # e.g. Image2Seq has no source embedding.
        if not named.get(key):
            key = "embedding.init_file"
        if named.get(key):
            result.append((key, named[key], side))
    return result


def assign_rows(variable, id_to_token, path, side, key):
    """Copies the vectors `path` has for the tokens of `id_to_token` into the
    rows of `variable`; the other rows keep their values. Logs how many
    tokens were found.

    Args:
      variable: An embedding matrix [N, dim].
      id_to_token: The N tokens by id, specials included.
      path: The vector file (text or `.npy`).
      side: `source`, `target` or `shared`, for the log line.
      key: The param that named the file, for messages.

    Raises:
      DataError: The file is missing, unreadable or does not fit.
    """
    dim = int(variable.shape[1])
    values, found = load_rows(
        path, [str(t) for t in id_to_token], dim, key=f"model_params: {key}"
    )
    current = np.array(variable.numpy())
    current[found] = values[found].astype(current.dtype)
    variable.assign(current)
    count = int(found.sum())
    logging.info(
        "embedding: %d of %d %s tokens found in %s; %d initialised randomly",
        count,
        len(found),
        side,
        path,
        len(found) - count,
    )


def load_rows(path, tokens, dim, key="embedding.init_file"):
    """The pretrained vectors of `tokens`.

    Args:
      path: A text vector file or a `.npy` array (see the module docstring).
      tokens: The vocabulary's tokens by id, specials included (a sequence
        of `vocab_size + 3` strings, the specials last).
      dim: `embedding.dim`, the width every vector must have.
      key: The model param that named the file, for messages.

    Returns:
      `(values, found)`: `values` [N, dim] float32 (zero where not found),
      `found` [N] bool, with N = `len(tokens)`.

    Raises:
      DataError: The file is missing or unreadable, or does not fit.
    """
    if not os.path.isfile(path):
        raise DataError(
            f"{key}: {path} does not exist or is not a file; give the path of a "
            "word2vec/GloVe text file or a .npy array."
        )
    if path.endswith(".npy"):
        return _load_npy(path, len(tokens), dim, key)
    return _load_text(path, list(tokens), dim, key)


def _load_npy(path, num_tokens, dim, key):
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(
            f"{key}: cannot read {path} as a .npy array ({err}); save it with "
            "numpy.save(path, matrix) from a float [vocab_size, dim] matrix."
        ) from None
    vocab_size = num_tokens - 3
    if (
        array.ndim != 2
        or array.shape[0] not in (vocab_size, num_tokens)
        or not np.issubdtype(array.dtype, np.number)
    ):
        raise DataError(
            f"{key}: {path} holds a {array.dtype} array of shape "
            f"{list(array.shape)}; it must be a float [{vocab_size}, {dim}] "
            f"(or [{num_tokens}, {dim}] with the 3 special tokens) matrix "
            "whose rows follow the vocabulary file."
        )
    if array.shape[1] != dim:
        raise DataError(
            f"{key}: the vectors in {path} have {array.shape[1]} values but "
            f"embedding.dim is {dim}; set embedding.dim: {array.shape[1]} or "
            "use vectors of that width."
        )
    values = np.zeros([num_tokens, dim], np.float32)
    values[: array.shape[0]] = array
    found = np.zeros([num_tokens], bool)
    found[: array.shape[0]] = True
    return values, found


def _load_text(path, tokens, dim, key):
    index = {}
    for token_id, token in enumerate(tokens):
        index.setdefault(token, token_id)
    values = np.zeros([len(tokens), dim], np.float32)
    found = np.zeros([len(tokens)], bool)
    width = None
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                fields = line.rstrip("\r\n").rstrip(" ").split(" ")
                if number == 1 and _is_header(fields):
                    width = int(fields[1])
                    _check_width(width, dim, path, key)
                    continue
                if len(fields) < 2:
                    if line.strip():
                        raise DataError(
                            f"{key}: {path} line {number} has a word but no "
                            "vector; each line must be 'word v1 v2 ...'."
                        )
                    continue
                if width is None:
                    width = len(fields) - 1
                    _check_width(width, dim, path, key)
                if len(fields) < width + 1:
                    raise DataError(
                        f"{key}: {path} line {number} has {len(fields) - 1} "
                        f"values, the vectors before it {width}; each line "
                        "must be 'word' and then the same number of values."
                    )
                word = " ".join(fields[:-width])
                token_id = index.get(word)
                if token_id is None or found[token_id]:
                    continue
                try:
                    values[token_id] = np.asarray(fields[-width:], dtype=np.float32)
                except ValueError:
                    raise DataError(
                        f"{key}: {path} line {number}: the vector of '{word}' "
                        "holds a value that is not a number; the file must be "
                        "word2vec/GloVe text ('word v1 v2 ...') or a .npy array."
                    ) from None
                found[token_id] = True
    except OSError as err:
        raise DataError(
            f"{key}: cannot read {path}: {err.strerror or err}; check the path "
            "and its permissions."
        ) from None
    if width is None:
        raise DataError(
            f"{key}: {path} holds no vectors; give a word2vec/GloVe text file "
            "('word v1 v2 ...' per line) or a .npy array."
        )
    return values, found


def _is_header(fields):
    """Whether a first line is word2vec's `count dim` header."""
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def _check_width(width, dim, path, key):
    if width != dim:
        raise DataError(
            f"{key}: the vectors in {path} have {width} values but "
            f"embedding.dim is {dim}; set embedding.dim: {width} or use "
            "vectors of that width."
        )
