"""Tests for the best checkpoint and early stopping."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import make_trainer

from seq2seq.errors import UserError
from seq2seq.inference import inference
from seq2seq.training import early_stopping
from seq2seq.training.hooks import TrainingHook


class _Weights(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([0.0, 0.0])


def test_mode_is_inferred_from_the_metric_name():
    assert early_stopping.resolve_mode("loss/teacher_forced") == "min"
    assert early_stopping.resolve_mode("log_perplexity/teacher_forced") == "min"
    assert early_stopping.resolve_mode("bleu/greedy") == "max"
    assert early_stopping.resolve_mode("rouge_l/f_score/beam4") == "max"
    assert early_stopping.resolve_mode("bleu/greedy", "min") == "min"
    with pytest.raises(UserError, match="early_stopping_mode=lowest"):
        early_stopping.resolve_mode("bleu/greedy", "lowest")


def test_tracker_keeps_the_best_weights_and_counts_patience(tmp_path):
    out = str(tmp_path)
    weights = _Weights()
    tracker = early_stopping.BestCheckpointTracker(
        out, weights, "loss/teacher_forced", min_delta=0.1, patience=2
    )
    assert tracker.mode == "min"
    script = [(10, 3.0, True), (20, 2.0, True), (30, 1.95, False), (40, 1.5, True)]
    for step, value, improves in script:
        weights.w.assign([step, value])
        assert tracker.update(step, {"loss/teacher_forced": value}) is improves
    assert not tracker.should_stop
    for step in (50, 60):
        assert not tracker.update(step, {"loss/teacher_forced": float("nan")})
    assert tracker.should_stop
    with open(os.path.join(out, "best", "best.json")) as handle:
        state = json.load(handle)
    assert state["step"] == 40 and state["value"] == 1.5
    assert state["metric"] == "loss/teacher_forced" and state["mode"] == "min"
    assert state["checkpoint"] == os.path.join("best", "ckpt-40")
    assert state["evaluations_since_best"] == 2
    # One best checkpoint is kept, holding the weights of step 40.
    assert tf.train.latest_checkpoint(os.path.join(out, "best")).endswith("ckpt-40")
    assert len([n for n in os.listdir(os.path.join(out, "best")) if "index" in n]) == 1
    restored = _Weights()
    tf.train.Checkpoint(model=restored).read(tracker.checkpoint_path).expect_partial()
    np.testing.assert_array_equal(restored.w.numpy(), [40, 1.5])

    # A resumed run continues the count; another metric starts afresh.
    again = early_stopping.BestCheckpointTracker(
        out, weights, "loss/teacher_forced", patience=2
    )
    assert (again.best_step, again.best_value, again.should_stop) == (40, 1.5, True)
    other = early_stopping.BestCheckpointTracker(out, weights, "bleu/greedy")
    assert other.best_value is None and other.mode == "max"


class _ScriptedEvaluator:
    """Stands in for the dev evaluation: returns scripted results."""

    def __init__(self, bleu_values, names):
        self.values = list(bleu_values)
        self.names = names
        self.steps = []

    def result_names(self):
        return self.names

    def evaluate(self, dataset):
        del dataset
        bleu = self.values.pop(0)
        return {"loss/teacher_forced": 1.0, "bleu/greedy": bleu}


def test_early_stopping_stops_at_the_right_step(toy_data, tmp_path):
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data,
        out,
        train_steps=40,
        eval_every_n_steps=2,
        save_checkpoints_steps=100,
        metrics=[{"class": "BleuMetricSpec"}],
        early_stopping_metric="bleu/greedy",
        early_stopping_patience=3,
        early_stopping_min_delta=0.5,
    )
    assert trainer.best.mode == "max" and trainer.best.patience == 3
    names = trainer.evaluator.result_names()
    assert names == ["loss/teacher_forced", "bleu/greedy"]
    # Evaluations at steps 2, 4, 6, ...: the best is 20.0 at step 4; 19.0,
    # 20.4 (not more than min_delta better) and 5.0 make three without
    # improvement, so training stops at step 10.
    trainer.evaluator = _ScriptedEvaluator([10.0, 20.0, 19.0, 20.4, 5.0, 99.0], names)
    saved = {}

    class Record(TrainingHook):
        def after_step(self, step, features, outputs):
            saved[step] = [v.numpy().copy() for v in trainer.model.weights]

    trainer.hooks.append(Record({}, model_dir=""))
    assert trainer.train() == 10
    assert trainer.evaluator.values == [99.0]  # no final evaluation
    assert tf.train.latest_checkpoint(out).endswith("ckpt-10")
    state = early_stopping.read_best(out)
    assert (state["step"], state["value"], state["metric"]) == (4, 20.0, "bleu/greedy")
    assert state["evaluations_since_best"] == 3 and state["last_evaluated_step"] == 10

    # bin/infer.py --checkpoint_path best picks it; it holds step 4's weights.
    best = inference.resolve_checkpoint(out, "best")
    assert best == os.path.join(out, "best", "ckpt-4")
    assert inference.resolve_checkpoint(out, "latest").endswith("ckpt-10")
    reader = tf.train.load_checkpoint(best)
    values = [
        reader.get_tensor(name)
        for name, _ in tf.train.list_variables(best)
        if name.startswith("model/")
    ]
    assert len(values) == len(saved[4])
    flat_saved = sorted(float(np.sum(w)) for w in saved[4])
    assert sorted(float(np.sum(v)) for v in values) == pytest.approx(flat_saved)

    # Running the same command again does not train past the stop.
    again = make_trainer(
        toy_data,
        out,
        train_steps=40,
        metrics=[{"class": "BleuMetricSpec"}],
        early_stopping_metric="bleu/greedy",
        early_stopping_patience=3,
    )
    assert again.train() == 10
    assert again._train_step is None


def test_early_stopping_needs_a_reported_metric(toy_data, tmp_path):
    with pytest.raises(UserError, match="bleu/greedy is not reported.*loss/teach"):
        make_trainer(
            toy_data,
            str(tmp_path / "a"),
            train_steps=2,
            early_stopping_metric="bleu/greedy",
        )
    with pytest.raises(UserError, match="needs a dev set"):
        make_trainer(
            toy_data,
            str(tmp_path / "b"),
            train_steps=2,
            early_stopping_metric="loss/teacher_forced",
            with_dev=False,
        )


def test_best_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="no best checkpoint.*--input_pipeline_dev"):
        inference.resolve_checkpoint(str(tmp_path), "best")
