"""n-best lists, sampling through the entry points, and the GNMT coverage
penalty (issue 15, items 1-3)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params, write_toy_corpus
from test_export import _train_dir
from test_infer_cli import assert_user_error, read_lines, run_infer
from test_trainer import make_trainer

from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.decoders import Decoder
from seq2seq.errors import ConfigError
from seq2seq.inference import export, inference
from seq2seq.inference.beam_search import (
    BeamSearch,
    BeamSearchConfig,
    hyp_score,
)
from seq2seq.inference.dynamic_decode import dynamic_decode
from seq2seq.models import BasicSeq2Seq
from seq2seq.run_dir import TrainOptions
from seq2seq.tasks import DecodeText

# ------------------------------------------------- coverage, by hand

START, END, A, B = 0, 1, 2, 3
# Next-token logits after each previous token.
LOGITS = np.array(
    [
        [-9.0, -5.0, 0.0, -0.5],  # after START: A, or B a little less likely
        [-9.0, 0.0, -9.0, -9.0],  # after END
        [-9.0, 0.0, -3.0, -1.0],  # after A: mostly END
        [-9.0, 0.0, -1.0, -3.0],  # after B: mostly END
    ],
    np.float32,
)
# Attention of a step over 3 source positions, by the token fed at it,
# before the padding is masked out and the rest renormalised.
ATTENTION = np.array(
    [[0.8, 0.1, 0.1], [1.0, 1.0, 1.0], [0.8, 0.1, 0.1], [0.05, 0.45, 0.5]],
    np.float32,
)
SOURCE_LENGTHS = [3, 2]  # the second sentence has one padded position


class TableDecoder(Decoder):
    """Logits and attention looked up by the previous token (fed as its id),
    attention renormalised over the real source positions as a masked
    softmax gives it."""

    has_attention = True

    def __init__(self):
        super().__init__({"max_decode_length": 3}, "infer", 4)

    def prepare_memory(self, encoder_output):
        del encoder_output
        return {
            "values": tf.zeros([2, 3, 1]),
            "lengths": tf.constant(SOURCE_LENGTHS, tf.int32),
        }

    def initial_state(self, memory, cell_state=None, batch_size=None):
        return {"steps": tf.zeros([tf.shape(memory["lengths"])[0]], tf.int32)}

    def step(self, inputs, state, memory, training=None):
        valid = tf.sequence_mask(memory["lengths"], 3, tf.float32)
        attention = tf.gather(ATTENTION, inputs) * valid
        attention /= tf.reduce_sum(attention, axis=1, keepdims=True)
        logits = tf.gather(LOGITS, inputs)
        return logits, {"steps": state["steps"] + 1}, attention


def hand_score(tokens, source_length, alpha, beta):
    """A hypothesis' ranking score, from the tables: GNMT's
    `log_p / ((5 + n) / 6) ** alpha + beta * sum_i log(min(a_i, 1))`."""
    log_p, sums, previous, n = 0.0, np.zeros(source_length), START, 0
    for token in tokens:
        row = LOGITS[previous].astype(np.float64)
        log_p += row[token] - np.log(np.exp(row).sum())
        attention = ATTENTION[previous, :source_length].astype(np.float64)
        sums += attention / attention.sum()
        previous, n = token, n + 1
        if token == END:
            break
    penalty = np.log(np.minimum(sums, 1.0)).sum()
    return log_p / ((5.0 + n) / 6.0) ** alpha + beta * penalty, tokens[:n]


def table_search(coverage=None, alpha=0.6, width=3, jit_compile=False):
    decoder = TableDecoder()
    memory = decoder.prepare_memory(None)
    fields = [width, 4, END, alpha, "choose_top_k"]
    if coverage is not None:
        fields.append(coverage)
    return dynamic_decode(
        decoder,
        BeamSearch(BeamSearchConfig(*fields)),
        None,
        lambda ids: ids,
        tf.fill([2], START),
        END,
        decoder.initial_state(memory),
        memory,
        jit_compile=jit_compile,
    )


def test_coverage_penalty_matches_hand_computed_scores():
    plain = table_search()  # the config as before the penalty existed
    zero = table_search(coverage=0.0)
    for field in ("ids", "lengths", "scores", "log_probs", "attention"):
        np.testing.assert_array_equal(getattr(plain, field), getattr(zero, field))
    # Weight 0 ranks by the length-penalised log-probability alone: A wins.
    np.testing.assert_array_equal(
        plain.scores, hyp_score(plain.log_probs, plain.lengths, plain_config(0.6))
    )
    assert plain.ids[0, 0].numpy().tolist() == [A, END, END]

    beta = 1.0
    covered = table_search(coverage=beta)
    # A attends to position 0 twice and leaves 1 and 2 under-covered; B
    # spreads its attention: the penalty makes B's hypothesis the best.
    assert covered.ids[0, 0].numpy().tolist() == [B, END, END]
    for sentence, length in enumerate(SOURCE_LENGTHS):
        ranked = []
        for k in range(3):
            tokens = covered.ids[sentence, k].numpy().tolist()
            want, kept = hand_score(tokens, length, 0.6, beta)
            assert len(kept) == covered.lengths[sentence, k]
            assert covered.scores[sentence, k].numpy() == pytest.approx(want, abs=1e-5)
            ranked.append(want)
        assert ranked == sorted(ranked, reverse=True)
    # The padded position of sentence 1 is left out: without the mask it
    # would add log(tiny), about -87.
    assert covered.scores[1, 0].numpy() > -5.0

    compiled = table_search(coverage=beta, jit_compile=True)
    np.testing.assert_array_equal(compiled.ids, covered.ids)
    np.testing.assert_allclose(compiled.scores, covered.scores, rtol=1e-6)


def plain_config(alpha):
    return BeamSearchConfig(3, 4, END, alpha, "choose_top_k")


def test_bad_coverage_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="coverage_penalty_weight must be"):
        BeamSearch(BeamSearchConfig(3, 4, END, 0.0, "choose_top_k", -0.2))

    class NoMemoryLengths(TableDecoder):
        def prepare_memory(self, encoder_output):
            return {"values": tf.zeros([2, 3, 1])}

    decoder = NoMemoryLengths()
    memory = decoder.prepare_memory(None)
    with pytest.raises(ConfigError, match="'values' .* and 'lengths'"):
        dynamic_decode(
            decoder,
            BeamSearch(BeamSearchConfig(2, 4, END, 0.0, "choose_top_k", 0.2)),
            None,
            lambda ids: ids,
            tf.fill([2], START),
            END,
            {"steps": tf.zeros([2], tf.int32)},
            memory,
        )

    # A model without attention, through bin/infer.py: one line, exit 2.
    paths = write_toy_corpus(str(tmp_path / "data"), num_examples=20)
    params = tiny_model_params(paths["vocab"])
    del params["attention.params"]
    model_dir = str(tmp_path / "basic")
    TrainOptions.from_model("BasicSeq2Seq", params).dump(model_dir)
    tf.train.Checkpoint(v=tf.Variable(1.0)).save(os.path.join(model_dir, "ckpt"))
    result = run_infer(
        "--model_dir",
        model_dir,
        "--model_params",
        "{inference.beam_search.beam_width: 3, "
        "inference.beam_search.coverage_penalty_weight: 0.2}",
        input_files=[paths["sources"]],
    )
    assert_user_error(
        result, "coverage_penalty_weight", "BasicDecoder has no attention"
    )
    with pytest.raises(ConfigError, match="has no attention"):
        BasicSeq2Seq(
            dict(params, **{"inference.beam_search.coverage_penalty_weight": 0.2}),
            ModeKeys.INFER,
        )


# ------------------------------------------- entry points, one model

BEAM = {
    "inference.beam_search.beam_width": 3,
    "inference.beam_search.length_penalty_weight": 0.6,
    "inference.beam_search.coverage_penalty_weight": 0.2,
}
SAMPLING = {
    "inference.sampler": "random",
    "inference.sampling.temperature": 3.0,
    "inference.sampling.seed": 11,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An attention model with random weights of unit scale (sharp output
    distributions), reading reversed sources, 12 source lines, and what the
    model decodes from them in-process: `greedy` (lines) and `nbest` (the
    `nbest.*` predictions of beam search with `BEAM`, N = 3)."""
    root = str(tmp_path_factory.mktemp("nbest"))
    paths = write_toy_corpus(os.path.join(root, "data"), num_examples=12)
    params = tiny_model_params(paths["vocab"], **{"source.reverse": True})
    directory = _train_dir(root, params)
    model = inference.build_model(inference.load_train_options(directory), BEAM)
    tokens = tf.ragged.constant(
        [line.split() + ["SEQUENCE_END"] for line in read_lines(paths["sources"])]
    )
    features = model.preprocess(
        {
            "source_tokens": tokens.to_tensor(""),
            "source_len": tf.cast(tokens.row_lengths(), tf.int32),
        }
    )
    features = {k: features[k] for k in ("source_ids", "source_len")}
    model.infer(features, max_length=1)
    inference.restore_model(model, inference.resolve_checkpoint(directory))
    nbest = {k: v.numpy() for k, v in model.infer(features, n_best=3).items()}
    greedy = model.infer(features, beam_width=1)
    return {
        "dir": directory,
        "paths": paths,
        "root": root,
        "nbest": nbest,
        "greedy": _lines(model, greedy),
        "model": model,
    }


def _lines(model, predictions):
    """The text of each decoded row, without SEQUENCE_END."""
    lines = []
    ids, lengths = predictions["predicted_ids"], predictions["predicted_len"]
    for row, n in zip(ids.numpy(), lengths.numpy()):
        words = [str(t) for t in model.target_id_to_token[row[:n]]]
        lines.append(" ".join(w for w in words if w != "SEQUENCE_END"))
    return lines


def _yaml(params):
    return "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}"


def test_decode_text_writes_scored_n_best_blocks(model_dir):
    # What bin/infer.py runs, in-process with the fixture's restored model.
    one, many = (os.path.join(model_dir["root"], f) for f in ("1.txt", "3.txt"))
    tasks = [
        DecodeText({"output": one, "unk_replace": True}),
        DecodeText({"output": many, "unk_replace": True, "n_best": 3}),
    ]
    pipeline = {
        "class": "ParallelTextInputPipeline",
        "params": {"source_files": [model_dir["paths"]["sources"]]},
    }
    count = inference.run_inference(
        model_dir["model"], _pipeline(pipeline), tasks, progress=False
    )
    assert count == 12
    best = read_lines(one)
    blocks = open(many, encoding="utf-8").read().split("\n\n")
    assert blocks[-1] == ""  # every block, the last one too, ends with a blank
    blocks = [block.split("\n") for block in blocks[:-1]]
    assert len(best) == len(blocks) == 12
    for line, block in zip(best, blocks):
        assert len(block) == 3
        scores = [float(entry.split("\t")[0]) for entry in block]
        texts = [entry.split("\t", 1)[1] for entry in block]
        assert scores == sorted(scores, reverse=True)
        # The first hypothesis is the 1-best line of the same run.
        assert texts[0] == line
    # Three different hypotheses (unk_replace may make two read the same).
    for ids in model_dir["nbest"]["nbest.predicted_ids"]:
        assert len({tuple(row) for row in ids.tolist()}) == 3
    # The scores are the beam search's ranking scores, in input order.
    np.testing.assert_allclose(
        [[float(entry.split("\t")[0]) for entry in block] for block in blocks],
        model_dir["nbest"]["nbest.scores"],
        atol=2e-6,
    )

    # n_best above the beam width, or without beam search: one clear line
    # before anything is decoded.
    options = inference.load_train_options(model_dir["dir"])
    for params, message in (
        (BEAM, "DecodeText: n_best is 4, more than inference.beam_search"),
        ({}, "DecodeText: n_best is 4, which needs beam search"),
    ):
        with pytest.raises(ConfigError, match=message):
            inference.run_inference(
                inference.build_model(options, params),
                _pipeline(pipeline),
                [DecodeText({"n_best": 4})],
            )
    with pytest.raises(ConfigError, match="n_best must be an integer >= 1"):
        DecodeText({"n_best": 0})


def _pipeline(definition):
    return make_input_pipeline_from_def(
        definition, ModeKeys.INFER, shuffle=False, num_epochs=1
    )


def test_seeded_sampling_in_bin_infer_is_reproducible(model_dir):
    runs = [
        run_infer(
            "--model_dir",
            model_dir["dir"],
            "--model_params",
            _yaml(dict(SAMPLING, **{"inference.sampler": name})),
            input_files=[model_dir["paths"]["sources"]],
        )
        for name in ("random", "sample")  # two names of one sampler
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
    sampled = runs[0].stdout.splitlines()
    assert len(sampled) == len(model_dir["greedy"]) == 12
    assert sampled != model_dir["greedy"]


def test_export_returns_n_best_and_samples(model_dir, tmp_path):
    sentences = read_lines(model_dir["paths"]["sources"])[:4] + [""]
    with pytest.raises(ConfigError, match="--n_best=4 is more than"):
        export.export_saved_model(
            model_dir["dir"], str(tmp_path / "bad"), model_params=BEAM, n_best=4
        )
    assert not os.path.exists(tmp_path / "bad")

    beam_dir = str(tmp_path / "beam")
    result = export.export_saved_model(
        model_dir["dir"], beam_dir, model_params=BEAM, n_best=3
    )
    outputs = result.signatures["serving_default"]["outputs"]
    assert outputs["nbest_tokens"] == ("string", [None, 3, None])
    assert outputs["nbest_scores"] == ("float32", [None, 3])
    serve = tf.saved_model.load(beam_dir).signatures["serving_default"]
    got = {k: v.numpy() for k, v in serve(source=tf.constant(sentences)).items()}
    want = {k: v[:4] for k, v in model_dir["nbest"].items()}
    np.testing.assert_allclose(got["nbest_scores"][:4], want["nbest.scores"], 1e-5)
    np.testing.assert_allclose(got["nbest_log_prob"][:4], want["nbest.log_probs"], 1e-5)
    np.testing.assert_array_equal(got["nbest_translation"][:, 0], got["translation"])
    np.testing.assert_array_equal(got["nbest_scores"][:, 0], got["scores"])
    np.testing.assert_array_equal(got["nbest_length"][:, 0], got["length"])
    assert got["nbest_translation"][4].tolist() == [b""] * 3  # a blank sentence
    assert got["nbest_scores"][4].tolist() == [0.0] * 3
    for row in range(4):
        assert len(set(got["nbest_translation"][row].tolist())) == 3

    sample_dir = str(tmp_path / "sample")
    export.export_saved_model(model_dir["dir"], sample_dir, model_params=SAMPLING)
    serve = tf.saved_model.load(sample_dir).signatures["serving_default"]
    first = serve(source=tf.constant(sentences))["translation"].numpy()
    again = serve(source=tf.constant(sentences))["translation"].numpy()
    np.testing.assert_array_equal(first, again)
    assert [t.decode() for t in first[:4]] != model_dir["greedy"][:4]


def test_training_evaluation_samples_with_the_model_sampler(tmp_path):
    train = write_toy_corpus(str(tmp_path / "train"), num_examples=20, seed=1)
    dev = write_toy_corpus(str(tmp_path / "dev"), num_examples=10, seed=2)
    dev["vocab"] = train["vocab"]
    data = {"train": train, "dev": dev, "vocab": train["vocab"]}
    trainer = make_trainer(
        data,
        str(tmp_path / "model"),
        train_steps=1,
        model_params=tiny_model_params(data["vocab"], **SAMPLING),
        metrics=[{"class": "BleuMetricSpec"}],
        eval_beam_width=3,
    )
    names = trainer.evaluator.result_names()
    assert names == ["loss/teacher_forced", "bleu/sample", "bleu/beam3"]
    # The evaluation training runs: a sampled decode and a beam decode (the
    # beam search ignores the sampler instead of refusing it).
    first, second = trainer.evaluate(), trainer.evaluate()
    assert set(first) == set(names)
    assert first == second  # seeded draws: the same decodes each time
