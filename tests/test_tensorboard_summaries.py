"""TensorBoard beyond scalars: gradient histograms, attention images, sample
translations as text, and chrF beside BLEU."""

import collections
import math
import os

import pytest
import sacrebleu
import tensorflow as tf
from test_train_cli import base_args, run_train
from test_trainer import make_trainer

from seq2seq.metrics import ChrfMetricSpec, chrf
from seq2seq.training.eval_summaries import markdown_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_events(directory):
    """`{tag: {step: summary value}}` of the event files in `directory`."""
    values = collections.defaultdict(dict)
    for name in os.listdir(directory):
        if name.startswith("events"):
            path = os.path.join(directory, name)
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    values[value.tag][event.step] = value
    return values


def plugin(value):
    return value.metadata.plugin_data.plugin_name


# ------------------------------------------------------------------- chrF

HYPOTHESES = ["the cat sat on the mat", "a dog barks", "hello world"]
REFERENCES = ["the cat is on the mat", "the dog barked", "hello there world"]


@pytest.mark.parametrize("word_order, name", [(0, "chrf"), (2, "chrf++")])
def test_chrf_spec_equals_sacrebleu_corpus_chrf(word_order, name):
    spec = ChrfMetricSpec({"word_order": word_order})
    assert spec.name == name
    spec.update(
        [h.split() for h in HYPOTHESES[:2]], [r.split() for r in REFERENCES[:2]]
    )
    spec.update(
        [["SEQUENCE_START"] + HYPOTHESES[2].split() + ["SEQUENCE_END", "x"]],
        [REFERENCES[2].split() + ["SEQUENCE_END"]],
    )
    expected = sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES], word_order=word_order)
    assert spec.result() == pytest.approx(expected.score, abs=1e-9)
    assert 0.0 < spec.result() < 100.0
    assert chrf.corpus_chrf(HYPOTHESES, HYPOTHESES) == pytest.approx(100.0)
    spec.reset()
    assert spec.result() == 0.0


def test_markdown_table_escapes_cells():
    table = markdown_table([("a | b", "", "c")])
    assert table.splitlines() == [
        "| source | reference | prediction |",
        "|---|---|---|",
        "| a \\| b | (empty) | c |",
    ]


# ------------------------------------------------------------- training


def _analysis(path):
    """`{variable: parameter count}` from PrintModelAnalysisHook's table."""
    lines = open(path, encoding="utf-8").read().splitlines()[1:-1]
    return {line.split()[0]: int(line.split()[-1].replace(",", "")) for line in lines}


def test_cli_writes_gradients_images_text_and_chrf(toy_data, tmp_path):
    out = tmp_path / "model"
    tokens = open(toy_data["vocab"], encoding="utf-8").read().split()
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(
        "".join(f"{t} " + " ".join(["0.5"] * 16) + "\n" for t in tokens[:2])
    )
    args = base_args(toy_data, out, **{"embedding.init_file": str(vectors)})
    result = run_train(
        *args,
        "--train_steps=4",
        "--log_every_n_steps=2",
        "--eval_every_n_steps=4",
        "--save_checkpoints_steps=4",
        "--gradient_summaries",
        "--eval_summary_examples=3",
        "--metrics=[{class: ChrfMetricSpec}]",
        "--hooks=[{class: TrainSampleHook, params: {every_n_steps: 4}}, "
        "{class: PrintModelAnalysisHook}]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    total = len(tokens) + 3
    for side in ("source", "target"):
        line = f"embedding: 2 of {total} {side} tokens found in {vectors}; "
        assert line + f"{total - 2} initialised randomly" in result.stderr
    train = read_events(str(out))
    sizes = _analysis(out / "model_analysis.txt")
    # Per-variable gradient histograms and norms, at summary steps only
    # (1, 2 and 4 with log_every_n_steps=2).
    for name in sizes:
        assert sorted(train[f"gradients/{name}"]) == [1, 2, 4], name
        assert sorted(train[f"gradient_norm/{name}"]) == [1, 2, 4], name
    for at in (1, 2, 4):
        norms = [
            float(tf.make_ndarray(train[f"gradient_norm/{n}"][at].tensor))
            for n in sizes
        ]
        assert all(math.isfinite(n) and n >= 0 for n in norms)
        clipped = float(tf.make_ndarray(train["global_norm/clipped"][at].tensor))
        assert math.sqrt(sum(n * n for n in norms)) == pytest.approx(clipped, rel=1e-4)
    # A dense gradient's histogram counts every element of its variable
    # (embedding gradients count one row per token of the batch instead).
    for name, size in sizes.items():
        value = train[f"gradients/{name}"][4]
        buckets = tf.make_ndarray(value.tensor)
        assert plugin(value) == "histograms" and buckets.shape[1] == 3
        if "embedding" not in name:
            assert buckets[:, 2].sum() == pytest.approx(size), name
    # TrainSampleHook's samples as a text table of the batch.
    text = tf.make_ndarray(train["samples"][4].tensor).item().decode("utf-8")
    assert plugin(train["samples"][4]) == "text"
    assert text.splitlines()[0] == "| source | target | prediction |"
    assert len(text.splitlines()) == 2 + 8  # header, rule, one row per example

    evaluation = read_events(str(out / "eval"))
    assert "chrf/greedy" in evaluation
    chrf_value = float(tf.make_ndarray(evaluation["chrf/greedy"][4].tensor))
    assert 0.0 <= chrf_value <= 100.0
    # The first three dev sentences, as a table and as attention heat maps.
    text = tf.make_ndarray(evaluation["samples"][4].tensor).item().decode("utf-8")
    rows = text.splitlines()[2:]
    with open(toy_data["dev"]["sources"], encoding="utf-8") as lines:
        first = [next(lines).strip() for _ in range(3)]
    with open(toy_data["dev"]["targets"], encoding="utf-8") as lines:
        targets = [next(lines).strip() for _ in range(3)]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == first
    assert [row.split(" | ")[1] for row in rows] == targets
    for index in range(3):
        value = evaluation[f"attention/example_{index}"][4]
        assert plugin(value) == "images"
        width, height, png = value.tensor.string_val
        assert int(width) > 50 and int(height) > 50 and png.startswith(PNG_MAGIC)
        image = tf.image.decode_png(png)
        assert image.shape[:2] == (int(height), int(width))
    assert "attention/example_3" not in evaluation


def test_nothing_new_is_written_or_traced_by_default(toy_data, tmp_path):
    # (test_trainer checks that the eval run holds only the metrics' tags.)
    out = str(tmp_path / "model")
    trainer = make_trainer(
        toy_data, out, train_steps=2, log_every_n_steps=1, with_dev=False
    )
    trainer.train()
    step = trainer._train_step.step
    traces = [
        f.experimental_get_tracing_count() for f in (step.update_full, step.update)
    ]
    assert traces[0] == 1 and traces[1] <= 1
    assert step._update_with_gradients is None
    tags = set(read_events(out))
    assert "global_norm/clipped" in tags
    assert not [t for t in tags if t.startswith(("gradient", "samples"))]
