"""The best checkpoint by a dev metric, and early stopping on it.

After every dev evaluation the trainer hands the results to a
`BestCheckpointTracker`. When the tracked metric improves (by more than
`min_delta`, in the metric's direction), the model's weights are saved to
`output_dir/best/` (one checkpoint, replaced on each improvement) and
`output_dir/best/best.json` records the step, the metric and its value.
With a `patience`, training stops once that many evaluations in a row have
not improved the metric.

Which way is better is inferred from the metric's name unless given:
names with `loss` or `perplexity` in them are minimised, everything else
(BLEU, ROUGE, accuracy) is maximised.

`best.json` also keeps the number of evaluations since the best one, so a
resumed run continues counting where the last one stopped.
"""

import json
import math
import os

import tensorflow as tf
from absl import logging

from seq2seq.atomic_write import replace_file
from seq2seq.errors import UserError
from seq2seq.run_dir import BEST_DIR, BEST_FILE, best_dir, read_best  # noqa: F401

MODES = ("auto", "min", "max")


def infer_mode(metric):
    """`min` for loss-like metric names (`loss`, `perplexity`), else `max`."""
    name = metric.lower()
    if "loss" in name or "perplexity" in name:
        return "min"
    return "max"


def resolve_mode(metric, mode="auto"):
    """The direction of `metric`: `mode` itself, or inferred for `auto`.

    Raises:
      UserError: `mode` is not auto, min or max.
    """
    mode = (mode or "auto").lower()
    if mode not in MODES:
        raise UserError(
            f"--early_stopping_mode={mode} is not valid; use auto (infer from "
            "the metric name), min or max."
        )
    return infer_mode(metric) if mode == "auto" else mode


class BestCheckpointTracker:
    """Keeps the best checkpoint of a run by one dev metric.

    Args:
      output_dir: The training output directory.
      model: The model whose weights are saved (a trackable object).
      metric: The results key to track, e.g. `bleu/greedy`.
      mode: `auto`, `min` or `max`.
      min_delta: An evaluation improves only when it beats the best value
        by more than this (in the metric's units).
      patience: Evaluations without improvement after which `should_stop`
        is true; 0 or None never stops (the best checkpoint is still kept).

    Attributes:
      best_value, best_step: The best result so far (None before any).
      evaluations_since_best: Evaluations since the best one.
    """

    def __init__(
        self, output_dir, model, metric, mode="auto", min_delta=0.0, patience=0
    ):
        self.output_dir = output_dir
        self.metric = metric
        self.mode = resolve_mode(metric, mode)
        self.min_delta = float(min_delta or 0.0)
        if self.min_delta < 0:
            raise UserError(
                f"--early_stopping_min_delta={min_delta} must be >= 0 (it is "
                "the smallest change that counts as an improvement)."
            )
        self.patience = int(patience or 0)
        if self.patience < 0:
            raise UserError(f"--early_stopping_patience={patience} must be >= 0.")
        self.best_value = None
        self.best_step = None
        self.evaluations_since_best = 0
        self._checkpoint = tf.train.Checkpoint(model=model)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, best_dir(output_dir), max_to_keep=1
        )
        self._load()

    def _load(self):
        state = read_best(self.output_dir)
        if state is None:
            return
        if state.get("metric") != self.metric or state.get("mode") != self.mode:
            logging.warning(
                "%s tracks %s (%s); this run tracks %s (%s): starting a new best.",
                os.path.join(best_dir(self.output_dir), BEST_FILE),
                state.get("metric"),
                state.get("mode"),
                self.metric,
                self.mode,
            )
            return
        self.best_value = state.get("value")
        self.best_step = state.get("step")
        self.evaluations_since_best = int(state.get("evaluations_since_best", 0))

    @property
    def should_stop(self):
        """Whether `patience` evaluations in a row did not improve."""
        return bool(self.patience) and self.evaluations_since_best >= self.patience

    @property
    def checkpoint_path(self):
        """The best checkpoint's prefix, or None."""
        return self._manager.latest_checkpoint

    def improves(self, value):
        """Whether `value` beats the best so far by more than `min_delta`."""
        if value is None or not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(self, step, results):
        """Records one evaluation; saves the weights when it is the best.

        Args:
          step: The global step of the evaluated weights.
          results: The evaluation's dict of metric name -> value.

        Returns:
          True when this evaluation is the new best.
        """
        value = results.get(self.metric)
        if value is None:
            logging.warning(
                "Best checkpoint: metric %s is not among the results (%s).",
                self.metric,
                ", ".join(sorted(results)),
            )
            return False
        value = float(value)
        improved = self.improves(value)
        if improved:
            self.best_value, self.best_step = value, int(step)
            self.evaluations_since_best = 0
            path = self._manager.save(checkpoint_number=int(step))
            logging.info(
                "New best %s = %.4f at step %d: saved %s",
                self.metric,
                value,
                step,
                path,
            )
        else:
            self.evaluations_since_best += 1
        self._write(step)
        return improved

    def _write(self, last_step):
        state = {
            "step": self.best_step,
            "metric": self.metric,
            "mode": self.mode,
            "value": self.best_value,
            "checkpoint": (
                os.path.relpath(self.checkpoint_path, self.output_dir)
                if self.checkpoint_path
                else None
            ),
            "evaluations_since_best": self.evaluations_since_best,
            "last_evaluated_step": int(last_step),
            "min_delta": self.min_delta,
            "patience": self.patience,
        }
        replace_file(
            os.path.join(best_dir(self.output_dir), BEST_FILE),
            json.dumps(state, indent=2, sort_keys=True) + "\n",
        )
