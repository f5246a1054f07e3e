"""Tests for seq2seq.layers.loop_dropout: dropout in loop bodies that a seed
fixes."""

import numpy as np
import tensorflow as tf
from conftest import random_ops_in_loop_bodies

from seq2seq.layers import loop_dropout

STEPS, ROWS, WIDTH = 6, 8, 16


def _loop(rate=0.5):
    """A `tf.function` whose loop drops two [ROWS, WIDTH] tensors of ones
    per step; returns [STEPS, 2, ROWS, WIDTH]."""

    @tf.function
    def run():
        seed = loop_dropout.loop_seed()
        ones = tf.ones([ROWS, WIDTH])

        def body(time, values):
            with loop_dropout.seeded_step(seed, time):
                first = loop_dropout.dropout(ones, rate)
                second = loop_dropout.dropout(ones, rate)
            return time + 1, values.write(time, tf.stack([first, second]))

        _, values = tf.while_loop(
            lambda time, _: time < STEPS,
            body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=STEPS)),
        )
        return values.stack()

    return run


def test_seeded_steps_draw_no_stateful_op_in_the_loop_and_the_seed_fixes_them():
    run = _loop()
    inside, outside = random_ops_in_loop_bodies(run)
    # The loop's seed is the only stateful draw, before the loop.
    assert (inside, outside) == (0, 1)
    # A function's random ops take their seeds from the global seed when
    # they are traced.
    tf.random.set_seed(7)
    run = _loop()
    first = run().numpy()
    # The next call draws a new loop seed: new masks.
    assert not np.array_equal(run().numpy(), first)
    # A new function with the same global seed draws the same masks (as a
    # new run of a training process would), another seed other masks.
    tf.random.set_seed(7)
    np.testing.assert_array_equal(_loop()().numpy(), first)
    tf.random.set_seed(8)
    assert not np.array_equal(_loop()().numpy(), first)
    # Kept values are scaled by 1 / (1 - rate), about half are kept, and
    # every step and every call in a step has its own mask.
    assert set(np.unique(first)) == {0.0, 2.0}
    assert 0.4 < (first > 0).mean() < 0.6
    for time in range(STEPS):
        assert not np.array_equal(first[time, 0], first[time, 1])
        if time:
            assert not np.array_equal(first[time, 0], first[time - 1, 0])


def test_dropout_outside_a_seeded_step_is_tf_nn_dropout():
    tf.random.set_seed(3)
    ours = loop_dropout.dropout(tf.ones([ROWS, WIDTH]), 0.25).numpy()
    tf.random.set_seed(3)
    expected = tf.nn.dropout(tf.ones([ROWS, WIDTH]), rate=0.25).numpy()
    np.testing.assert_array_equal(ours, expected)
    # With no seed the block changes nothing.
    with loop_dropout.seeded_step(None, 0):
        tf.random.set_seed(3)
        inside = loop_dropout.dropout(tf.ones([ROWS, WIDTH]), 0.25).numpy()
    np.testing.assert_array_equal(inside, expected)
