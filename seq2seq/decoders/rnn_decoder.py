"""Base class of the RNN decoders.

An RNN decoder is a `Decoder` (`seq2seq.decoders.decoder`) whose step is one
step of a recurrent cell followed by output layers. Subclasses split the
step in two: `_step_features` runs the cell (and attention) up to the
output layers and `_project` applies them, so that teacher forcing
(`teacher_forced_features`) can run the recurrence over the whole target
and the model can project only the unpadded positions
(`seq2seq.losses.projected_sequence_loss`). The subclasses override
`teacher_forced_features` with fused recurrences where the cell allows it;
tests check those against stepping.
"""

import functools

import keras
import tensorflow as tf

from seq2seq.decoders.decoder import Decoder, batch_size_of, is_scalar
from seq2seq.rnn_cell import FusedRecurrence, default_rnn_cell_params, get_rnn_cell

__all__ = ["RNNDecoder", "batch_size_of", "zero_cell_state"]


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


class RNNDecoder(Decoder):
    """Base class of decoders built on a recurrent cell.

    Subclasses implement `prepare_memory`, `_make_state`, `_step_features`
    and `_project`. The cell is made by `seq2seq.rnn_cell.get_rnn_cell` from
    the `rnn_cell` parameter (dropout is only active in `train` mode).

    Params (besides `Decoder.default_params`: `max_decode_length`,
    `scheduled_sampling.*`):
      rnn_cell: The cell configuration (`cell_class`, `cell_params`,
        `num_layers`, dropout keep probabilities, residual options); see
        `seq2seq.rnn_cell.default_rnn_cell_params`.
      init_scale: The kernels of the cell and of the output layers start
        uniform in `[-init_scale, init_scale]` (0.04); biases keep their own
        initializers (zeros for the output layers). A value <= 0 keeps the
        Keras defaults.

    Args:
      params: Parameter overrides (dict).
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes (logits per step).
      name: Keras layer name.
      cell: Optional ready-made Keras RNN cell used instead of the one
        described by `rnn_cell` (for tests or custom cells).

    Attributes:
      cell: The recurrent cell.
    """

    def __init__(self, params, mode, vocab_size, name="decoder", cell=None):
        super().__init__(params, mode, vocab_size, name=name)
        self.cell = cell if cell is not None else self._create_cell()

    @staticmethod
    def default_params():
        params = Decoder.default_params()
        params.update({"rnn_cell": default_rnn_cell_params(), "init_scale": 0.04})
        return params

    # ------------------------------------------------------------ building

    def _initializer(self):
        """The kernel initializer implied by `init_scale`, or None."""
        scale = self.params["init_scale"]
        if scale and scale > 0:
            return keras.initializers.RandomUniform(-scale, scale)
        return None

    def _dense(self, units, name, layer_class=keras.layers.Dense, **kwargs):
        """A Dense layer (or subclass) initialized according to `init_scale`."""
        initializer = self._initializer()
        if initializer is not None:
            kwargs["kernel_initializer"] = initializer
        return layer_class(units, name=name, **kwargs)

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

    # ---------------------------------------------------------- interface

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
        if cell_state is not None and is_scalar(cell_state):
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
        """`_project` of `_step_features`; see `Decoder.step`."""
        features, new_state, attention = self._step_features(
            inputs, state, memory, training
        )
        return self._project(features, training), new_state, attention

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
            training,
        )

    def project(self, features, training=None):
        """Output layers: [..., F] features -> [..., V] logits (float32);
        `training` says whether their dropout (if any) is active."""
        return self._project(features, training)

    def fused_output(self, training=None):
        hidden_fn = functools.partial(self._hidden, training=True)
        return self._fused_logits_layer(hidden_fn, training)

    def _fused_cell(self):
        """A `FusedRecurrence` over the cell, or None when the cell is not
        one it can run (then the cell itself is stepped)."""
        return FusedRecurrence.create(self.cell)

    def _features_loop(self, inputs, state, step_fn, training=None):
        """Runs `step_fn` over the time axis of `inputs` in a `tf.while_loop`.

        Args:
          inputs: [B, T, X] per-step inputs of `step_fn`.
          state: The initial decoder state.
          step_fn: `(step_input [B, X], state) -> (features [B, F], new_state,
            attention [B, S] or None)`.
          training: Whether dropout is active (see `run_steps`).

        Returns:
          `(features [B, T, F] in the compute dtype, attention [B, T, S] or
          None)`.
        """
        return self.run_steps(
            inputs,
            state,
            lambda step_input, state, time: step_fn(step_input, state),
            dtype=self.compute_dtype,
            training=training,
        )

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

    def _project(self, features, training=None):
        """Output layers: [..., F] features -> [..., V] logits (float32)."""
        raise NotImplementedError

    def _hidden(self, features, training):
        """The output layers before `logits_layer`: [..., F] -> [..., H], so
        that `_project(x) == logits_layer(_hidden(x))`; `training` is a
        Python bool (`is_training` already applied)."""
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
