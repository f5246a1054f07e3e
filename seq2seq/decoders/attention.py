"""Attention layers: score a decoder query against a sequence of keys.

An attention layer turns a query (the decoder's current output) and a
sequence of keys into a distribution over the sequence's positions, and
averages a sequence of values with it. The work is split in two so that
step-by-step decoding stays cheap:

* `project_keys(keys)` maps the keys to `num_units` once per source
  sequence (the decoder does this in `prepare_memory`);
* `call(query, projected_keys, values, values_length)` runs at every
  decoding step: it projects the query, scores every position, masks the
  positions past `values_length` and returns `(scores, context)`.

Two scoring functions are provided, as in the original toolkit:
`AttentionLayerDot` (dot product of projected key and query) and
`AttentionLayerBahdanau` (a learned vector `v` dotted with
`tanh(key + query)`, https://arxiv.org/abs/1409.0473).
"""

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable

# Score given to padded positions before the softmax. It is applied in
# float32, so it is safe whatever the layer's compute dtype is.
MASKED_SCORE = -1e9


class AttentionLayer(Configurable, keras.layers.Layer):
    """Base class of attention layers.

    Subclasses implement `score_fn`. Both keys and query are projected by a
    dense layer (with bias, no activation) to `num_units` before scoring.

    Params:
      num_units: Size of the projected keys and query (default 128).

    Args:
      params: Parameter overrides (dict).
      mode: `train`, `eval` or `infer`.
      name: Keras layer name.
    """

    def __init__(self, params, mode, name="attention"):
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, params, mode)
        units = self.params["num_units"]
        self.key_layer = keras.layers.Dense(units, name="att_keys")
        self.query_layer = keras.layers.Dense(units, name="att_query")

    @staticmethod
    def default_params():
        return {"num_units": 128}

    @property
    def num_units(self):
        """Size of the projected keys and query."""
        return self.params["num_units"]

    def project_keys(self, keys):
        """Projects the keys; call once per source sequence.

        Args:
          keys: [B, S, Dk] keys, usually the encoder outputs.

        Returns:
          [B, S, U] projected keys, `U = num_units`.
        """
        return self.key_layer(keys)

    def score_fn(self, projected_keys, projected_query):
        """Unnormalized scores.

        Args:
          projected_keys: [B, S, U].
          projected_query: [B, U].

        Returns:
          [B, S] scores.
        """
        raise NotImplementedError

    def call(self, query, projected_keys, values, values_length):
        """Attends over `values` with a query.

        Args:
          query: [B, Dq] query, usually the decoder cell output.
          projected_keys: [B, S, U] result of `project_keys`.
          values: [B, S, Dv] vectors averaged into the context.
          values_length: [B] int number of valid positions of each sequence;
            positions at or past it get a score of exactly 0.

        Returns:
          `(scores, context)`: scores [B, S] float32, a softmax over the valid
          positions (all zeros for an empty sequence); context [B, Dv], the
          score-weighted sum of `values`, in the dtype of `values`.
        """
        projected_query = self.query_layer(query)
        raw = tf.cast(self.score_fn(projected_keys, projected_query), tf.float32)
        valid = tf.sequence_mask(values_length, maxlen=tf.shape(raw)[1], dtype=tf.bool)
        masked = tf.where(valid, raw, tf.constant(MASKED_SCORE, tf.float32))
        scores = tf.where(valid, tf.nn.softmax(masked, axis=-1), 0.0)
        context = tf.einsum("bs,bsd->bd", tf.cast(scores, values.dtype), values)
        return scores, context


class AttentionLayerDot(AttentionLayer):
    """Attention scored by the dot product of projected key and query:
    `score[b, s] = sum_u key[b, s, u] * query[b, u]`."""

    def score_fn(self, projected_keys, projected_query):
        return tf.reduce_sum(projected_keys * projected_query[:, None, :], axis=-1)


class AttentionLayerBahdanau(AttentionLayer):
    """Additive attention: `score[b, s] = sum_u v[u] * tanh(key[b, s, u] +
    query[b, u])` with a learned vector `v` of size `num_units`."""

    def __init__(self, params, mode, name="attention"):
        super().__init__(params, mode, name=name)
        self.v_att = self.add_weight(
            name="v_att",
            shape=(self.params["num_units"],),
            initializer="glorot_uniform",
        )

    def score_fn(self, projected_keys, projected_query):
        v_att = tf.cast(self.v_att, projected_keys.dtype)
        hidden = tf.tanh(projected_keys + projected_query[:, None, :])
        return tf.reduce_sum(v_att * hidden, axis=-1)
