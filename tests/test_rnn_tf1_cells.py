"""The TF1 `contrib.rnn` cells: NASCell, UGRNNCell, the CIFG LSTM and
LSTMCell with peepholes / projection / clipping (`seq2seq.rnn.tf1_cells`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params, tiny_rnn_cell

from seq2seq.configurable import ModeKeys
from seq2seq.errors import ConfigError
from seq2seq.models import AttentionSeq2Seq, BasicSeq2Seq
from seq2seq.rnn import (
    CoupledInputForgetGateLSTMCell,
    FusedRecurrence,
    NASCell,
    TF1LSTMCell,
    UGRNNCell,
    get_rnn_cell,
    known_cell_classes,
)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x):
    return np.maximum(x, 0.0)


def _rand(*shape, seed=0, scale=1.0):
    return (scale * np.random.RandomState(seed).randn(*shape)).astype(np.float32)


def _built_layer(name, params, width=5):
    """`get_rnn_cell(name, params)` built for [B, width] inputs, its one
    layer's cell with every weight (biases too) set to random values."""
    stack = get_rnn_cell(name, params)
    stack.build((None, width))
    cell = stack.cells[0].cell
    for index, weight in enumerate(cell.weights):
        weight.assign(_rand(*weight.shape, seed=10 + index, scale=0.5))
    return stack, cell


def _step(stack, batch, width, sizes):
    inputs = _rand(batch, width, seed=1)
    state = [_rand(batch, size, seed=2 + i) for i, size in enumerate(sizes)]
    output, new_state = stack(tf.constant(inputs), [[tf.constant(s) for s in state]])
    return inputs, state, output.numpy(), [t.numpy() for t in new_state[0]]


def _w(cell, name):
    return getattr(cell, name).numpy()


def _lstm_numpy(cell, x, h, c, coupled, forget_bias, cell_clip, proj_clip):
    z = x @ _w(cell, "kernel") + h @ _w(cell, "recurrent_kernel") + _w(cell, "bias")
    peep = cell.use_peepholes
    if coupled:
        f, g, o = np.split(z, 3, axis=-1)
    else:
        i, f, g, o = np.split(z, 4, axis=-1)
    forget = _sig(f + forget_bias + (_w(cell, "peephole_f") * c if peep else 0))
    if coupled:
        write = 1.0 - forget
    else:
        write = _sig(i + (_w(cell, "peephole_i") * c if peep else 0))
    new_c = forget * c + write * np.tanh(g)
    if cell_clip is not None:
        new_c = np.clip(new_c, -cell_clip, cell_clip)
    out = _sig(o + (_w(cell, "peephole_o") * new_c if peep else 0)) * np.tanh(new_c)
    if cell.num_proj is not None:
        out = out @ _w(cell, "projection")
        if proj_clip is not None:
            out = np.clip(out, -proj_clip, proj_clip)
    return out, new_c


LSTM_CASES = [
    # (name, params, coupled, units, output width)
    ("LSTMCell", {"num_units": 4, "use_peepholes": True}, False, 4, 4),
    ("LSTMCell", {"num_units": 4, "num_proj": 3}, False, 4, 3),
    (
        "LSTMCell",
        {
            "num_units": 4,
            "use_peepholes": True,
            "num_proj": 3,
            "proj_clip": 0.3,
            "cell_clip": 0.5,
            "forget_bias": 0.5,
        },
        False,
        4,
        3,
    ),
    (
        "LSTMBlockCell",
        {"num_units": 4, "use_peephole": True, "cell_clip": 0.5},
        False,
        4,
        4,
    ),
    (
        "tensorflow.contrib.rnn.CoupledInputForgetGateLSTMCell",
        {"num_units": 4},
        True,
        4,
        4,
    ),
    (
        "CoupledInputForgetGateLSTMCell",
        {
            "num_units": 4,
            "use_peepholes": True,
            "num_proj": 2,
            "proj_clip": 0.3,
            "cell_clip": 0.5,
            "forget_bias": 2.0,
            "state_is_tuple": True,
        },
        True,
        4,
        2,
    ),
]


@pytest.mark.parametrize("name, params, coupled, units, width", LSTM_CASES)
def test_lstm_variants_match_numpy(name, params, coupled, units, width):
    stack, cell = _built_layer(name, params)
    expected_class = CoupledInputForgetGateLSTMCell if coupled else TF1LSTMCell
    assert type(cell) is expected_class
    assert stack.state_size == [[width, units]]
    assert stack.output_size == cell.output_size == width
    x, (h, c), output, (new_h, new_c) = _step(stack, 3, 5, [width, units])
    expected_h, expected_c = _lstm_numpy(
        cell,
        x,
        h,
        c,
        coupled,
        params.get("forget_bias", 1.0),
        params.get("cell_clip"),
        params.get("proj_clip"),
    )
    assert output.shape == (3, width) and new_c.shape == (3, units)
    np.testing.assert_allclose(output, expected_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_h, expected_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_c, expected_c, rtol=1e-5, atol=1e-6)
    if "cell_clip" in params:
        assert np.abs(new_c).max() <= params["cell_clip"] + 1e-6
    if "proj_clip" in params:
        assert np.abs(output).max() <= params["proj_clip"] + 1e-6


def test_plain_lstm_params_keep_the_keras_cell():
    for params in (
        {"num_units": 3, "use_peepholes": False, "num_proj": None, "cell_clip": None},
        {"num_units": 3, "proj_clip": None},
    ):
        cell = get_rnn_cell("LSTMCell", params).cells[0].cell
        assert type(cell) is keras.layers.LSTMCell
    block = get_rnn_cell("LSTMBlockCell", {"num_units": 3, "cell_clip": -1})
    assert type(block.cells[0].cell) is keras.layers.LSTMCell


@pytest.mark.parametrize("use_biases", [False, True])
@pytest.mark.parametrize("num_proj", [None, 3])
def test_nas_cell_matches_numpy(num_proj, use_biases):
    params = {"num_units": 4, "use_biases": use_biases, "reuse": None}
    if num_proj:
        params["num_proj"] = num_proj
    stack, cell = _built_layer("NASCell", params)
    assert type(cell) is NASCell
    width = num_proj or 4
    assert stack.state_size == [[width, 4]]
    assert [w.name for w in cell.weights] == (
        ["kernel", "recurrent_kernel"]
        + (["bias"] if use_biases else [])
        + (["projection"] if num_proj else [])
    )
    x, (h, c), output, (new_h, new_c) = _step(stack, 3, 5, [width, 4])
    rec = h @ _w(cell, "recurrent_kernel")
    if use_biases:
        rec = rec + _w(cell, "bias")
    a = np.split(x @ _w(cell, "kernel"), 8, axis=-1)
    b = np.split(rec, 8, axis=-1)
    l1 = [
        _sig(a[0] + b[0]),
        _relu(a[1] + b[1]),
        _sig(a[2] + b[2]),
        _relu(a[3] * b[3]),
        np.tanh(a[4] + b[4]),
        _sig(a[5] + b[5]),
        np.tanh(a[6] + b[6]),
        _sig(a[7] + b[7]),
    ]
    l2 = [
        np.tanh(l1[0] * l1[1]),
        np.tanh(l1[2] + l1[3]),
        np.tanh(l1[4] * l1[5]),
        _sig(l1[6] + l1[7]),
    ]
    expected_c = np.tanh(l2[0] + c) * l2[1]
    expected_h = np.tanh(expected_c * np.tanh(l2[2] + l2[3]))
    if num_proj:
        expected_h = expected_h @ _w(cell, "projection")
    assert output.shape == (3, width)
    np.testing.assert_allclose(output, expected_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_h, expected_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_c, expected_c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("forget_bias", [1.0, -0.5])
def test_ugrnn_cell_matches_numpy(forget_bias):
    stack, cell = _built_layer(
        "UGRNNCell", {"num_units": 4, "forget_bias": forget_bias, "activation": "relu"}
    )
    assert type(cell) is UGRNNCell
    assert stack.state_size == [[4]]
    x, (h,), output, (new_h,) = _step(stack, 3, 5, [4])
    z = x @ _w(cell, "kernel") + h @ _w(cell, "recurrent_kernel") + _w(cell, "bias")
    g, candidate = np.split(z, 2, axis=-1)
    gate = _sig(g + forget_bias)
    expected = gate * h + (1.0 - gate) * _relu(candidate)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_h, expected, rtol=1e-5, atol=1e-6)


def test_biases_start_at_zero_and_forget_bias_is_a_constant():
    for name in ("UGRNNCell", "CoupledInputForgetGateLSTMCell"):
        stack = get_rnn_cell(name, {"num_units": 3, "forget_bias": 2.0})
        stack.build((None, 2))
        cell = stack.cells[0].cell
        assert cell.forget_bias == 2.0
        np.testing.assert_array_equal(cell.bias.numpy(), np.zeros(cell.bias.shape))


def test_names_are_known_and_tf1_paths_resolve():
    for name in ("NASCell", "UGRNNCell", "CoupledInputForgetGateLSTMCell"):
        assert name in known_cell_classes()
        stack = get_rnn_cell(f"tf.contrib.rnn.{name}", {"num_units": 2})
        assert type(stack.cells[0].cell).__name__ == name


@pytest.mark.parametrize(
    "name, params, pattern",
    [
        ("NASCell", {"num_units": 2, "forget_bias": 1.0}, "forget_bias"),
        ("UGRNNCell", {"num_units": 2, "num_proj": 3}, "num_proj"),
        ("LSTMCell", {"num_units": 2, "proj_clip": 1.0}, "proj_clip needs num_proj"),
        ("LSTMCell", {"num_units": 2, "num_proj": 0}, "num_proj"),
        ("LSTMCell", {"num_units": 2, "cell_clip": -3.0}, "cell_clip"),
        (
            "CoupledInputForgetGateLSTMCell",
            {"num_units": 2, "layer_norm": True},
            "layer_norm",
        ),
        ("LSTMCell", {"num_units": 2, "state_is_tuple": False}, "state_is_tuple"),
        ("BasicLSTMCell", {"num_units": 2, "num_proj": 2}, "num_proj"),
    ],
)
def test_bad_params_are_config_errors(name, params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        get_rnn_cell(name, params)


@pytest.mark.parametrize(
    "name, params",
    [
        ("NASCell", {"num_units": 3, "num_proj": 2}),
        ("UGRNNCell", {"num_units": 3}),
        ("CoupledInputForgetGateLSTMCell", {"num_units": 3, "use_peepholes": True}),
        ("LSTMCell", {"num_units": 3, "use_peepholes": True, "num_proj": 2}),
    ],
)
def test_generic_path_runs_them_over_sequences(name, params):
    """FusedRecurrence declines them; a keras RNN over the stack gives the
    same result as stepping the cell by hand, padding included."""
    stack = get_rnn_cell(name, params, num_layers=2)
    assert FusedRecurrence.create(stack) is None
    rnn = keras.layers.RNN(stack, return_sequences=True, return_state=True)
    inputs = tf.constant(_rand(2, 4, 5, seed=3))
    mask = tf.constant([[True] * 4, [True, True, False, False]])
    outputs, *state = rnn(inputs, mask=mask)
    manual = stack.get_initial_state(batch_size=2)
    steps = []
    for t in range(4):
        out, new = stack(inputs[:, t], manual)
        keep = mask[:, t : t + 1]
        manual = tf.nest.map_structure(
            lambda n, o, k=keep: tf.where(k, n, o), new, manual
        )
        steps.append(out)
    np.testing.assert_allclose(
        outputs[0].numpy(), tf.stack(steps, 1)[0].numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        outputs[1, :2].numpy(), tf.stack(steps, 1)[1, :2].numpy(), atol=1e-5
    )
    for got, want in zip(tf.nest.flatten(state), tf.nest.flatten(manual)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_checkpoint_keeps_peepholes_and_projection(tmp_path):
    params = {"num_units": 3, "use_peepholes": True, "num_proj": 2}
    stack, _ = _built_layer("LSTMCell", params)
    path = tf.train.Checkpoint(cell=stack).write(str(tmp_path / "ckpt"))
    names = {name for name, _ in tf.train.list_variables(path)}
    for weight in ("peephole_i", "peephole_f", "peephole_o", "projection"):
        assert any(f"/{weight}/" in name for name in names), names
    restored = get_rnn_cell("LSTMCell", params)
    restored.build((None, 5))
    tf.train.Checkpoint(cell=restored).read(path).assert_consumed()
    for a, b in zip(stack.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _features():
    def pad(rows):
        width = max(len(r) for r in rows)
        return tf.constant([r + [""] * (width - len(r)) for r in rows])

    sources = [["a", "b", "c"], ["d", "a"]]
    targets = [["c", "b", "a"], ["a", "d"]]
    wrapped = [["SEQUENCE_START"] + t + ["SEQUENCE_END"] for t in targets]
    return {
        "source_tokens": pad([s + ["SEQUENCE_END"] for s in sources]),
        "source_len": tf.constant([len(s) + 1 for s in sources], tf.int32),
        "target_tokens": pad(wrapped),
        "target_len": tf.constant([len(t) for t in wrapped], tf.int32),
    }


@pytest.mark.parametrize(
    "model_class, name, params",
    [
        (
            AttentionSeq2Seq,
            "NASCell",
            {"num_units": 8, "num_proj": 6, "use_biases": True},
        ),
        (AttentionSeq2Seq, "UGRNNCell", {"num_units": 8}),
        (
            AttentionSeq2Seq,
            "CoupledInputForgetGateLSTMCell",
            {"num_units": 8, "use_peepholes": True, "num_proj": 6, "proj_clip": 3.0},
        ),
        (
            BasicSeq2Seq,
            "LSTMCell",
            {"num_units": 8, "use_peepholes": True, "num_proj": 6, "cell_clip": 3.0},
        ),
    ],
)
def test_tiny_model_trains(tmp_path, model_class, name, params):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\nd\n")
    cell = dict(tiny_rnn_cell(8, name), cell_params=params)
    model_params = tiny_model_params(
        str(vocab),
        **{"encoder.params": {"rnn_cell": cell}, "decoder.params": {"rnn_cell": cell}},
    )
    if model_class is BasicSeq2Seq:
        model_params = {
            k: v for k, v in model_params.items() if not k.startswith("attention")
        }
    model = model_class(model_params, ModeKeys.TRAIN)
    features = model.preprocess(_features())
    optimizer = keras.optimizers.Adam(0.02)
    losses = []
    for _ in range(6):
        with tf.GradientTape() as tape:
            loss = model.forward(features, training=True).loss
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        losses.append(float(loss))
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    names = [v.path for v in model.trainable_variables]
    if "num_proj" in params:
        assert any("projection" in n for n in names), names
    # Beam search steps the same cells (state nests reordered per beam).
    model_params["inference.beam_search.beam_width"] = 3
    infer = model_class(model_params, ModeKeys.INFER)
    features = infer.preprocess(
        {k: v for k, v in _features().items() if k.startswith("source")}
    )
    predictions = infer.infer(features, max_length=4)
    assert predictions["beam_search_output.predicted_ids"].shape[2] == 3
    assert predictions["predicted_ids"].shape[0] == 2
