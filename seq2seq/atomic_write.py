"""Replacing a file so that a failed write never leaves it half-written.

The bookkeeping files of a training run (`train_options.json`,
`best/best.json`) are rewritten in place while the run goes on. A plain
`open(path, "w")` truncates the file first, so a full disk or a crash in
the middle of the write would lose the previous contents. `replace_file`
writes the new contents under a temporary name beside the file and then
renames it over the file: the file holds either its old or its new
contents, never a mix.

Paths go through `tf.io.gfile`, so cloud storage paths (`gs://...`) work
too, where the rename is the file system's own (on GCS, a copy and a
delete).
"""

import contextlib
import os

import tensorflow as tf

__all__ = ["TEMPORARY_SUFFIX", "WRITE_ERRORS", "replace_file"]

# Appended to the file's own name for the new contents until the rename.
TEMPORARY_SUFFIX = ".tmp"

# What a failed write raises: `tf.io.gfile` raises `tf.errors.OpError`
# (NotFound, PermissionDenied, ...) where Python's `open` raises `OSError`.
WRITE_ERRORS = (OSError, tf.errors.OpError)


def replace_file(path, contents):
    """Writes `contents` to file `path`, replacing the file in one rename.

    Creates the file's directory when it does not exist. On any failure the
    temporary file is removed (when it can be), `path` is left as it was and
    the error is raised again.

    Args:
      path: The file to write.
      contents: `str` (written as UTF-8) or `bytes`.

    Raises:
      OSError or tf.errors.OpError (see `WRITE_ERRORS`): the directory
        cannot be created, or the write or the rename failed.
    """
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = path + TEMPORARY_SUFFIX
    mode = "wb" if isinstance(contents, bytes) else "w"
    try:
        with tf.io.gfile.GFile(temporary, mode) as handle:
            handle.write(contents)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(*WRITE_ERRORS):
            if tf.io.gfile.exists(temporary) and not tf.io.gfile.isdir(temporary):
                tf.io.gfile.remove(temporary)
        raise
