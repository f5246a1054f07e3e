"""Tests for the training loop: convergence, checkpoints, resume, restore errors."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import text_pipeline, tiny_model_params, tiny_rnn_cell, write_toy_corpus

from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.errors import UserError
from seq2seq.training import trainer as trainer_lib
from seq2seq.training.hooks import TrainingHook
from seq2seq.training.utils import TrainOptions


def make_trainer(
    toy_data, output_dir, train_steps, model_params=None, hooks=(), metrics=(), **config
):
    params = model_params or tiny_model_params(toy_data["vocab"])
    options = TrainOptions.from_model("AttentionSeq2Seq", params)
    trainer_lib.check_and_write_train_options(options, output_dir)
    train = make_input_pipeline_from_def(
        text_pipeline(toy_data["train"]), ModeKeys.TRAIN
    )
    dev = None
    if config.pop("with_dev", True):
        dev = make_input_pipeline_from_def(
            text_pipeline(toy_data["dev"]), ModeKeys.EVAL, shuffle=False, num_epochs=1
        )
    run_config = trainer_lib.RunConfig(
        output_dir=output_dir,
        batch_size=16,
        train_steps=train_steps,
        eval_every_n_steps=config.pop("eval_every_n_steps", 0),
        save_checkpoints_steps=config.pop("save_checkpoints_steps", 10),
        log_every_n_steps=config.pop("log_every_n_steps", 10),
        tf_random_seed=3,
        **config,
    )
    return trainer_lib.Trainer(
        options, train, dev, run_config, hooks=hooks, metrics=metrics
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "feed, project_query",
    [("context", True), ("attentional", True), ("attentional", False)],
    ids=["context", "attentional", "attentional-general-score"],
)
def test_attention_model_learns_to_reverse(tmp_path, feed, project_query):
    train = write_toy_corpus(
        str(tmp_path / "train"), num_examples=2000, seed=1, vocab_size=8, max_len=5
    )
    dev = write_toy_corpus(
        str(tmp_path / "dev"), num_examples=100, seed=2, vocab_size=8, max_len=5
    )
    dev["vocab"] = train["vocab"]
    data = {"train": train, "dev": dev, "vocab": train["vocab"]}
    params = tiny_model_params(
        data["vocab"],
        **{"embedding.dim": 64, "optimizer.learning_rate": 0.005},
    )
    for side in ("encoder.params", "decoder.params"):
        params[side]["rnn_cell"]["cell_params"]["num_units"] = 64
    params["attention.params"]["num_units"] = 64
    params["decoder.params"]["input_feeding_vector"] = feed
    params["attention.params"]["project_query"] = project_query
    trainer = make_trainer(
        data,
        str(tmp_path / "model"),
        # At 600 steps the general-score model was still at the knee of its
        # curve on a CPU with AVX2 only (BLEU 89.8, loss 0.094); at 800 all
        # three reach BLEU 100 there, with a loss below 0.003.
        train_steps=800,
        model_params=params,
        metrics=[{"class": "BleuMetricSpec"}],
        save_checkpoints_steps=800,
    )
    trainer.train()
    results = trainer.evaluate()
    assert results["bleu/greedy"] > 95.0, results
    assert results["loss/teacher_forced"] < 0.1


def test_only_the_training_dataset_is_autotuned(toy_data, tmp_path):
    # The dev set and inference inputs are read once per iterator; their
    # iterators must not wait for tf.data's autotuning thread when they end
    # (`batching.read_once`). The training iterator keeps the tuning.
    from seq2seq.inference import inference

    trainer = make_trainer(toy_data, str(tmp_path / "model"), train_steps=1)
    assert trainer.train_dataset.options().autotune.enabled is not False
    assert trainer.dev_dataset.options().autotune.enabled is False
    pipeline = make_input_pipeline_from_def(
        text_pipeline(toy_data["dev"]), ModeKeys.INFER, shuffle=False, num_epochs=1
    )
    model = trainer.model
    plain = inference.make_dataset(model, pipeline, 4)
    by_length = inference.make_sorted_dataset(model, pipeline, 4, sort_window=8)
    assert plain.options().autotune.enabled is False
    assert by_length.options().autotune.enabled is False
    # Nothing else changes: every sentence comes out, once.
    positions = np.concatenate([p.numpy() for _, p in by_length])
    assert sorted(positions.tolist()) == list(range(len(positions)))
    rows = sum(int(batch["source_len"].shape[0]) for batch in plain)
    assert rows == len(positions) > 8


def test_events_and_checkpoints_are_written(toy_data, tmp_path):
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data,
        out,
        train_steps=20,
        metrics=[{"class": "BleuMetricSpec"}],
        eval_every_n_steps=20,
    )
    assert trainer.train() == 20
    assert tf.train.latest_checkpoint(out).endswith("ckpt-20")
    assert os.path.exists(os.path.join(out, "train_options.json"))
    tags = {}
    for run, directory in (("train", out), ("eval", os.path.join(out, "eval"))):
        tags[run] = set()
        for name in os.listdir(directory):
            if name.startswith("events"):
                for event in tf.compat.v1.train.summary_iterator(
                    os.path.join(directory, name)
                ):
                    tags[run].update(v.tag for v in event.summary.value)
    for tag in (
        "loss",
        "learning_rate",
        "global_norm",
        "global_norm/clipped",
        "global_norm/clip_ratio",
        "scheduled_sampling/probability",
        "tokens_per_sec",
        "source_len",
        "target_len",
    ):
        assert tag in tags["train"], tags
    # Dev results are named after how they are measured.
    assert tags["eval"] == {"loss/teacher_forced", "bleu/greedy"}, tags


class _InterruptAt(TrainingHook):
    """Simulates Ctrl-C at a given step."""

    def __init__(self, step):
        super().__init__({}, model_dir="")
        self.stop_step = step

    def after_step(self, step, features, outputs):
        if step == self.stop_step:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_final_step(toy_data, tmp_path):
    out = str(tmp_path / "model")
    first = make_trainer(toy_data, out, train_steps=30, save_checkpoints_steps=100)
    first.hooks.append(_InterruptAt(13))
    with pytest.raises(KeyboardInterrupt):
        first.train()
    # The interrupt saved step 13 although the save interval is 100.
    assert tf.train.latest_checkpoint(out).endswith("ckpt-13")
    # Keras names layers uniquely per instance, so compare in creation order.
    saved = [v.numpy() for v in first.model.trainable_variables]

    second = make_trainer(toy_data, out, train_steps=30, save_checkpoints_steps=100)
    second._build(next(iter(second.train_dataset)))
    assert second.restore() == 13
    restored = second.model.trainable_variables
    assert len(restored) == len(saved)
    for variable, value in zip(restored, saved):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert second.train() == 30
    assert tf.train.latest_checkpoint(out).endswith("ckpt-30")

    # A finished run with the same train_steps returns at once.
    third = make_trainer(toy_data, out, train_steps=30)
    assert third.train() == 30
    assert third._train_step is None


def test_restore_with_another_architecture_is_a_user_error(toy_data, tmp_path):
    out = str(tmp_path / "model")
    make_trainer(toy_data, out, train_steps=2).train()
    params = tiny_model_params(toy_data["vocab"], **{"embedding.dim": 8})
    options = TrainOptions.from_model("AttentionSeq2Seq", params)
    with pytest.raises(UserError, match="different config.*embedding.dim"):
        trainer_lib.check_and_write_train_options(options, out)
    # Even when train_options.json is bypassed, the restore itself explains.
    os.remove(os.path.join(out, "train_options.json"))
    bad = make_trainer(toy_data, out, train_steps=4, model_params=params)
    with pytest.raises(UserError, match="does not fit the model"):
        bad.train()
    assert tf.train.latest_checkpoint(out).endswith("ckpt-2")


def test_restore_with_other_vocabulary_is_a_user_error(toy_data, tmp_path):
    out = str(tmp_path / "model")
    make_trainer(toy_data, out, train_steps=2).train()
    with open(toy_data["vocab"], "a", encoding="utf-8") as handle:
        handle.write("extra\n")
    options = TrainOptions.from_model(
        "AttentionSeq2Seq", tiny_model_params(toy_data["vocab"])
    )
    with pytest.raises(UserError, match="vocab"):
        trainer_lib.check_and_write_train_options(options, out)


@pytest.mark.parametrize("stepped", [False, True], ids=["fused", "stepped"])
def test_a_seed_trains_the_same_weights_twice(toy_data, tmp_path, stepped):
    """Two runs with one `tf_random_seed`, with dropout on every layer
    input and output and the attentional vector fed back, end with the
    same weights, bit for bit (docs/training.md, "Reproducible runs").
    With the dropout drawn inside the loops, both runs of the fused case
    differed. The stepped case runs the cells that `FusedRecurrence`
    does not (a residual stack) and scheduled sampling."""
    cell = {
        **tiny_rnn_cell(units=64),
        "dropout_input_keep_prob": 0.7,
        "dropout_output_keep_prob": 0.7,
    }
    decoder = {}
    if stepped:
        cell.update(num_layers=2, residual_connections=True)
        decoder = {
            "scheduled_sampling.type": "constant",
            "scheduled_sampling.probability": 0.5,
        }
    params = tiny_model_params(
        toy_data["vocab"],
        **{
            "encoder.params": {"rnn_cell": cell},
            "decoder.params": {
                "rnn_cell": cell,
                "input_feeding_vector": "attentional",
                "attentional_keep_prob": 0.7,
                **decoder,
            },
        },
    )
    weights = []
    for run in range(2):
        trainer = make_trainer(
            toy_data,
            str(tmp_path / f"run{run}"),
            train_steps=40,
            model_params=params,
            with_dev=False,
            save_checkpoints_steps=100,
        )
        assert trainer.train() == 40
        weights.append([v.numpy() for v in trainer.model.trainable_variables])
    assert len(weights[0]) == len(weights[1])
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
