"""bin/tools/average_checkpoints.py and checkpointing.average_checkpoints."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import text_pipeline
from tensorflow.core.protobuf import trackable_object_graph_pb2
from test_infer_cli import read_lines

from bin.tools import average_checkpoints
from seq2seq.configurable import ModeKeys
from seq2seq.data.input_pipeline import make_input_pipeline_from_def
from seq2seq.inference import inference
from seq2seq.tasks import DecodeText


def model_values(prefix):
    """`{path: array}` of the model's variables in a checkpoint, by their
    attribute path under `model/` (e.g. `model/encoder/.../kernel`).

    A training checkpoint stores most model variables under the optimizer's
    path (`optimizer/_trainable_variables/3`), the first it finds; the
    object graph saved with it gives every path of every variable.
    """
    reader = tf.train.load_checkpoint(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    values = {}
    pending = [
        (child.node_id, child.local_name)
        for child in graph.nodes[0].children
        if child.local_name == "model"
    ]
    while pending:
        node_id, path = pending.pop()
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                values[path] = reader.get_tensor(attribute.checkpoint_key)
        for child in node.children:
            pending.append((child.node_id, f"{path}/{child.local_name}"))
    return values


def snapshot(directory):
    """Every file under `directory` with its size and modification time."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def run(toy_run_with_checkpoints):
    return toy_run_with_checkpoints


def test_averaged_values_are_the_mean_and_infer_loads_them(run, tmp_path):
    model_dir = run["model_dir"]
    output_dir = str(tmp_path / "avg3")
    assert (
        average_checkpoints.main(
            ["--model_dir", model_dir, "--num_last", "3", "--output_dir", output_dir]
        )
        == 0
    )
    inputs = [
        model_values(os.path.join(model_dir, f"ckpt-{step}")) for step in (10, 20, 30)
    ]
    written = tf.train.latest_checkpoint(output_dir)
    assert os.path.basename(written) == "ckpt-30"
    averaged = model_values(written)
    assert sorted(averaged) == sorted(inputs[0]) and len(averaged) > 5
    reader = tf.train.load_checkpoint(written)
    assert not any(
        k.startswith("optimizer/") for k in reader.get_variable_to_shape_map()
    )
    moved = 0
    for key, value in averaged.items():
        expected = np.mean([values[key] for values in inputs], axis=0)
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7, err_msg=key)
        moved += not np.allclose(inputs[0][key], inputs[2][key])
    assert moved > 5  # Training changed the weights: the mean is no copy.

    # Loaded as bin/infer.py loads a --model_dir.
    options = inference.load_train_options(output_dir)
    checkpoint = inference.resolve_checkpoint(output_dir)
    model = inference.build_model(options)
    decoded = str(tmp_path / "decoded.txt")
    task = DecodeText({"output": decoded})
    pipeline = make_input_pipeline_from_def(
        text_pipeline(run["dev"], with_targets=False),
        ModeKeys.INFER,
        shuffle=False,
        num_epochs=1,
    )
    count = inference.run_inference(
        model, pipeline, [task], checkpoint_path=checkpoint, progress=False
    )
    assert count == len(read_lines(run["dev"]["sources"])) == len(read_lines(decoded))

    last_two = str(tmp_path / "avg2")
    assert (
        average_checkpoints.main(
            ["--model_dir", model_dir, "--num_last", "2", "--output_dir", last_two]
        )
        == 0
    )
    key = sorted(averaged)[0]
    np.testing.assert_allclose(
        model_values(tf.train.latest_checkpoint(last_two))[key],
        (inputs[1][key] + inputs[2][key]) / 2,
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize(
    "output, num_last, message",
    [
        ("{run}", 2, "is or lies inside --model_dir"),
        ("{run}/avg", 2, "is or lies inside --model_dir"),
        ("{root}", 2, "contains --model_dir"),
        ("{root}/fresh", 9, "fewer than --num_last 9"),
    ],
)
def test_refusals_touch_nothing(run, output, num_last, message, capsys):
    model_dir = run["model_dir"]
    output = output.format(run=model_dir, root=run["root"])
    before = snapshot(str(run["root"]))
    code = average_checkpoints.main(
        ["--model_dir", model_dir, "--num_last", str(num_last), "--output_dir", output]
    )
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("average_checkpoints: error: ") and message in lines[-1]
    assert snapshot(str(run["root"])) == before
