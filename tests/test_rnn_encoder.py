"""Tests for the RNN encoders (seq2seq.encoders.rnn_encoder)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_ops_in_loop_bodies

import seq2seq.encoders
from seq2seq.configurable import ModeKeys, locate_class
from seq2seq.encoders import (
    BidirectionalRNNEncoder,
    Encoder,
    EncoderOutput,
    StackBidirectionalRNNEncoder,
    UnidirectionalRNNEncoder,
)
from seq2seq.errors import ConfigError
from seq2seq.rnn import default_rnn_cell_params

ENCODERS = [
    UnidirectionalRNNEncoder,
    BidirectionalRNNEncoder,
    StackBidirectionalRNNEncoder,
]
LENGTHS = [5, 3, 1]


def _params(cell_class="LSTMCell", units=3, layers=2, **cell):
    block = {"cell_class": cell_class, "cell_params": {"num_units": units}}
    block["num_layers"] = layers
    block.update(cell)
    return {"rnn_cell": block}


def _inputs(steps=5, batch=3, depth=4, seed=0):
    return np.random.RandomState(seed).randn(batch, steps, depth).astype(np.float32)


def _pad(x, steps):
    """Pads [B, S, E] with junk (not zeros) up to `steps` positions."""
    junk = np.full((x.shape[0], steps - x.shape[1], x.shape[2]), 7.0, np.float32)
    return np.concatenate([x, junk], axis=1)


def _with_junk_after_lengths(x, lengths):
    x = x.copy()
    for row, length in enumerate(lengths):
        x[row, length:] = 9.0
    return x


def _shapes(nest):
    return tf.nest.map_structure(lambda t: tuple(t.shape), nest)


def test_default_params_are_the_originals():
    for cls in ENCODERS:
        assert cls.default_params() == {
            "rnn_cell": default_rnn_cell_params(),
            "init_scale": 0.04,
        }
        assert issubclass(cls, Encoder)


def test_names_resolve():
    assert seq2seq.encoders.BidirectionalRNNEncoder is BidirectionalRNNEncoder
    found = locate_class("seq2seq.encoders.rnn_encoder.StackBidirectionalRNNEncoder")
    assert found is StackBidirectionalRNNEncoder
    assert locate_class("UnidirectionalRNNEncoder", ["seq2seq.encoders"])


@pytest.mark.parametrize(
    "cls, width, state_shapes",
    [
        (UnidirectionalRNNEncoder, 3, [[(3, 3), (3, 3)], [(3, 3), (3, 3)]]),
        (
            BidirectionalRNNEncoder,
            6,
            (
                [[(3, 3), (3, 3)], [(3, 3), (3, 3)]],
                [[(3, 3), (3, 3)], [(3, 3), (3, 3)]],
            ),
        ),
        (
            StackBidirectionalRNNEncoder,
            6,
            (
                [[(3, 3), (3, 3)], [(3, 3), (3, 3)]],
                [[(3, 3), (3, 3)], [(3, 3), (3, 3)]],
            ),
        ),
    ],
)
def test_shapes_and_state_structure(cls, width, state_shapes):
    encoder = cls(_params(), ModeKeys.TRAIN)
    out = encoder(tf.constant(_inputs()), tf.constant(LENGTHS))
    assert isinstance(out, EncoderOutput)
    assert out.outputs.shape == (3, 5, width)
    assert _shapes(out.final_state) == state_shapes
    assert out.attention_values is out.outputs
    np.testing.assert_array_equal(out.attention_values_length, LENGTHS)
    assert encoder.encode(tf.constant(_inputs()), LENGTHS).outputs.shape == (
        3,
        5,
        width,
    )


@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("cell_class", ["GRUCell", "LSTMCell"])
def test_padding_does_not_leak(cls, cell_class):
    encoder = cls(_params(cell_class), ModeKeys.EVAL)
    x = _inputs()
    base = encoder(tf.constant(x), tf.constant(LENGTHS))
    # Junk in the padding and extra padding leave valid steps unchanged.
    junk = _pad(_with_junk_after_lengths(x, LENGTHS), 8)
    padded = encoder(tf.constant(junk), tf.constant(LENGTHS))
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(
            padded.outputs[row, :length], base.outputs[row, :length], atol=1e-6
        )
        assert np.all(padded.outputs.numpy()[row, length:] == 0.0)
        assert np.all(base.outputs.numpy()[row, length:] == 0.0)
    for a, b in zip(
        tf.nest.flatten(base.final_state), tf.nest.flatten(padded.final_state)
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Each sequence alone, without padding, gives the same final state.
    for row, length in enumerate(LENGTHS):
        alone = encoder(tf.constant(x[row : row + 1, :length]), tf.constant([length]))
        np.testing.assert_allclose(
            alone.outputs[0], base.outputs[row, :length], atol=1e-6
        )
        for a, b in zip(
            tf.nest.flatten(alone.final_state), tf.nest.flatten(base.final_state)
        ):
            np.testing.assert_allclose(a[0], b[row], atol=1e-6)


def test_backward_direction_reads_each_sequence_from_its_end():
    encoder = BidirectionalRNNEncoder(_params("GRUCell", layers=1), ModeKeys.EVAL)
    x = _inputs()
    out = encoder(tf.constant(x), tf.constant(LENGTHS))
    for row, length in enumerate(LENGTHS):
        reversed_prefix = x[row : row + 1, :length][:, ::-1].copy()
        ref, ref_state = encoder.rnn_bw(tf.constant(reversed_prefix))
        np.testing.assert_allclose(
            out.outputs[row, :length, 3:], ref.numpy()[0, ::-1], atol=1e-6
        )
        np.testing.assert_allclose(
            out.final_state[1][0][0][row], ref_state[0][0], atol=1e-6
        )
        # The forward half is an ordinary left-to-right run.
        fwd, fwd_state = encoder.rnn_fw(tf.constant(x[row : row + 1, :length]))
        np.testing.assert_allclose(out.outputs[row, :length, :3], fwd[0], atol=1e-6)
        np.testing.assert_allclose(
            out.final_state[0][0][0][row], fwd_state[0][0], atol=1e-6
        )


def test_stacked_layers_read_both_directions_below():
    encoder = StackBidirectionalRNNEncoder(_params("GRUCell", layers=2), ModeKeys.EVAL)
    x = _inputs()
    out = encoder(tf.constant(x), tf.constant(LENGTHS))
    row, length = 1, LENGTHS[1]
    seq = x[row : row + 1, :length]

    def bidi(layer, inputs):
        fw, _ = encoder.rnns_fw[layer](tf.constant(inputs))
        bw, _ = encoder.rnns_bw[layer](tf.constant(inputs[:, ::-1].copy()))
        return np.concatenate([fw.numpy(), bw.numpy()[:, ::-1]], axis=-1)

    expected = bidi(1, bidi(0, seq))
    np.testing.assert_allclose(out.outputs[row, :length], expected[0], atol=1e-6)
    assert len(encoder.rnns_fw) == len(encoder.rnns_bw) == 2


def test_one_stacked_layer_has_the_bidirectional_structure():
    stacked = StackBidirectionalRNNEncoder(_params("GRUCell", layers=1), ModeKeys.EVAL)
    bidi = BidirectionalRNNEncoder(_params("GRUCell", layers=1), ModeKeys.EVAL)
    x, lengths = tf.constant(_inputs()), tf.constant(LENGTHS)
    a, b = stacked(x, lengths), bidi(x, lengths)
    tf.nest.assert_same_structure(a.final_state, b.final_state)
    assert a.outputs.shape == b.outputs.shape


def test_init_scale_and_tf1_gru_biases():
    encoder = UnidirectionalRNNEncoder(_params("GRUCell", units=8, layers=1), "train")
    encoder(tf.constant(_inputs()), tf.constant(LENGTHS))
    kernels = [w.numpy() for w in encoder.weights if "kernel" in w.path]
    assert len(kernels) == 2
    for kernel in kernels:
        assert np.abs(kernel).max() <= 0.04
    (bias,) = [w.numpy() for w in encoder.weights if w.path.endswith("bias")]
    np.testing.assert_array_equal(bias, [1.0] * 16 + [0.0] * 8)


def test_dropout_only_in_train_mode_with_training():
    x, lengths = tf.constant(_inputs()), tf.constant(LENGTHS)
    params = _params("GRUCell", units=8, dropout_input_keep_prob=0.5)
    train = UnidirectionalRNNEncoder(params, ModeKeys.TRAIN)
    a = train(x, lengths, training=True).outputs
    b = train(x, lengths, training=True).outputs
    c = train(x, lengths, training=False).outputs
    d = train(x, lengths).outputs
    assert not np.allclose(a, b)
    np.testing.assert_allclose(c, d)
    infer = UnidirectionalRNNEncoder(params, ModeKeys.INFER)
    infer(x, lengths)
    infer.set_weights(train.get_weights())
    np.testing.assert_allclose(infer(x, lengths, training=True).outputs, c, atol=1e-6)
    # Padded positions stay zero under dropout too.
    assert np.all(a.numpy()[2, 1:] == 0.0)


_RESIDUAL = _params(
    "GRUCell",
    units=4,
    layers=2,
    residual_connections=True,
    dropout_input_keep_prob=0.5,
    dropout_output_keep_prob=0.5,
)
_LAYER_NORM = _params("LayerNormBasicLSTMCell", units=4, layers=1)
_LAYER_NORM["rnn_cell"]["cell_params"]["dropout_keep_prob"] = 0.5


@pytest.mark.parametrize(
    "cls, params",
    [
        (UnidirectionalRNNEncoder, _RESIDUAL),
        (BidirectionalRNNEncoder, _RESIDUAL),
        (UnidirectionalRNNEncoder, _LAYER_NORM),
    ],
    ids=["uni-residual", "bi-residual", "uni-layer-norm"],
)
def test_stepped_cells_draw_no_stateful_random_op_in_their_loops(cls, params):
    """A cell `FusedRecurrence` does not run (a residual stack; a layer-norm
    LSTM with its own candidate dropout) is stepped by `run_cell`, whose
    dropout a seed fixes: no stateful random op inside the loops."""
    encoder = cls(params, ModeKeys.TRAIN)
    inputs = _inputs(depth=4)
    lengths = tf.constant([5, 2, 4])
    quiet = encoder(inputs, lengths, training=False).outputs.numpy()

    @tf.function
    def outputs():
        return encoder(inputs, lengths, training=True).outputs

    inside, outside = random_ops_in_loop_bodies(outputs)
    assert inside == 0 and outside >= 1
    first = outputs().numpy()
    assert not np.allclose(first, quiet)
    assert not np.allclose(outputs().numpy(), first)
    # Padding stays zero.
    assert np.abs(first[1, 2:]).max() == 0.0


def test_param_errors():
    with pytest.raises(ConfigError, match="unknown parameter 'layers'"):
        UnidirectionalRNNEncoder({"rnn_cell": {"layers": 2}}, ModeKeys.TRAIN)
    with pytest.raises(ConfigError, match="not a parameter of GRUCell"):
        BidirectionalRNNEncoder(
            {"rnn_cell": {"cell_class": "GRUCell", "cell_params": {"bogus": 1}}},
            ModeKeys.TRAIN,
        )
    with pytest.raises(ConfigError, match="num_layers"):
        StackBidirectionalRNNEncoder({"rnn_cell": {"num_layers": 0}}, ModeKeys.TRAIN)


def test_tf_function_and_checkpoint_round_trip(tmp_path):
    x, lengths = tf.constant(_inputs()), tf.constant(LENGTHS)
    encoder = StackBidirectionalRNNEncoder(_params(layers=2), ModeKeys.EVAL)
    eager = encoder(x, lengths)
    graph = tf.function(lambda a, b: encoder(a, b))(x, lengths)
    np.testing.assert_allclose(eager.outputs, graph.outputs, atol=1e-6)
    path = tf.train.Checkpoint(encoder=encoder).save(str(tmp_path / "ckpt"))
    saved = [
        name for name, _ in tf.train.list_variables(path) if name.startswith("encoder")
    ]
    assert len(saved) == len(encoder.weights) == 2 * 2 * 3
    other = StackBidirectionalRNNEncoder(_params(layers=2), ModeKeys.INFER)
    other(x, lengths)
    tf.train.Checkpoint(encoder=other).restore(path).assert_consumed()
    np.testing.assert_allclose(other(x, lengths).outputs, eager.outputs, atol=1e-6)


def test_dynamic_shapes_in_tf_function():
    encoder = BidirectionalRNNEncoder(_params("GRUCell", layers=1), ModeKeys.EVAL)
    fn = tf.function(
        lambda a, b: encoder(a, b).outputs,
        input_signature=[
            tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
    )
    assert fn(tf.constant(_inputs(steps=6)), tf.constant([6, 2, 4])).shape == (3, 6, 6)
    assert fn(tf.constant(_inputs(steps=2, batch=1)), tf.constant([2])).shape == (
        1,
        2,
        6,
    )


@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("in_graph", [False, True])
def test_first_call_builds_without_a_scratch_trace(cls, in_graph, monkeypatch):
    """An encoder builds its cells on its first call; Keras is not left to
    trace `call` once more in a scratch graph to find their variables."""
    from keras.src import backend

    traced = []

    def counting(fn, *args, **kwargs):
        traced.append(fn)
        return real(fn, *args, **kwargs)

    real = backend.compute_output_spec
    monkeypatch.setattr(backend, "compute_output_spec", counting)
    encoder = cls(_params("GRUCell", layers=2), ModeKeys.INFER)
    x, lengths = tf.constant(_inputs()), tf.constant(LENGTHS)
    call = tf.function(lambda a, b: encoder(a, b).outputs) if in_graph else None
    outputs = call(x, lengths) if in_graph else encoder(x, lengths).outputs
    assert traced == []
    assert encoder.built
    layers = 2 if cls is UnidirectionalRNNEncoder else 4
    assert len(encoder.trainable_weights) == layers * 3  # GRU: kernel, recurrent, bias
    np.testing.assert_allclose(encoder(x, lengths).outputs, outputs, atol=1e-6)
