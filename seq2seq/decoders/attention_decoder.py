"""An RNN decoder that attends over the encoder outputs at every step."""

import tensorflow as tf

from seq2seq.decoders.attention import AttentionLayerBahdanau
from seq2seq.decoders.rnn_decoder import RNNDecoder


class AttentionDecoder(RNNDecoder):
    """RNN decoder with attention and input feeding.

    At each step, with `x` the embedded previous token and `c` the attention
    context of the previous step (zeros at the first step):

        h, cell_state = cell(concat(x, c), cell_state)
        scores, c = attention(query=h, keys, values, lengths)
        logits = Dense(V)(tanh(Dense(H)(concat(h, c))))

    where `H` is the cell's output size. The attention keys are the encoder
    `outputs` (projected once in `prepare_memory`), the values are its
    `attention_values` and the lengths its `attention_values_length`.

    State: `{"cell": cell state (structure of cell_state_size),
    "context": [B, Dv] previous attention context}`.
    Memory: `{"keys": [B, S, U] projected keys, "values": [B, S, Dv],
    "lengths": [B] int32}`.

    Args:
      params: Parameter overrides; see `RNNDecoder.default_params`.
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes.
      attention_layer: An `AttentionLayer` (the model builds it from
        `attention.class` / `attention.params`); by default an
        `AttentionLayerBahdanau` with 128 units.
      name: Keras layer name.
      cell: Optional ready-made Keras RNN cell.
    """

    has_attention = True

    def __init__(
        self,
        params,
        mode,
        vocab_size,
        attention_layer=None,
        name="attention_decoder",
        cell=None,
    ):
        super().__init__(params, mode, vocab_size, name=name, cell=cell)
        if attention_layer is None:
            attention_layer = AttentionLayerBahdanau({"num_units": 128}, mode)
        self.attention = attention_layer
        self.mix_layer = self._dense(
            self._cell_output_size(), "attention_mix", activation="tanh"
        )
        self.logits_layer = self._dense(self.vocab_size, "logits", dtype="float32")

    def _cell_output_size(self):
        size = getattr(self.cell, "output_size", None)
        if size is None:
            size = tf.nest.flatten(self.cell.state_size)[0]
        return int(size)

    def prepare_memory(self, encoder_output):
        """Projects the attention keys once.

        Args:
          encoder_output: An `EncoderOutput`: keys are `outputs` [B, S, D],
            values `attention_values` [B, S, Dv] (static Dv), lengths
            `attention_values_length` [B].

        Returns:
          `{"keys": [B, S, U], "values": [B, S, Dv], "lengths": [B] int32}`.
        """
        return {
            "keys": self.attention.project_keys(encoder_output.outputs),
            "values": tf.convert_to_tensor(encoder_output.attention_values),
            "lengths": tf.cast(encoder_output.attention_values_length, tf.int32),
        }

    def _make_state(self, memory, cell_state, batch_size):
        values = memory["values"]
        depth = values.shape[-1]
        if depth is None:
            raise ValueError("attention values need a static last dimension")
        context = tf.zeros([batch_size, depth], dtype=values.dtype)
        return {"cell": cell_state, "context": context}

    def _step_features(self, inputs, state, memory, training):
        dtype = self.cell.compute_dtype
        cell_inputs = tf.concat(
            [tf.cast(inputs, dtype), tf.cast(state["context"], dtype)], axis=-1
        )
        output, cell_state = self._run_cell(cell_inputs, state["cell"], training)
        scores, context = self.attention(
            output, memory["keys"], memory["values"], memory["lengths"]
        )
        features = tf.concat(
            [
                tf.cast(output, self.compute_dtype),
                tf.cast(context, self.compute_dtype),
            ],
            axis=-1,
        )
        context = tf.cast(context, state["context"].dtype)
        new_state = {"cell": cell_state, "context": context}
        return features, new_state, scores

    def _project(self, features):
        return self.logits_layer(self.mix_layer(features))
