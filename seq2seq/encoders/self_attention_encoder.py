"""A self-attention (Transformer) encoder and the layers it shares with the
self-attention decoder.

The encoder is the pre-norm variant of the Transformer encoder
(https://arxiv.org/abs/1706.03762, with layer normalization before each
sub-layer as in https://arxiv.org/abs/2002.04745): every layer is

    x = x + Dropout(SelfAttention(LayerNorm(x), padding mask))
    x = x + Dropout(FeedForward(LayerNorm(x)))

and a final LayerNorm follows the last layer. Before the first layer the
inputs are projected to `num_units` (only when the embedding size differs),
scaled by `sqrt(num_units)` and added to position encodings.

The building blocks (`MultiHeadAttention`, `FeedForward`,
`PositionEncoding`, `sinusoidal_position_encoding`, ...) live in
`seq2seq.layers.transformer`, shared with the self-attention decoder; they
stay importable from here.
"""

import tensorflow as tf

from seq2seq.configurable import is_training
from seq2seq.encoders.encoder import Encoder, EncoderOutput
from seq2seq.layers.composite import CompositeLayer
from seq2seq.layers.transformer import (  # noqa: F401  (re-exported)
    MASKED_SCORE,
    POSITION_ENCODINGS,
    FeedForward,
    MultiHeadAttention,
    PositionEncoding,
    TransformerInputs,
    check_transformer_params,
    dropout,
    ffn_units,
    layer_norm,
    position_wise,
    sinusoidal_position_encoding,
    transformer_params,
)

__all__ = [
    "FeedForward",
    "MultiHeadAttention",
    "PositionEncoding",
    "SelfAttentionEncoder",
    "sinusoidal_position_encoding",
    "transformer_params",
]


class _EncoderLayer(CompositeLayer):
    """One pre-norm encoder layer: self-attention and feed-forward."""

    def __init__(self, params, name):
        super().__init__(name=name)
        units = params["num_units"]
        self.dropout_rate = params["dropout"]
        self.attention_norm = layer_norm("attention_norm")
        self.attention = MultiHeadAttention(
            units, params["num_heads"], params["attention_dropout"], "self_attention"
        )
        self.ffn_norm = layer_norm("ffn_norm")
        self.ffn = FeedForward(units, ffn_units(params))

    def call(self, inputs, attention_mask, training=False):
        normed = self.attention_norm(inputs)
        attended, _ = self.attention.attend(
            normed,
            *self.attention.project_key_values(normed),
            attention_mask,
            training=training,
        )
        inputs = inputs + dropout(attended, self.dropout_rate, training)
        transformed = self.ffn(self.ffn_norm(inputs))
        return inputs + dropout(transformed, self.dropout_rate, training)


class SelfAttentionEncoder(Encoder):
    """Pre-norm Transformer encoder.

    Padded positions are masked as keys (no position attends to them) and
    their outputs are exactly zero, so a sequence's result does not depend on
    how much padding its batch has.

    Params:
      num_layers: Number of layers (2).
      num_units: Model size `D` (256); must be a multiple of `num_heads`.
        Inputs of another size go through a learned projection (no bias).
      num_heads: Attention heads (4).
      ffn_units: Hidden size of the feed-forward sub-layers; 0 (default)
        means `4 * num_units`.
      dropout: Dropout on the scaled inputs and on every sub-layer output
        before its residual sum (0.1).
      attention_dropout: Dropout on the attention weights (0.1).
      position_encoding: `sinusoidal` (fixed, default) or `learned`.
      max_positions: Rows of a learned position table (512); later
        positions reuse the last row.
      scale_inputs: Multiply the inputs by `sqrt(num_units)` before adding
        the position encodings (true).

    Dropout is only active in mode `train` when called with `training=True`.

    Returns (from `call`): `EncoderOutput(outputs [B, S, D], final_state
    [B, D] = mean of the valid outputs, attention_values = outputs,
    attention_values_length = sequence_length)`.

    Args:
      params: Parameter overrides.
      mode: `train`, `eval` or `infer`.
      name: Keras layer name.
    """

    def __init__(self, params, mode, name="self_attention_encoder"):
        super().__init__(params, mode, name=name)
        check_transformer_params(self.params, type(self).__name__)
        self.inputs_layer = TransformerInputs(self.params)
        for index in range(self.params["num_layers"]):
            setattr(
                self, f"layer_{index}", _EncoderLayer(self.params, f"layer_{index}")
            )
        self.final_norm = layer_norm("final_norm")

    @staticmethod
    def default_params():
        return transformer_params()

    @property
    def encoder_layers(self):
        """The encoder layers, bottom first."""
        return [getattr(self, f"layer_{i}") for i in range(self.params["num_layers"])]

    @property
    def output_size(self):
        """`D`, the size of the outputs and of the final state."""
        return self.params["num_units"]

    def call(self, inputs, sequence_length=None, training=None):
        training = is_training(training, self.mode)
        inputs = tf.convert_to_tensor(inputs)
        steps = tf.shape(inputs)[1]
        if sequence_length is None:
            sequence_length = tf.fill([tf.shape(inputs)[0]], steps)
        sequence_length = tf.cast(sequence_length, tf.int32)
        valid = tf.sequence_mask(sequence_length, steps)  # [B, S]

        outputs = self.inputs_layer(inputs, tf.range(steps)[None, :])
        outputs = dropout(outputs, self.params["dropout"], training)
        attention_mask = valid[:, None, None, :]
        for layer in self.encoder_layers:
            outputs = layer(outputs, attention_mask, training=training)
        outputs = self.final_norm(outputs)
        outputs *= tf.cast(valid, outputs.dtype)[:, :, None]

        count = tf.cast(tf.maximum(sequence_length, 1), outputs.dtype)
        final_state = tf.reduce_sum(outputs, axis=1) / count[:, None]
        return EncoderOutput(
            outputs=outputs,
            final_state=final_state,
            attention_values=outputs,
            attention_values_length=sequence_length,
        )
