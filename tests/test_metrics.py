"""Tests for seq2seq.metrics: bleu, rouge and the metric specs."""

import math

import numpy as np
import pytest

from seq2seq.configurable import create_from_dict, load_yaml
from seq2seq.errors import ConfigError
from seq2seq.metrics import (
    BleuMetricSpec,
    LogPerplexityMetricSpec,
    RougeMetricSpec,
    bleu,
    rouge,
)


def toks(text):
    return text.split(" ")


# --------------------------------------------------------------------- BLEU


def test_corpus_bleu_identical_is_100():
    text = ["the cat sat on the mat", "a b c d e"]
    assert bleu.corpus_bleu(text, text) == pytest.approx(100.0)
    assert bleu.corpus_bleu(text, text, tokenize="13a") == pytest.approx(100.0)


def test_corpus_bleu_hand_computed():
    # Clipped n-gram matches over the 2-sentence corpus:
    # 1-grams 11/12, 2-grams 8/10, 3-grams 5/8, 4-grams 3/6; equal lengths
    # so the brevity penalty is 1.
    expected = 100.0 * (11 / 12 * 8 / 10 * 5 / 8 * 3 / 6) ** 0.25
    score = bleu.corpus_bleu(
        ["A B C D E F", "A B C D E F"], ["A B C D E F", "A B A D E F"]
    )
    assert score == pytest.approx(expected)
    assert score == pytest.approx(69.19, abs=0.01)


def test_corpus_bleu_brevity_penalty():
    # Hypothesis 4 words, reference 5: every precision is 1, BP = exp(1 - 5/4).
    score = bleu.corpus_bleu(["a b c d"], ["a b c d e"])
    assert score == pytest.approx(100.0 * math.exp(1 - 5 / 4))


def test_corpus_bleu_no_smoothing_gives_zero_without_4gram_match():
    # Precisions 3/4, 2/3, 1/2 and 0/1: no smoothing gives 0; sacrebleu's
    # "exp" smoothing replaces the first zero precision by 1 / (2 * total).
    assert bleu.corpus_bleu(["a b c d"], ["a b c e"]) == 0.0
    smoothed = bleu.corpus_bleu(["a b c d"], ["a b c e"], smooth_method="exp")
    assert smoothed == pytest.approx(100.0 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)


def test_moses_multi_bleu_values_of_the_original():
    hyps = np.array(
        ["The brown fox jumps over the dog 笑", "The brown fox jumps over the dog 2 笑"]
    )
    refs = np.array(["The quick brown fox jumps over the lazy dog 笑"] * 2)
    assert bleu.moses_multi_bleu(hyps, refs) == pytest.approx(46.51, abs=0.01)
    upper = np.array([h.replace("the dog", "The Dog") for h in hyps])
    assert bleu.moses_multi_bleu(upper, refs, lowercase=True) == pytest.approx(
        46.51, abs=0.01
    )
    assert bleu.moses_multi_bleu(upper, refs) < 46.0
    assert isinstance(bleu.moses_multi_bleu(hyps, refs), float)


def test_bleu_empty_corpus_and_empty_hypothesis():
    assert bleu.moses_multi_bleu(np.array([]), np.array([])) == 0.0
    assert bleu.corpus_bleu([], []) == 0.0
    assert bleu.corpus_bleu([""], ["a b c d"]) == 0.0


def test_bleu_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        bleu.corpus_bleu(["a"], ["a", "b"])


def test_bleu_bad_tokenizer():
    with pytest.raises(ValueError, match="unknown BLEU tokenize 'moses'"):
        bleu.corpus_bleu(["a"], ["a"], tokenize="moses")


# -------------------------------------------------------------------- ROUGE


def test_rouge_1_hand_computed():
    # overlap {a, b, c} = 3 of 3 hypothesis and 5 reference unigrams.
    score = rouge.rouge_n("a b c", "a b d c e", 1)
    assert score.p_score == pytest.approx(1.0)
    assert score.r_score == pytest.approx(3 / 5)
    assert score.f_score == pytest.approx(2 * 1.0 * 0.6 / 1.6)


def test_rouge_2_hand_computed():
    # hypothesis bigrams {ab, bc}, reference {ab, bd, dc, ce}: overlap 1.
    score = rouge.rouge_n("a b c", "a b d c e", 2)
    assert score.p_score == pytest.approx(1 / 2)
    assert score.r_score == pytest.approx(1 / 4)
    assert score.f_score == pytest.approx(1 / 3)


def test_rouge_n_clips_repeated_ngrams():
    # "the" appears 3 times in the hypothesis but once in the reference.
    score = rouge.rouge_n("the the the", "the cat", 1)
    assert score.p_score == pytest.approx(1 / 3)
    assert score.r_score == pytest.approx(1 / 2)
    assert score.f_score == pytest.approx(0.4)


def test_rouge_l_hand_computed():
    # LCS(a b c, a b d c e) = a b c.
    score = rouge.rouge_l("a b c", "a b d c e")
    assert score == pytest.approx((0.75, 1.0, 0.6))
    # Reversed order: all unigrams match but the LCS is a single token.
    reversed_score = rouge.rouge_l("c b a", "a b c")
    assert reversed_score.f_score == pytest.approx(1 / 3)
    assert rouge.rouge_n("c b a", "a b c", 1).f_score == pytest.approx(1.0)
    assert rouge.rouge_n("c b a", "a b c", 2).f_score == 0.0


def test_lcs_length():
    assert rouge.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert rouge.lcs_length([], list("abc")) == 0
    assert rouge.lcs_length(list("abc"), list("abc")) == 3


def test_rouge_edge_cases_are_zero():
    assert rouge.rouge_n("", "a b", 1) == (0.0, 0.0, 0.0)
    assert rouge.rouge_n("a", "a", 2) == (0.0, 0.0, 0.0)
    assert rouge.rouge_l("", "") == (0.0, 0.0, 0.0)
    assert rouge.rouge_n("A", "B", 1).f_score == 0.0


def test_rouge_corpus_is_mean_of_sentences():
    scores = rouge.rouge(["A B C D E F", "a b c"], ["A B A D E F", "a b d c e"])
    # Pair 1: unigram overlap 5 of 6 each side; bigram overlap 3 of 5;
    # LCS "A B D E F" = 5 of 6.  Pair 2: as in the tests above.
    assert scores["rouge_1/f_score"] == pytest.approx((5 / 6 + 0.75) / 2)
    assert scores["rouge_1/p_score"] == pytest.approx((5 / 6 + 1.0) / 2)
    assert scores["rouge_1/r_score"] == pytest.approx((5 / 6 + 0.6) / 2)
    assert scores["rouge_2/f_score"] == pytest.approx((3 / 5 + 1 / 3) / 2)
    assert scores["rouge_2/p_score"] == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert scores["rouge_2/r_score"] == pytest.approx((3 / 5 + 1 / 4) / 2)
    assert scores["rouge_l/f_score"] == pytest.approx((5 / 6 + 0.75) / 2)
    assert set(scores) == set(rouge.ROUGE_TYPES)
    assert rouge.rouge([], []) == dict.fromkeys(rouge.ROUGE_TYPES, 0.0)


# -------------------------------------------------------------- metric specs


def test_short_name_lookup_through_package():
    spec = create_from_dict({"class": "BleuMetricSpec"}, ["seq2seq.metrics"])
    assert isinstance(spec, BleuMetricSpec)
    assert spec.mode == "eval"
    dotted = create_from_dict(
        {
            "class": "seq2seq.metrics.metric_specs.RougeMetricSpec",
            "params": {"rouge_type": "rouge_2/p_score"},
        }
    )
    assert dotted.name == "rouge_2/p_score"


def test_bleu_spec_accumulates_like_the_original():
    spec = BleuMetricSpec({})
    assert spec.name == "bleu"
    spec.update([toks("A B C D E F")], [toks("A B C D E F")])
    assert spec.result() == pytest.approx(100.0)
    spec.update([toks("A B C D E F")], [toks("A B A D E F")])
    assert spec.result() == pytest.approx(69.19, abs=0.01)
    spec.reset()
    assert spec.result() == 0.0


def test_bleu_spec_description():
    spec = BleuMetricSpec({"tokenize": "13a"})
    assert "tokenize=13a" in spec.description
    assert "tok:13a" in spec.signature
    assert spec.signature in spec.description
    assert "tok:none" in BleuMetricSpec({}).signature
    assert "smooth:none" in BleuMetricSpec({}).signature


def test_bleu_spec_bad_tokenize_is_config_error():
    with pytest.raises(ConfigError, match="tokenize 'moses'"):
        BleuMetricSpec({"tokenize": "moses"})


def test_text_slicing_of_sos_eos_padding_and_bytes():
    spec = BleuMetricSpec({})
    raw = ["SEQUENCE_START", "a", "b", "SEQUENCE_END", "junk", ""]
    assert spec.to_text(raw) == "a b"
    assert spec.to_text(["a", "", "b", ""]) == "a b"
    assert spec.to_text([b"SEQUENCE_START", "caf\xe9".encode(), b"SEQUENCE_END"]) == (
        "caf\xe9"
    )
    assert spec.to_text(["SEQUENCE_END", "x"]) == ""
    assert spec.to_text("SEQUENCE_START x y SEQUENCE_END z") == "x y"
    chars = BleuMetricSpec({"separator": "", "sos_token": "<s>", "eos_token": "</s>"})
    assert chars.to_text(["<s>", "a", "b", "</s>", "c"]) == "ab"
    # Hypotheses decoded past EOS score as if they stopped there.
    spec.update(
        [raw, ["a", "b", "SEQUENCE_END"]],
        [["SEQUENCE_START", "a", "b", "SEQUENCE_END"], ["a", "b"]],
    )
    assert spec._hypotheses == ["a b", "a b"]
    assert spec._references == ["a b", "a b"]


def test_postproc_fn_outside_postproc_module_is_refused(tmp_path):
    # Configs are data: a dotted path outside seq2seq.data.postproc is
    # refused before anything is called, even a harmless str -> str one.
    marker = tmp_path / "ran"
    with pytest.raises(ConfigError) as err:
        BleuMetricSpec({"postproc_fn": "string.capwords"})
    assert str(err.value) == (
        "BleuMetricSpec: postproc_fn 'string.capwords' is not an allowed "
        "function; use one of decode_sentencepiece, slice_text, strip_bpe (from "
        "seq2seq.data.postproc, by short name or as seq2seq.data.postproc.<name>)."
        " A config cannot name other functions."
    )
    with pytest.raises(ConfigError, match="RougeMetricSpec: postproc_fn 'os.system'"):
        RougeMetricSpec({"postproc_fn": "os.system"}).to_text([f"touch {marker}"])
    assert not marker.exists()


def test_postproc_strip_bpe():
    spec = RougeMetricSpec(
        {
            "postproc_fn": "seq2seq.data.postproc.strip_bpe",
            "rouge_type": "rouge_1/f_score",
        }
    )
    assert spec.to_text(
        ["SEQUENCE_START", "un@@", "believ@@", "able", "SEQUENCE_END"]
    ) == ("unbelievable")
    spec.update([["the", "c@@", "at", "SEQUENCE_END"]], [["the", "cat"]])
    assert spec.result() == pytest.approx(1.0)
    bleu_spec = BleuMetricSpec({"postproc_fn": "seq2seq.data.postproc.strip_bpe"})
    words = toks("the c@@ at sat on the m@@ at")
    bleu_spec.update([words], [toks("the cat sat on the mat")])
    assert bleu_spec.result() == pytest.approx(100.0)


def test_postproc_short_name_and_sentencepiece():
    spec = BleuMetricSpec({"postproc_fn": "strip_bpe"})
    assert spec.to_text(["lo@@", "wer", "SEQUENCE_END"]) == "lower"
    sp = BleuMetricSpec(
        {"postproc_fn": "seq2seq.data.postproc.decode_sentencepiece", "tokenize": "13a"}
    )
    pieces = ["SEQUENCE_START", "\u2581Hel", "lo", "\u2581big", "\u2581world", "!"]
    pieces.append("SEQUENCE_END")
    assert sp.to_text(pieces) == "Hello big world!"
    # References are post-processed too. 13a splits the "!" off, so both
    # sides become "Hello big world !".
    reference = ["\u2581Hello", "\u2581big", "\u2581world", "\u2581!"]
    assert sp.to_text(reference) == "Hello big world !"
    sp.update([pieces], [reference])
    assert sp.result() == pytest.approx(100.0)
    # Without tokenization "world!" does not match "world" and "!".
    raw = BleuMetricSpec({"postproc_fn": "decode_sentencepiece"})
    raw.update([pieces], [reference])
    assert raw.result() == 0.0
    assert sp.signature.split("|")[3] == "tok:13a"


def test_bad_postproc_fn_is_config_error():
    with pytest.raises(ConfigError, match="postproc_fn 'no.such.module.fn'"):
        BleuMetricSpec({"postproc_fn": "no.such.module.fn"})
    with pytest.raises(ConfigError, match="postproc_fn 'nonexistent_function'"):
        RougeMetricSpec({"postproc_fn": "nonexistent_function"})
    with pytest.raises(ConfigError, match="'string.digits' is not an allowed"):
        BleuMetricSpec({"postproc_fn": "string.digits"})


def test_unknown_param_is_config_error():
    with pytest.raises(ConfigError, match="unknown parameter 'eos'"):
        BleuMetricSpec({"eos": "</s>"})
    with pytest.raises(ConfigError, match="unknown parameter 'separator'"):
        LogPerplexityMetricSpec({"separator": " "})


@pytest.mark.parametrize("rouge_type", rouge.ROUGE_TYPES)
def test_each_rouge_type_builds(rouge_type):
    spec = RougeMetricSpec({"rouge_type": rouge_type})
    assert spec.name == rouge_type
    spec.update([toks("a b c")], [toks("a b d c e")])
    expected = rouge.sentence_scores("a b c", "a b d c e")[rouge_type]
    assert spec.result() == pytest.approx(expected)


def test_rouge_spec_default_and_bad_type():
    assert RougeMetricSpec({}).name == "rouge_l/f_score"
    with pytest.raises(ConfigError, match="unknown rouge_type 'rouge_3/f_score'"):
        RougeMetricSpec({"rouge_type": "rouge_3/f_score"})


def test_rouge_spec_averages_over_updates():
    spec = RougeMetricSpec({"rouge_type": "rouge_2/f_score"})
    spec.update([toks("A B C D E F")], [toks("A B C D E F")])
    assert spec.result() == pytest.approx(1.0)
    spec.update([toks("A B C D E F")], [toks("A B A D E F")])
    assert spec.result() == pytest.approx((1.0 + 0.6) / 2)
    spec.reset()
    assert spec.result() == 0.0


def test_empty_hypotheses_do_not_crash():
    bleu_spec = BleuMetricSpec({})
    rouge_spec = RougeMetricSpec({})
    for spec in (bleu_spec, rouge_spec):
        assert spec.result() == 0.0
        spec.update([], [])
        spec.update([[]], [toks("a b c d")])
        spec.update([["SEQUENCE_END", "a"]], [toks("a b c d")])
        assert spec.result() == 0.0


def test_batch_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        BleuMetricSpec({}).update([["a"], ["b"]], [["a"]])


def test_log_perplexity_accumulates_token_weighted_mean():
    spec = LogPerplexityMetricSpec({})
    assert spec.name == "log_perplexity"
    assert spec.result() == 0.0
    spec.update([["a"]], [["a"]], loss_sum=6.0, num_tokens=3)
    assert spec.result() == pytest.approx(2.0)
    spec.update([["a"]], [["a"]], loss_sum=np.float32(2.0), num_tokens=np.int32(5))
    assert spec.result() == pytest.approx(8.0 / 8.0)
    spec.reset()
    spec.update(None, None, loss_sum=1.5, num_tokens=1)
    assert spec.result() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="loss_sum"):
        spec.update([["a"]], [["a"]])


def test_example_config_metrics_build():
    config = load_yaml("""
        default_params: &default_params
          - separator: " "
          - postproc_fn: "seq2seq.data.postproc.strip_bpe"
        metrics:
          - class: LogPerplexityMetricSpec
          - class: BleuMetricSpec
            params:
              <<: *default_params
          - class: RougeMetricSpec
            params:
              <<: *default_params
              rouge_type: rouge_2/r_score
        """)
    specs = [create_from_dict(item, ["seq2seq.metrics"]) for item in config["metrics"]]
    assert [spec.name for spec in specs] == [
        "log_perplexity",
        "bleu",
        "rouge_2/r_score",
    ]
