"""The training loop: compiled train step, checkpoints, evaluation, summaries.

This replaces the original's Estimator/Experiment pair. One `Trainer` owns the
model, the optimizer, a `tf.train.CheckpointManager` over `output_dir`, and
two summary writers (`output_dir` for training curves, `output_dir/eval` for
dev curves). A second run with the same `output_dir` resumes from the latest
checkpoint (step, weights, optimizer slots and the position in the training
data); a run whose `train_steps` is already reached returns at once.

Curve health: a batch whose loss or gradient norm is not finite does not
update anything (the update is skipped inside the compiled step, so the
weights, the optimizer's slots and its step counter stay as they were); it
is counted and logged, and after `max_consecutive_nan_steps` such batches in
a row training stops with a `TrainingDivergedError`, leaving the last
checkpoint (which never holds non-finite weights) in place. A loss above
`loss_spike_factor` times its running average, and more than
`SPIKE_STD_MARGIN` running standard deviations above it, is logged with the
batch's lengths.

Faults: the chief holds `output_dir/train.lock` while it trains, so a second
run on the same directory stops with one line instead of overwriting the
first one's checkpoints (see `seq2seq.run_dir`). SIGINT and SIGTERM stop
training after the current step and save a checkpoint (`Interrupted`, exit
130 or 143 from the command line). A resume skips damaged checkpoints
(truncated or missing files) in favour of the newest intact one, and removes
the `ckpt-N_temp` directories of saves cut short by SIGKILL or a crash. A
write refused by the file system (read-only, full, a path component that is
a file) is one `OutputWriteError` line naming the file and the newest intact
checkpoint.

After every evaluation the best checkpoint by a dev metric is kept in
`output_dir/best/` (see `seq2seq.training.early_stopping`), and training
stops early when `early_stopping_metric` has not improved for
`early_stopping_patience` evaluations.
"""

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq import run_dir
from seq2seq.configurable import (
    ModeKeys,
    create_from_dict,
    locate_class,
    maybe_load_yaml,
)
from seq2seq.data import batching
from seq2seq.errors import Interrupted, UserError
from seq2seq.metrics import MetricSpec
from seq2seq.models import ModelBase
from seq2seq.training import distribution, early_stopping, evaluation
from seq2seq.training import hooks as hooks_lib
from seq2seq.training.train_step import (
    ID_KEYS,
    DynamicLossScale,
    TrainStep,
    apply_gradients_if,
    select_ids,
)
from seq2seq.training.unk_rate import UnknownTokenRate
from seq2seq.training.utils import TrainOptions

# Keys the compiled steps see (token strings stay on the host).
_ID_KEYS = ID_KEYS

__all__ = ["RunConfig", "Trainer", "TrainingDivergedError", "apply_gradients_if"]

MIXED_PRECISION_POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}

# Loss-spike detection: the running average and variance are exponential
# moving averages of the finite training losses with this decay, and spikes
# are only looked for once they have seen this many steps. A spike must also
# stand this many running standard deviations above the average, so that the
# ordinary batch-to-batch spread (large while a model is learning, or when
# bucketing makes batches homogeneous) is not reported.
SPIKE_AVERAGE_DECAY = 0.98
SPIKE_WARMUP_STEPS = 20
SPIKE_STD_MARGIN = 4.0


# Where the short names of --metrics and --hooks are looked up, and the base
# class each named class must derive from.
METRIC_SLOT = {"modules": ["seq2seq.metrics"], "what": "metric", "base": MetricSpec}
HOOK_SLOT = {"modules": [hooks_lib], "what": "hook", "base": hooks_lib.TrainingHook}


class TrainingDivergedError(UserError):
    """Training stopped because too many batches in a row had a non-finite
    loss or gradient norm."""


@dataclasses.dataclass
class RunConfig:
    """How long to train, how to batch, and when to save and evaluate."""

    output_dir: str
    batch_size: int = 16
    buckets: list = None
    train_steps: int = None
    eval_every_n_steps: int = 1000
    save_checkpoints_secs: int = None
    save_checkpoints_steps: int = None
    keep_checkpoint_max: int = 5
    keep_checkpoint_every_n_hours: float = 4.0
    log_every_n_steps: int = 100
    tf_random_seed: int = None
    # Evaluation: also compute text metrics on beam search decodes (> 1).
    eval_beam_width: int = 0
    # Curve health.
    max_consecutive_nan_steps: int = 5
    loss_spike_factor: float = 3.0
    # Best checkpoint and early stopping ("" metric: keep the best by
    # loss/teacher_forced when there is a dev set, never stop early).
    early_stopping_metric: str = ""
    early_stopping_mode: str = "auto"
    early_stopping_patience: int = 5
    early_stopping_min_delta: float = 0.0
    # Performance and scale (see docs/performance.md).
    distribution_strategy: str = "default"
    distribution_devices: list = None
    effective_batch_size: int = None
    mixed_precision: str = ""
    jit_compile: bool = False
    batch_type: str = "examples"
    pad_to_bucket: bool = False
    cache_max_bytes: int = 0

    def accumulation_steps(self):
        """Micro-batches per update: `effective_batch_size / batch_size`.

        Raises:
          UserError: `effective_batch_size` is not a multiple of `batch_size`.
        """
        if not self.effective_batch_size:
            return 1
        steps, remainder = divmod(int(self.effective_batch_size), int(self.batch_size))
        if remainder or steps < 1:
            raise UserError(
                f"--effective_batch_size={self.effective_batch_size} must be a "
                f"multiple of --batch_size={self.batch_size} (each update "
                "accumulates effective_batch_size / batch_size batches); e.g. "
                f"--effective_batch_size={(steps + 1) * self.batch_size}."
            )
        return steps


class Trainer:
    """Trains a model built from a `TrainOptions` on input pipelines.

    Args:
      train_options: `TrainOptions` with the model class and params.
      train_pipeline: An `InputPipeline` in train mode.
      dev_pipeline: An `InputPipeline` in eval mode, or None.
      config: A `RunConfig`.
      hooks: List of `{class, params}` hook definitions.
      metrics: List of `{class, params}` metric definitions.
      strategy: The `tf.distribute.Strategy` to train under; None creates
        `config.distribution_strategy` (pass one created at program start
        for `multi_worker_mirrored`).
    """

    def __init__(
        self,
        train_options,
        train_pipeline,
        dev_pipeline,
        config,
        hooks=(),
        metrics=(),
        strategy=None,
    ):
        from seq2seq import models  # noqa: F401  (imports register classes)

        self.config = config
        self.train_options = train_options
        self.accumulation_steps = config.accumulation_steps()
        self.strategy = strategy or distribution.create_strategy(
            config.distribution_strategy, config.distribution_devices
        )
        self.is_chief = distribution.is_chief(self.strategy)
        self.multi_worker = distribution.is_multi_worker(self.strategy)
        if self.is_chief:
            with run_dir.writing(config.output_dir, config.output_dir):
                os.makedirs(config.output_dir, exist_ok=True)
        seed = config.tf_random_seed
        if seed is None and self.multi_worker:
            # Every worker must draw the same shuffled batches.
            seed = 0
            logging.info("multi_worker_mirrored: using --tf_random_seed=0.")
        if seed is not None:
            tf.keras.utils.set_random_seed(seed)
        set_mixed_precision(config.mixed_precision)
        with self.strategy.scope():
            self.model = create_from_dict(
                {
                    "class": train_options.model_class,
                    "params": train_options.model_params,
                },
                ["seq2seq.models"],
                ModeKeys.TRAIN,
                what="model",
                base=ModelBase,
            )
            self.optimizer = self.model.create_optimizer()
            self.loss_scale = (
                DynamicLossScale() if config.mixed_precision == "float16" else None
            )
        self.train_pipeline = train_pipeline
        self.dev_pipeline = dev_pipeline
        self.metrics = [
            create_from_dict(
                d, METRIC_SLOT["modules"], what="metric", base=METRIC_SLOT["base"]
            )
            for d in metrics
        ]
        self.hooks = [
            create_from_dict(
                d,
                HOOK_SLOT["modules"],
                model_dir=config.output_dir,
                run_config=config,
                what="hook",
                base=HOOK_SLOT["base"],
            )
            for d in hooks
            # Hooks write files and print; only the chief runs them.
            if self.is_chief
        ]
        self.train_dataset = (
            self._make_dataset(train_pipeline, training=True)
            if train_pipeline
            else None
        )
        self.dev_dataset = (
            self._make_dataset(dev_pipeline, training=False) if dev_pipeline else None
        )
        self._writers = {}
        self._iterator = iter(self.train_dataset) if self.train_dataset else None
        tracked = {"model": self.model, "optimizer": self.optimizer}
        if self._iterator is not None:
            tracked["data"] = self._iterator
        self.checkpoint = tf.train.Checkpoint(**tracked)
        # Every worker takes part in a save; only the chief's is kept.
        self._checkpoint_dir = (
            config.output_dir
            if self.is_chief
            else tempfile.mkdtemp(prefix="seq2seq_worker_checkpoint_")
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self._checkpoint_dir,
            max_to_keep=config.keep_checkpoint_max or None,
            keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
        )
        self.evaluator = (
            evaluation.Evaluator(
                self.model, self.metrics, beam_width=config.eval_beam_width
            )
            if dev_pipeline and self.is_chief
            else None
        )
        self.best = self._make_best_tracker()
        self._train_step = None
        # The step of the newest checkpoint written or restored by this run.
        self._saved_step = None
        # Signal handling while training (see `_on_signal`).
        self._stop_signal = None
        self._defer_signals = False
        # Curve-health counters of this run.
        self.skipped_updates = 0
        self.consecutive_skipped = 0
        self.loss_spikes = 0
        self._loss_average = None
        self._loss_variance = 0.0
        self._loss_average_steps = 0

    def _make_best_tracker(self):
        """The `BestCheckpointTracker` of this run, or None without a dev set.

        The tracked metric is `early_stopping_metric` when set (and then
        early stopping is on), otherwise `loss/teacher_forced`.

        Raises:
          UserError: Early stopping without a dev set, or on a metric that
            the evaluation does not report.
        """
        config = self.config
        metric = config.early_stopping_metric
        if self.evaluator is None:
            if metric and self.dev_pipeline is None:
                raise UserError(
                    f"--early_stopping_metric={metric} needs a dev set: set "
                    "--input_pipeline_dev (and a schedule that evaluates)."
                )
            return None
        names = self.evaluator.result_names()
        if metric and metric not in names:
            raise UserError(
                f"--early_stopping_metric={metric} is not reported by the "
                f"evaluation; use one of {', '.join(names)} (add metrics with "
                "--metrics)."
            )
        return early_stopping.BestCheckpointTracker(
            config.output_dir,
            self.model,
            metric or evaluation.LOSS_TAG,
            mode=config.early_stopping_mode,
            min_delta=config.early_stopping_min_delta,
            patience=config.early_stopping_patience if metric else 0,
        )

    # ----------------------------------------------------------- datasets

    def _make_dataset(self, pipeline, training):
        """Batched, preprocessed examples of `pipeline`.

        Training batches follow `--batch_type`, `--buckets`,
        `--pad_to_bucket` and `--cache_max_bytes`. Dev batches keep every
        example: with token batching they are token batches too (examples
        regrouped by length, which evaluation does not mind), otherwise
        `batch_size` examples in file order.
        """
        config = self.config
        params = self.model.params
        # Dev sources are cut as training ones (only their ids are used);
        # dev targets stay whole, as the references of the text metrics.
        kwargs = {
            "batch_type": config.batch_type,
            "max_source_len": params.get("source.max_seq_len"),
        }
        if training:
            kwargs.update(
                pad_to_bucket=config.pad_to_bucket,
                cache_max_bytes=config.cache_max_bytes,
                max_target_len=params.get("target.max_seq_len"),
            )
        dataset = batching.create_input_fn(
            pipeline,
            batch_size=config.batch_size,
            bucket_boundaries=config.buckets if training else None,
            allow_smaller_final_batch=not training,
            **kwargs,
        )
        return dataset.map(
            self.model.preprocess, num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    def _writer(self, name):
        """The summary writer of `output_dir` (train) or `output_dir/eval`,
        created on first use so that a run with nothing to do writes nothing."""
        if name not in self._writers and not self.is_chief:
            self._writers[name] = tf.summary.create_noop_writer()
        if name not in self._writers:
            path = self.config.output_dir
            if name == "eval":
                path = os.path.join(path, "eval")
            with self._writing(f"summaries in {path}"):
                self._writers[name] = tf.summary.create_file_writer(path)
        return self._writers[name]

    def _writing(self, what):
        """`run_dir.writing` for this run's output directory."""
        return run_dir.writing(what, self.config.output_dir)

    @property
    def train_writer(self):
        """Summary writer for training curves (`output_dir`)."""
        return self._writer("train")

    @property
    def eval_writer(self):
        """Summary writer for dev curves (`output_dir/eval`)."""
        return self._writer("eval")

    @property
    def step(self):
        """The global step: the number of updates applied so far."""
        return int(self.optimizer.iterations.numpy())

    # -------------------------------------------------------------- steps

    def _build(self, features):
        """Creates the variables (model and optimizer slots) before restoring."""
        with self.strategy.scope():
            self.model.forward(select_ids(features), training=False)
            self.optimizer.build(self.model.trainable_variables)

    def _make_train_step(self, element_spec):
        """Compiles the train step for the dataset's `element_spec`.

        Returns:
          `train_step(batches, sampling_probability=None) -> outputs`: one
          update from `batches` (one host batch, or a list of
          `accumulation_steps` of them), skipped when the loss or the gradient
          norm is not finite. `sampling_probability` is the scheduled-sampling
          probability, a float (tensor); None takes the model's schedule at
          the current global step. Outputs: `loss`, `loss_sum`, `num_tokens`,
          `global_norm` (before clipping), `clipped_norm` (after), `applied`
          (bool) and `sampling_probability` (see `TrainStep`).
        """
        step = TrainStep(
            self.model,
            self.optimizer,
            element_spec,
            strategy=self.strategy,
            accumulation_steps=self.accumulation_steps,
            loss_scale=self.loss_scale,
            jit_compile=self.config.jit_compile,
            seed=self.config.tf_random_seed,
        )

        def train_step(batches, sampling_probability=None):
            if sampling_probability is None:
                sampling_probability = self.sampling_probability()
            return step(batches, sampling_probability)

        train_step.compiled = step.update
        train_step.step = step
        return train_step

    def sampling_probability(self):
        """The scheduled-sampling probability at the current global step (a
        float32 scalar tensor; 0 without scheduled sampling)."""
        if getattr(self.model, "scheduled_sampling", None) is None:
            return tf.zeros([], tf.float32)
        return self.model.sampling_probability(self.optimizer.iterations)

    def learning_rate(self):
        """The learning rate at the current step, as a Python float."""
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    # --------------------------------------------------------- checkpoints

    def restore(self):
        """Restores the newest intact checkpoint of `output_dir`, if any.

        Damaged checkpoints (truncated or missing files) newer than it are
        skipped with a warning (see `run_dir.newest_intact`).

        Returns:
          The restored step (0 when starting fresh).

        Raises:
          UserError: The checkpoints are all damaged, or the newest intact
            one does not fit the model.
        """
        # Workers other than the chief resume from the chief's checkpoints.
        latest = run_dir.newest_intact(self.config.output_dir)
        if not latest:
            return 0
        run_dir.restore_checkpoint(
            latest,
            lambda: self.checkpoint.restore(latest).assert_existing_objects_matched(),
            "the current config",
            "Use a new --output_dir or the config the checkpoint was trained with.",
        )
        self._saved_step = self.step
        logging.info("Restored %s (step %d)", latest, self.step)
        return self.step

    def weights_are_finite(self):
        """Whether every model weight is finite."""
        return all(
            bool(tf.reduce_all(tf.math.is_finite(v)))
            for v in self.model.weights
            if tf.as_dtype(v.dtype).is_floating
        )

    def save(self):
        """Writes a checkpoint at the current step (once per step).

        Weights that are not all finite are never saved: the previous
        checkpoint stays the latest, and None is returned.
        """
        if self._saved_step == self.step:
            return self.manager.latest_checkpoint
        if not self.weights_are_finite():
            logging.error(
                "Not saving step %d: the weights are not finite; the latest "
                "checkpoint is still %s.",
                self.step,
                self.manager.latest_checkpoint,
            )
            return None
        deferred, self._defer_signals = self._defer_signals, True
        try:
            with run_dir.writing(
                f"checkpoint ckpt-{self.step}", self.config.output_dir
            ):
                path = self.manager.save(checkpoint_number=self.step)
        finally:
            self._defer_signals = deferred
        self._saved_step = self.step
        if not self.is_chief:
            self._clear_worker_checkpoints()
            return None
        logging.info("Saved checkpoint %s", path)
        return path

    def _clear_worker_checkpoints(self):
        """Deletes what a non-chief worker's save wrote (its temporary dir)."""
        for name in os.listdir(self._checkpoint_dir):
            path = os.path.join(self._checkpoint_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)

    def _agree(self, flag):
        """`flag` as decided by the chief, the same on every worker (a
        collective under `multi_worker_mirrored`; `flag` itself otherwise)."""
        if not self.multi_worker:
            return bool(flag)
        value = 1.0 if (flag and self.is_chief) else 0.0
        per_replica = self.strategy.run(lambda: tf.constant(value))
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return float(total) > 0.0

    # ---------------------------------------------------------------- run

    def evaluate(self):
        """Runs the dev set evaluation and writes its summaries.

        Returns:
          A dict of metric name to value.
        """
        if self.evaluator is None:
            return {}
        start = time.time()
        results = self.evaluator.evaluate(self.dev_dataset)
        step = self.step
        with self._writing("evaluation summaries"):
            with self.eval_writer.as_default(step=step):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
            self.eval_writer.flush()
        shown = ", ".join(f"{k} = {v:.4f}" for k, v in sorted(results.items()))
        logging.info("Eval at step %d (%.1fs): %s", step, time.time() - start, shown)
        return results

    def evaluate_latest(self):
        """Evaluates the latest checkpoint of `output_dir` once."""
        if self.dev_dataset is None:
            raise UserError(
                "--schedule=evaluate needs --input_pipeline_dev to evaluate on."
            )
        latest = run_dir.newest_intact(self.config.output_dir)
        if not latest:
            raise UserError(
                f"no checkpoint in {self.config.output_dir} to evaluate; train "
                "first or point --output_dir at a training directory."
            )
        self._build(next(iter(self.dev_dataset)))
        run_dir.restore_checkpoint(
            latest,
            lambda: self.checkpoint.restore(latest).expect_partial(),
            "the current config",
        )
        return self.evaluate()

    def train(self):
        """Trains until `train_steps` (forever if None); returns the final step.

        Stops earlier when the training data runs out, when early stopping
        triggers, or (raising `TrainingDivergedError`, after saving) when
        `max_consecutive_nan_steps` batches in a row were not finite.

        The chief holds the lock on `output_dir` while it trains (see
        `run_dir.lock_output_dir`) and first removes the `ckpt-N_temp`
        directories of interrupted saves. SIGINT and SIGTERM stop training
        after the current step: a checkpoint is saved and `Interrupted` is
        raised with a message naming it (a second signal while saving is
        ignored; SIGKILL loses the steps since the last checkpoint).

        Raises:
          Interrupted: After SIGINT, SIGTERM or a `KeyboardInterrupt`.
          UserError: Another run holds `output_dir`, its checkpoints are
            damaged or do not fit, a file cannot be written, or training
            diverged.
        """
        lock = (
            run_dir.lock_output_dir(self.config.output_dir)
            if self.is_chief
            else contextlib.nullcontext()
        )
        with lock:
            if self.is_chief:
                run_dir.clean_temp_checkpoints(self.config.output_dir)
            with self._signals_stop_training():
                return self._train()

    @contextlib.contextmanager
    def _signals_stop_training(self):
        """Routes SIGINT and SIGTERM to `_on_signal` for the block (where
        this is the main thread; signals can only be handled there)."""
        self._stop_signal = None
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:
            pass  # Not the main thread.
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum, frame):
        """Stops training on SIGINT or SIGTERM.

        Outside a train step or a save (e.g. during an evaluation) the
        signal raises `Interrupted` at once; within one it is remembered and
        raised when the step or save is done, so the saved checkpoint and
        the data position stay consistent.
        """
        del frame
        name = signal.Signals(signum).name
        if self._stop_signal is not None:
            logging.warning("%s: already stopping; saving a checkpoint first.", name)
            return
        self._stop_signal = signum
        logging.warning(
            "%s at step %d: stopping after saving a checkpoint.", name, self.step
        )
        if not self._defer_signals:
            raise Interrupted(signum)

    def _check_stop_signal(self):
        if self._stop_signal is not None:
            raise Interrupted(self._stop_signal)

    def _interrupted_message(self, signum):
        name = signal.Signals(signum).name
        saved = (
            self.manager.latest_checkpoint if self._saved_step == self.step else None
        )
        if saved:
            return (
                f"{name} at step {self.step}: saved checkpoint "
                f"{os.path.basename(saved)} in {self.config.output_dir}; run the "
                "same command to resume."
            )
        return (
            f"{name} at step {self.step}: no checkpoint saved; "
            f"{run_dir.latest_checkpoint_note(self.config.output_dir)}."
        )

    def _train(self):
        config = self.config
        first = next(self._iterator)
        self._build(first)
        # After a restore the iterator continues where the last run stopped,
        # so the batch drawn to build the variables is not reused.
        pending = first if self.restore() == 0 else None
        if config.train_steps is not None and self.step >= config.train_steps:
            logging.info(
                "Step %d already reaches train_steps=%d in %s; nothing to do.",
                self.step,
                config.train_steps,
                config.output_dir,
            )
            return self.step
        if self._agree(self.best is not None and self.best.should_stop):
            logging.info(
                "Early stopping already triggered in %s: %s has not improved "
                "for %d evaluations since step %s; nothing to do.",
                config.output_dir,
                self.best.metric,
                self.best.evaluations_since_best,
                self.best.best_step,
            )
            return self.step
        self._train_step = self._make_train_step(self.train_dataset.element_spec)
        for hook in self.hooks:
            hook.begin(self)
        # Reads the ids of the first few batches only (see unk_rate).
        unk_rate = UnknownTokenRate(self.model) if self.is_chief else None

        last_save_time = time.time()
        window_start = time.time()
        window_tokens = window_examples = 0.0
        window_loss = window_count = 0.0
        stopped = False
        diverged = None
        stopped_early = False
        try:
            while config.train_steps is None or self.step < config.train_steps:
                self._check_stop_signal()
                self._defer_signals = True
                batches = []
                while len(batches) < self.accumulation_steps:
                    batches.append(
                        pending if pending is not None else next(self._iterator)
                    )
                    pending = None
                features = batches[-1]
                if unk_rate is not None:
                    for batch in batches:
                        unk_rate.observe(batch)
                    if unk_rate.done:
                        unk_rate = None
                for hook in self.hooks:
                    hook.before_step(self.step)
                probability = self.sampling_probability()
                outputs = self._train_step(batches, probability)
                step = self.step
                loss = float(outputs["loss"])
                if not bool(outputs["applied"]):
                    if self._loss_scale_overflow(step, loss):
                        continue
                    diverged = self._skipped_update(step, loss, outputs)
                    if diverged:
                        break
                    continue
                self.consecutive_skipped = 0
                self._check_spike(step, loss, features)
                window_tokens += float(outputs["num_tokens"])
                window_examples += float(
                    sum(int(b["target_len"].shape[0]) for b in batches)
                )
                window_loss += loss
                window_count += 1
                if (
                    step % config.log_every_n_steps == 0
                    or step == 1
                    or step == config.train_steps
                ):
                    elapsed = max(time.time() - window_start, 1e-9)
                    with self._writing("training summaries"):
                        self._log_train(
                            step,
                            window_loss / window_count,
                            outputs,
                            window_tokens / elapsed,
                            window_examples / elapsed,
                            window_count / elapsed,
                            features,
                        )
                    window_start = time.time()
                    window_tokens = window_examples = window_loss = window_count = 0
                for hook in self.hooks:
                    hook.after_step(step, features, outputs)
                if self._should_save(step, last_save_time):
                    self.save()
                    last_save_time = time.time()
                self._defer_signals = False
                self._check_stop_signal()
                if (
                    self.evaluator is not None
                    and config.eval_every_n_steps
                    and step % config.eval_every_n_steps == 0
                ):
                    eval_start = time.time()
                    results = self.evaluate()
                    # Throughput figures count training time only.
                    window_start += time.time() - eval_start
                    if self._agree(self._after_evaluation(step, results)):
                        stopped_early = True
                        break
        except KeyboardInterrupt as err:
            # SIGINT, SIGTERM (see `_on_signal`) or a hook's KeyboardInterrupt.
            stopped = getattr(err, "signum", signal.SIGINT)
            if self._stop_signal is None:
                self._stop_signal = stopped
            logging.warning("Interrupted at step %d; saving a checkpoint.", self.step)
        except StopIteration:
            logging.info("Training data exhausted at step %d.", self.step)
        finally:
            self._defer_signals = True
            if self._train_step is not None and self.step > 0:
                self.save()
        if unk_rate is not None and not stopped:
            unk_rate.report()  # A run shorter than the batches counted.
        for hook in self.hooks:
            hook.end(self)
        if not (stopped or diverged or stopped_early) and self.evaluator is not None:
            last_eval = config.eval_every_n_steps
            if not last_eval or self.step % last_eval != 0:
                self._after_evaluation(self.step, self.evaluate(), final=True)
        with self._writing("summaries"):
            for writer in self._writers.values():
                writer.flush()
        if not self.is_chief:
            shutil.rmtree(self._checkpoint_dir, ignore_errors=True)
        if stopped:
            raise Interrupted(stopped, self._interrupted_message(stopped))
        if diverged:
            raise TrainingDivergedError(diverged)
        return self.step

    def _after_evaluation(self, step, results, final=False):
        """Updates the best checkpoint; returns True when training should stop
        early (never after the `final` evaluation)."""
        if self.best is None or not results:
            return False
        deferred, self._defer_signals = self._defer_signals, True
        try:
            with self._writing(
                f"the best checkpoint in {early_stopping.best_dir(self.config.output_dir)}"
            ):
                self.best.update(step, results)
        finally:
            self._defer_signals = deferred
        if final or not self.best.should_stop:
            return False
        logging.info(
            "Early stopping at step %d: %s has not improved by more than %g "
            "for %d evaluations; best %.4f at step %d (%s).",
            step,
            self.best.metric,
            self.best.min_delta,
            self.best.evaluations_since_best,
            self.best.best_value,
            self.best.best_step,
            self.best.checkpoint_path,
        )
        return True

    def _loss_scale_overflow(self, step, loss):
        """Whether a skipped float16 update was a loss-scale overflow (a
        finite loss whose scaled gradients overflowed); those are expected
        while the scale settles, are logged and do not count as bad steps."""
        if self.loss_scale is None or not np.isfinite(loss):
            return False
        scale = float(self.loss_scale.scale.numpy())
        log = logging.warning if scale < 1.0 else logging.info
        log(
            "Step %d: float16 gradients overflowed; update skipped, loss scale "
            "lowered to %g.",
            step,
            scale,
        )
        return scale >= 1.0

    def _skipped_update(self, step, loss, outputs):
        """Counts and logs a batch whose update was skipped.

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
            float(outputs["global_norm"]),
            self.consecutive_skipped,
            self.skipped_updates,
        )
        with self.train_writer.as_default(step=step):
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

    def _check_spike(self, step, loss, features):
        """Logs a loss above `loss_spike_factor` x its running average that
        is also `SPIKE_STD_MARGIN` running standard deviations above it."""
        factor = self.config.loss_spike_factor
        if not factor or factor <= 0 or not np.isfinite(loss):
            return
        average = self._loss_average
        if (
            average is not None
            and self._loss_average_steps >= SPIKE_WARMUP_STEPS
            and loss > factor * average
            and loss > average + SPIKE_STD_MARGIN * np.sqrt(self._loss_variance)
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
            with self.train_writer.as_default(step=step):
                tf.summary.scalar("health/loss_spikes", self.loss_spikes)
        if average is None:
            self._loss_average = loss
        else:
            decay = SPIKE_AVERAGE_DECAY
            deviation = loss - average
            self._loss_average = average + (1.0 - decay) * deviation
            self._loss_variance = decay * (
                self._loss_variance + (1.0 - decay) * deviation * deviation
            )
        self._loss_average_steps += 1

    def _should_save(self, step, last_save_time):
        config = self.config
        if config.save_checkpoints_steps:
            return step % config.save_checkpoints_steps == 0
        secs = config.save_checkpoints_secs or 600
        return time.time() - last_save_time >= secs

    def _log_train(self, step, loss, outputs, tokens_s, examples_s, steps_s, batch):
        lr = self.learning_rate()
        global_norm = float(outputs["global_norm"])
        clipped_norm = float(outputs["clipped_norm"])
        probability = float(outputs["sampling_probability"])
        sampling = ""
        if getattr(self.model, "scheduled_sampling", None) is not None:
            sampling = f", sampling p = {probability:.3f}"
        logging.info(
            "step %d: loss = %.4f, lr = %.3g, %.0f target tokens/s, %.2f steps/s%s",
            step,
            loss,
            lr,
            tokens_s,
            steps_s,
            sampling,
        )
        with self.train_writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("global_norm", global_norm)
            tf.summary.scalar("global_norm/clipped", clipped_norm)
            tf.summary.scalar(
                "global_norm/clip_ratio",
                clipped_norm / global_norm if global_norm > 0 else 1.0,
            )
            tf.summary.scalar("scheduled_sampling/probability", probability)
            if "loss_scale" in outputs:
                tf.summary.scalar("loss_scale", float(outputs["loss_scale"]))
            tf.summary.scalar("health/skipped_updates", self.skipped_updates)
            tf.summary.scalar("health/loss_spikes", self.loss_spikes)
            tf.summary.scalar("tokens_per_sec", tokens_s)
            tf.summary.scalar("examples_per_sec", examples_s)
            tf.summary.scalar("global_step/sec", steps_s)
            tf.summary.histogram("source_len", batch["source_len"])
            tf.summary.histogram("target_len", batch["target_len"])


def set_mixed_precision(name):
    """Sets Keras's global dtype policy for `--mixed_precision`.

    Args:
      name: "" or None (float32 everywhere), "float16" or "bfloat16" (layers
        compute in that type and keep float32 weights; the model keeps its
        softmax and loss in float32).

    Raises:
      UserError: Another value.
    """
    import keras

    if not name:
        keras.mixed_precision.set_global_policy("float32")
        return
    policy = MIXED_PRECISION_POLICIES.get(name)
    if policy is None:
        raise UserError(
            f"--mixed_precision={name} is not supported; use float16 or "
            "bfloat16, or leave it unset for float32."
        )
    keras.mixed_precision.set_global_policy(policy)


def check_component_classes(metrics, hooks):
    """Resolves the classes named in `metrics` and `hooks` without creating
    anything, so that a wrong name fails before a file is written.

    Args:
      metrics: The `--metrics` list of `{class, params}` definitions.
      hooks: The `--hooks` list of `{class, params}` definitions.

    Raises:
      ConfigError: A name is unknown or not a subclass of the slot's base.
        Malformed definitions are reported when the objects are created.
    """
    for definitions, slot in ((metrics, METRIC_SLOT), (hooks, HOOK_SLOT)):
        for definition in definitions:
            definition = maybe_load_yaml(definition, slot["what"])
            if isinstance(definition, dict) and "class" in definition:
                locate_class(
                    definition["class"],
                    slot["modules"],
                    slot["what"],
                    base=slot["base"],
                )


def check_train_options(train_options, output_dir):
    """Refuses a config that does not fit the checkpoints in `output_dir`.

    Raises:
      UserError: `output_dir` holds a model of another class or trained with
        other vocabularies.
    """
    path = os.path.join(output_dir, "train_options.json")
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
    path = os.path.join(output_dir, "train_options.json")
    with run_dir.writing(path, output_dir):
        os.makedirs(output_dir, exist_ok=True)
        train_options.dump(output_dir)
