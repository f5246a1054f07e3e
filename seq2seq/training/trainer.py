"""The training loop: compiled train step, checkpoints, evaluation, summaries.

(Why a little over the ~700-line guide: the loop's parts already live in
their own modules, named below; what stays is the order they run in at each
step, evaluation and stop, which reads best in one place.)

This replaces the original's Estimator/Experiment pair. One `Trainer` owns the
model, the optimizer, the run's checkpoints (`TrainCheckpoints`, in
`checkpointing.py`), and two summary writers (`output_dir` for training
curves, `output_dir/eval` for dev curves; `summaries.py`, which also holds
the throughput window). A second run with the same `output_dir` resumes from the latest
checkpoint (step, weights, optimizer slots and the position in the training
data); a run whose `train_steps` is already reached returns at once.

Curve health: a batch whose loss or gradient norm is not finite does not
update anything; after `max_consecutive_nan_steps` such batches in a row
training stops with a `TrainingDivergedError`, leaving the last checkpoint
(which never holds non-finite weights) in place. Loss spikes are logged
(see `seq2seq.training.curve_health`).

Faults: the chief holds `output_dir/train.lock` while it trains, so a second
run on the same directory stops with one line instead of overwriting the
first one's checkpoints (see `seq2seq.run_dir`). SIGINT and SIGTERM stop
training after the current step and save a checkpoint (`Interrupted`, exit
130 or 143 from the command line; see `stop_signals.py`). A resume skips damaged checkpoints
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
import os
import signal
import time

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
from seq2seq.errors import ConfigError, Interrupted, UserError
from seq2seq.metrics import MetricSpec, metric_specs
from seq2seq.models import ModelBase
from seq2seq.run_dir import (  # noqa: F401  (re-exported)
    check_and_write_train_options,
    check_train_options,
)
from seq2seq.training import cpu_features, distribution, early_stopping, evaluation
from seq2seq.training import hooks as hooks_lib
from seq2seq.training.checkpointing import TrainCheckpoints
from seq2seq.training.curve_health import (  # noqa: F401  (re-exported)
    SPIKE_AVERAGE_DECAY,
    SPIKE_STD_MARGIN,
    SPIKE_WARMUP_STEPS,
    CurveHealth,
    TrainingDivergedError,
    loss_scale_overflow,
)
from seq2seq.training.eval_summaries import EvalSamples
from seq2seq.training.run_config import RunConfig
from seq2seq.training.stop_signals import StopSignals
from seq2seq.training.summaries import SummaryWriters, TrainSummaries
from seq2seq.training.train_step import (
    ID_KEYS,
    DynamicLossScale,
    TrainStep,
    apply_gradients_if,
    select_ids,
)
from seq2seq.training.unk_rate import UnknownTokenRate

# Keys the compiled steps see (token strings stay on the host).
_ID_KEYS = ID_KEYS

__all__ = ["RunConfig", "Trainer", "TrainingDivergedError", "apply_gradients_if"]

# --mixed_precision: (Keras's global dtype policy, the dtype of the output
# layer's product in training; see `seq2seq.layers.output_projection`).
MIXED_PRECISION_MODES = {
    "float16": ("mixed_float16", None),
    "bfloat16": ("mixed_bfloat16", None),
    "bfloat16_logits": ("float32", "bfloat16"),
}


# Where the short names of --metrics and --hooks are looked up, and the base
# class each named class must derive from.
METRIC_SLOT = {"modules": ["seq2seq.metrics"], "what": "metric", "base": MetricSpec}
HOOK_SLOT = {"modules": [hooks_lib], "what": "hook", "base": hooks_lib.TrainingHook}


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
        target_tokenizer = dev_pipeline.tokenizer_path("target") if dev_pipeline else ""
        if target_tokenizer:
            # The dev targets are pieces: text metrics score plain text.
            self.metrics = [
                metric_specs.scoring_detokenized(metric, target_tokenizer, definition)
                for metric, definition in zip(self.metrics, metrics)
            ]
            for metric in self.metrics:
                if getattr(metric, "description", None):
                    logging.info("Detokenized dev text: %s", metric.description)
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
        self.writers = SummaryWriters(config.output_dir, self.is_chief)
        self._iterator = iter(self.train_dataset) if self.train_dataset else None
        tracked = {"model": self.model, "optimizer": self.optimizer}
        if self._iterator is not None:
            tracked["data"] = self._iterator
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.checkpoints = TrainCheckpoints(
            self.checkpoint,
            config.output_dir,
            is_chief=self.is_chief,
            max_to_keep=config.keep_checkpoint_max,
            keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
        )
        self.evaluator = (
            evaluation.Evaluator(
                self.model, self.metrics, beam_width=config.eval_beam_width
            )
            if dev_pipeline and self.is_chief
            else None
        )
        self.eval_samples = (
            EvalSamples(self.model, dev_pipeline, config.eval_summary_examples)
            if self.evaluator is not None and config.eval_summary_examples
            else None
        )
        self.best = self._make_best_tracker()
        self._train_step = None
        self.signals = StopSignals(lambda: self.step)
        self.health = CurveHealth(config, lambda: self.train_writer)

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
        dataset = dataset.map(
            tf.autograph.experimental.do_not_convert(self.model.preprocess),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)
        return dataset if training else batching.read_once(dataset)

    def _writing(self, what):
        """`run_dir.writing` for this run's output directory."""
        return run_dir.writing(what, self.config.output_dir)

    @property
    def train_writer(self):
        """Summary writer for training curves (`output_dir`)."""
        return self.writers.train

    @property
    def eval_writer(self):
        """Summary writer for dev curves (`output_dir/eval`)."""
        return self.writers.eval

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
          `metrics` (the model's summed metrics), `global_norm` (before
          clipping), `clipped_norm` (after), `applied` (bool) and
          `sampling_probability` (see `TrainStep`).
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
            fused_optimizer=self.config.fused_optimizer,
            # Token batching gives batches of every size.
            batch_size=(
                self.config.batch_size if self.config.batch_type == "examples" else None
            ),
        )

        def train_step(batches, sampling_probability=None, gradients=False):
            if sampling_probability is None:
                sampling_probability = self.sampling_probability()
            return step(batches, sampling_probability, gradients=gradients)

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
        """Restores the newest intact checkpoint of `output_dir`, if any
        (see `TrainCheckpoints.restore`).

        Returns:
          The restored step (0 when starting fresh).

        Raises:
          UserError: The checkpoints are all damaged, or the newest intact
            one does not fit the model.
        """
        if self.checkpoints.restore(lambda: self.step) is None:
            return 0
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
        if self.checkpoints.saved_step == self.step:
            return self.checkpoints.manager.latest_checkpoint
        if not self.weights_are_finite():
            logging.error(
                "Not saving step %d: the weights are not finite; the latest "
                "checkpoint is still %s.",
                self.step,
                self.checkpoints.manager.latest_checkpoint,
            )
            return None
        with self.signals.deferred():
            return self.checkpoints.save(self.step)

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
                if self.eval_samples is not None:
                    self.eval_samples.write()
            self.eval_writer.flush()
        shown = ", ".join(f"{k} = {v:.4f}" for k, v in sorted(results.items()))
        logging.info("Eval at step %d (%.1fs): %s", step, time.time() - start, shown)
        return results

    def evaluate_latest(self, prefix=None):
        """Evaluates the latest checkpoint of `output_dir` (or `prefix`) once;
        returns the results (see `evaluate`)."""
        if self.dev_dataset is None:
            raise UserError(
                "--schedule=evaluate and continuous_eval need --input_pipeline_dev "
                "to evaluate on."
            )
        self.checkpoints.restore_for_evaluation(
            lambda: self._build(next(iter(self.dev_dataset))), prefix
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
            with self.signals.handling():
                return self._train()

    def _interrupted_message(self, signum):
        name = signal.Signals(signum).name
        saved = self.checkpoints.saved_at(self.step)
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
        if pending is not None:
            with self.strategy.scope():
                self.model.initialize_from_files()
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
        window = TrainSummaries(
            self.writers, config.log_every_n_steps, config.train_steps
        )
        stopped = False
        diverged = None
        stopped_early = False
        try:
            while config.train_steps is None or self.step < config.train_steps:
                self.signals.check()
                self.signals.deferring = True
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
                outputs = self._train_step(
                    batches,
                    probability,
                    gradients=config.gradient_summaries and window.due(self.step + 1),
                )
                step = self.step
                loss = float(outputs["loss"])
                if not bool(outputs["applied"]):
                    if loss_scale_overflow(self.loss_scale, step, loss):
                        continue
                    diverged = self.health.skipped(
                        step, loss, float(outputs["global_norm"])
                    )
                    if diverged:
                        break
                    continue
                self.health.applied(step, loss, features)
                window.add(loss, outputs, batches)
                if window.due(step):
                    window.write(
                        step,
                        outputs,
                        features,
                        self.learning_rate(),
                        self.health,
                        getattr(self.model, "scheduled_sampling", None) is not None,
                    )
                for hook in self.hooks:
                    hook.after_step(step, features, outputs)
                if self._should_save(step, last_save_time):
                    self.save()
                    last_save_time = time.time()
                self.signals.deferring = False
                self.signals.check()
                if (
                    self.evaluator is not None
                    and config.eval_every_n_steps
                    and step % config.eval_every_n_steps == 0
                ):
                    eval_start = time.time()
                    results = self.evaluate()
                    # Throughput figures count training time only.
                    window.exclude(time.time() - eval_start)
                    if self._agree(self._after_evaluation(step, results)):
                        stopped_early = True
                        break
        except KeyboardInterrupt as err:
            # SIGINT, SIGTERM (see `StopSignals`) or a hook's KeyboardInterrupt.
            stopped = getattr(err, "signum", signal.SIGINT)
            if self.signals.signum is None:
                self.signals.signum = stopped
            logging.warning("Interrupted at step %d; saving a checkpoint.", self.step)
        except StopIteration:
            logging.info("Training data exhausted at step %d.", self.step)
        finally:
            self.signals.deferring = True
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
        self.writers.flush()
        self.checkpoints.close()
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
        best_dir = run_dir.best_dir(self.config.output_dir)
        with (
            self.signals.deferred(),
            self._writing(f"the best checkpoint in {best_dir}"),
        ):
            self.best.update(step, results)
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

    def _should_save(self, step, last_save_time):
        config = self.config
        if config.save_checkpoints_steps:
            return step % config.save_checkpoints_steps == 0
        secs = config.save_checkpoints_secs or 600
        return time.time() - last_save_time >= secs


def check_mixed_precision(name):
    """Returns `--mixed_precision`'s value `name` ("" or None: float32) if
    it is a mode of `MIXED_PRECISION_MODES`, with `auto` already resolved.

    Raises:
      ConfigError: Another value.
    """
    if name and name not in MIXED_PRECISION_MODES:
        raise ConfigError(
            f"--mixed_precision={name} is not supported; use "
            f"{', '.join(MIXED_PRECISION_MODES)} or auto, or leave it unset for "
            "float32."
        )
    return name


def set_mixed_precision(name):
    """Sets Keras's global dtype policy, and the output layer's product dtype
    in training, for `--mixed_precision`.

    Args:
      name: "" or None (float32 everywhere), "float16" or "bfloat16" (layers
        compute in that type and keep float32 weights; the model keeps its
        output layer, softmax and loss in float32), "bfloat16_logits"
        (float32 everywhere but the output layer's product in training), or
        "auto" (see `cpu_features.resolve_mixed_precision`).

    Raises:
      ConfigError: Another value.
    """
    import keras

    from seq2seq.layers import output_projection

    name = check_mixed_precision(cpu_features.resolve_mixed_precision(name))
    policy, logits_dtype = MIXED_PRECISION_MODES[name] if name else ("float32", None)
    keras.mixed_precision.set_global_policy(policy)
    output_projection.set_training_dtype(logits_dtype)


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
