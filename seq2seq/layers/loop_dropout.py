"""Dropout inside `tf.while_loop` bodies that a seed fixes.

A stateful random op such as `tf.nn.dropout` inside a loop body is one op
that runs once per iteration, and TensorFlow runs several iterations at
once: which step receives which draw depends on thread timing, so two runs
with the same seed would train different weights. Loops that step a cell or
a layer trace their body under `seeded_step(seed, time)`, with `seed` drawn
once before the loop (`loop_seed`); `dropout` then draws from stateless ops
keyed by that seed, the step and the call's place in the body, so the masks
depend on the seed alone.

Outside such a block `dropout` is `tf.nn.dropout`.

(`FusedRecurrence` draws the masks of all its steps before its loop
instead, see `seq2seq.rnn.recurrence`.)
"""

import contextlib
import threading

import tensorflow as tf

__all__ = ["dropout", "loop_seed", "seeded_step"]

_scope = threading.local()


def loop_seed():
    """A [2] int32 seed for one loop's dropout, drawn before the loop (a
    random op outside any loop: the global seed fixes it)."""
    return tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)


@contextlib.contextmanager
def seeded_step(seed, time):
    """While a loop body is traced inside the block, `dropout` draws its
    masks from stateless ops keyed by `seed` ([2] int32 from `loop_seed`),
    the scalar step `time` and the order of the `dropout` calls. With
    `seed` None the block changes nothing."""
    if seed is None:
        yield
        return
    previous = getattr(_scope, "step", None)
    step_seed = tf.random.experimental.stateless_fold_in(seed, time)
    _scope.step = {"seed": step_seed, "calls": 0}
    try:
        yield
    finally:
        _scope.step = previous


def dropout(inputs, rate, seed=None):
    """Dropout of `inputs` with drop probability `rate` (kept values scaled
    by `1 / (1 - rate)`), stateless inside `seeded_step`; outside one it is
    `tf.nn.dropout` with the op seed `seed`."""
    step = getattr(_scope, "step", None)
    if step is None:
        return tf.nn.dropout(inputs, rate=rate, seed=seed)
    key = tf.random.experimental.stateless_fold_in(step["seed"], step["calls"])
    step["calls"] += 1
    return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=key)
