"""Tests for data parallelism, gradient accumulation, mixed precision and XLA."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_model_params, write_toy_corpus
from test_trainer import make_trainer

from seq2seq.errors import UserError
from seq2seq.training import distribution
from seq2seq.training import trainer as trainer_lib
from seq2seq.training.train_step import DynamicLossScale, TrainStep, replica_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tests", "distributed_trainer.py")


def _run(*args, timeout=600):
    return subprocess.Popen(
        [sys.executable, SCRIPT, *map(str, args)],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0 and "OK" in out, err[-4000:]


def _copy_weights(source, target):
    for a, b in zip(source.model.weights, target.model.weights):
        b.assign(a)


def _concat(first, second):
    """One batch from two: pad the time axes to the longer of the two."""
    batch = {}
    for key in first:
        a, b = first[key], second[key]
        if a.shape.rank == 2:
            width = max(a.shape[1], b.shape[1])
            pad = "" if a.dtype == tf.string else 0
            a = tf.pad(a, [[0, 0], [0, width - a.shape[1]]], constant_values=pad)
            b = tf.pad(b, [[0, 0], [0, width - b.shape[1]]], constant_values=pad)
        batch[key] = tf.concat([a, b], axis=0)
    return batch


def test_gradient_accumulation_equals_one_large_batch(toy_data, tmp_path):
    small = make_trainer(
        toy_data,
        str(tmp_path / "acc"),
        train_steps=10,
        with_dev=False,
        effective_batch_size=32,
    )
    large = make_trainer(toy_data, str(tmp_path / "big"), 10, with_dev=False)
    assert small.accumulation_steps == 2 and large.accumulation_steps == 1
    batches = [next(small._iterator) for _ in range(6)]
    small._build(batches[0])
    large._build(batches[0])
    _copy_weights(small, large)
    accumulate = small._make_train_step(small.train_dataset.element_spec)
    assert accumulate.step.dense_gradients
    # The large batch with the same dense embedding gradients.
    whole = TrainStep(
        large.model,
        large.optimizer,
        large.train_dataset.element_spec,
        seed=3,
        dense_gradients=True,
        fused_optimizer=accumulate.step.fused_optimizer,
    )
    for i in range(0, 6, 2):
        pair = batches[i : i + 2]
        got = accumulate(pair)
        want = whole(_concat(*pair))
        assert float(got["num_tokens"]) == float(want["num_tokens"])
        np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
        np.testing.assert_allclose(
            float(got["global_norm"]), float(want["global_norm"]), rtol=1e-4
        )
    # One update per effective batch.
    assert small.step == large.step == 3
    for a, b in zip(small.model.weights, large.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    # The accumulators are empty again after an update.
    for acc in accumulate.step._accumulators:
        assert not np.any(acc.numpy())


def test_sentence_normalized_loss_scales_the_gradient_by_tokens_per_sentence(
    toy_data, tmp_path
):
    params = tiny_model_params(toy_data["vocab"])
    sentences = dict(params, **{"loss.normalize_by": "sentences"})
    by_sentence = make_trainer(
        toy_data, str(tmp_path / "s"), 10, model_params=sentences, with_dev=False
    )
    by_token = make_trainer(
        toy_data, str(tmp_path / "t"), 10, model_params=params, with_dev=False
    )
    batch = next(by_token._iterator)
    by_sentence._build(batch)
    by_token._build(batch)
    _copy_weights(by_token, by_sentence)
    spec = by_token.train_dataset.element_spec
    got = by_sentence._make_train_step(spec)(batch)
    want = by_token._make_train_step(spec)(batch)
    lengths = batch["target_len"].numpy() - 1
    # Reported per token either way; the objective is summed per sentence.
    assert float(got["num_tokens"]) == float(want["num_tokens"]) == lengths.sum()
    np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-6)
    np.testing.assert_allclose(
        float(got["global_norm"]),
        float(want["global_norm"]) * lengths.sum() / len(lengths),
        rtol=1e-4,
    )


def test_xla_train_step_matches_the_graph_step(toy_data, tmp_path):
    xla = make_trainer(
        toy_data, str(tmp_path / "xla"), 10, with_dev=False, jit_compile=True
    )
    graph = make_trainer(toy_data, str(tmp_path / "graph"), 10, with_dev=False)
    batches = [next(xla._iterator) for _ in range(3)]
    xla._build(batches[0])
    graph._build(batches[0])
    _copy_weights(xla, graph)
    xla_step = xla._make_train_step(xla.train_dataset.element_spec)
    graph_step = graph._make_train_step(graph.train_dataset.element_spec)
    assert xla_step.step._gradients.__class__.__name__ != "method"
    for batch in batches:
        got, want = xla_step(batch), graph_step(batch)
        np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
    # Adam moves a weight by about the learning rate (0.01) whatever the
    # gradient's size, so an entry whose gradient is near zero can differ by
    # a rounding-sized share of that step: 1e-5 is 0.1% of one step.
    for a, b in zip(xla.model.weights, graph.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_effective_batch_size_must_be_a_multiple(toy_data, tmp_path):
    with pytest.raises(UserError, match="multiple of --batch_size=16"):
        make_trainer(toy_data, str(tmp_path / "m"), 1, effective_batch_size=20)


def test_accumulated_training_runs_and_logs_every_token(toy_data, tmp_path):
    trainer = make_trainer(
        toy_data,
        str(tmp_path / "model"),
        train_steps=3,
        with_dev=False,
        effective_batch_size=48,
    )
    assert trainer.train() == 3
    assert trainer.weights_are_finite()


def test_replica_rows_split_a_batch_without_loss_or_overlap():
    class Context:
        def __init__(self, replica, replicas):
            self.replica_id_in_sync_group = replica
            self.num_replicas_in_sync = replicas

    features = {
        "source_len": tf.range(7),
        "source_ids": tf.reshape(tf.range(14), [7, 2]),
    }
    parts = [replica_rows(features, Context(r, 3)) for r in range(3)]
    assert [int(p["source_len"].shape[0]) for p in parts] == [3, 3, 1]
    rows = np.concatenate([p["source_ids"].numpy() for p in parts])
    np.testing.assert_array_equal(rows, features["source_ids"].numpy())


def test_dynamic_loss_scale_halves_on_overflow_and_grows_after_good_steps():
    scale = DynamicLossScale(initial_scale=8.0, growth_steps=3)
    scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 4.0
    for _ in range(2):
        scale.update(tf.constant(True))
    assert float(scale.scale.numpy()) == 4.0
    scale.update(tf.constant(True))
    assert float(scale.scale.numpy()) == 8.0 and int(scale.good_steps.numpy()) == 0


@pytest.mark.parametrize("precision", ["bfloat16", "float16", "bfloat16_logits"])
def test_mixed_precision_trains_with_float32_weights(toy_data, tmp_path, precision):
    try:
        trainer = make_trainer(
            toy_data,
            str(tmp_path / precision),
            train_steps=4,
            with_dev=False,
            mixed_precision=precision,
        )
        logits_only = precision == "bfloat16_logits"
        compute_dtype = "float32" if logits_only else precision
        assert trainer.model.compute_dtype == compute_dtype
        logits_layer = trainer.model.decoder.logits_layer
        assert logits_layer.training_dtype == ("bfloat16" if logits_only else None)
        assert all(v.dtype == tf.float32 for v in trainer.model.trainable_variables)
        assert (trainer.loss_scale is not None) == (precision == "float16")
        before = [v.numpy().copy() for v in trainer.model.trainable_variables]
        assert trainer.train() == 4
        assert trainer.weights_are_finite()
        changed = [
            not np.array_equal(a, b.numpy())
            for a, b in zip(before, trainer.model.trainable_variables)
        ]
        assert any(changed)
    finally:
        trainer_lib.set_mixed_precision("")


def test_unknown_precision_and_strategy_are_user_errors():
    with pytest.raises(UserError, match="--mixed_precision=float8"):
        trainer_lib.set_mixed_precision("float8")
    with pytest.raises(UserError, match="--distribution_strategy=tpu"):
        distribution.create_strategy("tpu")


def test_chief_is_worker_zero_or_the_chief_task(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribution.is_chief_from_env()
    cluster = {"worker": ["a:1", "b:1"]}
    for index, chief in ((0, True), (1, False)):
        monkeypatch.setenv(
            "TF_CONFIG",
            f'{{"cluster": {cluster}, "task": {{"type": "worker", "index": {index}}}}}'.replace(
                "'", '"'
            ),
        )
        assert distribution.is_chief_from_env() == chief
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, '
        '"task": {"type": "worker", "index": 0}}',
    )
    assert not distribution.is_chief_from_env()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        distribution.tf_config()


@pytest.fixture
def corpus(tmp_path):
    return write_toy_corpus(str(tmp_path / "data"), num_examples=200, seed=1)


@pytest.mark.slow
def test_mirrored_on_two_cpus_matches_one_device(corpus, tmp_path):
    data_dir = os.path.dirname(corpus["sources"])
    _finish(_run("mirrored", data_dir, tmp_path))
    results = np.load(tmp_path / "results.npz")
    np.testing.assert_allclose(
        results["loss_mirrored"], results["loss_single"], rtol=1e-5
    )
    # Losses change from step to step: the updates were applied.
    assert len(set(results["loss_single"].round(6))) > 1
    count = len([k for k in results.files if k.startswith("single_")])
    assert count > 5
    for i in range(count):
        np.testing.assert_allclose(
            results[f"mirrored_{i}"], results[f"single_{i}"], rtol=1e-4, atol=1e-6
        )
    # Scheduled sampling trains under the strategy.
    assert int(results["sampled_steps"]) == 5 and bool(results["sampled_finite"])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_leaves_one_consistent_checkpoint(corpus, tmp_path):
    data_dir = os.path.dirname(corpus["sources"])
    ports = _free_ports(2)
    workers = [_run("worker", data_dir, tmp_path, i, *ports) for i in range(2)]
    for process in workers:
        _finish(process)
    chief, other = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(chief["step"]) == int(other["step"]) == 4
    names = [k for k in chief.files if k.startswith("w")]
    for name in names:
        np.testing.assert_array_equal(chief[name], other[name])
    model_dir = tmp_path / "model"
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    # Only the chief wrote: its checkpoints, its summaries, nothing else.
    files = sorted(os.listdir(model_dir))
    assert len([f for f in files if f.startswith("events")]) == 1, files
    assert all(
        f == "checkpoint" or f.startswith(("ckpt-2", "ckpt-4", "events")) for f in files
    ), files
    # The checkpoint holds the weights both workers ended with.
    reader = tf.train.load_checkpoint(str(model_dir / "ckpt-4"))
    values = {
        n: reader.get_tensor(n)
        for n, _ in tf.train.list_variables(str(model_dir / "ckpt-4"))
        if n.endswith("VARIABLE_VALUE")
    }
    for name in names:
        matches = [
            v
            for v in values.values()
            if v.shape == chief[name].shape and np.array_equal(v, chief[name])
        ]
        assert matches, name


def test_fused_adam_is_the_default_and_trains_like_keras_adam(toy_data, tmp_path):
    fused = make_trainer(toy_data, str(tmp_path / "fused"), 10, with_dev=False)
    keras_adam = make_trainer(
        toy_data,
        str(tmp_path / "keras"),
        10,
        with_dev=False,
        fused_optimizer=False,
    )
    batches = [next(fused._iterator) for _ in range(4)]
    fused._build(batches[0])
    keras_adam._build(batches[0])
    _copy_weights(fused, keras_adam)
    initial = [w.numpy() for w in fused.model.weights]
    fused_step = fused._make_train_step(fused.train_dataset.element_spec)
    keras_step = keras_adam._make_train_step(keras_adam.train_dataset.element_spec)
    assert fused_step.step.fused_optimizer
    assert not keras_step.step.fused_optimizer
    for batch in batches:
        got, want = fused_step(batch), keras_step(batch)
        np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
    assert int(fused.optimizer.iterations) == int(keras_adam.optimizer.iterations) == 4
    moved = 0.0
    for a, b, start in zip(fused.model.weights, keras_adam.model.weights, initial):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(a.numpy() - start).max()))
    assert moved > 1e-3


def test_full_batches_run_an_update_traced_with_their_size(toy_data, tmp_path):
    fixed = make_trainer(toy_data, str(tmp_path / "fixed"), 10, with_dev=False)
    free = make_trainer(toy_data, str(tmp_path / "free"), 10, with_dev=False)
    size = fixed.config.batch_size
    batches = [next(fixed._iterator) for _ in range(3)]
    assert all(b["source_ids"].shape[0] == size for b in batches)
    # The last batch of a bucket or an epoch is shorter.
    batches.append({key: value[: size - 3] for key, value in batches[0].items()})
    fixed._build(batches[0])
    free._build(batches[0])
    _copy_weights(fixed, free)
    spec = fixed.train_dataset.element_spec
    static = fixed._make_train_step(spec)
    assert static.step.batch_size == size
    dynamic = TrainStep(
        free.model,
        free.optimizer,
        spec,
        seed=fixed.config.tf_random_seed,
        fused_optimizer=static.step.fused_optimizer,
    )
    assert dynamic.batch_size is None and dynamic.update_full is None
    for batch in batches:
        got, want = static(batch), dynamic(batch)
        np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
        np.testing.assert_allclose(
            float(got["global_norm"]), float(want["global_norm"]), rtol=1e-4
        )
    for a, b in zip(fixed.model.weights, free.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    # Three full batches share one trace with the batch size in its shapes;
    # the short one ran the update whose shapes are unknown.
    full, other = static.step.update_full, static.step.update
    assert full.experimental_get_tracing_count() == 1
    assert other.experimental_get_tracing_count() == 1
    (features, *_), _ = full.get_concrete_function().structured_input_signature
    assert features["source_ids"].shape.as_list() == [size, None]
    (features, *_), _ = other.get_concrete_function().structured_input_signature
    assert features["source_ids"].shape.as_list() == [None, None]


def test_token_batching_and_xla_keep_one_update(toy_data, tmp_path):
    for name, run in [
        ("tokens", {"batch_type": "tokens"}),
        ("xla", {"jit_compile": True}),
    ]:
        trainer = make_trainer(
            toy_data, str(tmp_path / name), 10, with_dev=False, **run
        )
        batch = next(trainer._iterator)
        trainer._build(batch)
        step = trainer._make_train_step(trainer.train_dataset.element_spec).step
        assert step.batch_size is None and step.update_full is None
