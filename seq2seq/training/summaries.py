"""Training summaries: the summary writers and the throughput window.

`SummaryWriters` creates the writers of `output_dir` (training curves) and
`output_dir/eval` (dev curves) on first use, so a run with nothing to do
writes nothing; workers other than the chief get no-op writers.
`TrainSummaries` accumulates the applied updates between two log lines (the
window) and, every `log_every_n_steps` steps, logs one line and writes the
training scalars: the mean loss of the window, learning rate, gradient
norms (per variable too, with histograms, under `--gradient_summaries`),
throughput (tokens, examples and steps per second of training time),
curve-health counts and the batch's length histograms. Every other metric
of the model's summable metrics dict (`ForwardOutput.metrics`, summed by the
train step) is summed over the window and written as `metrics/<name>`, its
total per target token of the window (e.g. `correct_tokens` gives the
token accuracy).
"""

import os
import time

import tensorflow as tf
from absl import logging

from seq2seq import run_dir

# Metrics already written as `loss` and `tokens_per_sec`.
_LOSS_METRICS = ("loss_sum", "target_tokens")


def write_gradients(gradients):
    """Writes `gradients/<variable>` histograms and `gradient_norm/<variable>`
    scalars (the clipped gradient of each variable, as the original's
    `optimize_loss` summarised them) to the default writer.

    Args:
      gradients: `{variable name: values}` (see `train_step.gradient_values`),
        or None (nothing is written).
    """
    for name, values in sorted((gradients or {}).items()):
        tf.summary.histogram(f"gradients/{name}", values)
        tf.summary.scalar(f"gradient_norm/{name}", tf.norm(values))


class SummaryWriters:
    """The summary writers of a run, created on first use.

    Args:
      output_dir: The run's output directory.
      is_chief: Whether this worker writes summaries (others get no-op
        writers).
    """

    def __init__(self, output_dir, is_chief=True):
        self.output_dir = output_dir
        self.is_chief = is_chief
        self._writers = {}

    def get(self, name):
        """The writer of `output_dir` ("train") or `output_dir/eval`
        ("eval")."""
        if name not in self._writers and not self.is_chief:
            self._writers[name] = tf.summary.create_noop_writer()
        if name not in self._writers:
            path = self.output_dir
            if name == "eval":
                path = os.path.join(path, "eval")
            with run_dir.writing(f"summaries in {path}", self.output_dir):
                self._writers[name] = tf.summary.create_file_writer(path)
        return self._writers[name]

    @property
    def train(self):
        """Summary writer for training curves (`output_dir`)."""
        return self.get("train")

    @property
    def eval(self):
        """Summary writer for dev curves (`output_dir/eval`)."""
        return self.get("eval")

    def flush(self):
        """Flushes the writers created so far."""
        with run_dir.writing("summaries", self.output_dir):
            for writer in self._writers.values():
                writer.flush()


class TrainSummaries:
    """The throughput window and the training scalars written at its end.

    Args:
      writers: The run's `SummaryWriters`.
      log_every_n_steps: Log and write once every this many steps (and at
        step 1 and at `train_steps`).
      train_steps: The last step, or None.
    """

    def __init__(self, writers, log_every_n_steps, train_steps=None):
        self.writers = writers
        self.log_every_n_steps = log_every_n_steps
        self.train_steps = train_steps
        self.reset()

    def reset(self):
        """Starts a new window now."""
        self.start = time.time()
        self.tokens = 0.0
        self.examples = 0.0
        self.loss = 0.0
        self.count = 0
        self.metrics = {}

    def exclude(self, seconds):
        """Leaves `seconds` (e.g. of an evaluation) out of the window's
        training time."""
        self.start += seconds

    def add(self, loss, outputs, batches):
        """Adds an applied update to the window.

        Args:
          loss: Its loss, a float.
          outputs: The train step's outputs (`num_tokens`, `metrics`).
          batches: The host batches of the update (`target_len` [batch]).
        """
        self.tokens += float(outputs["num_tokens"])
        self.examples += float(sum(int(b["target_len"].shape[0]) for b in batches))
        self.loss += loss
        self.count += 1
        for name, value in outputs.get("metrics", {}).items():
            self.metrics[name] = self.metrics.get(name, 0.0) + float(value)

    def due(self, step):
        """Whether the window ends at `step`."""
        return (
            step % self.log_every_n_steps == 0 or step == 1 or step == self.train_steps
        )

    def write(self, step, outputs, batch, learning_rate, health, scheduled_sampling):
        """Logs the window's line, writes its scalars and starts a new one.

        Args:
          step: The global step.
          outputs: The last train step's outputs (`global_norm`,
            `clipped_norm`, `sampling_probability`, maybe `loss_scale`).
          batch: The last host batch (`source_len`, `target_len` [batch]).
          learning_rate: The current learning rate, a float.
          health: The run's `CurveHealth`.
          scheduled_sampling: Whether the model samples its inputs (the
            probability is then logged).

        Raises:
          OutputWriteError: The summaries cannot be written.
        """
        elapsed = max(time.time() - self.start, 1e-9)
        loss = self.loss / self.count
        tokens_s = self.tokens / elapsed
        examples_s = self.examples / elapsed
        steps_s = self.count / elapsed
        tokens = max(self.metrics.get("target_tokens", self.tokens), 1.0)
        global_norm = float(outputs["global_norm"])
        clipped_norm = float(outputs["clipped_norm"])
        probability = float(outputs["sampling_probability"])
        sampling = f", sampling p = {probability:.3f}" if scheduled_sampling else ""
        logging.info(
            "step %d: loss = %.4f, lr = %.3g, %.0f target tokens/s, %.2f steps/s%s",
            step,
            loss,
            learning_rate,
            tokens_s,
            steps_s,
            sampling,
        )
        with run_dir.writing("training summaries", self.writers.output_dir):
            with self.writers.train.as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("learning_rate", learning_rate)
                tf.summary.scalar("global_norm", global_norm)
                tf.summary.scalar("global_norm/clipped", clipped_norm)
                tf.summary.scalar(
                    "global_norm/clip_ratio",
                    clipped_norm / global_norm if global_norm > 0 else 1.0,
                )
                tf.summary.scalar("scheduled_sampling/probability", probability)
                if "loss_scale" in outputs:
                    tf.summary.scalar("loss_scale", float(outputs["loss_scale"]))
                health.write_counts()
                tf.summary.scalar("tokens_per_sec", tokens_s)
                tf.summary.scalar("examples_per_sec", examples_s)
                tf.summary.scalar("global_step/sec", steps_s)
                for name, total in sorted(self.metrics.items()):
                    if name not in _LOSS_METRICS:
                        tf.summary.scalar(f"metrics/{name}", total / tokens)
                tf.summary.histogram("source_len", batch["source_len"])
                tf.summary.histogram("target_len", batch["target_len"])
                write_gradients(outputs.get("gradients"))
        self.reset()
