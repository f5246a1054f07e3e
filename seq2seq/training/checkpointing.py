"""The checkpoints a training run writes and resumes from.

`TrainCheckpoints` wraps a `tf.train.CheckpointManager` over `output_dir`:
it saves once per step, resumes from the newest intact checkpoint (see
`seq2seq.run_dir.newest_intact`), and turns refused writes into one
`OutputWriteError` line. Under `multi_worker_mirrored` every worker takes
part in a save, but only the chief's is kept: the others write into a
temporary directory that is emptied after each save and removed by `close`.

`average_checkpoints` sets a model's weights to their mean over several
checkpoints of a run (`bin/tools/average_checkpoints.py`).
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq import run_dir
from seq2seq.errors import UserError
from seq2seq.inference import inference


class TrainCheckpoints:
    """Saves and restores a `tf.train.Checkpoint` in `output_dir`.

    Args:
      checkpoint: The `tf.train.Checkpoint` of the model, the optimizer and
        (when training) the data iterator.
      output_dir: The run's output directory.
      is_chief: Whether this worker's checkpoints are the ones kept.
      max_to_keep: How many checkpoints to keep (0 or None: all).
      keep_checkpoint_every_n_hours: Also keep one checkpoint per this many
        hours.
    """

    def __init__(
        self,
        checkpoint,
        output_dir,
        is_chief=True,
        max_to_keep=5,
        keep_checkpoint_every_n_hours=4.0,
    ):
        self.checkpoint = checkpoint
        self.output_dir = output_dir
        self.is_chief = is_chief
        self.directory = (
            output_dir
            if is_chief
            else tempfile.mkdtemp(prefix="seq2seq_worker_checkpoint_")
        )
        self.manager = tf.train.CheckpointManager(
            checkpoint,
            self.directory,
            max_to_keep=max_to_keep or None,
            keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
        )
        # The step of the newest checkpoint written or restored by this run.
        self.saved_step = None

    def restore(self, step_fn):
        """Restores the newest intact checkpoint of `output_dir`, if any.

        Workers other than the chief resume from the chief's checkpoints.

        Args:
          step_fn: Returns the global step (read after restoring).

        Returns:
          The restored checkpoint's prefix, or None when there is none.

        Raises:
          UserError: The checkpoints are all damaged, or the newest intact
            one does not fit the model.
        """
        latest = run_dir.newest_intact(self.output_dir)
        if not latest:
            return None
        run_dir.restore_checkpoint(
            latest,
            lambda: self.checkpoint.restore(latest).assert_existing_objects_matched(),
            "the current config",
            "Use a new --output_dir or the config the checkpoint was trained with.",
        )
        self.saved_step = step_fn()
        logging.info("Restored %s (step %d)", latest, self.saved_step)
        return latest

    def restore_for_evaluation(self, build, prefix=None):
        """Restores the model of the newest intact checkpoint, or of `prefix`
        (the optimizer and data position may be missing from what `build`
        creates).

        Args:
          build: Creates the variables to restore; called once a checkpoint
            is known to exist.
          prefix: The checkpoint to restore; None: the newest intact one.

        Returns:
          The restored checkpoint's prefix.

        Raises:
          UserError: `output_dir` holds no readable checkpoint, or it does
            not fit the model.
        """
        latest = prefix or run_dir.newest_intact(self.output_dir)
        if not latest:
            raise UserError(
                f"no checkpoint in {self.output_dir} to evaluate; train "
                "first or point --output_dir at a training directory."
            )
        build()
        run_dir.restore_checkpoint(
            latest,
            lambda: self.checkpoint.restore(latest).expect_partial(),
            "the current config",
        )
        return latest

    def save(self, step):
        """Writes checkpoint `ckpt-<step>` (once per step).

        Returns:
          Its path on the chief; None on other workers.

        Raises:
          OutputWriteError: The file system refused the write.
        """
        if self.saved_step == step:
            return self.manager.latest_checkpoint
        with run_dir.writing(f"checkpoint ckpt-{step}", self.output_dir):
            path = self.manager.save(checkpoint_number=step)
        self.saved_step = step
        if not self.is_chief:
            self._clear_worker_directory()
            return None
        logging.info("Saved checkpoint %s", path)
        return path

    def saved_at(self, step):
        """The path of the checkpoint this run saved or restored at `step`,
        or None."""
        return self.manager.latest_checkpoint if self.saved_step == step else None

    def _clear_worker_directory(self):
        """Deletes what a non-chief worker's save wrote."""
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)

    def close(self):
        """Removes a non-chief worker's temporary directory."""
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def model_variables(model):
    """The variables a `tf.train.Checkpoint(model=model)` saves, each once,
    in a fixed order."""
    root = tf.train.Checkpoint(model=model)  # The view holds it weakly.
    found, seen = [], set()
    for trackable in tf.train.TrackableView(root).descendants():
        # Keras variables wrap a tf.Variable but are not one.
        is_variable = isinstance(trackable, (tf.Variable, keras.Variable))
        if is_variable and id(trackable) not in seen:
            seen.add(id(trackable))
            found.append(trackable)
    return found


def average_checkpoints(model, prefixes):
    """Sets the model's variables to their mean over several checkpoints.

    Floating-point variables get the arithmetic mean of their values in
    `prefixes` (accumulated in float64); others (integer counters) the value
    of the first checkpoint. Only the model is read: the optimizer's slots,
    its step counter and the data position of a training checkpoint are
    left out.

    Args:
      model: A model whose variables exist (built by one call).
      prefixes: Checkpoint prefixes written by training (or by
        `tf.train.Checkpoint(model=...)`), the first one the newest.

    Returns:
      The list of averaged variables.

    Raises:
      UserError: A checkpoint is damaged or does not fit the model.
    """
    variables = model_variables(model)
    value_dtypes = {id(v): tf.as_dtype(v.dtype).as_numpy_dtype for v in variables}
    floating = [tf.as_dtype(v.dtype).is_floating for v in variables]
    sums = [None] * len(variables)
    for index, prefix in enumerate(prefixes):
        inference.restore_model(model, prefix)
        for i, variable in enumerate(variables):
            value = np.asarray(variable.numpy())
            if not floating[i]:
                if index == 0:
                    sums[i] = value
                continue
            value = value.astype("float64")
            sums[i] = value if sums[i] is None else sums[i] + value
    for variable, total, is_float in zip(variables, sums, floating):
        if is_float:
            total = total / len(prefixes)
        variable.assign(total.astype(value_dtypes[id(variable)]))
    return variables
