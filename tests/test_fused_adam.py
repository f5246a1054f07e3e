"""Tests for seq2seq.training.fused_adam: Keras's Adam update, fused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.training import fused_adam


def _variables():
    embedding = keras.Variable(
        np.random.RandomState(1).normal(size=[12, 3]).astype("float32"),
        name="embedding",
    )
    kernel = keras.Variable(
        np.random.RandomState(2).normal(size=[3, 4]).astype("float32"),
        name="kernel",
    )
    return [embedding, kernel]


def _train(fused, steps=4):
    """Weights and moments after `steps` Adam updates of a toy embedding +
    projection whose batches repeat ids (duplicate IndexedSlices rows)."""
    variables = _variables()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5)
    optimizer = keras.optimizers.Adam(schedule, epsilon=8e-7)
    optimizer.build(variables)
    assert fused_adam.supports(optimizer)

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            features = tf.nn.embedding_lookup(variables[0], ids)
            loss = tf.reduce_sum(tf.square(tf.matmul(features, variables[1]) - 1.0))
        gradients = tape.gradient(loss, variables)
        assert isinstance(gradients[0], tf.IndexedSlices)
        if fused:
            fused_adam.apply_gradients(optimizer, gradients, variables)
        else:
            optimizer.apply_gradients(zip(gradients, variables))

    for index in range(steps):
        step(tf.constant([1, 2, 2, 2, 7, 1, index]))
    moments = [v.numpy() for v in optimizer._momentums + optimizer._velocities]
    return [v.numpy() for v in variables], moments, int(optimizer.iterations)


def test_fused_update_equals_keras_adam():
    weights, moments, steps = _train(fused=False)
    fused_weights, fused_moments, fused_steps = _train(fused=True)
    assert fused_steps == steps == 4
    for expected, got in zip(weights + moments, fused_weights + fused_moments):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    # Rows never looked up keep their weights; updated ones moved.
    initial = _variables()[0].numpy()
    np.testing.assert_array_equal(fused_weights[0][11], initial[11])
    assert np.abs(fused_weights[0][2] - initial[2]).max() > 1e-3


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.Adam(amsgrad=True),
        lambda: keras.optimizers.Adam(global_clipnorm=1.0),
        lambda: keras.optimizers.Adam(weight_decay=0.1),
        lambda: keras.optimizers.AdamW(),
        lambda: keras.optimizers.SGD(),
    ],
)
def test_other_optimizers_are_not_fused(optimizer):
    assert not fused_adam.supports(optimizer())
