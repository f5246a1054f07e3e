"""Tests for seq2seq.rnn_cell: cell names, parameters, wrappers, stacking."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_ops_in_loop_bodies

from seq2seq.configurable import ModeKeys
from seq2seq.errors import ConfigError
from seq2seq.rnn import (
    DropoutWrapper,
    ExtendedMultiRNNCell,
    LayerNormLSTMCell,
    cell_from_spec,
    default_rnn_cell_params,
    get_rnn_cell,
    known_cell_classes,
    resolve_activation,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _step(cell, inputs, state=None, **kwargs):
    inputs = tf.constant(inputs, tf.float32)
    if state is None:
        state = cell.get_initial_state(batch_size=inputs.shape[0])
    return cell(inputs, state, **kwargs)


def _rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def test_default_params_are_the_originals():
    assert default_rnn_cell_params() == {
        "cell_class": "BasicLSTMCell",
        "cell_params": {"num_units": 128},
        "dropout_input_keep_prob": 1.0,
        "dropout_output_keep_prob": 1.0,
        "num_layers": 1,
        "residual_connections": False,
        "residual_combiner": "add",
        "residual_dense": False,
    }
    assert get_rnn_cell().state_size == [[128, 128]]


LSTM_LIKE = ["BasicLSTMCell", "LSTMCell", "LSTMBlockCell", "LayerNormBasicLSTMCell"]
SINGLE_STATE = ["GRUCell", "GRUBlockCell", "BasicRNNCell", "RNNCell"]


@pytest.mark.parametrize(
    "name",
    LSTM_LIKE
    + SINGLE_STATE
    + [
        "SimpleRNNCell",
        "LayerNormLSTMCell",
        "keras.layers.GRUCell",
        "keras.layers.LSTMCell",
        "tensorflow.contrib.rnn.BasicRNNCell",
        "tensorflow.contrib.rnn.LayerNormBasicLSTMCell",
        "seq2seq.contrib.rnn_cell.GRUCell",
        "seq2seq.rnn_cell.LayerNormLSTMCell",
    ],
)
def test_every_cell_name_builds_and_steps(name):
    cell = get_rnn_cell(name, {"num_units": 3}, num_layers=2)
    per_layer = [3, 3] if any(n in name for n in ("LSTM",)) else [3]
    assert cell.state_size == [per_layer, per_layer]
    output, state = _step(cell, _rand(2, 5))
    assert output.shape == (2, 3)
    assert (
        tf.nest.map_structure(lambda t: tuple(t.shape), state)
        == [[(2, 3)] * len(per_layer)] * 2
    )
    assert cell.output_size == 3


def test_known_names_cover_the_originals():
    for name in LSTM_LIKE + SINGLE_STATE:
        assert name in known_cell_classes()


def test_gru_matches_tf1_math_and_initial_biases():
    cell = cell_from_spec("GRUCell", {"num_units": 2})
    assert isinstance(cell, keras.layers.GRUCell)
    assert cell.reset_after is False
    x, h = _rand(3, 4, seed=1), _rand(3, 2, seed=2)
    new_h, _ = cell(tf.constant(x), [tf.constant(h)])
    kernel, recurrent, bias = (w.numpy() for w in cell.weights)
    # TF1 started the update (z) and reset (r) gate biases at 1, candidate at 0.
    np.testing.assert_allclose(bias, [1, 1, 1, 1, 0, 0])
    wz, wr, wh = np.split(kernel, 3, axis=1)
    uz, ur, uh = np.split(recurrent, 3, axis=1)
    bz, br, bh = np.split(bias, 3)
    r = _sigmoid(x @ wr + h @ ur + br)
    u = _sigmoid(x @ wz + h @ uz + bz)
    c = np.tanh(x @ wh + (r * h) @ uh + bh)  # reset before the matmul
    np.testing.assert_allclose(new_h, u * h + (1 - u) * c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("forget_bias", [1.0, 0.5, 0.0])
def test_lstm_forget_bias_equals_tf1_constant(forget_bias):
    cell = cell_from_spec("BasicLSTMCell", {"num_units": 2, "forget_bias": forget_bias})
    x, h, c = _rand(3, 4, seed=1), _rand(3, 2, seed=2), _rand(3, 2, seed=3)
    new_h, (h_state, c_state) = cell(tf.constant(x), [tf.constant(h), tf.constant(c)])
    kernel, recurrent, bias = (w.numpy() for w in cell.weights)
    np.testing.assert_allclose(bias, [0, 0, forget_bias, forget_bias, 0, 0, 0, 0])
    # TF1: zero bias variable, forget_bias added as a constant.
    z = x @ kernel + h @ recurrent
    i, f, g, o = np.split(z, 4, axis=1)
    new_c = c * _sigmoid(f + forget_bias) + _sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(c_state, new_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        new_h, np.tanh(new_c) * _sigmoid(o), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(h_state, new_h)


def test_layer_norm_lstm_matches_numpy():
    cell = cell_from_spec(
        "LayerNormBasicLSTMCell",
        {"num_units": 3, "forget_bias": 0.5, "norm_gain": 2.0, "norm_shift": 0.1},
    )
    assert isinstance(cell, LayerNormLSTMCell)
    x, h, c = _rand(2, 4, seed=1), _rand(2, 3, seed=2), _rand(2, 3, seed=3)
    new_h, (_, c_state) = cell(tf.constant(x), [tf.constant(h), tf.constant(c)])

    def norm(v):
        mean = v.mean(-1, keepdims=True)
        var = v.var(-1, keepdims=True)
        return (v - mean) / np.sqrt(var + 1e-6) * 2.0 + 0.1

    z = x @ cell.kernel.numpy() + h @ cell.recurrent_kernel.numpy()
    i, f, g, o = (norm(part) for part in np.split(z, 4, axis=1))
    new_c = norm(c * _sigmoid(f + 0.5) + _sigmoid(i) * np.tanh(g))
    np.testing.assert_allclose(c_state, new_c, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        new_h, np.tanh(new_c) * _sigmoid(o), rtol=1e-4, atol=1e-5
    )


def test_layer_norm_lstm_candidate_dropout_only_when_training():
    cell = cell_from_spec(
        "LayerNormBasicLSTMCell", {"num_units": 8, "dropout_keep_prob": 0.5}
    )
    x = _rand(4, 3)
    state = cell.get_initial_state(batch_size=4)
    a, _ = cell(tf.constant(x), state, training=False)
    b, _ = cell(tf.constant(x), state, training=False)
    c, _ = cell(tf.constant(x), state, training=True)
    np.testing.assert_allclose(a, b)
    assert not np.allclose(a, c)


def test_activation_names():
    cell = cell_from_spec(
        "BasicRNNCell", {"num_units": 4, "activation": "tensorflow.nn.relu"}
    )
    x = _rand(5, 3)
    out, _ = cell(tf.constant(x), [tf.zeros([5, 4])])
    kernel, _, bias = (w.numpy() for w in cell.weights)
    np.testing.assert_allclose(
        out, np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6
    )
    assert resolve_activation("tensorflow.tanh") is tf.tanh
    assert resolve_activation("tanh")(tf.constant(100.0)).numpy() == pytest.approx(1.0)
    assert resolve_activation(None) is tf.identity
    with pytest.raises(ConfigError, match="unknown activation 'nosuchfn'"):
        resolve_activation("nosuchfn")


def test_activation_outside_tensorflow_and_keras_is_refused(monkeypatch):
    calls = []
    monkeypatch.setattr("os.system", lambda *args: calls.append(args))
    for name in ("os.system", "builtins.eval", "subprocess.run"):
        with pytest.raises(ConfigError, match="unknown activation"):
            resolve_activation(name)
    assert calls == []
    assert resolve_activation("keras.activations.relu") is keras.activations.relu


def test_unknown_cell_param_names_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_rnn_cell("LSTMCell", {"num_units": 16, "use_peepholesERROR": True})
    message = str(info.value)
    assert "'use_peepholesERROR' is not a parameter of LSTMCell" in message
    assert "forget_bias" in message and "num_units" in message
    assert "\n" not in message


def test_unknown_cell_class_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        get_rnn_cell("NoSuchCell", {"num_units": 4})
    for name in ("BasicLSTMCell", "GRUCell", "LayerNormBasicLSTMCell"):
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="unknown cell class"):
        get_rnn_cell("nosuch.module.Cell", {"num_units": 4})


@pytest.mark.parametrize(
    "params, pattern",
    [
        (
            {"num_units": 4, "state_is_tuple": False},
            "state_is_tuple=False is not supported",
        ),
        ({"num_units": 4, "dropout": 0.2}, "dropout_input_keep_prob"),
        ({}, "needs num_units"),
        ({"num_units": 0}, "positive integer"),
        ({"num_units": 4, "forget_bias": 0.5, "unit_forget_bias": True}, "not both"),
    ],
)
def test_invalid_cell_params(params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        cell_from_spec("LSTMCell", params)


def test_tf1_values_that_match_keras_are_accepted():
    cell = cell_from_spec(
        "LSTMCell",
        {
            "num_units": 8,
            "use_peepholes": False,
            "forget_bias": 0.5,
            "state_is_tuple": True,
            "num_unit_shards": 2,
            "reuse": None,
        },
    )
    assert cell.units == 8 and cell.unit_forget_bias is False


def test_units_aliases():
    assert cell_from_spec("GRUCell", {"units": 5}).units == 5
    # The config defaults inject num_units: 128; a Keras-style `units` wins.
    assert cell_from_spec("GRUCell", {"num_units": 128, "units": 5}).units == 5
    assert cell_from_spec("GRUBlockCell", {"cell_size": 6}).units == 6
    assert cell_from_spec("keras.layers.SimpleRNNCell", {"num_units": 7}).units == 7
    # Keras arguments pass through for Keras-backed names.
    assert cell_from_spec("GRUCell", {"num_units": 4, "reset_after": True}).reset_after


def test_other_settings_are_validated():
    with pytest.raises(ConfigError, match="num_layers"):
        get_rnn_cell("GRUCell", {"num_units": 4}, num_layers=0)
    with pytest.raises(ConfigError, match="residual_combiner"):
        get_rnn_cell("GRUCell", {"num_units": 4}, num_layers=2, residual_combiner="max")
    with pytest.raises(ConfigError, match="dropout_input_keep_prob"):
        get_rnn_cell("GRUCell", {"num_units": 4}, dropout_input_keep_prob=0.0)


def test_init_scale_sets_uniform_kernels():
    cell = get_rnn_cell("GRUCell", {"num_units": 16}, num_layers=2, init_scale=0.04)
    _step(cell, _rand(2, 8))
    kernels = [w for w in cell.weights if "kernel" in w.path]
    assert len(kernels) == 4
    for weight in kernels:
        values = weight.numpy()
        assert np.abs(values).max() <= 0.04 and values.std() > 0.01
    # Each kernel gets its own draw.
    assert not np.allclose(kernels[0].numpy()[:8], kernels[2].numpy()[:8])


# ------------------------------------------------------------- dropout


def _copy_weights(src, dst, inputs):
    _step(dst, inputs)
    dst.set_weights(src.get_weights())


def test_dropout_only_in_train_mode_and_training():
    x = np.abs(_rand(64, 6)) + 0.1
    plain = get_rnn_cell("BasicRNNCell", {"num_units": 16})
    ref, _ = _step(plain, x)
    drop = get_rnn_cell("BasicRNNCell", {"num_units": 16}, dropout_output_keep_prob=0.5)
    _copy_weights(plain, drop, x)
    np.testing.assert_allclose(_step(drop, x, training=False)[0], ref)
    np.testing.assert_allclose(_step(drop, x)[0], ref)
    out, _ = _step(drop, x, training=True)
    out, ref = out.numpy(), ref.numpy()
    dropped = out == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(out[~dropped], 2 * ref[~dropped], rtol=1e-5)

    for mode in (ModeKeys.EVAL, ModeKeys.INFER):
        cell = get_rnn_cell(
            "BasicRNNCell",
            {"num_units": 16},
            dropout_input_keep_prob=0.5,
            dropout_output_keep_prob=0.5,
            mode=mode,
        )
        _copy_weights(plain, cell, x)
        np.testing.assert_allclose(_step(cell, x, training=True)[0], ref)


def test_input_dropout_changes_the_input():
    x = _rand(32, 6)
    cell = get_rnn_cell("BasicRNNCell", {"num_units": 4}, dropout_input_keep_prob=0.5)
    a, _ = _step(cell, x, training=True)
    b, _ = _step(cell, x, training=True)
    assert not np.allclose(a, b)  # a fresh mask every step


def test_dropout_wrapper_keeps_the_state_structure():
    inner = keras.layers.LSTMCell(3)
    wrapper = DropoutWrapper(inner, input_keep_prob=0.5)
    assert wrapper.state_size == inner.state_size and wrapper.output_size == 3


# ----------------------------------------------------------- residuals


def _simple_rnn_numpy(cell, x, h):
    kernel, recurrent, bias = (w.numpy() for w in cell.weights)
    return np.tanh(x @ kernel + h @ recurrent + bias)


def _layers(cell):
    return [layer.cell for layer in cell.cells]


@pytest.mark.parametrize("dense", [False, True])
def test_residual_add_numbers(dense):
    x = _rand(3, 2, seed=4)
    cell = get_rnn_cell(
        "BasicRNNCell",
        {"num_units": 2},
        num_layers=3,
        residual_connections=True,
        residual_dense=dense,
    )
    states = [[tf.constant(_rand(3, 2, seed=10 + i))] for i in range(3)]
    out, new_states = cell(tf.constant(x), states)
    previous = [x]
    for layer, state, new_state in zip(_layers(cell), states, new_states):
        y = _simple_rnn_numpy(layer, previous[-1], state[0].numpy())
        np.testing.assert_allclose(new_state[0], y, rtol=1e-5, atol=1e-6)
        previous.append(y + (sum(previous) if dense else previous[-1]))
    np.testing.assert_allclose(out, previous[-1], rtol=1e-5, atol=1e-6)


def test_residual_projects_a_different_input_width():
    x = _rand(3, 5, seed=4)
    cell = get_rnn_cell(
        "BasicRNNCell", {"num_units": 2}, num_layers=2, residual_connections=True
    )
    out, _ = _step(cell, x)
    dense = cell.input_transform
    projected = x @ dense.kernel.numpy() + dense.bias.numpy()
    first, second = _layers(cell)
    x1 = _simple_rnn_numpy(first, projected, np.zeros([3, 2])) + projected
    x2 = _simple_rnn_numpy(second, x1, np.zeros([3, 2])) + x1
    np.testing.assert_allclose(out, x2, rtol=1e-5, atol=1e-6)


def test_residual_mean_numbers():
    x = _rand(3, 2, seed=4)
    cell = get_rnn_cell(
        "BasicRNNCell",
        {"num_units": 2},
        num_layers=2,
        residual_connections=True,
        residual_combiner="mean",
        residual_dense=True,
    )
    out, _ = _step(cell, x)
    first, second = _layers(cell)
    x1 = _simple_rnn_numpy(first, x, np.zeros([3, 2])) + x
    x2 = _simple_rnn_numpy(second, x1, np.zeros([3, 2])) + (x + x1) / 2
    np.testing.assert_allclose(out, x2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "width, dense, expected",
    [(2, False, 6), (5, False, 9), (2, True, 8), (5, True, 14)],
)
def test_residual_concat_widths(width, dense, expected):
    cell = get_rnn_cell(
        "GRUCell",
        {"num_units": 2},
        num_layers=2,
        residual_connections=True,
        residual_combiner="concat",
        residual_dense=dense,
    )
    assert cell.output_size is None  # known once the input width is
    out, states = _step(cell, _rand(1, width))
    assert out.shape == (1, expected) and cell.output_size == expected
    assert [s[0].shape for s in states] == [(1, 2), (1, 2)]


def test_residuals_ignored_with_one_layer():
    cell = get_rnn_cell("GRUCell", {"num_units": 2}, residual_connections=True)
    out, _ = _step(cell, _rand(1, 5))
    assert out.shape == (1, 2) and cell.input_transform is None


# --------------------------------------------------- structure, saving


def test_states_are_plain_nests_for_beam_search():
    cell = get_rnn_cell("LSTMCell", {"num_units": 3}, num_layers=2)
    _, state = _step(cell, _rand(4, 2))
    x2 = _rand(4, 2, seed=1)
    out, _ = cell(tf.constant(x2), state)
    reordered = tf.nest.map_structure(lambda t: tf.gather(t, [3, 2, 1, 0]), state)
    tf.nest.assert_same_structure(reordered, cell.state_size)
    out2, _ = cell(tf.constant(x2[::-1].copy()), reordered)
    np.testing.assert_allclose(out2, out.numpy()[::-1], rtol=1e-5, atol=1e-6)
    # Tuples are accepted as states too.
    cell(tf.constant(_rand(4, 2)), tuple(tuple(layer) for layer in state))


def test_runs_in_keras_rnn_and_tf_function():
    cell = get_rnn_cell("GRUCell", {"num_units": 3}, num_layers=2)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    x = tf.constant(_rand(2, 4, 5))
    eager, *_ = rnn(x)
    graph, *_ = tf.function(lambda v: rnn(v))(x)
    np.testing.assert_allclose(eager, graph, rtol=1e-5, atol=1e-6)


def test_checkpoint_saves_every_layer(tmp_path):
    x = _rand(2, 5)
    cell = get_rnn_cell(
        "LSTMCell", {"num_units": 2}, num_layers=3, residual_connections=True
    )
    out, _ = _step(cell, x)
    path = tf.train.Checkpoint(cell=cell).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path) if "cell/" in name]
    assert len(names) == len(cell.weights) == 3 * 3 + 2
    other = get_rnn_cell(
        "LSTMCell", {"num_units": 2}, num_layers=3, residual_connections=True
    )
    _step(other, x)
    tf.train.Checkpoint(cell=other).restore(path).assert_consumed()
    np.testing.assert_allclose(_step(other, x)[0], out)


def test_multi_cell_accepts_any_keras_cells():
    cell = ExtendedMultiRNNCell([keras.layers.GRUCell(2), keras.layers.LSTMCell(2)])
    assert cell.state_size == [[2], [2, 2]]
    out, _ = _step(cell, _rand(1, 3))
    assert out.shape == (1, 2)


# ------------------------------------------------------ fused recurrence

FUSED_CASES = [
    pytest.param("GRUCell", {}, 1, id="gru"),
    pytest.param("GRUCell", {"reset_after": True}, 2, id="gru-reset-after-2"),
    pytest.param("BasicLSTMCell", {}, 2, id="lstm-2"),
    pytest.param("LSTMCell", {"use_bias": False}, 1, id="lstm-no-bias"),
]


@pytest.mark.parametrize("cell_class,extra,layers", FUSED_CASES)
def test_fused_recurrence_equals_keras_rnn(cell_class, extra, layers):
    from seq2seq.rnn import FusedRecurrence

    cell = get_rnn_cell(
        cell_class, {"num_units": 5, **extra}, num_layers=layers, mode="infer"
    )
    rnn = keras.layers.RNN(
        cell, return_sequences=True, return_state=True, zero_output_for_mask=True
    )
    inputs = tf.random.stateless_normal([3, 6, 4], seed=[1, 2])
    mask = tf.sequence_mask([6, 3, 1], 6)
    initial = tf.nest.map_structure(
        lambda t: tf.random.stateless_normal(t.shape, seed=[3, 4]),
        cell.get_initial_state(batch_size=3),
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        want, *want_state = rnn(inputs, mask=mask, initial_state=initial)
        fused = FusedRecurrence.create(cell)
        assert fused is not None
        got, got_state = fused.run(inputs, initial, training=False, mask=mask)
        want_loss = tf.reduce_sum(want**2) + tf.reduce_sum(want_state[0][0])
        got_loss = tf.reduce_sum(got**2) + tf.reduce_sum(got_state[0][0])
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_array_equal(got[2, 1:], 0.0)
    for a, b in zip(tf.nest.flatten(got_state), tf.nest.flatten(want_state)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for source in [inputs] + cell.trainable_variables:
        np.testing.assert_allclose(
            tape.gradient(got_loss, source),
            tape.gradient(want_loss, source),
            rtol=1e-5,
            atol=1e-6,
        )


def test_fused_recurrence_declines_cells_it_cannot_run():
    from seq2seq.rnn import FusedRecurrence

    assert FusedRecurrence.create(get_rnn_cell("BasicRNNCell")) is None
    assert FusedRecurrence.create(keras.layers.GRUCell(4)) is None
    residual = get_rnn_cell("GRUCell", num_layers=2, residual_connections=True)
    assert FusedRecurrence.create(residual) is None
    assert FusedRecurrence.create(get_rnn_cell("GRUCell", num_layers=2)) is not None


def test_fused_recurrence_dropout_only_when_training_in_train_mode():
    from seq2seq.rnn import FusedRecurrence

    inputs = tf.random.stateless_normal([2, 4, 3], seed=[5, 6])
    outputs = {}
    for mode in ("train", "eval"):
        cell = get_rnn_cell(
            "GRUCell",
            {"num_units": 4},
            dropout_input_keep_prob=0.5,
            dropout_output_keep_prob=0.5,
            mode=mode,
        )
        fused = FusedRecurrence.create(cell)
        initial = cell.get_initial_state(batch_size=2)
        plain, _ = fused.run(inputs, initial, training=False)
        reference = keras.layers.RNN(cell, return_sequences=True)(inputs)
        np.testing.assert_allclose(plain, reference, atol=1e-6)
        outputs[mode], _ = fused.run(inputs, initial, training=True)
        if mode == "eval":
            np.testing.assert_allclose(outputs[mode], plain, atol=1e-6)
    # Output dropout zeroes about half of the training outputs.
    zeros = np.mean(outputs["train"].numpy() == 0.0)
    assert 0.2 < zeros < 0.8


def test_run_together_equals_separate_runs():
    """Two recurrences in one loop (different cells, widths and initial
    states) give exactly what each gives on its own, masks included."""
    from seq2seq.rnn import FusedRecurrence, run_together

    rng = np.random.default_rng(7)
    gru = get_rnn_cell("GRUCell", {"num_units": 3}, num_layers=2, mode="eval")
    lstm = get_rnn_cell("BasicLSTMCell", {"num_units": 4}, mode="eval")
    gru.build((None, 5))
    lstm.build((None, 2))
    for variable in gru.weights + lstm.weights:
        variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    fused = [FusedRecurrence.create(gru), FusedRecurrence.create(lstm)]
    inputs = [
        tf.constant(rng.normal(size=(2, 4, 5)), tf.float32),
        tf.constant(rng.normal(size=(2, 4, 2)), tf.float32),
    ]
    states = [
        [[tf.constant(rng.normal(size=(2, 3)), tf.float32)] for _ in range(2)],
        [[tf.constant(rng.normal(size=(2, 4)), tf.float32) for _ in range(2)]],
    ]
    mask = tf.sequence_mask([4, 2], maxlen=4)
    outputs, finals = run_together(fused, inputs, states, False, mask)
    for index in range(2):
        alone, final = fused[index].run(inputs[index], states[index], False, mask)
        np.testing.assert_allclose(outputs[index], alone, rtol=1e-6, atol=1e-6)
        for got, want in zip(tf.nest.flatten(finals[index]), tf.nest.flatten(final)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert outputs[0].shape == (2, 4, 3) and outputs[1].shape == (2, 4, 4)
    np.testing.assert_array_equal(outputs[1][1, 2:], 0.0)


def test_dotted_cell_class_must_be_a_keras_layer(monkeypatch):
    """A config names classes, never functions: `cell_class: os.system` is
    refused before anything is called."""
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *args, **kwargs: calls.append(args))
    for build in (
        lambda: cell_from_spec("os.system", {"num_units": "echo hacked"}),
        lambda: get_rnn_cell(cell_class="os.system", cell_params={"units": 1}),
    ):
        with pytest.raises(ConfigError) as info:
            build()
        message = str(info.value)
        assert "'os.system'" in message
        assert "keras.layers.Layer" in message
    assert calls == []
    # A class that is not a layer is refused the same way.
    with pytest.raises(ConfigError, match="subclass of keras.layers.Layer"):
        cell_from_spec("collections.OrderedDict", {"num_units": 4})


def test_old_import_path_reexports_the_package():
    import seq2seq.rnn as rnn
    import seq2seq.rnn_cell as rnn_cell

    for name in rnn.__all__:
        assert getattr(rnn_cell, name) is getattr(rnn, name)
    cell = cell_from_spec("seq2seq.rnn_cell.LayerNormLSTMCell", {"num_units": 3})
    assert type(cell) is rnn.LayerNormLSTMCell


def test_fused_recurrence_draws_every_step_mask_before_its_loop():
    """A random op inside the loop would hand out its draws in the order the
    loop's parallel iterations reach it, so that one seed could train
    different weights; the masks are drawn before the loop instead."""
    from seq2seq.rnn import FusedRecurrence

    cell = get_rnn_cell(
        "GRUCell",
        {"num_units": 16},
        num_layers=2,
        dropout_input_keep_prob=0.5,
        dropout_output_keep_prob=0.5,
        mode="train",
    )
    fused = FusedRecurrence.create(cell)
    inputs = tf.random.stateless_normal([8, 5, 3], seed=[1, 2])
    initial = cell.get_initial_state(batch_size=8)
    fused.build(inputs.shape)

    @tf.function
    def run():
        return fused.run(inputs, initial, training=True)[0]

    inside, outside = random_ops_in_loop_bodies(run)
    assert inside == 0
    # First layer input (whole sequence), second layer input, two outputs.
    assert outside == 4
    outputs = run().numpy()
    # Output dropout: about half of the outputs are zero, with a different
    # pattern at each step (the masks are not shared between steps).
    zeros = outputs == 0.0
    assert 0.3 < zeros.mean() < 0.7
    assert all(
        (zeros[:, t] != zeros[:, t + 1]).any() for t in range(outputs.shape[1] - 1)
    )
    # Kept units are scaled by 1 / keep_prob: with output dropout only, the
    # training outputs are those of a run without dropout, zeroed or doubled.
    single = get_rnn_cell(
        "GRUCell", {"num_units": 16}, dropout_output_keep_prob=0.5, mode="train"
    )
    fused = FusedRecurrence.create(single)
    initial = single.get_initial_state(batch_size=8)
    quiet = fused.run(inputs, initial, training=False)[0].numpy()
    noisy = fused.run(inputs, initial, training=True)[0].numpy()
    kept = noisy != 0.0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(noisy[kept], 2.0 * quiet[kept], rtol=1e-6)


@pytest.mark.parametrize(
    "cell_class, params",
    [
        ("BasicRNNCell", {}),
        ("LSTMCell", {"num_layers": 2, "residual_connections": True}),
    ],
)
def test_run_cell_equals_a_keras_rnn_with_padding(cell_class, params):
    """`run_cell` gives a `keras.layers.RNN`'s outputs (zero at padding) and
    final states (those of each sequence's last valid step)."""
    from seq2seq.rnn import run_cell

    cell = get_rnn_cell(cell_class, {"num_units": 5}, **params)
    inputs = tf.random.stateless_normal([3, 6, 5], seed=[4, 4])
    mask = tf.sequence_mask([6, 2, 4], 6)
    rnn = keras.layers.RNN(
        cell, return_sequences=True, return_state=True, zero_output_for_mask=True
    )
    expected, *expected_state = rnn(inputs, mask=mask)
    initial = cell.get_initial_state(batch_size=3)
    outputs, state = run_cell(cell, inputs, initial, training=False, mask=mask)
    np.testing.assert_allclose(outputs.numpy(), expected.numpy(), atol=1e-6)
    assert outputs.numpy()[1, 2:].max() == outputs.numpy()[1, 2:].min() == 0.0
    assert len(tf.nest.flatten(state)) == len(tf.nest.flatten(expected_state))
    for ours, theirs in zip(tf.nest.flatten(state), tf.nest.flatten(expected_state)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)
