"""The training loop: compiled train step, checkpoints, evaluation, summaries.

This replaces the original's Estimator/Experiment pair. One `Trainer` owns the
model, the optimizer, a `tf.train.CheckpointManager` over `output_dir`, and
two summary writers (`output_dir` for training curves, `output_dir/eval` for
dev curves). A second run with the same `output_dir` resumes from the latest
checkpoint (step, weights, optimizer slots and the position in the training
data); a run whose `train_steps` is already reached returns at once.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq.configurable import ModeKeys, create_from_dict
from seq2seq.data import batching
from seq2seq.errors import UserError
from seq2seq.training import evaluation
from seq2seq.training import hooks as hooks_lib
from seq2seq.training.utils import TrainOptions

# Keys the compiled steps see; token strings stay on the host.
_ID_KEYS = ("source_ids", "source_len", "target_ids", "target_len")


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


def _select(features, keys):
    return {key: features[key] for key in keys if key in features}


class Trainer:
    """Trains a model built from a `TrainOptions` on input pipelines.

    Args:
      train_options: `TrainOptions` with the model class and params.
      train_pipeline: An `InputPipeline` in train mode.
      dev_pipeline: An `InputPipeline` in eval mode, or None.
      config: A `RunConfig`.
      hooks: List of `{class, params}` hook definitions.
      metrics: List of `{class, params}` metric definitions.
    """

    def __init__(
        self,
        train_options,
        train_pipeline,
        dev_pipeline,
        config,
        hooks=(),
        metrics=(),
    ):
        from seq2seq import models  # noqa: F401  (imports register classes)

        self.config = config
        self.train_options = train_options
        os.makedirs(config.output_dir, exist_ok=True)
        if config.tf_random_seed is not None:
            tf.keras.utils.set_random_seed(config.tf_random_seed)
        self.model = create_from_dict(
            {"class": train_options.model_class, "params": train_options.model_params},
            ["seq2seq.models"],
            ModeKeys.TRAIN,
            what="model",
        )
        self.optimizer = self.model.create_optimizer()
        self.train_pipeline = train_pipeline
        self.dev_pipeline = dev_pipeline
        self.metrics = [
            create_from_dict(d, ["seq2seq.metrics"], what="metric") for d in metrics
        ]
        self.hooks = [
            create_from_dict(
                d,
                [hooks_lib],
                model_dir=config.output_dir,
                run_config=config,
                what="hook",
            )
            for d in hooks
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
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            config.output_dir,
            max_to_keep=config.keep_checkpoint_max or None,
            keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
        )
        self.evaluator = (
            evaluation.Evaluator(self.model, self.metrics) if dev_pipeline else None
        )
        self._train_step = None

    # ----------------------------------------------------------- datasets

    def _make_dataset(self, pipeline, training):
        dataset = batching.create_input_fn(
            pipeline,
            batch_size=self.config.batch_size,
            bucket_boundaries=self.config.buckets if training else None,
            allow_smaller_final_batch=not training,
        )
        return dataset.map(
            self.model.preprocess, num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    def _writer(self, name):
        """The summary writer of `output_dir` (train) or `output_dir/eval`,
        created on first use so that a run with nothing to do writes nothing."""
        if name not in self._writers:
            path = self.config.output_dir
            if name == "eval":
                path = os.path.join(path, "eval")
            self._writers[name] = tf.summary.create_file_writer(path)
        return self._writers[name]

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
        self.model.forward(_select(features, _ID_KEYS), training=False)
        self.optimizer.build(self.model.trainable_variables)

    def _make_train_step(self, element_spec):
        spec = _select(element_spec, _ID_KEYS)
        model, optimizer = self.model, self.optimizer

        @tf.function(input_signature=[spec])
        def train_step(features):
            with tf.GradientTape() as tape:
                output = model.forward(features, training=True)
            variables = model.trainable_variables
            gradients = tape.gradient(output.loss, variables)
            clipped, global_norm = model.clip_gradients(gradients, variables)
            optimizer.apply_gradients(zip(clipped, variables))
            return {
                "loss": output.loss,
                "loss_sum": output.loss_sum,
                "num_tokens": output.num_tokens,
                "global_norm": global_norm,
            }

        return train_step

    def learning_rate(self):
        """The learning rate at the current step, as a Python float."""
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    # --------------------------------------------------------- checkpoints

    def restore(self):
        """Restores the latest checkpoint of `output_dir`, if any.

        Returns:
          The restored step (0 when starting fresh).
        """
        latest = self.manager.latest_checkpoint
        if not latest:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            first = str(err).strip().splitlines()[0][:300]
            raise UserError(
                f"checkpoint {latest} does not fit the model built from the "
                f"current config ({first}). Use a new --output_dir or the config "
                "the checkpoint was trained with."
            ) from None
        logging.info("Restored %s (step %d)", latest, self.step)
        return self.step

    def save(self):
        """Writes a checkpoint at the current step (once per step)."""
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(
            f"-{self.step}"
        ):
            return self.manager.latest_checkpoint
        path = self.manager.save(checkpoint_number=self.step)
        logging.info("Saved checkpoint %s", path)
        return path

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
        if not self.manager.latest_checkpoint:
            raise UserError(
                f"no checkpoint in {self.config.output_dir} to evaluate; train "
                "first or point --output_dir at a training directory."
            )
        self._build(next(iter(self.dev_dataset)))
        self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        return self.evaluate()

    def train(self):
        """Trains until `train_steps` (forever if None); returns the final step."""
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
        self._train_step = self._make_train_step(self.train_dataset.element_spec)
        for hook in self.hooks:
            hook.begin(self)

        last_save_time = time.time()
        window_start = time.time()
        window_tokens = window_examples = 0.0
        window_loss = window_count = 0.0
        stopped = False
        try:
            while config.train_steps is None or self.step < config.train_steps:
                features = pending if pending is not None else next(self._iterator)
                pending = None
                for hook in self.hooks:
                    hook.before_step(self.step)
                outputs = self._train_step(_select(features, _ID_KEYS))
                step = self.step
                window_tokens += float(np.sum(features["target_len"].numpy() - 1))
                window_examples += float(features["target_len"].shape[0])
                window_loss += float(outputs["loss"])
                window_count += 1
                if (
                    step % config.log_every_n_steps == 0
                    or step == 1
                    or step == config.train_steps
                ):
                    elapsed = max(time.time() - window_start, 1e-9)
                    self._log_train(
                        step,
                        window_loss / window_count,
                        float(outputs["global_norm"]),
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
                if (
                    self.evaluator is not None
                    and config.eval_every_n_steps
                    and step % config.eval_every_n_steps == 0
                ):
                    eval_start = time.time()
                    self.evaluate()
                    # Throughput figures count training time only.
                    window_start += time.time() - eval_start
        except KeyboardInterrupt:
            stopped = True
            logging.warning("Interrupted at step %d; saving a checkpoint.", self.step)
        except StopIteration:
            logging.info("Training data exhausted at step %d.", self.step)
        finally:
            if self._train_step is not None and self.step > 0:
                self.save()
        for hook in self.hooks:
            hook.end(self)
        if not stopped and self.evaluator is not None:
            last_eval = config.eval_every_n_steps
            if not last_eval or self.step % last_eval != 0:
                self.evaluate()
        for writer in self._writers.values():
            writer.flush()
        if stopped:
            raise KeyboardInterrupt
        return self.step

    def _should_save(self, step, last_save_time):
        config = self.config
        if config.save_checkpoints_steps:
            return step % config.save_checkpoints_steps == 0
        secs = config.save_checkpoints_secs or 600
        return time.time() - last_save_time >= secs

    def _log_train(self, step, loss, global_norm, tokens_s, examples_s, steps_s, batch):
        lr = self.learning_rate()
        logging.info(
            "step %d: loss = %.4f, lr = %.3g, %.0f target tokens/s, %.2f steps/s",
            step,
            loss,
            lr,
            tokens_s,
            steps_s,
        )
        with self.train_writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("global_norm", global_norm)
            tf.summary.scalar("tokens_per_sec", tokens_s)
            tf.summary.scalar("examples_per_sec", examples_s)
            tf.summary.scalar("global_step/sec", steps_s)
            tf.summary.histogram("source_len", batch["source_len"])
            tf.summary.histogram("target_len", batch["target_len"])


def check_and_write_train_options(train_options, output_dir):
    """Writes `train_options.json`, refusing a config that does not fit the
    checkpoints already in `output_dir`.

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
    os.makedirs(output_dir, exist_ok=True)
    train_options.dump(output_dir)
