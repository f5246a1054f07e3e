"""Constrained decoding: forced target prefixes and banned tokens, with
greedy and beam search, in `tf.function`, under XLA and through
bin/infer.py."""

import functools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import tiny_model_params
from test_export import _train_dir

from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.decoders import Decoder
from seq2seq.errors import ConfigError, DataError
from seq2seq.inference import inference
from seq2seq.inference.beam_search import BeamSearch, BeamSearchConfig
from seq2seq.inference.constraints import banned_token_ids, make_constraints
from seq2seq.inference.decoding import GreedySearch
from seq2seq.inference.dynamic_decode import dynamic_decode
from seq2seq.models import AttentionSeq2Seq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END, VOCAB, MAX_LEN = 0, 1, 8, 10


class BigramDecoder(Decoder):
    """Logits of the next token: the row of a fixed table chosen by the
    previous token (the embedding is the identity). The continuation after
    a prefix depends only on its last token."""

    def __init__(self, table):
        super().__init__({"max_decode_length": MAX_LEN}, "infer", VOCAB)
        self.table = tf.constant(table, tf.float32)

    def prepare_memory(self, encoder_output):
        return {}

    def initial_state(self, memory, cell_state=None, batch_size=None):
        return {"steps": tf.zeros([batch_size], tf.int32)}

    def step(self, inputs, state, memory, training=None):
        return tf.gather(self.table, inputs), {"steps": state["steps"] + 1}, None


def _table(seed=3):
    table = np.random.default_rng(seed).normal(size=[VOCAB, VOCAB]) * 2.0
    table[:, END] += 1.0  # outputs end within a few steps
    table[:, START] = -9.0  # START is never produced
    table[END] = -9.0
    table[END, END] = 5.0
    return table.astype(np.float32)


TABLE = _table()
LOG_PROBS = TABLE - np.log(np.exp(TABLE).sum(axis=1, keepdims=True))
PREFIXES = [[5, 4, 7], [3], [], [6, 2]]


def _constraints(banned=None):
    """The forced `PREFIXES` (padded) and optional banned ids."""
    padded = [p + [0] * (3 - len(p)) for p in PREFIXES]
    return make_constraints(padded, [len(p) for p in PREFIXES], banned)


def _decode(strategy, start, constraints=None, jit=False, table=TABLE):
    decoder = BigramDecoder(table)
    start = tf.constant(start, tf.int32)

    @tf.function
    def run():
        state = decoder.initial_state({}, batch_size=tf.shape(start)[0])
        return dynamic_decode(
            decoder,
            strategy,
            None,
            lambda ids: ids,
            start,
            END,
            state,
            {},
            max_length=MAX_LEN,
            jit_compile=jit,
            constraints=constraints,
        )

    return run()


@functools.cache
def _unconstrained(strategy_name, start):
    """The plain decode of `start` (a tuple), shared by the jit variants."""
    strategy = _beam() if strategy_name == "beam" else GreedySearch()
    return _decode(strategy, list(start))


def _beam(width=3):
    return BeamSearch(BeamSearchConfig(width, VOCAB, END, 0.0, "choose_top_k"))


def _sequence_log_prob(tokens, first=START):
    """Teacher-forced log-probability of `tokens` after `first`."""
    previous = [first] + list(tokens[:-1])
    return float(sum(LOG_PROBS[p, t] for p, t in zip(previous, tokens)))


def _most_frequent(tokens):
    tokens = [t for t in tokens if t != END]
    return max(sorted(set(tokens)), key=tokens.count)


@pytest.mark.parametrize("jit", [False, True])
def test_greedy_forced_prefix_and_banned_tokens(jit):
    starts = [START, 3, START, 6]
    free = _unconstrained("greedy", tuple(starts))
    free_row = free.ids.numpy()[2, : free.lengths.numpy()[2]].tolist()
    banned = [_most_frequent(free_row), 4]  # 4 is also forced in row 0
    prefixed = _decode(GreedySearch(), starts, _constraints(), jit=jit)
    both = _decode(GreedySearch(), starts, _constraints(banned), jit=jit)
    for result, excluded in ((prefixed, []), (both, banned)):
        allowed = np.ones(VOCAB, bool)
        allowed[excluded] = False
        ids, lengths = result.ids.numpy(), result.lengths.numpy()
        for row, prefix in enumerate(PREFIXES):
            output = ids[row, : lengths[row]].tolist()
            assert output[: len(prefix)] == prefix  # even a banned token
            # After the prefix every token is the teacher-forced argmax given
            # the tokens before it, among the allowed ones.
            previous = [starts[row]] + output[:-1]
            for t in range(len(prefix), len(output)):
                scores = np.where(allowed, TABLE[previous[t]], -np.inf)
                assert output[t] == scores.argmax(), (row, t)
            assert not set(output[len(prefix) :]) & set(excluded)
            assert output[-1] == END or len(output) == MAX_LEN
            # The model's scores, the forced tokens' log-probs included.
            assert result.log_probs.numpy()[row] == pytest.approx(
                _sequence_log_prob(output, starts[row]), abs=1e-4
            )
    # Without a prefix or bans: exactly the unconstrained decode.
    n = prefixed.lengths.numpy()[2]
    assert prefixed.ids.numpy()[2, :n].tolist() == free_row
    assert set(free_row) & set(banned)  # the bans did change row 2


@pytest.mark.parametrize("jit", [False, True])
def test_beam_forced_prefix_and_banned_tokens(jit):
    width = 3
    # The bigram model after a prefix is the model started from its last
    # token: the same search (scores offset by the prefix's log-prob).
    lasts = [p[-1] if p else START for p in PREFIXES]
    alone = _unconstrained("beam", tuple(lasts))
    assert np.all(alone.lengths.numpy() <= MAX_LEN - 3)  # no cut by the limit
    prefixed = _decode(_beam(width), [START] * 4, _constraints(), jit=jit)
    free_row = alone.ids.numpy()[2].reshape(-1).tolist()
    banned = [_most_frequent(free_row), 4]
    both = _decode(_beam(width), [START] * 4, _constraints(banned), jit=jit)
    for result in (prefixed, both):
        ids, lengths = result.ids.numpy(), result.lengths.numpy()
        for row, prefix in enumerate(PREFIXES):
            hyps = [ids[row, k, : lengths[row, k]].tolist() for k in range(width)]
            assert all(h[: len(prefix)] == prefix for h in hyps)
            assert len({tuple(h) for h in hyps}) == width  # no collapse
            for k, hyp in enumerate(hyps):
                assert result.log_probs.numpy()[row, k] == pytest.approx(
                    _sequence_log_prob(hyp), abs=1e-4
                )
                if result is both:
                    assert not set(hyp[len(prefix) :]) & set(banned)
                else:
                    n = alone.lengths.numpy()[row, k]
                    assert hyp[len(prefix) :] == alone.ids.numpy()[row, k, :n].tolist()
    assert set(free_row) & set(banned)


def test_banned_token_names_are_checked(tmp_path):
    id_to_token = ["a", "b", "c", "UNK", "SEQUENCE_START", "SEQUENCE_END"]
    params = {"inference.banned_tokens": ["c", "UNK", "c"], "vocab_target": "v.txt"}
    assert banned_token_ids(params, id_to_token) == [2, 3]
    listed = tmp_path / "banned.txt"
    listed.write_text("b\n\nzebra\n")
    params = {"inference.banned_tokens_file": str(listed), "vocab_target": "v.txt"}
    with pytest.raises(ConfigError) as error:
        banned_token_ids(params, id_to_token)
    message = str(error.value)
    assert "'zebra'" in message and "inference.banned_tokens_file" in message
    assert "line 3" in message and "\n" not in message
    with pytest.raises(ConfigError, match="SEQUENCE_END cannot be banned"):
        banned_token_ids({"inference.banned_tokens": ["SEQUENCE_END"]}, id_to_token)
    with pytest.raises(ConfigError, match="does not exist"):
        banned_token_ids({"inference.banned_tokens_file": "nope.txt"}, id_to_token)

    # A model checks them when it is built.
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    params = tiny_model_params(str(vocab), **{"inference.banned_tokens": ["d"]})
    with pytest.raises(ConfigError, match="inference.banned_tokens: 'd'"):
        AttentionSeq2Seq(params, ModeKeys.INFER)


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_pipeline_reads_aligned_prefix_files(tmp_path):
    sources = _write(tmp_path / "s.txt", ["a b", "c", "a"])
    prefixes = _write(tmp_path / "p.txt", ["b  zebra", "", "c"])
    pipeline = make_input_pipeline_from_def(
        {
            "class": "ParallelTextInputPipeline",
            "params": {"source_files": [sources], "target_prefix_files": [prefixes]},
        },
        ModeKeys.INFER,
    )
    examples = list(pipeline.make_dataset())
    assert [e["target_prefix_tokens"].numpy().tolist() for e in examples] == [
        [b"b", b"zebra"],
        [],
        [b"c"],
    ]
    assert [int(e["target_prefix_len"]) for e in examples] == [2, 0, 1]
    assert prefixes in pipeline.input_files()

    short = _write(tmp_path / "short.txt", ["b"])
    pipeline = make_input_pipeline_from_def(
        {
            "class": "ParallelTextInputPipeline",
            "params": {"source_files": [sources], "target_prefix_files": [short]},
        },
        ModeKeys.INFER,
    )
    with pytest.raises(DataError, match="target prefix files must have the same"):
        pipeline.check()


def test_cli_forces_prefixes_and_bans_tokens(tmp_path):
    """bin/infer.py with `target_prefix_files` and `inference.banned_tokens`
    (and XLA): each output starts with its prefix (an unknown word as UNK),
    the banned token, frequent in the output with the prefixes alone, never
    follows, and an output that did not have it is unchanged."""
    vocab = _write(tmp_path / "vocab.txt", ["a", "b", "c", "d", "e"])
    params = tiny_model_params(vocab, **{"inference.max_decode_length": 6})
    model_dir = _train_dir(str(tmp_path), params)
    sentences = [["a", "b", "c"], ["d"], ["e", "e", "a", "b"], ["c", "a"]]
    prefixes = [["b", "zebra"], [], ["d"], ["e", "e", "e"]]
    sources = _write(tmp_path / "sources.txt", [" ".join(s) for s in sentences])
    prefix_file = _write(tmp_path / "prefixes.txt", [" ".join(p) for p in prefixes])
    pipeline = {
        "class": "ParallelTextInputPipeline",
        "params": {"source_files": [sources], "target_prefix_files": [prefix_file]},
    }

    # In-process, with the prefixes only.
    model = inference.build_model(inference.load_train_options(model_dir))
    dataset = inference.make_dataset(
        model, make_input_pipeline_from_def(pipeline, ModeKeys.INFER), 8
    )
    features = next(iter(dataset))
    predictor = inference.Predictor(model, dataset.element_spec)
    predictor(features)
    inference.restore_model(model, inference.resolve_checkpoint(model_dir))
    prefixed = [
        [str(t) for t in row if t and t != "SEQUENCE_END"]
        for row in predictor(features)["predicted_tokens"]
    ]
    free_parts = [row[len(p) :] for row, p in zip(prefixed, prefixes)]
    tokens = sorted(t for part in free_parts for t in part)
    banned = max(tokens, key=tokens.count)

    command = [
        sys.executable,
        "-m",
        "bin.infer",
        "--tasks",
        "- class: DecodeText",
        "--model_dir",
        model_dir,
        "--model_params",
        yaml.safe_dump({"inference.banned_tokens": [banned]}),
        "--input_pipeline",
        yaml.safe_dump(pipeline),
        "--jit_compile",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = [line.split() for line in result.stdout.splitlines()]
    assert len(outputs) == len(sentences)
    for output, before, prefix in zip(outputs, prefixed, prefixes):
        forced = ["UNK" if t == "zebra" else t for t in prefix]
        assert output[: len(prefix)] == forced == before[: len(prefix)]
        assert banned not in output[len(prefix) :]
        if banned not in before[len(prefix) :]:
            assert output == before  # greedy: no choice on its path changed


def _doc_example():
    with open(os.path.join(REPO, "docs", "inference.md"), encoding="utf-8") as f:
        text = f.read()
    heading = "\n## Constrained decoding: forced prefixes and banned tokens\n"
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_doc_example_runs():
    code = _doc_example()
    assert "make_constraints(" in code and "assert " in code
    exec(compile(code, "docs/inference.md", "exec"), {"__name__": "doc_example"})


# ------------------------------------------------------- length limits


def _runaway_table():
    """A bigram table whose outputs never end by themselves."""
    table = _table()
    table[:, END] = -6.0
    table[END, END] = 5.0
    return table


@pytest.mark.parametrize("jit", [False, True])
def test_greedy_stops_each_sentence_at_its_length_limit(jit):
    table = _runaway_table()
    log_probs = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
    starts = [START, 3, 6, 2]
    limits = [3, 1, 6, 40]  # the last is above MAX_LEN: MAX_LEN applies
    free = _decode(GreedySearch(), starts, None, jit, table=table)
    assert np.all(free.lengths.numpy() == MAX_LEN)  # all run away
    limits_only = make_constraints(max_len=limits, end_id=END)
    limited = _decode(GreedySearch(), starts, limits_only, jit, table=table)
    ids, lengths = limited.ids.numpy(), limited.lengths.numpy()
    assert lengths.tolist() == [3, 1, 6, MAX_LEN]
    for row, limit in enumerate(limits):
        output = ids[row, : lengths[row]].tolist()
        expected = free.ids.numpy()[row, : lengths[row]].tolist()
        if limit < MAX_LEN:
            # The free tokens up to the limit, then SEQUENCE_END forced.
            assert output == expected[:-1] + [END]
        else:
            assert output == expected
        previous = [starts[row]] + output[:-1]
        score = sum(log_probs[p, t] for p, t in zip(previous, output))
        assert limited.log_probs.numpy()[row] == pytest.approx(score, abs=1e-4)


def test_length_limits_end_the_loop_early_and_leave_room_for_prefixes():
    table = _runaway_table()
    limited = _decode(
        GreedySearch(),
        [START, START],
        make_constraints(max_len=[2, 4], end_id=END),
        table=table,
    )
    # Four steps, not MAX_LEN: the loop stops once every sentence ended.
    assert limited.ids.shape[1] == 4
    assert limited.lengths.numpy().tolist() == [2, 4]
    # A limit shorter than a forced prefix is raised to the prefix plus END.
    constraints = make_constraints(
        [[5, 4, 7], [3, 0, 0]], [3, 1], max_len=[2, 2], end_id=END
    )
    assert constraints.max_len.numpy().tolist() == [4, 2]
    result = _decode(GreedySearch(), [START, START], constraints, table=table)
    ids, lengths = result.ids.numpy(), result.lengths.numpy()
    assert ids[0, : lengths[0]].tolist() == [5, 4, 7, END]
    assert ids[1, : lengths[1]].tolist() == [3, END]
    with pytest.raises(ValueError, match="end_id"):
        make_constraints(max_len=[3])


@pytest.mark.parametrize("jit", [False, True])
def test_beam_hypotheses_stop_at_their_sentences_length_limit(jit):
    table = _runaway_table()
    width = 3
    limits = [4, MAX_LEN + 5]
    free = _decode(_beam(width), [START, 3], None, jit, table=table)
    limited = _decode(
        _beam(width),
        [START, 3],
        make_constraints(max_len=limits, end_id=END),
        jit,
        table=table,
    )
    ids, lengths = limited.ids.numpy(), limited.lengths.numpy()
    # Every hypothesis of the first sentence ends with END at step 4.
    assert lengths[0].tolist() == [4] * width
    assert all(ids[0, k, 3] == END for k in range(width))
    hyps = {tuple(ids[0, k, :4]) for k in range(width)}
    assert len(hyps) == width
    # The second sentence's limit is above MAX_LEN: the free search.
    np.testing.assert_array_equal(lengths[1], free.lengths.numpy()[1])
    n = lengths[1, 0]
    np.testing.assert_array_equal(ids[1, :, :n], free.ids.numpy()[1, :, :n])


def test_model_limits_each_sentence_by_its_source_length(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    params = tiny_model_params(
        str(vocab),
        **{
            "inference.max_decode_length_ratio": 0.5,
            "inference.max_decode_length_offset": 1,
        },
    )
    tf.keras.utils.set_random_seed(1)
    model = AttentionSeq2Seq(params, ModeKeys.INFER)
    # 16 sentences of 1-16 tokens: they end at different steps, so greedy
    # and beam search step only the unfinished ones part of the time.
    source_len = np.arange(1, 17)
    features = {
        "source_ids": tf.constant(np.tile(np.arange(16) % 3, (16, 1)), tf.int32),
        "source_len": tf.constant(source_len, tf.int32),
    }
    limits = model.sentence_length_limits(features).numpy()
    np.testing.assert_array_equal(limits, np.ceil(0.5 * source_len) + 1)
    model.infer(features)  # builds
    # The model never ends a sentence by itself: END's logit bias is -100.
    end = model.target_vocab_info.special_vocab.SEQUENCE_END
    bias = next(v for v in model.variables if v.path.endswith("logits/bias"))
    bias.assign(tf.tensor_scatter_nd_update(bias, [[end]], [-100.0]))
    for beam in (1, 3):
        predictions = model.infer(features, beam_width=beam)
        ids = predictions["predicted_ids"].numpy()
        lengths = predictions["predicted_len"].numpy()
        np.testing.assert_array_equal(lengths, limits)
        assert all(ids[b, lengths[b] - 1] == end for b in range(16))
        assert not (ids[:, 0] == end).any()
    # Off (ratio 0): every sentence runs to max_decode_length (12).
    model.params["inference.max_decode_length_ratio"] = 0.0
    assert model.sentence_length_limits(features) is None
    assert (model.infer(features)["predicted_len"].numpy() == 12).all()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("inference.max_decode_length_ratio", -1.0, "must be >= 0, got -1.0"),
        ("inference.max_decode_length_offset", -2, "must be >= 0, got -2"),
        ("inference.max_decode_length_ratio", "two", "expected a value of type"),
        ("inference.max_decode_length_offset", 2.5, "expected a value of type"),
    ],
)
def test_bad_length_limit_params_are_config_errors(tmp_path, key, value, message):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    params = tiny_model_params(str(vocab), **{key: value})
    with pytest.raises(ConfigError, match=key) as error:
        AttentionSeq2Seq(params, ModeKeys.INFER)
    assert message in str(error.value)
