"""Attention layers: score a decoder query against a sequence of keys.

An attention layer turns a query (the decoder's current output) and a
sequence of keys into a distribution over the sequence's positions, and
averages a sequence of values with it. The work is split in two so that
step-by-step decoding stays cheap:

* `project_keys(keys)` maps the keys to `num_units` once per source
  sequence (the decoder does this in `prepare_memory`);
* `call(query, projected_keys, values, values_length)` runs at every
  decoding step: it projects the query (unless `project_query` is false),
  scores every position, masks the positions past `values_length` and
  returns `(scores, context)`.

Two scoring functions are provided, as in the original toolkit:
`AttentionLayerDot` (dot product of projected key and query) and
`AttentionLayerBahdanau` (a learned vector `v` dotted with
`tanh(key + query)`, https://arxiv.org/abs/1409.0473).
"""

import keras
import tensorflow as tf

from seq2seq.configurable import Configurable, ModeKeys
from seq2seq.errors import ConfigError
from seq2seq.layers.composite import CompositeLayer

# Score given to padded positions before the softmax. It is applied in
# float32, so it is safe whatever the layer's compute dtype is.
MASKED_SCORE = -1e9

# A decoding step multiplies each of B rows by its own [S, D] matrix. Up to
# this many elements in the [B, S, D] matrices, element-wise products and
# sums cost less CPU time than a batched matmul of single rows, or about the
# same near the limit (10 steps forward and backward, B 32: 1.7 against 2.8
# ms at S 8, D 128; 3.3 against 3.3 at S 24); above it the matmul wins (5.9
# against 3.8 ms at S 32). benchmarks/attention_step.py measures them.
ELEMENTWISE_MAX_ELEMENTS = 96 * 1024


def _in_xla_context():
    """Whether the graph being built is compiled with XLA (a
    `tf.function(jit_compile=True)` or inside one)."""
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )


def _one_row_products(matrices, elementwise, batched, by_size):
    """Two ways to compute the same products of one row per [B, S, D]
    matrix: `elementwise()` while `by_size` and `matrices` hold at most
    `ELEMENTWISE_MAX_ELEMENTS` elements, else `batched()`.

    The choice is made when the graph is built if the shape is static, else
    per call with a `tf.cond`; not under XLA, which cannot compile that
    cond's gradient inside a while loop (it fuses the element-wise ops
    anyway), where shapes unknown at tracing take `batched()`.
    """
    if not by_size:
        return batched()
    size = matrices.shape.num_elements()
    if size is not None:
        return elementwise() if size <= ELEMENTWISE_MAX_ELEMENTS else batched()
    if _in_xla_context():
        return batched()
    return tf.cond(tf.size(matrices) <= ELEMENTWISE_MAX_ELEMENTS, elementwise, batched)


def _scores_elementwise(query, keys):
    return tf.reduce_sum(keys * query[:, None, :], axis=-1)


def _scores_batched(query, keys):
    return tf.linalg.matmul(query[:, None, :], keys, transpose_b=True)[:, 0]


def _context_elementwise(weights, values):
    return tf.reduce_sum(weights[:, :, None] * values, axis=1)


def _context_batched(weights, values):
    return tf.linalg.matmul(weights[:, None, :], values)[:, 0]


# Both ways of each product, `{(product, way): fn(rows [B, K], matrices
# [B, S, D])}`: the scores ([B, U] query, [B, S, U] keys -> [B, S]) and the
# context ([B, S] weights, [B, S, D] values -> [B, D]).
# benchmarks/attention_step.py times these.
ONE_ROW_PRODUCTS = {
    ("scores", "element-wise"): _scores_elementwise,
    ("scores", "batched matmul"): _scores_batched,
    ("context", "element-wise"): _context_elementwise,
    ("context", "batched matmul"): _context_batched,
}


def dot_scores(query, keys, by_size=True):
    """[B, U] queries dotted with [B, S, U] keys: [B, S]. `by_size` false
    always takes batched matmuls (see `_one_row_products`)."""
    return _one_row_products(
        keys,
        lambda: _scores_elementwise(query, keys),
        lambda: _scores_batched(query, keys),
        by_size,
    )


def weighted_sum(weights, values, by_size=True):
    """[B, S] weights times [B, S, D] values, summed over S: [B, D].
    `by_size` false always takes batched matmuls."""
    return _one_row_products(
        values,
        lambda: _context_elementwise(weights, values),
        lambda: _context_batched(weights, values),
        by_size,
    )


def valid_positions(values_length, num_positions):
    """[B, 1, S] bool: which of `num_positions` positions each sequence of
    `values_length` ([B] int) covers. Built once per source batch and given
    to every `AttentionLayer` call as `valid`."""
    return tf.sequence_mask(values_length, maxlen=num_positions)[:, None, :]


class AttentionLayer(Configurable, CompositeLayer):
    """Base class of attention layers.

    Subclasses implement `score_fn` (a sequence of queries per sentence)
    and may override `score_single` (one query per sentence, a decoding
    step; by default `score_fn` on a sequence of one). The keys, and unless
    `project_query` is false the query, are projected by a dense layer (no
    activation) to `num_units` before scoring.

    Params:
      num_units: Size of the projected keys and query (default 128).
      use_bias: Whether the projections have biases (true, the original's).
        With biases a dot score has a term `W_k k . b_q` that favours some
        positions whatever the query; without them the dot score is the
        bilinear `q^T W_q^T W_k k`.
      project_query: Whether the query is projected (true, the original's).
        False scores the query as it comes against the projected keys,
        `q^T W_k k` with a dot score: Luong's "general" score, as
        OpenNMT-tf's and tensorflow/nmt's Luong attention. It needs
        `num_units` equal to the query's size (the decoder cell's output).

    Args:
      params: Parameter overrides (dict).
      mode: `train`, `eval` or `infer`.
      name: Keras layer name.
    """

    def __init__(self, params, mode, name="attention"):
        keras.layers.Layer.__init__(self, name=name)
        Configurable.__init__(self, params, mode)
        units = self.params["num_units"]
        use_bias = bool(self.params["use_bias"])
        self.key_layer = keras.layers.Dense(units, use_bias=use_bias, name="att_keys")
        self.query_layer = None
        if self.params["project_query"]:
            self.query_layer = keras.layers.Dense(
                units, use_bias=use_bias, name="att_query"
            )

    @staticmethod
    def default_params():
        return {"num_units": 128, "use_bias": True, "project_query": True}

    @property
    def num_units(self):
        """Size of the projected keys and query."""
        return self.params["num_units"]

    @property
    def products_by_size(self):
        """Whether a decoding step's products may be element-wise: in
        training, where the backward pass makes the batched matmuls of single
        rows costly. Evaluation and inference, forward only, gain little from
        them and keep the batched matmuls, so that decoding a trained model
        computes what it computed before the element-wise way existed."""
        return self.mode == ModeKeys.TRAIN

    def project_keys(self, keys):
        """Projects the keys; call once per source sequence.

        Args:
          keys: [B, S, Dk] keys, usually the encoder outputs.

        Returns:
          [B, S, U] projected keys, `U = num_units`.
        """
        return self.key_layer(keys)

    def score_fn(self, projected_keys, projected_query):
        """Unnormalized scores of a batch of query sequences.

        Args:
          projected_keys: [B, S, U].
          projected_query: [B, Tq, U] (Tq queries per sequence).

        Returns:
          [B, Tq, S] scores.
        """
        raise NotImplementedError

    def score_single(self, projected_keys, projected_query):
        """Unnormalized scores of one query per sequence (a decoding step).

        Args:
          projected_keys: [B, S, U].
          projected_query: [B, U].

        Returns:
          [B, S] scores.
        """
        return self.score_fn(projected_keys, projected_query[:, None, :])[:, 0, :]

    def call(self, query, projected_keys, values, values_length, valid=None):
        """Attends over `values` with one query, or a sequence of queries.

        Args:
          query: [B, Dq] query (usually the decoder cell output), or
            [B, Tq, Dq] queries (every output of a decoder without input
            feeding) scored independently.
          projected_keys: [B, S, U] result of `project_keys`.
          values: [B, S, Dv] vectors averaged into the context.
          values_length: [B] int number of valid positions of each sequence;
            positions at or past it get a score of exactly 0.
          valid: Optional [B, 1, S] bool, `valid_positions(values_length, S)`
            computed once for many calls (e.g. every decoding step).

        Returns:
          `(scores, context)`: scores [B, S] (or [B, Tq, S]) float32, a
          softmax over the valid positions (all zeros for an empty sequence);
          context [B, Dv] (or [B, Tq, Dv]), the score-weighted sum of
          `values`, in the dtype of `values`.
        """
        single = query.shape.rank == 2
        # A rank-2 Dense is a plain matmul; on rank 3 Keras uses tensordot,
        # whose gradient inside a while loop XLA cannot compile.
        if self.query_layer is not None:
            projected_query = self.query_layer(query)
        else:
            self.check_query_size(query.shape[-1])
            projected_query = query
        if single:
            raw = self.score_single(projected_keys, projected_query)
        else:
            raw = self.score_fn(projected_keys, projected_query)
        raw = tf.cast(raw, tf.float32)
        if valid is None:
            valid = valid_positions(values_length, tf.shape(raw)[-1])
        if single:
            valid = valid[:, 0, :]
        # Softmax in float32 whatever the compute dtype (mixed precision).
        masked = tf.where(valid, raw, tf.constant(MASKED_SCORE, tf.float32))
        scores = tf.where(valid, tf.nn.softmax(masked, axis=-1), 0.0)
        weights = tf.cast(scores, values.dtype)
        if single:
            return scores, weighted_sum(weights, values, self.products_by_size)
        # Batched matmuls rather than einsum: with their gradients they cost
        # about half as much on CPU (docs/performance.md).
        return scores, tf.linalg.matmul(weights, values)

    def check_query_size(self, size):
        """Raises a ConfigError when queries of `size` units cannot be scored
        (`project_query: false` needs `size == num_units`); the decoder that
        owns the layer calls it when it is built."""
        if self.query_layer is None and size is not None and size != self.num_units:
            raise ConfigError(
                f"attention.params: project_query: false scores the query as it "
                f"comes, so num_units ({self.num_units}) must equal the query's "
                f"size ({size}, the decoder cell's output); set num_units: {size} "
                "or project_query: true."
            )


class AttentionLayerDot(AttentionLayer):
    """Attention scored by the dot product of projected key and query:
    `score[b, s] = sum_u key[b, s, u] * query[b, u]`."""

    def score_fn(self, projected_keys, projected_query):
        return tf.linalg.matmul(projected_query, projected_keys, transpose_b=True)

    def score_single(self, projected_keys, projected_query):
        return dot_scores(projected_query, projected_keys, self.products_by_size)


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
        # [B, Tq, S, U]: the sum does not factor into matmuls.
        hidden = tf.tanh(projected_keys[:, None, :, :] + projected_query[:, :, None, :])
        return tf.reduce_sum(v_att * hidden, axis=-1)
