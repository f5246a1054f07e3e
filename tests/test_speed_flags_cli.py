"""bin/train.py with the automatic speed options: --buckets auto,
--mixed_precision auto, and one intra-op thread on a small CPU."""

import os

from test_train_cli import base_args, run_train

from seq2seq.training import cpu_features, cpu_threads


def test_auto_buckets_and_auto_precision_train(toy_data, tmp_path):
    out = tmp_path / "m"
    result = run_train(
        *base_args(toy_data, out),
        "--train_steps",
        "2",
        "--buckets",
        "auto",
        "--mixed_precision",
        "auto",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(out / "ckpt-2.index"), os.listdir(out)
    assert "--buckets auto: boundaries" in result.stderr
    native = cpu_features.host_has_native_bfloat16()
    expected = "bfloat16_logits" if native else "float32"
    assert f"--mixed_precision=auto: {expected}." in result.stderr
    one_thread = cpu_threads.training_intra_op_threads(
        cpu_threads.usable_cpus(),
        has_gpu=cpu_features.gpu_visible(),
        environ=os.environ,
    )
    assert ("each op runs on 1 intra-op thread" in result.stderr) == (
        one_thread == 1
    ), result.stderr[-3000:]
