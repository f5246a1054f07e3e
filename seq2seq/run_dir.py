"""What a training output directory holds, and how to use it safely.

- The lock: one training run writes to an `output_dir` at a time. The chief
  holds `output_dir/train.lock` (JSON: host, pid, start time), created
  atomically and removed when the run ends, however it ends; a lock left by
  a process that no longer runs on this host is taken over with a warning.
- Checkpoints: `checkpoint_prefixes` lists them newest first,
  `newest_intact` skips damaged ones (truncated or missing files) with a
  warning naming each, and `clean_temp_checkpoints` removes the
  `*_temp` directories that an interrupted save leaves behind.
- What a model directory holds besides checkpoints: `train_options.json`
  (`TrainOptions`, defined in `seq2seq.train_options` and re-exported here;
  `check_train_options` refuses a config that does not fit the checkpoints)
  and the best checkpoint in `best/` with its `best.json` (`best_dir`,
  `read_best`).
- Write failures: `writing` turns a failed write (read-only or full disk,
  a path component that is a file, ...) into one `OutputWriteError` line
  naming the file and the newest intact checkpoint.
"""

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import time

import tensorflow as tf
from absl import logging

from seq2seq.errors import UserError
from seq2seq.train_options import (  # noqa: F401  (re-exported)
    TRAIN_OPTIONS_FILENAME,
    VOCAB_PARAMS,
    TrainOptions,
)

LOCK_FILE = "train.lock"

# The best checkpoint by a dev metric (see `seq2seq.training.early_stopping`).
BEST_DIR = "best"
BEST_FILE = "best.json"

# A lock file younger than this that cannot be parsed may still be being
# written by its creator; older ones are taken over.
_FRESH_LOCK_SECONDS = 10.0

# Checkpoints are saved as "<name>-<number>"; an interrupted save leaves
# "<name>-<number>_temp/".
_PREFIX = re.compile(r"^(.*)-(\d+)$")
_TEMP_DIR = re.compile(r"^.+-\d+_temp$")

# Messages of write failures TensorFlow reports with a generic error code.
_WRITE_FAILURES = (
    "No space left",
    "File too large",
    "Read-only file system",
    "Permission denied",
    "not a directory",
    "Not a directory",
    "Is a directory",
    "Disk quota",
    "No such file or directory",
    "Input/output error",
)


class OutputDirLockedError(UserError):
    """Another live training run holds the output directory."""


class CheckpointDamagedError(UserError):
    """No checkpoint of a directory can be read."""


class OutputWriteError(UserError):
    """A file of the output directory could not be written."""


# ---------------------------------------------------------------- the lock


def _now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _process_start_time(pid):
    """When process `pid` of this host started (seconds since the epoch), or
    None where /proc does not tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(
                float(line.split()[1]) for line in handle if line.startswith("btime")
            )
        return boot + float(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _holder_is_running(holder):
    """Whether the process named by a lock's `holder` dict may still run.

    A process on another host cannot be checked and counts as running. On
    this host the pid must exist and must not have started after the lock
    was taken (a later process reusing the pid is not the holder).
    """
    if holder.get("host") != socket.gethostname():
        return True
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False  # This process does not hold it (see `_held`).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # Runs under another user.
    started = holder.get("started_epoch")
    process_start = _process_start_time(pid)
    if started is not None and process_start is not None:
        return process_start <= float(started) + 2.0
    return True


def _read_lock(path):
    """The holder dict of a lock file, None if it is gone, {} if unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(holder):
    """`host HOST, pid PID, started TIME` of a lock's holder dict."""
    return (
        f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"started {holder.get('started', '?')}"
    )


class OutputDirLock:
    """The lock of one training run on an output directory.

    Use `lock_output_dir`, which is reentrant within a process.
    """

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.holder = None

    def acquire(self):
        """Creates the lock file, taking over a stale one.

        Raises:
          OutputDirLockedError: A live process holds the lock.
          OutputWriteError: The directory or the lock file cannot be written.
        """
        with writing(self.path, self.output_dir):
            os.makedirs(self.output_dir, exist_ok=True)
        for _ in range(5):
            if self._try_create():
                return
            holder = _read_lock(self.path)
            if holder is None:
                continue  # Released meanwhile.
            if not holder:
                try:
                    age = time.time() - os.path.getmtime(self.path)
                except OSError:
                    continue
                if age < _FRESH_LOCK_SECONDS:
                    time.sleep(0.2)  # Being written by its creator.
                    continue
            elif _holder_is_running(holder):
                raise OutputDirLockedError(
                    f"{self.output_dir} is in use by another training run "
                    f"({describe_holder(holder)}; lock file {self.path}). Wait "
                    "for it to finish or stop it, or use another --output_dir; "
                    "if that process no longer runs, delete the lock file."
                )
            self._take_over(holder)
        raise OutputDirLockedError(
            f"could not lock {self.output_dir}: {self.path} keeps changing. Check "
            "that no other training run uses this --output_dir."
        )

    def _try_create(self):
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now_text(),
            "started_epoch": time.time(),
        }
        with writing(self.path, self.output_dir):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            try:
                os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                os.remove(self.path)
                raise
            os.close(fd)
        self.holder = holder
        return True

    def _take_over(self, stale):
        """Removes the stale lock `stale` (a holder dict, {} if unreadable),
        unless another process replaced it meanwhile."""
        grave = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        moved = _read_lock(grave) or {}
        if moved != stale:
            # A new holder took it between our read and the rename: put back.
            try:
                os.link(grave, self.path)
            except OSError:
                pass
            os.remove(grave)
            return
        os.remove(grave)
        if stale:
            logging.warning(
                "Took over the stale lock %s of a process that no longer runs " "(%s).",
                self.path,
                describe_holder(stale),
            )
        else:
            logging.warning("Took over the unreadable stale lock %s.", self.path)

    def release(self):
        """Removes the lock file if it is still this run's."""
        if self.holder is None:
            return
        if _read_lock(self.path) == self.holder:
            try:
                os.remove(self.path)
            except OSError as err:
                logging.warning("Could not remove the lock %s: %s", self.path, err)
        self.holder = None


# realpath -> [OutputDirLock, number of holders in this process]
_held = {}


@contextlib.contextmanager
def lock_output_dir(output_dir):
    """Holds the training lock on `output_dir` for the `with` block.

    Reentrant: nested uses in one process share one lock, released when the
    outermost block exits (normally, on an error or on an interrupt).

    Raises:
      OutputDirLockedError: A live process holds the lock.
    """
    key = os.path.realpath(output_dir)
    entry = _held.get(key)
    if entry is None:
        lock = OutputDirLock(output_dir)
        lock.acquire()
        entry = _held[key] = [lock, 0]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            entry[0].release()


# ---------------------------------------------------------- checkpoints


def checkpoint_prefixes(directory):
    """Checkpoint prefixes in `directory`, newest (highest number) first.

    Those listed in the `checkpoint` state file come first in its order,
    then any other `<name>-<number>.index` of the directory, so that a
    checkpoint whose files are gone or damaged still shows up.
    """
    listed = []
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError) as err:
        logging.warning(
            "Ignoring the unreadable checkpoint state in %s: %s", directory, err
        )
        state = None
    if state is not None:
        # `get_checkpoint_state` already joined relative paths to `directory`.
        listed.extend(state.all_model_checkpoint_paths)
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names:
        if name.endswith(".index"):
            path = os.path.join(directory, name[: -len(".index")])
            if path not in listed and _PREFIX.match(name[: -len(".index")]):
                listed.append(path)

    return sorted(listed, key=checkpoint_number, reverse=True)


def checkpoint_number(prefix):
    """The number of checkpoint `prefix` (`ckpt-1500` -> 1500, the global step
    it was saved at), or -1 for a name without one."""
    match = _PREFIX.match(os.path.basename(prefix))
    return int(match.group(2)) if match else -1


def _short(err):
    """The first line of an error, without TensorFlow's op decorations."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text)
    return text[:300]


def damage(prefix, full=False):
    """Why the checkpoint `prefix` cannot be read, or None if it is intact.

    The quick check reads the index and the object graph, which is stored
    last in the data file, so a missing index, a missing or truncated data
    file and a damaged index are caught without reading every tensor.

    Args:
      prefix: A checkpoint prefix, e.g. `output_dir/ckpt-100`.
      full: Also read every tensor but the data position (finds damage in
        the middle of the file).
    """
    if not tf.io.gfile.exists(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        keys = reader.get_variable_to_dtype_map()
        if "_CHECKPOINTABLE_OBJECT_GRAPH" in keys:
            reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
        if full:
            for key, dtype in keys.items():
                # The data position (a variant) cannot be read back alone.
                if dtype != tf.variant:
                    reader.get_tensor(key)
    except (IndexError, ValueError, tf.errors.OpError) as err:
        return _short(err)
    return None


def newest_intact(directory, warn=True):
    """The newest checkpoint of `directory` that can be read.

    Damaged checkpoints newer than it are skipped, each with a warning.

    Returns:
      A checkpoint prefix, or None when the directory holds no checkpoint.

    Raises:
      CheckpointDamagedError: There are checkpoints but none is intact.
    """
    damaged = []
    for prefix in checkpoint_prefixes(directory):
        reason = damage(prefix)
        if reason is None:
            for bad, why in damaged if warn else ():
                logging.warning(
                    "Checkpoint %s is damaged (%s); using %s, the newest intact one.",
                    bad,
                    why,
                    os.path.basename(prefix),
                )
            return prefix
        damaged.append((prefix, reason))
    if damaged:
        names = ", ".join(os.path.basename(p) for p, _ in damaged)
        raise CheckpointDamagedError(
            f"no intact checkpoint in {directory}: {names} "
            f"{'is' if len(damaged) == 1 else 'are'} damaged "
            f"({damaged[0][1]}). Restore them from a backup, or move the damaged "
            "files and the 'checkpoint' file away (training then starts from "
            "step 0)."
        )
    return None


def restore_checkpoint(prefix, restore, built_from, fix=None):
    """Runs `restore()` (which reads `prefix`), explaining a failure in one line.

    Args:
      prefix: The checkpoint `restore` reads.
      restore: A callable that restores it and raises when it cannot.
      built_from: What the model was built from, for the message, e.g.
        "the current config".
      fix: How to fix a checkpoint that does not fit the model.

    Raises:
      CheckpointDamagedError: The checkpoint's files are damaged.
      UserError: The checkpoint does not fit the model.
    """
    try:
        restore()
    except (AssertionError, ValueError, IndexError, tf.errors.OpError) as err:
        reason = damage(prefix, full=True)
        if reason is None and isinstance(err, (IndexError, tf.errors.DataLossError)):
            reason = _short(err)
        if reason:
            raise CheckpointDamagedError(
                f"checkpoint {prefix} is damaged ({reason}). Move its files "
                f"({os.path.basename(prefix)}.*) away to use the previous "
                "checkpoint."
            ) from None
        raise UserError(
            f"checkpoint {prefix} does not fit the model built from {built_from} "
            f"({_short(err)}). "
            + (fix or "Use the config the checkpoint was trained with.")
        ) from None


def clean_temp_checkpoints(directory):
    """Removes the `<name>-<number>_temp` directories interrupted saves left
    in `directory` (and in its `best/`), logging each.

    Returns:
      The removed paths.
    """
    removed = []
    for folder in (directory, os.path.join(directory, "best")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in sorted(names):
            path = os.path.join(folder, name)
            if _TEMP_DIR.match(name) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                logging.warning(
                    "Removed %s, left by a checkpoint save that was interrupted.",
                    path,
                )
    return removed


# ------------------------------------------------------- write failures


def is_write_failure(err):
    """Whether `err`, raised while writing a file, means the file system
    refused the write (as opposed to a bug)."""
    if isinstance(err, OSError):
        return True
    if isinstance(
        err,
        (
            tf.errors.PermissionDeniedError,
            tf.errors.ResourceExhaustedError,
            tf.errors.AlreadyExistsError,
        ),
    ):
        return True
    return isinstance(err, tf.errors.OpError) and any(
        text in str(err) for text in _WRITE_FAILURES
    )


def latest_checkpoint_note(output_dir):
    """`the latest intact checkpoint is ckpt-N in DIR` (or that there is none)."""
    try:
        prefix = newest_intact(output_dir, warn=False) if output_dir else None
    except CheckpointDamagedError:
        prefix = None
    if prefix is None:
        return f"there is no intact checkpoint in {output_dir} yet"
    return f"the latest intact checkpoint is {os.path.basename(prefix)} in {output_dir}"


@contextlib.contextmanager
def writing(what, output_dir):
    """Turns a refused write in the block into one `OutputWriteError` line.

    Args:
      what: The file or checkpoint being written (for the message).
      output_dir: The run's output directory (for the latest checkpoint).
    """
    try:
        yield
    except (OSError, tf.errors.OpError) as err:
        if not is_write_failure(err):
            raise
        detail = _short(err)
        if isinstance(err, OSError) and err.filename:
            detail = f"{err.filename}: {err.strerror or err}"
        raise OutputWriteError(
            f"cannot write {what} ({detail}); {latest_checkpoint_note(output_dir)}. "
            "Free disk space or make the directory writable, then run the same "
            "command again."
        ) from None


# ---------------------------------------------------- what the dir holds


def best_dir(output_dir):
    """`output_dir/best`, where the best checkpoint and `best.json` live."""
    return os.path.join(output_dir, BEST_DIR)


def read_best(output_dir):
    """The contents of `output_dir/best/best.json`, or None if absent."""
    path = os.path.join(best_dir(output_dir), BEST_FILE)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as handle:
            return json.loads(handle.read())
    except ValueError:
        logging.warning("Ignoring %s: not valid JSON.", path)
        return None


def check_train_options(train_options, output_dir):
    """Refuses a config that does not fit the checkpoints in `output_dir`.

    Raises:
      UserError: `output_dir` holds a model of another class or trained with
        other vocabularies.
    """
    path = os.path.join(output_dir, TRAIN_OPTIONS_FILENAME)
    if os.path.exists(path) and tf.train.latest_checkpoint(output_dir):
        previous = TrainOptions.load(output_dir)
        differences = previous.differences(train_options)
        if differences:
            raise UserError(
                f"{output_dir} holds a model trained with a different config: "
                f"{'; '.join(differences)}. Use a new --output_dir or the same "
                "model and vocabularies."
            )


def check_and_write_train_options(train_options, output_dir):
    """Writes `train_options.json` after `check_train_options`.

    Raises:
      UserError: The config does not fit the checkpoints in `output_dir`,
        or the file cannot be written.
    """
    check_train_options(train_options, output_dir)
    path = os.path.join(output_dir, TRAIN_OPTIONS_FILENAME)
    with writing(path, output_dir):
        os.makedirs(output_dir, exist_ok=True)
        train_options.dump(output_dir)
