"""The cuDNN path of `FusedRecurrence.run`, checked on a CPU.

There is no GPU here, so Keras's cuDNN functions are replaced by a stand-in
with the same contract (right-padded mask, no empty sequence, zero outputs at
padding, final state at each sequence's last valid step) that computes with
Keras's own generic `keras.layers.GRU` / `keras.layers.LSTM` loop, the
reference Keras keeps equal to its cuDNN kernels. What is checked is this
project's side: which cells qualify, the weights and states handed over, the
layer stacking, dropout, masking and empty sequences, and that the result
equals the step loop's.
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params
from test_trainer import make_trainer

from seq2seq.encoders.rnn_encoder import BidirectionalRNNEncoder
from seq2seq.rnn import FusedRecurrence, cudnn, cudnn_allowed, get_rnn_cell


class FakeCudnn:
    """Stands in for `keras.src.backend.tensorflow.rnn` (gru, lstm).

    `calls` records every call; `eager_calls` those that computed (traced
    calls, e.g. Keras's first symbolic pass over a layer, get zeros).
    """

    def __init__(self):
        self.calls = []

    @property
    def eager_calls(self):
        return [call[:3] for call in self.calls if call[3]]

    def _record(self, kind, inputs, kernel, units, num_states):
        eager = tf.executing_eagerly()
        self.calls.append((kind, tuple(inputs.shape), tuple(kernel.shape), eager))
        if eager:
            return None
        outputs = tf.zeros(tf.concat([tf.shape(inputs)[:2], [units]], 0))
        state = [tf.zeros([tf.shape(inputs)[0], units])] * num_states
        return outputs[:, -1], outputs, state

    @staticmethod
    def _check_mask(mask):
        if mask is None:  # every sequence has the full length
            return
        mask = np.asarray(mask)
        lengths = mask.sum(axis=1)
        assert (lengths > 0).all(), "cuDNN rejects empty sequences"
        expected = np.arange(mask.shape[1])[None, :] < lengths[:, None]
        assert (mask == expected).all(), "cuDNN needs right-padded masks"

    def _reference(self, kind, inputs, states, mask, weights, activations):
        """Keras's generic loop with the given weights, cuDNN's contract."""
        traced = self._record(
            kind, inputs, weights[0], weights[1].shape[0], len(states)
        )
        if traced is not None:
            return traced
        self._check_mask(mask)
        layer_class = keras.layers.GRU if kind == "gru" else keras.layers.LSTM
        extra = {"reset_after": True} if kind == "gru" else {}
        layer = layer_class(
            weights[1].shape[0],
            activation=activations[0],
            recurrent_activation=activations[1],
            use_cudnn=False,
            return_sequences=True,
            return_state=True,
            zero_output_for_mask=True,
            **extra,
        )
        layer.build(inputs.shape)
        for variable, value in zip(layer.cell.weights, weights):
            variable.assign(value)
        outputs, *state = layer(inputs, initial_state=states, mask=mask)
        return outputs[:, -1], outputs, state

    def gru(
        self,
        inputs,
        initial_state,
        mask,
        kernel,
        recurrent_kernel,
        bias,
        activation,
        recurrent_activation,
        return_sequences=False,
        reset_after=True,
        **unused,
    ):
        assert reset_after and return_sequences and not unused
        return self._reference(
            "gru",
            inputs,
            [initial_state],
            mask,
            [kernel, recurrent_kernel, bias],
            (activation, recurrent_activation),
        )

    def lstm(
        self,
        inputs,
        initial_h,
        initial_c,
        mask,
        kernel,
        recurrent_kernel,
        bias,
        activation,
        recurrent_activation,
        return_sequences=False,
        **unused,
    ):
        assert return_sequences and not unused
        return self._reference(
            "lstm",
            inputs,
            [initial_h, initial_c],
            mask,
            [kernel, recurrent_kernel, bias],
            (activation, recurrent_activation),
        )


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretends a GPU is visible and routes the cuDNN calls to `FakeCudnn`."""
    fake = FakeCudnn()
    monkeypatch.setattr(cudnn, "_keras_tf_rnn", fake)
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: True)
    return fake


def _cell(cell_class, cell_params, num_layers=1, **kwargs):
    cell = get_rnn_cell(
        cell_class=cell_class,
        cell_params=dict(cell_params),
        num_layers=num_layers,
        mode="eval",
        **kwargs,
    )
    cell.build((None, 5))
    rng = np.random.default_rng(0)
    for variable in cell.weights:
        variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    return cell


def _random_state(cell, batch, rng):
    return [
        [tf.constant(rng.normal(size=(batch, size)), tf.float32) for size in layer]
        for layer in cell.state_size
    ]


def _run(cell, inputs, state, mask, training=False):
    fused = FusedRecurrence.create(cell)
    return fused.run(inputs, state, training, mask=mask)


CASES = [
    ("GRUCell", {"num_units": 4, "reset_after": True}, 1),
    ("GRUCell", {"num_units": 4, "reset_after": True}, 2),
    ("BasicLSTMCell", {"num_units": 3}, 1),
    ("LSTMCell", {"num_units": 3}, 2),
]


@pytest.mark.parametrize("cell_class,cell_params,num_layers", CASES)
def test_cudnn_path_equals_step_loop(
    fake_gpu, monkeypatch, cell_class, cell_params, num_layers
):
    cell = _cell(cell_class, cell_params, num_layers)
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.normal(size=(3, 6, 5)), tf.float32)
    # One full, one short and one empty sequence.
    lengths = tf.constant([6, 2, 0])
    mask = tf.sequence_mask(lengths, maxlen=6)
    state = _random_state(cell, 3, rng)

    outputs, final = _run(cell, inputs, state, mask)
    assert [call[0] for call in fake_gpu.eager_calls] == (
        ["gru" if "GRU" in cell_class else "lstm"] * num_layers
    )
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: False)
    loop_outputs, loop_final = _run(cell, inputs, state, mask)
    assert len(fake_gpu.eager_calls) == num_layers  # the loop made no call

    assert outputs.shape == loop_outputs.shape == (3, 6, cell.output_size)
    np.testing.assert_allclose(outputs, loop_outputs, atol=1e-5)
    assert tf.nest.map_structure(lambda t: t.shape, final) == tf.nest.map_structure(
        lambda t: t.shape, loop_final
    )
    for got, want in zip(tf.nest.flatten(final), tf.nest.flatten(loop_final)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # Padding gives zeros; the empty sequence keeps its initial state.
    np.testing.assert_array_equal(outputs[1, 2:], 0.0)
    np.testing.assert_array_equal(outputs[2], 0.0)
    for got, start in zip(tf.nest.flatten(final), tf.nest.flatten(state)):
        np.testing.assert_array_equal(got[2], start[2])


def test_cudnn_path_without_mask(fake_gpu, monkeypatch):
    cell = _cell("GRUCell", {"num_units": 4, "reset_after": True})
    rng = np.random.default_rng(2)
    inputs = tf.constant(rng.normal(size=(2, 4, 5)), tf.float32)
    state = _random_state(cell, 2, rng)
    outputs, final = _run(cell, inputs, state, None)
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: False)
    loop_outputs, loop_final = _run(cell, inputs, state, None)
    np.testing.assert_allclose(outputs, loop_outputs, atol=1e-5)
    np.testing.assert_allclose(final[0][0], loop_final[0][0], atol=1e-5)
    # One GRU layer: inputs [B, T, E], kernel [E, 3H].
    assert fake_gpu.eager_calls == [("gru", (2, 4, 5), (5, 12))]


@pytest.mark.parametrize(
    "cell_class,cell_params",
    [
        ("GRUCell", {"num_units": 4}),  # TF1 GRU: reset before the matmul
        ("GRUCell", {"num_units": 4, "reset_after": True, "activation": "relu"}),
        ("LSTMCell", {"num_units": 4, "use_bias": False}),
    ],
)
def test_cells_cudnn_cannot_run_keep_the_loop(fake_gpu, cell_class, cell_params):
    cell = _cell(cell_class, cell_params)
    fused = FusedRecurrence.create(cell)
    assert not fused.cudnn_compatible()
    assert not fused.uses_cudnn()
    inputs = tf.ones([2, 3, 5])
    outputs, _ = fused.run(inputs, cell.get_initial_state(batch_size=2), False)
    assert outputs.shape == (2, 3, 4)
    assert fake_gpu.calls == []


def test_cudnn_needs_a_gpu(monkeypatch):
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: False)
    cell = _cell("GRUCell", {"num_units": 4, "reset_after": True})
    fused = FusedRecurrence.create(cell)
    assert fused.cudnn_compatible()
    assert not fused.uses_cudnn()


def test_declined_configuration_falls_back_to_the_loop(monkeypatch):
    def decline(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(
        cudnn, "_keras_tf_rnn", types.SimpleNamespace(gru=decline, lstm=decline)
    )
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: True)
    cell = _cell("GRUCell", {"num_units": 4, "reset_after": True})
    inputs = tf.constant(np.random.default_rng(3).normal(size=(2, 3, 5)), tf.float32)
    state = cell.get_initial_state(batch_size=2)
    outputs, _ = _run(cell, inputs, state, None)
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: False)
    loop_outputs, _ = _run(cell, inputs, state, None)
    np.testing.assert_allclose(outputs, loop_outputs, atol=1e-6)


def test_cudnn_dropout_between_layers(fake_gpu):
    """In training, input and output dropout apply around every layer: with
    keep probability 0.5 about half the outputs are zero, and the kept ones
    are scaled by 2 (never a value the cell could not give)."""
    cell = get_rnn_cell(
        cell_class="GRUCell",
        cell_params={"num_units": 64, "reset_after": True},
        num_layers=2,
        dropout_output_keep_prob=0.5,
        mode="train",
    )
    cell.build((None, 5))
    fused = FusedRecurrence.create(cell)
    inputs = tf.ones([4, 3, 5])
    state = cell.get_initial_state(batch_size=4)
    outputs, _ = fused.run(inputs, state, True)
    zeros = float(tf.reduce_mean(tf.cast(tf.equal(outputs, 0.0), tf.float32)))
    assert 0.35 < zeros < 0.65
    assert float(tf.reduce_max(tf.abs(outputs))) <= 2.0 + 1e-6
    assert len(fake_gpu.eager_calls) == 2
    # Eval mode: no dropout, no zero output.
    outputs, _ = fused.run(inputs, state, False)
    assert float(tf.reduce_min(tf.abs(outputs))) > 0.0


def test_bidirectional_encoder_on_the_cudnn_path(fake_gpu, monkeypatch):
    params = {
        "rnn_cell": {
            "cell_class": "GRUCell",
            "cell_params": {"num_units": 4, "reset_after": True},
        }
    }
    encoder = BidirectionalRNNEncoder(params, mode="eval")
    rng = np.random.default_rng(4)
    inputs = tf.constant(rng.normal(size=(3, 5, 6)), tf.float32)
    lengths = tf.constant([5, 3, 1])
    out = encoder(inputs, lengths)
    assert len(fake_gpu.eager_calls) == 2  # one kernel call per direction
    monkeypatch.setattr(cudnn, "_gpu_visible", lambda: False)
    loop_out = encoder(inputs, lengths)
    np.testing.assert_allclose(out.outputs, loop_out.outputs, atol=1e-5)
    for got, want in zip(
        tf.nest.flatten(out.final_state), tf.nest.flatten(loop_out.final_state)
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_cudnn_disabled_keeps_the_loop(fake_gpu):
    cell = _cell("GRUCell", {"num_units": 4, "reset_after": True})
    fused = FusedRecurrence.create(cell)
    assert fused.uses_cudnn()
    # The setting is read when the recurrence is made from the cell, as the
    # encoders and decoders make theirs at every call.
    with cudnn_allowed(cell, False):
        with cudnn_allowed(cell, False):
            assert not FusedRecurrence.create(cell).uses_cudnn()
        assert not FusedRecurrence.create(cell).uses_cudnn()
    assert FusedRecurrence.create(cell).uses_cudnn()


def test_explicit_use_cudnn_argument(fake_gpu):
    """`use_cudnn=False` keeps a recurrence on its loop whatever the cell
    says, and `use_cudnn=True` does not force cuDNN on cells it cannot run."""
    cell = _cell("GRUCell", {"num_units": 4, "reset_after": True})
    fused = FusedRecurrence.create(cell, use_cudnn=False)
    assert not fused.uses_cudnn()
    inputs = tf.ones([2, 3, 5])
    outputs, _ = fused.run(inputs, cell.get_initial_state(batch_size=2), False)
    assert outputs.shape == (2, 3, 4)
    assert fake_gpu.calls == []
    with cudnn_allowed(cell, False):
        assert FusedRecurrence.create(cell, use_cudnn=True).uses_cudnn()
    tf1_gru = _cell("GRUCell", {"num_units": 4})
    assert not FusedRecurrence.create(tf1_gru, use_cudnn=True).uses_cudnn()


def test_cudnn_allowed_reaches_every_stack_of_a_model_and_restores(fake_gpu):
    params = {
        "rnn_cell": {
            "cell_class": "GRUCell",
            "cell_params": {"num_units": 4, "reset_after": True},
        }
    }
    encoder = BidirectionalRNNEncoder(params, mode="eval")
    encoder.cell_bw.use_cudnn = False
    with cudnn_allowed(encoder, False) as cells:
        assert cells == [encoder.cell_fw, encoder.cell_bw]
        assert [cell.use_cudnn for cell in cells] == [False, False]
    assert encoder.cell_fw.use_cudnn and not encoder.cell_bw.use_cudnn


def test_xla_train_step_is_traced_without_cudnn(fake_gpu, toy_data, tmp_path):
    """XLA has no cuDNN RNN kernel: a `jit_compile` train step must trace the
    loop even where cuDNN would be used."""
    params = tiny_model_params(toy_data["vocab"])
    gru = {
        "cell_class": "GRUCell",
        "cell_params": {"num_units": 8, "reset_after": True},
    }
    params["encoder.params"] = {"rnn_cell": gru}
    trainer = make_trainer(
        toy_data, str(tmp_path), 2, params, with_dev=False, jit_compile=True
    )
    batch = next(trainer._iterator)
    trainer._build(batch)  # eager: the encoder takes the (fake) cuDNN path
    assert len(fake_gpu.eager_calls) == 2
    fake_gpu.calls.clear()
    step = trainer._make_train_step(trainer.train_dataset.element_spec)
    assert np.isfinite(float(step(batch)["loss"]))
    assert fake_gpu.calls == []


def test_xla_train_step_keeps_the_decoder_loop_too(fake_gpu, toy_data, tmp_path):
    """The decoder's teacher-forced pass (no input feeding) makes its
    recurrence from its own cell: the XLA trace must reach that cell too,
    and leave every cell as it was after."""
    gru = {
        "cell_class": "GRUCell",
        "cell_params": {"num_units": 8, "reset_after": True},
    }
    params = tiny_model_params(toy_data["vocab"])
    params["encoder.params"] = {"rnn_cell": gru}
    params["decoder.params"] = {
        "rnn_cell": gru,
        "max_decode_length": 12,
        "input_feeding": False,
    }
    trainer = make_trainer(
        toy_data, str(tmp_path), 2, params, with_dev=False, jit_compile=True
    )
    batch = next(trainer._iterator)
    trainer._build(batch)  # eager: two encoder directions and the decoder
    assert len(fake_gpu.eager_calls) == 3
    fake_gpu.calls.clear()
    step = trainer._make_train_step(trainer.train_dataset.element_spec)
    assert np.isfinite(float(step(batch)["loss"]))
    assert fake_gpu.calls == []
    with cudnn_allowed(trainer.model, True) as cells:
        assert len(cells) == 3
    assert all(cell.use_cudnn for cell in cells)
