"""Tests for seq2seq.inference.beam_search and BeamSearchDecoder."""

import collections
import itertools

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.decoders import (
    AttentionDecoder,
    AttentionLayerDot,
    BasicDecoder,
    BeamSearchDecoder,
)
from seq2seq.errors import ConfigError
from seq2seq.inference import beam_search, beam_successors, decoding

START = 0

EncoderOutput = collections.namedtuple(
    "EncoderOutput",
    ["outputs", "final_state", "attention_values", "attention_values_length"],
)


def _config(width, vocab, end, alpha=0.0, choose="choose_top_k"):
    return beam_search.BeamSearchConfig(
        beam_width=width,
        vocab_size=vocab,
        eos_token=end,
        length_penalty_weight=alpha,
        choose_successors_fn=choose,
    )


# ------------------------------------------------------------ decoders


class TableDecoder:
    """A scripted decoder: the distribution at step `t` is row
    `min(t, len(table) - 1)` of `table` (probabilities), whatever the
    prefix; the state counts the steps."""

    max_decode_length = 5

    def __init__(self, table):
        self.table = tf.math.log(tf.constant(table, tf.float32))

    def initial_state(self, batch_size):
        return {"time": tf.zeros([batch_size], tf.int32)}

    def step(self, inputs, state, memory, training=None):
        del inputs, memory, training
        row = tf.minimum(state["time"], self.table.shape[0] - 1)
        return tf.gather(self.table, row), {"time": state["time"] + 1}, None


def _one_hot(vocab):
    return lambda ids: tf.one_hot(ids, vocab)


def _search_table(table, width, max_length, batch=1, alpha=0.0, **kwargs):
    """Beam search over `TableDecoder(table)` for `batch` sentences from
    START to EOS; other keyword arguments go to `beam_search_decode`
    (`choose` names the successor function)."""
    decoder = TableDecoder(table)
    vocab = len(table[0])
    choose = kwargs.pop("choose", "choose_top_k")
    return beam_search.beam_search_decode(
        decoder,
        _one_hot(vocab),
        [START] * batch,
        EOS,
        decoder.initial_state(batch),
        {},
        _config(width, vocab, EOS, alpha, choose),
        max_length,
        **kwargs,
    )


def _real_setup(decoder_class, vocab, batch=2, source_lengths=(3, 2), seed=0):
    """A tiny decoder with fixed random weights and its start state."""
    tf.keras.utils.set_random_seed(seed)
    params = {
        "rnn_cell": {"cell_class": "GRUCell", "cell_params": {"num_units": 6}},
        "init_scale": 1.0,
    }
    if decoder_class is AttentionDecoder:
        decoder = AttentionDecoder(
            params,
            "infer",
            vocab,
            attention_layer=AttentionLayerDot({"num_units": 5}, "infer"),
        )
    else:
        decoder = BasicDecoder(params, "infer", vocab)
    embedding = tf.random.stateless_normal([vocab, 4], seed=[1, seed])
    source_len = max(source_lengths)
    source = tf.random.stateless_normal([batch, source_len, 5], seed=[3, seed])
    cell_state = tf.random.stateless_normal([batch, 6], seed=[5, seed])
    encoder_output = EncoderOutput(
        source, None, source, tf.constant(source_lengths, tf.int32)
    )
    memory = decoder.prepare_memory(encoder_output)
    state = decoder.initial_state(memory, cell_state)

    def embed(ids):
        return tf.nn.embedding_lookup(embedding, ids)

    return decoder, embed, state, memory


def _teacher_forced(decoder, embed, state, memory, sequences):
    """Log-probabilities and attention of given outputs of one sentence.

    Args:
      sequences: List of token lists (each ending with its end token unless
        cut by the length limit), for batch entry 0 of `state`/`memory`.

    Returns:
      `(total log-probs [N], attention [N, T, S] or None)`.
    """
    count = len(sequences)
    longest = max(len(s) for s in sequences)
    first = decoding.gather_batch(state, tf.zeros([count], tf.int32))
    first_memory = decoding.gather_batch(memory, tf.zeros([count], tf.int32))
    padded = np.zeros([count, longest], np.int32)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = seq
    inputs = np.concatenate([np.full([count, 1], START), padded[:, :-1]], axis=1)
    logits, attention = decoder(embed(inputs), first, first_memory)
    log_probs = tf.nn.log_softmax(logits).numpy()
    totals = np.array(
        [
            log_probs[row, np.arange(len(seq)), seq].sum()
            for row, seq in enumerate(sequences)
        ]
    )
    return totals, None if attention is None else attention.numpy()


def _penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


# ------------------------------------------------------- scoring pieces


def test_length_penalty_values():
    lengths = tf.constant([[1, 2, 3], [3, 3, 3]])
    penalty = beam_search.length_penalty(lengths, 0.6).numpy()
    np.testing.assert_allclose(penalty[0], [1.0, 1.0969027, 1.1884017], rtol=1e-5)
    np.testing.assert_allclose(penalty[1], [(8 / 6) ** 0.6] * 3, rtol=1e-6)
    np.testing.assert_array_equal(beam_search.length_penalty(lengths, 0.0), 1.0)


def test_choose_top_k_and_lookup():
    config = _config(2, 3, 0)
    scores = tf.constant([[0.1, 0.5, -1.0, 0.5, 0.2, 0.0]])
    top, indices = beam_search.choose_top_k(scores, config)
    np.testing.assert_allclose(top.numpy(), [[0.5, 0.5]])
    np.testing.assert_array_equal(indices.numpy(), [[1, 3]])
    assert beam_search.get_choose_successors_fn("choose_top_k") is (
        beam_search.choose_top_k
    )
    with pytest.raises(ConfigError, match="choose_top_k, choose_top_k_sample"):
        beam_search.get_choose_successors_fn("top_p")


def test_choose_top_k_sample_draws_distinct_candidates():
    config = _config(3, 4, 0)
    scores = tf.math.log(tf.constant([[0.1, 0.2, 0.3, 0.4] * 2] * 5))
    top, indices = beam_search.choose_top_k_sample(scores, config)
    for row in range(5):
        assert len(set(indices.numpy()[row])) == 3
    np.testing.assert_allclose(
        top.numpy(), tf.gather(scores, indices, batch_dims=1).numpy()
    )


def test_bad_configs():
    decoder = TableDecoder([[0.5, 0.5]])
    args = (_one_hot(2), [START], 0, decoder.initial_state(1), {})
    with pytest.raises(ConfigError, match="beam_width must be >= 1"):
        beam_search.beam_search_decode(decoder, *args, _config(0, 2, 0))
    with pytest.raises(ConfigError, match="choose_successors_fn 'nope'"):
        beam_search.beam_search_decode(decoder, *args, _config(2, 2, 0, 0, "nope"))
    with pytest.raises(ValueError, match="vocab_size is 5"):
        beam_search.beam_search_decode(decoder, *args, _config(2, 5, 0))


# ------------------------------------------------------------ search


@pytest.mark.parametrize("decoder_class", [BasicDecoder, AttentionDecoder])
@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_width_one_equals_greedy(decoder_class, alpha):
    vocab, end = 6, 1
    decoder, embed, state, memory = _real_setup(decoder_class, vocab)
    start = tf.fill([2], START)
    greedy = decoding.greedy_decode(decoder, embed, start, end, state, memory, 7)
    result = beam_search.beam_search_decode(
        decoder, embed, start, end, state, memory, _config(1, vocab, end, alpha), 7
    )
    assert result.ids.shape == (2, 1, greedy.ids.shape[1])
    np.testing.assert_array_equal(result.ids[:, 0].numpy(), greedy.ids.numpy())
    np.testing.assert_array_equal(result.lengths[:, 0].numpy(), greedy.lengths.numpy())
    np.testing.assert_array_equal(
        result.log_probs[:, 0].numpy(), greedy.log_probs.numpy()
    )
    np.testing.assert_array_equal(
        result.step_log_probs[:, :, 0].numpy(), greedy.step_log_probs.numpy()
    )
    np.testing.assert_array_equal(result.step_ids[:, :, 0].numpy(), greedy.ids.numpy())
    np.testing.assert_array_equal(result.step_parent_ids.numpy(), 0)
    penalty = _penalty(greedy.lengths.numpy(), alpha)
    np.testing.assert_allclose(
        result.scores[:, 0].numpy(), greedy.log_probs.numpy() / penalty, rtol=1e-6
    )
    if decoder_class is AttentionDecoder:
        np.testing.assert_allclose(
            result.attention[:, 0].numpy(), greedy.attention.numpy(), atol=1e-7
        )
    else:
        assert result.attention is None and greedy.attention is None


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_matches_exhaustive_search(alpha):
    # V = 4, at most 3 steps: 1 + 3 + 36 = 40 possible outputs, so a beam of
    # 48 is exact, and its whole sorted list must equal the enumeration.
    vocab, end, steps, width = 4, 2, 3, 48
    decoder, embed, state, memory = _real_setup(BasicDecoder, vocab, batch=1, seed=4)
    words = [w for w in range(vocab) if w != end]
    outputs = (
        [[end]]
        + [[w, end] for w in words]
        + [[a, b, c] for a, b in itertools.product(words, repeat=2) for c in range(4)]
    )
    assert len(outputs) == 40
    totals, _ = _teacher_forced(decoder, embed, state, memory, outputs)
    lengths = np.array([len(o) for o in outputs])
    scores = totals / _penalty(lengths, alpha)
    order = np.argsort(-scores, kind="stable")

    result = beam_search.beam_search_decode(
        decoder,
        embed,
        [START],
        end,
        state,
        memory,
        _config(width, vocab, end, alpha),
        steps,
    )
    assert result.ids.shape == (1, width, steps)
    for rank, index in enumerate(order):
        expected = outputs[index] + [end] * (steps - len(outputs[index]))
        np.testing.assert_array_equal(result.ids[0, rank].numpy(), expected)
    np.testing.assert_array_equal(result.lengths[0, :40].numpy(), lengths[order])
    np.testing.assert_allclose(result.log_probs[0, :40], totals[order], atol=1e-5)
    np.testing.assert_allclose(result.scores[0, :40], scores[order], atol=1e-5)
    # The slots left over have nothing to hold.
    assert np.all(result.scores[0, 40:].numpy() == -np.inf)
    # The scores are in ranking order.
    assert np.all(np.diff(result.scores[0, :40].numpy()) <= 0)


class HistoryDecoder:
    """A scripted decoder whose next-token distribution depends on the whole
    prefix, which it keeps in a nested state (a tuple holding an int matrix
    and a dict, plus a scalar leaf that beam search must pass through)."""

    max_decode_length = 4

    def __init__(self, vocab, limit, seed=0):
        self.vocab, self.limit = vocab, limit
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=[97, vocab]).astype(np.float32) * 2.0

    def initial_state(self, batch_size):
        prefix = tf.zeros([batch_size, self.limit], tf.int32)
        return (prefix, {"pos": tf.zeros([batch_size], tf.int32)}, tf.constant(7))

    def logits_for(self, prefix):
        code = 1
        for token in prefix:
            code = (code * 31 + int(token) + 1) % 97
        return self.weights[code]

    def step(self, inputs, state, memory, training=None):
        del memory, training
        prefix, counters, scalar = state
        token = tf.argmax(inputs, axis=-1, output_type=tf.int32)
        pos = counters["pos"]
        prefix = tf.where(
            tf.range(self.limit)[None, :] == pos[:, None] - 1, token[:, None], prefix
        )
        code = tf.ones_like(pos)
        for i in range(self.limit):
            code = tf.where(i < pos, (code * 31 + prefix[:, i] + 1) % 97, code)
        logits = tf.gather(tf.constant(self.weights), code)
        return logits, (prefix, {"pos": pos + 1}, scalar), None


def test_nested_state_follows_its_hypothesis():
    # The first input is the start token; the prefix the decoder records is
    # the outputs so far. Exhaustive search over V = 3 and 4 steps: 1 + 2 +
    # 4 + 8 * 3 = 31 outputs.
    vocab, end, steps = 3, 0, 4
    decoder = HistoryDecoder(vocab, steps)
    outputs = [[end]]
    for length in range(1, steps):
        for words in itertools.product([1, 2], repeat=length):
            last = range(vocab) if length == steps - 1 else [end]
            outputs += [list(words) + [c] for c in last]
    assert len(outputs) == 31
    totals = []
    for out in outputs:
        total = 0.0
        for t, token in enumerate(out):
            logits = decoder.logits_for(out[:t]).astype(np.float64)
            total += logits[token] - np.log(np.exp(logits).sum())
        totals.append(total)
    totals = np.array(totals)
    order = np.argsort(-totals, kind="stable")
    result = beam_search.beam_search_decode(
        decoder,
        _one_hot(vocab),
        [START, START],
        end,
        decoder.initial_state(2),
        {},
        _config(32, vocab, end),
        steps,
    )
    for row in range(2):
        for rank, index in enumerate(order):
            expected = outputs[index] + [end] * (steps - len(outputs[index]))
            np.testing.assert_array_equal(result.ids[row, rank].numpy(), expected)
        np.testing.assert_allclose(result.log_probs[row, :31], totals[order], 1e-5)


# Tokens of the scripted decoder: 0 ends, 1 and 2 are words.
EOS, A, B = 0, 1, 2
SWAP_TABLE = [
    [np.exp(-1.0), 0.6, 1 - 0.6 - np.exp(-1.0)],
    [0.01, 0.98, 0.01],
    [0.5, 0.25, 0.25],
    [0.9, 0.05, 0.05],
]


def test_length_penalty_swaps_short_and_long_hypotheses():
    # [EOS]: log p = -1, length 1.  [A, A, EOS]: log p = log(.6 * .98 * .5)
    # ~ -1.224, length 3. Without a penalty the short one wins; with
    # alpha = 1 the long one scores -1.224 / (8/6) ~ -0.918 > -1.
    long_lp = np.log(0.6 * 0.98 * 0.5)
    runs = {}
    for alpha in (0.0, 1.0):
        runs[alpha] = _search_table(SWAP_TABLE, 3, 5, alpha=alpha)
    short, longer = runs[0.0], runs[1.0]
    # Both searches end after 4 steps: then the 3 kept hypotheses are
    # [EOS], [A, A, EOS] and [A, A, A, EOS].
    assert int(short.num_steps) == int(longer.num_steps) == 4
    np.testing.assert_array_equal(short.ids[0, 0].numpy(), [EOS] * 4)
    assert short.lengths[0, 0] == 1
    assert short.log_probs[0, 0].numpy() == pytest.approx(-1.0, abs=1e-6)
    assert short.scores[0, 0].numpy() == pytest.approx(-1.0, abs=1e-6)
    np.testing.assert_array_equal(short.ids[0, 1].numpy(), [A, A, EOS, EOS])
    assert short.log_probs[0, 1].numpy() == pytest.approx(long_lp, abs=1e-5)

    np.testing.assert_array_equal(longer.ids[0, 0].numpy(), [A, A, EOS, EOS])
    assert longer.lengths[0, 0] == 3
    assert longer.log_probs[0, 0].numpy() == pytest.approx(long_lp, abs=1e-5)
    assert longer.scores[0, 0].numpy() == pytest.approx(long_lp / (8 / 6), abs=1e-5)
    np.testing.assert_array_equal(longer.ids[0, 1].numpy(), [EOS] * 4)
    np.testing.assert_array_equal(longer.ids[0, 2].numpy(), [A, A, A, EOS])
    np.testing.assert_array_equal(longer.lengths[0].numpy(), [3, 1, 4])
    assert longer.scores[0, 1].numpy() == pytest.approx(-1.0, abs=1e-6)


def test_finished_hypotheses_stay_finished():
    result = _search_table(SWAP_TABLE, 3, 5)
    ids = result.step_ids[0].numpy()
    parents = result.step_parent_ids[0].numpy()
    scores = result.step_scores[0].numpy()
    step_lp = result.step_log_probs[0].numpy()
    # Step 0 fills the three slots with three different tokens of beam 0.
    np.testing.assert_array_equal(parents[0], 0)
    assert sorted(ids[0]) == [0, 1, 2]
    finished = ids[0] == EOS
    for t in range(1, ids.shape[0]):
        was_finished = finished[parents[t]]
        assert np.all(ids[t][was_finished] == EOS)
        np.testing.assert_array_equal(step_lp[t][was_finished], 0.0)
        np.testing.assert_array_equal(
            scores[t][was_finished], scores[t - 1][parents[t]][was_finished]
        )
        finished = was_finished | (ids[t] == EOS)
    # All three slots had finished after 4 of the 5 allowed steps; [EOS]
    # stayed in the beam throughout with its score unchanged.
    assert int(result.num_steps) == 4
    assert result.step_lengths.numpy().tolist() == [4]
    assert finished.all()
    assert np.isclose(scores, -1.0, atol=1e-6).any(axis=1).all()


def test_stops_once_every_hypothesis_has_finished():
    table = [[0.4, 0.3, 0.3], [0.998, 0.001, 0.001]]
    result = _search_table(table, 3, 10, batch=2)
    assert int(result.num_steps) == 2
    assert result.ids.shape == (2, 3, 2)
    np.testing.assert_array_equal(result.step_lengths.numpy(), [2, 2])
    for row in range(2):
        np.testing.assert_array_equal(
            result.ids[row].numpy(), [[EOS, EOS], [A, EOS], [B, EOS]]
        )
        np.testing.assert_array_equal(result.lengths[row].numpy(), [1, 2, 2])


def test_batched_search_equals_one_sentence_at_a_time():
    vocab, end, width = 6, 1, 3
    decoder, embed, state, memory = _real_setup(
        AttentionDecoder, vocab, batch=3, source_lengths=(4, 2, 3), seed=2
    )
    config = _config(width, vocab, end, 0.6)
    batched = beam_search.beam_search_decode(
        decoder, embed, tf.fill([3], START), end, state, memory, config, 6
    )
    for row in range(3):
        pick = tf.constant([row])
        alone = beam_search.beam_search_decode(
            decoder,
            embed,
            [START],
            end,
            decoding.gather_batch(state, pick),
            decoding.gather_batch(memory, pick),
            config,
            6,
        )
        steps = int(alone.num_steps)
        assert int(batched.step_lengths[row]) == steps
        np.testing.assert_array_equal(
            batched.ids[row, :, :steps].numpy(), alone.ids[0].numpy()
        )
        np.testing.assert_array_equal(batched.ids[row, :, steps:].numpy(), end)
        np.testing.assert_array_equal(batched.lengths[row], alone.lengths[0])
        np.testing.assert_allclose(batched.log_probs[row], alone.log_probs[0], 1e-5)
        np.testing.assert_allclose(batched.scores[row], alone.scores[0], 1e-5)
        np.testing.assert_allclose(
            batched.attention[row, :, :steps].numpy(),
            alone.attention[0].numpy(),
            atol=1e-6,
        )
        for name in ("step_ids", "step_parent_ids"):
            np.testing.assert_array_equal(
                getattr(batched, name)[row, :steps].numpy(),
                getattr(alone, name)[0].numpy(),
            )


def test_attention_follows_its_hypothesis():
    vocab, end, width = 6, 1, 3
    decoder, embed, state, memory = _real_setup(
        AttentionDecoder, vocab, batch=2, source_lengths=(4, 3), seed=7
    )
    result = beam_search.beam_search_decode(
        decoder,
        embed,
        tf.fill([2], START),
        end,
        state,
        memory,
        _config(width, vocab, end),
        5,
    )
    ids = result.ids.numpy()
    assert result.attention.shape == (2, width, ids.shape[2], 4)
    for row in range(2):
        sentence_state = decoding.gather_batch(state, tf.constant([row]))
        sentence_memory = decoding.gather_batch(memory, tf.constant([row]))
        lengths = result.lengths[row].numpy()
        hypotheses = [list(ids[row, k, : lengths[k]]) for k in range(width)]
        # The K hypotheses are different outputs.
        assert len({tuple(h) for h in hypotheses}) == width
        totals, attention = _teacher_forced(
            decoder, embed, sentence_state, sentence_memory, hypotheses
        )
        np.testing.assert_allclose(result.log_probs[row].numpy(), totals, atol=1e-5)
        for k in range(width):
            got = result.attention[row, k].numpy()
            np.testing.assert_allclose(
                got[: lengths[k]], attention[k, : lengths[k]], atol=1e-5
            )
            np.testing.assert_array_equal(got[lengths[k] :], 0.0)


def test_runs_in_tf_function_without_retracing():
    vocab, end, width = 6, 1, 2
    decoder, embed, state, memory = _real_setup(AttentionDecoder, vocab)
    config = _config(width, vocab, end, 0.6)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 5], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def search(source, source_len):
        memory = decoder.prepare_memory(EncoderOutput(source, None, source, source_len))
        state = decoder.initial_state(memory)
        batch = tf.shape(source_len)[0]
        result = beam_search.beam_search_decode(
            decoder, embed, tf.fill([batch], START), end, state, memory, config, 4
        )
        return beam_search.beam_search_predictions(result)

    # Build the layers first: a first call that creates variables traces
    # twice.
    _teacher_forced(decoder, embed, state, memory, [[2]])
    first = search(tf.random.normal([2, 3, 5]), tf.constant([3, 2]))
    second = search(tf.random.normal([3, 5, 5]), tf.constant([5, 1, 4]))
    assert search.experimental_get_tracing_count() == 1
    steps = first["predicted_ids"].shape[1]
    assert first["attention_scores"].shape == (2, steps, 3)
    assert second["attention_scores"].shape[::2] == (3, 5)
    assert second["beam_search_output.predicted_ids"].shape[::2] == (3, width)


def test_predictions_dict():
    decoder, embed, state, memory = _real_setup(AttentionDecoder, 6)
    result = beam_search.beam_search_decode(
        decoder, embed, tf.fill([2], START), 1, state, memory, _config(3, 6, 1), 4
    )
    predictions = beam_search.beam_search_predictions(result)
    steps = int(result.num_steps)
    assert sorted(predictions) == sorted(
        [
            "predicted_ids",
            "predicted_len",
            "log_probs",
            "attention_scores",
            "beam_search_output.predicted_ids",
            "beam_search_output.beam_parent_ids",
            "beam_search_output.scores",
            "beam_search_output.log_probs",
            "beam_search_output.length",
        ]
    )
    np.testing.assert_array_equal(predictions["predicted_ids"], result.ids[:, 0])
    np.testing.assert_array_equal(predictions["predicted_len"], result.lengths[:, 0])
    np.testing.assert_array_equal(predictions["log_probs"], result.log_probs[:, 0])
    assert predictions["attention_scores"].shape == (2, steps, 3)
    for key in ("predicted_ids", "beam_parent_ids", "scores", "log_probs"):
        assert predictions["beam_search_output." + key].shape == (2, steps, 3)
    assert predictions["beam_search_output.length"].dtype == tf.int32
    # The best hypothesis's last trace score is its final score.
    np.testing.assert_allclose(
        predictions["beam_search_output.scores"][:, -1].numpy().max(axis=1),
        result.scores[:, 0],
        rtol=1e-6,
    )

    basic, embed, state, memory = _real_setup(BasicDecoder, 6)
    result = beam_search.beam_search_decode(
        basic, embed, tf.fill([2], START), 1, state, memory, _config(2, 6, 1), 3
    )
    assert "attention_scores" not in beam_search.beam_search_predictions(result)


def test_beam_search_decoder_wraps_a_decoder():
    decoder, embed, state, memory = _real_setup(AttentionDecoder, 6)
    config = _config(3, 6, 1)
    wrapped = BeamSearchDecoder(decoder, config)
    assert wrapped.cell is decoder.cell
    assert wrapped.vocab_size == 6
    assert wrapped.beam_width == 3
    assert wrapped.max_decode_length == decoder.max_decode_length
    got = wrapped.decode(embed, tf.fill([2], START), None, state, memory, 4)
    want = beam_search.beam_search_decode(
        decoder, embed, tf.fill([2], START), 1, state, memory, config, 4
    )
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_sampled_successors_keep_the_invariants():
    tf.random.set_seed(3)
    result = _search_table(SWAP_TABLE, 3, 5, batch=2, choose="choose_top_k_sample")
    ids = result.ids.numpy()
    lengths = result.lengths.numpy()
    for row in range(2):
        assert np.all(np.diff(result.scores[row].numpy()) <= 0)
        for k in range(3):
            tokens = ids[row, k]
            ends = np.flatnonzero(tokens == EOS)
            if len(ends):
                assert lengths[row, k] == ends[0] + 1
                assert np.all(tokens[ends[0] :] == EOS)
            else:
                assert lengths[row, k] == 5


def test_zero_length_penalty_weight_skips_the_division():
    log_probs = tf.constant([[-1.5, -3.0]])
    lengths = tf.constant([[2, 7]])
    np.testing.assert_array_equal(
        beam_search.hyp_score(log_probs, lengths, _config(2, 6, 1, 0.0)).numpy(),
        log_probs.numpy(),
    )
    np.testing.assert_allclose(
        beam_search.hyp_score(log_probs, lengths, _config(2, 6, 1, 0.5)).numpy(),
        [[-1.5 / _penalty(2, 0.5), -3.0 / _penalty(7, 0.5)]],
        rtol=1e-6,
    )


def test_empty_batch_gives_empty_results():
    vocab, end, width = 6, 1, 3
    decoder = TableDecoder([[0.1, 0.2, 0.3, 0.2, 0.1, 0.1]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def search(start_ids):
        state = decoder.initial_state(tf.shape(start_ids)[0])
        result = beam_search.beam_search_decode(
            decoder,
            _one_hot(vocab),
            start_ids,
            end,
            state,
            {},
            _config(width, vocab, end),
            4,
        )
        return beam_search.beam_search_predictions(result)

    empty = search(tf.zeros([0], tf.int32))
    assert empty["predicted_ids"].shape == (0, 0)
    assert empty["predicted_len"].shape == (0,)
    assert empty["beam_search_output.predicted_ids"].shape == (0, 0, width)
    assert empty["beam_search_output.length"].shape == (0,)
    full = search(tf.fill([2], START))
    assert full["predicted_ids"].shape == (2, 4)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_jit_compiled_search_matches_the_plain_one(alpha):
    vocab, end, width = 6, 1, 3
    decoder, embed, state, memory = _real_setup(
        AttentionDecoder, vocab, batch=2, source_lengths=(4, 3), seed=7
    )

    def search(jit_compile):
        @tf.function
        def run():
            return beam_search.beam_search_decode(
                decoder,
                embed,
                tf.fill([2], START),
                end,
                state,
                memory,
                _config(width, vocab, end, alpha),
                6,
                jit_compile=jit_compile,
            )

        return run()

    plain, compiled = search(False), search(True)
    for name in ("ids", "lengths", "step_ids", "step_parent_ids", "step_lengths"):
        np.testing.assert_array_equal(
            getattr(compiled, name).numpy(), getattr(plain, name).numpy(), name
        )
    assert int(compiled.num_steps) == int(plain.num_steps)
    for name in ("scores", "log_probs", "attention", "step_scores", "step_log_probs"):
        np.testing.assert_allclose(
            getattr(compiled, name).numpy(),
            getattr(plain, name).numpy(),
            atol=1e-5,
            err_msg=name,
        )


def test_jit_search_stops_once_every_hypothesis_has_finished():
    vocab, end, width = 4, 1, 2
    # Step 0 prefers tokens 2 and 3, step 1 the end token for both.
    decoder = TableDecoder([[0.1, 0.1, 0.5, 0.3], [0.05, 0.9, 0.03, 0.02]])
    with decoding.default_jit_compile(True):
        result = beam_search.beam_search_decode(
            decoder,
            _one_hot(vocab),
            tf.fill([1], START),
            end,
            decoder.initial_state(1),
            {},
            _config(width, vocab, end),
            5,
        )
    assert int(result.num_steps) == 2
    np.testing.assert_array_equal(result.ids.numpy(), [[[2, end], [3, end]]])
    np.testing.assert_allclose(
        result.log_probs.numpy(), [[np.log(0.5 * 0.9), np.log(0.3 * 0.9)]], rtol=1e-5
    )


# ------------------------------------------- two-stage successor choice


def _reference_top_k(scores_flat, config):
    # The same choice as `choose_top_k`, but another function object, so the
    # search takes the full [B, K * V] path.
    return tf.math.top_k(scores_flat, k=config.beam_width)


@pytest.mark.parametrize("vocab", [7, 600, 1031, 1100])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("jit", [False, True])
def test_top_k_rows_equals_top_k(vocab, k, jit):
    # 600 and 1100 have divisors near sqrt(V / k) (blocks without padding),
    # 1031 is prime (padded); 7 takes tf.math.top_k directly. Small integer
    # values make many ties, which must resolve to the lower index.
    rng = np.random.default_rng(vocab + k)
    values = rng.integers(-6, 4, size=[9, vocab]).astype(np.float32)
    values[1] = -np.inf  # a row without a finite entry
    values[2, : vocab // 2] = -np.inf
    values[3] = rng.normal(size=vocab)
    values[4, -1] = 50.0  # the maximum in the last (padded) block
    top = tf.function(beam_search.top_k_rows, jit_compile=jit)
    got_values, got_ids = top(tf.constant(values), k)
    want_values, want_ids = tf.math.top_k(values, k)
    np.testing.assert_array_equal(got_values.numpy(), want_values.numpy())
    np.testing.assert_array_equal(got_ids.numpy(), want_ids.numpy())


def test_block_size_prefers_a_divisor_near_the_balance_point():
    assert beam_search._block_size(8003, 5) == 53  # 8003 = 53 * 151
    assert 8003 % beam_search._block_size(8003, 5) == 0
    assert beam_search._block_size(1031, 5) == 14  # prime: padded
    assert beam_search._block_size(1100, 5) in (11, 20, 22, 25)


def test_two_stage_applies_only_where_it_is_exact():
    applies = beam_search._two_stage_applies

    def config(alpha=0.0, choose=beam_search.choose_top_k):
        return _config(5, 10, 1, alpha, choose)

    assert applies(config(), 50)
    assert applies(config(0.6), None)
    assert applies(config(-2.0), 1000)
    assert not applies(config(choose=beam_search.choose_top_k_sample), 50)
    assert not applies(config(choose=_reference_top_k), 50)
    assert not applies(config(float("nan")), 50)
    assert not applies(config(float("inf")), 50)
    # ((5 + n) / 6) ** 40 overflows float32 from n = 55 on.
    assert applies(config(40.0), 30)
    assert not applies(config(40.0), 100)
    assert not applies(config(40.0), None)  # length known only at run time
    # The search resolves names before asking.
    resolved = beam_search._check_config(config(choose="choose_top_k"))
    assert applies(resolved, 50)


class EndBiasDecoder:
    """Wraps a decoder: scales its logits by `scale`, adds `bias` to the end
    token's logit, so that
    hypotheses finish at different steps, but makes the end token the least
    likely one after an end token (as the distribution of a finished
    hypothesis, which the search must ignore); sets the logits outside
    `allowed` (all when None) to -inf, so that a hypothesis may have fewer
    than K finite extensions. Its inputs are `(embeddings, ids)`, see
    `_with_ids`."""

    def __init__(self, inner, end, bias, allowed=None, scale=1.0):
        self.inner, self.end, self.bias, self.allowed = inner, end, bias, allowed
        self.scale = scale
        self.max_decode_length = 6

    def step(self, inputs, state, memory, training=None):
        embedded, prev_ids = inputs
        logits, state, attention = self.inner.step(embedded, state, memory, training)
        logits = logits * self.scale
        vocab = logits.shape[-1]
        after_end = tf.where(tf.equal(prev_ids, self.end), -30.0, self.bias)
        logits = logits + after_end[:, None] * tf.one_hot(self.end, vocab)
        if self.allowed is not None:
            keep = tf.reduce_any(tf.one_hot(self.allowed, vocab) > 0, axis=0)
            logits = tf.where(keep, logits, -np.inf)
        return logits, state, attention


def _with_ids(embed):
    return lambda ids: (embed(ids), ids)


def _assert_same_search(got, want):
    for name in beam_search.BeamSearchResult._fields:
        a, b = getattr(got, name), getattr(want, name)
        if b is None:
            assert a is None, name
        else:
            # Bit for bit: both paths compute the chosen values the same way.
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def _two_paths(decoder, embed, state, memory, width, vocab, end, alpha, jit):
    def search(choose):
        @tf.function
        def run():
            return beam_search.beam_search_decode(
                decoder,
                _with_ids(embed),
                tf.fill([2], START),
                end,
                state,
                memory,
                _config(width, vocab, end, alpha, choose),
                6,
                jit_compile=jit,
            )

        return run()

    return search("choose_top_k"), search(_reference_top_k)


@pytest.mark.parametrize(
    "vocab,width,alpha,jit",
    [
        (7, 5, 0.0, False),  # top_k on whole rows
        (3, 5, 0.6, False),  # K > V: slots the search cannot fill
        (1031, 5, 0.0, False),  # padded blocks
        (1100, 5, 0.7, False),  # blocks without padding
        (1100, 4, -0.5, False),  # a penalty favouring short outputs
        (1031, 5, 0.6, True),
        (3, 5, 0.0, True),
    ],
)
def test_two_stage_search_equals_the_full_search(vocab, width, alpha, jit):
    end = 1
    inner, embed, state, memory = _real_setup(
        AttentionDecoder, vocab, source_lengths=(4, 3), seed=vocab + width
    )
    # A large end bias: hypotheses end at various steps, and finished ones
    # compete with unfinished ones.
    decoder = EndBiasDecoder(inner, end, bias=np.log(vocab) - 0.5)
    got, want = _two_paths(decoder, embed, state, memory, width, vocab, end, alpha, jit)
    finished = want.step_ids.numpy() == end
    assert finished.any() and not finished.all()
    _assert_same_search(got, want)


@pytest.mark.parametrize("alpha,jit", [(0.0, False), (0.8, False), (0.0, True)])
def test_two_stage_search_ranks_unreachable_candidates_like_the_full_one(alpha, jit):
    # Only the end token and tokens 3 and 517 have finite logits, so after a
    # few steps fewer than K = 5 finite candidates may exist per sentence:
    # the -inf ones fill the slots in the full search's order.
    vocab, end, width = 600, 1, 5
    inner, embed, state, memory = _real_setup(BasicDecoder, vocab, seed=11)
    decoder = EndBiasDecoder(inner, end, bias=1.0, allowed=[end, 3, 517])
    got, want = _two_paths(decoder, embed, state, memory, width, vocab, end, alpha, jit)
    assert np.isinf(want.step_scores.numpy()).any()
    _assert_same_search(got, want)


@pytest.mark.parametrize("extra,jit", [(3, False), (0, False), (0, True)])
def test_two_stage_search_resolves_rounding_ties_like_the_full_one(
    monkeypatch, extra, jit
):
    # Nearly flat distributions (logits scaled down): tokens whose
    # log-probabilities differ by less than the rounding of the totals get
    # equal scores, inside a hypothesis' best K and at its K-th token, where
    # the search must fall back to scoring every candidate.
    monkeypatch.setattr(beam_successors, "_EXTRA_CANDIDATES", extra)
    vocab, end, width = 1031, 1, 5
    inner, embed, state, memory = _real_setup(BasicDecoder, vocab, seed=5)
    decoder = EndBiasDecoder(inner, end, bias=0.0, scale=1e-4)
    got, want = _two_paths(decoder, embed, state, memory, width, vocab, end, 0.0, jit)
    scores = want.step_scores.numpy()
    assert np.any(scores[:, :, :-1] == scores[:, :, 1:])
    _assert_same_search(got, want)


# ------------------------------------------------------- early stopping


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_early_stopping_ends_once_the_best_hypothesis_is_settled(alpha):
    # Step 0: the end token (p 0.6) beats A and B (0.2 each); afterwards the
    # end token is unlikely, so the unfinished hypotheses run to the limit.
    # Their bound after step 0 is log(0.2) / length_penalty(10), below the
    # finished log(0.6) / length_penalty(1) for both weights.
    table = [[0.6, 0.2, 0.2], [0.01, 0.495, 0.495]]
    assert np.log(0.2) / _penalty(10, alpha) < np.log(0.6) / _penalty(1, alpha)

    def search(early_stopping):
        return _search_table(
            table, 3, 10, batch=2, alpha=alpha, early_stopping=early_stopping
        )

    full, early = search(False), search(True)
    assert int(full.num_steps) == 10 and int(early.num_steps) == 1
    for result in (full, early):
        np.testing.assert_array_equal(result.ids[:, 0, 0].numpy(), [EOS, EOS])
        np.testing.assert_array_equal(result.lengths[:, 0].numpy(), [1, 1])
        np.testing.assert_allclose(result.scores[:, 0].numpy(), np.log(0.6), rtol=1e-6)


def test_early_stopping_waits_while_an_unfinished_hypothesis_could_still_win():
    # With alpha 1, the finished [EOS] (log 0.45 = -0.80, length 1) ranks
    # first after steps 0 and 1, but A (log 0.368 = -1.0) can still end at
    # length 3 with score -1.0 / (8 / 6) = -0.75, above -0.80: a rule that
    # stopped when the top slot has finished would return [EOS].
    table = [[0.45, 0.368, 0.182], [0.0001, 0.9999, 0.0], [0.9999, 0.0001, 0.0]]
    result = _search_table(table, 2, 10, alpha=1.0, early_stopping=True)
    np.testing.assert_array_equal(result.ids[0, 0, :3].numpy(), [A, A, EOS])
    assert int(result.lengths[0, 0]) == 3 and int(result.num_steps) == 3
    assert float(result.scores[0, 0]) > np.log(0.45)


def test_early_stopping_for_an_nbest_list_waits_for_the_nth_hypothesis():
    # The table of the test above: [EOS] settles after step 0, but no second
    # hypothesis ever finishes inside the beam (A EOS, log 0.002, is pushed
    # out by the 0.495 extensions), so a 2-best search runs to the limit.
    table = [[0.6, 0.2, 0.2], [0.01, 0.495, 0.495]]

    def search(early_stopping, n_best):
        return _search_table(table, 3, 10, early_stopping=early_stopping, n_best=n_best)

    assert int(search(True, 1).num_steps) == 1
    full, early = search(False, 2), search(True, 2)
    assert int(early.num_steps) == int(full.num_steps) == 10
    np.testing.assert_array_equal(early.ids[:, :2], full.ids[:, :2])
    np.testing.assert_allclose(early.scores[:, :2], full.scores[:, :2], rtol=1e-6)


def test_early_stopping_settles_the_nth_hypothesis_before_the_full_search():
    # Step 0: [EOS] (log 0.5) finishes and outscores A (log 0.3): 1-best
    # stops. Step 1: [A, EOS] (log 0.15) finishes and outscores the best
    # unfinished [A, A] (log 0.135): 2-best stops. Step 2 finishes the
    # third, [A, A, EOS], and with it the whole beam.
    table = [[0.5, 0.3, 0.2], [0.5, 0.45, 0.05]]
    steps = {
        n_best: int(
            _search_table(table, 3, 10, early_stopping=True, n_best=n_best).num_steps
        )
        for n_best in (1, 2, 3)
    }
    full = _search_table(table, 3, 10)
    assert steps == {1: 1, 2: 2, 3: 3} and int(full.num_steps) == 3
    early = _search_table(table, 3, 10, early_stopping=True, n_best=2)
    np.testing.assert_array_equal(early.lengths[0, :2], [1, 2])
    np.testing.assert_array_equal(early.ids[0, 1], [A, EOS])
    np.testing.assert_allclose(early.log_probs[0, :2], full.log_probs[0, :2], rtol=1e-6)
    np.testing.assert_allclose(early.log_probs[0, :2], np.log([0.5, 0.15]), rtol=1e-6)


@pytest.mark.parametrize("n_best", [1, 3])
@pytest.mark.parametrize(
    "width,alpha,seed", [(3, 0.0, 0), (5, 0.0, 1), (4, 0.6, 2), (5, 1.0, 3)]
)
def test_early_stopping_returns_the_full_searchs_nbest_list(n_best, width, alpha, seed):
    """The n best (the best alone for n_best 1) of an early-stopped search
    are those of the full search."""
    vocab, end, max_length = 9, 1, 12
    inner, embed, state, memory = _real_setup(
        AttentionDecoder, vocab, source_lengths=(4, 3), seed=seed
    )
    decoder = EndBiasDecoder(inner, end, bias=1.5, scale=3.0)
    decoder.max_decode_length = max_length

    def search(early_stopping, count):
        return beam_search.beam_search_decode(
            decoder,
            _with_ids(embed),
            tf.fill([2], START),
            end,
            state,
            memory,
            _config(width, vocab, end, alpha),
            max_length,
            early_stopping=early_stopping,
            n_best=count,
        )

    full, early = search(False, n_best), search(True, n_best)
    assert int(search(True, 1).num_steps) <= int(early.num_steps)
    assert int(early.num_steps) <= int(full.num_steps)
    lengths = full.lengths[:, :n_best].numpy()
    assert lengths.max() <= int(early.num_steps)
    np.testing.assert_array_equal(early.lengths[:, :n_best], lengths)
    for b in range(2):
        for k in range(n_best):
            n = lengths[b, k]
            np.testing.assert_array_equal(early.ids[b, k, :n], full.ids[b, k, :n])
    np.testing.assert_allclose(
        early.scores[:, :n_best], full.scores[:, :n_best], rtol=1e-6
    )
    np.testing.assert_allclose(
        early.log_probs[:, :n_best], full.log_probs[:, :n_best], rtol=1e-6
    )
