"""Training survives faults: concurrent runs, signals, kill -9 during a save,
damaged checkpoints, leftover temp dirs and unwritable output."""

import json
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import yaml
from conftest import text_pipeline, tiny_model_params
from test_train_cli import REPO, assert_user_error, base_args, run_train
from test_trainer import make_trainer

from seq2seq import run_dir
from seq2seq.inference import inference

STEP_LINE = re.compile(r"\] step (\d+): loss")
RESTORED_LINE = re.compile(r"Restored (\S+) \(step (\d+)\)")


def train_args(toy_data, out, *extra):
    return [
        "--model",
        "AttentionSeq2Seq",
        "--model_params",
        yaml.safe_dump(tiny_model_params(toy_data["vocab"])),
        "--input_pipeline_train",
        yaml.safe_dump(text_pipeline(toy_data["train"])),
        "--schedule",
        "train",
        "--batch_size",
        "8",
        "--output_dir",
        str(out),
        "--log_every_n_steps",
        "1",
        "--tf_random_seed",
        "1",
        *extra,
    ]


class Run:
    """A `bin/train.py` subprocess whose stderr goes to a file we can poll."""

    def __init__(self, args, log_path, **popen):
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bin.train", *args],
            cwd=REPO,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            **popen,
        )

    def text(self):
        with open(self.log_path, encoding="utf-8") as handle:
            return handle.read()

    def steps(self):
        return [int(s) for s in STEP_LINE.findall(self.text())]

    def wait_for(self, predicate, timeout=240, interval=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"exited early:\n{self.text()[-3000:]}")
            time.sleep(interval)
        raise AssertionError(f"timed out:\n{self.text()[-3000:]}")

    def finish(self, timeout=240):
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code


def _restored(text):
    found = RESTORED_LINE.findall(text)
    return int(found[-1][1]) if found else 0


def _assert_continuous(steps, first, last):
    assert steps == list(range(first, last + 1)), steps


@pytest.mark.slow
def test_sigterm_sigint_and_kill_during_save_then_resume(toy_data, tmp_path):
    """Each fault is followed by the same command, which resumes from the
    newest intact checkpoint with no step lost after it or repeated."""
    out = tmp_path / "model"
    args = train_args(
        toy_data, out, "--train_steps", "20", "--save_checkpoints_steps", "2"
    )

    # SIGTERM mid-run: a checkpoint at the current step, one line, exit 143.
    run = Run(args, tmp_path / "1.log")
    run.wait_for(lambda: len(run.steps()) >= 3)
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 143, run.text()[-3000:]
    text = run.text()
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    match = re.fullmatch(
        r"interrupted: SIGTERM at step (\d+): saved checkpoint ckpt-(\d+) in (\S+); "
        r"run the same command to resume\.",
        last,
    )
    assert match and match.group(1) == match.group(2), last
    assert match.group(3) == str(out)
    stopped = int(match.group(1))
    _assert_continuous(run.steps(), 1, stopped)
    assert run_dir.newest_intact(str(out)).endswith(f"ckpt-{stopped}")
    assert not (out / run_dir.LOCK_FILE).exists()

    # Resume, then SIGINT mid-run: exit 130, no KeyboardInterrupt traceback.
    run = Run(args, tmp_path / "2.log")
    run.wait_for(lambda: len(run.steps()) >= 3)
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.text()[-3000:]
    text = run.text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert _restored(text) == stopped
    last = text.strip().splitlines()[-1]
    match = re.match(
        r"interrupted: SIGINT at step (\d+): saved checkpoint ckpt-\1 ", last
    )
    assert match, last
    _assert_continuous(run.steps(), stopped + 1, int(match.group(1)))
    stopped = int(match.group(1))
    assert not (out / run_dir.LOCK_FILE).exists()

    # Resume, then kill -9 while a checkpoint is being written.
    run = Run(args, tmp_path / "3.log")
    run.wait_for(lambda: len(run.steps()) >= 2)
    temp = re.compile(r"^ckpt-\d+_temp$")
    # A save's temp dir lives for about 35-55 ms (measured on a 2-core
    # machine): polled every 50 ms, the six saves left could all slip by.
    run.wait_for(lambda: any(temp.match(n) for n in os.listdir(out)), interval=0.001)
    run.process.kill()
    assert run.finish() == -signal.SIGKILL
    assert _restored(run.text()) == stopped
    _assert_continuous(run.steps(), stopped + 1, max(run.steps()))
    left_over = sorted(n for n in os.listdir(out) if temp.match(n))
    newest = run_dir.newest_intact(str(out))
    intact = int(newest.rsplit("-", 1)[1])
    assert intact >= stopped and intact <= max(run.steps())
    # The lock of the killed run is left behind; the next run takes it over.
    assert json.loads((out / run_dir.LOCK_FILE).read_text())["pid"] == run.process.pid

    killed = run.process.pid
    run = Run(args, tmp_path / "4.log")
    assert run.finish() == 0, run.text()[-3000:]
    text = run.text()
    assert "stale lock" in text and f"pid {killed}," in text
    for name in left_over:
        assert f"Removed {out / name}" in text
    assert not any(temp.match(n) for n in os.listdir(out))
    assert _restored(text) == intact
    _assert_continuous(run.steps(), intact + 1, 20)
    assert run_dir.newest_intact(str(out)).endswith("ckpt-20")
    assert not (out / run_dir.LOCK_FILE).exists()


@pytest.mark.slow
def test_two_trainers_started_together_one_refuses(toy_data, tmp_path):
    out = tmp_path / "model"
    args = train_args(
        toy_data, out, "--train_steps", "2", "--save_checkpoints_steps", "2"
    )
    runs = [Run(args, tmp_path / f"{i}.log") for i in range(2)]
    codes = sorted(run.finish() for run in runs)
    assert codes == [0, 2], [run.text()[-2000:] for run in runs]
    loser = next(run for run in runs if run.process.returncode == 2)
    winner = next(run for run in runs if run.process.returncode == 0)
    last = loser.text().strip().splitlines()[-1]
    assert last.startswith(f"error: {out} is in use by another training run"), last
    assert f"pid {winner.process.pid}" in last and "Traceback" not in loser.text()
    assert run_dir.newest_intact(str(out)).endswith("ckpt-2")
    assert not (out / run_dir.LOCK_FILE).exists()


def _snapshot(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory): os.stat(
            os.path.join(root, name)
        ).st_mtime_ns
        for root, _, names in os.walk(directory)
        for name in names
    }


def test_held_output_dir_refuses_training_but_not_evaluation(toy_data, tmp_path):
    out = tmp_path / "model"
    first = run_train(
        *base_args(toy_data, out), "--train_steps", "2", "--schedule", "train"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        lock = {"host": socket.gethostname(), "pid": holder.pid, "started": "T0"}
        (out / "train.lock").write_text(json.dumps(lock))
        before = _snapshot(out)
        result = run_train(*base_args(toy_data, out), "--train_steps", "4")
        assert_user_error(
            result,
            f"{out} is in use by another training run",
            f"host {socket.gethostname()}, pid {holder.pid}, started T0",
            "--output_dir",
        )
        assert _snapshot(out) == before
        assert json.loads((out / "train.lock").read_text()) == lock
        # Evaluation only reads checkpoints: it needs no lock.
        evaluation = run_train(*base_args(toy_data, out), "--schedule", "evaluate")
        assert evaluation.returncode == 0, evaluation.stderr[-3000:]
        assert "Eval at step 2" in evaluation.stderr
    finally:
        holder.kill()
        holder.wait()


def test_output_dir_under_a_file_is_one_line(toy_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    result = run_train(*train_args(toy_data, blocker / "model", "--train_steps", "2"))
    assert_user_error(result, "cannot write", str(blocker), "no intact checkpoint")
    assert blocker.read_text() == "not a directory\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only dirs")
def test_read_only_output_dir_is_one_line(toy_data, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = run_train(*train_args(toy_data, out, "--train_steps", "2"))
    finally:
        out.chmod(0o755)
    assert_user_error(result, "cannot write", str(out), "Permission denied")


def test_best_dir_that_is_a_file_names_it_and_the_latest_checkpoint(toy_data, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "best").write_text("in the way\n")
    result = run_train(
        *base_args(toy_data, out),
        "--train_steps",
        "2",
        "--eval_every_n_steps",
        "2",
        "--save_checkpoints_steps",
        "2",
    )
    assert_user_error(
        result,
        f"cannot write the best checkpoint in {out / 'best'}",
        "not a directory",
        f"the latest intact checkpoint is ckpt-2 in {out}",
    )
    assert run_dir.newest_intact(str(out)).endswith("ckpt-2")
    assert not (out / run_dir.LOCK_FILE).exists()


def _limit_file_size():
    # Files may not grow past 1 MB (the checkpoints here are ~3 MB): writes
    # fail with EFBIG like on a full disk, also for root.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_full_disk_during_a_save_is_one_line(toy_data, tmp_path):
    out = tmp_path / "model"
    args = train_args(
        toy_data, out, "--train_steps", "4", "--save_checkpoints_steps", "2"
    )
    log = tmp_path / "limited.log"
    run = Run(args, log, preexec_fn=_limit_file_size)
    assert run.finish() == 2, run.text()[-3000:]
    text = run.text()
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: cannot write checkpoint ckpt-2 ("), last
    assert "File too large" in last and str(out) in last
    assert f"there is no intact checkpoint in {out} yet" in last
    assert not (out / run_dir.LOCK_FILE).exists()


def test_resume_falls_back_past_a_truncated_checkpoint(toy_data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    # Saving a SavedModel earlier in the same process leaves the absl logger
    # at WARNING; the INFO lines checked here come through it.
    caplog.set_level(logging.INFO, logger="absl")
    out = str(tmp_path / "model")
    make_trainer(toy_data, out, train_steps=10, save_checkpoints_steps=5).train()
    damaged = os.path.join(out, "ckpt-10")
    os.truncate(damaged + ".data-00000-of-00001", 1000)
    # Inference and export take the same newest intact checkpoint.
    assert inference.resolve_checkpoint(out) == os.path.join(out, "ckpt-5")
    with pytest.raises(run_dir.CheckpointDamagedError, match="ckpt-10 is damaged"):
        inference.resolve_checkpoint(out, damaged)

    trainer = make_trainer(toy_data, out, train_steps=12, save_checkpoints_steps=5)
    assert trainer.train() == 12
    assert (
        f"{damaged} is damaged (Read less bytes than requested); using ckpt-5"
        in caplog.text
    )
    assert f"Restored {out}/ckpt-5 (step 5)" in caplog.text
    # The damaged step was trained again and saved over the damaged files.
    assert run_dir.damage(damaged) is None
    assert run_dir.newest_intact(out).endswith("ckpt-12")

    for prefix in run_dir.checkpoint_prefixes(out):
        os.truncate(prefix + ".data-00000-of-00001", 0)
    trainer = make_trainer(toy_data, out, train_steps=14)
    with pytest.raises(run_dir.CheckpointDamagedError) as err:
        trainer.train()
    assert str(err.value).startswith(f"no intact checkpoint in {out}: ckpt-12")
    assert "--output_dir" not in str(err.value)


def test_temp_dirs_of_interrupted_saves_are_removed_at_start(
    toy_data, tmp_path, caplog
):
    out = tmp_path / "model"
    make_trainer(toy_data, str(out), train_steps=2, save_checkpoints_steps=2).train()
    (out / "ckpt-3_temp").mkdir()
    (out / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    trainer = make_trainer(toy_data, str(out), train_steps=3, save_checkpoints_steps=2)
    assert trainer.train() == 3
    assert f"Removed {out / 'ckpt-3_temp'}" in caplog.text
    assert not (out / "ckpt-3_temp").exists()
    assert run_dir.newest_intact(str(out)).endswith("ckpt-3")


def test_no_space_left_during_a_save_is_one_user_error(toy_data, tmp_path, monkeypatch):
    out = str(tmp_path / "model")
    real_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number and checkpoint_number > 2:
            raise tf.errors.ResourceExhaustedError(
                None,
                None,
                f"{out}/ckpt-{checkpoint_number}_temp/part-00000-of-00001.data-"
                "00000-of-00001.tempstate1; No space left on device",
            )
        return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    trainer = make_trainer(toy_data, out, train_steps=6, save_checkpoints_steps=2)
    with pytest.raises(run_dir.OutputWriteError) as err:
        trainer.train()
    message = str(err.value)
    assert message.startswith("cannot write checkpoint ckpt-4 ("), message
    assert "No space left on device" in message
    assert f"the latest intact checkpoint is ckpt-2 in {out}" in message
    assert not os.path.exists(os.path.join(out, run_dir.LOCK_FILE))
