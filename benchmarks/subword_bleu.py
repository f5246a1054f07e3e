"""BLEU of a subword model beside a word-level one on the same small corpus.

The corpus is the toy reverse task on raw text whose words are made of
letters: every word is two or three syllables ("kalomi"), and the target is
the source's words in reverse order. The test set also uses words that never
occur in training (built from the same syllables), which a word vocabulary
can only map to `UNK` and subword pieces can still spell.

Both models are `example_configs/nmt_small.yml` trained with the same
settings through the command lines of docs/nmt.md: the word-level one on a
vocabulary from `generate_vocab.py` with the pipelines' space delimiter, the
subword one on raw text with a SentencePiece model from `learn_subwords.py`
as both tokenizers. Each decodes the test set into plain text (greedy), and
sacrebleu scores it against the raw references with its 13a tokenization.

    python -m benchmarks.subword_bleu --train_steps 1500
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "gu"]


def write_reverse_corpus(
    directory,
    sizes=(("train", 300), ("dev", 30), ("test", 30)),
    num_words=30,
    unseen_words=0,
    seed=7,
):
    """Writes raw parallel text `{split}.src` / `{split}.tgt` in `directory`.

    Args:
      directory: Where to write (created).
      sizes: `(split, number of sentence pairs)`, in order.
      num_words: Words of 2-3 syllables used in every split.
      unseen_words: Further words used only in the `test` split.
      seed: Random seed; the same arguments give the same files.

    Returns:
      `directory`.
    """
    rng = random.Random(seed)
    words = set()
    while len(words) < num_words + unseen_words:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
    words = sorted(words)
    rng.shuffle(words)
    seen, unseen = words[:num_words], words[num_words:]
    os.makedirs(directory, exist_ok=True)
    for split, count in sizes:
        pool = seen + unseen if split == "test" and unseen else seen
        sources, targets = [], []
        for _ in range(count):
            sentence = [rng.choice(pool) for _ in range(rng.randint(2, 5))]
            sources.append(" ".join(sentence))
            targets.append(" ".join(reversed(sentence)))
        for suffix, lines in (("src", sources), ("tgt", targets)):
            path = os.path.join(directory, f"{split}.{suffix}")
            with open(path, "w", encoding="utf-8") as out:
                out.writelines(line + "\n" for line in lines)
    return directory


def _run(args, stdout=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=stdout
    )


def _pipeline(raw, split, tokenizer, with_targets=True):
    params = {"source_files": [f"{raw}/{split}.src"]}
    if with_targets:
        params["target_files"] = [f"{raw}/{split}.tgt"]
    if tokenizer:
        params.update(source_tokenizer=tokenizer, target_tokenizer=tokenizer)
    return json.dumps({"class": "ParallelTextInputPipeline", "params": params})


def train_and_score(raw, work, name, vocab, tokenizer, args):
    """Trains one model, decodes the test set; returns its BLEU (13a)."""
    import sacrebleu

    model_dir = os.path.join(work, name)
    model_params = {
        "vocab_source": vocab,
        "vocab_target": vocab,
        "optimizer.learning_rate": args.learning_rate,
    }
    _run(
        [
            "-m",
            "bin.train",
            "--config_paths=example_configs/nmt_small.yml",
            "--model_params",
            json.dumps(model_params),
            "--input_pipeline_train",
            _pipeline(raw, "train", tokenizer),
            "--batch_size",
            "32",
            "--train_steps",
            str(args.train_steps),
            "--tf_random_seed",
            "1",
            "--output_dir",
            model_dir,
        ]
    )
    predictions = os.path.join(work, f"{name}.txt")
    with open(predictions, "w", encoding="utf-8") as out:
        _run(
            [
                "-m",
                "bin.infer",
                "--tasks",
                "- class: DecodeText",
                "--model_dir",
                model_dir,
                "--input_pipeline",
                _pipeline(raw, "test", "", with_targets=False),
                "--progress=false",
            ],
            stdout=out,
        )
    with open(predictions, encoding="utf-8") as handle:
        hypotheses = handle.read().splitlines()
    with open(os.path.join(raw, "test.tgt"), encoding="utf-8") as handle:
        references = handle.read().splitlines()
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="13a").score


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=1500)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--train_size", type=int, default=3000)
    parser.add_argument("--test_size", type=int, default=200)
    parser.add_argument("--unseen_words", type=int, default=10)
    parser.add_argument("--vocab_size", type=int, default=60)
    parser.add_argument("--work_dir", default=None)
    args = parser.parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="subword_bleu_")
    raw = write_reverse_corpus(
        os.path.join(work, "raw"),
        sizes=(("train", args.train_size), ("test", args.test_size)),
        unseen_words=args.unseen_words,
    )
    prefix = os.path.join(raw, "subwords")
    _run(
        [
            "bin/tools/learn_subwords.py",
            "--input",
            f"{raw}/train.src",
            f"{raw}/train.tgt",
            "--model_prefix",
            prefix,
            "--vocab_size",
            str(args.vocab_size),
            "--model_type",
            "bpe",
        ]
    )
    # One word vocabulary for both sides, as the subword model shares pieces.
    both = os.path.join(raw, "train.both")
    with open(both, "w", encoding="utf-8") as out:
        for side in ("src", "tgt"):
            with open(f"{raw}/train.{side}", encoding="utf-8") as handle:
                out.write(handle.read())
    word_vocab = os.path.join(raw, "words.vocab")
    with open(word_vocab, "w", encoding="utf-8") as out:
        _run(["bin/tools/generate_vocab.py", both], stdout=out)
    words = train_and_score(raw, work, "words", word_vocab, "", args)
    subwords = train_and_score(
        raw, work, "subwords", prefix + ".vocab", prefix + ".model", args
    )
    print(
        f"| model | vocabulary | BLEU (13a, test, {args.unseen_words} unseen words) |"
    )
    print("| --- | --- | --- |")
    print(f"| word-level | {word_vocab} | {words:.1f} |")
    print(
        f"| subwords ({args.vocab_size} BPE pieces) | {prefix}.vocab | {subwords:.1f} |"
    )
    print(f"steps {args.train_steps}, train pairs {args.train_size}, work dir {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
