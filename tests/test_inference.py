"""Tests for seq2seq.inference.inference: the compiled Predictor."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import text_pipeline, tiny_model_params, write_toy_corpus

from seq2seq.configurable import ModeKeys
from seq2seq.data import input_pipeline
from seq2seq.inference import inference
from seq2seq.training.utils import TrainOptions


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    # Lengths 1..11 (+ SEQUENCE_END): batches of several padded widths.
    return write_toy_corpus(
        str(root / "data"), num_examples=13, vocab_size=7, max_len=11, seed=3
    )


def _predictions(corpus, beam_width, jit_compile, batch_size=5):
    tf.keras.utils.set_random_seed(11)
    params = tiny_model_params(
        corpus["vocab"],
        **{
            "source.reverse": True,
            "inference.beam_search.beam_width": beam_width,
            # Far from uniform outputs, so that no two hypotheses tie.
            "embedding.init_scale": 1.0,
        },
    )
    params["decoder.params"]["init_scale"] = 1.0
    options = TrainOptions(model_class="AttentionSeq2Seq", model_params=params)
    model = inference.build_model(options)
    pipeline = input_pipeline.make_input_pipeline_from_def(
        text_pipeline(corpus, with_targets=False),
        ModeKeys.INFER,
        shuffle=False,
        num_epochs=1,
    )
    dataset = inference.make_dataset(model, pipeline, batch_size)
    predictor = inference.Predictor(
        model, dataset.element_spec, jit_compile=jit_compile
    )
    outputs = [predictor(features) for features in dataset]
    return outputs, predictor


@pytest.mark.parametrize("beam_width", [1, 3])
def test_jit_compiled_predictor_matches_the_plain_one(corpus, beam_width):
    plain, _ = _predictions(corpus, beam_width, jit_compile=False)
    compiled, predictor = _predictions(corpus, beam_width, jit_compile=True)
    assert predictor.source_pad_multiple == 8
    assert [len(p["source_len"]) for p in plain] == [5, 5, 3]
    for want, got in zip(plain, compiled):
        width = want["source_tokens"].shape[1]
        # The padding to a multiple of 8 tokens is cut off again.
        assert got["attention_scores"].shape == want["attention_scores"].shape
        assert got["attention_scores"].shape[2] == width
        np.testing.assert_array_equal(got["predicted_ids"], want["predicted_ids"])
        np.testing.assert_array_equal(got["predicted_len"], want["predicted_len"])
        np.testing.assert_array_equal(got["predicted_tokens"], want["predicted_tokens"])
        np.testing.assert_allclose(got["log_probs"], want["log_probs"], atol=1e-4)
        np.testing.assert_allclose(
            got["attention_scores"], want["attention_scores"], atol=1e-5
        )
        if beam_width > 1:
            np.testing.assert_array_equal(
                got["beam_search_output.beam_parent_ids"],
                want["beam_search_output.beam_parent_ids"],
            )


def test_predictor_traces_once(corpus):
    outputs, predictor = _predictions(corpus, 1, jit_compile=True, batch_size=4)
    assert [len(p["source_len"]) for p in outputs] == [4, 4, 4, 1]
    # The first call, which creates the variables, traces twice; batches
    # of other sizes and widths reuse that trace.
    assert predictor._infer.experimental_get_tracing_count() == 2


@pytest.mark.parametrize("project_query", [True, False])
def test_variables_are_created_without_a_scratch_trace(
    corpus, project_query, monkeypatch
):
    """`create_variables` builds every layer of an attention model on its
    one eager step; Keras traces no layer's `call` a second time to find
    unbuilt sub-layers (which costs bin/infer.py and training starts)."""
    from keras.src import backend

    real = backend.compute_output_spec
    traced = []

    def counting(fn, *args, **kwargs):
        traced.append(getattr(fn, "__self__", fn))
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(backend, "compute_output_spec", counting)
    params = tiny_model_params(corpus["vocab"])
    params["attention.params"]["project_query"] = project_query
    params["bridge.class"] = "InitialStateBridge"
    model = inference.build_model(
        TrainOptions(model_class="AttentionSeq2Seq", model_params=params)
    )
    inference.create_variables(model)
    assert traced == []
    names = {v.path.split("/")[-2] for v in model.trainable_variables}
    assert "att_query" in names if project_query else "att_query" not in names
    assert len(model.trainable_variables) > 10
