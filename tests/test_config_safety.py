"""Configs are data: a config cannot make the CLIs call an arbitrary function.

Each test names `os.system` (with a command that creates a file) in a config
slot of bin/infer.py or bin/train.py and checks that the run stops with one
`error:` line and exit status 2, and that the command never ran.
"""

import os
import subprocess
import sys

import yaml
from conftest import text_pipeline, tiny_model_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_refused(result, marker, message):
    """Exit 2, exactly one `error:` line equal to `message`, no traceback,
    and the command's file was not created."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert errors == [f"error: {message}"], result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def infer_args(tmp_path, tasks):
    pipeline = {
        "class": "ParallelTextInputPipeline",
        "params": {"source_files": [str(tmp_path / "input.txt")]},
    }
    return [
        "--tasks",
        tasks,
        "--input_pipeline",
        yaml.safe_dump(pipeline),
        "--model_dir",
        str(tmp_path / "no_model"),
    ]


def test_infer_task_class_cannot_be_a_function(tmp_path):
    marker = tmp_path / "ran"
    tasks = f"- class: os.system\n  params: 'touch {marker}'\n"
    result = run_cli("bin.infer", *infer_args(tmp_path, tasks))
    assert_refused(
        result,
        marker,
        "task 'os.system' is not a subclass of InferenceTask; a task class must "
        "subclass seq2seq.tasks.InferenceTask.",
    )


def test_infer_decode_text_postproc_fn_cannot_be_any_function(tmp_path):
    marker = tmp_path / "ran"
    tasks = "- class: DecodeText\n  params: {postproc_fn: os.system}\n"
    result = run_cli("bin.infer", *infer_args(tmp_path, tasks))
    assert_refused(
        result,
        marker,
        "DecodeText: postproc_fn 'os.system' is not an allowed function; use one "
        "of decode_sentencepiece, slice_text, strip_bpe (from "
        "seq2seq.data.postproc, by short name or as seq2seq.data.postproc.<name>)."
        " A config cannot name other functions.",
    )


def train_args(toy_data, output_dir, **model_params):
    return [
        "--model",
        "AttentionSeq2Seq",
        "--model_params",
        yaml.safe_dump(tiny_model_params(toy_data["vocab"], **model_params)),
        "--input_pipeline_train",
        yaml.safe_dump(text_pipeline(toy_data["train"])),
        "--input_pipeline_dev",
        yaml.safe_dump(text_pipeline(toy_data["dev"])),
        "--batch_size",
        "8",
        "--train_steps",
        "1",
        "--output_dir",
        str(output_dir),
    ]


METRIC_MESSAGE = (
    "metric 'os.system' is not a subclass of MetricSpec; a metric class must "
    "subclass seq2seq.metrics.MetricSpec."
)


def test_train_metrics_flag_cannot_name_a_function(toy_data, tmp_path):
    marker = tmp_path / "ran"
    out = tmp_path / "model"
    metrics = f"- class: os.system\n  params: 'touch {marker}'\n"
    result = run_cli("bin.train", *train_args(toy_data, out), "--metrics", metrics)
    assert_refused(result, marker, METRIC_MESSAGE)
    assert not (out / "train_options.json").exists()  # failed before writing


def test_train_metrics_in_config_file_cannot_name_a_function(toy_data, tmp_path):
    marker = tmp_path / "ran"
    out = tmp_path / "model"
    config = tmp_path / "metrics.yml"
    config.write_text(
        "metrics:\n"
        "  - class: LogPerplexityMetricSpec\n"
        "  - class: os.system\n"
        f"    params: 'touch {marker}'\n"
    )
    result = run_cli(
        "bin.train", *train_args(toy_data, out), "--config_paths", str(config)
    )
    assert_refused(result, marker, METRIC_MESSAGE)
    assert not (out / "train_options.json").exists()


def test_train_hooks_cannot_name_a_function(toy_data, tmp_path):
    marker = tmp_path / "ran"
    out = tmp_path / "model"
    hooks = f"- class: os.system\n  params: 'touch {marker}'\n"
    result = run_cli("bin.train", *train_args(toy_data, out), "--hooks", hooks)
    assert_refused(
        result,
        marker,
        "hook 'os.system' is not a subclass of TrainingHook; a hook class must "
        "subclass seq2seq.training.hooks.TrainingHook.",
    )
    assert not (out / "train_options.json").exists()


def test_train_model_and_encoder_class_cannot_name_a_function(toy_data, tmp_path):
    marker = tmp_path / "ran"
    args = train_args(toy_data, tmp_path / "model")
    args[args.index("--model") + 1] = "os.system"
    result = run_cli("bin.train", *args)
    assert_refused(
        result,
        marker,
        "model 'os.system' is not a subclass of ModelBase; a model class must "
        "subclass seq2seq.models.ModelBase.",
    )
    args = train_args(
        toy_data, tmp_path / "model2", **{"encoder.class": "subprocess.Popen"}
    )
    result = run_cli("bin.train", *args)
    assert_refused(
        result,
        marker,
        "encoder.class 'subprocess.Popen' is not a subclass of Encoder; the class "
        "in encoder.class must subclass seq2seq.encoders.Encoder.",
    )
