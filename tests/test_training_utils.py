"""Tests for seq2seq.training.utils: learning-rate decay and TrainOptions."""

import hashlib
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.errors import ConfigError, DataError, UserError
from seq2seq.training import utils
from seq2seq.training.utils import LearningRateDecay, TrainOptions


def _lr(schedule, step):
    return float(schedule(step))


# ---------------------------------------------------------------------------
# Decay functions
# ---------------------------------------------------------------------------


def test_no_decay_returns_none():
    assert utils.create_learning_rate_decay_fn(None, 5, 2.0) is None
    assert utils.create_learning_rate_decay_fn("", 5, 2.0) is None


def test_exponential_start_stop_like_the_original():
    decay_fn = utils.create_learning_rate_decay_fn(
        "exponential_decay", 10, 0.9, start_decay_at=100, stop_decay_at=1000
    )
    assert float(decay_fn(1.0, 50)) == 1.0
    assert float(decay_fn(1.0, 100)) == 1.0
    assert float(decay_fn(1.0, 115)) == pytest.approx(0.9**1.5, rel=1e-6)
    assert float(decay_fn(1.0, 5000)) == pytest.approx(0.9**90, rel=1e-5)


def test_min_learning_rate_floor():
    decay_fn = utils.create_learning_rate_decay_fn(
        "exponential_decay",
        10,
        0.9,
        start_decay_at=100,
        stop_decay_at=1000.0,
        min_learning_rate=0.01,
    )
    # 0.9 ** 80 = 2.2e-4 < 0.01
    assert float(decay_fn(1.0, 900)) == pytest.approx(0.01)
    assert float(decay_fn(1.0, 110)) == pytest.approx(0.9)


@pytest.mark.parametrize(
    "decay_type, formula",
    [
        ("exponential_decay", lambda s: 0.5 * 0.8 ** (s / 20)),
        ("inverse_time_decay", lambda s: 0.5 / (1 + 0.8 * s / 20)),
        ("natural_exp_decay", lambda s: 0.5 * math.exp(-0.8 * s / 20)),
    ],
)
def test_periodic_decays_continuous_and_staircase(decay_type, formula):
    smooth = LearningRateDecay(0.5, decay_type, 20, 0.8, start_decay_at=10)
    stairs = LearningRateDecay(
        0.5, decay_type, 20, 0.8, start_decay_at=10, staircase=True
    )
    for step in (0, 10, 25, 29, 30, 57, 210):
        s = max(step - 10, 0)
        assert _lr(smooth, step) == pytest.approx(formula(s), rel=1e-5)
        assert _lr(stairs, step) == pytest.approx(formula(20 * (s // 20)), rel=1e-5)


def test_polynomial_decay_linear_to_end():
    # end = min_learning_rate when set...
    sched = LearningRateDecay(1.0, "polynomial_decay", 100, 0.99, min_learning_rate=0.1)
    assert _lr(sched, 0) == pytest.approx(1.0)
    assert _lr(sched, 25) == pytest.approx(0.9 * 0.75 + 0.1)
    assert _lr(sched, 100) == pytest.approx(0.1)
    assert _lr(sched, 1000) == pytest.approx(0.1)
    # ... else TF1's default end_learning_rate 1e-4.
    sched = LearningRateDecay(1.0, "polynomial_decay", 100, 0.99)
    assert _lr(sched, 50) == pytest.approx((1.0 - 1e-4) * 0.5 + 1e-4)
    assert _lr(sched, 500) == pytest.approx(1e-4)


def test_cosine_decay():
    sched = LearningRateDecay(2.0, "cosine_decay", 100)
    assert _lr(sched, 0) == pytest.approx(2.0)
    assert _lr(sched, 50) == pytest.approx(1.0, abs=1e-6)
    assert _lr(sched, 25) == pytest.approx(1.0 + math.cos(math.pi / 4), rel=1e-6)
    assert _lr(sched, 100) == pytest.approx(0.0, abs=1e-6)
    floor = LearningRateDecay(2.0, "cosine_decay", 100, min_learning_rate=0.2)
    assert _lr(floor, 50) == pytest.approx(0.2 + 1.8 * 0.5, rel=1e-6)
    assert _lr(floor, 5000) == pytest.approx(0.2, rel=1e-6)


@pytest.mark.parametrize("decay_type", ["noam", "rsqrt_warmup"])
def test_warmup_then_inverse_sqrt(decay_type):
    sched = LearningRateDecay(1e-3, decay_type, 100)
    assert _lr(sched, 0) == pytest.approx(1e-3 * 1 / 100)
    assert _lr(sched, 49) == pytest.approx(1e-3 * 50 / 100)
    assert _lr(sched, 99) == pytest.approx(1e-3)  # the peak
    assert _lr(sched, 399) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    # With a start step: constant before, warm-up measured from it.
    late = LearningRateDecay(1e-3, decay_type, 100, start_decay_at=10)
    assert _lr(late, 5) == pytest.approx(1e-3)
    assert _lr(late, 10) == pytest.approx(1e-5)


def test_stop_decay_freezes_rate():
    sched = LearningRateDecay(1.0, "inverse_time_decay", 1, 1.0, stop_decay_at=9)
    assert _lr(sched, 9) == pytest.approx(0.1)
    assert _lr(sched, 10**6) == pytest.approx(0.1)


def test_schedule_in_tf_function_with_int64_variable_step():
    sched = LearningRateDecay(1.0, "exponential_decay", 10, 0.5)
    step = tf.Variable(0, dtype=tf.int64)
    fn = tf.function(lambda: sched(step))
    step.assign(20)
    assert float(fn()) == pytest.approx(0.25)
    assert fn().dtype == tf.float32


def test_unknown_decay_type_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        utils.create_learning_rate_decay_fn("linear_cosine_decay", 10, 0.9)
    for name in utils.DECAY_TYPES:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="lr_decay_steps"):
        LearningRateDecay(1.0, "exponential_decay", 0, 0.9)
    with pytest.raises(ConfigError, match="lr_decay_rate"):
        LearningRateDecay(1.0, "exponential_decay", 10)


def test_config_round_trip_and_keras_serialization():
    sched = LearningRateDecay(
        0.3,
        "natural_exp_decay",
        7,
        0.4,
        start_decay_at=3,
        stop_decay_at=50,
        min_learning_rate=0.01,
        staircase=True,
    )
    config = sched.get_config()
    json.dumps(config)
    copy = LearningRateDecay.from_config(config)
    assert copy.get_config() == config
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(sched)
    )
    assert isinstance(restored, LearningRateDecay)
    for step in (0, 3, 11, 30, 100):
        assert _lr(restored, step) == _lr(sched, step)
    optimizer = keras.optimizers.Adam(learning_rate=sched)
    config = optimizer.get_config()
    assert config["learning_rate"]["registered_name"] == "seq2seq>LearningRateDecay"
    rebuilt = keras.optimizers.Adam.from_config(json.loads(json.dumps(config)))
    rebuilt.iterations.assign(30)
    assert float(rebuilt.learning_rate) == _lr(sched, 30)


def test_make_learning_rate():
    assert utils.make_learning_rate(0.01) == 0.01
    assert utils.make_learning_rate(0.01, decay_type="", decay_steps=5) == 0.01
    sched = utils.make_learning_rate(
        0.01, decay_type="cosine_decay", decay_steps=10, decay_rate=0.5
    )
    assert isinstance(sched, LearningRateDecay)
    assert _lr(sched, 10) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------
# TrainOptions
# ---------------------------------------------------------------------------


def test_train_options_round_trip(tmp_path):
    model_dir = str(tmp_path / "model")
    options = TrainOptions(
        "AttentionSeq2Seq",
        {"num_layers": 4, "embedding.dim": np.int64(8), "nested": {"a": [1, 2]}},
        vocab_checksums={"/v/src.txt": "ab" * 32},
        resolved_config={"batch_size": 16},
        git_hash="deadbeef",
    )
    options.dump(model_dir)
    path = os.path.join(model_dir, "train_options.json")
    text = open(path, encoding="utf-8").read()
    assert text.startswith("{\n  ")  # pretty-printed
    assert not os.path.exists(path + ".tmp")
    loaded = TrainOptions.load(model_dir)
    assert loaded.model_class == "AttentionSeq2Seq"
    assert loaded.model_params == {
        "num_layers": 4,
        "embedding.dim": 8,
        "nested": {"a": [1, 2]},
    }
    assert loaded.vocab_checksums == {"/v/src.txt": "ab" * 32}
    assert loaded.resolved_config == {"batch_size": 16}
    assert loaded.extra == {"git_hash": "deadbeef"}
    assert loaded.check_compatible(options) == []
    # Overwriting works and keeps the file valid.
    TrainOptions("BasicSeq2Seq", {}).dump(model_dir)
    assert TrainOptions.load(model_dir).model_class == "BasicSeq2Seq"


def test_train_options_minimal_original_format(tmp_path):
    (tmp_path / "train_options.json").write_text(
        '{"model_class": "BasicSeq2Seq", "model_params": {"x": 1}}'
    )
    loaded = TrainOptions.load(str(tmp_path))
    assert loaded.model_params == {"x": 1}
    assert loaded.vocab_checksums == {} and loaded.resolved_config is None


def test_train_options_errors_name_the_file(tmp_path):
    path = os.path.join(str(tmp_path), "train_options.json")
    with pytest.raises(UserError, match="train_options.json not found"):
        TrainOptions.load(str(tmp_path))
    with open(path, "w") as handle:
        handle.write('{"model_class": "A", ')
    with pytest.raises(UserError, match="not valid JSON") as err:
        TrainOptions.load(str(tmp_path))
    assert path in str(err.value)
    with open(path, "w") as handle:
        handle.write('["not", "an", "object"]')
    with pytest.raises(UserError, match="model_class"):
        TrainOptions.load(str(tmp_path))


def test_check_compatible_lists_differences():
    saved = TrainOptions(
        "AttentionSeq2Seq",
        {"embedding.dim": 128, "encoder.params": {"num_layers": 2}},
        vocab_checksums={"src.txt": "a" * 64, "tgt.txt": "b" * 64},
        resolved_config={"train_steps": 100},
    )
    same = TrainOptions(
        "AttentionSeq2Seq",
        {"embedding.dim": 128, "encoder.params": {"num_layers": 2}},
        vocab_checksums={"src.txt": "a" * 64, "tgt.txt": "b" * 64},
        resolved_config={"train_steps": 500},
    )
    assert saved.check_compatible(same) == []
    assert saved.check_compatible(same, fields=("resolved_config",)) == [
        "resolved_config.train_steps: 100 (saved) != 500 (now)"
    ]
    changed = TrainOptions(
        "BasicSeq2Seq",
        {"embedding.dim": 256, "encoder.params": {"num_layers": 2}},
        vocab_checksums={"src.txt": "c" * 64, "tgt.txt": "b" * 64},
    )
    diffs = saved.check_compatible(changed)
    assert len(diffs) == 3
    assert "model_class: 'AttentionSeq2Seq' (saved) != 'BasicSeq2Seq' (now)" in diffs
    assert "model_params.embedding.dim: 128 (saved) != 256 (now)" in diffs
    assert any(d.startswith("vocabulary src.txt changed") for d in diffs)


def test_check_compatible_vocabularies_by_content():
    saved = TrainOptions("M", {}, vocab_checksums={"/old/v.txt": "a" * 64})
    moved = TrainOptions("M", {}, vocab_checksums={"/new/v.txt": "a" * 64})
    other = TrainOptions("M", {}, vocab_checksums={"/new/v.txt": "f" * 64})
    unknown = TrainOptions("M", {})
    assert saved.check_compatible(moved) == []
    assert saved.check_compatible(unknown) == []
    diffs = saved.check_compatible(other)
    assert len(diffs) == 1 and "vocabularies differ" in diffs[0]


def test_file_sha256_and_vocab_checksums(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"a\nb\n")
    expected = hashlib.sha256(b"a\nb\n").hexdigest()
    assert utils.file_sha256(str(path)) == expected
    assert utils.vocab_checksums([str(path), "", None]) == {str(path): expected}
    with pytest.raises(DataError, match="missing.txt"):
        utils.file_sha256(str(tmp_path / "missing.txt"))


def test_restart_safe_params_are_ignored():
    saved = TrainOptions("M", {"optimizer.learning_rate": 0.1, "embedding.dim": 8})
    new = TrainOptions(
        "M",
        {
            "optimizer.learning_rate": 0.01,
            "optimizer.lr_decay_type": "cosine_decay",
            "inference.beam_search.beam_width": 5,
            "embedding.dim": 8,
        },
    )
    assert saved.check_compatible(new) == []
    strict = saved.check_compatible(new, ignore_params=())
    assert len(strict) == 3
    assert "model_params.optimizer.learning_rate: 0.1 (saved) != 0.01 (now)" in strict
    # Changing the optimizer itself is not restart-safe.
    other = TrainOptions("M", {"optimizer.name": "SGD", "embedding.dim": 8})
    assert saved.differences(other) == [
        "model_params.optimizer.name: missing (saved) != 'SGD' (now)"
    ]


def test_from_model_hashes_vocabularies(tmp_path):
    src, tgt, moved = tmp_path / "src.txt", tmp_path / "tgt.txt", tmp_path / "m.txt"
    src.write_text("a\nb\n")
    tgt.write_text("x\ny\n")
    moved.write_text("a\nb\n")
    params = {"vocab_source": str(src), "vocab_target": str(tgt), "embedding.dim": 4}
    options = TrainOptions.from_model("AttentionSeq2Seq", params)
    assert options.vocab_checksums == {
        str(src): utils.file_sha256(str(src)),
        str(tgt): utils.file_sha256(str(tgt)),
    }
    # Same contents under another path: compatible.
    relocated = TrainOptions.from_model(
        "AttentionSeq2Seq", dict(params, vocab_source=str(moved))
    )
    assert options.differences(relocated) == []
    # Another target vocabulary at the same path: not compatible.
    tgt.write_text("x\nz\n")
    changed = TrainOptions.from_model("AttentionSeq2Seq", params)
    diffs = options.differences(changed)
    assert len(diffs) == 1 and f"vocabulary {tgt} changed" in diffs[0]
    assert TrainOptions.from_model("M", None).vocab_checksums == {}
    with pytest.raises(DataError, match="nope.txt"):
        TrainOptions.from_model("M", {"vocab_source": str(tmp_path / "nope.txt")})
