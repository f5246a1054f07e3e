"""Tests for the output directory: its lock, damaged checkpoints, temp dirs
and write failures (seq2seq.run_dir)."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from seq2seq import run_dir


def _lock_file(directory, pid, host=None, started_epoch=None):
    holder = {
        "host": host or socket.gethostname(),
        "pid": pid,
        "started": "2026-01-01T00:00:00Z",
    }
    if started_epoch is not None:
        holder["started_epoch"] = started_epoch
    path = os.path.join(directory, run_dir.LOCK_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(holder, handle)
    return path


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_lock_holds_host_pid_and_start_and_is_released(tmp_path):
    out = str(tmp_path / "new" / "model")
    with run_dir.lock_output_dir(out) as lock:
        holder = json.loads((tmp_path / "new" / "model" / "train.lock").read_text())
        assert holder["host"] == socket.gethostname()
        assert holder["pid"] == os.getpid()
        assert holder["started"].endswith("Z")
        # Reentrant within one process: the inner block shares the lock.
        with run_dir.lock_output_dir(out) as inner:
            assert inner is lock
        assert os.path.exists(lock.path)
    assert not os.path.exists(lock.path)
    # Released on an error too.
    with pytest.raises(RuntimeError):
        with run_dir.lock_output_dir(out):
            raise RuntimeError("boom")
    assert os.listdir(out) == []


def test_live_lock_is_refused_and_nothing_changes(tmp_path, sleeper):
    path = _lock_file(str(tmp_path), sleeper.pid)
    before = open(path).read()
    with pytest.raises(run_dir.OutputDirLockedError) as err:
        with run_dir.lock_output_dir(str(tmp_path)):
            pass
    message = str(err.value)
    for fragment in (
        str(tmp_path),
        f"pid {sleeper.pid}",
        socket.gethostname(),
        "2026-01-01T00:00:00Z",
        "--output_dir",
        "delete the lock file",
    ):
        assert fragment in message, message
    assert "\n" not in message
    assert os.listdir(tmp_path) == ["train.lock"]
    assert open(path).read() == before


def test_lock_of_another_host_counts_as_live(tmp_path):
    _lock_file(str(tmp_path), _dead_pid(), host="some-other-host")
    with pytest.raises(run_dir.OutputDirLockedError, match="some-other-host"):
        with run_dir.lock_output_dir(str(tmp_path)):
            pass


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = _dead_pid()
    _lock_file(str(tmp_path), dead)
    with caplog.at_level(logging.WARNING):
        with run_dir.lock_output_dir(str(tmp_path)) as lock:
            assert json.loads(open(lock.path).read())["pid"] == os.getpid()
    assert f"pid {dead}" in caplog.text and "stale lock" in caplog.text
    assert os.listdir(tmp_path) == []


def test_reused_pid_is_not_the_holder(tmp_path, sleeper):
    # The lock was taken long before the process now running with that pid
    # started: that process is not the holder.
    _lock_file(str(tmp_path), sleeper.pid, started_epoch=1000.0)
    with run_dir.lock_output_dir(str(tmp_path)):
        pass


def test_lock_where_a_path_component_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(run_dir.OutputWriteError) as err:
        with run_dir.lock_output_dir(str(blocker / "model")):
            pass
    message = str(err.value)
    assert "cannot write" in message and str(blocker) in message, message
    assert "no intact checkpoint" in message


def _save(directory, steps):
    variable = tf.Variable([1.0, 2.0, 3.0])
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(v=variable), directory, max_to_keep=None
    )
    for step in steps:
        variable.assign_add([1.0, 1.0, 1.0])
        manager.save(checkpoint_number=step)
    return variable


def _data_file(prefix):
    return prefix + ".data-00000-of-00001"


def test_newest_intact_skips_damaged_checkpoints(tmp_path, caplog):
    out = str(tmp_path)
    _save(out, [1, 2, 3, 10])
    assert run_dir.checkpoint_prefixes(out) == [
        os.path.join(out, f"ckpt-{n}") for n in (10, 3, 2, 1)
    ]
    assert run_dir.newest_intact(out).endswith("ckpt-10")
    os.truncate(_data_file(os.path.join(out, "ckpt-10")), 5)
    os.remove(_data_file(os.path.join(out, "ckpt-3")))
    with open(os.path.join(out, "ckpt-2.index"), "wb") as handle:
        handle.write(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert run_dir.newest_intact(out) == os.path.join(out, "ckpt-1")
    for name in ("ckpt-10", "ckpt-3", "ckpt-2"):
        assert f"{name} is damaged" in caplog.text
    assert "Read less bytes than requested" in caplog.text
    os.remove(os.path.join(out, "ckpt-1.index"))
    with pytest.raises(run_dir.CheckpointDamagedError) as err:
        run_dir.newest_intact(out)
    message = str(err.value)
    assert "no intact checkpoint in" in message and "ckpt-10" in message
    assert "--output_dir" not in message
    assert run_dir.newest_intact(str(tmp_path / "empty")) is None


def test_relative_directory_is_not_joined_twice(tmp_path, monkeypatch, caplog):
    # A relative --model_dir: the listed checkpoints are found where they
    # are, not under a doubled path reported as damaged.
    monkeypatch.chdir(tmp_path)
    _save("model", [1, 2])
    assert run_dir.checkpoint_prefixes("model") == [
        os.path.join("model", f"ckpt-{n}") for n in (2, 1)
    ]
    with caplog.at_level(logging.WARNING):
        assert run_dir.newest_intact("model") == os.path.join("model", "ckpt-2")
    assert "damaged" not in caplog.text


def test_damage_in_the_middle_is_found_by_a_full_read(tmp_path):
    out = str(tmp_path)
    variable = tf.Variable(tf.zeros([4096]))
    tf.train.Checkpoint(v=variable).write(os.path.join(out, "ckpt-1"))
    prefix = os.path.join(out, "ckpt-1")
    data = bytearray(open(_data_file(prefix), "rb").read())
    for i in range(100, 2000):
        data[i] ^= 0xFF
    with open(_data_file(prefix), "wb") as handle:
        handle.write(data)
    assert run_dir.damage(prefix) is None  # the quick check reads the end
    assert run_dir.damage(prefix, full=True)

    def restore():
        tf.train.Checkpoint(v=variable).read(prefix).assert_existing_objects_matched()

    with pytest.raises(run_dir.CheckpointDamagedError, match="ckpt-1 is damaged"):
        run_dir.restore_checkpoint(prefix, restore, "the config")
    # An intact checkpoint that does not fit is not called damaged.
    other = tf.Variable(tf.zeros([3]))
    tf.train.Checkpoint(v=other).write(os.path.join(out, "ckpt-2"))

    def restore_other():
        tf.train.Checkpoint(v=variable).read(
            os.path.join(out, "ckpt-2")
        ).assert_existing_objects_matched()

    with pytest.raises(run_dir.UserError, match="does not fit the model built from"):
        run_dir.restore_checkpoint(os.path.join(out, "ckpt-2"), restore_other, "x")


def test_clean_temp_checkpoints(tmp_path, caplog):
    out = tmp_path
    (out / "ckpt-7_temp").mkdir()
    (out / "ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001").write_text("x")
    (out / "best" / "ckpt-5_temp").mkdir(parents=True)
    (out / "ckpt-8_temp.txt").write_text("not a temp dir")
    (out / "notes_temp").mkdir()
    with caplog.at_level(logging.WARNING):
        removed = run_dir.clean_temp_checkpoints(str(out))
    assert removed == [str(out / "ckpt-7_temp"), str(out / "best" / "ckpt-5_temp")]
    assert sorted(os.listdir(out)) == ["best", "ckpt-8_temp.txt", "notes_temp"]
    assert str(out / "ckpt-7_temp") in caplog.text


def test_writing_names_the_file_and_the_latest_checkpoint(tmp_path):
    out = str(tmp_path)
    _save(out, [4])
    with pytest.raises(run_dir.OutputWriteError) as err:
        with run_dir.writing("checkpoint ckpt-8", out):
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{out}/ckpt-8_temp/part-0; No space left on device"
            )
    message = str(err.value)
    assert message.startswith("cannot write checkpoint ckpt-8 (")
    assert "No space left on device" in message
    assert f"the latest intact checkpoint is ckpt-4 in {out}" in message
    # Errors that are not refused writes stay what they are.
    with pytest.raises(tf.errors.InvalidArgumentError):
        with run_dir.writing("checkpoint ckpt-8", out):
            raise tf.errors.InvalidArgumentError(None, None, "a bug")
