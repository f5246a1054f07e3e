"""Recurrent encoders: one direction, both directions, stacked both directions.

All three read `[B, S, E]` embeddings with `[B]` lengths and respect the
lengths exactly: positions at or after a sequence's length produce zero
outputs and do not change its final state, and the backward direction reads
each sequence from its own last valid position (not from the padding).

State structure: the cells come from `seq2seq.rnn.get_rnn_cell`, so a
direction's final state is a list with one list of `[B, H]` tensors per
layer (`[[h]]` for one GRU layer, `[[h, c], [h, c]]` for two LSTM layers).
The bidirectional encoders return `(forward_state, backward_state)`.
"""

import keras
import tensorflow as tf
from absl import logging

from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.rnn import (
    FusedRecurrence,
    default_rnn_cell_params,
    get_rnn_cell,
    run_cell,
    run_together,
)

__all__ = [
    "BidirectionalRNNEncoder",
    "StackBidirectionalRNNEncoder",
    "UnidirectionalRNNEncoder",
]


def _rnn_params():
    return {"rnn_cell": default_rnn_cell_params(), "init_scale": 0.04}


def _mask(inputs, sequence_length):
    """[B, S] bool mask of the valid positions."""
    return tf.sequence_mask(sequence_length, maxlen=tf.shape(inputs)[1])


def _lengths(inputs, sequence_length):
    if sequence_length is None:
        batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
        return tf.fill([batch], steps)
    return tf.cast(sequence_length, tf.int32)


def _reverse(values, sequence_length):
    """Reverses each [B, S, ...] sequence within its own length."""
    return tf.reverse_sequence(values, sequence_length, seq_axis=1, batch_axis=0)


class _RNNEncoderBase(Encoder):
    """Shared construction: cells from the `rnn_cell` params."""

    @staticmethod
    def default_params():
        return _rnn_params()

    def _cell_config(self, **overrides):
        config = dict(self.params["rnn_cell"])
        config.update(overrides)
        scale = self.params["init_scale"]
        return get_rnn_cell(
            **config, mode=self.mode, init_scale=scale if scale > 0 else None
        )

    @staticmethod
    def _make_rnn(cell, name):
        return keras.layers.RNN(
            cell,
            return_sequences=True,
            return_state=True,
            zero_output_for_mask=True,
            name=name,
        )

    @staticmethod
    def _run_fused(rnns, fused, inputs, mask, training):
        """Runs the cells of `rnns` from their zero states in one loop.

        Same cells and variables as the `keras.layers.RNN`s, with the
        first-layer input projection hoisted out of the loop (see
        `FusedRecurrence` and `run_together`).

        Args:
          rnns: `keras.layers.RNN`s (built here if needed).
          fused: Their cells' `FusedRecurrence`s.
          inputs: One [B, S, E] tensor per RNN.
          mask: [B, S] bool mask shared by all.
          training: Whether dropout is active.

        Returns:
          `(outputs, states)`: one [B, S, H] tensor and one final state (a
          list) per RNN.
        """
        for rnn, values in zip(rnns, inputs):
            if not rnn.built:
                rnn.build(values.shape)
        batch_size = tf.shape(inputs[0])[0]
        initial = [rnn.cell.get_initial_state(batch_size=batch_size) for rnn in rnns]
        outputs, states = run_together(fused, inputs, initial, training, mask)
        return outputs, [list(state) for state in states]

    @classmethod
    def _run(cls, rnn, inputs, mask, training, backward=False, lengths=None):
        """Runs one direction; returns `(outputs [B, S, H], final_state)`."""
        if backward:
            inputs = _reverse(inputs, lengths)
        fused = FusedRecurrence.create(rnn.cell)
        if fused is not None:
            (outputs,), (state,) = cls._run_fused(
                [rnn], [fused], [inputs], mask, training
            )
        else:
            # Stepped here rather than by the `keras.layers.RNN`, whose loop
            # would draw the cell's dropout in whatever order its iterations
            # run.
            if not rnn.built:
                rnn.build(inputs.shape)
            initial = rnn.cell.get_initial_state(batch_size=tf.shape(inputs)[0])
            outputs, state = run_cell(rnn.cell, inputs, initial, training, mask)
            state = list(state)
        if backward:
            outputs = _reverse(outputs, lengths)
        return outputs, state

    @classmethod
    def _run_both(cls, rnn_fw, rnn_bw, inputs, mask, training, lengths):
        """Runs a forward and a backward RNN over the same inputs; returns
        `(out_fw, state_fw, out_bw, state_bw)`, outputs [B, S, H] each.

        Fusable cells run in one loop (`run_together`); others one by one.
        """
        fused = [FusedRecurrence.create(rnn.cell) for rnn in (rnn_fw, rnn_bw)]
        if None in fused:
            out_fw, state_fw = cls._run(rnn_fw, inputs, mask, training)
            out_bw, state_bw = cls._run(
                rnn_bw, inputs, mask, training, backward=True, lengths=lengths
            )
            return out_fw, state_fw, out_bw, state_bw
        # Reversed within each length, the padding stays on the right: both
        # directions share the mask.
        (out_fw, out_bw), (state_fw, state_bw) = cls._run_fused(
            [rnn_fw, rnn_bw],
            fused,
            [inputs, _reverse(inputs, lengths)],
            mask,
            training,
        )
        return out_fw, state_fw, _reverse(out_bw, lengths), state_bw


class UnidirectionalRNNEncoder(_RNNEncoderBase):
    """Runs one (possibly multi-layer) RNN over the sequence, left to right.

    Params:
      rnn_cell: The cell block (see `seq2seq.rnn.get_rnn_cell`);
        default a one-layer 128-unit `BasicLSTMCell`.
      init_scale: Kernels start uniform in `[-init_scale, init_scale]`
        (0.04; 0 keeps the Keras initializers).

    Output: `outputs` [B, S, H] (H the cell's output size), `final_state`
    the cell state at each sequence's last valid position,
    `attention_values` = `outputs`, `attention_values_length` = the lengths.
    """

    def __init__(self, params, mode, name="forward_rnn_encoder"):
        super().__init__(params, mode, name)
        self.cell = self._cell_config()
        self.rnn = self._make_rnn(self.cell, "forward_rnn")

    def call(self, inputs, sequence_length, training=None):
        lengths = _lengths(inputs, sequence_length)
        mask = _mask(inputs, lengths)
        outputs, state = self._run(self.rnn, inputs, mask, training)
        return EncoderOutput(
            outputs=outputs,
            final_state=state,
            attention_values=outputs,
            attention_values_length=lengths,
        )


class BidirectionalRNNEncoder(_RNNEncoderBase):
    """A forward and a backward RNN (same configuration, separate weights).

    Params: as `UnidirectionalRNNEncoder`.

    Output: `outputs` [B, S, 2H] the forward and backward outputs
    concatenated, `final_state` = `(forward_state, backward_state)` (the
    backward state is the one after reading each sequence back to its first
    position), `attention_values` = `outputs`.
    """

    def __init__(self, params, mode, name="bidi_rnn_encoder"):
        super().__init__(params, mode, name)
        self.cell_fw = self._cell_config()
        self.cell_bw = self._cell_config()
        self.rnn_fw = self._make_rnn(self.cell_fw, "forward_rnn")
        self.rnn_bw = self._make_rnn(self.cell_bw, "backward_rnn")

    def call(self, inputs, sequence_length, training=None):
        lengths = _lengths(inputs, sequence_length)
        mask = _mask(inputs, lengths)
        out_fw, state_fw, out_bw, state_bw = self._run_both(
            self.rnn_fw, self.rnn_bw, inputs, mask, training, lengths
        )
        outputs = tf.concat([out_fw, out_bw], axis=-1)
        return EncoderOutput(
            outputs=outputs,
            final_state=(state_fw, state_bw),
            attention_values=outputs,
            attention_values_length=lengths,
        )


class StackBidirectionalRNNEncoder(_RNNEncoderBase):
    """Bidirectional layers stacked: each layer reads both directions of the
    layer below (concatenated), as TF1's `stack_bidirectional_dynamic_rnn`.

    Params: as `UnidirectionalRNNEncoder`; `rnn_cell.num_layers` is the
    number of bidirectional layers. Each direction of each layer is one cell
    with the configured dropout. Residual connections do not apply between
    bidirectional layers (the original ignored them too).

    Output: `outputs` [B, S, 2H] of the top layer, `final_state` =
    `(forward_states, backward_states)`, each a list with one entry per
    layer (the layer's `[h]` or `[h, c]`), i.e. the same structure as the
    state of a `num_layers`-layer cell.
    """

    def __init__(self, params, mode, name="stacked_bidi_rnn_encoder"):
        super().__init__(params, mode, name)
        cell_config = self.params["rnn_cell"]
        if cell_config["residual_connections"]:
            logging.warning(
                "StackBidirectionalRNNEncoder ignores rnn_cell.residual_connections."
            )
        num_layers = int(cell_config["num_layers"])
        if num_layers < 1:
            # Let get_rnn_cell produce the error message.
            self._cell_config()
        single = {"num_layers": 1, "residual_connections": False}
        # One attribute per layer and direction: tf.train.Checkpoint does not
        # follow the lists Keras 3 layers keep.
        self._num_layers = num_layers
        for i in range(num_layers):
            setattr(
                self,
                f"rnn_fw_{i}",
                self._make_rnn(self._cell_config(**single), f"forward_rnn_{i}"),
            )
            setattr(
                self,
                f"rnn_bw_{i}",
                self._make_rnn(self._cell_config(**single), f"backward_rnn_{i}"),
            )

    @property
    def rnns_fw(self):
        """The forward `keras.layers.RNN` of each layer."""
        return [getattr(self, f"rnn_fw_{i}") for i in range(self._num_layers)]

    @property
    def rnns_bw(self):
        """The backward `keras.layers.RNN` of each layer."""
        return [getattr(self, f"rnn_bw_{i}") for i in range(self._num_layers)]

    def call(self, inputs, sequence_length, training=None):
        lengths = _lengths(inputs, sequence_length)
        mask = _mask(inputs, lengths)
        states_fw, states_bw = [], []
        layer_inputs = inputs
        for rnn_fw, rnn_bw in zip(self.rnns_fw, self.rnns_bw):
            out_fw, state_fw, out_bw, state_bw = self._run_both(
                rnn_fw, rnn_bw, layer_inputs, mask, training, lengths
            )
            # Each single-layer cell's state is [layer_state]; unwrap it.
            states_fw.append(state_fw[0])
            states_bw.append(state_bw[0])
            layer_inputs = tf.concat([out_fw, out_bw], axis=-1)
        return EncoderOutput(
            outputs=layer_inputs,
            final_state=(states_fw, states_bw),
            attention_values=layer_inputs,
            attention_values_length=lengths,
        )
