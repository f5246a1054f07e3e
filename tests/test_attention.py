"""Tests for seq2seq.decoders.attention."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.configurable import locate_class
from seq2seq.decoders import attention
from seq2seq.decoders.attention import (
    AttentionLayerBahdanau,
    AttentionLayerDot,
)
from seq2seq.errors import ConfigError


def _identity_projections(layer, key_depth, query_depth):
    """Builds the projections and sets them to identity with zero bias."""
    units = layer.num_units
    layer.key_layer.build((None, None, key_depth))
    layer.query_layer.build((None, query_depth))
    layer.key_layer.kernel.assign(np.eye(key_depth, units, dtype=np.float32))
    layer.key_layer.bias.assign(np.zeros(units, np.float32))
    layer.query_layer.kernel.assign(np.eye(query_depth, units, dtype=np.float32))
    layer.query_layer.bias.assign(np.zeros(units, np.float32))


def test_default_params_and_validation():
    assert AttentionLayerDot.default_params() == {
        "num_units": 128,
        "use_bias": True,
        "project_query": True,
    }
    layer = AttentionLayerBahdanau({}, "train")
    assert layer.num_units == 128
    with pytest.raises(ConfigError, match="num_units"):
        AttentionLayerDot({"num_unit": 3}, "train")


def test_dot_scores_by_hand():
    layer = AttentionLayerDot({"num_units": 2}, "infer")
    _identity_projections(layer, 2, 2)
    keys = tf.constant([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    values = tf.constant([[[10.0], [20.0], [1000.0]]])
    query = tf.constant([[2.0, 1.0]])
    scores, context = layer(query, layer.project_keys(keys), values, tf.constant([2]))
    # Raw scores [2, 1, 15]; the third position is padding.
    first = math.e / (math.e + 1.0)
    np.testing.assert_allclose(scores.numpy(), [[first, 1.0 - first, 0.0]], rtol=1e-6)
    assert scores.numpy()[0, 2] == 0.0
    np.testing.assert_allclose(
        context.numpy(), [[10.0 * first + 20.0 * (1.0 - first)]], rtol=1e-6
    )


def test_without_biases_a_zero_query_attends_evenly():
    keys = tf.constant([[[1.0, 0.0], [0.0, 3.0], [2.0, 2.0]]])
    values = tf.constant([[[1.0], [2.0], [3.0]]])
    query = tf.zeros([1, 2])
    biased = AttentionLayerDot({"num_units": 2}, "infer")
    _identity_projections(biased, 2, 2)
    biased.query_layer.bias.assign([1.0, 0.0])
    scores, _ = biased(query, biased.project_keys(keys), values, tf.constant([3]))
    # With a query bias the keys' first coordinates [1, 0, 2] score on
    # their own: the position prior `W_k k . b_q`.
    raw = np.array([1.0, 0.0, 2.0])
    np.testing.assert_allclose(scores[0], np.exp(raw) / np.exp(raw).sum(), rtol=1e-6)

    plain = AttentionLayerDot({"num_units": 2, "use_bias": False}, "infer")
    plain.key_layer.build((None, None, 2))
    plain.query_layer.build((None, 2))
    assert plain.key_layer.bias is None and plain.query_layer.bias is None
    assert len(plain.weights) == 2
    plain.key_layer.kernel.assign(np.eye(2, dtype=np.float32))
    plain.query_layer.kernel.assign(np.eye(2, dtype=np.float32))
    scores, context = plain(query, plain.project_keys(keys), values, tf.constant([3]))
    np.testing.assert_allclose(scores[0], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(context[0], [2.0], rtol=1e-6)
    # And a query scores q . k.
    scores, _ = plain(
        tf.constant([[1.0, 1.0]]), plain.project_keys(keys), values, tf.constant([3])
    )
    raw = np.array([1.0, 3.0, 4.0])
    np.testing.assert_allclose(scores[0], np.exp(raw) / np.exp(raw).sum(), rtol=1e-6)


def test_unprojected_query_scores_luong_general():
    """`project_query: false`: score = q . (W_k k), the raw query against the
    projected keys; only the key projection has weights."""
    layer = AttentionLayerDot(
        {"num_units": 2, "use_bias": False, "project_query": False}, "infer"
    )
    assert layer.query_layer is None
    layer.key_layer.build((None, None, 3))
    kernel = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], np.float32)
    layer.key_layer.kernel.assign(kernel)
    assert len(layer.weights) == 1
    keys = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    values = tf.constant([[[1.0], [2.0], [4.0]]])
    query = np.array([[0.5, -1.0]], np.float32)
    scores, context = layer(
        tf.constant(query),
        layer.project_keys(tf.constant(keys)),
        values,
        tf.constant([3]),
    )
    # Projected keys are the kernel's rows: [1, 0], [0, 2], [1, -1].
    raw = np.array([0.5, -2.0, 1.5])
    expected = np.exp(raw) / np.exp(raw).sum()
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    np.testing.assert_allclose(context[0], [expected @ [1.0, 2.0, 4.0]], rtol=1e-6)
    # A sequence of queries is scored the same way, one row each.
    scores, _ = layer(
        tf.constant(query[:, None, :]),
        layer.project_keys(tf.constant(keys)),
        values,
        tf.constant([3]),
    )
    np.testing.assert_allclose(scores[0, 0], expected, rtol=1e-6)


def test_unprojected_query_must_match_num_units():
    layer = AttentionLayerDot({"num_units": 4, "project_query": False}, "infer")
    keys = tf.zeros([1, 2, 3])
    with pytest.raises(ConfigError, match=r"num_units \(4\).*size \(5.*num_units: 5"):
        layer(tf.zeros([1, 5]), layer.project_keys(keys), keys, tf.constant([2]))


def test_bahdanau_scores_by_hand():
    layer = AttentionLayerBahdanau({"num_units": 2}, "infer")
    _identity_projections(layer, 2, 2)
    layer.v_att.assign([1.0, -1.0])
    keys = np.array([[[0.5, 0.0], [0.0, 0.5], [1.0, 1.0]]], np.float32)
    query = np.array([[0.2, -0.3]], np.float32)
    values = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], np.float32)
    scores, context = layer(
        tf.constant(query),
        layer.project_keys(tf.constant(keys)),
        tf.constant(values),
        tf.constant([3]),
    )
    hidden = np.tanh(keys + query[:, None, :])
    raw = hidden[..., 0] - hidden[..., 1]
    expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(
        context.numpy(), np.einsum("bs,bsd->bd", expected, values), rtol=1e-5
    )


@pytest.mark.parametrize("cls", [AttentionLayerDot, AttentionLayerBahdanau])
def test_shapes_masking_and_normalization(cls):
    rng = np.random.default_rng(0)
    batch, length, key_depth, value_depth, query_depth = 4, 5, 3, 6, 7
    layer = cls({"num_units": 8}, "train")
    keys = tf.constant(rng.normal(size=(batch, length, key_depth)), tf.float32)
    values = tf.constant(rng.normal(size=(batch, length, value_depth)), tf.float32)
    query = tf.constant(rng.normal(size=(batch, query_depth)), tf.float32)
    lengths = tf.constant([5, 3, 1, 0])
    projected = layer.project_keys(keys)
    assert projected.shape == (batch, length, 8)
    scores, context = layer(query, projected, values, lengths)
    assert scores.shape == (batch, length)
    assert scores.dtype == tf.float32
    assert context.shape == (batch, value_depth)
    scores = scores.numpy()
    for row, valid in enumerate([5, 3, 1, 0]):
        np.testing.assert_array_equal(scores[row, valid:], 0.0)
        assert scores[row, :valid].sum() == pytest.approx(1.0 if valid else 0.0)
    np.testing.assert_allclose(
        context.numpy(), np.einsum("bs,bsd->bd", scores, values.numpy()), atol=1e-6
    )
    # An empty sequence attends to nothing.
    np.testing.assert_array_equal(context.numpy()[3], 0.0)


def test_bahdanau_has_v_and_projections():
    layer = AttentionLayerBahdanau({"num_units": 4}, "train")
    layer(
        tf.zeros([1, 3]),
        layer.project_keys(tf.zeros([1, 2, 5])),
        tf.zeros([1, 2, 6]),
        tf.constant([2]),
    )
    shapes = sorted(tuple(w.shape) for w in layer.trainable_weights)
    assert shapes == [(3, 4), (4,), (4,), (4,), (5, 4)]


def test_masking_is_safe_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = AttentionLayerDot({"num_units": 4}, "train")
        keys = tf.random.normal([2, 3, 5], seed=1)
        values = tf.cast(tf.random.normal([2, 3, 6], seed=2), tf.float16)
        scores, context = layer(
            tf.random.normal([2, 4], seed=3),
            layer.project_keys(keys),
            values,
            tf.constant([3, 1]),
        )
    finally:
        keras.config.set_dtype_policy(previous)
    assert scores.dtype == tf.float32
    assert context.dtype == tf.float16
    assert np.isfinite(scores.numpy()).all()
    np.testing.assert_array_equal(scores.numpy()[1, 1:], 0.0)
    np.testing.assert_allclose(scores.numpy().sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_gradients_flow_to_every_weight():
    layer = AttentionLayerBahdanau({"num_units": 4}, "train")
    keys = tf.random.normal([2, 3, 5], seed=4)
    with tf.GradientTape() as tape:
        _, context = layer(
            tf.random.normal([2, 4], seed=5),
            layer.project_keys(keys),
            keys,
            tf.constant([3, 2]),
        )
        loss = tf.reduce_sum(context**2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_dotted_class_names_resolve():
    assert locate_class("seq2seq.decoders.attention.AttentionLayerDot") is (
        AttentionLayerDot
    )
    assert (
        locate_class("AttentionLayerBahdanau", ["seq2seq.decoders.attention"])
        is AttentionLayerBahdanau
    )


def test_precomputed_valid_mask_gives_the_same_result():
    from seq2seq.decoders.attention import AttentionLayerDot, valid_positions

    layer = AttentionLayerDot({"num_units": 4}, "eval")
    rng = np.random.default_rng(5)
    keys = layer.project_keys(tf.constant(rng.normal(size=(3, 5, 6)), tf.float32))
    values = tf.constant(rng.normal(size=(3, 5, 2)), tf.float32)
    query = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    lengths = tf.constant([5, 2, 0])
    valid = valid_positions(lengths, 5)
    assert valid.shape == (3, 1, 5)
    np.testing.assert_array_equal(valid[:, 0].numpy().sum(axis=1), [5, 2, 0])
    scores, context = layer(query, keys, values, lengths, valid=valid)
    want_scores, want_context = layer(query, keys, values, lengths)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_allclose(context, want_context, rtol=1e-6)
    np.testing.assert_array_equal(scores[1, 2:], 0.0)
    np.testing.assert_array_equal(scores[2], 0.0)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("length", [5, 50], ids=["elementwise", "matmul"])
def test_one_row_products_by_hand(length, graph):
    """`dot_scores` and `weighted_sum` against numpy, on [3, S, 700]
    operands below (S 5) and above (S 50) `ELEMENTWISE_MAX_ELEMENTS`, with
    static shapes and in a graph whose shapes are unknown (`tf.cond`)."""
    rng = np.random.default_rng(3)
    query = rng.normal(size=(3, 700)).astype(np.float32)
    keys = rng.normal(size=(3, length, 700)).astype(np.float32)
    weights = rng.normal(size=(3, length)).astype(np.float32)
    small = keys.size <= attention.ELEMENTWISE_MAX_ELEMENTS
    assert small == (length == 5)
    dot_scores, weighted_sum = attention.dot_scores, attention.weighted_sum
    if graph:
        spec = tf.TensorSpec([None, None, None])
        dot_scores = tf.function(
            dot_scores, input_signature=[tf.TensorSpec([None, None]), spec]
        )
        weighted_sum = tf.function(
            weighted_sum, input_signature=[tf.TensorSpec([None, None]), spec]
        )
    np.testing.assert_allclose(
        dot_scores(tf.constant(query), tf.constant(keys)),
        np.einsum("bu,bsu->bs", query, keys),
        rtol=1e-4,
        atol=1e-3,
    )
    np.testing.assert_allclose(
        weighted_sum(tf.constant(weights), tf.constant(keys)),
        np.einsum("bs,bsd->bd", weights, keys),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "length,units", [(5, 4), (600, 64)], ids=["elementwise", "matmul"]
)
@pytest.mark.parametrize("cls", [AttentionLayerDot, AttentionLayerBahdanau])
def test_one_query_equals_a_sequence_of_queries(cls, length, units):
    """A training step's query is scored by `score_single` (element-wise
    for small batches), a sequence of queries by `score_fn` (batched
    matmuls): the same scores, contexts and gradients, padding included."""
    layer = cls({"num_units": units}, "train")
    rng = np.random.default_rng(7)
    keys = tf.constant(rng.normal(size=(3, length, 6)), tf.float32)
    values = tf.constant(rng.normal(size=(3, length, 2 * units)), tf.float32)
    queries = tf.constant(rng.normal(size=(3, 2, 4)), tf.float32)
    lengths = tf.constant([length, 2, 0])
    layer(queries[:, 0], layer.project_keys(keys), values, lengths)
    # [3, S, U] projected keys and [3, S, 2U] values: both products of a
    # step take the same way.
    small = 3 * length * units <= attention.ELEMENTWISE_MAX_ELEMENTS
    assert small == (3 * length * 2 * units <= attention.ELEMENTWISE_MAX_ELEMENTS)
    assert small == (length == 5)

    def run(single):
        with tf.GradientTape() as tape:
            tape.watch([keys, values, queries])
            projected = layer.project_keys(keys)
            if single:
                steps = [
                    layer(queries[:, t], projected, values, lengths) for t in (0, 1)
                ]
                scores = tf.stack([s for s, _ in steps], axis=1)
                context = tf.stack([c for _, c in steps], axis=1)
            else:
                scores, context = layer(queries, projected, values, lengths)
            # Weighted, so that every output position has its own gradient.
            loss = tf.reduce_sum(scores * tf.range(1.0, length + 1.0)) + tf.reduce_sum(
                context * tf.range(-units, units, dtype=tf.float32)
            )
        grads = tape.gradient(loss, [keys, values, queries] + layer.trainable_weights)
        return scores, context, grads

    scores, context, grads = run(single=True)
    want_scores, want_context, want_grads = run(single=False)
    assert scores.shape == (3, 2, length) and context.shape == (3, 2, 2 * units)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, want_context, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores[1, :, 2:], 0.0)
    np.testing.assert_array_equal(context[2], 0.0)
    assert len(grads) == len(want_grads) >= 5
    # The keys, values and queries all get gradients (a dot score's key bias
    # does not: it shifts every position's score alike).
    assert all(float(tf.reduce_max(tf.abs(g))) > 1e-2 for g in want_grads[:3])
    # Absolute error relative to the largest gradient: a dot score's key-bias
    # gradient is zero up to rounding of sums over every position.
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in want_grads)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def _op_types(fn, *specs):
    """Op types of `fn` traced with `specs`, nested functions included."""
    graph = tf.function(fn, input_signature=list(specs)).get_concrete_function().graph
    types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # cond branches
        types |= {node.op for node in function.definition.node_def}
    return types


@pytest.mark.parametrize("mode", ["train", "eval", "infer"])
def test_only_training_steps_use_elementwise_products(mode):
    """Evaluation and inference keep batched matmuls (a sentence's scores
    do not depend on its batch); training picks by size, at run time when
    the shapes are unknown."""
    layer = AttentionLayerDot({"num_units": 4}, mode)
    values = tf.zeros([2, 3, 5])
    keys = layer.project_keys(tf.zeros([2, 3, 6]))
    layer(tf.zeros([2, 4]), keys, values, tf.constant([3, 1]))

    def step(query, keys, values):
        return layer(query, keys, values, tf.fill(tf.shape(query)[:1], 2))

    types = _op_types(
        step,
        tf.TensorSpec([None, 4]),
        tf.TensorSpec([None, None, 4]),
        tf.TensorSpec([None, None, 5]),
    )
    assert "BatchMatMulV2" in types
    assert ("If" in types or "StatelessIf" in types) == (mode == "train")


def test_xla_steps_with_unknown_shapes_take_batched_matmuls():
    """XLA cannot compile the size test's cond under a loop's gradient: with
    shapes unknown when tracing, XLA steps use batched matmuls."""
    keys = tf.TensorSpec([None, None, 4])
    spec = [tf.TensorSpec([None, 4]), keys]
    plain = _op_types(attention.dot_scores, *spec)
    assert "If" in plain or "StatelessIf" in plain

    def compiled(query, keys):
        return tf.function(attention.dot_scores, jit_compile=True)(query, keys)

    graph = tf.function(compiled, input_signature=spec).get_concrete_function().graph
    inner = [f for f in graph._functions.values() if b"dot_scores" in f.name]
    assert inner
    types = {node.op for f in inner for node in f.definition.node_def}
    assert "BatchMatMulV2" in types
    assert not types & {"If", "StatelessIf", "Mul"}
