"""Tests for Seq2SeqModel, BasicSeq2Seq and AttentionSeq2Seq."""

import numpy as np
import pytest
import tensorflow as tf
from checkpoint_layout import (
    ATTENTION_DECODER_KEYS,
    ATTENTION_DECODER_WEIGHTS,
    GRU_CELL,
    checkpoint_keys,
    weight_paths,
)
from conftest import check_bfloat16_logits, tiny_model_params, tiny_rnn_cell

from seq2seq.configurable import ModeKeys
from seq2seq.errors import ConfigError
from seq2seq.models import AttentionSeq2Seq, BasicSeq2Seq
from seq2seq.models.seq2seq_model import _unreverse_attention


def _batch(sources, targets=None):
    def pad(rows):
        width = max(len(r) for r in rows)
        return tf.constant([r + [""] * (width - len(r)) for r in rows])

    features = {
        "source_tokens": pad([s + ["SEQUENCE_END"] for s in sources]),
        "source_len": tf.constant([len(s) + 1 for s in sources], tf.int32),
    }
    if targets is not None:
        wrapped = [["SEQUENCE_START"] + t + ["SEQUENCE_END"] for t in targets]
        features["target_tokens"] = pad(wrapped)
        features["target_len"] = tf.constant([len(t) for t in wrapped], tf.int32)
    return features


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\nd\n")
    return str(path)


def test_preprocess_ids_slicing_and_reverse(vocab_file):
    model = AttentionSeq2Seq(
        tiny_model_params(
            vocab_file, **{"source.reverse": True, "source.max_seq_len": 3}
        ),
        ModeKeys.TRAIN,
    )
    features = model.preprocess(_batch([["a", "b", "z", "d"], ["c"]], [["b"], ["a"]]))
    # ids: a=0 b=1 c=2 d=3 UNK=4 START=5 END=6; sliced to 3, then each row
    # reversed within its length (padding "" looks up as UNK and is masked).
    np.testing.assert_array_equal(
        features["source_ids"].numpy(), [[4, 1, 0], [6, 2, 4]]
    )
    np.testing.assert_array_equal(features["source_len"].numpy(), [3, 2])
    np.testing.assert_array_equal(
        features["target_ids"].numpy(), [[5, 1, 6], [5, 0, 6]]
    )
    np.testing.assert_array_equal(features["target_tokens_len"].numpy(), [3, 3])


def test_forward_loss_is_masked_mean_of_token_losses(vocab_file):
    model = AttentionSeq2Seq(tiny_model_params(vocab_file), ModeKeys.EVAL)
    features = model.preprocess(
        _batch([["a", "b"], ["c", "d", "a"]], [["b", "a"], ["a", "d", "c", "b"]])
    )
    output = model.forward(features, training=False)
    logits = output.logits.numpy()
    assert logits.shape == (2, 5, 7)
    assert output.attention.shape == (2, 5, 4)
    targets = features["target_ids"].numpy()[:, 1:]
    lengths = features["target_len"].numpy() - 1
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total = 0.0
    for b in range(2):
        for t in range(lengths[b]):
            total -= log_probs[b, t, targets[b, t]]
    assert output.num_tokens.numpy() == lengths.sum() == 8
    np.testing.assert_allclose(output.loss_sum.numpy(), total, rtol=1e-5)
    np.testing.assert_allclose(output.loss.numpy(), total / 8, rtol=1e-5)


@pytest.mark.parametrize("model_class", [BasicSeq2Seq, AttentionSeq2Seq])
def test_infer_shapes_and_stop_token(vocab_file, model_class):
    params = tiny_model_params(vocab_file)
    if model_class is BasicSeq2Seq:
        params = {k: v for k, v in params.items() if not k.startswith("attention")}
        params["encoder.params"] = {"rnn_cell": tiny_rnn_cell()}
    model = model_class(params, ModeKeys.INFER)
    features = model.preprocess(_batch([["a", "b"], ["c", "d", "a"]]))
    predictions = model.infer(features, max_length=5)
    ids = predictions["predicted_ids"].numpy()
    lengths = predictions["predicted_len"].numpy()
    assert ids.shape[0] == 2 and ids.shape[1] <= 5
    assert all(1 <= n <= 5 for n in lengths)
    assert ("attention_scores" in predictions) == (model_class is AttentionSeq2Seq)


def test_basic_seq2seq_defaults_match_the_original(vocab_file):
    defaults = BasicSeq2Seq.default_params()
    assert defaults["bridge.class"] == "seq2seq.models.bridges.InitialStateBridge"
    assert defaults["encoder.class"] == "seq2seq.encoders.UnidirectionalRNNEncoder"
    assert defaults["decoder.class"] == "seq2seq.decoders.BasicDecoder"
    defaults = AttentionSeq2Seq.default_params()
    assert defaults["attention.class"] == "AttentionLayerBahdanau"
    assert defaults["bridge.class"] == "seq2seq.models.bridges.ZeroBridge"
    assert defaults["source.reverse"] is True
    assert defaults["embedding.dim"] == 100
    assert defaults["optimizer.clip_embed_gradients"] == 0.1


_RNN = GRU_CELL
_BASIC_WEIGHTS = [
    "basic_seq2seq/source_embedding",
    "basic_seq2seq/target_embedding",
    f"forward_rnn_encoder/forward_rnn/{_RNN}/kernel",
    f"forward_rnn_encoder/forward_rnn/{_RNN}/recurrent_kernel",
    f"forward_rnn_encoder/forward_rnn/{_RNN}/bias",
    f"{_RNN}/kernel",
    f"{_RNN}/recurrent_kernel",
    f"{_RNN}/bias",
    "logits/kernel",
    "logits/bias",
    "initial_state_bridge/bridge_projection/kernel",
    "initial_state_bridge/bridge_projection/bias",
]
_BASIC_KEYS = [
    "_decoder/cell/cell_0/cell/bias",
    "_decoder/cell/cell_0/cell/kernel",
    "_decoder/cell/cell_0/cell/recurrent_kernel",
    "_decoder/logits_layer/_kernel",
    "_decoder/logits_layer/bias",
    "bridge/dense/_kernel",
    "bridge/dense/bias",
    "encoder/cell/cell_0/cell/bias",
    "encoder/cell/cell_0/cell/kernel",
    "encoder/cell/cell_0/cell/recurrent_kernel",
    "source_embedding",
    "target_embedding",
]
_ATTENTION_WEIGHTS = [
    "att_seq2seq/source_embedding",
    "att_seq2seq/target_embedding",
    f"bidi_rnn_encoder/forward_rnn/{_RNN}/kernel",
    f"bidi_rnn_encoder/forward_rnn/{_RNN}/recurrent_kernel",
    f"bidi_rnn_encoder/forward_rnn/{_RNN}/bias",
    f"bidi_rnn_encoder/backward_rnn/{_RNN}/kernel",
    f"bidi_rnn_encoder/backward_rnn/{_RNN}/recurrent_kernel",
    f"bidi_rnn_encoder/backward_rnn/{_RNN}/bias",
    *ATTENTION_DECODER_WEIGHTS,
]
_ATTENTION_KEYS = [
    *ATTENTION_DECODER_KEYS,
    "encoder/cell_bw/cell_0/cell/bias",
    "encoder/cell_bw/cell_0/cell/kernel",
    "encoder/cell_bw/cell_0/cell/recurrent_kernel",
    "encoder/cell_fw/cell_0/cell/bias",
    "encoder/cell_fw/cell_0/cell/kernel",
    "encoder/cell_fw/cell_0/cell/recurrent_kernel",
    "source_embedding",
    "target_embedding",
]


@pytest.mark.parametrize(
    "model_class, weights, keys",
    [
        (BasicSeq2Seq, _BASIC_WEIGHTS, _BASIC_KEYS),
        (AttentionSeq2Seq, _ATTENTION_WEIGHTS, _ATTENTION_KEYS),
    ],
)
def test_checkpoint_layout_is_pinned(vocab_file, tmp_path, model_class, weights, keys):
    # Saved checkpoints depend on both lists (see tests/checkpoint_layout.py):
    # a change here means that existing checkpoints no longer load.
    params = tiny_model_params(vocab_file)
    if model_class is BasicSeq2Seq:
        params = {k: v for k, v in params.items() if not k.startswith("attention")}
    model = model_class(params, ModeKeys.TRAIN)
    model.forward(model.preprocess(_batch([["a", "b"]], [["c"]])), training=False)
    assert weight_paths(model) == weights
    assert checkpoint_keys(model, str(tmp_path)) == keys
    shared = model_class({**params, "embedding.share": True}, ModeKeys.TRAIN)
    shared.forward(shared.preprocess(_batch([["a", "b"]], [["c"]])), training=False)
    assert weight_paths(shared) == [w for w in weights if "target_embedding" not in w]
    assert checkpoint_keys(shared, str(tmp_path / "shared")) == [
        k for k in keys if k != "target_embedding"
    ]


def test_unreverse_attention_restores_written_order():
    # One example, source length 3 of padded width 4, two target steps.
    reversed_scores = tf.constant([[[0.7, 0.2, 0.1, 0.0], [0.1, 0.3, 0.6, 0.0]]])
    restored = _unreverse_attention(reversed_scores, tf.constant([3]))
    np.testing.assert_allclose(
        restored.numpy(), [[[0.1, 0.2, 0.7, 0.0], [0.6, 0.3, 0.1, 0.0]]]
    )


def test_reversed_source_gives_attention_in_written_order(vocab_file):
    params = tiny_model_params(vocab_file, **{"source.reverse": True})
    model = AttentionSeq2Seq(params, ModeKeys.INFER)
    features = model.preprocess(_batch([["a", "b", "c"]]))
    attention = model.infer(features, max_length=3)["attention_scores"].numpy()
    # Compare with attention computed on the reversed ids directly.
    encoder_output = model.encode(features, training=False)
    state, memory = model.decoder_start(encoder_output, 1)
    start = tf.constant([model.target_vocab_info.special_vocab.SEQUENCE_START])
    _, _, first = model.decoder.step(model.embed_target(start), state, memory)
    np.testing.assert_allclose(attention[0, 0, :4], first.numpy()[0, ::-1], rtol=1e-5)


def test_missing_vocab_and_bad_share(vocab_file, tmp_path):
    with pytest.raises(ConfigError, match="vocab_source"):
        AttentionSeq2Seq({"vocab_target": vocab_file}, ModeKeys.TRAIN)
    other = tmp_path / "other.txt"
    other.write_text("x\ny\n")
    with pytest.raises(ConfigError, match="embedding.share"):
        AttentionSeq2Seq(
            tiny_model_params(
                vocab_file, vocab_target=str(other), **{"embedding.share": True}
            ),
            ModeKeys.TRAIN,
        )


@pytest.mark.parametrize("dim", [0, -3])
def test_embedding_dim_must_be_positive(vocab_file, dim):
    # 0 trained zero-width embeddings without a word; -3 was a traceback.
    with pytest.raises(ConfigError, match=f"embedding.dim must be a positive.*{dim}"):
        AttentionSeq2Seq(
            tiny_model_params(vocab_file, **{"embedding.dim": dim}), ModeKeys.TRAIN
        )


def test_shared_embedding_is_one_variable(vocab_file):
    model = AttentionSeq2Seq(
        tiny_model_params(vocab_file, **{"embedding.share": True}), ModeKeys.TRAIN
    )
    assert model.target_embedding is model.source_embedding
    assert len(model.embedding_variables) == 1


def test_embedding_gradients_are_clipped(vocab_file):
    model = AttentionSeq2Seq(
        tiny_model_params(
            vocab_file,
            **{"optimizer.clip_embed_gradients": 0.01, "optimizer.clip_gradients": 0.0},
        ),
        ModeKeys.TRAIN,
    )
    features = model.preprocess(_batch([["a", "b"]], [["b", "a"]]))
    with tf.GradientTape() as tape:
        loss = model.forward(features, training=True).loss
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    clipped, _ = model.clip_gradients(grads, variables)
    for grad, var in zip(clipped, variables):
        if any(var is e for e in model.embedding_variables):
            values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
            assert np.linalg.norm(values.numpy()) <= 0.01 + 1e-6


def test_label_smoothing_applies_to_the_training_loss_only(vocab_file):
    params = tiny_model_params(vocab_file)
    features = None
    outputs = {}
    for smoothing in (None, 0.0, 0.2):
        if smoothing is not None:
            params["loss.label_smoothing"] = smoothing
        model = AttentionSeq2Seq(params, ModeKeys.TRAIN)
        if features is None:
            features = model.preprocess(
                _batch([["a", "b"], ["c", "d", "a"]], [["b"], ["a", "d", "c"]])
            )
        # Same weights for every model, so that only the loss differs.
        if outputs:
            model.forward(features, training=False)
            for variable, value in zip(model.weights, outputs["weights"]):
                variable.assign(value)
        train = model.forward(features, training=True)
        evaluation = model.forward(features, training=False)
        outputs.setdefault("weights", [v.numpy() for v in model.weights])
        outputs[smoothing] = (train, evaluation)
    assert AttentionSeq2Seq.default_params()["loss.label_smoothing"] == 0.0
    # 0 (given or default) is the original loss, exactly.
    assert float(outputs[0.0][0].loss) == float(outputs[None][0].loss)
    assert float(outputs[0.0][1].loss) == float(outputs[None][1].loss)
    # With 0.2: (1 - e) * NLL + e * mean_v(-log p_v) over unmasked tokens.
    train, evaluation = outputs[0.2]
    logits = train.logits.numpy()
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = features["target_ids"].numpy()[:, 1:]
    lengths = features["target_len"].numpy() - 1
    expected = 0.0
    for b in range(2):
        for t in range(lengths[b]):
            nll = -log_probs[b, t, targets[b, t]]
            expected += 0.8 * nll + 0.2 * -log_probs[b, t].mean()
    assert float(train.num_tokens) == lengths.sum() == 6
    np.testing.assert_allclose(float(train.loss_sum), expected, rtol=1e-5)
    # Evaluation (training=False) keeps the plain cross-entropy.
    assert float(evaluation.loss) == float(outputs[None][1].loss)


def test_label_smoothing_out_of_range_is_a_config_error(vocab_file):
    with pytest.raises(ConfigError, match="loss.label_smoothing must be in"):
        AttentionSeq2Seq(
            tiny_model_params(vocab_file, **{"loss.label_smoothing": 1.0}),
            ModeKeys.TRAIN,
        )


def test_forward_loss_equals_the_loss_over_all_positions(vocab_file):
    """The loss of forward (only unpadded positions projected) equals the
    all-positions loss of the full logits, label smoothing included."""
    model = AttentionSeq2Seq(
        tiny_model_params(vocab_file, **{"loss.label_smoothing": 0.1}),
        ModeKeys.TRAIN,
    )
    features = model.preprocess(
        _batch(
            [["a", "b"], ["c", "d", "a"], ["b"]],
            [["b", "a", "c", "c"], ["a"], ["d", "d"]],
        )
    )
    for training in (True, False):
        output = model.forward(features, training=training)
        logits = output.logits
        assert logits.shape == (3, 5, 7)
        smoothing = 0.1 if training else 0.0
        loss_sum, num_tokens = model.compute_loss(
            logits, features, label_smoothing=smoothing
        )
        np.testing.assert_allclose(output.loss_sum, loss_sum, rtol=1e-6)
        assert output.num_tokens.numpy() == num_tokens.numpy() == 10


def test_forward_under_mixed_bfloat16_is_close_to_float32(vocab_file):
    import keras

    params = tiny_model_params(vocab_file)
    reference = AttentionSeq2Seq(params, ModeKeys.TRAIN)
    features = reference.preprocess(
        _batch([["a", "b", "c"], ["c", "d"]], [["b", "a"], ["a", "d", "c"]])
    )
    want = reference.forward(features, training=True).loss
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = AttentionSeq2Seq(params, ModeKeys.TRAIN)
        model.forward(features, training=True)  # builds the variables
        for variable, value in zip(model.weights, reference.weights):
            variable.assign(value)
        with tf.GradientTape() as tape:
            output = model.forward(features, training=True)
        gradients = tape.gradient(output.loss, model.trainable_variables)
        assert output.loss.dtype == tf.float32
        assert output.logits.dtype == tf.float32
        assert np.isfinite(output.loss.numpy())
        np.testing.assert_allclose(output.loss, want, rtol=2e-2)
        for gradient in gradients:
            if gradient is not None:
                values = tf.cast(tf.convert_to_tensor(gradient), tf.float32)
                assert np.all(np.isfinite(values.numpy()))
        decoded = model.infer(features, max_length=4)
        assert decoded["log_probs"].dtype == tf.float32
        assert np.all(np.isfinite(decoded["log_probs"].numpy()))
        beam = AttentionSeq2Seq(
            {**params, "inference.beam_search.beam_width": 2}, ModeKeys.INFER
        )
        beam_out = beam.infer(features, max_length=4)
        assert beam_out["log_probs"].dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("model_class", [AttentionSeq2Seq, BasicSeq2Seq])
def test_bfloat16_logits_round_only_the_training_product(vocab_file, model_class):
    params = tiny_model_params(vocab_file)
    if model_class is BasicSeq2Seq:
        del params["attention.params"]
    check_bfloat16_logits(
        lambda: model_class(params, ModeKeys.TRAIN),
        lambda model: model.preprocess(
            _batch([["a", "b", "c"], ["c", "d"]], [["b", "a"], ["a", "d", "c"]])
        ),
    )
