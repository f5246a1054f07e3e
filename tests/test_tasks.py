"""Tests for seq2seq/tasks: unbatch, DecodeText, DumpAttention, DumpBeams, ScoreText."""

import math

import numpy as np
import pytest

from bin.tools import generate_beam_viz
from seq2seq import tasks
from seq2seq.configurable import create_from_dict
from seq2seq.errors import ConfigError, DataError
from seq2seq.tasks import (
    DecodeText,
    DumpAttention,
    DumpBeams,
    InferenceTask,
    ScoreText,
    unbatch,
)

END = "SEQUENCE_END"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def token_matrix(rows, width=None):
    """[B, width] object array of str, padded with ""."""
    width = width or max(len(row) for row in rows)
    out = np.full((len(rows), width), "", dtype=object)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_predictions(sources, predicted, attention=None, pad=2):
    """A batch as the inference driver gives it.

    Args:
      sources: Source token lists, without SEQUENCE_END (appended here).
      predicted: Predicted token lists (SEQUENCE_END included where produced).
      attention: Optional list of [len(predicted_i), len(sources_i) + 1] lists,
        placed in a [B, T, S] array whose padding is filled with 5.0 (larger
        than any real weight, so that reading padding would show).
      pad: Extra padding columns/rows.
    """
    sources = [list(s) + [END] for s in sources]
    src_width = max(len(s) for s in sources) + pad
    tgt_width = max(len(p) for p in predicted) + pad
    result = {
        "source_tokens": token_matrix(sources, src_width),
        "source_len": np.array([len(s) for s in sources], np.int32),
        "predicted_tokens": token_matrix(predicted, tgt_width),
        "predicted_len": np.array([len(p) for p in predicted], np.int32),
        "log_probs": np.full([len(sources)], -1.0, np.float32),
    }
    if attention is not None:
        scores = np.full((len(sources), tgt_width, src_width), 5.0, np.float32)
        for i, matrix in enumerate(attention):
            matrix = np.asarray(matrix, np.float32)
            scores[i, : matrix.shape[0], : matrix.shape[1]] = matrix
        result["attention_scores"] = scores
    return result


def decode(capsys, params, predictions):
    task = DecodeText(params)
    task.begin()
    if isinstance(predictions, dict):
        predictions = [predictions]
    for batch in predictions:
        task.process_batch(batch)
    task.end()
    return capsys.readouterr().out.split("\n")[:-1]


# --- unbatch ---------------------------------------------------------------


def test_unbatch_slices_and_trims():
    batch = make_predictions(
        [["a", "b"], ["c"]],
        [["x", "y", END], ["z"]],
        attention=[np.ones((3, 3)) / 3, np.ones((1, 2)) / 2],
    )
    batch["predicted_ids"] = np.arange(2 * 5).reshape(2, 5)
    batch["beam_search_output.predicted_ids"] = np.arange(2 * 4 * 2).reshape(2, 4, 2)
    batch["beam_search_output.length"] = np.array([3, 1])
    batch["target_tokens"] = token_matrix(
        [["SEQUENCE_START", "x", END], ["SEQUENCE_START", END]], 5
    )
    batch["target_len"] = np.array([3, 2])
    batch["token_log_probs"] = np.zeros((2, 4), np.float32)
    examples = list(unbatch(batch))
    assert len(examples) == 2
    first, second = examples
    assert list(first["source_tokens"]) == ["a", "b", END]
    assert list(second["source_tokens"]) == ["c", END]
    assert list(first["predicted_tokens"]) == ["x", "y", END]
    assert list(second["predicted_tokens"]) == ["z"]
    assert list(first["predicted_ids"]) == [0, 1, 2]
    assert first["attention_scores"].shape == (3, 3)
    assert second["attention_scores"].shape == (1, 2)
    assert first["beam_search_output.predicted_ids"].shape == (3, 2)
    assert second["beam_search_output.predicted_ids"].shape == (1, 2)
    assert list(second["target_tokens"]) == ["SEQUENCE_START", END]
    assert first["token_log_probs"].shape == (2,)
    assert second["token_log_probs"].shape == (1,)
    assert float(first["log_probs"]) == -1.0
    # Without trimming, only the batch dimension goes.
    raw = next(unbatch(batch, trim=False))
    assert raw["source_tokens"].shape == (batch["source_tokens"].shape[1],)


def test_unbatch_decodes_bytes_and_finds_length_without_len_key():
    batch = {
        "predicted_tokens": np.array(
            [[b"\xe7\xac\x91", b"SEQUENCE_END", b"", b""]], dtype=object
        )
    }
    (example,) = list(unbatch(batch))
    assert list(example["predicted_tokens"]) == ["笑", END]


def test_unbatch_rejects_mismatched_batch_sizes():
    with pytest.raises(ValueError, match="batch size"):
        list(unbatch({"a": np.zeros(2), "b": np.zeros(3)}))


def test_task_classes_resolve_by_short_name():
    task = create_from_dict({"class": "DecodeText"}, [tasks])
    assert isinstance(task, DecodeText) and isinstance(task, InferenceTask)
    assert task.mode == "infer"
    assert not DecodeText.needs_scores and ScoreText.needs_scores
    with pytest.raises(ConfigError, match="unk_mapping"):
        DecodeText({"unk_maping": "x"})


# --- DecodeText ------------------------------------------------------------


def test_decode_text_one_line_per_example(capsys):
    batch = make_predictions(
        [["a", "b"], [], ["c"]],
        [["x", "y", END, "junk"], [END], ["z", "z"]],
    )
    # A token after SEQUENCE_END (within predicted_len) is never printed.
    assert decode(capsys, {}, batch) == ["x y", "", "z z"]


def test_decode_text_blank_source_keeps_alignment_across_batches(capsys):
    first = make_predictions([["a"], []], [["A", END], [END]])
    second = make_predictions([[]], [[]])
    assert decode(capsys, {}, [first, second]) == ["A", "", ""]


def test_decode_text_character_delimiter(capsys):
    batch = make_predictions([["a"]], [["笑", "a", END]])
    assert decode(capsys, {"delimiter": ""}, batch) == ["笑a"]


def test_decode_text_unk_replace_picks_argmax_source_token(capsys):
    # Source: the Munich house SEQUENCE_END
    attention = [
        [0.7, 0.1, 0.1, 0.1],  # das
        [0.1, 0.6, 0.2, 0.1],  # UNK -> Munich
        [0.1, 0.1, 0.3, 0.5],  # UNK: SEQUENCE_END is largest, house is chosen
        [0.0, 0.0, 0.0, 1.0],  # SEQUENCE_END
    ]
    batch = make_predictions(
        [["the", "Munich", "house"]], [["das", "UNK", "UNK", END]], [attention]
    )
    assert decode(capsys, {"unk_replace": True}, batch) == ["das Munich house"]
    # Without unk_replace the UNKs stay.
    assert decode(capsys, {}, batch) == ["das UNK UNK"]


def test_decode_text_unk_mapping(capsys, tmp_path):
    mapping = tmp_path / "dict.txt"
    mapping.write_text(
        "Munich\tMünchen\t0.9\n\nMunich\tMunchen\t0.1\nhouse\tHaus\n", encoding="utf-8"
    )
    attention = [[0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]]
    batch = make_predictions([["the", "Munich"]], [["UNK", "UNK", END]], [attention])
    params = {"unk_replace": True, "unk_mapping": str(mapping)}
    # The first line for a source token wins; an unmapped token is copied.
    assert decode(capsys, params, batch) == ["München the"]


def test_decode_text_unk_replace_uses_each_examples_own_rows(capsys):
    # Under beam search the driver gives the attention of the chosen
    # hypothesis; row t belongs to predicted token t. Padding (filled with
    # 5.0 by make_predictions) must never be chosen.
    attention_a = [
        [0.0, 0.1, 0.9, 0.0],  # UNK -> s2
        [1.0, 0.0, 0.0, 0.0],  # x
        [0.9, 0.05, 0.05, 0.0],  # UNK -> s0
        [0.0, 0.0, 0.0, 1.0],
    ]
    attention_b = [[0.2, 0.8], [0.6, 0.4]]  # only token plus SEQUENCE_END
    batch = make_predictions(
        [["s0", "s1", "s2"], ["t0"]],
        [["UNK", "x", "UNK", END], ["UNK", END]],
        [attention_a, attention_b],
    )
    # In example b the largest weight is on SEQUENCE_END; t0 is still copied.
    assert decode(capsys, {"unk_replace": True}, batch) == ["s2 x s0", "t0"]


def test_decode_text_unk_replace_on_blank_source_keeps_unk(capsys):
    batch = make_predictions([[]], [["UNK", END]], [[[1.0], [1.0]]])
    assert decode(capsys, {"unk_replace": True}, batch) == ["UNK"]


def test_decode_text_postproc(capsys):
    batch = make_predictions([["a"]], [["lo@@", "w@@", "er", "new", END]])
    assert decode(capsys, {"postproc_fn": "strip_bpe"}, batch) == ["lower new"]
    dotted = {"postproc_fn": "seq2seq.data.postproc.strip_bpe"}
    assert decode(capsys, dotted, batch) == ["lower new"]
    pieces = make_predictions([["a"]], [["\u2581Hel", "lo", "\u2581world", END]])
    assert decode(capsys, {"postproc_fn": "decode_sentencepiece"}, pieces) == [
        "Hello world"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "no_such_fn",
        "seq2seq.data.postproc.nope",
        "nowhere.fn",
        "os.system",
        "string.capwords",
    ],
)
def test_decode_text_bad_postproc_is_config_error(name):
    # Only the functions of seq2seq.data.postproc can be named.
    with pytest.raises(ConfigError) as err:
        DecodeText({"postproc_fn": name})
    assert str(err.value).startswith(
        f"DecodeText: postproc_fn '{name}' is not an allowed function; use one "
        "of decode_sentencepiece, slice_text, strip_bpe (from seq2seq.data.postproc"
    )


def test_decode_text_unk_replace_without_attention(capsys):
    task = DecodeText({"unk_replace": True})
    task.begin()
    with pytest.raises(ConfigError, match="no attention"):
        task.process_batch(make_predictions([["a"]], [["UNK", END]]))


def test_decode_text_missing_unk_mapping(tmp_path):
    missing = tmp_path / "missing.dict"
    with pytest.raises(DataError, match="missing.dict"):
        DecodeText({"unk_replace": True, "unk_mapping": str(missing)})
    bad = tmp_path / "bad.dict"
    bad.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        DecodeText({"unk_replace": True, "unk_mapping": str(bad)})


def test_decode_text_output_file(capsys, tmp_path):
    out = tmp_path / "sub" / "pred.txt"
    batch = make_predictions([["a"], []], [["笑", END], [END]])
    assert decode(capsys, {"output": str(out)}, batch) == []
    assert out.read_text(encoding="utf-8") == "笑\n\n"


# --- DumpAttention ---------------------------------------------------------


def attention_batch():
    a = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.1, 0.1, 0.8]])
    b = np.array([[0.3, 0.7], [0.6, 0.4]])
    return make_predictions(
        [["a", "笑"], ["$x"]], [["笑", "b", END], ["c", END]], [a, b]
    )


def test_dump_attention_writes_scores_and_plots(tmp_path):
    out = tmp_path / "attention"
    task = DumpAttention({"output_dir": str(out)})
    assert task.plots_enabled
    task.begin()
    assert out.is_dir()
    task.process_batch(attention_batch())
    task.process_batch(make_predictions([["d"]], [["e"]], [[[0.5, 0.5]]]))
    task.end()
    with np.load(out / "attention_scores.npz") as data:
        assert data.files == ["arr_0", "arr_1", "arr_2"]
        assert data["arr_0"].shape == (3, 3)
        assert data["arr_1"].shape == (2, 2)
        assert data["arr_2"].shape == (1, 2)  # no SEQUENCE_END predicted
        np.testing.assert_allclose(data["arr_1"], [[0.3, 0.7], [0.6, 0.4]])
    for name in ("00000.png", "00001.png", "00002.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    assert not (out / "00003.png").exists()


@pytest.mark.parametrize(
    "params",
    [
        {"dump_plots": False},
        {"dump_atention_no_plot": True},
        {"dump_attention_no_plot": "true"},
    ],
)
def test_dump_attention_without_plots(tmp_path, params):
    task = DumpAttention({"output_dir": str(tmp_path), **params})
    assert not task.plots_enabled
    task.begin()
    task.process_batch(attention_batch())
    task.end()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attention_scores.npz"]
    with np.load(tmp_path / "attention_scores.npz") as data:
        assert len(data.files) == 2


def test_dump_attention_errors(tmp_path):
    with pytest.raises(ConfigError, match="output_dir"):
        DumpAttention({})
    task = DumpAttention({"output_dir": str(tmp_path), "dump_plots": False})
    task.begin()
    with pytest.raises(ConfigError, match="no attention"):
        task.process_batch(make_predictions([["a"]], [["b", END]]))


# --- DumpBeams -------------------------------------------------------------


def beam_batch():
    """Two examples, beam width 2, traces of 3 and 2 steps in [B, T=4, K=2]."""
    ids = np.array(
        [[[5, 6], [7, 8], [9, 2], [0, 0]], [[1, 3], [2, 2], [0, 0], [0, 0]]], np.int32
    )
    parents = np.array(
        [[[0, 0], [1, 0], [0, 0], [0, 0]], [[0, 0], [0, 1], [0, 0], [0, 0]]], np.int32
    )
    scores = -np.arange(16, dtype=np.float32).reshape(2, 4, 2) / 4
    log_probs = scores - 1.0
    batch = make_predictions([["a"], ["b"]], [["x", END], [END]])
    batch.update(
        {
            "beam_search_output.predicted_ids": ids,
            "beam_search_output.beam_parent_ids": parents,
            "beam_search_output.scores": scores,
            "beam_search_output.log_probs": log_probs,
            "beam_search_output.length": np.array([3, 2], np.int32),
        }
    )
    return batch


def test_dump_beams_round_trip(tmp_path):
    path = tmp_path / "out" / "beams.npz"
    task = DumpBeams({"file": str(path)})
    task.begin()
    batch = beam_batch()
    task.process_batch(batch)
    task.process_batch(beam_batch())
    task.end()
    # Read as docs/inference.md says: no allow_pickle, cut to lengths[i].
    with np.load(path) as data:
        assert sorted(data.files) == [
            "beam_parent_ids",
            "lengths",
            "log_probs",
            "predicted_ids",
            "scores",
        ]
        assert all(data[key].dtype != object for key in data.files)
        lengths = data["lengths"]
        np.testing.assert_array_equal(lengths, [3, 2, 3, 2])
        ids = [data["predicted_ids"][i, : lengths[i]] for i in range(4)]
        parents = [data["beam_parent_ids"][i, : lengths[i]] for i in range(4)]
        scores = [data["scores"][i, : lengths[i]] for i in range(4)]
        log_probs = [data["log_probs"][i, : lengths[i]] for i in range(4)]
        assert data["predicted_ids"].shape == (4, 3, 2)
        # Past its length an example is padding: -1 ids, NaN floats.
        np.testing.assert_array_equal(data["predicted_ids"][1, 2], [-1, -1])
        np.testing.assert_array_equal(data["beam_parent_ids"][3, 2], [-1, -1])
        assert np.isnan(data["scores"][1, 2]).all()
        assert np.isnan(data["log_probs"][3, 2]).all()
    np.testing.assert_array_equal(
        ids[0], batch["beam_search_output.predicted_ids"][0, :3]
    )
    np.testing.assert_array_equal(
        parents[1], batch["beam_search_output.beam_parent_ids"][1, :2]
    )
    np.testing.assert_allclose(scores[2], batch["beam_search_output.scores"][0, :3])
    np.testing.assert_allclose(
        log_probs[3], batch["beam_search_output.log_probs"][1, :2]
    )
    assert ids[1].shape == (2, 2)
    # The visualisation tool reads the same traces back.
    traces = generate_beam_viz.load_traces(str(path))
    assert len(traces) == 4
    for i in range(4):
        np.testing.assert_array_equal(traces[i]["predicted_ids"], ids[i])
        np.testing.assert_array_equal(traces[i]["beam_parent_ids"], parents[i])
        np.testing.assert_allclose(traces[i]["scores"], scores[i])
        np.testing.assert_allclose(traces[i]["log_probs"], log_probs[i])


def test_dump_beams_same_length_traces_stay_separate(tmp_path):
    # Equal shapes give one [N, T, K] array whose rows are the examples.
    batch = beam_batch()
    batch["beam_search_output.length"] = np.array([2, 2], np.int32)
    path = tmp_path / "beams"
    task = DumpBeams({"file": str(path)})
    task.begin()
    task.process_batch(batch)
    task.end()
    assert path.exists()  # written exactly where asked, no ".npz" appended
    with np.load(path) as data:
        assert data["scores"].dtype == np.float32
        assert data["scores"].shape == (2, 2, 2)
        np.testing.assert_array_equal(data["lengths"], [2, 2])
        np.testing.assert_allclose(
            data["scores"][1], batch["beam_search_output.scores"][1, :2]
        )


def test_dump_beams_errors(tmp_path):
    with pytest.raises(ConfigError, match="file"):
        DumpBeams({})
    task = DumpBeams({"file": str(tmp_path / "b.npz")})
    task.begin()
    with pytest.raises(ConfigError, match=r"inference\.beam_search\.beam_width"):
        task.process_batch(make_predictions([["a"]], [["b", END]]))


# --- ScoreText -------------------------------------------------------------


def test_score_text_numbers(capsys, tmp_path):
    batch = {
        "source_tokens": token_matrix([["a", END], [END]]),
        "source_len": np.array([2, 1]),
        "target_tokens": token_matrix(
            [["SEQUENCE_START", "x", "y", "z", END], ["SEQUENCE_START", END]]
        ),
        "target_len": np.array([5, 2]),
        "sequence_log_prob": np.array([-2.0, -0.25], np.float32),
        "token_log_probs": np.array(
            [[-0.5, -0.5, -0.5, -0.5], [-0.25, 0.0, 0.0, 0.0]], np.float32
        ),
    }
    task = ScoreText({})
    task.begin()
    task.process_batch(batch)
    task.end()
    lines = capsys.readouterr().out.splitlines()
    # exp(2 / 4) = 1.6487212707, exp(0.25 / 1) = 1.2840254167
    assert lines == ["-2.000000\t1.648721\t4", "-0.250000\t1.284025\t1"]

    # Without sequence_log_prob the token log-probs (within target_len - 1)
    # are summed; padding is ignored.
    del batch["sequence_log_prob"]
    batch["token_log_probs"][1, 1:] = -100.0
    out = tmp_path / "scores.txt"
    task = ScoreText({"output": str(out)})
    task.begin()
    task.process_batch(batch)
    task.end()
    assert out.read_text().splitlines() == lines
    log_prob, ppl, count = lines[0].split("\t")
    expected = math.exp(-float(log_prob) / int(count))
    assert math.isclose(float(ppl), expected, rel_tol=1e-6)


def test_score_text_without_targets():
    task = ScoreText({})
    with pytest.raises(ConfigError, match="target"):
        task.process_batch(make_predictions([["a"]], [["b", END]]))
