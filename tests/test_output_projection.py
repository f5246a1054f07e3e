"""Tests for seq2seq.layers.output_projection (bfloat16 logits in training)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.layers import output_projection
from seq2seq.layers.output_projection import OutputProjection
from seq2seq.training import trainer as trainer_lib

B, T, F, V = 3, 4, 16, 50


def bf16(values):
    """`values` rounded to bfloat16, as float64."""
    return tf.cast(tf.cast(values, tf.bfloat16), tf.float64).numpy()


def make_layer(training_dtype):
    layer = OutputProjection(V, training_dtype=training_dtype, name="logits")
    layer.build((None, None, F))
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(size=(F, V)).astype(np.float32))
    layer.bias.assign(rng.normal(size=V).astype(np.float32))
    return layer


def features():
    return tf.constant(np.random.default_rng(1).normal(size=(B, T, F)), tf.float32)


def test_only_a_lower_precision_product_asks_for_padded_rows():
    assert (
        make_layer("bfloat16").row_multiple(True) == output_projection.ROW_MULTIPLE > 1
    )
    assert make_layer("bfloat16").row_multiple(False) == 1
    assert make_layer(None).row_multiple(True) == 1


def test_outside_training_it_is_a_float32_dense():
    layer = make_layer("bfloat16")
    dense = keras.layers.Dense(V, dtype="float32")
    dense.build((None, None, F))
    dense.set_weights(layer.get_weights())
    x = features()
    for training in (False, None):
        logits = layer(x, training=training)
        assert logits.dtype == tf.float32 and logits.shape == (B, T, V)
        np.testing.assert_array_equal(logits.numpy(), dense(x).numpy())


def test_training_product_is_bfloat16_then_float32_bias():
    layer = make_layer("bfloat16")
    x = features()
    logits = layer(x, training=True)
    assert logits.dtype == tf.float32 and logits.shape == (B, T, V)
    # Inputs and kernel rounded to bfloat16, exact products summed, the sum
    # rounded to bfloat16, then the float32 bias.
    exact = bf16(x).reshape(-1, F) @ bf16(layer.kernel)
    expected = bf16(exact).reshape(B, T, V) + layer.bias.numpy()
    # The kernel's own summation order may move the rounding by one step of
    # bfloat16 (8 significant bits).
    ulp = np.abs(exact).reshape(B, T, V) * 2.0**-7
    assert np.all(np.abs(logits.numpy() - expected) <= ulp + 1e-6)
    full = (x.numpy().reshape(-1, F) @ layer.kernel.numpy()).reshape(B, T, V)
    full += layer.bias.numpy()
    # The rounding is really there: bfloat16 is not float32.
    assert np.max(np.abs(logits.numpy() - full)) > 1e-3
    np.testing.assert_allclose(logits.numpy(), full, atol=0.1)


def test_training_gradients_are_float32_and_close_to_float32s():
    x = features()
    labels = tf.constant(np.random.default_rng(2).integers(0, V, size=(B, T)))
    grads = {}
    for dtype in (None, "bfloat16"):
        layer = make_layer(dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = layer(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            )
        grads[dtype] = tape.gradient(loss, [x, layer.kernel, layer.bias])
    for low, full in zip(grads["bfloat16"], grads[None]):
        assert low.dtype == tf.float32 and low.shape == full.shape
        scale = np.max(np.abs(full.numpy()))
        np.testing.assert_allclose(low.numpy(), full.numpy(), atol=0.05 * scale)
        assert not np.array_equal(low.numpy(), full.numpy()) or scale == 0


def test_unknown_shapes_in_a_graph():
    layer = make_layer("bfloat16")
    project = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec([None, None, F], tf.float32)],
    )
    graph = project.get_concrete_function().graph
    assert graph.outputs[0].shape.as_list() == [None, None, V]
    products = [op for op in graph.get_operations() if op.type == "MatMul"]
    assert [op.get_attr("T") for op in products] == [tf.bfloat16]
    np.testing.assert_array_equal(
        project(features()).numpy(), layer(features(), training=True).numpy()
    )


def test_mixed_precision_flag_sets_the_default_of_new_layers():
    try:
        trainer_lib.set_mixed_precision("bfloat16_logits")
        assert keras.mixed_precision.global_policy().name == "float32"
        assert output_projection.training_dtype() == "bfloat16"
        assert OutputProjection(V).training_dtype == "bfloat16"
        # Explicit beats the default.
        assert OutputProjection(V, training_dtype=None).training_dtype is None
        trainer_lib.set_mixed_precision("bfloat16")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert output_projection.training_dtype() is None
        layer = OutputProjection(V)
        assert layer.compute_dtype == "float32" and layer.training_dtype is None
    finally:
        trainer_lib.set_mixed_precision("")
    assert output_projection.training_dtype() is None
    assert keras.mixed_precision.global_policy().name == "float32"


def test_unknown_mode_names_the_choices():
    with pytest.raises(Exception, match="bfloat16_logits"):
        trainer_lib.set_mixed_precision("bfloat8_logits")
