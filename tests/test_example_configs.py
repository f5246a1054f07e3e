"""Every example config loads and builds what it describes."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from seq2seq import metrics, models
from seq2seq.configurable import (
    ModeKeys,
    create_from_dict,
    deep_merge,
    load_yaml_file,
)
from seq2seq.training import hooks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "example_configs", "*.yml")))
MODEL_CONFIGS = [c for c in CONFIGS if "model" in load_yaml_file(c)]


def test_there_are_example_configs():
    names = {os.path.basename(c) for c in CONFIGS}
    assert {
        "nmt_small.yml",
        "nmt_medium.yml",
        "nmt_large.yml",
        "train_seq2seq.yml",
        "train_seq2seq_delay_start.yml",
        "text_metrics_bpe.yml",
        "text_metrics_sp.yml",
    } <= names


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=os.path.basename)
def test_model_config_trains_and_decodes(path, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    config = load_yaml_file(path)
    params = deep_merge(
        config["model_params"], {"vocab_source": str(vocab), "vocab_target": str(vocab)}
    )
    model = create_from_dict(
        {"class": config["model"], "params": params},
        [models],
        ModeKeys.TRAIN,
        base=models.ModelBase,
    )
    features = model.preprocess(
        {
            "source_tokens": tf.constant([["a", "b", "SEQUENCE_END"]]),
            "source_len": tf.constant([3]),
            "target_tokens": tf.constant([["SEQUENCE_START", "c", "SEQUENCE_END"]]),
            "target_len": tf.constant([3]),
        }
    )
    output = model.forward(features, training=True)
    assert np.isfinite(output.loss.numpy())
    assert output.logits.shape == (1, 2, 6)
    # Two optimizer steps with the config's own optimizer, then decoding.
    optimizer = model.create_optimizer()
    ids_only = {k: features[k] for k in ("source_ids", "source_len")}
    before = [v.numpy().copy() for v in model.trainable_variables]
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = model.forward(features, training=True).loss
        variables = model.trainable_variables
        grads, _ = model.clip_gradients(tape.gradient(loss, variables), variables)
        optimizer.apply_gradients(zip(grads, variables))
    changed = [
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, model.trainable_variables)
    ]
    assert any(changed)
    greedy = model.infer(ids_only, max_length=4)
    assert greedy["predicted_ids"].shape[0] == 1
    assert 1 <= int(greedy["predicted_len"][0]) <= 4
    model.params["inference.beam_search.beam_width"] = 2
    beam = model.infer(ids_only, max_length=4)
    assert beam["beam_search_output.predicted_ids"].shape[-1] == 2


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_hooks_and_metrics_build(path):
    config = load_yaml_file(path)
    # Built the way bin/train.py builds them: each class checked against its base.
    for definition in config.get("hooks", []):
        create_from_dict(definition, [hooks], model_dir="/tmp", base=hooks.TrainingHook)
    built = [
        create_from_dict(d, [metrics], base=metrics.MetricSpec)
        for d in config.get("metrics", [])
    ]
    if "metrics" in config:
        assert built[0].name == "log_perplexity"
        assert {m.name for m in built[1:]} >= {"bleu", "rouge_1/f_score"}
