"""`bin/train.py --schedule run_std_server`: a `tf.distribute.Server` from
`TF_CONFIG` on the loopback interface, stopped by SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from seq2seq.errors import ConfigError
from seq2seq.training import distribution

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers
# with a SETTINGS frame of its own (frame type 4).
_HTTP2_PREFACE = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(tf_config):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if tf_config is None:
        env.pop("TF_CONFIG", None)
    else:
        env["TF_CONFIG"] = tf_config
    return subprocess.Popen(
        [sys.executable, "-m", "bin.train", "--schedule", "run_std_server"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _grpc_answer(port, deadline):
    """The first frame header a server on `port` sends back to an HTTP/2
    preface, polling until `deadline`."""
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(_HTTP2_PREFACE)
                header = b""
                while len(header) < 9:
                    chunk = conn.recv(9 - len(header))
                    if not chunk:
                        break
                    header += chunk
                if len(header) == 9:
                    return header
        except OSError:
            pass
        time.sleep(0.3)
    return None


def _collect_stderr(process):
    """A thread that reads `process`'s stderr into a list of lines, and an
    event set once a line announces the server."""
    lines, serving = [], threading.Event()

    def read():
        for line in process.stderr:
            lines.append(line)
            if line.startswith("Serving "):
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader, lines, serving


def test_serves_grpc_on_the_task_address_until_sigterm():
    port = _free_port()
    config = {
        "cluster": {"worker": [f"localhost:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    server = _start(json.dumps(config))
    reader, lines, serving = _collect_stderr(server)
    try:
        # The port may answer a moment before the line is printed; a signal
        # sent in between would be right to cut the line off.
        assert serving.wait(90), "".join(lines)[-2000:]
        header = _grpc_answer(port, time.time() + 90)
        assert server.poll() is None, "".join(lines)[-2000:]
        assert header is not None and header[3] == 4, header  # SETTINGS
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()  # Never leave a server behind.
            server.wait()
            raise
        finally:
            reader.join(timeout=10)
    stderr = "".join(lines)
    assert server.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert f"Serving grpc://localhost:{port}" in stderr
    # TensorFlow's C++ threads may still log a line after ours.
    assert "interrupted: stopped by SIGTERM" in stderr.strip().splitlines()[-3:]
    assert "Traceback" not in stderr


def _assert_one_line_error(tf_config, *fragments):
    process = _start(tf_config)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in stderr, stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, last


def test_bad_tf_config_is_one_line():
    _assert_one_line_error(
        json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "ps"}}),
        "task type 'ps' is not a job of the cluster (worker)",
    )


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "needs TF_CONFIG with 'cluster' and 'task'"),
        ({"cluster": {"worker": "localhost:1"}, "task": {"type": "worker"}}, "list"),
        (
            {
                "cluster": {"worker": ["localhost:1"]},
                "task": {"type": "worker", "index": 1},
            },
            "task index 1 is out of range: job 'worker' has 1 task(s)",
        ),
    ],
)
def test_tf_config_is_checked_before_serving(config, message):
    with pytest.raises(ConfigError) as raised:
        distribution.start_std_server(config)
    assert message in str(raised.value)
