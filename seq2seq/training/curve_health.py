"""Curve health: skipped non-finite updates and loss spikes.

A batch whose loss or gradient norm is not finite does not update anything
(the compiled step skips the update; see `train_step.apply_gradients_if`).
`CurveHealth` counts and logs such batches, and after
`max_consecutive_nan_steps` of them in a row says training must stop. A
finite loss above `loss_spike_factor` times its running average, and more
than `SPIKE_STD_MARGIN` running standard deviations above it, is logged with
the batch's lengths. Both counts are written as `health/*` summaries.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq.errors import UserError

# Loss-spike detection: the running average and variance are exponential
# moving averages of the finite training losses with this decay, and spikes
# are only looked for once they have seen this many steps. A spike must also
# stand this many running standard deviations above the average, so that the
# ordinary batch-to-batch spread (large while a model is learning, or when
# bucketing makes batches homogeneous) is not reported.
SPIKE_AVERAGE_DECAY = 0.98
SPIKE_WARMUP_STEPS = 20
SPIKE_STD_MARGIN = 4.0


class TrainingDivergedError(UserError):
    """Training stopped because too many batches in a row had a non-finite
    loss or gradient norm."""


class CurveHealth:
    """The curve-health counters of one training run.

    Args:
      config: The `RunConfig`; its `max_consecutive_nan_steps`,
        `loss_spike_factor` and `output_dir` are read at each call.
      writer: A callable returning the training summary writer (called only
        when there is something to write).
    """

    def __init__(self, config, writer):
        self.config = config
        self._writer = writer
        self.skipped_updates = 0
        self.consecutive_skipped = 0
        self.loss_spikes = 0
        # Exponential moving average and variance of the finite losses.
        self.loss_average = None
        self.loss_variance = 0.0
        self._loss_average_steps = 0

    def skipped(self, step, loss, global_norm):
        """Counts and logs a batch whose update was skipped.

        Args:
          step: The global step (unchanged by the skipped update).
          loss: The batch's loss, a float.
          global_norm: The batch's gradient norm, a float.

        Returns:
          The one-line message to stop training with, or None to go on.
        """
        self.skipped_updates += 1
        self.consecutive_skipped += 1
        logging.warning(
            "Skipped the update after step %d: loss = %s, gradient norm = %s "
            "(not finite); %d in a row, %d in this run.",
            step,
            loss,
            global_norm,
            self.consecutive_skipped,
            self.skipped_updates,
        )
        with self._writer().as_default(step=step):
            tf.summary.scalar("health/skipped_updates", self.skipped_updates)
        limit = self.config.max_consecutive_nan_steps
        if not limit or self.consecutive_skipped < limit:
            return None
        return (
            f"training stopped at step {step}: the loss or gradient norm was not "
            f"finite for {self.consecutive_skipped} batches in a row "
            f"(--max_consecutive_nan_steps={limit}); none of them changed the "
            f"weights, and the latest checkpoint in {self.config.output_dir} is "
            "intact. Lower optimizer.learning_rate or optimizer.clip_gradients, "
            "or check the data for empty or overlong lines."
        )

    def applied(self, step, loss, features):
        """Records an applied update: ends a run of skipped ones and looks
        for a loss spike (see `check_spike`)."""
        self.consecutive_skipped = 0
        self.check_spike(step, loss, features)

    def check_spike(self, step, loss, features):
        """Logs a loss above `loss_spike_factor` x its running average that
        is also `SPIKE_STD_MARGIN` running standard deviations above it.

        Args:
          step: The global step.
          loss: The batch's loss, a float.
          features: The batch, with `source_len` and `target_len` [batch].
        """
        factor = self.config.loss_spike_factor
        if not factor or factor <= 0 or not np.isfinite(loss):
            return
        average = self.loss_average
        if (
            average is not None
            and self._loss_average_steps >= SPIKE_WARMUP_STEPS
            and loss > factor * average
            and loss > average + SPIKE_STD_MARGIN * np.sqrt(self.loss_variance)
        ):
            self.loss_spikes += 1
            source_len = features["source_len"].numpy()
            target_len = features["target_len"].numpy()
            logging.warning(
                "Loss spike at step %d: %.4f > %g x running average %.4f; batch "
                "of %d: source_len min/mean/max %d/%.1f/%d, target_len "
                "min/mean/max %d/%.1f/%d.",
                step,
                loss,
                factor,
                average,
                len(source_len),
                source_len.min(),
                source_len.mean(),
                source_len.max(),
                target_len.min(),
                target_len.mean(),
                target_len.max(),
            )
            with self._writer().as_default(step=step):
                tf.summary.scalar("health/loss_spikes", self.loss_spikes)
        if average is None:
            self.loss_average = loss
        else:
            decay = SPIKE_AVERAGE_DECAY
            deviation = loss - average
            self.loss_average = average + (1.0 - decay) * deviation
            self.loss_variance = decay * (
                self.loss_variance + (1.0 - decay) * deviation * deviation
            )
        self._loss_average_steps += 1

    def write_counts(self):
        """Writes both counts into the current default summary writer."""
        tf.summary.scalar("health/skipped_updates", self.skipped_updates)
        tf.summary.scalar("health/loss_spikes", self.loss_spikes)


def loss_scale_overflow(loss_scale, step, loss):
    """Whether a skipped float16 update was a loss-scale overflow.

    Such an update has a finite loss whose scaled gradients overflowed; those
    are expected while the scale settles, are logged and do not count as bad
    steps (unless the scale has fallen below 1).

    Args:
      loss_scale: The run's `DynamicLossScale`, or None.
      step: The global step.
      loss: The batch's loss, a float.
    """
    if loss_scale is None or not np.isfinite(loss):
        return False
    scale = float(loss_scale.scale.numpy())
    log = logging.warning if scale < 1.0 else logging.info
    log(
        "Step %d: float16 gradients overflowed; update skipped, loss scale "
        "lowered to %g.",
        step,
        scale,
    )
    return scale >= 1.0
