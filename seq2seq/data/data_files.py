"""Finding, checking and counting the files an input pipeline reads.

Patterns in a pipeline's file lists are expanded here, every file is
checked to exist before anything is read (a `DataError` naming the key and
the path otherwise), and text files are counted line by line the way
`tf.data.TextLineDataset` reads them.
"""

import os

import tensorflow as tf

from seq2seq.errors import ConfigError, DataError

_GLOB_CHARS = "*?["


def first_record(files, read_first, owner):
    """Returns `read_first(path)` for the first file that has a record.

    Args:
      files: Paths, in order.
      read_first: `path -> tuple or None` (None for an empty file).
      owner: The pipeline's name, for the error message.

    Raises:
      DataError: Every file is empty.
    """
    for path in files:
        found = read_first(path)
        if found is not None:
            return found
    raise DataError(f"{owner}: the files {', '.join(files)} contain no records.")


def _as_file_list(value, key, owner):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    files = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(
                f"{owner}: '{key}' must be a list of file paths, got {item!r}."
            )
        files.append(item)
    return files


def expand_record_files(patterns, owner):
    """`expand_files` for the `files` param of a TFRecord pipeline, which
    must not be empty.

    Raises:
      ConfigError: `patterns` is empty.
      DataError: As `expand_files`.
    """
    if not patterns:
        raise ConfigError(
            f"{owner}: 'files' is empty; list at least one TFRecord file."
        )
    return expand_files(patterns, "files", owner)


def expand_files(patterns, key, owner="input pipeline"):
    """Expands `~` and glob patterns and checks that every file exists.

    Args:
      patterns: A list of paths or glob patterns, in reading order.
      key: The parameter the list came from (for error messages).
      owner: The class name (for error messages).

    Returns:
      A list of existing file paths (patterns expanded in sorted order).

    Raises:
      DataError: A file does not exist or a pattern matches nothing.
    """
    files = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if any(char in pattern for char in _GLOB_CHARS) and not tf.io.gfile.exists(
            pattern
        ):
            matches = sorted(tf.io.gfile.glob(pattern))
            if not matches:
                raise DataError(
                    f"{owner}: pattern {pattern} in '{key}' matches no file; "
                    "check the path."
                )
            files.extend(matches)
            continue
        if not tf.io.gfile.exists(pattern):
            raise DataError(
                f"{owner}: file in '{key}' not found: {pattern}; check the path."
            )
        if tf.io.gfile.isdir(pattern):
            raise DataError(
                f"{owner}: '{key}' lists a directory, not a file: {pattern}."
            )
        files.append(pattern)
    return files


def count_lines(path, chunk_size=1 << 22):
    """Counts lines as `tf.data.TextLineDataset` does.

    A last line without a final newline counts; an empty file has 0 lines.
    """
    lines = 0
    last = b"\n"
    with tf.io.gfile.GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (0 if last == b"\n" else 1)


def _total_size(files):
    return sum(tf.io.gfile.stat(path).length for path in files)


def _describe(files, counts):
    if len(files) == 1:
        return f"{files[0]} has {counts[0]} lines"
    parts = ", ".join(f"{path} ({count})" for path, count in zip(files, counts))
    return f"{parts} have {sum(counts)} lines in total"
