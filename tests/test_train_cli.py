"""End-to-end tests of bin/train.py as a user runs it, bad inputs included."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import text_pipeline, tiny_model_params, write_toy_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "bin.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def base_args(toy_data, output_dir, **params):
    model_params = tiny_model_params(toy_data["vocab"], **params)
    return [
        "--model",
        "AttentionSeq2Seq",
        "--model_params",
        yaml.safe_dump(model_params),
        "--input_pipeline_train",
        yaml.safe_dump(text_pipeline(toy_data["train"])),
        "--input_pipeline_dev",
        yaml.safe_dump(text_pipeline(toy_data["dev"])),
        "--batch_size",
        "8",
        "--output_dir",
        str(output_dir),
    ]


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in last, last


def test_train_resume_and_refuse_incompatible_config(toy_data, tmp_path):
    out = tmp_path / "model"
    config = tmp_path / "extra.yml"
    config.write_text(
        "hooks:\n  - class: PrintModelAnalysisHook\nnot_a_flag: 1\n"
        "metrics:\n  - class: LogPerplexityMetricSpec\n"
        "early_stopping_metric: log_perplexity/teacher_forced\n"
        "early_stopping_patience: 3\n"
    )
    result = run_train(
        *base_args(toy_data, out),
        "--config_paths",
        str(config),
        "--train_steps",
        "6",
        "--eval_every_n_steps",
        "6",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ignoring config key 'not_a_flag'" in result.stderr
    assert "step 6: loss" in result.stderr and "Eval at step 6" in result.stderr
    assert "train as UNK" not in result.stderr  # The vocabulary covers the data.
    assert (out / "model_analysis.txt").exists()
    # Flags set in a config file: early stopping on the dev log-perplexity.
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["metric"] == "log_perplexity/teacher_forced" and best["step"] == 6
    assert best["mode"] == "min" and best["patience"] == 3
    options = json.loads((out / "train_options.json").read_text())
    assert options["model_class"] == "AttentionSeq2Seq"
    # The resolved params hold every default, not just what was given.
    assert options["model_params"]["optimizer.name"] == "Adam"
    assert options["model_params"]["embedding.dim"] == 16
    checkpoint_files = sorted(os.listdir(out))

    again = run_train(*base_args(toy_data, out), "--train_steps", "6")
    assert again.returncode == 0
    assert "nothing to do" in again.stderr

    bad = run_train(
        *base_args(toy_data, out, **{"embedding.dim": 8}), "--train_steps", "8"
    )
    assert_user_error(bad, "embedding.dim", str(out))
    assert sorted(os.listdir(out)) == checkpoint_files


def test_unknown_model_param_fails_before_writing(toy_data, tmp_path):
    out = tmp_path / "never"
    result = run_train(
        *base_args(toy_data, out, **{"optimzer.name": "SGD"}), "--train_steps", "2"
    )
    assert_user_error(result, "optimzer.name", "optimizer.name")
    assert not out.exists()


def test_missing_config_file(toy_data, tmp_path):
    result = run_train(
        *base_args(toy_data, tmp_path / "m"),
        "--config_paths",
        str(tmp_path / "missing.yml"),
    )
    assert_user_error(result, "missing.yml")


def test_mismatched_parallel_files(toy_data, tmp_path):
    with open(toy_data["train"]["targets"], "a", encoding="utf-8") as handle:
        handle.write("1 2 3\n")
    result = run_train(*base_args(toy_data, tmp_path / "m"), "--train_steps", "2")
    assert_user_error(result, "sources.txt", "targets.txt")
    assert not (tmp_path / "m").exists()  # checked before anything is written


def test_bad_yaml_and_missing_pipeline(toy_data, tmp_path):
    result = run_train(
        *base_args(toy_data, tmp_path / "m"),
        "--model_params",
        "vocab_source: [unclosed",
    )
    assert_user_error(result, "--model_params", "invalid YAML")
    result = run_train(
        "--model", "AttentionSeq2Seq", "--output_dir", str(tmp_path / "m")
    )
    assert_user_error(result, "--input_pipeline_train")


def test_early_stopping_metric_must_be_reported(toy_data, tmp_path):
    result = run_train(
        *base_args(toy_data, tmp_path / "m"),
        "--train_steps",
        "2",
        "--early_stopping_metric",
        "bleu",
    )
    assert_user_error(
        result, "--early_stopping_metric=bleu", "loss/teacher_forced", "--metrics"
    )


@pytest.mark.parametrize("schedule", ["nonsense"])
def test_unknown_schedule(toy_data, tmp_path, schedule):
    result = run_train(*base_args(toy_data, tmp_path / "m"), "--schedule", schedule)
    assert_user_error(result, "--schedule=nonsense", "train_and_evaluate")


def test_engine_flags_train_and_bad_values_fail_before_writing(toy_data, tmp_path):
    out = tmp_path / "m"
    result = run_train(
        *base_args(toy_data, out),
        "--train_steps",
        "2",
        "--batch_type",
        "tokens",
        "--batch_size",
        "128",
        "--effective_batch_size",
        "256",
        "--distribution_strategy",
        "mirrored",
        "--mixed_precision",
        "bfloat16",
        "--gpu_allow_growth",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(out / "ckpt-2.index"), os.listdir(out)
    for flag, value, fragment in (
        ("--mixed_precision", "float8", "--mixed_precision=float8"),
        ("--effective_batch_size", "20", "multiple of --batch_size=8"),
        ("--distribution_strategy", "tpu", "--distribution_strategy=tpu"),
    ):
        bad = tmp_path / f"bad_{flag.strip('-')}"
        result = run_train(*base_args(toy_data, bad), flag, value)
        assert_user_error(result, fragment)
        assert not bad.exists() or not os.listdir(bad), os.listdir(bad)


def test_int32_overflow_in_model_params_is_one_line(toy_data, tmp_path):
    out = tmp_path / "never"
    result = run_train(
        *base_args(toy_data, out, **{"source.max_seq_len": 2147483648}),
        "--train_steps",
        "2",
    )
    assert_user_error(result, "source.max_seq_len", "2147483648", "2147483647")
    assert not (out / "checkpoint").exists()


def test_restart_with_train_options_whose_model_params_is_not_a_mapping(
    toy_data, tmp_path
):
    import tensorflow as tf

    out = tmp_path / "model"
    out.mkdir()
    bad = json.dumps({"model_class": "AttentionSeq2Seq", "model_params": "oops"})
    (out / "train_options.json").write_text(bad)
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(out / "ckpt"))
    result = run_train(*base_args(toy_data, out), "--train_steps", "2")
    assert_user_error(result, str(out / "train_options.json"), "'model_params'")
    assert (out / "train_options.json").read_text() == bad


def test_vocabulary_missing_most_tokens_is_reported(tmp_path):
    data = write_toy_corpus(str(tmp_path / "data"), num_examples=60, vocab_size=20)
    # The vocabulary covers 2 of the 20 token types: about 90% UNK.
    with open(data["vocab"], "w", encoding="utf-8") as handle:
        handle.write("0\n1\n")
    toy = {"train": data, "dev": data, "vocab": data["vocab"]}
    result = run_train(*base_args(toy, tmp_path / "m"), "--train_steps", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    warnings = [line for line in lines if "train as UNK" in line]
    assert len(warnings) == 2, result.stderr[-3000:]
    source, target = warnings
    for line, side in ((source, "source"), (target, "target")):
        assert f"% of the {side} tokens in the first 2 training batches" in line
        assert data["vocab"] in line and "generate_vocab.py" in line
        share = int(line.split("% of the")[0].split()[-1])
        assert 75 <= share <= 100, line
