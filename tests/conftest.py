"""Shared fixtures: tiny toy corpora and tiny model configurations."""

import os
import random

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bin.tools.generate_toy_data import make_examples  # noqa: E402


def write_toy_corpus(
    directory,
    kind="reverse",
    num_examples=200,
    vocab_size=6,
    min_len=1,
    max_len=6,
    seed=0,
):
    """Writes sources.txt, targets.txt and vocab.txt under `directory`.

    Returns:
      A dict with the paths: sources, targets, vocab.
    """
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    pairs = list(make_examples(kind, num_examples, min_len, max_len, vocab_size, rng))
    paths = {
        "sources": os.path.join(directory, "sources.txt"),
        "targets": os.path.join(directory, "targets.txt"),
        "vocab": os.path.join(directory, "vocab.txt"),
    }
    with open(paths["sources"], "w", encoding="utf-8") as out:
        out.writelines(" ".join(s) + "\n" for s, _ in pairs)
    with open(paths["targets"], "w", encoding="utf-8") as out:
        out.writelines(" ".join(t) + "\n" for _, t in pairs)
    tokens = sorted({tok for s, _ in pairs for tok in s})
    with open(paths["vocab"], "w", encoding="utf-8") as out:
        out.writelines(tok + "\n" for tok in tokens)
    return paths


@pytest.fixture
def toy_data(tmp_path):
    """A small reverse-task train/dev split sharing one vocabulary."""
    train = write_toy_corpus(str(tmp_path / "train"), num_examples=300, seed=1)
    dev = write_toy_corpus(str(tmp_path / "dev"), num_examples=40, seed=2)
    dev["vocab"] = train["vocab"]
    return {"train": train, "dev": dev, "vocab": train["vocab"]}


def tiny_rnn_cell(units=16, cell_class="GRUCell"):
    return {
        "cell_class": cell_class,
        "cell_params": {"num_units": units},
        "dropout_input_keep_prob": 1.0,
        "dropout_output_keep_prob": 1.0,
        "num_layers": 1,
    }


def tiny_model_params(vocab, **overrides):
    """AttentionSeq2Seq params small enough for a unit test."""
    params = {
        "vocab_source": vocab,
        "vocab_target": vocab,
        "embedding.dim": 16,
        "attention.params": {"num_units": 16},
        "encoder.params": {"rnn_cell": tiny_rnn_cell()},
        "decoder.params": {"rnn_cell": tiny_rnn_cell(), "max_decode_length": 12},
        "optimizer.learning_rate": 0.01,
        "source.reverse": False,
    }
    params.update(overrides)
    return params


def token_examples_dataset(examples, with_targets=True):
    """A `tf.data` dataset of unbatched examples, as pipelines give them.

    Args:
      examples: (source tokens, target tokens) pairs of string lists.
      with_targets: Whether the examples have their target side.
    """

    def generate():
        for source, target in examples:
            example = {"source_tokens": source, "source_len": len(source)}
            if with_targets:
                example["target_tokens"] = target
                example["target_len"] = len(target)
            yield example

    signature = {
        "source_tokens": tf.TensorSpec([None], tf.string),
        "source_len": tf.TensorSpec([], tf.int32),
    }
    if with_targets:
        signature["target_tokens"] = tf.TensorSpec([None], tf.string)
        signature["target_len"] = tf.TensorSpec([], tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def text_pipeline(paths, with_targets=True):
    params = {"source_files": [paths["sources"]]}
    if with_targets:
        params["target_files"] = [paths["targets"]]
    return {"class": "ParallelTextInputPipeline", "params": params}


@pytest.fixture(scope="session")
def toy_run_with_checkpoints(tmp_path_factory):
    """A tiny attention model trained 30 steps on toy reverse data, with
    checkpoints ckpt-10, ckpt-20 and ckpt-30 (differently trained models of
    one vocabulary, for checkpoint averaging and ensembles).

    Returns:
      A dict: `model_dir`, `root` (its parent), `dev` (toy corpus paths).
    """
    from test_trainer import make_trainer

    root = tmp_path_factory.mktemp("toy_run")
    train = write_toy_corpus(str(root / "train"), num_examples=200, seed=1)
    dev = write_toy_corpus(str(root / "dev"), num_examples=10, seed=2)
    dev["vocab"] = train["vocab"]
    data = {"train": train, "dev": dev, "vocab": train["vocab"]}
    model_dir = str(root / "model")
    make_trainer(
        data, model_dir, train_steps=30, save_checkpoints_steps=10, with_dev=False
    ).train()
    return {"model_dir": model_dir, "root": root, "dev": dev}


def random_ops_in_loop_bodies(function):
    """Stateful random ops inside the `While` bodies of a traced
    `tf.function`, and outside them: `(inside, outside)` op counts. A
    stateful draw inside a loop hands out its values in the order the
    loop's parallel iterations reach it, so a seed would not fix them."""
    graph = function.get_concrete_function().graph.as_graph_def()
    library = {f.signature.name: f for f in graph.library.function}
    bodies = set()
    pending = [node for node in graph.node]
    for f in library.values():
        pending.extend(f.node_def)
    for node in pending:
        if node.op in ("While", "StatelessWhile"):
            bodies.add(node.attr["body"].func.name)
    inside = outside = 0
    for name, f in library.items():
        count = sum(node.op.startswith("RandomUniform") for node in f.node_def)
        if name in bodies:
            inside += count
        else:
            outside += count
    outside += sum(node.op.startswith("RandomUniform") for node in graph.node)
    return inside, outside


def check_bfloat16_logits(make_model, features_of):
    """Checks `--mixed_precision bfloat16_logits` on a model: the same
    variables as float32's, logits rounded like a bfloat16 product when
    training, and float32's own logits outside training.

    Args:
      make_model: Builds the model in train mode.
      features_of: Preprocessed features of a small batch, given a model.
    """
    import numpy as np

    from seq2seq.layers import output_projection

    reference = make_model()
    features = features_of(reference)
    want_train = reference.forward(features, training=True).logits.numpy()
    want_eval = reference.forward(features, training=False).logits.numpy()
    output_projection.set_training_dtype("bfloat16")
    try:
        model = make_model()
    finally:
        output_projection.set_training_dtype(None)
    model.forward(features, training=False)  # builds the variables
    # The same variables, so the same checkpoints.
    assert [v.shape for v in model.weights] == [v.shape for v in reference.weights]
    assert model.decoder.logits_layer.name == "logits"
    assert model.decoder.logits_layer.training_dtype == "bfloat16"
    # The loss pads the rows for a bfloat16 product only.
    assert model.decoder.projection_row_multiple(True) == output_projection.ROW_MULTIPLE
    assert model.decoder.projection_row_multiple(False) == 1
    assert reference.decoder.projection_row_multiple(True) == 1
    for variable, value in zip(model.weights, reference.weights):
        variable.assign(value)
    got_train = model.forward(features, training=True).logits.numpy()
    assert not np.array_equal(got_train, want_train)
    # Rounding the inputs to 8 significant bits moves a sum of products by
    # a few parts in 2^8 of their scale.
    scale = np.abs(want_train).max()
    np.testing.assert_allclose(got_train, want_train, rtol=0, atol=2**-5 * scale)
    got_eval = model.forward(features, training=False).logits.numpy()
    np.testing.assert_array_equal(got_eval, want_eval)
