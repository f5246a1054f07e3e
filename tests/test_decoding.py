"""Tests for seq2seq.inference.decoding."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.decoders import AttentionDecoder, AttentionLayerDot, BasicDecoder
from seq2seq.errors import ConfigError
from seq2seq.inference import beam_search as beam_search_lib
from seq2seq.inference import decoding
from seq2seq.inference import dynamic_decode as dynamic_decode_lib
from seq2seq.inference.constraints import make_constraints
from seq2seq.inference.dynamic_decode import dynamic_decode

END = 1
VOCAB = 7


class ScriptedDecoder:
    """A decoder whose step `t` for entry `b` strongly prefers
    `script[b, t]`; its state counts the steps it has taken."""

    max_decode_length = 9

    def __init__(self, script, peak=4.0):
        self.script = tf.constant(script, tf.int32)
        self.peak = peak
        self.calls = []  # (inputs, state) seen, when run eagerly

    def initial_state(self, batch_size):
        return {
            "time": tf.zeros([batch_size], tf.int32),
            "total": tf.zeros([batch_size, 2], tf.float32),
        }

    def step(self, inputs, state, memory, training=None):
        del memory, training
        self.calls.append((inputs, state))
        time = tf.minimum(state["time"], self.script.shape[1] - 1)
        wanted = tf.gather(self.script, time, axis=1, batch_dims=1)
        logits = tf.one_hot(wanted, VOCAB, on_value=self.peak, off_value=0.0)
        new_state = {"time": state["time"] + 1, "total": state["total"] + 1.0}
        return logits, new_state, None


def one_hot_embedding(ids):
    return tf.one_hot(ids, VOCAB)


def _expected_step_log_prob(peak=4.0):
    # log softmax of a one-hot*peak row at its peak.
    return peak - np.log(np.exp(peak) + VOCAB - 1)


SCRIPT = [
    [4, 5, END, 6, 6, 6],
    [3, END, 2, 2, 2, 2],
    [2, 2, 2, 2, 2, 2],  # never ends
]


def scripted_greedy(decoder, batch_size, **kwargs):
    """`greedy_decode` of a `ScriptedDecoder` from start id 0 with one-hot
    embeddings and no memory."""
    return decoding.greedy_decode(
        decoder,
        one_hot_embedding,
        tf.zeros([batch_size], tf.int32),
        END,
        decoder.initial_state(batch_size),
        {},
        **kwargs,
    )


def test_rigged_decoder_gives_its_sequences_inside_tf_function():
    decoder = ScriptedDecoder(SCRIPT)

    @tf.function
    def run():
        return scripted_greedy(decoder, 3, max_length=5)

    result = run()
    np.testing.assert_array_equal(
        result.ids.numpy(),
        [[4, 5, END, END, END], [3, END, END, END, END], [2, 2, 2, 2, 2]],
    )
    assert result.ids.dtype == tf.int32
    np.testing.assert_array_equal(result.lengths.numpy(), [3, 2, 5])
    assert result.lengths.dtype == tf.int32
    step = _expected_step_log_prob()
    np.testing.assert_allclose(
        result.log_probs.numpy(), [3 * step, 2 * step, 5 * step], rtol=1e-5
    )
    np.testing.assert_allclose(
        result.step_log_probs.numpy(),
        np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]) * step,
        rtol=1e-5,
    )
    assert result.attention is None


def test_stops_when_all_finished_and_freezes_finished_state():
    decoder = ScriptedDecoder(SCRIPT[:2])
    result = scripted_greedy(decoder, 2, max_length=50)
    np.testing.assert_array_equal(result.ids.numpy(), [[4, 5, END], [3, END, END]])
    np.testing.assert_array_equal(result.lengths.numpy(), [3, 2])
    # Eagerly, the loop body ran once per step: three steps, not fifty.
    assert len(decoder.calls) == 3
    # Each step was fed the previous choice (start token first).
    fed = [tf.argmax(inputs, axis=-1).numpy().tolist() for inputs, _ in decoder.calls]
    assert fed == [[0, 0], [4, 3], [5, END]]
    # Entry 1 finished at step 1: its state no longer advanced afterwards.
    times = [state["time"].numpy().tolist() for _, state in decoder.calls]
    assert times == [[0, 0], [1, 1], [2, 2]]
    totals = [state["total"].numpy()[:, 0].tolist() for _, state in decoder.calls]
    assert totals == [[0, 0], [1, 1], [2, 2]]


def test_frozen_state_is_not_overwritten():
    # Entry 1 ends at step 0; its state must stay at the initial value.
    decoder = ScriptedDecoder([[4, 4, 4, END], [END, 2, 2, 2]])
    scripted_greedy(decoder, 2, max_length=10)
    times = [state["time"].numpy().tolist() for _, state in decoder.calls]
    assert times == [[0, 0], [1, 1], [2, 1], [3, 1]]


def test_max_length_defaults_to_decoder_limit():
    decoder = ScriptedDecoder([[2] * 20])
    result = decoding.greedy_decode(
        decoder, one_hot_embedding, [0], END, decoder.initial_state(1), {}
    )
    assert result.ids.shape == (1, ScriptedDecoder.max_decode_length)
    np.testing.assert_array_equal(result.lengths.numpy(), [9])


def test_sampling_with_seed_is_reproducible():
    # Flat distribution except a very unlikely end token.
    script = [[END] * 12] * 6
    decoder = ScriptedDecoder(script, peak=-30.0)

    @tf.function
    def run(seed):
        return scripted_greedy(
            decoder, 6, max_length=12, sampling="sample", seed=seed
        ).ids

    first, again, other = run(3).numpy(), run(3).numpy(), run(4).numpy()
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    assert first.shape == (6, 12)
    assert not (first == END).any()
    assert len(np.unique(first)) > 3


def test_low_temperature_sampling_is_argmax():
    decoder = ScriptedDecoder(SCRIPT)
    kwargs = dict(max_length=5, sampling="sample", temperature=1e-3, seed=7)
    result = scripted_greedy(decoder, 3, **kwargs)
    np.testing.assert_array_equal(result.lengths.numpy(), [3, 2, 5])
    # Log-probabilities are the model's, not the tempered ones.
    step = _expected_step_log_prob()
    np.testing.assert_allclose(result.log_probs.numpy()[1], 2 * step, rtol=1e-5)


def test_bad_sampling_options():
    decoder = ScriptedDecoder(SCRIPT)
    state = decoder.initial_state(3)
    with pytest.raises(ConfigError, match="sampling"):
        decoding.greedy_decode(
            decoder, one_hot_embedding, [0] * 3, END, state, {}, 3, "beam"
        )
    with pytest.raises(ConfigError, match="temperature"):
        decoding.greedy_decode(
            decoder, one_hot_embedding, [0] * 3, END, state, {}, 3, "sample", 0.0
        )


EncoderOutput = collections.namedtuple(
    "EncoderOutput",
    ["outputs", "final_state", "attention_values", "attention_values_length"],
)


def _real_setup(decoder_class):
    params = {"rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 6}}}
    if decoder_class is AttentionDecoder:
        decoder = AttentionDecoder(
            params,
            "infer",
            VOCAB,
            attention_layer=AttentionLayerDot({"num_units": 5}, "infer"),
        )
    else:
        decoder = BasicDecoder(params, "infer", VOCAB)
    embedding = tf.Variable(tf.random.stateless_normal([VOCAB, 4], seed=[1, 2]))
    source = tf.random.stateless_normal([2, 3, 5], seed=[3, 4])
    encoder_output = EncoderOutput(source, None, source, tf.constant([3, 2]))
    return decoder, embedding, encoder_output


def real_greedy(decoder, embedding, encoder_output, jit_compile=False):
    """Greedy decoding (6 steps at most) of the two `_real_setup` sentences,
    traced in a `tf.function`."""

    @tf.function
    def run():
        memory = decoder.prepare_memory(encoder_output)
        state = decoder.initial_state(memory)
        return decoding.greedy_decode(
            decoder,
            lambda ids: tf.nn.embedding_lookup(embedding, ids),
            tf.fill([2], 0),
            END,
            state,
            memory,
            max_length=6,
            jit_compile=jit_compile,
        )

    return run()


@pytest.mark.parametrize("decoder_class", [BasicDecoder, AttentionDecoder])
def test_greedy_agrees_with_teacher_forcing(decoder_class):
    decoder, embedding, encoder_output = _real_setup(decoder_class)

    def embed(ids):
        return tf.nn.embedding_lookup(embedding, ids)

    result = real_greedy(decoder, embedding, encoder_output)
    ids = result.ids.numpy()
    assert ids.shape[0] == 2 and 1 <= ids.shape[1] <= 6
    memory = decoder.prepare_memory(encoder_output)
    state = decoder.initial_state(memory)
    inputs = embed(np.concatenate([[[0], [0]], ids[:, :-1]], axis=1))
    logits, attention = decoder(inputs, state, memory)
    log_probs = tf.nn.log_softmax(logits).numpy()
    for row in range(2):
        length = result.lengths.numpy()[row]
        np.testing.assert_array_equal(
            np.argmax(log_probs[row, :length], axis=-1), ids[row, :length]
        )
        chosen = log_probs[row, np.arange(length), ids[row, :length]]
        assert result.log_probs.numpy()[row] == pytest.approx(chosen.sum(), abs=1e-4)
    if decoder_class is AttentionDecoder:
        assert result.attention.shape == (2, ids.shape[1], 3)
        for row, valid in enumerate([3, 2]):
            length = result.lengths.numpy()[row]
            np.testing.assert_array_equal(result.attention.numpy()[row, :, valid:], 0.0)
            np.testing.assert_allclose(
                result.attention.numpy()[row, :length].sum(-1), 1.0, rtol=1e-5
            )
            np.testing.assert_array_equal(result.attention.numpy()[row, length:], 0.0)
            np.testing.assert_allclose(
                result.attention.numpy()[row, :length],
                attention.numpy()[row, :length],
                atol=1e-5,
            )
    else:
        assert result.attention is None


def test_tile_and_gather_helpers():
    nest = {"a": tf.constant([[1, 2], [3, 4]]), "b": [tf.constant([5, 6])], "t": 7}
    tiled = decoding.tile_batch(nest, 3)
    np.testing.assert_array_equal(tiled["a"].numpy(), [[1, 2]] * 3 + [[3, 4]] * 3)
    np.testing.assert_array_equal(tiled["b"][0].numpy(), [5, 5, 5, 6, 6, 6])
    assert int(tiled["t"]) == 7
    assert tiled["a"].shape == (6, 2)

    picked = decoding.gather_batch(nest, tf.constant([1, 1, 0]))
    np.testing.assert_array_equal(picked["b"][0].numpy(), [6, 6, 5])

    beams = {"x": tf.constant([10, 11, 12, 20, 21, 22])}  # B=2, K=3
    reordered = decoding.gather_beams(beams, tf.constant([[2, 2, 0], [1, 0, 0]]), 3)
    np.testing.assert_array_equal(reordered["x"].numpy(), [12, 12, 10, 21, 20, 20])

    split = decoding.split_beams(tf.reshape(tf.range(12), [6, 2]), 3)
    assert split.shape == (2, 3, 2)
    np.testing.assert_array_equal(
        decoding.merge_beams(split).numpy(), tf.reshape(tf.range(12), [6, 2]).numpy()
    )

    chosen = decoding.where_batch(
        tf.constant([True, False]),
        {"m": tf.zeros([2, 2, 2])},
        {"m": tf.ones([2, 2, 2])},
    )
    np.testing.assert_array_equal(chosen["m"].numpy()[0], 0.0)
    np.testing.assert_array_equal(chosen["m"].numpy()[1], 1.0)


def test_empty_batch_gives_empty_results():
    decoder = ScriptedDecoder(np.zeros([0, 6], np.int32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def run(start_ids):
        result = scripted_greedy(decoder, tf.shape(start_ids)[0], max_length=5)
        return result.ids, result.lengths, result.log_probs, result.step_log_probs

    ids, lengths, log_probs, step_log_probs = run(tf.zeros([0], tf.int32))
    assert ids.shape == (0, 0) and step_log_probs.shape == (0, 0)
    assert lengths.shape == (0,) and log_probs.shape == (0,)


@pytest.mark.parametrize("decoder_class", [BasicDecoder, AttentionDecoder])
def test_jit_compiled_loop_matches_the_plain_one(decoder_class):
    decoder, embedding, encoder_output = _real_setup(decoder_class)
    plain = real_greedy(decoder, embedding, encoder_output)
    compiled = real_greedy(decoder, embedding, encoder_output, jit_compile=True)
    np.testing.assert_array_equal(compiled.ids.numpy(), plain.ids.numpy())
    np.testing.assert_array_equal(compiled.lengths.numpy(), plain.lengths.numpy())
    np.testing.assert_allclose(
        compiled.log_probs.numpy(), plain.log_probs.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        compiled.step_log_probs.numpy(), plain.step_log_probs.numpy(), atol=1e-5
    )
    if decoder_class is AttentionDecoder:
        np.testing.assert_allclose(
            compiled.attention.numpy(), plain.attention.numpy(), atol=1e-5
        )
    else:
        assert compiled.attention is None


def test_jit_stops_early_and_default_scope():
    decoder = ScriptedDecoder(SCRIPT[:2])
    calls = []

    def run(**kwargs):
        calls.append(decoding.resolve_jit_compile(kwargs.get("jit_compile")))
        return scripted_greedy(decoder, 2, max_length=8, **kwargs)

    with decoding.default_jit_compile(True):
        result = run()
        assert decoding.resolve_jit_compile(False) is False
    assert decoding.resolve_jit_compile(None) is False
    assert calls == [True]
    # Both sequences end by step 3: the compiled loop stops there too.
    np.testing.assert_array_equal(result.ids.numpy(), [[4, 5, END], [3, END, END]])
    np.testing.assert_array_equal(result.lengths.numpy(), [3, 2])
    np.testing.assert_allclose(
        result.log_probs.numpy(),
        [3 * _expected_step_log_prob(), 2 * _expected_step_log_prob()],
        rtol=1e-5,
    )


def test_jit_needs_a_static_max_length():
    decoder = ScriptedDecoder(SCRIPT)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def run(limit):
        return scripted_greedy(decoder, 3, max_length=limit, jit_compile=True).ids

    with pytest.raises(ValueError, match="max_length"):
        run(tf.constant(4))


class RandomLogitsDecoder:
    """Random logits per step and batch entry (`table[t, b]`), with the end
    token's logit raised so that entries end at various steps."""

    max_decode_length = 8

    def __init__(self, batch, vocab, seed=0):
        rng = np.random.default_rng(seed)
        table = rng.normal(size=[self.max_decode_length, batch, vocab]) * 3.0
        table[:, :, END] += 4.0
        self.table = tf.constant(table, tf.float32)

    def initial_state(self, batch_size):
        return {"time": tf.zeros([batch_size], tf.int32)}

    def step(self, inputs, state, memory, training=None):
        del inputs, memory, training
        time = state["time"]
        logits = tf.gather(tf.transpose(self.table, [1, 0, 2]), time, batch_dims=1)
        return logits, {"time": time + 1}, None


def _reference_greedy(table, sampling="argmax", temperature=1.0, seed=None, jit=False):
    """Greedy decoding of `RandomLogitsDecoder` the long way: a full
    log-softmax per step (compiled with XLA when `jit`, as XLA sums in
    another order), the token chosen from it."""
    steps, batch, _ = table.shape
    log_softmax = tf.function(tf.nn.log_softmax, jit_compile=jit)
    finished = np.zeros(batch, bool)
    ids, chosen = [], []
    for t in range(steps):
        log_probs = log_softmax(table[t])
        if sampling == "argmax":
            step_ids = tf.argmax(log_probs, axis=-1, output_type=tf.int32).numpy()
        else:
            step_ids = tf.random.stateless_categorical(
                log_probs / temperature, 1, seed=[seed, t], dtype=tf.int32
            ).numpy()[:, 0]
        step_ids = np.where(finished, END, step_ids)
        step_lp = np.where(finished, 0.0, log_probs.numpy()[np.arange(batch), step_ids])
        ids.append(step_ids)
        chosen.append(step_lp.astype(np.float32))
        finished |= step_ids == END
        if finished.all():
            break
    return np.stack(ids, 1), np.stack(chosen, 1)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("sampling", ["argmax", "sample"])
def test_greedy_equals_a_full_log_softmax_reference(jit, sampling):
    # The argmax path takes the token and its log-probability from the
    # logits; they must be those of the log-softmax, bit for bit.
    batch, vocab = 5, 300
    decoder = RandomLogitsDecoder(batch, vocab, seed=3)
    kwargs = {} if sampling == "argmax" else {"temperature": 0.7, "seed": 11}

    @tf.function
    def run():
        return decoding.greedy_decode(
            decoder,
            lambda ids: ids,
            tf.zeros([batch], tf.int32),
            END,
            decoder.initial_state(batch),
            {},
            max_length=8,
            sampling=sampling,
            jit_compile=jit,
            **kwargs,
        )

    result = run()
    ids, step_lp = _reference_greedy(decoder.table, sampling, jit=jit, **kwargs)
    if not jit:  # XLA may sample with other random numbers
        np.testing.assert_array_equal(result.ids.numpy(), ids)
        np.testing.assert_array_equal(result.step_log_probs.numpy(), step_lp)
    lengths = result.lengths.numpy()
    assert 1 < lengths.min() and lengths.min() < lengths.max()
    if sampling == "argmax":
        np.testing.assert_array_equal(result.ids.numpy(), ids)
        np.testing.assert_array_equal(result.step_log_probs.numpy(), step_lp)
        # Summed step by step, as the loop adds them.
        totals = np.cumsum(step_lp, axis=1, dtype=np.float32)[:, -1]
        np.testing.assert_array_equal(result.log_probs.numpy(), totals)


def test_argmax_log_prob_is_the_log_softmax_at_the_argmax():
    logits = tf.constant([[1.0, 3.0, -2.0, 3.0], [0.5, 0.25, -1.0, 8.0]])
    ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    expected = [
        -np.log(np.exp(-2.0) + 2.0 + np.exp(-5.0)),
        -np.log(np.exp(-7.5) + np.exp(-7.75) + np.exp(-9.0) + 1.0),
    ]
    got = decoding.argmax_log_prob(logits, ids).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        got, tf.gather(tf.nn.log_softmax(logits), ids, batch_dims=1).numpy()
    )


class RowScriptedDecoder(ScriptedDecoder):
    """A `ScriptedDecoder` whose script rows travel in its state, so that it
    may be stepped on any subset of rows (`independent_rows`)."""

    independent_rows = True

    def initial_state(self, batch_size):
        state = super().initial_state(batch_size)
        state["script"] = self.script
        return state

    def step(self, inputs, state, memory, training=None):
        del memory, training
        self.calls.append((inputs, state))
        time = tf.minimum(state["time"], self.script.shape[1] - 1)
        wanted = tf.gather(state["script"], time, axis=1, batch_dims=1)
        logits = tf.one_hot(wanted, VOCAB, on_value=self.peak, off_value=0.0)
        new_state = dict(state, time=state["time"] + 1, total=state["total"] + 1.0)
        return logits, new_state, None


@pytest.mark.parametrize("multiple", [1, 2])
def test_greedy_steps_only_the_rows_that_have_not_ended(monkeypatch, multiple):
    monkeypatch.setattr(dynamic_decode_lib, "ACTIVE_SENTENCE_MULTIPLE", multiple)
    decoder = RowScriptedDecoder(SCRIPT)
    result = scripted_greedy(decoder, 3, max_length=5)
    # Row 1 ends at step 1 and row 0 at step 2: from then on the decoder
    # steps the rows still going, each with its own state, and with a
    # multiple of 2 rows an ended one (row 0, frozen at time 3) besides.
    rows = [[int(t) for t in state["time"].numpy()] for _, state in decoder.calls]
    fed = [tf.argmax(inputs, axis=-1).numpy().tolist() for inputs, _ in decoder.calls]
    if multiple == 1:
        assert rows == [[0, 0, 0], [1, 1, 1], [2, 2], [3], [4]]
        assert fed == [[0, 0, 0], [4, 3, 2], [5, 2], [2], [2]]
    else:
        assert rows == [[0, 0, 0], [1, 1, 1], [2, 2], [3, 3], [4, 3]]
        assert fed == [[0, 0, 0], [4, 3, 2], [5, 2], [2, END], [2, END]]
    # The results are those of stepping every row.
    np.testing.assert_array_equal(
        result.ids.numpy(),
        [[4, 5, END, END, END], [3, END, END, END, END], [2, 2, 2, 2, 2]],
    )
    np.testing.assert_array_equal(result.lengths.numpy(), [3, 2, 5])
    step = _expected_step_log_prob()
    np.testing.assert_allclose(
        result.step_log_probs.numpy(),
        np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]) * step,
        rtol=1e-5,
    )
    # A decoder that does not declare independent rows is stepped whole.
    whole = ScriptedDecoder(SCRIPT)
    scripted_greedy(whole, 3, max_length=5)
    assert [len(state["time"]) for _, state in whole.calls] == [3] * 5


class CountingAttentionDecoder(AttentionDecoder):
    """An `AttentionDecoder` that notes how many rows each step ran on
    (when run eagerly)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stepped_rows = []

    def step(self, inputs, state, memory, training=None):
        if tf.executing_eagerly():
            self.stepped_rows.append(int(inputs.shape[0]))
        return super().step(inputs, state, memory, training=training)


def _random_attention_decoding(strategy, prefix=False, max_length=8):
    """`(decoder, run)`: a seeded random-weight attention decoder over 8
    sources of lengths 1-3, and `run()` decoding them with `strategy`
    (forced prefixes `[3, 4]` / the end token on alternate halves when
    `prefix`)."""
    tf.keras.utils.set_random_seed(1)
    params = {"rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 6}}}
    decoder = CountingAttentionDecoder(
        params,
        "infer",
        VOCAB,
        attention_layer=AttentionLayerDot({"num_units": 5}, "infer"),
    )
    embedding = tf.Variable(tf.random.stateless_normal([VOCAB, 4], seed=[1, 2]))
    source = tf.random.stateless_normal([8, 3, 5], seed=[1, 4])
    encoder_output = EncoderOutput(
        source, None, source, tf.constant([3, 2, 1, 3, 2, 3, 1, 2])
    )
    constraints = None
    if prefix:
        constraints = make_constraints(
            tf.constant([[3, 4]] * 4 + [[END, 0]] * 4), tf.constant([2, 1] * 4)
        )

    def run():
        memory = decoder.prepare_memory(encoder_output)
        return dynamic_decode(
            decoder,
            strategy,
            None,
            lambda ids: tf.nn.embedding_lookup(embedding, ids),
            tf.fill([8], 0),
            END,
            decoder.initial_state(memory),
            memory,
            max_length=max_length,
            constraints=constraints,
        )

    return decoder, run


@pytest.mark.parametrize("prefix, multiple", [(False, 1), (True, 1), (False, 3)])
def test_stepping_active_rows_gives_the_results_of_stepping_all(
    monkeypatch, prefix, multiple
):
    monkeypatch.setattr(dynamic_decode_lib, "ACTIVE_SENTENCE_MULTIPLE", multiple)
    # 8 greedy outputs that end at different steps, some never: decoded
    # with and without stepping only the active rows, inside a tf.function,
    # with forced prefixes too.
    decoder, run = _random_attention_decoding(decoding.GreedySearch(), prefix)
    active = tf.function(run)()
    decoder.independent_rows = False
    whole = tf.function(run)()
    lengths = whole.lengths.numpy()
    assert lengths.min() < 8 and lengths.max() == 8  # some end, some do not
    np.testing.assert_array_equal(active.ids.numpy(), whole.ids.numpy())
    np.testing.assert_array_equal(active.lengths.numpy(), lengths)
    np.testing.assert_allclose(
        active.log_probs.numpy(), whole.log_probs.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        active.step_log_probs.numpy(), whole.step_log_probs.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        active.attention.numpy(), whole.attention.numpy(), atol=1e-6
    )


@pytest.mark.parametrize(
    "early_stopping, prefix, multiple",
    [(False, False, 1), (False, True, 2), (True, False, 1), (True, True, 1)],
)
def test_beam_search_steps_only_the_sentences_not_done(
    monkeypatch, early_stopping, prefix, multiple
):
    monkeypatch.setattr(dynamic_decode_lib, "ACTIVE_SENTENCE_MULTIPLE", multiple)
    width = 3
    strategy = beam_search_lib.BeamSearch(
        beam_search_lib.BeamSearchConfig(
            beam_width=width,
            vocab_size=VOCAB,
            eos_token=END,
            length_penalty_weight=0.6,
            choose_successors_fn="choose_top_k",
        ),
        early_stopping=early_stopping,
    )
    decoder, run = _random_attention_decoding(strategy, prefix, max_length=10)
    # Eagerly, so that the decoder sees the rows of each step.
    active = run()
    stepped = list(decoder.stepped_rows)
    decoder.independent_rows = False
    whole = run()
    assert len(stepped) == int(whole.num_steps) == int(active.num_steps)
    # Whole sentences of `width` rows, `multiple` sentences at a time, fewer
    # once some sentences are done.
    assert stepped[0] == 8 * width and min(stepped) < 8 * width
    assert all(rows % (width * multiple) == 0 for rows in stepped)
    assert stepped == sorted(stepped, reverse=True)
    if early_stopping:
        # The best hypothesis is the full search's; the others of a settled
        # sentence stop where it settled.
        fields = ("ids", "lengths", "scores", "log_probs")
        pick = (slice(None), 0)
    else:
        # Only sentences whose hypotheses have all ended are skipped, and
        # a step records them as it would: every result is the same, except
        # in slots the search could not fill (log-probability -inf: here the
        # sentences forced to end at once), whose tokens mean nothing.
        fields = beam_search_lib.BeamSearchResult._fields[:-1]
        pick = np.all(np.isfinite(whole.log_probs.numpy()), axis=1)
        assert pick.sum() >= 4
    for field in fields:
        got, want = getattr(active, field), getattr(whole, field)
        if got is None:
            assert want is None
            continue
        got, want = np.asarray(got)[pick], np.asarray(want)[pick]
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=field)
        else:
            np.testing.assert_array_equal(got, want, err_msg=field)
