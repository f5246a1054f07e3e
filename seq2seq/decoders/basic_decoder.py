"""A decoder that predicts the next token from the cell output alone."""

import tensorflow as tf

from seq2seq.configurable import is_training
from seq2seq.decoders.rnn_decoder import RNNDecoder
from seq2seq.layers.output_projection import OutputProjection


class BasicDecoder(RNNDecoder):
    """RNN decoder without attention: `logits = Dense(V)(cell_output)`.

    The encoder reaches it only through the initial cell state (a bridge).

    State: `{"cell": cell state in the structure of cell_state_size}`.
    Memory: `{"lengths": [B] int32}` (the source lengths, kept only so the
    batch size is known; no per-step work depends on the encoder).

    Args:
      params: Parameter overrides; see `RNNDecoder.default_params`.
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes.
      name: Keras layer name.
      cell: Optional ready-made Keras RNN cell.
    """

    def __init__(self, params, mode, vocab_size, name="basic_decoder", cell=None):
        super().__init__(params, mode, vocab_size, name=name, cell=cell)
        self.logits_layer = self._dense(
            self.vocab_size, "logits", layer_class=OutputProjection
        )

    def prepare_memory(self, encoder_output):
        lengths = getattr(encoder_output, "attention_values_length", None)
        if lengths is None:
            return {}
        return {"lengths": tf.cast(lengths, tf.int32)}

    def _make_state(self, memory, cell_state, batch_size):
        del memory, batch_size
        return {"cell": cell_state}

    def _step_features(self, inputs, state, memory, training):
        del memory
        inputs = tf.cast(inputs, self.cell.compute_dtype)
        output, cell_state = self._run_cell(inputs, state["cell"], training)
        return tf.cast(output, self.compute_dtype), {"cell": cell_state}, None

    def teacher_forced_features(self, inputs, state, memory, training=None):
        fused = self._fused_cell()
        if fused is None:
            return super().teacher_forced_features(inputs, state, memory, training)
        # The inputs do not depend on the outputs: the whole recurrence runs
        # with its input projection hoisted out of the loop.
        outputs, _ = fused.run(tf.convert_to_tensor(inputs), state["cell"], training)
        return tf.cast(outputs, self.compute_dtype), None

    def _project(self, features, training=None):
        return self.logits_layer(features, training=is_training(training, self.mode))

    def _hidden(self, features, training):
        del training
        return features
