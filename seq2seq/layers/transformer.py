"""Transformer building blocks shared by the self-attention encoder and
decoder: multi-head attention, the position-wise feed-forward network,
position encodings, the input scaling, and the params and checks they share.

Both `seq2seq.encoders.self_attention_encoder` and
`seq2seq.decoders.self_attention_decoder` build their layers from these, so
they use exactly the same math. Sub-layers are kept in one attribute each
(never in a Python list): Keras 3 does not hand list members to
`tf.train.Checkpoint`. Layer names (and so checkpoint paths) are set by the
callers.
"""

import math

import keras
import tensorflow as tf

from seq2seq.errors import ConfigError
from seq2seq.layers import loop_dropout
from seq2seq.layers.composite import CompositeLayer

__all__ = [
    "FeedForward",
    "MultiHeadAttention",
    "PositionEncoding",
    "TransformerInputs",
    "sinusoidal_position_encoding",
    "transformer_params",
]

# Score of a masked (padded or future) position before the softmax; the
# softmax runs in float32, where exp(-1e9 - max) is exactly 0.
MASKED_SCORE = -1e9

POSITION_ENCODINGS = ("sinusoidal", "learned")


def transformer_params():
    """Parameters shared by the self-attention encoder and decoder."""
    return {
        "num_layers": 2,
        "num_units": 256,
        "num_heads": 4,
        "ffn_units": 0,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "position_encoding": "sinusoidal",
        "max_positions": 512,
        "scale_inputs": True,
    }


def check_transformer_params(params, owner):
    """Validates `transformer_params()` values.

    Raises:
      ConfigError: A value that cannot build the layers, named with `owner`.
    """
    units, heads = params["num_units"], params["num_heads"]
    if params["num_layers"] < 1:
        raise ConfigError(
            f"{owner}: num_layers must be >= 1, got {params['num_layers']}."
        )
    if units < 1 or heads < 1 or units % heads:
        raise ConfigError(
            f"{owner}: num_units ({units}) must be a positive multiple of "
            f"num_heads ({heads})."
        )
    if params["position_encoding"] not in POSITION_ENCODINGS:
        raise ConfigError(
            f"{owner}: unknown position_encoding "
            f"'{params['position_encoding']}'; use one of "
            f"{', '.join(POSITION_ENCODINGS)}."
        )
    if params["position_encoding"] == "sinusoidal" and units % 2:
        raise ConfigError(
            f"{owner}: sinusoidal position encodings need an even num_units, "
            f"got {units}; change num_units or use position_encoding: learned."
        )
    if params["position_encoding"] == "learned" and params["max_positions"] < 1:
        raise ConfigError(
            f"{owner}: max_positions must be >= 1 for learned position "
            f"encodings, got {params['max_positions']}."
        )
    for key in ("dropout", "attention_dropout"):
        if not 0.0 <= params[key] < 1.0:
            raise ConfigError(f"{owner}: {key} must be in [0, 1), got {params[key]}.")


def ffn_units(params):
    """`ffn_units`, or `4 * num_units` when it is 0."""
    return params["ffn_units"] or 4 * params["num_units"]


def dropout(inputs, rate, training):
    """Dropout (`loop_dropout.dropout`) when `training` (a Python bool) and
    `rate` > 0."""
    if training and rate > 0:
        return loop_dropout.dropout(inputs, rate=rate)
    return inputs


def sinusoidal_position_encoding(positions, depth, dtype=tf.float32):
    """The fixed position encodings of Vaswani et al.

    Channel `i < depth / 2` is `sin(p / 10000 ** (2 i / depth))` and channel
    `depth / 2 + i` the matching cosine (sines and cosines in two halves
    instead of interleaved, which is the same up to a fixed permutation).

    Args:
      positions: Int tensor of any shape `[...]`.
      depth: Even Python int.
      dtype: The result's dtype (computed in float32).

    Returns:
      A `[..., depth]` tensor.
    """
    half = depth // 2
    exponents = tf.range(half, dtype=tf.float32) * (2.0 / depth)
    inverse = tf.exp(-math.log(10000.0) * exponents)
    angles = tf.cast(positions, tf.float32)[..., None] * inverse
    encoding = tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)
    return tf.cast(encoding, dtype)


class PositionEncoding(CompositeLayer):
    """Position encodings, fixed (`sinusoidal`) or trained (`learned`).

    A learned table has `max_positions` rows; later positions reuse the last
    row.

    Args:
      kind: `sinusoidal` or `learned`.
      depth: Size of an encoding.
      max_positions: Rows of the learned table.
      name: Keras layer name.
    """

    def __init__(self, kind, depth, max_positions, name="position_encoding"):
        super().__init__(name=name)
        self.kind = kind
        self.depth = int(depth)
        self.max_positions = int(max_positions)
        if kind == "learned":
            self.table = self.add_weight(
                name="table",
                shape=(self.max_positions, self.depth),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
            )

    def encode(self, positions):
        """Int positions `[...]` -> `[...]`, depth` encodings (compute dtype)."""
        if self.kind == "learned":
            positions = tf.minimum(tf.cast(positions, tf.int32), self.max_positions - 1)
            return tf.cast(tf.gather(self.table, positions), self.compute_dtype)
        return sinusoidal_position_encoding(positions, self.depth, self.compute_dtype)

    def call(self, positions):
        return self.encode(positions)


def position_wise(layer, inputs):
    """`layer` (e.g. a Dense) applied to the [..., D] rows of `inputs` as one
    [N, D] batch: the same numbers as `layer(inputs)`, but a plain matmul.

    A Dense on a tensor of rank 3 with an unknown batch size is a Tensordot
    whose transpose permutation is computed at run time; inside a
    `tf.while_loop` (the decoder stepped by scheduled sampling) its gradient
    then needs that permutation as a loop value, which XLA cannot compile.
    """
    if inputs.shape.rank == 2:
        return layer(inputs)
    rows = layer(tf.reshape(inputs, [-1, inputs.shape[-1]]))
    shape = tf.concat([tf.shape(inputs)[:-1], tf.shape(rows)[-1:]], axis=0)
    outputs = tf.reshape(rows, shape)
    outputs.set_shape(inputs.shape[:-1].concatenate(rows.shape[-1:]))
    return outputs


class MultiHeadAttention(CompositeLayer):
    """Scaled dot-product attention with `num_heads` heads.

    Keys and values are projected separately from the queries
    (`project_key_values`) so that a decoder can project its source memory
    once, or cache the projections of the tokens it has already read.

    Args:
      num_units: Model size `D` (queries, keys, values and output).
      num_heads: Number of heads `H`; `D / H` per head.
      attention_dropout: Dropout rate on the attention weights.
      name: Keras layer name.
    """

    def __init__(self, num_units, num_heads, attention_dropout=0.0, name="mha"):
        super().__init__(name=name)
        self.num_units = int(num_units)
        self.num_heads = int(num_heads)
        self.head_units = self.num_units // self.num_heads
        self.attention_dropout = float(attention_dropout)
        self.query_dense = keras.layers.Dense(self.num_units, name="query")
        self.key_dense = keras.layers.Dense(self.num_units, name="key")
        self.value_dense = keras.layers.Dense(self.num_units, name="value")
        self.output_dense = keras.layers.Dense(self.num_units, name="output")

    def split_heads(self, inputs):
        """[B, T, D] -> [B, H, T, D / H]."""
        shape = tf.shape(inputs)
        split = tf.reshape(
            inputs, [shape[0], shape[1], self.num_heads, self.head_units]
        )
        return tf.transpose(split, [0, 2, 1, 3])

    def merge_heads(self, inputs):
        """[B, H, T, D / H] -> [B, T, D]."""
        shape = tf.shape(inputs)
        merged = tf.transpose(inputs, [0, 2, 1, 3])
        return tf.reshape(merged, [shape[0], shape[2], self.num_units])

    def project_key_values(self, inputs):
        """[B, S, Dm] -> `(keys, values)`, each [B, H, S, D / H]."""
        return (
            self.split_heads(position_wise(self.key_dense, inputs)),
            self.split_heads(position_wise(self.value_dense, inputs)),
        )

    def attend(self, queries, keys, values, mask, training=False):
        """Attends from `queries` over projected keys and values.

        Args:
          queries: [B, T, D] query inputs (not yet projected).
          keys: [B, H, S, D / H] from `project_key_values` (or a cache).
          values: [B, H, S, D / H].
          mask: Bool tensor broadcastable to [B, H, T, S]; False positions
            get exactly zero weight.
          training: Whether the attention dropout is active (Python bool).

        Returns:
          `(outputs [B, T, D], weights [B, H, T, S] float32)`; the weights
          are those before dropout.
        """
        query = self.split_heads(position_wise(self.query_dense, queries))
        query *= tf.cast(self.head_units**-0.5, query.dtype)
        scores = tf.cast(tf.matmul(query, keys, transpose_b=True), tf.float32)
        scores = tf.where(mask, scores, MASKED_SCORE)
        weights = tf.nn.softmax(scores, axis=-1)
        used = dropout(weights, self.attention_dropout, training)
        context = tf.matmul(tf.cast(used, values.dtype), values)
        outputs = position_wise(self.output_dense, self.merge_heads(context))
        return outputs, weights

    def call(self, queries, memory, attention_mask, training=False):
        keys, values = self.project_key_values(memory)
        return self.attend(queries, keys, values, attention_mask, training)


class FeedForward(CompositeLayer):
    """Position-wise `Dense(D)(relu(Dense(F)(x)))`.

    Args:
      num_units: Output size `D`.
      inner_units: Hidden size `F`.
      name: Keras layer name.
    """

    def __init__(self, num_units, inner_units, name="ffn"):
        super().__init__(name=name)
        self.inner = keras.layers.Dense(inner_units, activation="relu", name="inner")
        self.outer = keras.layers.Dense(num_units, name="outer")

    def call(self, inputs):
        return position_wise(self.outer, position_wise(self.inner, inputs))


def layer_norm(name):
    """The LayerNormalization used before every sub-layer."""
    return keras.layers.LayerNormalization(epsilon=1e-6, name=name)


class TransformerInputs(CompositeLayer):
    """Input projection (if needed), scaling and position encodings.

    Args:
      params: Parsed `transformer_params()` values.
      name: Keras layer name.
    """

    def __init__(self, params, name="inputs"):
        super().__init__(name=name)
        self.num_units = params["num_units"]
        self.scale = params["scale_inputs"]
        # Used only when the inputs are not `num_units` wide; an unused,
        # unbuilt Dense has no variables.
        self.projection = keras.layers.Dense(
            self.num_units, use_bias=False, name="input_projection"
        )
        self.position_encoding = PositionEncoding(
            params["position_encoding"],
            self.num_units,
            params["max_positions"],
        )

    def call(self, inputs, positions):
        """`inputs` [B, T, E] and `positions` [B or 1, T] -> [B, T, D]."""
        inputs = tf.cast(inputs, self.compute_dtype)
        if inputs.shape[-1] != self.num_units:
            inputs = position_wise(self.projection, inputs)
        if self.scale:
            inputs *= tf.cast(math.sqrt(self.num_units), inputs.dtype)
        return inputs + self.position_encoding.encode(positions)
