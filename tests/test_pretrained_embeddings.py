"""Pretrained embeddings: `embedding.*.init_file` and `embedding.trainable`."""

import numpy as np
import pytest
from conftest import tiny_model_params
from test_train_cli import assert_user_error, base_args, run_train
from test_trainer import make_trainer

from seq2seq.data import pretrained_embeddings
from seq2seq.errors import ConfigError, DataError
from seq2seq.training.hooks import TrainingHook

DIM = 16


class _AtStart(TrainingHook):
    """Records the model's variables before the first update."""

    def __init__(self):
        super().__init__({}, model_dir="")
        self.values = None

    def begin(self, trainer):
        self.values = {v.path: v.numpy() for v in trainer.model.variables}


def _vocab_tokens(toy_data):
    with open(toy_data["vocab"], encoding="utf-8") as lines:
        return [line.rstrip("\n") for line in lines]


def _write_vectors(path, vectors, header=True):
    """Writes `{word: vector}` in word2vec text format; returns the path."""
    with open(path, "w", encoding="utf-8") as out:
        if header:
            out.write(f"{len(vectors)} {len(next(iter(vectors.values())))}\n")
        for word, vector in vectors.items():
            out.write(word + " " + " ".join(f"{v:.6f}" for v in vector) + "\n")
    return str(path)


# ----------------------------------------------------------------- reading


def test_text_file_rows_follow_the_vocabulary(tmp_path):
    tokens = ["a", "b", "c", "UNK", "SEQUENCE_START", "SEQUENCE_END"]
    vectors = {"c": [1.0, 2.0, 3.0], "zzz": [9.0, 9.0, 9.0], "a": [4.0, 5.0, 6.0]}
    for header in (True, False):  # word2vec and GloVe
        path = _write_vectors(tmp_path / f"v{header}.txt", vectors, header)
        values, found = pretrained_embeddings.load_rows(path, tokens, 3)
        assert found.tolist() == [True, False, True, False, False, False]
        np.testing.assert_array_equal(values[0], [4.0, 5.0, 6.0])
        np.testing.assert_array_equal(values[2], [1.0, 2.0, 3.0])
    # A word with a space (GloVe has some): the last `dim` fields are the vector.
    (tmp_path / "space.txt").write_text("x 1 1\nb c 7 8\n")
    values, found = pretrained_embeddings.load_rows(
        str(tmp_path / "space.txt"), ["b c", "x", "UNK", "S", "E"], 2
    )
    assert found.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(values[0], [7.0, 8.0])


def test_npy_with_or_without_special_rows(tmp_path):
    tokens = ["a", "b", "UNK", "SEQUENCE_START", "SEQUENCE_END"]
    path = str(tmp_path / "e.npy")
    np.save(path, np.arange(6, dtype=np.float64).reshape(2, 3))
    values, found = pretrained_embeddings.load_rows(path, tokens, 3)
    assert found.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(values[1], [3.0, 4.0, 5.0])
    np.save(path, np.ones([5, 3], np.float32))
    assert pretrained_embeddings.load_rows(path, tokens, 3)[1].all()


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("wide.txt", "a 1 2 3 4\n", ["4 values", "embedding.dim is 3"]),
        ("header.txt", "10 5\na 1 2 3 4 5\n", ["5 values", "embedding.dim: 5"]),
        ("nan.txt", "a 1 x 3\n", ["line 1", "not a number"]),
        ("short.txt", "a 1 2 3\nb 1 2\n", ["line 2", "2 values"]),
        ("empty.txt", "", ["no vectors"]),
        ("shape.npy", np.ones([7, 3]), ["[7, 3]", "[2, 3]"]),
        ("dim.npy", np.ones([2, 4]), ["4 values", "embedding.dim: 4"]),
        ("junk.npy", b"not an array", ["cannot read", "numpy.save"]),
        ("missing.txt", None, ["does not exist"]),
    ],
)
def test_a_file_that_does_not_fit_is_one_line_naming_it(
    tmp_path, name, content, fragments
):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(str(path), content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as error:
        pretrained_embeddings.load_rows(
            str(path), ["a", "b", "UNK", "S", "E"], 3, key="embedding.init_file"
        )
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert message.startswith("embedding.init_file: ")
    for fragment in fragments:
        assert fragment in message, message


def test_plan_names_each_side_and_refuses_two_files_for_one_matrix():
    plan = pretrained_embeddings.plan
    params = {key: "" for key in pretrained_embeddings.FILE_KEYS}
    assert plan(params) == []
    both = dict(params, **{"embedding.init_file": "g.txt"})
    assert plan(both) == [
        ("embedding.init_file", "g.txt", "source"),
        ("embedding.init_file", "g.txt", "target"),
    ]
    own = dict(both, **{"embedding.target.init_file": "t.npy"})
    assert plan(own)[1] == ("embedding.target.init_file", "t.npy", "target")
    shared = dict(params, **{"embedding.share": True, "embedding.init_file": "g"})
    assert plan(shared) == [("embedding.init_file", "g", "shared")]
    with pytest.raises(ConfigError, match="different files"):
        plan(dict(shared, **{"embedding.source.init_file": "other"}))


# ----------------------------------------------------------- training


def test_found_rows_are_the_files_missing_random_and_frozen(toy_data, tmp_path):
    tokens = _vocab_tokens(toy_data)
    rng = np.random.default_rng(0)
    known = tokens[: len(tokens) // 2]
    vectors = {t: rng.normal(size=DIM).round(4) for t in known}
    vectors["not_in_vocab"] = np.ones(DIM)
    path = _write_vectors(tmp_path / "vectors.txt", vectors)
    table = rng.normal(size=[len(tokens), DIM])
    np.save(str(tmp_path / "target.npy"), table)
    params = tiny_model_params(
        toy_data["vocab"],
        **{
            "embedding.source.init_file": path,
            "embedding.target.init_file": str(tmp_path / "target.npy"),
            "embedding.trainable": False,
        },
    )
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data, out, train_steps=3, model_params=params, with_dev=False
    )
    start = _AtStart()
    trainer.hooks.append(start)
    trainer.train()
    model = trainer.model
    source = model.source_embedding.numpy()
    for token_id, token in enumerate(tokens):
        if token in vectors:
            np.testing.assert_allclose(source[token_id], vectors[token], atol=1e-6)
    # The other rows (other tokens, the specials) got the usual initializer.
    missing = source[len(known) :]
    assert np.abs(missing).max() <= 0.04 and np.abs(missing).min() > 0
    assert len({tuple(row) for row in missing}) == len(missing)
    target = model.target_embedding.numpy()
    np.testing.assert_allclose(target[: len(tokens)], table, atol=1e-6)
    assert np.abs(target[len(tokens) :]).max() <= 0.04
    # Three updates changed the decoder but not the frozen embeddings.
    frozen = {id(model.source_embedding), id(model.target_embedding)}
    assert not frozen & {id(v) for v in model.trainable_variables}
    np.testing.assert_array_equal(start.values[model.source_embedding.path], source)
    np.testing.assert_array_equal(start.values[model.target_embedding.path], target)
    decoder = model.decoder.trainable_variables
    assert any(not np.allclose(start.values[v.path], v.numpy()) for v in decoder)
    # A resumed run keeps the checkpoint's values and no longer reads the files.
    for name in ("vectors.txt", "target.npy"):
        (tmp_path / name).unlink()
    again = make_trainer(
        toy_data, out, train_steps=3, model_params=params, with_dev=False
    )
    assert again.train() == 3
    np.testing.assert_array_equal(again.model.source_embedding.numpy(), source)


def test_shared_matrix_from_one_file_stays_trainable(toy_data, tmp_path):
    from seq2seq.models import AttentionSeq2Seq

    tokens = _vocab_tokens(toy_data)
    table = np.random.default_rng(1).normal(size=[len(tokens) + 3, DIM])
    path = str(tmp_path / "vectors.npy")
    np.save(path, table)
    params = tiny_model_params(
        toy_data["vocab"], **{"embedding.share": True, "embedding.init_file": path}
    )
    model = AttentionSeq2Seq(params, "train")
    model.initialize_from_files()
    assert model.target_embedding is model.source_embedding
    np.testing.assert_allclose(model.source_embedding.numpy(), table, atol=1e-6)
    assert id(model.source_embedding) in {id(v) for v in model.trainable_weights}
    params["embedding.source.init_file"] = str(tmp_path / "other.npy")
    with pytest.raises(ConfigError, match="different files"):
        AttentionSeq2Seq(params, "train")


def test_cli_dimension_mismatch_is_one_line_and_exit_2(toy_data, tmp_path):
    path = _write_vectors(tmp_path / "glove.txt", {"a": [0.5] * 5}, header=False)
    result = run_train(
        *base_args(
            toy_data, tmp_path / "model", **{"embedding.target.init_file": path}
        ),
        "--train_steps",
        "2",
    )
    assert_user_error(result, "embedding.target.init_file", path, "embedding.dim: 5")
