"""bin/tools/profile.py: traces training steps of a run's model."""

import glob
import os
import subprocess
import sys

import pytest
from conftest import text_pipeline, tiny_model_params, write_toy_corpus

from seq2seq.training.utils import TrainOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bin", "tools", "profile.py")


def run_profile(*args, module=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = ["-m", "bin.tools.profile"] if module else [SCRIPT]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.fixture
def model_dir(tmp_path):
    data = write_toy_corpus(str(tmp_path / "data"), num_examples=40, seed=1)
    path = tmp_path / "model"
    TrainOptions(
        "AttentionSeq2Seq",
        tiny_model_params(data["vocab"]),
        resolved_config={"input_pipeline_train": text_pipeline(data), "batch_size": 4},
    ).dump(str(path))
    return path


def assert_one_error_line(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("profile: error: "), last
    for fragment in fragments:
        assert fragment in last, last


def test_traces_steps_and_writes_tables(model_dir, tmp_path):
    out = tmp_path / "out"
    result = run_profile(
        "--model_dir",
        str(model_dir),
        "--output_dir",
        str(out),
        "--steps",
        "2",
        "--warmup_steps",
        "1",
        "--top",
        "8",
        module=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traced 2 training steps" in result.stdout
    traces = glob.glob(str(out / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 1000
    params = (out / "params.txt").read_text().splitlines()
    assert params[0].split() == ["variable", "shape", "params"]
    assert params[-1].startswith("total")
    ops = (out / "ops.txt").read_text().splitlines()
    assert ops[0].split() == [
        "op",
        "type",
        "calls",
        "total",
        "ms",
        "mean",
        "us",
        "share",
    ]
    assert 1 <= len(ops) - 1 <= 8
    # Which op types lead two steps of this tiny model is timing noise
    # (oneDNN builds its kernels for each new shape); matmuls are among the
    # first few, not always the first 4.
    assert any("MatMul" in line for line in ops[1:]), ops
    # The model directory itself is left as it was.
    assert sorted(os.listdir(model_dir)) == ["train_options.json"]


def test_bad_model_dir_is_one_error_line(tmp_path):
    missing = tmp_path / "nowhere"
    assert_one_error_line(run_profile("--model_dir", str(missing)), str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_error_line(
        run_profile("--model_dir", str(empty)), "train_options.json not found"
    )
    assert not os.listdir(empty)


def test_bad_flags_are_one_error_line(model_dir):
    assert_one_error_line(
        run_profile("--model_dir", str(model_dir), "--steps", "0"), "--steps"
    )
    assert_one_error_line(run_profile(), "--model_dir")


def write_trace(path, planes):
    """An XSpace file of `{plane: {thread: [(start_ps, ps, name)]}}`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    for plane_name, threads in planes.items():
        plane = space.planes.add(name=plane_name)
        ids = {}
        for thread, events in threads.items():
            line = plane.lines.add(name=thread)
            for start, duration, name in events:
                if name not in ids:
                    ids[name] = len(ids) + 1
                    plane.event_metadata[ids[name]].name = name
                line.events.add(
                    metadata_id=ids[name], offset_ps=start, duration_ps=duration
                )
    path.write_bytes(space.SerializeToString())
    return str(path)


def test_op_table_and_train_profile_read_the_same_host_events(tmp_path):
    from benchmarks import train_profile
    from bin.tools.profile import op_table

    trace_dir = tmp_path / "plugins" / "profile" / "run"
    trace_dir.mkdir(parents=True)
    ms = 10**9  # picoseconds
    write_trace(
        trace_dir / "host.xplane.pb",
        {
            "/host:CPU": {
                "tf_Compute": [
                    (0, 10 * ms, "ExecutorState::Process"),
                    (1 * ms, 4 * ms, "while/attention/MatMul:MatMul"),
                    (6 * ms, 2 * ms, "projected_sequence_loss/MatMul_1:MatMul"),
                ],
                "tf_Compute_1": [(0, 3 * ms, "gradient_tape/while/add:AddV2")],
                "python": [(0, 50 * ms, "train_step:Python")],
            },
            # Device planes are not the host's CPU time.
            "/device:GPU:0": {"stream": [(0, 99 * ms, "kernel:MatMul")]},
        },
    )
    rows, total_ps = op_table(glob.glob(str(trace_dir / "*.xplane.pb")), top=2)
    assert rows == [("Python", 1, 50 * ms), ("MatMul", 2, 6 * ms)]
    assert total_ps == 59 * ms
    # train_profile: self time of the compute threads only, per step.
    parts, ops = train_profile.summarize(str(tmp_path), steps=2)
    assert parts == {
        "executor and thread pool": 2.0,
        "decoder loop, forward": 2.0,
        "output layer and loss": 1.0,
        "decoder loop, backward": 1.5,
    }
    assert ops["while/attention/MatMul:MatMul"] == 2.0
