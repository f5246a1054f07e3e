"""Tests for PoolingEncoder (seq2seq.encoders.pooling_encoder)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params

from seq2seq.configurable import ModeKeys, locate_class
from seq2seq.encoders import EncoderOutput, PoolingEncoder
from seq2seq.encoders.pooling_encoder import (
    position_encoding,
    resolve_combiner_fn,
    resolve_pooling_fn,
)
from seq2seq.errors import ConfigError
from seq2seq.models import AttentionSeq2Seq

AVG = "tensorflow.layers.average_pooling1d"
MAX = "tensorflow.layers.max_pooling1d"


def _encoder(mode=ModeKeys.EVAL, **params):
    base = {"position_embeddings.enable": False}
    base.update(params)
    return PoolingEncoder(base, mode)


def _inputs(batch=3, steps=6, depth=4, seed=0):
    return np.random.RandomState(seed).randn(batch, steps, depth).astype(np.float32)


def _column(values, length):
    """One sequence of scalars as [1, T, 1] inputs and [1] lengths."""
    x = np.asarray(values, np.float32)[None, :, None]
    return tf.constant(x), tf.constant([length])


def test_defaults_match_the_original():
    assert PoolingEncoder.default_params() == {
        "dropout_keep_prob": 0.8,
        "pooling_fn": "tensorflow.layers.average_pooling1d",
        "pool_size": 5,
        "strides": 1,
        "position_embeddings.enable": True,
        "position_embeddings.combiner_fn": "tensorflow.multiply",
        "position_embeddings.num_positions": 100,
    }
    assert PoolingEncoder({}, ModeKeys.TRAIN).name == "pooling_encoder"
    assert locate_class("PoolingEncoder", ["seq2seq.encoders"]) is PoolingEncoder
    assert (
        locate_class("seq2seq.encoders.PoolingEncoder", ["seq2seq.encoders"])
        is PoolingEncoder
    )


@pytest.mark.parametrize("enable", [True, False])
def test_shapes_as_the_original_test(enable):
    params = {
        "position_embeddings.enable": enable,
        "position_embeddings.num_positions": 16 if enable else 0,
    }
    encoder = PoolingEncoder(params, ModeKeys.TRAIN)
    output = encoder(tf.random.normal([4, 16, 10]), tf.fill([4], 16), training=True)
    assert isinstance(output, EncoderOutput)
    assert output.outputs.shape == (4, 16, 10)
    assert output.attention_values.shape == (4, 16, 10)
    assert output.final_state.shape == (4, 10)
    assert output.attention_values_length.numpy().tolist() == [16] * 4
    assert encoder.weights == []


def test_average_near_the_end_divides_by_the_valid_positions():
    x, length = _column([1.0, 2.0, 3.0, 100.0], 3)
    output = _encoder(pool_size=3)(x, length)
    np.testing.assert_allclose(output.outputs[0, :, 0], [1.5, 2.0, 2.5, 0.0])
    np.testing.assert_allclose(output.final_state[0], [2.0])
    np.testing.assert_allclose(output.attention_values[0, :, 0], [1, 2, 3, 0])
    # Same as TensorFlow's 'SAME' average pooling of the unpadded sequence.
    same = tf.nn.avg_pool1d(x[:, :3], 3, 1, "SAME")
    np.testing.assert_allclose(output.outputs[:, :3], same, rtol=1e-6)


def test_max_pooling_never_picks_padding():
    x, length = _column([-1.0, -2.0, -3.0, 5.0], 3)
    output = _encoder(pooling_fn=MAX, pool_size=3)(x, length)
    np.testing.assert_allclose(output.outputs[0, :, 0], [-1.0, -1.0, -2.0, 0.0])
    np.testing.assert_allclose(output.final_state[0], [-4.0 / 3.0], rtol=1e-6)


@pytest.mark.parametrize("pooling_fn", [AVG, MAX])
@pytest.mark.parametrize("pool_size", [2, 5])
def test_matches_same_pooling_of_each_unpadded_sequence(pooling_fn, pool_size):
    x, lengths = _inputs(steps=7), [7, 4, 1]
    output = _encoder(pooling_fn=pooling_fn, pool_size=pool_size)(x, lengths)
    pool = tf.nn.avg_pool1d if pooling_fn == AVG else tf.nn.max_pool1d
    for b, n in enumerate(lengths):
        expected = pool(x[b : b + 1, :n], pool_size, 1, "SAME")[0]
        np.testing.assert_allclose(output.outputs[b, :n], expected, rtol=1e-5)
        np.testing.assert_array_equal(output.outputs[b, n:], 0.0)
        np.testing.assert_allclose(
            output.final_state[b], np.mean(expected, axis=0), rtol=1e-5
        )


def test_strides_keep_the_stride_one_alignment():
    x, length = _column([1, 2, 3, 4, 5, 0, 0], 5)
    output = _encoder(pool_size=3, strides=2)(x, length)
    # Windows centred on positions 0, 2, 4 (and 6, which is padding).
    np.testing.assert_allclose(output.outputs[0, :, 0], [1.5, 3.0, 4.5, 0.0])
    np.testing.assert_allclose(output.final_state[0], [3.0])
    assert output.attention_values.shape == (1, 7, 1)


@pytest.mark.parametrize("pooling_fn", [AVG, MAX])
@pytest.mark.parametrize("combiner", ["tensorflow.multiply", "tensorflow.add"])
@pytest.mark.parametrize("strides", [1, 2])
def test_extra_padding_changes_nothing(pooling_fn, combiner, strides):
    x, lengths = _inputs(steps=5), [5, 3, 2]
    junk = np.full((3, 4, 4), 9.0, np.float32)
    padded = np.concatenate([x, junk], axis=1)
    padded[1, 3:5] = -9.0
    padded[2, 2:5] = 9.0
    encoder = _encoder(
        pooling_fn=pooling_fn,
        pool_size=3,
        strides=strides,
        **{
            "position_embeddings.enable": True,
            "position_embeddings.combiner_fn": combiner,
            "position_embeddings.num_positions": 9,
        },
    )
    short, long = encoder(x, lengths), encoder(padded, lengths)
    steps = short.outputs.shape[1]
    np.testing.assert_allclose(long.outputs[:, :steps], short.outputs, atol=1e-6)
    np.testing.assert_array_equal(long.outputs[:, steps:], 0.0)
    np.testing.assert_allclose(long.final_state, short.final_state, atol=1e-6)
    np.testing.assert_allclose(
        long.attention_values[:, :5], short.attention_values, atol=1e-6
    )
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(long.attention_values[b, n:], 0.0)
        valid = -(-n // strides)
        np.testing.assert_array_equal(long.outputs[b, valid:], 0.0)


def test_position_encoding_values():
    np.testing.assert_allclose(
        position_encoding(2, 2), [[5 / 9, 4 / 9], [4 / 9, 5 / 9]], rtol=1e-6
    )
    table = position_encoding(100, 8)
    assert table.shape == (100, 8) and table.dtype == np.float32


@pytest.mark.parametrize(
    "combiner, op",
    [("tensorflow.multiply", np.multiply), ("add", np.add), ("tf.add", np.add)],
)
def test_position_embeddings_are_combined_with_the_inputs(combiner, op):
    x, lengths = _inputs(steps=4, depth=3), [4, 2, 3]
    params = {
        "position_embeddings.enable": True,
        "position_embeddings.combiner_fn": combiner,
        "position_embeddings.num_positions": 6,
    }
    output = _encoder(**params)(x, lengths)
    table = position_encoding(6, 3)[:4]
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(
            output.attention_values[b, :n], op(x[b, :n], table[:n]), rtol=1e-6
        )
    off = _encoder(**{**params, "position_embeddings.enable": False})(x, lengths)
    np.testing.assert_allclose(off.attention_values[0], x[0])
    assert not np.allclose(off.outputs, output.outputs)


def test_inputs_longer_than_num_positions_are_an_error():
    encoder = _encoder(
        **{"position_embeddings.enable": True, "position_embeddings.num_positions": 3}
    )
    with pytest.raises(ConfigError, match="num_positions is 3"):
        encoder(_inputs(steps=4), [4, 4, 4])
    dynamic = tf.function(
        lambda a, b: encoder(a, b).outputs,
        input_signature=[
            tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
    )
    assert dynamic(_inputs(steps=3), [3, 1, 2]).shape == (3, 3, 4)
    # The check runs before the computation it guards, so it is this error
    # every time, not the shape error of the product (a race before).
    for _ in range(20):
        with pytest.raises(tf.errors.InvalidArgumentError, match="num_positions"):
            dynamic(_inputs(steps=4), [4, 1, 2])


def test_dropout_only_while_training_in_train_mode():
    x, lengths = tf.ones([2, 50, 8]), [50, 30]
    train = _encoder(ModeKeys.TRAIN, dropout_keep_prob=0.5)
    dropped = train(x, lengths, training=True).attention_values.numpy()
    kept = dropped[0][dropped[0] != 0]
    assert 0.3 < kept.size / dropped[0].size < 0.7
    np.testing.assert_allclose(kept, 2.0)
    np.testing.assert_array_equal(dropped[1, 30:], 0.0)
    for encoder, training in [
        (train, False),
        (_encoder(ModeKeys.EVAL, dropout_keep_prob=0.5), True),
    ]:
        values = encoder(x, lengths, training=training).attention_values
        np.testing.assert_array_equal(values[0], 1.0)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("tensorflow.layers.average_pooling1d", "average"),
        ("tensorflow.layers.max_pooling1d", "max"),
        ("keras.layers.AveragePooling1D", "average"),
        ("tensorflow.keras.layers.MaxPooling1D", "max"),
        ("average_pooling1d", "average"),
        ("MaxPooling1D", "max"),
    ],
)
def test_pooling_fn_names(name, kind):
    assert resolve_pooling_fn(name) == kind
    assert _encoder(pooling_fn=name).pooling_kind == kind


def test_combiner_names():
    for name in ["tensorflow.multiply", "multiply", "tf.math.multiply"]:
        assert resolve_combiner_fn(name) is tf.multiply
    for name in ["tensorflow.add", "add", "keras.ops.add"]:
        assert resolve_combiner_fn(name) is tf.add
    # Configs are data: no other function can be named.
    for name in ["tensorflow.maximum", "os.system", "builtins.eval"]:
        with pytest.raises(ConfigError) as err:
            resolve_combiner_fn(name)
        assert str(err.value) == (
            f"position_embeddings.combiner_fn: unknown function '{name}'. Use "
            "tensorflow.add or tensorflow.multiply (or add / multiply); other "
            "functions cannot be named in a config."
        )


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pool_sise": 3}, "unknown parameter 'pool_sise'.*pool_size"),
        ({"pooling_fn": "tensorflow.layers.conv1d"}, "pooling_fn.*conv1d"),
        ({"pooling_fn": "sum_pooling1d"}, "unknown pooling function"),
        ({"position_embeddings.combiner_fn": "concat"}, "combiner_fn.*concat"),
        ({"position_embeddings.combiner_fn": "tensorflow.nope"}, "tensorflow.nope"),
        ({"position_embeddings.combiner_fn": "tensorflow.float32"}, "float32"),
        ({"pool_size": 0}, "pool_size must be at least 1"),
        ({"strides": 0}, "strides must be at least 1"),
        ({"dropout_keep_prob": 0.0}, r"dropout_keep_prob must be in \(0, 1\]"),
        ({"position_embeddings.num_positions": 0}, "num_positions must be at least"),
    ],
)
def test_bad_params_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        PoolingEncoder(params, ModeKeys.TRAIN)


def test_graph_mode_equals_eager():
    encoder = PoolingEncoder({"position_embeddings.num_positions": 8}, ModeKeys.EVAL)
    x, lengths = tf.constant(_inputs()), tf.constant([6, 2, 4])
    eager = encoder(x, lengths)
    graph = tf.function(lambda a, b: encoder(a, b))(x, lengths)
    for a, b in zip(eager, graph):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_attention_model_with_pooling_encoder(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    params = tiny_model_params(
        str(vocab),
        **{
            "encoder.class": "PoolingEncoder",
            "encoder.params": {
                "pool_size": 3,
                "position_embeddings.num_positions": 52,
            },
        },
    )
    model = AttentionSeq2Seq(params, ModeKeys.TRAIN)
    features = model.preprocess(
        {
            "source_tokens": tf.constant(
                [["a", "b", "SEQUENCE_END"], ["c", "SEQUENCE_END", ""]]
            ),
            "source_len": tf.constant([3, 2]),
            "target_tokens": tf.constant([["SEQUENCE_START", "c", "SEQUENCE_END"]] * 2),
            "target_len": tf.constant([3, 3]),
        }
    )
    output = model.forward(features, training=True)
    assert np.isfinite(output.loss.numpy())
    assert output.attention.shape == (2, 2, 3)
    np.testing.assert_allclose(output.attention[1, :, 2], 0.0, atol=1e-7)
    predictions = model.infer(features, max_length=4)
    assert predictions["attention_scores"].shape[2] == 3
