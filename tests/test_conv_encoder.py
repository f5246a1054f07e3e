"""Tests for ConvEncoder (seq2seq.encoders.conv_encoder), including a small
AttentionSeq2Seq with the encoder trained, then decoded greedily and with
beam search."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params, tiny_rnn_cell
from test_trainer import make_trainer

from seq2seq.configurable import ModeKeys, locate_class
from seq2seq.encoders import ConvEncoder, EncoderOutput
from seq2seq.encoders.pooling_encoder import position_encoding
from seq2seq.errors import ConfigError
from seq2seq.inference.inference import restore_model
from seq2seq.models import AttentionSeq2Seq


def _params(a_layers=2, c_layers=2, kernel=3, pos=False, **extra):
    params = {
        "attention_cnn.units": 5,
        "attention_cnn.kernel_size": kernel,
        "attention_cnn.layers": a_layers,
        "output_cnn.units": 6,
        "output_cnn.kernel_size": kernel,
        "output_cnn.layers": c_layers,
        "position_embeddings.enable": pos,
        "position_embeddings.num_positions": 10,
    }
    params.update(extra)
    return params


def _inputs(batch=3, steps=6, depth=4, seed=0):
    return np.random.RandomState(seed).randn(batch, steps, depth).astype(np.float32)


def _conv_same(x, kernel, bias):
    """Reference 'same' convolution of one unpadded [T, E] sequence."""
    size = kernel.shape[0]
    before = (size - 1) // 2
    padded = np.pad(x, [[before, size - 1 - before], [0, 0]])
    return np.stack(
        [
            sum(padded[t + j] @ kernel[j] for j in range(size)) + bias
            for t in range(x.shape[0])
        ]
    )


def _reference_stack(x, layers):
    values = x
    for i, conv in enumerate(layers):
        kernel, bias = (w.numpy() for w in conv.weights)
        summed = _conv_same(values, kernel, bias)
        values = np.tanh(summed + values if i > 0 else summed)
    return values


def test_defaults_match_the_original():
    assert ConvEncoder.default_params() == {
        "attention_cnn.units": 512,
        "attention_cnn.kernel_size": 3,
        "attention_cnn.layers": 15,
        "embedding_dropout_keep_prob": 0.8,
        "output_cnn.units": 256,
        "output_cnn.kernel_size": 3,
        "output_cnn.layers": 5,
        "position_embeddings.enable": True,
        "position_embeddings.combiner_fn": "tensorflow.multiply",
        "position_embeddings.num_positions": 100,
    }
    assert locate_class("seq2seq.encoders.ConvEncoder") is ConvEncoder


def test_shapes_as_the_original_test():
    params = {
        "position_embeddings.enable": True,
        "position_embeddings.num_positions": 16,
        "attention_cnn.units": 5,
        "output_cnn.units": 6,
    }
    encoder = ConvEncoder(params, ModeKeys.TRAIN)
    assert encoder.name == "conv_encoder"
    output = encoder(tf.random.normal([4, 16, 10]), tf.fill([4], 16), training=True)
    assert isinstance(output, EncoderOutput)
    assert output.outputs.shape == (4, 16, 5)
    assert output.attention_values.shape == (4, 16, 6)
    assert output.final_state.shape == (4, 6)
    assert len(encoder.attention_cnn_layers) == 15
    assert len(encoder.output_cnn_layers) == 5
    # Kernel and bias of every layer.
    assert len(encoder.trainable_weights) == 2 * (15 + 5)


@pytest.mark.parametrize("kernel", [3, 2])
def test_residual_tanh_stacks_match_a_numpy_reference(kernel):
    x, lengths = _inputs(), [6, 4, 1]
    encoder = ConvEncoder(_params(a_layers=3, c_layers=2, kernel=kernel), "eval")
    output = encoder(x, lengths)
    for b, n in enumerate(lengths):
        keys = _reference_stack(x[b, :n], encoder.attention_cnn_layers)
        values = _reference_stack(x[b, :n], encoder.output_cnn_layers)
        np.testing.assert_allclose(output.outputs[b, :n], keys, atol=1e-5)
        np.testing.assert_allclose(output.attention_values[b, :n], values, atol=1e-5)
        np.testing.assert_allclose(output.final_state[b], values.mean(0), atol=1e-5)
        np.testing.assert_array_equal(output.outputs[b, n:], 0.0)
        np.testing.assert_array_equal(output.attention_values[b, n:], 0.0)
    assert output.attention_values_length.numpy().tolist() == lengths


@pytest.mark.parametrize("kernel", [3, 4])
@pytest.mark.parametrize("combiner", ["tensorflow.multiply", "tensorflow.add"])
def test_extra_padding_gives_identical_valid_outputs(kernel, combiner):
    x, lengths = _inputs(steps=5), [5, 3, 2]
    padded = np.concatenate([x, np.full((3, 4, 4), 9.0, np.float32)], axis=1)
    padded[1, 3:5] = -9.0
    padded[2, 2:5] = 9.0
    encoder = ConvEncoder(
        _params(
            a_layers=3,
            kernel=kernel,
            pos=True,
            **{"position_embeddings.combiner_fn": combiner},
        ),
        ModeKeys.EVAL,
    )
    short, long = encoder(x, lengths), encoder(padded, lengths)
    np.testing.assert_allclose(long.outputs[:, :5], short.outputs, atol=1e-6)
    np.testing.assert_allclose(
        long.attention_values[:, :5], short.attention_values, atol=1e-6
    )
    np.testing.assert_allclose(long.final_state, short.final_state, atol=1e-6)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(long.outputs[b, n:], 0.0)
        np.testing.assert_array_equal(long.attention_values[b, n:], 0.0)
        # And the same as encoding the sequence alone, without any padding.
        alone = encoder(x[b : b + 1, :n], [n])
        np.testing.assert_allclose(long.outputs[b, :n], alone.outputs[0], atol=1e-6)


@pytest.mark.parametrize(
    "combiner, op", [("tensorflow.multiply", np.multiply), ("add", np.add)]
)
def test_position_embeddings_on_and_off(combiner, op):
    x, lengths = _inputs(), [6, 4, 2]
    on = ConvEncoder(
        _params(pos=True, **{"position_embeddings.combiner_fn": combiner}), "eval"
    )
    off = ConvEncoder(_params(pos=False), ModeKeys.EVAL)
    with_positions = on(x, lengths)
    off(x, lengths)
    off.set_weights(on.get_weights())
    plain = off(x, lengths)
    assert not np.allclose(plain.outputs, with_positions.outputs)
    combined = op(x, position_encoding(10, 4)[None, :6])
    moved = off(combined, lengths)
    np.testing.assert_allclose(moved.outputs, with_positions.outputs, atol=1e-6)
    np.testing.assert_allclose(
        moved.attention_values, with_positions.attention_values, atol=1e-6
    )


def test_zero_layers_pass_the_embeddings_through():
    x, lengths = _inputs(), [6, 4, 2]
    encoder = ConvEncoder(_params(a_layers=0, c_layers=1), ModeKeys.EVAL)
    output = encoder(x, lengths)
    mask = np.arange(6)[None, :, None] < np.array(lengths)[:, None, None]
    np.testing.assert_allclose(output.outputs, x * mask)
    assert output.attention_values.shape == (3, 6, 6)


def test_dropout_only_while_training_in_train_mode():
    x, lengths = _inputs(), [6, 4, 2]
    params = _params(embedding_dropout_keep_prob=0.5)
    train = ConvEncoder(params, ModeKeys.TRAIN)
    first = train(x, lengths, training=True).outputs
    assert not np.allclose(first, train(x, lengths, training=True).outputs)
    eval_ = ConvEncoder(params, ModeKeys.EVAL)
    eval_(x, lengths)
    eval_.set_weights(train.get_weights())
    np.testing.assert_allclose(
        train(x, lengths, training=False).outputs,
        eval_(x, lengths, training=True).outputs,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "params, message",
    [
        ({"attention_cnn.unit": 3}, "unknown parameter 'attention_cnn.unit'"),
        ({"position_embeddings.combiner_fn": "concat"}, "combiner_fn.*concat"),
        ({"position_embeddings.combiner_fn": "tensorflow.nope"}, "tensorflow.nope"),
        ({"output_cnn.units": 0}, "output_cnn.units must be at least 1"),
        ({"attention_cnn.kernel_size": 0}, "kernel_size must be at least 1"),
        ({"output_cnn.layers": -1}, "output_cnn.layers must be at least 0"),
        ({"embedding_dropout_keep_prob": 1.5}, "embedding_dropout_keep_prob"),
        ({"position_embeddings.num_positions": 0}, "num_positions must be at least"),
        ({"attention_cnn.layers": "many"}, "attention_cnn.layers"),
    ],
)
def test_bad_params_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        ConvEncoder(params, ModeKeys.TRAIN)


def test_checkpoint_round_trip_and_graph_mode(tmp_path):
    x, lengths = tf.constant(_inputs()), tf.constant([6, 4, 2])
    encoder = ConvEncoder(_params(a_layers=3, c_layers=2, pos=True), ModeKeys.EVAL)
    eager = encoder(x, lengths)
    graph = tf.function(lambda a, b: encoder(a, b))(x, lengths)
    np.testing.assert_allclose(eager.outputs, graph.outputs, atol=1e-6)
    path = tf.train.Checkpoint(encoder=encoder).save(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.startswith("encoder")]
    assert len(saved) == len(encoder.weights) == 2 * (3 + 2)
    other = ConvEncoder(_params(a_layers=3, c_layers=2, pos=True), ModeKeys.INFER)
    other(x, lengths)
    tf.train.Checkpoint(encoder=other).restore(path).assert_consumed()
    restored = other(x, lengths)
    for a, b in zip(restored, eager):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _conv_model_params(vocab):
    """nmt_conv_small.yml with tiny sizes."""
    params = tiny_model_params(vocab)
    params.update(
        {
            "attention.class": "seq2seq.decoders.attention.AttentionLayerBahdanau",
            "bridge.class": "seq2seq.models.bridges.ZeroBridge",
            "encoder.class": "seq2seq.encoders.ConvEncoder",
            "encoder.params": {
                "attention_cnn.units": 16,
                "attention_cnn.kernel_size": 3,
                "attention_cnn.layers": 3,
                "output_cnn.units": 16,
                "output_cnn.kernel_size": 3,
                "output_cnn.layers": 2,
                "position_embeddings.enable": True,
                "position_embeddings.combiner_fn": "tensorflow.multiply",
                "position_embeddings.num_positions": 12,
            },
            "decoder.params": {"rnn_cell": tiny_rnn_cell(), "max_decode_length": 8},
            "optimizer.name": "Adam",
            "source.max_seq_len": 10,
            "target.max_seq_len": 12,
        }
    )
    return params


def test_attention_model_with_conv_encoder_trains_and_decodes(toy_data, tmp_path):
    out = str(tmp_path / "model")
    params = _conv_model_params(toy_data["vocab"])
    trainer = make_trainer(
        toy_data, out, train_steps=2, model_params=params, save_checkpoints_steps=2
    )
    assert trainer.train() == 2
    assert isinstance(trainer.model.encoder, ConvEncoder)
    checkpoint = tf.train.latest_checkpoint(out)
    assert checkpoint.endswith("ckpt-2")

    features = trainer.model.preprocess(
        {
            "source_tokens": tf.constant([["1", "2", "3", "SEQUENCE_END"]] * 2),
            "source_len": tf.constant([4, 2]),
        }
    )
    greedy = trainer.model.infer(features)
    assert greedy["predicted_ids"].shape[0] == 2
    assert greedy["predicted_ids"].shape[1] <= 8
    assert greedy["attention_scores"].shape[2] == 4
    # Attention never falls on the padding of the shorter source.
    np.testing.assert_allclose(greedy["attention_scores"][1, :, 2:], 0.0, atol=1e-6)

    beam_params = dict(params, **{"inference.beam_search.beam_width": 3})
    model = AttentionSeq2Seq(beam_params, ModeKeys.INFER)
    model.infer(features, max_length=1)
    restore_model(model, checkpoint)
    # The trained convolutions came back from the checkpoint.
    np.testing.assert_allclose(
        model.encode(features).outputs,
        trainer.model.encode(features, training=False).outputs,
        atol=1e-6,
    )
    beams = model.infer(features)
    assert beams["beam_search_output.predicted_ids"].shape[2] == 3
    lengths = beams["predicted_len"].numpy()
    assert all(1 <= n <= 8 for n in lengths)
