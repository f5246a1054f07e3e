"""Tests for `--schedule continuous_eval`: polling a training directory and
evaluating each new checkpoint once."""

import os

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import make_trainer

from seq2seq import run_dir
from seq2seq.training import continuous_eval


class FakeTime:
    """A clock that only moves when slept on; checkpoints scheduled for a
    time are written when the clock passes it."""

    def __init__(self, directory, appear_at):
        self.now = 0.0
        self.directory = directory
        self.pending = sorted(appear_at.items(), key=lambda item: item[1])
        self.sleeps = []
        self._write_due()

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        self._write_due()

    def _write_due(self):
        while self.pending and self.pending[0][1] <= self.now:
            number, _ = self.pending.pop(0)
            variable = tf.Variable(float(number))
            tf.train.Checkpoint(v=variable).write(
                os.path.join(self.directory, f"ckpt-{number}")
            )


def fake_evaluation(fake, seconds=3.0, fail=()):
    """An `evaluate_checkpoint` that takes `seconds` of the fake clock."""
    evaluated = []

    def evaluate(prefix):
        number = run_dir.checkpoint_number(prefix)
        evaluated.append(number)
        fake.now += seconds
        if number in fail:
            raise run_dir.CheckpointDamagedError(f"{prefix} vanished")
        return number, {"loss/teacher_forced": 1.0 / number}

    return evaluate, evaluated


def test_polls_evaluates_each_new_checkpoint_once_and_times_out(tmp_path):
    # ckpt-1 exists at the start, ckpt-2 appears at t=15, ckpt-3 and ckpt-4
    # both while the evaluator sleeps (only the newest is evaluated).
    fake = FakeTime(str(tmp_path), {1: 0, 2: 15, 3: 32, 4: 33})
    evaluate, evaluated = fake_evaluation(fake)
    results = continuous_eval.evaluate_continuously(
        evaluate,
        str(tmp_path),
        throttle_secs=10,
        timeout_secs=25,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert evaluated == [1, 2, 4]
    assert [step for step, _ in results] == [1, 2, 4]
    # Polls 10s apart counted from the start of each poll (an evaluation
    # of 3s leaves 7s), the last wait cut short to stop exactly 25s after
    # the last evaluation ended (t=43).
    assert fake.sleeps == [7, 10, 7, 10, 7, 10, 8]
    assert fake.now == 68


def test_stops_when_a_checkpoint_reaches_train_steps(tmp_path):
    fake = FakeTime(str(tmp_path), {5: 0, 10: 50, 15: 120})
    evaluate, evaluated = fake_evaluation(fake)
    continuous_eval.evaluate_continuously(
        evaluate,
        str(tmp_path),
        train_steps=10,
        throttle_secs=30,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert evaluated == [5, 10]
    assert fake.now == 63  # t=60 poll + a 3s evaluation; no timeout needed


def test_vanished_or_incomplete_checkpoints_are_skipped(tmp_path):
    fake = FakeTime(str(tmp_path), {2: 0, 4: 5})
    # A save in progress: an index without its data file is not yielded.
    (tmp_path / "ckpt-9.index").write_bytes(b"partial")
    evaluate, evaluated = fake_evaluation(fake, fail=(2,))
    results = continuous_eval.evaluate_continuously(
        evaluate,
        str(tmp_path),
        throttle_secs=4,
        timeout_secs=6,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert evaluated == [2, 4]
    assert [step for step, _ in results] == [4]


def test_nothing_to_evaluate_stops_at_the_timeout(tmp_path):
    fake = FakeTime(str(tmp_path / "not_yet"), {})
    evaluate, evaluated = fake_evaluation(fake)
    continuous_eval.evaluate_continuously(
        evaluate,
        str(tmp_path / "not_yet"),
        throttle_secs=60,
        timeout_secs=90,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert evaluated == [] and fake.sleeps == [60, 30]


def _eval_steps(directory):
    steps = {}
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                if value.tag == "loss/teacher_forced":
                    steps[event.step] = tf.make_ndarray(value.tensor).item()
    return steps


def test_evaluates_each_checkpoint_of_a_training_directory(toy_data, tmp_path):
    """The real evaluation path: `Trainer.evaluate_latest(prefix)` restores
    each checkpoint the poll finds (ckpt-2, then ckpt-4, saved while the
    evaluator sleeps) and writes its results to eval/ at the checkpoint's
    step."""
    out = str(tmp_path / "model")
    trainer = make_trainer(toy_data, out, train_steps=4)
    trainer._build(next(iter(trainer.dev_dataset)))
    embedding = trainer.model.source_embedding

    def save(step, scale):
        embedding.assign(embedding * scale)
        trainer.optimizer.iterations.assign(step)
        trainer.checkpoints.save(step)
        return embedding.numpy().copy()

    saved = {2: save(2, 1.0)}
    embedding.assign(embedding * 0.0)  # Restoring must bring the weights back.
    now = [0.0]

    def sleep(seconds):
        if 4 not in saved:
            saved[4] = save(4, 3.0)
            embedding.assign(embedding * 0.0)
        now[0] += seconds

    restored = {}

    def evaluate(prefix):
        results = trainer.evaluate_latest(prefix)
        restored[trainer.step] = embedding.numpy().copy()
        return trainer.step, results

    results = continuous_eval.evaluate_continuously(
        evaluate,
        out,
        train_steps=4,
        throttle_secs=5,
        timeout_secs=60,
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert [step for step, _ in results] == [2, 4]
    for step in (2, 4):
        np.testing.assert_array_equal(restored[step], saved[step])
    losses = _eval_steps(os.path.join(out, "eval"))
    assert sorted(losses) == [2, 4]
    for step, result in results:
        assert losses[step] == pytest.approx(result["loss/teacher_forced"])
    assert losses[2] != pytest.approx(losses[4])
