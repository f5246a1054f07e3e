"""Tests for the encoder-decoder bridges (seq2seq.models.bridges)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.configurable import ModeKeys, locate_class
from seq2seq.encoders import BidirectionalRNNEncoder, EncoderOutput
from seq2seq.errors import ConfigError
from seq2seq.models import bridges
from seq2seq.models.bridges import (
    InitialStateBridge,
    PassThroughBridge,
    ZeroBridge,
)
from seq2seq.rnn import get_rnn_cell

BATCH = 4
ENCODER_STATE_SIZE = [[4], [8]]  # two GRU layers of 4 and 8 units
DECODER_STATE_SIZE = [[16, 16], [8]]  # an LSTM layer of 16 and a GRU of 8
LENGTHS = [10, 3, 1, 7]


def _encoder_output(state_size=ENCODER_STATE_SIZE, seed=0):
    rng = np.random.RandomState(seed)
    state = tf.nest.map_structure(
        lambda n: tf.constant(rng.randn(BATCH, n), tf.float32), state_size
    )
    outputs = rng.randn(BATCH, 10, 16).astype(np.float32)
    return EncoderOutput(
        outputs=tf.constant(outputs),
        final_state=state,
        attention_values=tf.constant(outputs + 1.0),
        attention_values_length=np.array(LENGTHS, np.int32),
    )


def _shapes(nest):
    return tf.nest.map_structure(lambda t: tuple(t.shape), nest)


def test_names_resolve():
    assert locate_class("ZeroBridge", [bridges]) is ZeroBridge
    assert (
        locate_class("seq2seq.models.bridges.InitialStateBridge") is InitialStateBridge
    )
    assert ZeroBridge.default_params() == {} == PassThroughBridge.default_params()
    assert InitialStateBridge.default_params() == {
        "bridge_input": "final_state",
        "activation_fn": "tensorflow.identity",
    }


def test_zero_bridge():
    bridge = ZeroBridge(_encoder_output(), DECODER_STATE_SIZE, {}, ModeKeys.TRAIN)
    state = bridge()
    assert _shapes(state) == [[(4, 16), (4, 16)], [(4, 8)]]
    for leaf in tf.nest.flatten(state):
        assert np.all(leaf.numpy() == 0.0)
    assert bridge.trainable_weights == []
    assert ZeroBridge(_encoder_output(), 5, {}, ModeKeys.TRAIN)().shape == (4, 5)


def test_pass_through_bridge_hands_the_state_over():
    encoder_output = _encoder_output()
    # The decoder may describe the same structure with tuples.
    bridge = PassThroughBridge(encoder_output, ((4,), (8,)), {}, ModeKeys.INFER)
    state = bridge()
    assert isinstance(state, tuple) and _shapes(state) == ((((4, 4),), ((4, 8),)))
    for a, b in zip(
        tf.nest.flatten(state), tf.nest.flatten(encoder_output.final_state)
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("decoder_size", [DECODER_STATE_SIZE, [[4], [9]], [[4, 8]]])
def test_pass_through_bridge_mismatch_names_both_structures(decoder_size):
    bridge = PassThroughBridge(_encoder_output(), decoder_size, {}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError) as info:
        bridge()
    message = str(info.value)
    assert "[[[B,4]], [[B,8]]]" in message and str(decoder_size) in message
    assert "InitialStateBridge" in message and "\n" not in message


def test_initial_state_bridge_from_final_state():
    encoder_output = _encoder_output()
    bridge = InitialStateBridge(
        encoder_output,
        DECODER_STATE_SIZE,
        {"activation_fn": "tensorflow.tanh"},
        "train",
    )
    state = bridge()
    assert _shapes(state) == [[(4, 16), (4, 16)], [(4, 8)]]
    flat_input = np.concatenate(
        [t.numpy() for t in tf.nest.flatten(encoder_output.final_state)], axis=1
    )
    kernel, bias = bridge.dense.kernel.numpy(), bridge.dense.bias.numpy()
    assert kernel.shape == (12, 40)
    expected = np.tanh(flat_input @ kernel + bias)
    got = np.concatenate([t.numpy() for t in tf.nest.flatten(state)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field, offset", [("outputs", 0.0), ("attention_values", 1.0)])
def test_initial_state_bridge_from_last_valid_output(field, offset):
    encoder_output = _encoder_output()
    bridge = InitialStateBridge(
        encoder_output, [[3]], {"bridge_input": field}, ModeKeys.TRAIN
    )
    state = bridge()
    outputs = encoder_output.outputs.numpy() + offset
    last = outputs[np.arange(BATCH), np.array(LENGTHS) - 1]
    expected = last @ bridge.dense.kernel.numpy() + bridge.dense.bias.numpy()
    np.testing.assert_allclose(state[0][0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, check",
    [
        ("tanh", lambda v: np.abs(v).max() <= 1.0),
        ("tensorflow.nn.relu", lambda v: v.min() >= 0.0),
        ("tensorflow.identity", lambda v: v.min() < 0.0),
        ("tensorflow.sigmoid", lambda v: v.min() >= 0.0 and v.max() <= 1.0),
    ],
)
def test_initial_state_bridge_activations(name, check):
    bridge = InitialStateBridge(
        _encoder_output(), [64], {"activation_fn": name}, ModeKeys.TRAIN
    )
    assert check(bridge()[0].numpy())


def test_initial_state_bridge_param_errors():
    with pytest.raises(ConfigError, match="unknown bridge_input 'state'"):
        InitialStateBridge(_encoder_output(), [4], {"bridge_input": "state"}, "train")
    with pytest.raises(ConfigError, match="unknown activation 'tensorflow.nope'"):
        InitialStateBridge(
            _encoder_output(), [4], {"activation_fn": "tensorflow.nope"}, "train"
        )
    with pytest.raises(ConfigError, match="unknown parameter 'activation'"):
        InitialStateBridge(_encoder_output(), [4], {"activation": "tanh"}, "train")
    no_state = _encoder_output()._replace(final_state=None)
    with pytest.raises(ConfigError, match="gives no final_state"):
        InitialStateBridge(no_state, [4], {}, "train")()


def test_bidirectional_gru_into_two_layer_lstm_decoder():
    encoder = BidirectionalRNNEncoder(
        {"rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 6}}},
        ModeKeys.TRAIN,
    )
    encoder_output = encoder(tf.random.normal([2, 5, 3]), tf.constant([5, 2]))
    decoder_cell = get_rnn_cell("LSTMCell", {"num_units": 4}, num_layers=2)
    bridge = InitialStateBridge(encoder_output, decoder_cell.state_size, {}, "train")
    state = bridge()
    assert _shapes(state) == [[(2, 4), (2, 4)], [(2, 4), (2, 4)]]
    assert bridge.dense.kernel.shape == (12, 16)
    output, _ = decoder_cell(tf.zeros([2, 3]), state)
    assert output.shape == (2, 4)
    with pytest.raises(ConfigError, match="PassThroughBridge"):
        PassThroughBridge(encoder_output, decoder_cell.state_size, {}, "train")()


def test_package_argument_order_and_reuse_across_batches():
    """Built once with (params, mode, decoder_state_size=...), called per batch."""
    bridge = InitialStateBridge(
        {"activation_fn": "tanh"}, ModeKeys.EVAL, decoder_state_size=DECODER_STATE_SIZE
    )
    first = bridge(_encoder_output(seed=1), BATCH, training=False)
    second = bridge(_encoder_output(seed=2), tf.constant(BATCH))
    assert _shapes(first) == _shapes(second)
    assert len(bridge.trainable_weights) == 2  # one dense layer, reused
    zero = ZeroBridge({}, ModeKeys.INFER, decoder_state_size=[[3]])
    assert _shapes(zero(_encoder_output(), 2)) == [[(2, 3)]]
    with pytest.raises(ValueError, match="no encoder outputs"):
        zero()


def test_bridge_inside_tf_function():
    bridge = InitialStateBridge({}, "train", decoder_state_size=DECODER_STATE_SIZE)
    fn = tf.function(lambda out: bridge(out))
    state = fn(_encoder_output())
    assert _shapes(state) == [[(4, 16), (4, 16)], [(4, 8)]]
    zero = ZeroBridge({}, "train", decoder_state_size=[[5]])
    assert _shapes(tf.function(lambda out: zero(out))(_encoder_output())) == [[(4, 5)]]


def test_bridge_weights_are_tracked_for_checkpoints(tmp_path):
    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.bridge = InitialStateBridge({}, "train", decoder_state_size=[[5]])

    holder = Holder()
    before = holder.bridge(_encoder_output())
    assert len(holder.trainable_weights) == 2
    path = tf.train.Checkpoint(model=holder).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path) if "bridge" in name]
    assert len(names) == 2
    other = Holder()
    other.bridge(_encoder_output())
    tf.train.Checkpoint(model=other).restore(path).assert_consumed()
    np.testing.assert_allclose(other.bridge(_encoder_output())[0][0], before[0][0])
