"""Tests for seq2seq.training.unk_rate: the warning about UNK-heavy batches."""

import logging

import numpy as np
import pytest

from seq2seq.data.vocab import VocabInfo, get_special_vocab
from seq2seq.training.unk_rate import UnknownTokenRate


class _Model:
    """What UnknownTokenRate reads of a model: its vocabulary infos."""

    def __init__(self, source=True):
        # 5 tokens: ids 0-4, UNK 5, SEQUENCE_START 6, SEQUENCE_END 7.
        if source:
            self.source_vocab_info = VocabInfo("src_vocab.txt", 5, get_special_vocab(5))
        self.target_vocab_info = VocabInfo("tgt_vocab.txt", 5, get_special_vocab(5))


def _batch(sources, targets):
    """Rows of ids padded with 5 (UNK, as "" looks up) past their lengths."""

    def pad(rows):
        width = max(len(r) for r in rows) + 2
        return np.array([r + [5] * (width - len(r)) for r in rows])

    return {
        "source_ids": pad(sources),
        "source_len": np.array([len(r) for r in sources]),
        "target_ids": pad(targets),
        "target_len": np.array([len(r) for r in targets]),
    }


def test_rates_count_words_only_and_warn_above_the_threshold(caplog):
    rate = UnknownTokenRate(_Model(), batches=2, warn_above=0.1)
    # Source words: [5, 1] + [5, 5, 5] -> 4 UNK of 5 (END 7 not counted).
    # Target words: [1, 2] + [3] -> 0 UNK of 3 (START 6, END 7 not counted).
    first = _batch([[5, 1, 7], [5, 5, 5]], [[6, 1, 2, 7], [6, 3, 7]])
    assert rate.observe(first) is None and not rate.done
    # Then 1 source UNK of 4 and 1 target UNK of 7.
    second = _batch([[0, 1, 2, 5, 7]], [[6, 0, 1, 2, 3, 4, 0, 5, 7]])
    with caplog.at_level(logging.WARNING):
        rates = rate.observe(second)
    assert rate.done
    assert rates == pytest.approx({"source": 5 / 9, "target": 1 / 10})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # 10% is not above 10%.
    assert "56% of the source tokens" in warnings[0]
    assert "(5 of 9)" in warnings[0] and "src_vocab.txt" in warnings[0]
    assert "generate_vocab.py" in warnings[0]
    assert rate.observe(second) is None  # Nothing is counted after that.


def test_short_run_reports_what_it_saw_and_image_models_have_no_source(caplog):
    rate = UnknownTokenRate(_Model(source=False), batches=4)
    rate.observe(_batch([[1, 7]], [[6, 5, 5, 1, 7]]))
    with caplog.at_level(logging.WARNING):
        assert rate.report() == pytest.approx({"target": 2 / 3})
    assert "67% of the target tokens in the first 1 training batches" in caplog.text
    assert "tgt_vocab.txt" in caplog.text
