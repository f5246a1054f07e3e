"""Tests for scheduled sampling: the schedules, the decoders' sampling loop,
and the probability the trainer feeds and logs."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params
from test_trainer import make_trainer

from seq2seq.configurable import ModeKeys
from seq2seq.decoders import AttentionDecoder, AttentionLayerDot, BasicDecoder
from seq2seq.errors import ConfigError
from seq2seq.inference import decoding
from seq2seq.models import AttentionSeq2Seq
from seq2seq.training import scheduled_sampling as ss

BATCH, SRC_LEN, VOCAB, EMBED, TGT_LEN = 3, 5, 9, 6, 6


def _config(**params):
    return ss.schedule_config(
        {f"scheduled_sampling.{key}": value for key, value in params.items()}
    )


def _p(config, step):
    return float(ss.sampling_probability(config, step))


# ------------------------------------------------------------------ schedules


def test_none_is_zero_and_defaults():
    defaults = ss.default_params()
    assert defaults["scheduled_sampling.type"] == "none"
    assert defaults["scheduled_sampling.sampling"] == "sample"
    assert defaults["scheduled_sampling.probability"] == 0.25
    for step in (0, 10, 10**6):
        assert _p(_config(), step) == 0.0
    assert _p(None, 5) == 0.0


def test_constant_schedule():
    config = _config(type="constant", probability=0.3, start_step=10)
    assert _p(config, 0) == 0.0
    assert _p(config, 9) == 0.0
    assert _p(config, 10) == pytest.approx(0.3)
    assert _p(config, 10**7) == pytest.approx(0.3)


def test_linear_schedule():
    config = _config(type="linear", probability=0.5, start_step=100, end_step=300)
    expected = {0: 0.0, 100: 0.0, 150: 0.125, 200: 0.25, 300: 0.5, 5000: 0.5}
    for step, value in expected.items():
        assert _p(config, step) == pytest.approx(value, abs=1e-7), step


def test_exponential_schedule():
    # Bengio et al.: epsilon = k ** i is the teacher-forcing probability.
    config = _config(type="exponential", probability=1.0, k=0.99)
    for step in (0, 1, 10, 100, 500):
        assert _p(config, step) == pytest.approx(1 - 0.99**step, abs=1e-6)
    capped = _config(type="exponential", probability=0.4, k=0.99, start_step=50)
    assert _p(capped, 20) == 0.0
    assert _p(capped, 150) == pytest.approx(0.4 * (1 - 0.99**100), abs=1e-6)
    frozen = _config(type="exponential", probability=1.0, k=0.99, end_step=100)
    assert _p(frozen, 10**6) == pytest.approx(1 - 0.99**100, abs=1e-6)


def test_inverse_sigmoid_schedule():
    k = 100.0
    config = _config(type="inverse_sigmoid", probability=1.0, k=k)
    for step in (0, 100, 460, 1000, 3000):
        epsilon = k / (k + math.exp(step / k))
        assert _p(config, step) == pytest.approx(1 - epsilon, abs=1e-6), step
    # Half of the maximum at s = k * ln(k); no overflow far out.
    assert _p(config, k * math.log(k)) == pytest.approx(0.5, abs=1e-6)
    assert _p(config, 10**9) == pytest.approx(1.0)
    late = _config(type="inverse_sigmoid", probability=0.2, k=k, start_step=1000)
    assert _p(late, 999) == 0.0
    assert _p(late, 1000) == pytest.approx(0.2 / (1 + k), abs=1e-7)


def test_schedule_runs_in_graph_without_retracing():
    config = _config(type="linear", probability=1.0, end_step=10)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
    def probability(step):
        return ss.sampling_probability(config, step)

    values = [float(probability(tf.constant(s, tf.int64))) for s in (0, 5, 20)]
    assert values == pytest.approx([0.0, 0.5, 1.0])
    assert probability.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"type": "cosine"}, "inverse_sigmoid"),
        ({"type": "linear"}, "end_step"),
        ({"type": "linear", "start_step": 5, "end_step": 5}, "greater than"),
        ({"type": "exponential", "k": 2.0}, "0 < .k < 1"),
        ({"type": "inverse_sigmoid", "k": 0.5}, "k >= 1"),
        ({"type": "constant", "probability": 1.5}, "[0, 1]"),
        ({"type": "constant", "sampling": "beam"}, "argmax"),
    ],
)
def test_invalid_schedules_are_config_errors(params, fragment):
    with pytest.raises(ConfigError, match="scheduled_sampling") as info:
        _config(**params)
    assert fragment in str(info.value)


def test_decoder_validates_its_schedule():
    with pytest.raises(ConfigError, match="BasicDecoder: scheduled_sampling.type"):
        BasicDecoder({"scheduled_sampling.type": "sometimes"}, "train", VOCAB)


# ------------------------------------------------------------------- decoders


def _decoder(kind, **schedule):
    keras.utils.set_random_seed(2)  # the same weights on every run
    params = {
        "rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 8}},
        # Large weights, so that predictions vary from step to step.
        "init_scale": 0.5,
    }
    params.update({f"scheduled_sampling.{k}": v for k, v in schedule.items()})
    if kind == "basic":
        return BasicDecoder(params, "train", VOCAB)
    attention = AttentionLayerDot({"num_units": 7}, "train")
    return AttentionDecoder(params, "train", VOCAB, attention_layer=attention)


class _Memory:
    outputs = tf.random.stateless_normal([BATCH, SRC_LEN, 7], seed=[1, 1])
    attention_values = tf.random.stateless_normal([BATCH, SRC_LEN, 4], seed=[1, 2])
    attention_values_length = tf.constant([5, 3, 2])


def _setup(decoder):
    memory = decoder.prepare_memory(_Memory)
    cell_state = tf.nest.map_structure(
        lambda size: tf.random.stateless_normal([BATCH, size], seed=[3, size]),
        decoder.cell_state_size,
    )
    table = tf.random.stateless_normal([VOCAB, EMBED], seed=[4, 0])
    ids = tf.random.stateless_uniform(
        [BATCH, TGT_LEN], seed=[5, 0], maxval=VOCAB, dtype=tf.int32
    )
    return memory, decoder.initial_state(memory, cell_state), table, ids


def _embed(table):
    return lambda ids: tf.nn.embedding_lookup(table, ids)


@pytest.mark.parametrize("kind", ["basic", "attention"])
def test_probability_zero_is_teacher_forcing_exactly(kind):
    decoder = _decoder(kind, type="constant", sampling="argmax")
    memory, state, table, ids = _setup(decoder)
    inputs = _embed(table)(ids)
    plain = decoder(inputs, state, memory, training=False)
    zero = decoder(
        inputs,
        state,
        memory,
        training=False,
        sampling_probability=0.0,
        embedding_fn=_embed(table),
        seed=tf.constant([7, 7]),
    )
    np.testing.assert_array_equal(plain[0].numpy(), zero[0].numpy())
    if kind == "attention":
        np.testing.assert_array_equal(plain[1].numpy(), zero[1].numpy())

    @tf.function
    def compiled(probability):
        return decoder(
            inputs,
            state,
            memory,
            training=False,
            sampling_probability=probability,
            embedding_fn=_embed(table),
        )[0]

    np.testing.assert_array_equal(
        compiled(tf.constant(0.0)).numpy(),
        tf.function(lambda: decoder(inputs, state, memory, training=False)[0])(),
    )


@pytest.mark.parametrize("kind", ["basic", "attention"])
def test_probability_one_feeds_the_decoders_own_argmax(kind):
    decoder = _decoder(kind, type="constant", sampling="argmax")
    memory, state, table, ids = _setup(decoder)
    logits, _ = decoder(
        _embed(table)(ids),
        state,
        memory,
        training=False,
        sampling_probability=1.0,
        embedding_fn=_embed(table),
    )
    # Greedy decoding from the same start token: the same inputs, hence the
    # same distributions (end_id -1 never ends a sequence).
    greedy = decoding.greedy_decode(
        decoder, _embed(table), ids[:, 0], -1, state, memory, max_length=TGT_LEN
    )
    predicted = np.argmax(logits.numpy(), axis=-1)
    np.testing.assert_array_equal(predicted, greedy.ids.numpy())
    assert len(np.unique(predicted)) > 2  # the check is not vacuous
    log_probs = tf.nn.log_softmax(logits).numpy().max(axis=-1)
    np.testing.assert_allclose(log_probs, greedy.step_log_probs.numpy(), atol=1e-5)
    # ... and not what teacher forcing on the reference gives.
    forced, _ = decoder(_embed(table)(ids), state, memory, training=False)
    assert not np.allclose(forced.numpy()[:, 1:], logits.numpy()[:, 1:])


def test_sampled_inputs_are_reproducible_per_seed_and_differentiable():
    decoder = _decoder("attention", type="constant", sampling="sample")
    memory, state, table, ids = _setup(decoder)
    inputs = _embed(table)(ids)

    def run(seed, probability=0.5):
        return decoder(
            inputs,
            state,
            memory,
            training=True,
            sampling_probability=probability,
            embedding_fn=_embed(table),
            seed=tf.constant(seed),
        )[0].numpy()

    np.testing.assert_array_equal(run([1, 2]), run([1, 2]))
    assert not np.array_equal(run([1, 2]), run([1, 3]))
    # The first step always reads the given start token.
    forced = decoder(inputs, state, memory, training=True)[0].numpy()
    np.testing.assert_allclose(run([1, 3])[:, 0], forced[:, 0], rtol=1e-5, atol=1e-5)

    with tf.GradientTape() as tape:
        tape.watch(table)
        logits, _ = decoder(
            _embed(table)(ids),
            state,
            memory,
            training=True,
            sampling_probability=1.0,
            embedding_fn=_embed(table),
        )
        loss = tf.reduce_mean(logits)
    cell_kernel = decoder.cell.trainable_variables[0]
    gradients = tape.gradient(loss, [table, cell_kernel])
    for gradient in gradients:
        gradient = tf.convert_to_tensor(gradient).numpy()
        assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


# --------------------------------------------------------------------- models


def _features(model):
    features = model.preprocess(
        {
            "source_tokens": tf.constant([["a", "b", "SEQUENCE_END"], ["c", "", ""]]),
            "source_len": tf.constant([3, 1]),
            "target_tokens": tf.constant(
                [
                    ["SEQUENCE_START", "b", "a", "SEQUENCE_END"],
                    ["SEQUENCE_START", "c", "SEQUENCE_END", ""],
                ]
            ),
            "target_len": tf.constant([4, 3]),
        }
    )
    return {
        k: features[k] for k in ("source_ids", "source_len", "target_ids", "target_len")
    }


def test_type_none_model_ignores_the_probability(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    model = AttentionSeq2Seq(tiny_model_params(str(vocab)), ModeKeys.TRAIN)
    assert model.scheduled_sampling is None
    assert float(model.sampling_probability(10**6)) == 0.0
    features = _features(model)
    plain = model.forward(features, training=False)
    ignored = model.forward(
        features, training=False, sampling_probability=1.0, seed=tf.constant([1, 1])
    )
    np.testing.assert_array_equal(plain.logits.numpy(), ignored.logits.numpy())
    assert float(plain.loss) == float(ignored.loss)


# -------------------------------------------------------------------- trainer


def _event_scalars(directory, tag):
    values = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("events"):
            path = os.path.join(directory, name)
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag == tag:
                        values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_trainer_feeds_and_logs_the_scheduled_probability(toy_data, tmp_path):
    params = tiny_model_params(toy_data["vocab"])
    params["decoder.params"].update(
        {
            "scheduled_sampling.type": "linear",
            "scheduled_sampling.probability": 0.8,
            "scheduled_sampling.end_step": 4,
        }
    )
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data,
        out,
        train_steps=6,
        model_params=params,
        log_every_n_steps=1,
        with_dev=False,
    )
    assert trainer.model.scheduled_sampling["type"] == "linear"
    trainer.train()
    logged = _event_scalars(out, "scheduled_sampling/probability")
    # The update that makes step s uses p(s - 1).
    expected = {s: 0.8 * min(s - 1, 4) / 4 for s in range(1, 7)}
    assert logged == pytest.approx(expected)
    # One trace of the compiled step for every probability (at most one for
    # full batches and one for others).
    step = trainer._train_step.step
    traces = [
        f.experimental_get_tracing_count() for f in (step.update_full, step.update)
    ]
    assert traces[0] == 1 and traces[1] <= 1
