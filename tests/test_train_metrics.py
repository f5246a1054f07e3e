"""A metric a model adds to its `forward` metrics dict is summed over
micro-batches, reduced over replicas and written to TensorBoard, with no
change to the train step or the trainer."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import text_pipeline, tiny_model_params

from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.models import AttentionSeq2Seq
from seq2seq.train_options import TrainOptions
from seq2seq.training import trainer as trainer_lib
from seq2seq.training.hooks import TrainingHook


class SourceTokensSeq2Seq(AttentionSeq2Seq):
    """Adds `source_tokens` (the batch's summed source lengths) to the
    metrics of every forward pass."""

    def forward(self, features, training=None, **kwargs):
        output = super().forward(features, training=training, **kwargs)
        source_tokens = tf.reduce_sum(tf.cast(features["source_len"], tf.float32))
        return output._replace(extra_metrics={"source_tokens": source_tokens})


def _trainer(toy_data, output_dir, **config):
    params = tiny_model_params(toy_data["vocab"])
    options = TrainOptions.from_model("test_train_metrics.SourceTokensSeq2Seq", params)
    trainer_lib.check_and_write_train_options(options, output_dir)
    train = make_input_pipeline_from_def(
        text_pipeline(toy_data["train"]), ModeKeys.TRAIN
    )
    run_config = trainer_lib.RunConfig(
        output_dir=output_dir, batch_size=16, tf_random_seed=3, **config
    )
    return trainer_lib.Trainer(options, train, None, run_config)


def _source_tokens(batch):
    return float(np.sum(batch["source_len"].numpy()))


def _target_tokens(batch):
    return float(np.sum(batch["target_len"].numpy() - 1))


def test_extra_metric_is_summed_over_micro_batches(toy_data, tmp_path):
    trainer = _trainer(
        toy_data, str(tmp_path / "model"), train_steps=2, effective_batch_size=32
    )
    batches = [next(trainer._iterator) for _ in range(2)]
    trainer._build(batches[0])
    step = trainer._make_train_step(trainer.train_dataset.element_spec)
    outputs = step(batches)
    metrics = outputs["metrics"]
    assert sorted(metrics) == ["loss_sum", "source_tokens", "target_tokens"]
    assert float(metrics["source_tokens"]) == sum(map(_source_tokens, batches))
    assert float(metrics["target_tokens"]) == sum(map(_target_tokens, batches))
    assert float(outputs["loss_sum"]) == pytest.approx(float(metrics["loss_sum"]))


def test_extra_metric_is_reduced_under_a_strategy(toy_data, tmp_path):
    trainer = _trainer(
        toy_data,
        str(tmp_path / "model"),
        train_steps=2,
        distribution_strategy="mirrored",
        distribution_devices=["/cpu:0"],
    )
    batch = next(trainer._iterator)
    trainer._build(batch)
    step = trainer._make_train_step(trainer.train_dataset.element_spec)
    # The replica all-reduce and the cross-replica reduce both ran.
    assert step.step.distributed
    outputs = step(batch)
    assert float(outputs["metrics"]["source_tokens"]) == _source_tokens(batch)
    assert float(outputs["metrics"]["target_tokens"]) == _target_tokens(batch)


def test_extra_metric_is_written_per_target_token(toy_data, tmp_path):
    out = str(tmp_path / "model")
    trainer = _trainer(
        toy_data, out, train_steps=3, log_every_n_steps=1, save_checkpoints_steps=3
    )
    expected = {}

    class Record(TrainingHook):
        def after_step(self, step, features, outputs):
            expected[step] = _source_tokens(features) / _target_tokens(features)

    trainer.hooks.append(Record({}, model_dir=""))
    trainer.train()
    written = {}
    for name in os.listdir(out):
        if name.startswith("events"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(out, name)):
                for value in event.summary.value:
                    if value.tag == "metrics/source_tokens":
                        written[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(written) == [1, 2, 3]
    for step, value in written.items():
        assert value == pytest.approx(expected[step], rel=1e-6)
