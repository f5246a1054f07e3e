"""The decoding contract: a decoder written only against the `Decoder` base
runs every strategy and scheduled sampling; the samplers keep to their
filters; scheduled sampling compiles with XLA."""

import collections
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params

from seq2seq.configurable import ModeKeys
from seq2seq.decoders import SelfAttentionDecoder
from seq2seq.decoders.decoder import Decoder, batch_size_of
from seq2seq.errors import ConfigError
from seq2seq.inference import samplers
from seq2seq.inference.beam_search import BeamSearch, BeamSearchConfig
from seq2seq.inference.decoding import GreedySearch
from seq2seq.inference.dynamic_decode import dynamic_decode, tile_batch
from seq2seq.models import AttentionSeq2Seq
from seq2seq.tracing import xla_tracing
from seq2seq.training.train_step import TrainStep

START, END, VOCAB, EMBED = 0, 1, 9, 5

EncoderOutput = collections.namedtuple(
    "EncoderOutput",
    ["outputs", "final_state", "attention_values", "attention_values_length"],
)


class ToyDecoder(Decoder):
    """A decoder that only implements the three methods of the contract:
    `h = tanh(Dense([x; h_prev; mean source]))`, `logits = Dense(V)(h)`."""

    def __init__(self, params, mode, vocab_size, units=8):
        super().__init__(params, mode, vocab_size, name="toy_decoder")
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="tanh", name="hidden")
        self.logits_layer = keras.layers.Dense(vocab_size, name="logits")

    def prepare_memory(self, encoder_output):
        values = tf.convert_to_tensor(encoder_output.attention_values)
        lengths = encoder_output.attention_values_length
        mask = tf.sequence_mask(lengths, tf.shape(values)[1], dtype=values.dtype)
        total = tf.reduce_sum(values * mask[:, :, None], axis=1)
        return {"summary": total / tf.reduce_sum(mask, axis=1, keepdims=True)}

    def initial_state(self, memory, cell_state=None, batch_size=None):
        if batch_size is None:
            batch_size = batch_size_of(memory)
        return {"h": tf.zeros([batch_size, self.units])}

    def step(self, inputs, state, memory, training=None):
        features = tf.concat([inputs, state["h"], memory["summary"]], axis=-1)
        hidden = self.hidden(features)
        return self.logits_layer(hidden), {"h": hidden}, None


def _toy(seed=0, batch=3, **params):
    keras.utils.set_random_seed(seed)
    decoder = ToyDecoder(params, ModeKeys.TRAIN, VOCAB)
    source = tf.random.stateless_normal([batch, 4, 6], seed=[seed, 1])
    lengths = tf.constant([4, 2, 3][:batch])
    memory = decoder.prepare_memory(EncoderOutput(source, None, source, lengths))
    table = tf.random.stateless_normal([VOCAB, EMBED], seed=[seed, 2]) * 2.0

    def embed(ids):
        return tf.nn.embedding_lookup(table, ids)

    return decoder, memory, embed


def _teacher_forced_log_probs(decoder, memory, embed, ids):
    """[N] sum of the log-probabilities of each row of `ids` (all positions)."""
    previous = tf.concat([tf.fill([ids.shape[0], 1], START), ids[:, :-1]], axis=1)
    state = decoder.initial_state(memory)
    logits, _ = decoder(embed(previous), state, memory)
    log_probs = tf.nn.log_softmax(logits)
    return tf.reduce_sum(tf.gather(log_probs, ids, batch_dims=2), axis=1).numpy()


def test_toy_decoder_teacher_forcing_is_stepping():
    decoder, memory, embed = _toy()
    ids = tf.constant([[2, 3, 4, 1], [5, 1, 1, 1], [6, 6, 7, 8]])
    logits, attention = decoder(embed(ids), decoder.initial_state(memory), memory)
    assert attention is None and logits.shape == (3, 4, VOCAB)
    state = decoder.initial_state(memory)
    for t in range(4):
        step_logits, state, _ = decoder.step(embed(ids[:, t]), state, memory)
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-5, atol=1e-6)
    # The default split for the loss: the features are the logits.
    features, _ = decoder.teacher_forced_features(
        embed(ids), decoder.initial_state(memory), memory
    )
    np.testing.assert_array_equal(decoder.project(features), logits)


@pytest.mark.parametrize("jit", [False, True])
def test_toy_decoder_greedy_and_beam_search(jit):
    decoder, memory, embed = _toy(seed=4)
    start = tf.fill([3], START)

    def decode(strategy, sampler=None, memory=memory):
        @tf.function
        def run():
            state = decoder.initial_state(memory)
            return dynamic_decode(
                decoder,
                strategy,
                sampler,
                embed,
                start,
                END,
                state,
                memory,
                max_length=6,
                jit_compile=jit,
            )

        return run()

    greedy = decode(GreedySearch(), samplers.ArgmaxSampler())
    ids, lengths = greedy.ids.numpy(), greedy.lengths.numpy()
    assert ids.shape[0] == 3 and len(np.unique(ids)) > 2
    # Teacher forcing on its own output: each token is the argmax, and the
    # log-probabilities agree.
    previous = np.concatenate([np.full([3, 1], START), ids[:, :-1]], axis=1)
    logits, _ = decoder(embed(previous), decoder.initial_state(memory), memory)
    log_probs = tf.nn.log_softmax(logits).numpy()
    for row in range(3):
        n = lengths[row]
        np.testing.assert_array_equal(log_probs[row, :n].argmax(-1), ids[row, :n])
        total = log_probs[row, np.arange(n), ids[row, :n]].sum()
        assert greedy.log_probs.numpy()[row] == pytest.approx(total, abs=1e-4)

    def config(width):
        return BeamSearchConfig(width, VOCAB, END, 0.0, "choose_top_k")

    one = decode(BeamSearch(config(1)))
    np.testing.assert_array_equal(one.ids[:, 0].numpy(), ids)
    three = decode(BeamSearch(config(3)))
    beams = three.ids.numpy()  # [B, K, T]
    steps = beams.shape[2]
    # The reordered states give exactly the hypotheses' model scores
    # (padding after the end token scores nothing: compare to the lengths).
    rescored = []
    flat = beams.reshape(9, steps)
    tiled = tile_batch(memory, 3)
    previous = np.concatenate([np.full([9, 1], START), flat[:, :-1]], axis=1)
    logits, _ = decoder(embed(previous), decoder.initial_state(tiled), tiled)
    log_probs = tf.nn.log_softmax(logits).numpy()
    for row, n in enumerate(three.lengths.numpy().reshape(-1)):
        rescored.append(log_probs[row, np.arange(n), flat[row, :n]].sum())
    np.testing.assert_allclose(
        np.reshape(rescored, [3, 3]), three.log_probs.numpy(), atol=1e-4
    )
    assert np.all(np.diff(three.scores.numpy(), axis=1) <= 0)


def test_toy_decoder_trains_with_scheduled_sampling():
    decoder, memory, embed = _toy(
        seed=2,
        **{
            "scheduled_sampling.type": "constant",
            "scheduled_sampling.probability": 0.5,
        },
    )
    targets = tf.constant([[2, 3, 4, 5, 1], [6, 7, 1, 1, 1], [8, 2, 2, 1, 1]])
    previous = tf.concat([tf.fill([3, 1], START), targets[:, :-1]], axis=1)
    optimizer = keras.optimizers.Adam(0.05)

    def loss_fn(seed):
        logits, _ = decoder(
            embed(previous),
            decoder.initial_state(memory),
            memory,
            training=True,
            sampling_probability=0.5,
            embedding_fn=embed,
            seed=seed,
        )
        return tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(
                targets, logits, from_logits=True
            )
        )

    @tf.function
    def train(seed):
        with tf.GradientTape() as tape:
            loss = loss_fn(seed)
        variables = decoder.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(train(tf.constant([1, step]))) for step in range(40)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])

    # With probability 1 and argmax, every input after the first is the
    # decoder's own choice: the logits are those of greedy decoding.
    argmax = ToyDecoder({"scheduled_sampling.sampling": "argmax"}, "train", VOCAB)
    argmax.hidden, argmax.logits_layer = decoder.hidden, decoder.logits_layer
    logits, _ = argmax(
        embed(previous),
        argmax.initial_state(memory),
        memory,
        sampling_probability=1.0,
        embedding_fn=embed,
    )
    greedy = dynamic_decode(
        argmax,
        GreedySearch(),
        None,
        embed,
        tf.fill([3], START),
        -1,
        argmax.initial_state(memory),
        memory,
        max_length=5,
    )
    np.testing.assert_array_equal(logits.numpy().argmax(-1), greedy.ids.numpy())


# ------------------------------------------------------------- samplers


def _random_logits(rows=512, vocab=40, seed=0):
    return tf.random.stateless_normal([rows, vocab], seed=[seed, 7]) * 2.0


def test_seeded_random_sampler_is_reproducible():
    logits = _random_logits(64)
    sampler = samplers.RandomSampler(temperature=0.8, top_k=6, top_p=0.9, seed=3)
    first, first_lp = sampler.select(logits, 4)
    again, again_lp = sampler.select(logits, tf.constant(4))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_lp, again_lp)
    assert not np.array_equal(first, sampler.select(logits, 5)[0])
    other = samplers.RandomSampler(temperature=0.8, top_k=6, top_p=0.9, seed=4)
    assert not np.array_equal(first, other.select(logits, 4)[0])
    # The log-probabilities are the model's, not the tempered ones.
    expected = tf.gather(tf.nn.log_softmax(logits), first, batch_dims=1)
    np.testing.assert_allclose(first_lp, expected, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_top_k_never_leaves_the_top_k(jit):
    logits = _random_logits(seed=1)
    # A high temperature flattens the distribution: without the filter most
    # draws would fall outside the top 3.
    sampler = samplers.RandomSampler(temperature=5.0, top_k=3, seed=11)
    select = tf.function(lambda step: sampler.select(logits, step)[0], jit_compile=jit)
    order = np.argsort(-logits.numpy(), axis=1, kind="stable")
    ranks = []
    for step in range(4):
        ids = select(tf.constant(step)).numpy()
        ranks.append(np.argmax(order == ids[:, None], axis=1))
    ranks = np.concatenate(ranks)
    assert set(ranks) == {0, 1, 2}


def test_top_p_keeps_to_the_nucleus():
    logits = _random_logits(seed=2)
    top_p, temperature = 0.5, 1.5
    sampler = samplers.RandomSampler(temperature=temperature, top_p=top_p, seed=5)
    probs = tf.nn.softmax(tf.nn.log_softmax(logits) / temperature).numpy()
    order = np.argsort(-probs, axis=1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(sorted_probs, axis=1) - sorted_probs
    sizes = (before < top_p).sum(axis=1)  # nucleus size of each row
    assert sizes.min() >= 1 and sizes.max() > 2
    outside = 0
    for step in range(4):
        ids = sampler.select(logits, step)[0].numpy()
        ranks = np.argmax(order == ids[:, None], axis=1)
        assert np.all(ranks < sizes)
        outside += np.sum(ranks > 0)
    assert outside > 0  # not argmax in disguise
    # A tiny nucleus is the most likely token.
    tiny = samplers.RandomSampler(top_p=1e-6, seed=1)
    np.testing.assert_array_equal(
        tiny.select(logits, 0)[0], tf.argmax(logits, axis=-1, output_type=tf.int32)
    )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 1.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampler_settings(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        samplers.RandomSampler(**kwargs)


# ------------------------------------------------- choosing by params


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
    keys = ("source_ids", "source_len", "target_ids", "target_len")
    return {key: features[key] for key in keys}


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\n")
    return str(path)


def test_params_choose_strategy_and_sampler(vocab):
    def model(**overrides):
        keras.utils.set_random_seed(0)
        params = tiny_model_params(vocab, **overrides)
        params["decoder.params"]["init_scale"] = 1.0  # varied predictions
        return AttentionSeq2Seq(params, ModeKeys.INFER)

    sampled = model(
        **{
            "inference.sampler": "sample",
            "inference.sampling.seed": 7,
            "inference.sampling.top_k": 3,
            "inference.sampling.temperature": 3.0,
        }
    )
    features = _features(sampled)
    first = sampled.infer(features, max_length=8)["predicted_ids"].numpy()
    again = sampled.infer(features, max_length=8)["predicted_ids"].numpy()
    np.testing.assert_array_equal(first, again)
    greedy = model()
    plain = greedy.infer(features, max_length=8)["predicted_ids"].numpy()
    assert first.shape[0] == plain.shape[0] == 2
    assert not greedy.use_beam_search
    beam = model(**{"inference.beam_search.beam_width": 3})
    assert beam.use_beam_search
    assert "beam_search_output.predicted_ids" in beam.infer(features, max_length=4)
    # An n-best list reaches the strategy, which then stops early only once
    # the n best are settled; greedy search has no n-best.
    assert beam.decoding_strategy().n_best == 1
    assert beam.decoding_strategy(n_best=2).n_best == 2
    assert beam.decoding_strategy(n_best=2).early_stopping
    assert not hasattr(greedy.decoding_strategy(n_best=2), "n_best")
    # Bad inference params fail when the model is built, naming the key.
    bad = [
        ({"inference.strategy": "beam_search"}, "beam_width must be >= 1"),
        ({"inference.strategy": "nope"}, "inference.strategy 'nope'"),
        # A negative width once chose greedy search without a word.
        ({"inference.beam_search.beam_width": -2}, ">= 0 .*got -2"),
        (
            {"inference.beam_search.beam_width": 3, "inference.sampler": "sample"},
            "inference.sampler must be argmax",
        ),
        ({"inference.sampler": "top"}, "inference.sampler 'top'"),
        (
            {"inference.sampler": "sample", "inference.sampling.top_p": 2.0},
            "inference.sampling.top_p",
        ),
    ]
    for overrides, fragment in bad:
        with pytest.raises(ConfigError, match=fragment):
            model(**overrides)


# ------------------------------------------- Transformer, XLA training


def _transformer_decoder(**schedule):
    keras.utils.set_random_seed(3)
    params = {
        "num_layers": 1,
        "num_units": 8,
        "num_heads": 2,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "max_decode_length": 3,  # shorter than the targets: sampling sizes its cache
    }
    params.update({f"scheduled_sampling.{k}": v for k, v in schedule.items()})
    decoder = SelfAttentionDecoder(params, "train", VOCAB)
    source = tf.random.stateless_normal([2, 4, 8], seed=[1, 1])
    memory = decoder.prepare_memory(
        EncoderOutput(source, None, source, tf.constant([4, 2]))
    )
    table = tf.random.stateless_normal([VOCAB, 8], seed=[1, 2]) * 3.0
    return decoder, memory, lambda ids: tf.nn.embedding_lookup(table, ids)


def test_transformer_scheduled_sampling_feeds_its_own_argmax():
    decoder, memory, embed = _transformer_decoder(type="constant", sampling="argmax")
    ids = tf.constant([[2, 3, 4, 5, 6], [7, 8, 2, 3, 4]])
    forced, _ = decoder(embed(ids), decoder.initial_state(memory), memory)
    zero, _ = decoder(
        embed(ids),
        decoder.initial_state(memory),
        memory,
        sampling_probability=0.0,
        embedding_fn=embed,
    )
    np.testing.assert_array_equal(zero, forced)
    always, attention = decoder(
        embed(ids),
        decoder.initial_state(memory),
        memory,
        sampling_probability=1.0,
        embedding_fn=embed,
    )
    assert attention.shape == (2, 5, 4)
    greedy = dynamic_decode(
        decoder,
        GreedySearch(),
        None,
        embed,
        ids[:, 0],
        -1,
        decoder.initial_state(memory, max_length=5),
        memory,
        max_length=5,
    )
    np.testing.assert_array_equal(always.numpy().argmax(-1), greedy.ids)
    np.testing.assert_allclose(
        tf.nn.log_softmax(always).numpy().max(-1), greedy.step_log_probs, atol=1e-5
    )
    assert not np.allclose(always[:, 1:], forced[:, 1:])

    # Under XLA (as the jit train step traces it, batch size and length
    # unknown) the sampling pass and its gradients compile.
    def loss_and_grads(ids, probability):
        with tf.GradientTape() as tape:
            logits, _ = decoder(
                embed(ids),
                None,
                memory,
                training=True,
                sampling_probability=probability,
                embedding_fn=embed,
            )
            loss = tf.reduce_mean(tf.square(logits))
        return loss, tape.gradient(loss, decoder.trainable_variables)

    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.float32)]
    with xla_tracing():
        compiled = tf.function(
            loss_and_grads, jit_compile=True, input_signature=signature
        )
        loss, grads = compiled(ids, tf.constant(0.5))
    assert np.isfinite(loss.numpy())
    assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)


def test_jit_train_step_with_scheduled_sampling(vocab):
    params = tiny_model_params(vocab)
    params["decoder.params"].update(
        {
            "scheduled_sampling.type": "constant",
            "scheduled_sampling.probability": 0.5,
        }
    )
    keras.utils.set_random_seed(1)
    model = AttentionSeq2Seq(params, ModeKeys.TRAIN)
    features = _features(model)
    model.forward(features, training=False)
    optimizer = keras.optimizers.Adam(0.02)
    optimizer.build(model.trainable_variables)
    spec = {key: tf.TensorSpec.from_tensor(value) for key, value in features.items()}
    step = TrainStep(model, optimizer, spec, jit_compile=True, seed=3)
    losses = [float(step(features, 0.5)["loss"]) for _ in range(15)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------- doc examples

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _doc_example(name, heading):
    """The first Python block of section `## heading` of docs/`name`."""
    with open(os.path.join(DOCS, name), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize(
    "name, heading",
    [
        ("decoders.md", "Writing a decoder"),
        ("inference.md", "Decoding strategies and samplers"),
    ],
)
def test_doc_example_runs(name, heading):
    code = _doc_example(name, heading)
    assert "dynamic_decode(" in code and "assert " in code
    exec(compile(code, f"docs/{name}", "exec"), {"__name__": "doc_example"})
