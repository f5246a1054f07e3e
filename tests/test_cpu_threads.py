"""Tests for the intra-op threads of training on a small CPU
(seq2seq.training.cpu_threads)."""

import os
import subprocess
import sys

from seq2seq.training import cpu_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_one_intra_op_thread_only_on_a_small_cpu_without_gpu():
    threads = cpu_threads.training_intra_op_threads
    assert threads(2, has_gpu=False, environ={}) == 1
    assert threads(1, has_gpu=False, environ={}) == 1
    assert threads(3, has_gpu=False, environ={}) is None
    assert threads(64, has_gpu=False, environ={}) is None
    assert threads(2, has_gpu=True, environ={}) is None


def test_the_environment_wins():
    for value in ("0", "1", "2"):
        environ = {"TF_NUM_INTRAOP_THREADS": value}
        assert cpu_threads.training_intra_op_threads(2, False, environ) is None


def test_usable_cpus_is_positive():
    assert cpu_threads.usable_cpus() >= 1


def _configure_in_fresh_process(before=""):
    """Runs `configure_training_threads` on a 2-CPU view of this machine in a
    new Python process; returns (its result, TensorFlow's setting after)."""
    code = (
        "import tensorflow as tf\n"
        "from seq2seq.training import cpu_threads\n"
        "cpu_threads.usable_cpus = lambda: 2\n"
        f"{before}"
        "result = cpu_threads.configure_training_threads(has_gpu=False)\n"
        "print(result, tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()[-2:], done.stderr


def test_configure_sets_one_thread_before_tensorflow_starts():
    (result, setting), _ = _configure_in_fresh_process()
    assert (result, setting) == ("1", "1")


def test_configure_leaves_a_started_runtime_as_it_is():
    (result, setting), stderr = _configure_in_fresh_process("tf.constant(1) + 1\n")
    # 0 is TensorFlow's default (as wide as the machine).
    assert (result, setting) == ("None", "0")
    assert "TensorFlow has already started" in stderr
