"""Subword text in, plain text out: learn_subwords.py, apply_subwords.py,
pipelines with SentencePiece tokenizers, detokenized decoding and BLEU,
the self-contained SavedModel and the docs/nmt.md walk-through."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import sentencepiece as spm
import tensorflow as tf

from benchmarks.subword_bleu import SYLLABLES, write_reverse_corpus
from seq2seq.configurable import ModeKeys
from seq2seq.data import sentencepiece_model, tokenizers
from seq2seq.data.input_pipeline import ParallelTextInputPipeline
from seq2seq.data.vocab import read_vocab
from seq2seq.errors import DataError
from seq2seq.metrics.metric_specs import BleuMetricSpec, scoring_detokenized
from seq2seq.tasks.decode_text import DecodeText

ROOT = Path(__file__).resolve().parents[1]
LEARN = ROOT / "bin" / "tools" / "learn_subwords.py"
APPLY = ROOT / "bin" / "tools" / "apply_subwords.py"


def run_tool(tool, *args, stdin=None):
    result = subprocess.run(
        [sys.executable, str(tool), *map(str, args)],
        input=stdin.encode("utf-8") if stdin is not None else None,
        capture_output=True,
        timeout=120,
    )
    return result, result.stdout.decode("utf-8"), result.stderr.decode("utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The toy corpus and a 60-piece BPE model learned on both sides."""
    directory = write_reverse_corpus(str(tmp_path_factory.mktemp("raw")))
    prefix = os.path.join(directory, "subwords")
    result, _, err = run_tool(
        LEARN,
        "--input",
        os.path.join(directory, "train.src"),
        os.path.join(directory, "train.tgt"),
        "--model_prefix",
        prefix,
        "--vocab_size",
        60,
        "--model_type",
        "bpe",
    )
    assert result.returncode == 0, err
    return {"dir": directory, "model": prefix + ".model", "vocab": prefix + ".vocab"}


def test_learn_subwords_writes_model_and_our_vocabulary(corpus):
    processor = spm.SentencePieceProcessor(model_file=corpus["model"])
    assert processor.get_piece_size() == 60
    tokens, counts = read_vocab(corpus["vocab"])  # Our format, accepted.
    assert counts == [-1.0] * len(tokens)
    # SentencePiece's <unk>, <s>, </s> are left out: UNK, SEQUENCE_START and
    # SEQUENCE_END take their places, so the model still has 60 ids.
    assert processor.id_to_piece([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    assert tokens == [processor.id_to_piece(i) for i in range(3, 60)]
    assert len(tokens) + 3 == 60
    # Character coverage 1.0: every letter of the text is a piece.
    letters = set("".join(SYLLABLES))
    assert letters <= {piece.lstrip("▁") for piece in tokens if len(piece) <= 2}


def test_learn_subwords_bad_input_is_one_line(corpus, tmp_path):
    result, _, err = run_tool(
        LEARN, "--input", tmp_path / "none.txt", "--model_prefix", tmp_path / "m"
    )
    assert result.returncode == 2
    assert err.count("\n") == 1 and "learn_subwords: error:" in err
    # More pieces than a tiny text allows: SentencePiece's reason, one line.
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("ka lo\n")
    result, _, err = run_tool(
        LEARN,
        "--input",
        tiny,
        "--model_prefix",
        tmp_path / "m",
        "--vocab_size",
        500,
    )
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and "Vocabulary size" in err
    assert not (tmp_path / "m.model").exists()


def test_apply_subwords_round_trip(corpus):
    source = os.path.join(corpus["dir"], "test.src")
    result, pieces, err = run_tool(APPLY, "--model", corpus["model"], source)
    assert result.returncode == 0, err
    lines = Path(source).read_text().splitlines()
    piece_lines = pieces.splitlines()
    assert len(piece_lines) == len(lines)
    processor = spm.SentencePieceProcessor(model_file=corpus["model"])
    assert piece_lines[0].split() == processor.encode(lines[0], out_type=str)
    # Subwords matter: the 60 pieces cannot hold every word whole.
    assert sum(len(p.split()) for p in piece_lines) > sum(len(s.split()) for s in lines)
    result, text, err = run_tool(
        APPLY, "--model", corpus["model"], "--decode", stdin=pieces
    )
    assert result.returncode == 0, err
    assert text.splitlines() == lines


def _pipeline(corpus, split="dev", **params):
    params = {
        "source_files": [os.path.join(corpus["dir"], f"{split}.src")],
        "target_files": [os.path.join(corpus["dir"], f"{split}.tgt")],
        "source_tokenizer": corpus["model"],
        "target_tokenizer": corpus["model"],
        "shuffle": False,
        **params,
    }
    return ParallelTextInputPipeline(params, ModeKeys.EVAL)


def _strings(tensor):
    return [t.decode("utf-8") for t in tensor.numpy()]


def test_pipeline_tokenizes_raw_text_in_the_graph(corpus, tmp_path):
    processor = spm.SentencePieceProcessor(model_file=corpus["model"])
    lines = Path(corpus["dir"], "dev.src").read_text().splitlines()
    targets = Path(corpus["dir"], "dev.tgt").read_text().splitlines()
    pipeline = _pipeline(corpus)
    pipeline.check()
    # As training does between checking its input and reading it.
    tf.random.set_seed(1)
    examples = list(pipeline.make_dataset().take(3))
    for example, line, target in zip(examples, lines, targets):
        pieces = processor.encode(line, out_type=str)
        assert _strings(example["source_tokens"]) == pieces + ["SEQUENCE_END"]
        assert int(example["source_len"]) == len(pieces) + 1
        target_pieces = processor.encode(target, out_type=str)
        assert _strings(example["target_tokens"]) == (
            ["SEQUENCE_START"] + target_pieces + ["SEQUENCE_END"]
        )
    # The one-record parser gives what the vectorized one gives.
    single = pipeline.parse_record(tf.constant(lines[0]), tf.constant(targets[0]))
    assert _strings(single["source_tokens"]) == _strings(examples[0]["source_tokens"])
    # Length limits cut the pieces, special tokens included.
    cut = next(iter(_pipeline(corpus).make_dataset(max_source_len=2)))
    assert (
        _strings(cut["source_tokens"]) == processor.encode(lines[0], out_type=str)[:2]
    )
    # Invalid UTF-8 and a Windows line ending are cleaned as for words.
    raw = tmp_path / "raw.src"
    raw.write_bytes(b"kalo\xff mi\r\n")
    weird = ParallelTextInputPipeline(
        {"source_files": [str(raw)], "source_tokenizer": corpus["model"]},
        ModeKeys.INFER,
    )
    tokens = _strings(next(iter(weird.make_dataset()))["source_tokens"])
    assert tokens == processor.encode("kalo\ufffd mi", out_type=str) + ["SEQUENCE_END"]


def test_tokenizer_and_vocabulary_must_agree(corpus, tmp_path):
    tokenizers.check_vocabulary(corpus["model"], corpus["vocab"], "source")
    wrong = tmp_path / "words.vocab"
    wrong.write_text("kalo\nmine\n")
    with pytest.raises(DataError) as err:
        tokenizers.check_vocabularies(
            [corpus["model"], ""], {"vocab_source": str(wrong)}
        )
    message = str(err.value)
    assert "\n" not in message
    assert corpus["model"] in message and str(wrong) in message
    missing = tmp_path / "missing.model"
    with pytest.raises(DataError, match="missing.model"):
        _pipeline(corpus, source_tokenizer=str(missing)).check()
    not_a_model = tmp_path / "text.model"
    not_a_model.write_text("not a model\n")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        _pipeline(corpus, target_tokenizer=str(not_a_model)).check()


def test_train_cli_refuses_a_vocabulary_of_another_model(corpus, tmp_path):
    words = tmp_path / "words.vocab"
    words.write_text("kalo\nmine\n")
    output_dir = tmp_path / "run"
    pipeline = {
        "class": "ParallelTextInputPipeline",
        "params": {
            "source_files": [os.path.join(corpus["dir"], "train.src")],
            "target_files": [os.path.join(corpus["dir"], "train.tgt")],
            "source_tokenizer": corpus["model"],
            "target_tokenizer": corpus["model"],
        },
    }
    model_params = {"vocab_source": corpus["vocab"], "vocab_target": str(words)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bin.train",
            "--model=AttentionSeq2Seq",
            f"--model_params={json.dumps(model_params)}",
            f"--input_pipeline_train={json.dumps(pipeline)}",
            "--train_steps=1",
            f"--output_dir={output_dir}",
        ],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT)),
        capture_output=True,
        timeout=300,
    )
    errors = [
        line
        for line in result.stderr.decode("utf-8").splitlines()
        if line.startswith("error: ")
    ]
    assert result.returncode == 2, result.stderr.decode("utf-8")[-2000:]
    assert len(errors) == 1
    assert "target tokenizer" in errors[0]
    assert corpus["model"] in errors[0] and str(words) in errors[0]
    assert not output_dir.exists()


def test_bleu_and_decode_text_use_detokenized_text(corpus, capsys):
    processor = spm.SentencePieceProcessor(model_file=corpus["model"])
    references = ["kalomi ne supo", "tari de"]
    hypotheses = ["kalomi ne supo", "tari"]

    def pieces(text, start=False):
        body = processor.encode(text, out_type=str)
        return (["SEQUENCE_START"] if start else []) + body + ["SEQUENCE_END", ""]

    metric = scoring_detokenized(
        BleuMetricSpec({}), corpus["model"], {"class": "BleuMetricSpec"}
    )
    assert metric.params["tokenize"] == "13a"
    metric.update(
        [pieces(h) for h in hypotheses], [pieces(r, start=True) for r in references]
    )
    expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="13a").score
    assert metric.result() == pytest.approx(expected)
    # A tokenize the user chose is kept.
    kept = scoring_detokenized(
        BleuMetricSpec({"tokenize": "none"}),
        corpus["model"],
        {"class": "BleuMetricSpec", "params": {"tokenize": "none"}},
    )
    assert kept.params["tokenize"] == "none"

    task = DecodeText({})
    task.set_target_tokenizer(corpus["model"])
    example = {
        "predicted_tokens": processor.encode("kalomi tari", out_type=str)
        + ["UNK", "SEQUENCE_END", "ka"]
    }
    assert task.decode_example(example) == "kalomi tari ⁇"
    assert sentencepiece_model.detokenize(processor, ["▁ka", "lo"]) == "kalo"


def test_subword_tokenizer_ops(corpus):
    tokenizer = tokenizers.SubwordTokenizer(corpus["model"])
    ragged = tokenizer.tokenize(tf.constant(["kalo mi", ""]))
    assert ragged.row_lengths().numpy()[1] == 0
    dense = ragged.to_tensor(default_value="")
    text = tokenizer.detokenize(dense).numpy()
    assert [t.decode("utf-8") for t in text] == ["kalo mi", ""]
    assert np.array_equal(tokenizer.detokenize(ragged).numpy(), text)


def _doc_commands():
    """The bash block of docs/nmt.md's "Real data with subwords" section."""
    doc = (ROOT / "docs" / "nmt.md").read_text(encoding="utf-8")
    section = doc.split("## 6. Real data with subwords", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)


@pytest.mark.slow
def test_docs_walkthrough_raw_text_to_served_model(tmp_path):
    """Runs every command of the docs/nmt.md subword section, as written
    except for the data paths and sizes, on a small local corpus."""
    raw = write_reverse_corpus(str(tmp_path / "raw"))
    script = _doc_commands()
    sentence = Path(raw, "test.src").read_text().splitlines()[0]
    replacements = {
        "/tmp/": f"{tmp_path}/",
        "export RAW=$HOME/nmt_data/raw": f"export RAW={raw}",
        "--vocab_size 8000": "--vocab_size 60",
        "--train_steps 3000": "--train_steps 40",
        "--eval_every_n_steps 1000": "--eval_every_n_steps 40",
        "A raw sentence, as a user types it.": sentence,
        # The SavedModel must not need the SentencePiece model file.
        "# 6. Serve it": "mv $RAW/subwords.model $RAW/moved.model\n# 6. Serve it",
        # The server must not load this package: prove it.
        'print(outputs["translation"]': "import sys\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('seq2seq', 'bin')]\n"
        'print("served:", outputs["translation"]',
    }
    for old, new in replacements.items():
        assert old in script, old
        script = script.replace(old, new)
    script = "set -euo pipefail\n" + script.replace("python ", f"{sys.executable} ")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
    )
    out, err = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")
    assert result.returncode == 0, err[-3000:]

    # Decoding wrote one plain-text line per test sentence.
    predictions = Path(tmp_path, "subword_predictions.txt").read_text().splitlines()
    assert len(predictions) == 30
    assert not any("▁" in line or "SEQUENCE_END" in line for line in predictions)
    # sacrebleu's JSON report, with the 13a tokenizer.
    report = json.loads(out[out.index("{") : out.index("}") + 1])
    assert "tok:13a" in report["signature"] and report["score"] >= 0
    # Evaluation during training scored detokenized text with 13a.
    assert "Detokenized dev text: BLEU by sacrebleu, tokenize=13a" in err
    assert re.search(r"Eval at step 40 .*bleu/greedy", err)
    # The server, with TensorFlow alone, translates the raw sentence into
    # the plain text bin/infer.py wrote for it.
    served = [line for line in out.splitlines() if line.startswith("served: ")]
    assert served == [f"served: {predictions[0]}"]
    info = json.loads(
        Path(
            tmp_path, "nmt_subwords_export", "1", "assets.extra", "export_info.json"
        ).read_text()
    )
    assert info["source_tokenizer"].endswith("subwords.model")
