"""A self-attention (Transformer) decoder behind the one-step interface.

Every layer is pre-norm:

    x = x + Dropout(CausalSelfAttention(LayerNorm(x)))
    x = x + Dropout(CrossAttention(LayerNorm(x), memory))
    x = x + Dropout(FeedForward(LayerNorm(x)))

followed by a final LayerNorm and a dense layer to the vocabulary. The
embedded target tokens are projected to `num_units` if needed, scaled by
`sqrt(num_units)` and added to the position encodings of their positions.

The decoder is a `Decoder` (`seq2seq.decoders.decoder`), so it plugs into
the same decoding strategies and training passes as the RNN decoders:

* `prepare_memory(encoder_output)` projects the source once: the cross-
  attention keys and values of every layer.
* `initial_state(memory)` is an empty key/value cache of fixed size.
* `step(inputs, state, memory)` reads one token, writes its keys and values
  into the cache at its position and returns the next distribution.
* `teacher_forced_features(inputs, state, memory)` runs a whole target
  sequence in one pass with a causal mask (training) up to the output
  layer, `project` applies it; together they give the same numbers as
  stepping. Scheduled sampling steps over `step` with a cache as long as
  the target.

Cache layout (the decoder state): `{"step": [B] int32, "layer_<i>":
{"keys": [B, H, L, D / H], "values": [B, H, L, D / H]}}` with `L` the
cache length (`max_decode_length` unless `initial_state` is told
otherwise). Every leaf starts with the batch dimension, so beam search tiles
and reorders the cache like any other state; the shapes never change, so
the decoding loops need no shape invariants and the step compiles with XLA.
Position `t` of each row is written with a `tf.where` over a one-hot
position mask, and the self-attention of a step masks the positions after
its own.
"""

import tensorflow as tf
from absl import logging

from seq2seq.configurable import is_training
from seq2seq.decoders.decoder import Decoder, batch_size_of, is_scalar
from seq2seq.errors import ConfigError
from seq2seq.layers.composite import CompositeLayer
from seq2seq.layers.output_projection import OutputProjection
from seq2seq.layers.transformer import (
    FeedForward,
    MultiHeadAttention,
    TransformerInputs,
    check_transformer_params,
    dropout,
    ffn_units,
    layer_norm,
    transformer_params,
)

__all__ = ["SelfAttentionDecoder"]


class _DecoderLayer(CompositeLayer):
    """One pre-norm decoder layer: causal self-attention, cross-attention
    over the memory, feed-forward."""

    def __init__(self, params, name):
        super().__init__(name=name)
        units, heads = params["num_units"], params["num_heads"]
        rate = params["attention_dropout"]
        self.dropout_rate = params["dropout"]
        self.self_attention_norm = layer_norm("self_attention_norm")
        self.self_attention = MultiHeadAttention(units, heads, rate, "self_attention")
        self.cross_attention_norm = layer_norm("cross_attention_norm")
        self.cross_attention = MultiHeadAttention(units, heads, rate, "cross_attention")
        self.ffn_norm = layer_norm("ffn_norm")
        self.ffn = FeedForward(units, ffn_units(params))

    def run(self, inputs, self_mask, memory, training, cache=None, write=None):
        """The layer over queries `inputs` [B, T, D].

        Args:
          inputs: [B, T, D] layer inputs.
          self_mask: Bool, broadcastable to [B, H, T, T'] (T' = T for a
            whole sequence, the cache length `L` for a step).
          memory: `{"keys", "values"}` [B, H, S, D / H] cross-attention
            projections and `"mask"` broadcastable to [B, H, T, S].
          training: Whether dropout is active.
          cache: None for a whole sequence; for a step (T = 1), this layer's
            `{"keys", "values"}` [B, H, L, D / H] cache.
          write: With `cache`, bool [B, 1, L, 1]: the slot of each row that
            takes the new token's keys and values.

        Returns:
          `(outputs [B, T, D], cross-attention weights [B, H, T, S] float32,
          {"keys", "values"})` where the last are the self-attention keys
          and values used ([B, H, T, D / H], or the updated cache).
        """
        normed = self.self_attention_norm(inputs)
        keys, values = self.self_attention.project_key_values(normed)
        if cache is not None:
            keys = tf.where(write, keys, cache["keys"])
            values = tf.where(write, values, cache["values"])
        attended, _ = self.self_attention.attend(
            normed, keys, values, self_mask, training
        )
        inputs = inputs + dropout(attended, self.dropout_rate, training)
        attended, weights = self.cross_attention.attend(
            self.cross_attention_norm(inputs),
            memory["keys"],
            memory["values"],
            memory["mask"],
            training,
        )
        inputs = inputs + dropout(attended, self.dropout_rate, training)
        transformed = self.ffn(self.ffn_norm(inputs))
        outputs = inputs + dropout(transformed, self.dropout_rate, training)
        return outputs, weights, {"keys": keys, "values": values}

    def call(self, inputs):
        raise NotImplementedError("use run()")


def _checked_position(position, cache_length):
    """`position` [B], with a run-time check that it fits in the cache."""
    check = tf.debugging.assert_less(
        position,
        tf.cast(cache_length, position.dtype),
        message=(
            "SelfAttentionDecoder: decoding went past the key/value cache "
            "(decoder.params.max_decode_length); set it >= "
            "inference.max_decode_length, or use model: Transformer, which "
            "sizes the cache to the decode limit"
        ),
    )
    with tf.control_dependencies([check] if check is not None else []):
        return tf.identity(position)


class SelfAttentionDecoder(Decoder):
    """Pre-norm Transformer decoder with a key/value cache as its state.

    Params: those of `SelfAttentionEncoder` (`num_layers` 2, `num_units`
    256, `num_heads` 4, `ffn_units` 0 = `4 * num_units`, `dropout` 0.1,
    `attention_dropout` 0.1, `position_encoding` `sinusoidal` | `learned`,
    `max_positions` 512, `scale_inputs` true) and
      max_decode_length: Longest free-running output (100), and the default
        length of the key/value cache.
      scheduled_sampling.*: As for every `Decoder` (default: none).

    The cross-attention reads the encoder's `attention_values` (any width:
    they are projected) masked by `attention_values_length`, so any encoder
    works. The state does not take a bridge's cell state: use
    `bridge.class: ZeroBridge` (the `Transformer` model does); a cell state
    given to `initial_state` is ignored. `cell_state_size` is `num_units`.

    Args:
      params: Parameter overrides.
      mode: `train`, `eval` or `infer`.
      vocab_size: Number of output classes.
      attention_layer: Accepted for `AttentionSeq2Seq` and ignored: the
        decoder has its own multi-head cross-attention (`attention.class` is
        unused).
      name: Keras layer name.

    Attributes:
      vocab_size: Number of output classes.
      has_attention: True; `step` returns the last layer's cross-attention
        weights averaged over the heads.
    """

    has_attention = True

    def __init__(
        self,
        params,
        mode,
        vocab_size,
        attention_layer=None,
        name="self_attention_decoder",
    ):
        super().__init__(params, mode, vocab_size, name=name)
        check_transformer_params(self.params, type(self).__name__)
        if self.params["max_decode_length"] < 1:
            raise ConfigError(
                "SelfAttentionDecoder: max_decode_length must be >= 1, got "
                f"{self.params['max_decode_length']}."
            )
        if attention_layer is not None:
            logging.info(
                "SelfAttentionDecoder has its own multi-head cross-attention; "
                "the attention layer %s (attention.class) is not used.",
                type(attention_layer).__name__,
            )
        self.inputs_layer = TransformerInputs(self.params)
        for index in range(self.params["num_layers"]):
            setattr(
                self, f"layer_{index}", _DecoderLayer(self.params, f"layer_{index}")
            )
        self.final_norm = layer_norm("final_norm")
        self.logits_layer = OutputProjection(self.vocab_size, name="logits")

    @staticmethod
    def default_params():
        params = transformer_params()
        params.update(Decoder.default_params())
        return params

    # ------------------------------------------------------------ properties

    @property
    def decoder_layers(self):
        """The decoder layers, bottom first."""
        return [getattr(self, f"layer_{i}") for i in range(self.params["num_layers"])]

    @property
    def cell_state_size(self):
        """`num_units`: what a bridge may build; `initial_state` ignores it."""
        return self.params["num_units"]

    # ------------------------------------------------------------- interface

    def prepare_memory(self, encoder_output):
        """Projects the cross-attention keys and values of every layer once.

        Args:
          encoder_output: An `EncoderOutput`; reads `attention_values`
            [B, S, Dv] and `attention_values_length` [B].

        Returns:
          `{"values": [B, S, Dv], "lengths": [B] int32, "layer_<i>":
          {"keys": [B, H, S, D / H], "values": [B, H, S, D / H]}}`.
        """
        values = tf.convert_to_tensor(encoder_output.attention_values)
        lengths = encoder_output.attention_values_length
        if lengths is None:
            lengths = tf.fill([tf.shape(values)[0]], tf.shape(values)[1])
        memory = {"values": values, "lengths": tf.cast(lengths, tf.int32)}
        source = tf.cast(values, self.compute_dtype)
        for index, layer in enumerate(self.decoder_layers):
            keys, projected = layer.cross_attention.project_key_values(source)
            memory[f"layer_{index}"] = {"keys": keys, "values": projected}
        return memory

    def initial_state(self, memory, cell_state=None, batch_size=None, max_length=None):
        """An empty key/value cache.

        Args:
          memory: The result of `prepare_memory`.
          cell_state: Ignored (a bridge's output; a scalar is taken as
            `batch_size`, as for the RNN decoders).
          batch_size: Inferred from `memory` when None.
          max_length: Cache length `L` (Python int or scalar tensor): the
            most steps that can be decoded from this state;
            `max_decode_length` when None.

        Returns:
          `{"step": [B] int32 zeros, "layer_<i>": {"keys": [B, H, L, D/H],
          "values": [B, H, L, D/H]}}` (zeros in the compute dtype).
        """
        if cell_state is not None and is_scalar(cell_state):
            batch_size = cell_state
        if batch_size is None:
            batch_size = batch_size_of(memory["lengths"])
        length = max_length if max_length is not None else self.max_decode_length
        heads = self.params["num_heads"]
        shape = [batch_size, heads, length, self.params["num_units"] // heads]
        state = {"step": tf.zeros([batch_size], tf.int32)}
        for index in range(self.params["num_layers"]):
            state[f"layer_{index}"] = {
                "keys": tf.zeros(shape, self.compute_dtype),
                "values": tf.zeros(shape, self.compute_dtype),
            }
        return state

    def step(self, inputs, state, memory, training=None):
        """Decodes one token per row.

        Args:
          inputs: [B, E] embedded previous token.
          state: The cache from `initial_state` or a previous step; row `b`
            is at position `state["step"][b]` (< the cache length).
          memory: The result of `prepare_memory`.
          training: Whether dropout is active (also needs mode `train`).

        Returns:
          `(logits [B, V] float32, new_state, attention [B, S] float32)`,
          the attention being the last layer's cross-attention averaged over
          the heads.
        """
        training = is_training(training, self.mode)
        position = state["step"]  # [B]
        outputs = self.inputs_layer(
            tf.convert_to_tensor(inputs)[:, None, :], position[:, None]
        )
        outputs = dropout(outputs, self.params["dropout"], training)

        cache_length = state["layer_0"]["keys"].shape[2]
        if cache_length is None:
            cache_length = tf.shape(state["layer_0"]["keys"])[2]
        # A step past the cache would silently lose its keys and values.
        position = _checked_position(position, cache_length)
        slots = tf.range(cache_length)[None, :]
        write = tf.equal(slots, position[:, None])[:, None, :, None]  # [B,1,L,1]
        self_mask = tf.less_equal(slots, position[:, None])[:, None, None, :]
        cross_mask = self._memory_mask(memory)

        new_state = {"step": position + 1}
        weights = None
        for index, layer in enumerate(self.decoder_layers):
            outputs, weights, new_state[f"layer_{index}"] = layer.run(
                outputs,
                self_mask,
                self._layer_memory(memory, index, cross_mask),
                training,
                cache=state[f"layer_{index}"],
                write=write,
            )
        # Projected as [B, D]: a Dense on [B, 1, D] is a Tensordot whose
        # gradient inside a while loop XLA cannot compile (dynamic batch).
        logits = self.logits_layer(self.final_norm(outputs)[:, 0])
        attention = tf.reduce_mean(weights, axis=1)[:, 0]
        return logits, new_state, attention

    def teacher_forced_features(self, inputs, state=None, memory=None, training=None):
        """Teacher forcing of whole sequences in one pass, up to the output
        layer.

        Position `t` attends to positions `<= t` only, so `project` of the
        features equals calling `step` on `inputs[:, 0]`, `inputs[:, 1]`,
        ... from a fresh `initial_state`.

        Args:
          inputs: [B, T, E] embedded target tokens (starting at position 0).
          state: The state from `initial_state` (unused: the whole sequence
            is attended directly, no cache is read or written).
          memory: The result of `prepare_memory`.
          training: Whether dropout is active (also needs mode `train`).

        Returns:
          `(features [B, T, D] in the compute dtype, attention [B, T, S]
          float32)`, the attention being the last layer's cross-attention
          averaged over the heads.
        """
        del state
        training = is_training(training, self.mode)
        inputs = tf.convert_to_tensor(inputs)
        steps = tf.shape(inputs)[1]
        positions = tf.range(steps)
        outputs = self.inputs_layer(inputs, positions[None, :])
        outputs = dropout(outputs, self.params["dropout"], training)
        causal = tf.greater_equal(positions[:, None], positions[None, :])
        self_mask = causal[None, None, :, :]  # [1, 1, T, T]
        cross_mask = self._memory_mask(memory)
        weights = None
        for index, layer in enumerate(self.decoder_layers):
            outputs, weights, _ = layer.run(
                outputs,
                self_mask,
                self._layer_memory(memory, index, cross_mask),
                training,
            )
        return self.final_norm(outputs), tf.reduce_mean(weights, axis=1)

    def project(self, features, training=None):
        """The output layer: [..., D] features -> [..., V] float32 logits."""
        return self.logits_layer(features, training=is_training(training, self.mode))

    def fused_output(self, training=None):
        """`(identity, logits_layer)` in training: the training loss then
        computes the output layer's product itself, in chunks
        (`losses.linear_cross_entropy_sum`)."""
        return self._fused_logits_layer(_identity, training)

    def sampling_state(self, state, memory, num_steps):
        """A fresh cache as long as the target, for scheduled sampling."""
        del state
        return self.initial_state(memory, max_length=num_steps)

    # --------------------------------------------------------------- helpers

    @staticmethod
    def _memory_mask(memory):
        """[B, 1, 1, S] bool: the valid source positions."""
        steps = tf.shape(memory["layer_0"]["keys"])[2]
        return tf.sequence_mask(memory["lengths"], steps)[:, None, None, :]

    @staticmethod
    def _layer_memory(memory, index, mask):
        layer_memory = dict(memory[f"layer_{index}"])
        layer_memory["mask"] = mask
        return layer_memory


def _identity(features):
    """[..., D] -> the same tensor: no output layers before the logits."""
    return features
