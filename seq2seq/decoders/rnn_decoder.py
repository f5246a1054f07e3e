"""Base class of the RNN decoders.

A decoder here is one step of a recurrent network plus an output layer; it
does not decide how decoding proceeds. Every decoding strategy (teacher
forcing, greedy search, sampling, beam search; see
`seq2seq.inference.decoding`) drives the same four methods:

* `prepare_memory(encoder_output) -> memory`: whatever the decoder reads at
  every step, computed once per source batch (e.g. projected attention
  keys). A nest of tensors whose leaves all start with the batch dimension,
  so a strategy may tile or reorder it.
* `initial_state(memory, cell_state=None) -> state`: the decoder state
  before the first target token. `cell_state` (from a bridge) matches
  `cell_state_size`; the decoder state wraps it, e.g. with the previous
  attention context. Also a nest of batch-leading tensors.
* `step(inputs, state, memory) -> (logits, new_state, attention)`: one
  token in, a distribution over the next one out.
* `call(inputs, state, memory) -> (logits, attention)`: teacher forcing over
  a whole target sequence; the same numbers as calling `step` in a loop.
  With a `sampling_probability` (scheduled sampling, see
  `seq2seq.training.scheduled_sampling`), each input after the first is,
  with that probability, replaced by the embedding of the token the decoder
  itself predicted at the previous step.

Two more methods split `call` for the loss: `teacher_forced_features(inputs,
state, memory)` runs teacher forcing up to the output layers and
`project(features)` applies them, so that the model can project only the
unpadded positions (`seq2seq.losses.projected_sequence_loss`).
"""

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable
from seq2seq.rnn_cell import (
    FusedRecurrence,
    default_rnn_cell_params,
    get_rnn_cell,
    time_steps,
)
from seq2seq.training import scheduled_sampling


def zero_cell_state(state_size, batch_size, dtype=tf.float32):
    """Zeros shaped like a cell's state.

    Args:
      state_size: A cell's `state_size`: an int or a nest of ints.
      batch_size: Int or scalar int tensor.
      dtype: The dtype of the zeros.

    Returns:
      A nest with the structure of `state_size` of [B, n] zero tensors.
    """
    return tf.nest.map_structure(
        lambda size: tf.zeros([batch_size, size], dtype=dtype), state_size
    )


def _is_scalar(value):
    if isinstance(value, int):
        return True
    return tf.is_tensor(value) and value.shape.rank == 0


def batch_size_of(nest):
    """The batch size of the first tensor leaf of a nest ([B, ...] leaves).

    Raises:
      ValueError: The nest has no tensor leaf.
    """
    for leaf in tf.nest.flatten(nest):
        if leaf is not None:
            leaf = tf.convert_to_tensor(leaf)
            if leaf.shape.rank:
                static = leaf.shape[0]
                return static if static is not None else tf.shape(leaf)[0]
    raise ValueError("cannot infer the batch size: pass batch_size explicitly")


class RNNDecoder(Configurable, keras.layers.Layer):
    """Base class of decoders built on a recurrent cell.

    Subclasses implement `prepare_memory`, `_make_state`, `_step_features`
    and `_project`. The cell is made by `seq2seq.rnn_cell.get_rnn_cell` from
    the `rnn_cell` parameter (dropout is only active in `train` mode).

    Params:
      max_decode_length: Longest output of free-running decoding (100); read
        by the decoding strategies when no other limit is given.
      rnn_cell: The cell configuration (`cell_class`, `cell_params`,
        `num_layers`, dropout keep probabilities, residual options); see
        `seq2seq.rnn_cell.default_rnn_cell_params`.
      init_scale: The kernels of the cell and of the output layers start
        uniform in `[-init_scale, init_scale]` (0.04); biases keep their own
        initializers (zeros for the output layers). A value <= 0 keeps the
        Keras defaults.
      scheduled_sampling.*: Scheduled sampling during training: `type`
        (none, constant, linear, exponential, inverse_sigmoid),
        `probability`, `k`, `start_step`, `end_step`, `sampling` (sample or
        argmax); see `seq2seq.training.scheduled_sampling`. The default
        `type: none` is pure teacher forcing.

    Args:
      params: Parameter overrides (dict).
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes (logits per step).
      name: Keras layer name.
      cell: Optional ready-made Keras RNN cell used instead of the one
        described by `rnn_cell` (for tests or custom cells).

    Attributes:
      cell: The recurrent cell.
      vocab_size: Number of output classes.
      has_attention: Whether `step` returns attention scores.
      scheduled_sampling: The validated schedule (a dict, see
        `scheduled_sampling.schedule_config`).
    """

    has_attention = False

    def __init__(self, params, mode, vocab_size, name="decoder", cell=None):
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, params, mode)
        self.vocab_size = int(vocab_size)
        # Validated now so that a bad schedule fails before training starts;
        # kept out of Keras tracking (a plain dict of settings).
        object.__setattr__(
            self,
            "scheduled_sampling",
            scheduled_sampling.schedule_config(self.params, type(self).__name__),
        )
        self.cell = cell if cell is not None else self._create_cell()

    @staticmethod
    def default_params():
        params = {
            "max_decode_length": 100,
            "rnn_cell": default_rnn_cell_params(),
            "init_scale": 0.04,
        }
        params.update(scheduled_sampling.default_params())
        return params

    # ------------------------------------------------------------ building

    def _initializer(self):
        """The kernel initializer implied by `init_scale`, or None."""
        scale = self.params["init_scale"]
        if scale and scale > 0:
            return keras.initializers.RandomUniform(-scale, scale)
        return None

    def _dense(self, units, name, **kwargs):
        """A Dense layer initialized according to `init_scale`."""
        initializer = self._initializer()
        if initializer is not None:
            kwargs["kernel_initializer"] = initializer
        return keras.layers.Dense(units, name=name, **kwargs)

    def _create_cell(self):
        cell_config = dict(self.params["rnn_cell"])
        scale = self.params["init_scale"]
        init_scale = scale if scale and scale > 0 else None
        return get_rnn_cell(**cell_config, mode=self.mode, init_scale=init_scale)

    @property
    def cell_state_size(self):
        """The cell's `state_size` (an int or nest of ints): the structure a
        bridge must produce for `initial_state`."""
        return self.cell.state_size

    @property
    def max_decode_length(self):
        """The `max_decode_length` parameter."""
        return self.params["max_decode_length"]

    # ---------------------------------------------------------- interface

    def prepare_memory(self, encoder_output):
        """Computes what every step reads from the encoder, once per batch.

        Args:
          encoder_output: An `EncoderOutput` (`outputs` [B, S, D],
            `final_state`, `attention_values` [B, S, Dv],
            `attention_values_length` [B]).

        Returns:
          A dict of batch-leading tensors.
        """
        raise NotImplementedError

    def initial_state(self, memory, cell_state=None, batch_size=None):
        """The decoder state before the first target token.

        Args:
          memory: The result of `prepare_memory`.
          cell_state: Initial cell state, a nest matching `cell_state_size`
            (lists and tuples are interchangeable), e.g. from a bridge; zeros
            when None. A scalar here is taken as `batch_size`.
          batch_size: Batch size for zero cell states; inferred from
            `memory` when None.

        Returns:
          A dict of batch-leading tensors; its `"cell"` entry is the cell
          state in the structure of `cell_state_size`.
        """
        if cell_state is not None and _is_scalar(cell_state):
            batch_size, cell_state = cell_state, None
        dtype = self.cell.compute_dtype
        if cell_state is None:
            if batch_size is None:
                batch_size = batch_size_of(memory)
            cell_state = zero_cell_state(self.cell_state_size, batch_size, dtype)
        else:
            cell_state = self._pack_cell_state(cell_state)
            cell_state = tf.nest.map_structure(lambda t: tf.cast(t, dtype), cell_state)
            batch_size = batch_size_of(cell_state)
        return self._make_state(memory, cell_state, batch_size)

    def step(self, inputs, state, memory, training=None):
        """Runs one decoding step.

        Args:
          inputs: [B, E] embedded previous token.
          state: The decoder state (from `initial_state` or a previous step).
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.

        Returns:
          `(logits [B, V], new_state, attention [B, S] float32 or None)`.
        """
        features, new_state, attention = self._step_features(
            inputs, state, memory, training
        )
        return self._project(features), new_state, attention

    def call(
        self,
        inputs,
        state,
        memory,
        training=None,
        sampling_probability=None,
        embedding_fn=None,
        seed=None,
    ):
        """Teacher-forced decoding of whole target sequences.

        Equivalent to calling `step` on `inputs[:, t]` for t = 0, 1, ...
        and stacking; the recurrence runs in a `tf.while_loop`, so the number
        of steps may be dynamic inside `tf.function`, and the output layers
        run once on the whole sequence.

        With `sampling_probability` (scheduled sampling), the input of step
        `t > 0` is, independently for each sequence and step with that
        probability, the embedding of the decoder's own prediction at step
        `t - 1` (drawn from its distribution or its argmax, as
        `scheduled_sampling.sampling` says) instead of `inputs[:, t]`. The
        first input is always `inputs[:, 0]` (the start token). A
        probability of exactly 0 runs the plain teacher-forced loop, so it
        gives the same numbers as passing no probability.

        Args:
          inputs: [B, T, E] embedded target tokens.
          state: The decoder state from `initial_state`.
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.
          sampling_probability: Optional float scalar (tensor) in [0, 1]:
            the probability of feeding the model's own prediction. None
            (the default) is pure teacher forcing.
          embedding_fn: Maps [B] int32 ids to [B, E] embeddings; required
            with `sampling_probability`.
          seed: Optional [2] int tensor; the coin flips and draws are
            stateless functions of `(seed, t)`, so a step is reproducible
            and safe under `tf.function` and `tf.distribute`. Zeros if None.

        Returns:
          `(logits [B, T, V], attention [B, T, S] float32 or None)`.
        """
        if sampling_probability is None:
            return self._teacher_forced(inputs, state, memory, training)
        if embedding_fn is None:
            raise ValueError("scheduled sampling needs an embedding_fn")
        probability = tf.cast(sampling_probability, tf.float32)
        if seed is None:
            seed = tf.zeros([2], tf.int32)

        def sampled():
            return self._scheduled_sampling_loop(
                inputs, state, memory, training, probability, embedding_fn, seed
            )

        def forced():
            return self._teacher_forced(inputs, state, memory, training)

        if not self.has_attention:
            # tf.cond branches must return tensors only.
            logits = tf.cond(
                probability > 0.0, lambda: sampled()[0], lambda: forced()[0]
            )
            return logits, None
        return tf.cond(probability > 0.0, sampled, forced)

    def _teacher_forced(self, inputs, state, memory, training):
        """The teacher-forced loop of `call` (no scheduled sampling)."""
        features, attention = self.teacher_forced_features(
            inputs, state, memory, training=training
        )
        return self.project(features), attention

    def teacher_forced_features(self, inputs, state, memory, training=None):
        """Teacher forcing up to (not including) the output layers.

        `project(features)` gives the logits of `call` without scheduled
        sampling; a loss needs to project only the positions it counts
        (see `seq2seq.losses.projected_sequence_loss`).

        Args:
          inputs: [B, T, E] embedded target tokens.
          state: The decoder state from `initial_state`.
          memory: The result of `prepare_memory`.
          training: Whether dropout is active.

        Returns:
          `(features [B, T, F] in the compute dtype, attention [B, T, S]
          float32 or None)`.
        """
        return self._features_loop(
            inputs,
            state,
            lambda step_input, state: self._step_features(
                step_input, state, memory, training
            ),
        )

    def project(self, features):
        """Output layers: [..., F] features -> [..., V] logits (float32)."""
        return self._project(features)

    def _fused_cell(self):
        """A `FusedRecurrence` over the cell, or None when the cell is not
        one it can run (then the cell itself is stepped)."""
        return FusedRecurrence.create(self.cell)

    def _features_loop(self, inputs, state, step_fn):
        """Runs `step_fn` over the time axis of `inputs` in a `tf.while_loop`.

        Args:
          inputs: [B, T, X] per-step inputs of `step_fn`.
          state: The initial decoder state.
          step_fn: `(step_input [B, X], state) -> (features [B, F], new_state,
            attention [B, S] or None)`.

        Returns:
          `(features [B, T, F], attention [B, T, S] or None)`.
        """
        inputs = tf.convert_to_tensor(inputs)
        num_steps = tf.shape(inputs)[1]
        step_inputs = time_steps(inputs)
        # One TensorArray for the features and, for attention decoders, one
        # for the scores (an unwritten array would break gradients under XLA).
        arrays = [tf.TensorArray(self.compute_dtype, size=num_steps)]
        if self.has_attention:
            arrays.append(tf.TensorArray(tf.float32, size=num_steps))

        def body(time, state, arrays):
            features, new_state, attention = step_fn(step_inputs.read(time), state)
            outputs = [features] if attention is None else [features, attention]
            if len(outputs) != len(arrays):
                raise ValueError(
                    f"{type(self).__name__}.has_attention does not match what "
                    "_step_features returns"
                )
            arrays = [array.write(time, out) for array, out in zip(arrays, outputs)]
            return time + 1, new_state, arrays

        _, _, arrays = tf.while_loop(
            lambda time, *_: time < num_steps,
            body,
            (tf.constant(0), state, arrays),
            maximum_iterations=num_steps,
        )
        features = tf.transpose(arrays[0].stack(), [1, 0, 2])
        attention = None
        if self.has_attention:
            attention = tf.transpose(arrays[1].stack(), [1, 0, 2])
        return features, attention

    def _scheduled_sampling_loop(
        self, inputs, state, memory, training, probability, embedding_fn, seed
    ):
        """The scheduled-sampling loop of `call`: projects every step so that
        the next input can be the decoder's own prediction."""
        inputs = tf.convert_to_tensor(inputs)
        num_steps = tf.shape(inputs)[1]
        batch_size = tf.shape(inputs)[0]
        step_inputs = time_steps(inputs)
        arrays = [tf.TensorArray(tf.float32, size=num_steps)]
        if self.has_attention:
            arrays.append(tf.TensorArray(tf.float32, size=num_steps))
        argmax = self.scheduled_sampling["sampling"] == "argmax"

        def body(time, prev_logits, state, arrays):
            truth = step_inputs.read(time)
            coin_seed, draw_seed = scheduled_sampling.step_seeds(seed, time)
            coins = tf.random.stateless_uniform([batch_size], seed=coin_seed)
            feed_own = tf.logical_and(coins < probability, time > 0)
            # The choice of token carries no gradient.
            prev_logits = tf.stop_gradient(prev_logits)
            if argmax:
                ids = tf.argmax(prev_logits, axis=-1, output_type=tf.int32)
            else:
                ids = tf.random.stateless_categorical(
                    prev_logits, 1, seed=draw_seed, dtype=tf.int32
                )[:, 0]
            own = tf.cast(embedding_fn(ids), truth.dtype)
            step_input = tf.where(feed_own[:, None], own, truth)
            features, new_state, attention = self._step_features(
                step_input, state, memory, training
            )
            logits = tf.cast(self._project(features), tf.float32)
            outputs = [logits] if attention is None else [logits, attention]
            if len(outputs) != len(arrays):
                raise ValueError(
                    f"{type(self).__name__}.has_attention does not match what "
                    "_step_features returns"
                )
            arrays = [
                array.write(time, tf.cast(out, tf.float32))
                for array, out in zip(arrays, outputs)
            ]
            return time + 1, logits, new_state, arrays

        start_logits = tf.zeros([batch_size, self.vocab_size], tf.float32)
        _, _, _, arrays = tf.while_loop(
            lambda time, *_: time < num_steps,
            body,
            (tf.constant(0), start_logits, state, arrays),
            maximum_iterations=num_steps,
        )
        logits = tf.transpose(arrays[0].stack(), [1, 0, 2])
        attention = None
        if self.has_attention:
            attention = tf.transpose(arrays[1].stack(), [1, 0, 2])
        return logits, attention

    # --------------------------------------------------- subclass hooks

    def _make_state(self, memory, cell_state, batch_size):
        """Wraps an initial cell state into the decoder state."""
        raise NotImplementedError

    def _step_features(self, inputs, state, memory, training):
        """One recurrence step up to (not including) the output layers.

        Returns:
          `(features [B, F] in the compute dtype, new_state, attention [B, S]
          or None)`; `_project(features)` gives the logits.
        """
        raise NotImplementedError

    def _project(self, features):
        """Output layers: [..., F] features -> [..., V] logits (float32)."""
        raise NotImplementedError

    # ------------------------------------------------------------ helpers

    def _pack_cell_state(self, cell_state):
        """Puts a cell state in the structure of `cell_state_size`."""
        return tf.nest.pack_sequence_as(
            self.cell_state_size, tf.nest.flatten(cell_state)
        )

    def _run_cell(self, cell_inputs, cell_state, training):
        """Calls the cell; returns `(output [B, H], new cell state)` with the
        state in the structure of `cell_state_size`."""
        output, new_state = self.cell(cell_inputs, cell_state, training=training)
        return output, self._pack_cell_state(new_state)
