"""Tests for the training hooks."""

import json
import os

import numpy as np
import pytest
from test_trainer import make_trainer

from seq2seq.configurable import create_from_dict
from seq2seq.errors import UserError
from seq2seq.training import hooks


def _hook(name, tmp_path, **params):
    return create_from_dict(
        {"class": name, "params": params}, [hooks], model_dir=str(tmp_path)
    )


def test_print_model_analysis_counts_every_parameter(toy_data, tmp_path, capsys):
    out = tmp_path / "model"
    trainer = make_trainer(
        toy_data, str(out), train_steps=1, hooks=[{"class": "PrintModelAnalysisHook"}]
    )
    trainer.train()
    text = (out / "model_analysis.txt").read_text()
    expected = sum(int(np.prod(v.shape)) for v in trainer.model.trainable_variables)
    total_line = [line for line in text.splitlines() if line.startswith("total")][0]
    assert int(total_line.split()[-1].replace(",", "")) == expected
    assert "source_embedding" in text and "total" in capsys.readouterr().out


def test_train_sample_hook_writes_predictions_beside_targets(toy_data, tmp_path):
    out = tmp_path / "model"
    trainer = make_trainer(
        toy_data,
        str(out),
        train_steps=4,
        hooks=[{"class": "TrainSampleHook", "params": {"every_n_steps": 2}}],
    )
    trainer.train()
    files = sorted(os.listdir(out / "samples"))
    assert files == ["samples_00000002.txt", "samples_00000004.txt"]
    lines = (out / "samples" / files[0]).read_text().splitlines()
    assert len(lines) == 16  # one per example of the batch
    assert all("Prediction:" in line and "Target:" in line for line in lines)
    assert "SEQUENCE_START" not in lines[0]


def test_metadata_capture_hook_traces_one_step(toy_data, tmp_path):
    out = tmp_path / "model"
    trainer = make_trainer(
        toy_data,
        str(out),
        train_steps=3,
        hooks=[{"class": "MetadataCaptureHook", "params": {"step": 2}}],
    )
    trainer.train()
    traces = [
        name for _, _, names in os.walk(out / "plugins" / "profile") for name in names
    ]
    assert any(name.endswith(".xplane.pb") for name in traces), traces


def test_variable_restore_hook_restores_only_the_prefix(toy_data, tmp_path):
    source = make_trainer(toy_data, str(tmp_path / "a"), train_steps=3)
    source.train()
    target = make_trainer(toy_data, str(tmp_path / "b"), train_steps=1)
    target._build(next(iter(target.train_dataset)))
    embedding_before = target.model.source_embedding.numpy()
    decoder_vars = target.model.decoder.trainable_variables
    prefix = decoder_vars[0].path.split("/")[0]
    hook = _hook(
        "VariableRestoreHook",
        tmp_path,
        prefix=prefix,
        checkpoint_path=str(tmp_path / "a"),
    )
    hook.begin(target)
    source_decoder = source.model.decoder.trainable_variables
    in_prefix = [
        (restored, original)
        for restored, original in zip(decoder_vars, source_decoder)
        if restored.path.startswith(prefix)
    ]
    assert in_prefix
    for restored, original in in_prefix:
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
    np.testing.assert_array_equal(
        target.model.source_embedding.numpy(), embedding_before
    )


def test_variable_restore_hook_without_checkpoint(tmp_path):
    hook = _hook("VariableRestoreHook", tmp_path, checkpoint_path=str(tmp_path))
    with pytest.raises(UserError, match="no checkpoint"):
        hook.begin(trainer=None)


def _write_checkpoint(directory, step):
    import tensorflow as tf

    tf.train.Checkpoint(v=tf.Variable(1.0)).write(
        os.path.join(str(directory), f"ckpt-{step}")
    )


class _FakeTrainer:
    def __init__(self, step=0, multi_worker=False):
        self.step = step
        self.multi_worker = multi_worker


def test_delay_start_hook_waits_until_the_chief_has_trained_k_steps_per_index(
    tmp_path, monkeypatch
):
    """Worker 3 with delay_k=200 starts once the chief's newest checkpoint
    is at step 600 or later; the chief's saves appear while it polls."""
    chief_saves = iter([100, 400, 700])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        _write_checkpoint(tmp_path, next(chief_saves))

    monkeypatch.setattr(hooks.stop_signals, "sleep", sleep)
    hook = _hook("DelayStartHook", tmp_path, delay_k=200, poll_secs=2)
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 3}})
    )
    hook.begin(_FakeTrainer())
    assert slept == [2, 2, 2]
    assert hooks.chief_step(str(tmp_path)) == 700

    # Worker 1 needs step 200, already reached: no wait. A resumed worker
    # whose own step is past the target does not wait either.
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 1}})
    )
    hook.begin(_FakeTrainer())
    hook = _hook("DelayStartHook", tmp_path / "empty", delay_k=200)
    hook.begin(_FakeTrainer(step=250))
    assert slept == [2, 2, 2]


def test_delay_start_hook_never_delays_the_chief_or_synchronous_replicas(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(hooks.stop_signals, "sleep", lambda s: pytest.fail("slept"))
    hook = _hook("DelayStartHook", tmp_path, delay_k=500)
    for task in ({"type": "chief", "index": 0}, {"type": "worker", "index": 0}):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"task": task}))
        hook.begin(_FakeTrainer())
    monkeypatch.delenv("TF_CONFIG")
    hook.begin(_FakeTrainer())
    # Under multi_worker_mirrored a waiting worker would stall the chief.
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                "task": {"type": "worker", "index": 1},
            }
        ),
    )
    hook.begin(_FakeTrainer(multi_worker=True))


def test_delay_start_hook_gives_up_after_its_timeout(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(hooks.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(
        hooks.stop_signals, "sleep", lambda s: now.__setitem__(0, now[0] + s)
    )
    hook = _hook("DelayStartHook", tmp_path, delay_k=10, poll_secs=4, timeout_secs=10)
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 2}})
    )
    hook.begin(_FakeTrainer())
    assert now[0] == 12  # three polls 4s apart, then the 10s timeout


def test_sync_replicas_hook_is_accepted(tmp_path):
    hook = _hook("SyncReplicasOptimizerHook", tmp_path)
    hook.begin(trainer=None)
    assert hook.params == {}


def test_unknown_hook_param_is_a_config_error(tmp_path):
    with pytest.raises(UserError, match="every_n_step"):
        _hook("TrainSampleHook", tmp_path, every_n_step=5)


def test_hooks_build_from_the_example_config():
    from seq2seq.configurable import load_yaml_file

    config = load_yaml_file("example_configs/train_seq2seq.yml")
    built = [create_from_dict(d, [hooks], model_dir="/tmp") for d in config["hooks"]]
    assert [type(h).__name__ for h in built] == [
        "PrintModelAnalysisHook",
        "MetadataCaptureHook",
        "SyncReplicasOptimizerHook",
        "TrainSampleHook",
    ]
