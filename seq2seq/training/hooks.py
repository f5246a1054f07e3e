"""Training hooks: objects the training loop calls around every step.

They keep the original's class names and params. A hook is built as
`cls(params, model_dir=..., run_config=...)` and the loop calls
`begin(trainer)` once, `before_step(step)` and
`after_step(step, features, outputs)` around each update (`step` is the
global step after the update), and `end(trainer)` once.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq import run_dir
from seq2seq.configurable import Configurable, ModeKeys
from seq2seq.data.copy_vocab import COPY_ID_KEYS
from seq2seq.training import stop_signals
from seq2seq.training.distribution import is_chief_from_env, tf_config
from seq2seq.training.eval_summaries import display_text, markdown_table
from seq2seq.training.evaluation import tokens_from_ids, tokens_from_strings


def _task_index():
    """This worker's index in `TF_CONFIG` (0 when not distributed)."""
    return int((tf_config().get("task") or {}).get("index", 0) or 0)


class TrainingHook(Configurable):
    """Base class of training hooks.

    Args:
      params: Hook params (see each class's `default_params`).
      model_dir: The training output directory.
      run_config: The trainer's `RunConfig` (may be None in tests).
    """

    def __init__(self, params, model_dir, run_config=None):
        super().__init__(params, ModeKeys.TRAIN)
        self.model_dir = model_dir
        self.run_config = run_config

    @staticmethod
    def default_params():
        return {}

    @property
    def is_chief(self):
        """Whether this process writes files (the chief of a cluster)."""
        return is_chief_from_env()

    def begin(self, trainer):
        """Called once before the first step."""

    def before_step(self, step):
        """Called before the update that will make the global step `step + 1`."""

    def after_step(self, step, features, outputs):
        """Called after each update with its batch and the step's outputs."""

    def end(self, trainer):
        """Called once after the last step."""


class PrintModelAnalysisHook(TrainingHook):
    """Prints the trainable variables with shapes and parameter counts, and
    writes the same table to `model_dir/model_analysis.txt`."""

    def begin(self, trainer):
        text = model_analysis(trainer.model)
        print(text, flush=True)
        if self.is_chief:
            with open(os.path.join(self.model_dir, "model_analysis.txt"), "w") as out:
                out.write(text + "\n")


def model_analysis(model):
    """A table of trainable variables: name, shape, parameter count, total."""
    rows = []
    total = 0
    for variable in model.trainable_variables:
        count = int(np.prod(variable.shape))
        total += count
        name = getattr(variable, "path", None) or variable.name
        rows.append((name, "x".join(str(d) for d in variable.shape), count))
    width = max([len(r[0]) for r in rows] + [8])
    lines = [f"{'variable':<{width}}  {'shape':>14}  {'params':>10}"]
    lines += [f"{n:<{width}}  {s:>14}  {c:>10,}" for n, s, c in rows]
    lines.append(f"{'total':<{width}}  {'':>14}  {total:>10,}")
    return "\n".join(lines)


class TrainSampleHook(TrainingHook):
    """Every N steps (or seconds), decodes the current training batch greedily
    (free-running, as inference would) and shows predictions beside targets.

    Samples are logged (the first three), written in full to
    `model_dir/samples/samples_<step>.txt`, and written to TensorBoard as the
    text summary `samples` (a table of source, target and prediction).
    """

    @staticmethod
    def default_params():
        return {
            "every_n_secs": None,
            "every_n_steps": 1000,
            "source_delimiter": " ",
            "target_delimiter": " ",
        }

    def begin(self, trainer):
        self._trainer = trainer
        self._last_time = time.time()
        self._decode = None
        self.sample_dir = os.path.join(self.model_dir, "samples")
        if self.is_chief:
            os.makedirs(self.sample_dir, exist_ok=True)

    def _due(self, step):
        if self.params["every_n_secs"]:
            return time.time() - self._last_time >= self.params["every_n_secs"]
        every = self.params["every_n_steps"]
        return bool(every) and step % every == 0

    def after_step(self, step, features, outputs):
        if not self.is_chief or not self._due(step):
            return
        self._last_time = time.time()
        lines = self.samples(features)
        for line in lines[:3]:
            logging.info("sample at step %d: %s", step, line)
        path = os.path.join(self.sample_dir, f"samples_{step:08d}.txt")
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        writer = getattr(self._trainer, "train_writer", None)
        if writer is not None:
            table = markdown_table(
                self._rows, header=("source", "target", "prediction")
            )
            with run_dir.writing("training summaries", self.model_dir):
                with writer.as_default(step=step):
                    tf.summary.text("samples", table)

    def samples(self, features):
        """Decodes a batch; returns one 'Prediction: ... / Target: ...' line
        per example."""
        model = self._trainer.model
        keys = ("source_ids", "source_len", "target_ids", "target_len")
        keys += COPY_ID_KEYS
        if self._decode is None:
            self._decode = tf.function(
                model.infer, reduce_retracing=True, autograph=False
            )
        predictions = self._decode({k: features[k] for k in keys if k in features})
        oov_tokens = features.get("source_oov_tokens")
        hypotheses = tokens_from_ids(
            model.target_id_to_token,
            predictions["predicted_ids"].numpy(),
            predictions["predicted_len"].numpy(),
            None if oov_tokens is None else oov_tokens.numpy(),
        )
        references = tokens_from_strings(
            features["target_tokens"].numpy(), features["target_tokens_len"].numpy()
        )
        delimiter = self.params["target_delimiter"]
        sources = tokens_from_strings(
            features["source_tokens"].numpy(), features["source_len"].numpy()
        )
        lines = []
        self._rows = []
        for source, hyp, ref in zip(sources, hypotheses, references):
            hyp = [t for t in hyp if t not in ("SEQUENCE_START", "SEQUENCE_END")]
            ref = [t for t in ref if t not in ("SEQUENCE_START", "SEQUENCE_END")]
            lines.append(
                f"Prediction: {delimiter.join(hyp)}  |  Target: {delimiter.join(ref)}"
            )
            self._rows.append(
                (
                    display_text(source, self.params["source_delimiter"]),
                    delimiter.join(ref),
                    delimiter.join(hyp),
                )
            )
        return lines


class MetadataCaptureHook(TrainingHook):
    """Captures a profiler trace of one step (`step`, default 10) into
    `model_dir`, viewable in TensorBoard's profile tab."""

    @staticmethod
    def default_params():
        return {"step": 10}

    def before_step(self, step):
        self._active = False
        if self.is_chief and step + 1 == self.params["step"]:
            try:
                tf.profiler.experimental.start(self.model_dir)
                self._active = True
                logging.info("Tracing step %d into %s", step + 1, self.model_dir)
            except (tf.errors.OpError, RuntimeError, ValueError) as err:
                logging.warning("Could not start the profiler: %s", err)

    def after_step(self, step, features, outputs):
        if getattr(self, "_active", False):
            tf.profiler.experimental.stop()
            self._active = False


class VariableRestoreHook(TrainingHook):
    """Warm-starts the variables whose path starts with `prefix` from the model
    of another training checkpoint (`checkpoint_path`: a checkpoint prefix or
    a directory holding one); every other variable keeps its value."""

    @staticmethod
    def default_params():
        return {"prefix": "", "checkpoint_path": ""}

    def begin(self, trainer):
        from seq2seq.errors import UserError

        path = self.params["checkpoint_path"]
        if path and os.path.isdir(path):
            path = run_dir.newest_intact(path)
        if not path:
            raise UserError(
                "VariableRestoreHook: no checkpoint at "
                f"'{self.params['checkpoint_path']}'. Set checkpoint_path to a "
                "training output directory or checkpoint prefix."
            )
        model = trainer.model
        prefix = self.params["prefix"]

        def matches(variable):
            return (getattr(variable, "path", None) or variable.name).startswith(prefix)

        kept = [(v, v.numpy()) for v in model.variables if not matches(v)]
        tf.train.Checkpoint(model=model).read(path).expect_partial()
        for variable, value in kept:
            variable.assign(value)
        restored = sum(1 for v in model.variables if matches(v))
        logging.info(
            "Restored %d variables under prefix '%s' from %s", restored, prefix, path
        )


class DelayStartHook(TrainingHook):
    """Staggers the start of non-chief workers by training steps, as the
    original did: worker `i` takes its first step once the chief has
    trained `delay_k * i` steps (a worker that joins a running job late
    starts from better weights).

    The chief's global step is the number of the newest checkpoint in
    `checkpoint_dir` (default: the training output directory, where the
    chief saves), or the worker's own global step when that is already
    past (a resumed run). The directory is polled every `poll_secs`; with
    `timeout_secs` > 0 a worker that has waited that long logs a warning
    and starts anyway. `delay_k` counted milliseconds in earlier versions
    of this port; it counts steps again, as in the original.

    Under `multi_worker_mirrored` every worker takes part in every step
    (the replicas are synchronous), so no worker can start after the chief:
    the hook logs that and does nothing.
    """

    @staticmethod
    def default_params():
        return {
            "delay_k": 500,
            "checkpoint_dir": "",
            "poll_secs": 5.0,
            "timeout_secs": 0.0,
        }

    def begin(self, trainer):
        index = _task_index()
        if index <= 0 or self.is_chief:
            return
        if trainer is not None and getattr(trainer, "multi_worker", False):
            logging.info(
                "DelayStartHook: replicas are synchronous under "
                "multi_worker_mirrored; worker %d starts with the chief.",
                index,
            )
            return
        target = int(self.params["delay_k"]) * index
        directory = self.params["checkpoint_dir"] or self.model_dir
        own_step = trainer.step if trainer is not None else 0
        logging.info(
            "DelayStartHook: worker %d waits until the chief reaches step %d "
            "(checkpoints in %s).",
            index,
            target,
            directory,
        )
        timeout = float(self.params["timeout_secs"] or 0)
        started = time.monotonic()
        while True:
            step = max(own_step, chief_step(directory))
            if step >= target:
                logging.info("DelayStartHook: step %d reached; starting.", step)
                return
            waited = time.monotonic() - started
            if timeout and waited >= timeout:
                logging.warning(
                    "DelayStartHook: waited %.0fs and the chief is at step %d, "
                    "not %d; starting anyway.",
                    waited,
                    step,
                    target,
                )
                return
            stop_signals.sleep(float(self.params["poll_secs"]))


def chief_step(directory):
    """The global step of the newest checkpoint in `directory` (0 if none)."""
    prefixes = run_dir.checkpoint_prefixes(directory)
    return max(0, run_dir.checkpoint_number(prefixes[0])) if prefixes else 0


class SyncReplicasOptimizerHook(TrainingHook):
    """Accepted for old configs: `tf.distribute` synchronises replicas, so
    there is nothing to do beyond saying so."""

    def begin(self, trainer):
        logging.info(
            "SyncReplicasOptimizerHook: replicas are synchronised by "
            "tf.distribute; the hook has nothing to do."
        )
