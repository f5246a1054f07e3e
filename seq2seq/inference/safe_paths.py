"""What inference and export must never write over.

`bin/infer.py` tasks write files and `bin/export.py` replaces a directory,
next to files that cannot be recreated cheaply: the input corpus, the
vocabularies and the training run (checkpoints, `train_options.json`, event
files). These checks run before anything is opened for writing. Paths are
compared once resolved: relative and absolute spellings, symbolic links and
hard links of one file are the same file.
"""

import fnmatch
import os

from seq2seq.errors import UserError

TRAIN_OPTIONS_FILE = "train_options.json"
CHECKPOINT_STATE_FILE = "checkpoint"

# Names of the files a training run writes (checkpoints, their state file,
# the options, the best-checkpoint record, TensorBoard events).
_RUN_FILE_PATTERNS = (
    TRAIN_OPTIONS_FILE,
    CHECKPOINT_STATE_FILE,
    "best.json",
    "events.out.tfevents.*",
    "*.index",
    "*.data-[0-9]*-of-[0-9]*",
)


def resolve(path):
    """The absolute path of `path` with every symbolic link followed."""
    return os.path.realpath(path)


def is_within(path, directory):
    """Whether `path` is `directory` or lies inside it (both resolved)."""
    path, directory = resolve(path), resolve(directory)
    return os.path.commonpath([path, directory]) == directory


def looks_like_training_run(directory):
    """Whether `directory` holds a training run: `train_options.json` or a
    `checkpoint` state file."""
    return any(
        os.path.isfile(os.path.join(directory, name))
        for name in (TRAIN_OPTIONS_FILE, CHECKPOINT_STATE_FILE)
    )


def enclosing_training_run(path):
    """The nearest of `path` and its parent directories that looks like a
    training run, or `None`."""
    current = resolve(path)
    while True:
        if os.path.isdir(current) and looks_like_training_run(current):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def training_run_inside(directory):
    """The first directory under `directory` (itself included) that looks
    like a training run, or `None`."""
    for root, _, files in os.walk(directory):
        if TRAIN_OPTIONS_FILE in files or CHECKPOINT_STATE_FILE in files:
            return root
    return None


def writes_over(output, path):
    """Whether writing `output` would write over the existing file `path`.

    Args:
      output: The path a task writes. Its last component may be an fnmatch
        pattern standing for a family of files (`[0-9]*.png`).
      path: An existing file.
    """
    out, target = resolve(output), resolve(path)
    if os.path.dirname(out) == os.path.dirname(target):
        name, pattern = os.path.basename(target), os.path.basename(out)
        if name == pattern or fnmatch.fnmatchcase(name, pattern):
            return True
    try:
        return os.path.samefile(output, path)
    except OSError:
        return False


def _training_run_file(output):
    """`(run directory, resolved path)` when `output` names a file of a
    training run (a checkpoint, `train_options.json`, ...), else `None`."""
    resolved = resolve(output)
    name = os.path.basename(resolved)
    if not any(fnmatch.fnmatchcase(name, p) for p in _RUN_FILE_PATTERNS):
        return None
    run = enclosing_training_run(os.path.dirname(resolved))
    return (run, resolved) if run else None


def check_outputs(outputs, inputs):
    """Refuses outputs that would write over an input or a training run.

    Args:
      outputs: `(what, path)` pairs: what writes (`DecodeText: output`) and
        the path it writes, whose last component may be an fnmatch pattern.
      inputs: Paths of the files that are read (corpus, vocabularies,
        configs); missing or empty ones are ignored.

    Raises:
      UserError: An output is one of the inputs, or a file of a training
        run.
    """
    inputs = [p for p in inputs if p and os.path.isfile(p)]
    for what, output in outputs:
        if not output:
            continue
        for path in inputs:
            if writes_over(output, path):
                raise UserError(
                    f"{what} {output} would overwrite the input file {path}; "
                    "write the output to another path."
                )
        found = _training_run_file(output)
        if found:
            run, resolved = found
            raise UserError(
                f"{what} {output} would overwrite {resolved}, a file of the "
                f"training run in {run}; write the output to another path."
            )
