"""`length_sorting`: windows sorted by source length, predictions put back
in input order."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.inference import length_sorting


def _examples(lengths):
    """Examples whose tokens name their input position: `w<i>` repeated."""
    tokens = [[f"w{i}"] * n for i, n in enumerate(lengths)]
    return tf.data.Dataset.from_generator(
        lambda: ({"source_tokens": t, "source_len": len(t)} for t in tokens),
        output_signature={
            "source_tokens": tf.TensorSpec([None], tf.string),
            "source_len": tf.TensorSpec([], tf.int32),
        },
    )


def test_each_window_is_sorted_stably_and_keeps_exact_lengths():
    lengths = [3, 1, 2, 1, 5, 4, 2]
    sorted_examples = list(
        length_sorting.sort_windows(_examples(lengths), window=4).as_numpy_iterator()
    )
    positions = [int(e[length_sorting.INDEX_KEY]) for e in sorted_examples]
    # Window [3, 1, 2, 1] -> positions 1, 3 (both length 1, input order), 2, 0;
    # window [5, 4, 2] -> 6, 5, 4.
    assert positions == [1, 3, 2, 0, 6, 5, 4]
    for example, position in zip(sorted_examples, positions):
        assert int(example["source_len"]) == lengths[position]
        assert list(example["source_tokens"]) == [f"w{position}".encode()] * (
            lengths[position]
        )


def _decoded(positions, width):
    """A fake decoded batch: rows padded to `width` steps, values naming the
    row's input position."""
    positions = np.asarray(positions)
    ids = np.zeros([len(positions), width], np.int32)
    tokens = np.full([len(positions), width], b"", dtype=object)
    for row, position in enumerate(positions):
        ids[row, : position + 1] = position + 1
        tokens[row, : position + 1] = f"t{position}".encode()
    return {
        "predicted_ids": ids,
        "predicted_tokens": tokens,
        "predicted_len": positions + 1,
        "scores": np.float32(0.5) * np.ones([len(positions), width, 2], np.float32),
    }


def test_input_order_returns_full_batches_in_input_order():
    order = length_sorting.InputOrder(batch_size=3)
    # Decoded as [4, 0], [2, 1], [3, 5]: widths 5, 3, 6.
    assert order.add([4, 0], _decoded([4, 0], 5)) == []
    first = order.add([2, 1], _decoded([2, 1], 3))
    assert len(first) == 1
    np.testing.assert_array_equal(first[0]["predicted_len"], [1, 2, 3])
    # Padded to the widest row (position 0 came with 5 steps) with 0 / b"".
    np.testing.assert_array_equal(
        first[0]["predicted_ids"],
        [[1, 0, 0, 0, 0], [2, 2, 0, 0, 0], [3, 3, 3, 0, 0]],
    )
    assert list(first[0]["predicted_tokens"][2]) == [b"t2"] * 3 + [b""] * 2
    second = order.add([3, 5], _decoded([3, 5], 6))
    assert len(second) == 1
    np.testing.assert_array_equal(second[0]["predicted_len"], [4, 5, 6])
    assert second[0]["predicted_ids"].shape == (3, 6)
    assert second[0]["scores"].shape == (3, 6, 2)
    np.testing.assert_array_equal(second[0]["predicted_ids"][1], [5] * 5 + [0])
    assert order.flush() == []


def test_flush_returns_the_short_last_batch_and_refuses_a_gap():
    order = length_sorting.InputOrder(batch_size=4)
    assert order.add([1, 0], _decoded([1, 0], 2)) == []
    (last,) = order.flush()
    np.testing.assert_array_equal(last["predicted_len"], [1, 2])

    order = length_sorting.InputOrder(batch_size=4)
    order.add([0, 2], _decoded([0, 2], 3))
    with pytest.raises(ValueError, match="input position 1 was never decoded"):
        order.flush()


def test_stack_rows_pads_text_and_numbers():
    rows = [
        {"a": np.array(["x", "y"], dtype=object), "n": np.array([[1.0]])},
        {"a": np.array(["z"], dtype=object), "n": np.array([[2.0, 3.0], [4.0, 5.0]])},
    ]
    batch = length_sorting.stack_rows(rows)
    assert batch["a"].tolist() == [["x", "y"], ["z", ""]]
    np.testing.assert_array_equal(
        batch["n"], [[[1.0, 0.0], [0.0, 0.0]], [[2.0, 3.0], [4.0, 5.0]]]
    )


def test_sorted_inference_batches_need_no_autograph_conversion(tmp_path, monkeypatch):
    """AutoGraph's conversion of the functions given to tf.data only costs
    start-up (they hold no Python control flow on tensors)."""
    from conftest import text_pipeline, tiny_model_params, write_toy_corpus
    from tensorflow.python.autograph.impl import api

    from seq2seq.configurable import ModeKeys
    from seq2seq.data.input_pipeline import make_input_pipeline_from_def
    from seq2seq.inference import inference
    from seq2seq.models import AttentionSeq2Seq

    converted = []
    convert = api._convert_actual

    def spy(entity, program_ctx):
        converted.append(getattr(entity, "__name__", entity))
        return convert(entity, program_ctx)

    monkeypatch.setattr(api, "_convert_actual", spy)

    def plus_one(x):
        return x + 1

    tf.data.Dataset.range(2).map(plus_one)
    assert converted == ["plus_one"]  # the spy sees a conversion
    converted.clear()

    data = write_toy_corpus(str(tmp_path), num_examples=10, seed=1)
    model = AttentionSeq2Seq(tiny_model_params(data["vocab"]), ModeKeys.INFER)
    pipeline = make_input_pipeline_from_def(
        text_pipeline(data, with_targets=False), ModeKeys.INFER
    )
    dataset = inference.make_sorted_dataset(model, pipeline, 4, sort_window=8)
    features, positions = next(iter(dataset))
    lengths = features["source_len"].numpy().tolist()
    assert lengths == sorted(lengths) and len(set(positions.numpy())) == 4
    assert converted == []
