"""Corpus BLEU on top of sacrebleu.

The original toolkit shelled out to Moses' `multi-bleu.perl`. Here the same
number comes from sacrebleu: with `tokenize="none"` (split on whitespace only,
the text is assumed to be tokenized already) and `smooth_method="none"` it
reproduces `multi-bleu.perl` exactly, and other tokenizers (`13a`, `intl`,
`char`, ...) give the standard detokenized BLEU. Scores are on a 0-100 scale.
"""

from sacrebleu.metrics import BLEU

from seq2seq.metrics.sacrebleu_corpus import score_corpus

#: Tokenizers sacrebleu knows. Some (`ja-mecab`, `ko-mecab`, `spm`, `flores*`)
#: need optional packages and fail when the scorer is built without them.
TOKENIZERS = tuple(BLEU.TOKENIZERS)

#: Smoothing methods sacrebleu knows; `none` is what `multi-bleu.perl` does.
SMOOTH_METHODS = tuple(BLEU.SMOOTH_DEFAULTS)


def make_scorer(tokenize="none", smooth_method="none", lowercase=False):
    """Builds a sacrebleu `BLEU` scorer.

    Args:
      tokenize: A sacrebleu tokenizer name (see `TOKENIZERS`).
      smooth_method: A sacrebleu smoothing name (see `SMOOTH_METHODS`).
      lowercase: Whether to compare lowercased text.

    Returns:
      A `sacrebleu.metrics.BLEU` object.

    Raises:
      ValueError: An unknown tokenizer or smoothing method, or a tokenizer
        whose optional dependency is missing.
    """
    if tokenize not in TOKENIZERS:
        raise ValueError(
            f"unknown BLEU tokenize '{tokenize}'; valid: {', '.join(TOKENIZERS)}"
        )
    if smooth_method not in SMOOTH_METHODS:
        raise ValueError(
            f"unknown BLEU smooth_method '{smooth_method}'; "
            f"valid: {', '.join(SMOOTH_METHODS)}"
        )
    try:
        return BLEU(tokenize=tokenize, smooth_method=smooth_method, lowercase=lowercase)
    except (ImportError, RuntimeError) as err:
        raise ValueError(
            f"BLEU tokenize '{tokenize}' is not usable here ({err}); "
            "install its optional dependency or use 'none' or '13a'"
        ) from None


def corpus_bleu(hypotheses, references, tokenize="none", smooth_method="none"):
    """Corpus BLEU of a list of hypotheses against one reference each.

    Args:
      hypotheses: A list of N strings.
      references: A list of N strings.
      tokenize: The sacrebleu tokenizer; `"none"` splits on whitespace only
        (for text that is already tokenized), `"13a"` is the usual choice
        for detokenized text.
      smooth_method: The sacrebleu smoothing; `"none"` matches
        `multi-bleu.perl`, `"exp"` is sacrebleu's own default.

    Returns:
      The BLEU score as a float in [0, 100]; 0.0 for an empty corpus.
    """
    scorer = make_scorer(tokenize=tokenize, smooth_method=smooth_method)
    return score_corpus(scorer, hypotheses, references)


def moses_multi_bleu(hypotheses, references, lowercase=False):
    """The original toolkit's BLEU function, computed by sacrebleu.

    Same arguments and result as the `multi-bleu.perl` wrapper it replaces:
    whitespace tokenization, no smoothing, optional lowercasing; no Perl and
    no download are needed.

    Args:
      hypotheses: A sequence of N strings (a list or a 1-D numpy array).
      references: A sequence of N strings.
      lowercase: Whether to lowercase both sides first (the `-lc` flag).

    Returns:
      The BLEU score as a float in [0, 100]; 0.0 for an empty corpus.
    """
    scorer = make_scorer(tokenize="none", smooth_method="none", lowercase=lowercase)
    return score_corpus(scorer, list(hypotheses), list(references))


def signature(scorer):
    """The sacrebleu signature string of `scorer`, e.g. `nrefs:1|case:mixed|...`.

    sacrebleu only knows the number of references once it has scored
    something, so a one-sentence dummy corpus is scored first.
    """
    scorer.corpus_score(["x"], [["x"]])
    return scorer.get_signature().format()
