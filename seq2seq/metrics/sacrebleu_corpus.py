"""One corpus score from a sacrebleu metric object (`BLEU`, `CHRF`)."""


def score_corpus(scorer, hypotheses, references):
    """Scores `hypotheses` against one reference each with `scorer`.

    Args:
      scorer: A sacrebleu metric object (`bleu.make_scorer`,
        `chrf.make_scorer`).
      hypotheses: A list of N strings.
      references: A list of N strings, one reference per hypothesis.

    Returns:
      The score as a Python float in [0, 100]; 0.0 for an empty corpus.

    Raises:
      ValueError: The two lists have different lengths.
    """
    hypotheses = [str(h) for h in hypotheses]
    references = [str(r) for r in references]
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{type(scorer).__name__} needs one reference per hypothesis, got "
            f"{len(hypotheses)} hypotheses and {len(references)} references"
        )
    if not hypotheses:
        return 0.0
    return float(scorer.corpus_score(hypotheses, [references]).score)
