"""Tests for curve health in the training loop: non-finite batches are
skipped inside the compiled step, too many in a row stop training with the
checkpoint intact, and loss spikes are reported."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import make_trainer

from seq2seq.errors import UserError
from seq2seq.training import trainer as trainer_lib
from seq2seq.training.hooks import TrainingHook


def plant_nan(trainer):
    """Wraps the model's forward so that the loss (`loss`) or only the
    gradients (`grad`) become non-finite while a flag variable is set.

    Returns:
      A dict of the two flag variables.
    """
    flags = {
        "loss": tf.Variable(False, trainable=False),
        "grad": tf.Variable(False, trainable=False),
    }
    original = trainer.model.forward

    @tf.custom_gradient
    def poison_gradient(loss):
        def gradient(upstream):
            return upstream * tf.where(flags["grad"], np.inf, 1.0)

        return tf.identity(loss), gradient

    def forward(features, training=None, **kwargs):
        output = original(features, training=training, **kwargs)
        # nan * loss: the loss and every gradient become NaN. The train step
        # differentiates loss_sum (over the effective batch's token count).
        loss_sum = output.loss_sum + tf.where(flags["loss"], np.nan, 0.0) * output.loss
        loss_sum = poison_gradient(loss_sum)
        return output._replace(
            loss_sum=loss_sum, loss=loss_sum / tf.maximum(output.num_tokens, 1.0)
        )

    trainer.model.forward = forward
    return flags


class PoisonBatches(TrainingHook):
    """Sets the loss flag for the n-th batches drawn (1-based)."""

    def __init__(self, flag, batches):
        super().__init__({}, model_dir="")
        self.flag, self.batches, self.calls = flag, set(batches), 0

    def before_step(self, step):
        self.calls += 1
        self.flag.assign(self.calls in self.batches)


def _snapshot(trainer):
    return [v.numpy().copy() for v in trainer.model.weights] + [
        v.numpy().copy() for v in trainer.optimizer.variables
    ]


@pytest.fixture
def step_trainer(toy_data, tmp_path):
    """A trainer with variables built and a compiled train step."""
    trainer = make_trainer(
        toy_data, str(tmp_path / "model"), train_steps=10, with_dev=False
    )
    batch = next(trainer._iterator)
    trainer._build(batch)
    flags = plant_nan(trainer)
    step = trainer._make_train_step(trainer.train_dataset.element_spec)
    features = {k: batch[k] for k in trainer_lib._ID_KEYS}
    return trainer, flags, step, features, batch


def test_non_finite_batches_change_nothing(step_trainer):
    trainer, flags, step, features, _ = step_trainer
    outputs = step(features)
    assert bool(outputs["applied"]) and trainer.step == 1
    for kind in ("loss", "grad"):
        before = _snapshot(trainer)
        flags[kind].assign(True)
        outputs = step(features)
        flags[kind].assign(False)
        assert not bool(outputs["applied"]), kind
        assert np.isfinite(float(outputs["loss"])) == (kind == "grad")
        assert not np.isfinite(float(outputs["global_norm"]))
        # Weights, optimizer slots and the step counter are untouched.
        assert trainer.step == 1
        for old, new in zip(before, _snapshot(trainer)):
            np.testing.assert_array_equal(old, new)
    outputs = step(features)
    assert bool(outputs["applied"]) and trainer.step == 2
    assert float(outputs["clipped_norm"]) <= float(outputs["global_norm"]) + 1e-6


def test_spikes_are_logged_and_non_finite_weights_never_saved(step_trainer, caplog):
    trainer, _, step, _, batch = step_trainer
    with caplog.at_level(logging.WARNING):
        for i in range(trainer_lib.SPIKE_WARMUP_STEPS + 5):
            trainer.health.check_spike(i + 1, 1.0 + 0.01 * (i % 3), batch)
        assert trainer.health.loss_spikes == 0
        trainer.health.check_spike(26, 3.5, batch)
        assert trainer.health.loss_spikes == 1
    lengths = batch["source_len"].numpy()
    message = [r.getMessage() for r in caplog.records if "spike" in r.getMessage()]
    assert len(message) == 1 and "Loss spike at step 26" in message[0]
    assert f"source_len min/mean/max {lengths.min()}/" in message[0]
    trainer.config.loss_spike_factor = 0.0  # disabled
    trainer.health.check_spike(27, 100.0, batch)
    assert trainer.health.loss_spikes == 1
    trainer.config.loss_spike_factor = 3.0

    path = trainer.save()
    assert path.endswith("ckpt-0")
    weight = trainer.model.trainable_variables[0]
    weight.assign(tf.fill(weight.shape, np.nan))
    trainer.optimizer.iterations.assign(1)
    assert not trainer.weights_are_finite()
    assert trainer.save() is None
    assert tf.train.latest_checkpoint(trainer.config.output_dir) == path


def test_planted_nan_batches_are_skipped_then_training_stops(toy_data, tmp_path):
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data,
        out,
        train_steps=10,
        save_checkpoints_steps=2,
        max_consecutive_nan_steps=3,
        with_dev=False,
    )
    flags = plant_nan(trainer)
    # Batch 3 alone is skipped and training goes on; batches 6, 7, 8 in a
    # row stop it at step 4 (batches 1, 2, 4, 5 were applied).
    trainer.hooks.append(PoisonBatches(flags["loss"], {3, 6, 7, 8, 9}))
    weights = {}

    class Record(TrainingHook):
        def after_step(self, step, features, outputs):
            weights[step] = [v.numpy().copy() for v in trainer.model.weights]

    trainer.hooks.append(Record({}, model_dir=""))
    with pytest.raises(trainer_lib.TrainingDivergedError) as info:
        trainer.train()
    assert isinstance(info.value, UserError)  # bin/train.py: one line, exit 2
    message = str(info.value)
    assert "\n" not in message
    assert "step 4" in message and "--max_consecutive_nan_steps=3" in message
    assert trainer.hooks[0].calls == 8
    assert trainer.step == 4 and trainer.health.skipped_updates == 4
    assert sorted(weights) == [1, 2, 3, 4]
    # The latest checkpoint holds the finite weights of step 4.
    latest = tf.train.latest_checkpoint(out)
    assert latest.endswith("ckpt-4")
    reader = tf.train.load_checkpoint(latest)
    names = [
        n
        for n, _ in tf.train.list_variables(latest)
        if n.startswith("model/") and n.endswith(".ATTRIBUTES/VARIABLE_VALUE")
    ]
    assert names
    for name in names:
        assert np.isfinite(reader.get_tensor(name)).all(), name
    for now, saved in zip(trainer.model.weights, weights[4]):
        np.testing.assert_array_equal(now.numpy(), saved)


_MIRRORED_SCRIPT = """
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from seq2seq.training.trainer import apply_gradients_if
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(dense.trainable_variables)

@tf.function
def step(x, poison):
    def replica_fn(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(dense(x) ** 2)
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            bad = tf.logical_and(poison, tf.equal(replica, 1))
            loss = loss + tf.where(bad, np.nan, 0.0) * loss
        grads = tape.gradient(loss, dense.trainable_variables)
        return apply_gradients_if(
            optimizer, grads, dense.trainable_variables, tf.math.is_finite(loss)
        )
    return strategy.run(replica_fn, args=(x,))

x = strategy.experimental_distribute_values_from_function(lambda _: tf.ones([2, 3]))
assert bool(step(x, tf.constant(False))) and int(optimizer.iterations.numpy()) == 1
before = [v.numpy() for v in dense.trainable_variables]
# A NaN on one replica skips the update on all of them.
assert not bool(step(x, tf.constant(True))) and int(optimizer.iterations.numpy()) == 1
for old, new in zip(before, dense.trainable_variables):
    np.testing.assert_array_equal(old, new.numpy())
assert bool(step(x, tf.constant(False))) and int(optimizer.iterations.numpy()) == 2
print("OK")
"""


@pytest.mark.slow
def test_skipping_works_under_mirrored_strategy():
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=repo,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_spikes_within_the_usual_spread_are_not_reported(step_trainer, caplog):
    """While a model learns, batch losses spread widely: a loss 3x the
    average that is within 4 running standard deviations is no spike; one
    beyond them is."""
    trainer, _, _, _, batch = step_trainer
    trainer.health.check_spike(1, 1.0, batch)
    trainer.health.check_spike(2, 3.0, batch)
    # Exponential moving average and variance with decay 0.98, by hand.
    assert trainer.health.loss_average == pytest.approx(1.04)
    assert trainer.health.loss_variance == pytest.approx(0.98 * 0.02 * 4.0)
    for i in range(3, trainer_lib.SPIKE_WARMUP_STEPS + 40):
        trainer.health.check_spike(i, 0.2 if i % 2 else 2.0, batch)
    average = trainer.health.loss_average
    spread = float(np.sqrt(trainer.health.loss_variance))
    assert 0.5 < spread < 1.0
    with caplog.at_level(logging.WARNING):
        trainer.health.check_spike(100, 3.2 * average, batch)
        assert trainer.health.loss_spikes == 0
        trainer.health.check_spike(101, average + 5.0 * spread + 3.0, batch)
        assert trainer.health.loss_spikes == 1
