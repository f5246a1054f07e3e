"""Training helpers: learning-rate decay schedules and saved training options.

Learning rate
  `LearningRateDecay` is a Keras `LearningRateSchedule` that implements the
  original toolkit's `optimizer.lr_*` parameters: the rate stays at
  `optimizer.learning_rate` before `start_decay_at`, decays as a function of
  `step - start_decay_at`, stops changing after `stop_decay_at` and never goes
  below `min_learning_rate`. `make_learning_rate` turns those parameters into
  the value a Keras optimizer takes (a float when there is no decay), and
  `create_learning_rate_decay_fn` keeps the original function-style API.

`TrainOptions` (saved training options) moved to `seq2seq.train_options`;
the names stay importable from here.
"""

import math

import keras
import tensorflow as tf

from seq2seq.errors import ConfigError

# ---------------------------------------------------------------------------
# Learning-rate decay
# ---------------------------------------------------------------------------

# Decay types that divide the step count into `decay_steps` periods and so
# honour `staircase`.
_PERIODIC_DECAYS = ("exponential_decay", "inverse_time_decay", "natural_exp_decay")
_OTHER_DECAYS = ("polynomial_decay", "cosine_decay", "noam", "rsqrt_warmup")
DECAY_TYPES = _PERIODIC_DECAYS + _OTHER_DECAYS

# End value of polynomial decay when no minimum learning rate is given
# (the default `end_learning_rate` of TF1's `tf.train.polynomial_decay`).
_POLYNOMIAL_DEFAULT_END = 1e-4


def _check_decay_args(decay_type, decay_steps):
    if decay_type not in DECAY_TYPES:
        raise ConfigError(
            f"optimizer.lr_decay_type: unknown decay type '{decay_type}'. "
            f"Valid types: {', '.join(DECAY_TYPES)}, or '' for no decay."
        )
    if not decay_steps or decay_steps <= 0:
        raise ConfigError(
            f"optimizer.lr_decay_steps must be a positive number of steps for "
            f"lr_decay_type '{decay_type}', got {decay_steps!r}."
        )


@keras.saving.register_keras_serializable(package="seq2seq")
class LearningRateDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at a given training step, following `optimizer.lr_*`.

    With `s = min(step, stop_decay_at) - start_decay_at`, `lr0 =
    learning_rate`, `N = decay_steps` and `r = decay_rate`, the decayed rate is

    * `exponential_decay`: `lr0 * r ** (s / N)`
    * `inverse_time_decay`: `lr0 / (1 + r * s / N)`
    * `natural_exp_decay`: `lr0 * exp(-r * s / N)`
    * `polynomial_decay`: `(lr0 - end) * (1 - min(s, N) / N) + end`, a linear
      decay to `end = min_learning_rate` (or 1e-4 when that is unset) that is
      reached after `N` steps.
    * `cosine_decay`: `end + (lr0 - end) * 0.5 * (1 + cos(pi * min(s, N) / N))`
      with `end = min_learning_rate` (or 0 when unset).
    * `noam` / `rsqrt_warmup`: `lr0 * min((s + 1) / N, sqrt(N / (s + 1)))`:
      a linear warm-up over `N` steps to the peak `lr0`, then `1/sqrt(step)`.

    `staircase` replaces `s / N` by `floor(s / N)` in the first three. Before
    `start_decay_at` the rate is the constant `lr0`; the result is never below
    `min_learning_rate` when that is set (non-zero).

    Args:
      learning_rate: The initial (for warm-up types: peak) rate, a float.
      decay_type: One of `DECAY_TYPES`.
      decay_steps: `N` above; a positive number.
      decay_rate: `r` above; required by the first three types, unused by
        the others.
      start_decay_at: The step at which decay starts.
      stop_decay_at: The step after which the rate no longer changes.
      min_learning_rate: A floor for the rate; `None` or 0 for none.
      staircase: Whether periodic decays change the rate only every `N` steps.

    Raises:
      ConfigError: An unknown `decay_type` or a non-positive `decay_steps`.
    """

    def __init__(
        self,
        learning_rate,
        decay_type,
        decay_steps,
        decay_rate=None,
        start_decay_at=0,
        stop_decay_at=1e9,
        min_learning_rate=None,
        staircase=False,
    ):
        super().__init__()
        _check_decay_args(decay_type, decay_steps)
        if decay_rate is None and decay_type in _PERIODIC_DECAYS:
            raise ConfigError(
                f"optimizer.lr_decay_rate must be set for lr_decay_type "
                f"'{decay_type}'."
            )
        self.learning_rate = float(learning_rate)
        self.decay_type = decay_type
        self.decay_steps = decay_steps
        self.decay_rate = None if decay_rate is None else float(decay_rate)
        self.start_decay_at = int(start_decay_at)
        self.stop_decay_at = int(stop_decay_at)
        self.min_learning_rate = float(min_learning_rate) if min_learning_rate else None
        self.staircase = bool(staircase)

    def _decayed(self, steps):
        """The decayed rate after `steps` (a float32 tensor >= 0) decay steps."""
        lr0 = tf.constant(self.learning_rate, tf.float32)
        period = tf.constant(float(self.decay_steps), tf.float32)
        kind = self.decay_type
        if kind in _PERIODIC_DECAYS:
            rate = tf.constant(self.decay_rate, tf.float32)
            progress = steps / period
            if self.staircase:
                progress = tf.floor(progress)
            if kind == "exponential_decay":
                return lr0 * tf.pow(rate, progress)
            if kind == "inverse_time_decay":
                return lr0 / (1.0 + rate * progress)
            return lr0 * tf.exp(-rate * progress)
        if kind == "polynomial_decay":
            end = self.min_learning_rate or _POLYNOMIAL_DEFAULT_END
            remaining = 1.0 - tf.minimum(steps, period) / period
            return (lr0 - end) * remaining + end
        if kind == "cosine_decay":
            end = self.min_learning_rate or 0.0
            progress = tf.minimum(steps, period) / period
            cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
            return end + (lr0 - end) * cosine
        # noam / rsqrt_warmup
        count = steps + 1.0
        return lr0 * tf.minimum(count / period, tf.sqrt(period / count))

    def __call__(self, step):
        """Returns the learning rate at `step` as a float32 scalar tensor.

        Args:
          step: The global step (a Python int or an integer/float tensor,
            e.g. `optimizer.iterations`).
        """
        with tf.name_scope("learning_rate_decay"):
            step = tf.cast(step, tf.int64)
            start = tf.constant(self.start_decay_at, tf.int64)
            stop = tf.constant(self.stop_decay_at, tf.int64)
            steps = tf.maximum(tf.minimum(step, stop) - start, 0)
            decayed = self._decayed(tf.cast(steps, tf.float32))
            lr = tf.where(
                step < start,
                tf.constant(self.learning_rate, tf.float32),
                decayed,
            )
            if self.min_learning_rate:
                lr = tf.maximum(lr, self.min_learning_rate)
            return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "decay_type": self.decay_type,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "start_decay_at": self.start_decay_at,
            "stop_decay_at": self.stop_decay_at,
            "min_learning_rate": self.min_learning_rate,
            "staircase": self.staircase,
        }


def create_learning_rate_decay_fn(
    decay_type,
    decay_steps,
    decay_rate,
    start_decay_at=0,
    stop_decay_at=1e9,
    min_learning_rate=None,
    staircase=False,
):
    """Creates a function that decays the learning rate (the original's API).

    Args:
      decay_type: One of `DECAY_TYPES`; `None` or `""` means no decay.
      decay_steps: See `LearningRateDecay`.
      decay_rate: See `LearningRateDecay`.
      start_decay_at: See `LearningRateDecay`.
      stop_decay_at: See `LearningRateDecay`.
      min_learning_rate: See `LearningRateDecay`.
      staircase: See `LearningRateDecay`.

    Returns:
      `decay_fn(learning_rate, global_step) -> float32 scalar tensor`, or
      `None` when `decay_type` is empty.

    Raises:
      ConfigError: An unknown `decay_type` or a non-positive `decay_steps`.
    """
    if not decay_type:
        return None
    _check_decay_args(decay_type, decay_steps)

    def decay_fn(learning_rate, global_step):
        schedule = LearningRateDecay(
            learning_rate,
            decay_type,
            decay_steps,
            decay_rate,
            start_decay_at=start_decay_at,
            stop_decay_at=stop_decay_at,
            min_learning_rate=min_learning_rate,
            staircase=staircase,
        )
        return schedule(global_step)

    return decay_fn


def make_learning_rate(learning_rate, decay_type=None, **decay_kwargs):
    """The `learning_rate` argument for a Keras optimizer.

    Args:
      learning_rate: The base learning rate, a float.
      decay_type: A decay type of `DECAY_TYPES`; `None` or `""` for none.
      **decay_kwargs: The other arguments of `LearningRateDecay`
        (`decay_steps`, `decay_rate`, `start_decay_at`, `stop_decay_at`,
        `min_learning_rate`, `staircase`).

    Returns:
      `float(learning_rate)` when there is no decay, else a
      `LearningRateDecay`.
    """
    if not decay_type:
        return float(learning_rate)
    return LearningRateDecay(learning_rate, decay_type, **decay_kwargs)


# ---------------------------------------------------------------------------
# Re-exports: the training options moved to seq2seq.train_options.
# ---------------------------------------------------------------------------

from seq2seq.data.vocab import file_checksum as file_sha256  # noqa: E402,F401
from seq2seq.train_options import (  # noqa: E402,F401
    RESTART_SAFE_PARAMS,
    TRAIN_OPTIONS_FILENAME,
    VOCAB_PARAMS,
    TrainOptions,
    vocab_checksums,
)
