"""Evaluation metrics that accumulate over decoded batches.

Evaluation decodes the dev set batch by batch in Python (greedy,
free-running) and hands each batch to every configured metric spec:

    spec.reset()
    for batch in dev_set:
        spec.update(hypotheses, references, loss_sum=..., num_tokens=...)
    summary_writer.scalar(spec.name, spec.result())

`hypotheses` and `references` are lists with one entry per example, each a
list of raw tokens as the decoder produced them or as the target file holds
them: they may start with `SEQUENCE_START`, end with `SEQUENCE_END`, carry
anything after it (tokens decoded past the end, "" padding) and be `bytes`
(from a `tf.string` tensor's `.numpy()`). Text metrics clean that up
themselves; see `TextMetricSpec`.

Specs are created from the `metrics:` list of a config, e.g.
`{class: RougeMetricSpec, params: {rouge_type: rouge_2/f_score}}`.
"""

from seq2seq.configurable import (
    Configurable,
    ModeKeys,
    locate_function,
    maybe_load_yaml,
)
from seq2seq.data import postproc
from seq2seq.errors import ConfigError
from seq2seq.metrics import bleu, chrf, rouge
from seq2seq.metrics.sacrebleu_corpus import score_corpus


class MetricSpec(Configurable):
    """A metric accumulated over many `update` calls and read with `result`.

    Subclasses implement `name`, `reset`, `update` and `result`.

    Args:
      params: The metric's params (dict or `None`).
      mode: The mode it is built in; metrics are normally built in `eval`.
    """

    def __init__(self, params, mode=ModeKeys.EVAL):
        Configurable.__init__(self, params, mode)

    @staticmethod
    def default_params():
        return {}

    @property
    def name(self):
        """The TensorBoard tag of the metric, e.g. `bleu`."""
        raise NotImplementedError

    def reset(self):
        """Forgets everything accumulated so far."""
        raise NotImplementedError

    def update(self, hypotheses, references, loss_sum=None, num_tokens=None):
        """Adds one batch.

        Args:
          hypotheses: A list of B decoded token lists (strings or bytes).
          references: A list of B target token lists, same order.
          loss_sum: The sum of the batch's per-token losses (a float or a
            scalar tensor), for loss-based metrics.
          num_tokens: The number of target tokens the losses were summed
            over, for loss-based metrics.
        """
        raise NotImplementedError

    def result(self):
        """The metric over everything since the last `reset`, as a float."""
        raise NotImplementedError


def _to_text(token):
    return token.decode("utf-8") if isinstance(token, bytes) else str(token)


class TextMetricSpec(MetricSpec):
    """Base of metrics computed on hypothesis and reference text.

    Each example's tokens become one string: bytes are decoded as UTF-8,
    empty tokens (batch padding) are dropped, the rest are joined with
    `separator`, the text from the first `eos_token` on and up to the end of
    the first `sos_token` is cut away, the result is stripped and finally
    passed through `postproc_fn` if one is set. References get the same
    treatment as hypotheses. Subclasses score the resulting strings.

    Params:
      sos_token: The start-of-sequence token to cut away.
      eos_token: The end-of-sequence token; it and all after it are cut.
      separator: The string that joins tokens (`""` for characters).
      postproc_fn: A `str -> str` function of `seq2seq.data.postproc`
        applied to each text, by short name (`strip_bpe`) or dotted path
        (`seq2seq.data.postproc.strip_bpe`); no other function can be
        named. Empty for none.
      target_tokenizer: A SentencePiece `.model` file: the tokens are its
        pieces, and the text scored is their detokenized plain text (cut at
        `sos_token` / `eos_token` first, `separator` unused). Training sets
        it from the dev pipeline's `target_tokenizer` (see
        `scoring_detokenized`). Empty for none.
    """

    def __init__(self, params, mode=ModeKeys.EVAL):
        super().__init__(params, mode)
        self._postproc_fn = self._resolve_postproc(self.params["postproc_fn"])
        self._detokenizer = None
        if self.params["target_tokenizer"]:
            from seq2seq.data import sentencepiece_model

            self._detokenizer = sentencepiece_model.load_processor(
                self.params["target_tokenizer"],
                f"{type(self).__name__}: target_tokenizer",
            )

    @staticmethod
    def default_params():
        return {
            "sos_token": "SEQUENCE_START",
            "eos_token": "SEQUENCE_END",
            "separator": " ",
            "postproc_fn": "",
            "target_tokenizer": "",
        }

    def _resolve_postproc(self, name):
        if not name:
            return None
        return locate_function(
            name, postproc, what=f"{type(self).__name__}: postproc_fn"
        )

    def to_text(self, tokens):
        """Turns one example's raw tokens into the text that is scored.

        Args:
          tokens: A sequence of tokens (str or bytes), or one already-joined
            string (bytes or str), which is then only sliced and
            post-processed.

        Returns:
          A str.
        """
        if self._detokenizer is not None:
            return self._detokenized_text(tokens)
        if isinstance(tokens, (str, bytes)):
            text = _to_text(tokens)
        else:
            words = (_to_text(token) for token in tokens)
            text = self.params["separator"].join(word for word in words if word)
        text = postproc.slice_text(
            text, self.params["eos_token"], self.params["sos_token"]
        )
        if self._postproc_fn is not None:
            text = self._postproc_fn(text)
        return text

    def _detokenized_text(self, tokens):
        """The plain text of one example's pieces (see `target_tokenizer`)."""
        from seq2seq.data import sentencepiece_model

        if isinstance(tokens, (str, bytes)):
            tokens = _to_text(tokens).split()
        pieces = [_to_text(token) for token in tokens]
        eos, sos = self.params["eos_token"], self.params["sos_token"]
        if eos and eos in pieces:
            pieces = pieces[: pieces.index(eos)]
        if sos and sos in pieces:
            pieces = pieces[pieces.index(sos) + 1 :]
        text = sentencepiece_model.detokenize(self._detokenizer, pieces).strip()
        if self._postproc_fn is not None:
            text = self._postproc_fn(text)
        return text

    def update(self, hypotheses, references, loss_sum=None, num_tokens=None):
        del loss_sum, num_tokens  # Text metrics only look at the tokens.
        hypotheses = list(hypotheses)
        references = list(references)
        if len(hypotheses) != len(references):
            raise ValueError(
                f"{self.name}: got {len(hypotheses)} hypotheses but "
                f"{len(references)} references in one batch"
            )
        self.update_text(
            [self.to_text(h) for h in hypotheses],
            [self.to_text(r) for r in references],
        )

    def update_text(self, hypotheses, references):
        """Adds already processed texts (lists of N strings each)."""
        raise NotImplementedError


class CorpusTextMetricSpec(TextMetricSpec):
    """Base of text metrics scored once over the whole corpus by a sacrebleu
    metric object: every example since the last reset is kept, and `result`
    scores them together (a corpus score is not a mean of sentence scores).

    Subclasses build the scorer in `make_scorer` from their params; a
    `ValueError` there becomes a `ConfigError` naming the class.
    """

    def __init__(self, params, mode=ModeKeys.EVAL):
        super().__init__(params, mode)
        try:
            self._scorer = self.make_scorer()
        except ValueError as err:
            raise ConfigError(f"{type(self).__name__}: {err}.") from None
        self.reset()

    def make_scorer(self):
        """The sacrebleu metric object for `self.params`."""
        raise NotImplementedError

    def reset(self):
        self._hypotheses = []
        self._references = []

    def update_text(self, hypotheses, references):
        self._hypotheses.extend(hypotheses)
        self._references.extend(references)

    def result(self):
        return score_corpus(self._scorer, self._hypotheses, self._references)


class BleuMetricSpec(CorpusTextMetricSpec):
    """Corpus BLEU (0-100) over all examples since the last reset, by sacrebleu.

    Params (besides those of `TextMetricSpec`):
      tokenize: The sacrebleu tokenizer. `none` (default) splits on
        whitespace only, right for text that is already tokenized and what
        the original `multi-bleu.perl` did; `13a` is the usual tokenizer
        for detokenized text (e.g. after sentencepiece decoding). Any
        other sacrebleu tokenizer name is accepted if its dependencies are
        installed.
      smooth_method: The sacrebleu smoothing: `none` (default, like
        `multi-bleu.perl`: a corpus with no matching 4-gram scores 0),
        `exp`, `floor` or `add-k`.
    """

    def __init__(self, params, mode=ModeKeys.EVAL):
        super().__init__(params, mode)
        self._signature = bleu.signature(self._scorer)

    def make_scorer(self):
        return bleu.make_scorer(
            tokenize=self.params["tokenize"],
            smooth_method=self.params["smooth_method"],
        )

    @staticmethod
    def default_params():
        params = TextMetricSpec.default_params()
        params.update({"tokenize": "none", "smooth_method": "none"})
        return params

    @property
    def name(self):
        return "bleu"

    @property
    def signature(self):
        """The sacrebleu signature, e.g. `nrefs:1|case:mixed|eff:no|tok:none|...`."""
        return self._signature

    @property
    def description(self):
        """A line naming the tokenizer and the sacrebleu signature."""
        return (
            f"BLEU by sacrebleu, tokenize={self.params['tokenize']}, "
            f"signature {self._signature}"
        )


class ChrfMetricSpec(CorpusTextMetricSpec):
    """Corpus chrF (0-100) over all examples since the last reset, by
    sacrebleu (see `seq2seq.metrics.chrf`).

    Params (besides those of `TextMetricSpec`):
      char_order: Largest character n-gram, default 6.
      word_order: Largest word n-gram: 0 (default) is chrF, 2 is chrF++.
      beta: Recall counts `beta` times as much as precision; default 2.
      lowercase: Compare lowercased text.
      whitespace: Let character n-grams span spaces.

    The name is `chrf`, or `chrf++` with `word_order: 2` (one `+` per word
    order).
    """

    def make_scorer(self):
        return chrf.make_scorer(
            char_order=self.params["char_order"],
            word_order=self.params["word_order"],
            beta=self.params["beta"],
            lowercase=self.params["lowercase"],
            whitespace=self.params["whitespace"],
        )

    @staticmethod
    def default_params():
        params = TextMetricSpec.default_params()
        params.update(
            {
                "char_order": 6,
                "word_order": 0,
                "beta": 2,
                "lowercase": False,
                "whitespace": False,
            }
        )
        return params

    @property
    def name(self):
        return "chrf" + "+" * self.params["word_order"]


def scoring_detokenized(metric, target_tokenizer, definition=None):
    """The text metric `metric` made to score detokenized text.

    Args:
      metric: A `MetricSpec`; other than text metrics are returned as they
        are, and so are those that already name a `target_tokenizer`.
      target_tokenizer: The SentencePiece model of the targets.
      definition: The metric's `{class, params}` definition (dict or YAML);
        BLEU switches to sacrebleu's standard `13a` tokenization unless it
        sets `tokenize`.

    Returns:
      A `MetricSpec`.
    """
    if not isinstance(metric, TextMetricSpec) or metric.params["target_tokenizer"]:
        return metric
    definition = maybe_load_yaml(definition or {}, "metric")
    given = definition.get("params") if isinstance(definition, dict) else None
    params = dict(metric.params, target_tokenizer=target_tokenizer)
    if isinstance(metric, BleuMetricSpec) and "tokenize" not in (given or {}):
        params["tokenize"] = "13a"
    return type(metric)(params, metric.mode)


class RougeMetricSpec(TextMetricSpec):
    """A ROUGE score (0-1) averaged over the examples since the last reset.

    Params (besides those of `TextMetricSpec`):
      rouge_type: Which score, `rouge_<1|2|l>/<f|r|p>_score`; it is also the
        metric's name. Default `rouge_l/f_score`. See
        `seq2seq.metrics.rouge` for the definitions.
    """

    def __init__(self, params, mode=ModeKeys.EVAL):
        super().__init__(params, mode)
        if self.params["rouge_type"] not in rouge.ROUGE_TYPES:
            raise ConfigError(
                f"{type(self).__name__}: unknown rouge_type "
                f"'{self.params['rouge_type']}'. Valid: "
                f"{', '.join(rouge.ROUGE_TYPES)}."
            )
        self.reset()

    @staticmethod
    def default_params():
        params = TextMetricSpec.default_params()
        params.update({"rouge_type": "rouge_l/f_score"})
        return params

    @property
    def name(self):
        return self.params["rouge_type"]

    def reset(self):
        self._total = 0.0
        self._count = 0

    def update_text(self, hypotheses, references):
        for hypothesis, reference in zip(hypotheses, references):
            self._total += rouge.sentence_score(
                hypothesis, reference, self.params["rouge_type"]
            )
            self._count += 1

    def result(self):
        return self._total / self._count if self._count else 0.0


class LogPerplexityMetricSpec(MetricSpec):
    """Mean per-token loss (natural-log perplexity) over the evaluated batches.

    Accumulates `loss_sum` and `num_tokens` of every `update` and returns
    their ratio, so batches are weighted by their token counts. The token
    lists are ignored. `result()` is 0.0 before any token was counted.
    """

    def __init__(self, params=None, mode=ModeKeys.EVAL):
        super().__init__(params, mode)
        self.reset()

    @property
    def name(self):
        return "log_perplexity"

    def reset(self):
        self._loss_sum = 0.0
        self._num_tokens = 0.0

    def update(self, hypotheses=None, references=None, loss_sum=None, num_tokens=None):
        del hypotheses, references  # Only the losses matter here.
        if loss_sum is None or num_tokens is None:
            raise ValueError("log_perplexity: update() needs loss_sum and num_tokens")
        self._loss_sum += float(loss_sum)
        self._num_tokens += float(num_tokens)

    def result(self):
        if not self._num_tokens:
            return 0.0
        return self._loss_sum / self._num_tokens
