"""ROUGE-N and ROUGE-L, sentence by sentence.

Each hypothesis is scored against its one reference, and corpus scores are
the plain average of the per-sentence scores (as the original toolkit did; it
is not the "pooled" count-summing variant). Text is split on whitespace and
compared case-sensitively; no stemming and no stop-word removal.

For one hypothesis H and its reference R:

- ROUGE-N counts n-grams with multiplicity and clips the overlap:
  `overlap = sum over g of min(count_H(g), count_R(g))`,
  `p = overlap / #n-grams(H)`, `r = overlap / #n-grams(R)`.
  (The original toolkit compared sets of distinct n-grams; the scores differ
  when an n-gram repeats. Counting with clipping is what ROUGE-1.5.5 and the
  `rouge-score` package do.)
- ROUGE-L uses the length of the longest common subsequence of the two token
  sequences: `p = LCS / len(H)`, `r = LCS / len(R)`.
- The F score is the harmonic mean `2 p r / (p + r)` for both.

A side without tokens (or with fewer than n tokens for ROUGE-N) has
precision / recall 0, and every score with a zero denominator is 0.
"""

import collections

#: The nine score names, as `rouge_<1|2|l>/<f|r|p>_score`.
ROUGE_TYPES = tuple(
    f"rouge_{kind}/{score}_score"
    for kind in ("1", "2", "l")
    for score in ("f", "r", "p")
)

Score = collections.namedtuple("Score", ["f_score", "p_score", "r_score"])
Score.__doc__ = """F, precision and recall of one comparison, each in [0, 1]."""


def _tokens(text):
    """A list of tokens: `text` split on whitespace, or `text` itself if a list."""
    if isinstance(text, str):
        return text.split()
    return list(text)


def _fraction(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def _score(overlap, hyp_total, ref_total):
    precision = _fraction(overlap, hyp_total)
    recall = _fraction(overlap, ref_total)
    f_score = _fraction(2.0 * precision * recall, precision + recall)
    return Score(f_score=f_score, p_score=precision, r_score=recall)


def ngram_counts(tokens, n):
    """Counts the n-grams of a token list.

    Args:
      tokens: A list of tokens.
      n: The n-gram order, >= 1.

    Returns:
      A `collections.Counter` of n-gram tuples.
    """
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    return collections.Counter(
        tuple(tokens[start : start + n]) for start in range(len(tokens) - n + 1)
    )


def rouge_n(hypothesis, reference, n=2):
    """ROUGE-N of one hypothesis against one reference.

    Args:
      hypothesis: A string (split on whitespace) or a list of tokens.
      reference: A string or a list of tokens.
      n: The n-gram order.

    Returns:
      A `Score(f_score, p_score, r_score)`.
    """
    hyp_counts = ngram_counts(_tokens(hypothesis), n)
    ref_counts = ngram_counts(_tokens(reference), n)
    overlap = sum((hyp_counts & ref_counts).values())
    return _score(overlap, sum(hyp_counts.values()), sum(ref_counts.values()))


def lcs_length(first, second):
    """Length of the longest common subsequence of two sequences.

    Dynamic programming in O(len(first) * len(second)) time and
    O(len(second)) memory.
    """
    if len(second) > len(first):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0]
        for column, other in enumerate(second, start=1):
            if item == other:
                current.append(previous[column - 1] + 1)
            else:
                current.append(max(previous[column], current[column - 1]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis, reference):
    """Sentence-level ROUGE-L (longest common subsequence) of one pair.

    Args:
      hypothesis: A string (split on whitespace) or a list of tokens.
      reference: A string or a list of tokens.

    Returns:
      A `Score(f_score, p_score, r_score)`.
    """
    hyp_tokens = _tokens(hypothesis)
    ref_tokens = _tokens(reference)
    return _score(lcs_length(hyp_tokens, ref_tokens), len(hyp_tokens), len(ref_tokens))


def sentence_scores(hypothesis, reference):
    """All nine ROUGE scores of one pair, keyed by `ROUGE_TYPES` names.

    Args:
      hypothesis: A string (split on whitespace) or a list of tokens.
      reference: A string or a list of tokens.

    Returns:
      A dict from each name in `ROUGE_TYPES` to a float in [0, 1].
    """
    hyp_tokens = _tokens(hypothesis)
    ref_tokens = _tokens(reference)
    result = {}
    for kind, score in (
        ("1", rouge_n(hyp_tokens, ref_tokens, 1)),
        ("2", rouge_n(hyp_tokens, ref_tokens, 2)),
        ("l", rouge_l(hyp_tokens, ref_tokens)),
    ):
        for field in Score._fields:
            result[f"rouge_{kind}/{field}"] = float(getattr(score, field))
    return result


def sentence_score(hypothesis, reference, rouge_type):
    """One ROUGE score of one pair.

    Args:
      hypothesis: A string (split on whitespace) or a list of tokens.
      reference: A string or a list of tokens.
      rouge_type: One of `ROUGE_TYPES`, e.g. `"rouge_l/f_score"`.

    Returns:
      A float in [0, 1].
    """
    kind, field = _parse_type(rouge_type)
    if kind == "l":
        score = rouge_l(hypothesis, reference)
    else:
        score = rouge_n(hypothesis, reference, int(kind))
    return float(getattr(score, field))


def _parse_type(rouge_type):
    if rouge_type not in ROUGE_TYPES:
        raise ValueError(
            f"unknown rouge_type '{rouge_type}'; valid: {', '.join(ROUGE_TYPES)}"
        )
    prefix, field = rouge_type.split("/")
    return prefix[len("rouge_") :], field


def rouge(hypotheses, references):
    """Average per-sentence ROUGE scores of a corpus.

    Args:
      hypotheses: A sequence of N strings (or token lists).
      references: A sequence of N strings (or token lists), one per hypothesis.

    Returns:
      A dict from each name in `ROUGE_TYPES` to the mean of that score over
      the N pairs (0.0 for every name when N is 0).

    Raises:
      ValueError: The two sequences have different lengths.
    """
    hypotheses = list(hypotheses)
    references = list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"ROUGE needs one reference per hypothesis, got {len(hypotheses)} "
            f"hypotheses and {len(references)} references"
        )
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hypothesis, reference in zip(hypotheses, references):
        for name, value in sentence_scores(hypothesis, reference).items():
            totals[name] += value
    count = len(hypotheses)
    return {name: _fraction(total, count) for name, total in totals.items()}
