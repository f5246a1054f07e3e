"""Corpus chrF (character n-gram F-score, Popovic 2015) on top of sacrebleu.

chrF compares character n-grams (up to `char_order`, default 6) of each
hypothesis and its reference and combines their precision and recall into an
F-score that weighs recall `beta` times as much (default 2: chrF2). With
`word_order: 2` word unigrams and bigrams are counted too (chrF++). The score
is sacrebleu's, on a 0-100 scale; unlike BLEU it does not depend on a
tokenizer and gives partial credit for partly right words.
"""

from sacrebleu.metrics import CHRF

from seq2seq.metrics.sacrebleu_corpus import score_corpus


def make_scorer(char_order=6, word_order=0, beta=2, lowercase=False, whitespace=False):
    """Builds a sacrebleu `CHRF` scorer.

    Args:
      char_order: Largest character n-gram (>= 1).
      word_order: Largest word n-gram (0: chrF; 2: chrF++).
      beta: How many times more recall counts than precision (>= 1).
      lowercase: Whether to compare lowercased text.
      whitespace: Whether character n-grams may contain spaces.

    Returns:
      A `sacrebleu.metrics.CHRF` object.

    Raises:
      ValueError: An order or beta out of range.
    """
    if char_order < 1 or word_order < 0 or beta < 1:
        raise ValueError(
            f"chrF needs char_order >= 1, word_order >= 0 and beta >= 1, got "
            f"char_order={char_order}, word_order={word_order}, beta={beta}"
        )
    return CHRF(
        char_order=char_order,
        word_order=word_order,
        beta=beta,
        lowercase=lowercase,
        whitespace=whitespace,
    )


def corpus_chrf(hypotheses, references, **kwargs):
    """Corpus chrF of a list of hypotheses against one reference each.

    Args:
      hypotheses: A list of N strings.
      references: A list of N strings.
      **kwargs: `make_scorer` arguments (`char_order`, `word_order`, ...).

    Returns:
      The chrF score as a float in [0, 100]; 0.0 for an empty corpus.
    """
    return score_corpus(make_scorer(**kwargs), hypotheses, references)
