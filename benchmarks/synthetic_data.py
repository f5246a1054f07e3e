#!/usr/bin/env python3
"""Writes a synthetic parallel corpus shaped like real text, for benchmarks.

Unlike the toy copy/reverse data of `bin/tools/generate_toy_data.py` (a few
uniformly drawn tokens), this corpus has the statistics that drive the cost
of a translation model:

- Word frequencies follow Zipf's law: the k-th most frequent word `wk` of a
  vocabulary `w1 .. wN` is drawn with probability proportional to
  `1 / k**zipf_exponent`.
- Sentence lengths follow a gamma distribution (shape `length_shape`, mean
  `mean_len`), rounded and clipped to `min_len .. max_len` tokens, so most
  sentences are near the mean with a long tail of long ones.
- The target is a deterministic function of the source, so a model can learn
  it: a fixed, seeded word-for-word "dictionary" rewrites about
  `map_fraction` of the vocabulary (a permutation among those words), and the
  word order is reversed.

It writes `sources.txt`, `targets.txt` (one sentence per line, tokens
separated by spaces) and `vocab.txt` (all N words in rank order, one per
line, shared by both sides) into a directory:

    python -m benchmarks.synthetic_data --output_dir /tmp/synth \\
        --num_examples 10000 --vocab_size 8000 --mean_len 20

or, from Python, `write_synthetic_corpus("/tmp/synth", vocab_size=8000)`.
The same seed gives the same files.
"""

import argparse
import os
import sys

import numpy as np


def zipf_probabilities(vocab_size, exponent=1.0):
    """Zipf probabilities of the ranks `1 .. vocab_size`.

    Args:
      vocab_size: The number of words N.
      exponent: The Zipf exponent s (1.0 is typical of natural language).

    Returns:
      A float64 array [N] summing to 1; entry k-1 is the probability of `wk`.
    """
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    weights = ranks ** (-float(exponent))
    return weights / weights.sum()


def sample_lengths(rng, num_examples, mean_len, min_len=2, max_len=50, shape=4.0):
    """Draws sentence lengths from a clipped, rounded gamma distribution.

    Args:
      rng: A `numpy.random.Generator`.
      num_examples: How many lengths to draw.
      mean_len: The mean of the gamma distribution before clipping.
      min_len: The shortest allowed length.
      max_len: The longest allowed length.
      shape: The gamma shape k; the standard deviation is `mean_len / sqrt(k)`.

    Returns:
      An int64 array [num_examples] of lengths in `min_len .. max_len`.
    """
    raw = rng.gamma(shape, mean_len / shape, size=num_examples)
    return np.clip(np.rint(raw), min_len, max_len).astype(np.int64)


def make_dictionary(rng, vocab_size, map_fraction=0.5):
    """A fixed word-for-word mapping of word indices used to make targets.

    About `map_fraction` of the indices are chosen and permuted among
    themselves (each chosen word moves to another chosen word); the other
    words map to themselves.

    Returns:
      An int64 array [vocab_size]: target word index of each source index.
    """
    mapping = np.arange(vocab_size, dtype=np.int64)
    chosen = np.flatnonzero(rng.random(vocab_size) < map_fraction)
    if len(chosen) > 1:
        # A cyclic shift of a shuffled list moves every chosen word.
        order = rng.permutation(chosen)
        mapping[order] = np.roll(order, 1)
    return mapping


def make_corpus(
    num_examples=10000,
    vocab_size=8000,
    mean_len=20.0,
    min_len=2,
    max_len=50,
    zipf_exponent=1.0,
    length_shape=4.0,
    map_fraction=0.5,
    seed=0,
    dictionary_seed=0,
):
    """Generates the parallel sentences in memory.

    `seed` draws the sentences and `dictionary_seed` the source-to-target
    dictionary, so that corpora drawn with different seeds (a training set
    and a test set) share one dictionary, i.e. are the same task.

    Returns:
      A tuple `(sources, targets, words)`: two lists of token lists (sources
      and targets have equal lengths pairwise) and the vocabulary, a list of
      `vocab_size` words in rank order.

    Raises:
      ValueError: A parameter is out of range.
    """
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}.")
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}.")
    if not 1 <= min_len <= max_len:
        raise ValueError(
            f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}."
        )
    if mean_len <= 0:
        raise ValueError(f"mean_len must be positive, got {mean_len}.")
    words = [f"w{k}" for k in range(1, vocab_size + 1)]
    dictionary = make_dictionary(
        np.random.default_rng(dictionary_seed), vocab_size, map_fraction
    )
    rng = np.random.default_rng(seed)
    lengths = sample_lengths(
        rng, num_examples, mean_len, min_len, max_len, shape=length_shape
    )
    flat = rng.choice(
        vocab_size,
        size=int(lengths.sum()),
        p=zipf_probabilities(vocab_size, zipf_exponent),
    )
    sources, targets = [], []
    start = 0
    for length in lengths:
        ids = flat[start : start + length]
        start += length
        sources.append([words[i] for i in ids])
        targets.append([words[i] for i in dictionary[ids[::-1]]])
    return sources, targets, words


def write_synthetic_corpus(output_dir, **kwargs):
    """Writes `sources.txt`, `targets.txt` and `vocab.txt` into `output_dir`.

    Args:
      output_dir: The directory (created if needed).
      **kwargs: Passed to `make_corpus` (num_examples, vocab_size, mean_len,
        min_len, max_len, zipf_exponent, length_shape, map_fraction, seed,
        dictionary_seed).

    Returns:
      A dict with the paths (`sources`, `targets`, `vocab`) and corpus
      statistics: `num_examples`, `vocab_size`, `mean_len` (measured),
      `max_len` (measured), `num_tokens`, `distinct_words` and `top10_share`
      (the fraction of tokens that are one of the 10 most frequent words).
    """
    sources, targets, words = make_corpus(**kwargs)
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "sources": os.path.join(output_dir, "sources.txt"),
        "targets": os.path.join(output_dir, "targets.txt"),
        "vocab": os.path.join(output_dir, "vocab.txt"),
    }
    for key, sentences in (("sources", sources), ("targets", targets)):
        with open(paths[key], "w", encoding="utf-8") as out:
            out.writelines(" ".join(tokens) + "\n" for tokens in sentences)
    with open(paths["vocab"], "w", encoding="utf-8") as out:
        out.writelines(word + "\n" for word in words)
    lengths = np.array([len(s) for s in sources])
    top10 = set(words[:10])
    num_tokens = int(lengths.sum())
    in_top10 = sum(1 for s in sources for tok in s if tok in top10)
    paths.update(
        num_examples=len(sources),
        vocab_size=len(words),
        mean_len=float(lengths.mean()),
        max_len=int(lengths.max()),
        num_tokens=num_tokens,
        distinct_words=len({tok for s in sources for tok in s}),
        top10_share=in_top10 / max(num_tokens, 1),
    )
    return paths


def describe(info):
    """A one-line summary of what `write_synthetic_corpus` returned."""
    return (
        f"{info['num_examples']} sentence pairs, mean length "
        f"{info['mean_len']:.1f} (max {info['max_len']}), {info['num_tokens']} "
        f"source tokens, {info['distinct_words']} of {info['vocab_size']} words "
        f"used, top-10 words = {100 * info['top10_share']:.0f}% of tokens"
    )


def add_corpus_flags(parser, num_examples=10000):
    """Adds the corpus shape flags shared by the benchmark scripts."""
    parser.add_argument(
        "--num_examples", type=int, default=num_examples, help="Sentence pairs."
    )
    parser.add_argument(
        "--vocab_size", type=int, default=8000, help="Words w1..wN (Zipf ranks)."
    )
    parser.add_argument(
        "--mean_len", type=float, default=20.0, help="Mean sentence length."
    )
    parser.add_argument(
        "--zipf_exponent", type=float, default=1.0, help="Zipf exponent s."
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Random seed of the sentences."
    )


def corpus_kwargs(args):
    """The `make_corpus` keyword arguments from parsed `add_corpus_flags`."""
    return {
        "num_examples": args.num_examples,
        "vocab_size": args.vocab_size,
        "mean_len": args.mean_len,
        "zipf_exponent": args.zipf_exponent,
        "seed": args.seed,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="Where the three files go.")
    add_corpus_flags(parser)
    parser.add_argument("--min_len", type=int, default=2, help="Shortest sentence.")
    parser.add_argument("--max_len", type=int, default=50, help="Longest sentence.")
    parser.add_argument(
        "--length_shape", type=float, default=4.0, help="Gamma shape of lengths."
    )
    parser.add_argument(
        "--map_fraction",
        type=float,
        default=0.5,
        help="Fraction of words the target dictionary rewrites.",
    )
    parser.add_argument(
        "--dictionary_seed",
        type=int,
        default=0,
        help="Random seed of the dictionary (keep it to make more data of the "
        "same task).",
    )
    args = parser.parse_args(argv)
    kwargs = corpus_kwargs(args)
    kwargs.update(
        min_len=args.min_len,
        max_len=args.max_len,
        length_shape=args.length_shape,
        map_fraction=args.map_fraction,
        dictionary_seed=args.dictionary_seed,
    )
    try:
        info = write_synthetic_corpus(args.output_dir, **kwargs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key in ("sources", "targets", "vocab"):
        print(f"{key}: {info[key]}")
    print(describe(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
