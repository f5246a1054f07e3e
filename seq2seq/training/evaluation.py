"""Dev-set evaluation that says what it measures.

A sequence model is trained with teacher forcing (the decoder reads the
reference previous token) but used free-running (it reads its own previous
prediction). The two give different numbers, so every result is named after
the way it was measured:

* `loss/teacher_forced`: the mean token cross-entropy with teacher forcing
  (the log-perplexity; `exp` of it is the perplexity). Always the plain
  cross-entropy: no label smoothing and no scheduled sampling, whatever the
  training loss uses, so dev losses of runs with different training
  settings compare.
* metric specs that only read the loss (`LogPerplexityMetricSpec`) are
  suffixed `/teacher_forced`: `log_perplexity/teacher_forced`.
* text metrics (`BleuMetricSpec`, `RougeMetricSpec`, any spec that reads
  hypotheses) are computed on free-running greedy decodes, the ones
  `bin/infer.py` produces without a beam, and suffixed `/greedy`:
  `bleu/greedy`, `rouge_1/f_score/greedy`. When the model params choose a
  random sampler (`inference.sampler: random`), that decode draws its
  tokens with it, as `bin/infer.py` would, and is suffixed `/sample`:
  `bleu/sample` (reproducible from one evaluation to the next with
  `inference.sampling.seed`).
* with `beam_width` > 1 the text metrics are computed again on beam search
  decodes and suffixed `/beam{K}`: `bleu/beam4`.

No free-running loss is reported: a cross-entropy needs the model's
distribution at each reference position, which a free-running decode of a
different length does not define.
"""

import tensorflow as tf

from seq2seq.data.copy_vocab import COPY_ID_KEYS, extended_tokens
from seq2seq.decoders.samplers import ArgmaxSampler
from seq2seq.metrics import metric_specs

_ID_KEYS = ("source_ids", "source_len", "target_ids", "target_len") + COPY_ID_KEYS

LOSS_TAG = "loss/teacher_forced"
TEACHER_FORCED = "teacher_forced"
GREEDY = "greedy"
SAMPLE = "sample"


def beam_suffix(beam_width):
    """The tag suffix of beam-search results, e.g. `beam4`."""
    return f"beam{int(beam_width)}"


def tokens_from_ids(id_to_token, ids, lengths, oov_tokens=None):
    """Maps decoded ids to token lists.

    Args:
      id_to_token: numpy array of token strings indexed by id.
      ids: [B, T] int array.
      lengths: [B] int array of the number of valid ids per row.
      oov_tokens: With copy attention, the [B, M] words of the source OOV
        slots (ids `>= V`; see `seq2seq.data.copy_vocab`).

    Returns:
      A list of B lists of strings.
    """
    if oov_tokens is not None:
        tokens = extended_tokens(id_to_token, ids, oov_tokens)
        return [list(row[:length]) for row, length in zip(tokens, lengths)]
    return [list(id_to_token[row[:length]]) for row, length in zip(ids, lengths)]


def _oov_tokens(features):
    """The [B, M] words of the copy slots of a batch, or None."""
    tokens = features.get("source_oov_tokens")
    return None if tokens is None else tokens.numpy()


def tokens_from_strings(tokens, lengths):
    """[B, T] padded byte-string array + [B] lengths -> list of str lists."""
    return [
        [t.decode("utf-8") for t in row[:length]]
        for row, length in zip(tokens, lengths)
    ]


def is_teacher_forced(metric):
    """Whether a metric spec reads only the teacher-forced loss (not the
    decoded text). A spec may say so with a `teacher_forced` attribute."""
    return bool(
        getattr(
            metric,
            "teacher_forced",
            isinstance(metric, metric_specs.LogPerplexityMetricSpec),
        )
    )


def metric_tag(metric, suffix=None):
    """The results key of a metric spec: its name plus how it was measured."""
    if suffix is None:
        suffix = TEACHER_FORCED if is_teacher_forced(metric) else GREEDY
    return f"{metric.name}/{suffix}"


def _copy_metric(metric):
    """A fresh spec with the same class and params (for beam results)."""
    return type(metric)(dict(metric.params), metric.mode)


class Evaluator:
    """Evaluates a model on a dataset of preprocessed, batched features.

    Args:
      model: A `Seq2SeqModel`.
      metrics: `MetricSpec` objects.
      beam_width: When > 1, text metrics are also computed on beam search
        decodes of this width (`/beam{K}` results). The other free-running
        decode is greedy search with the model's sampler (`/greedy` with
        argmax, `/sample` with a random sampler), whatever its beam width.
    """

    def __init__(self, model, metrics, beam_width=0):
        self.model = model
        self.metrics = list(metrics)
        self.beam_width = int(beam_width or 0)
        self.text_metrics = [m for m in self.metrics if not is_teacher_forced(m)]
        self.beam_metrics = (
            [_copy_metric(m) for m in self.text_metrics] if self.beam_width > 1 else []
        )
        self._loss_fn = None
        self._greedy_fn = None
        self._beam_fn = None
        sampler = model.sampler() if hasattr(model, "sampler") else None
        self.decode_suffix = (
            GREEDY if sampler is None or isinstance(sampler, ArgmaxSampler) else SAMPLE
        )

    def _tag(self, metric):
        """The results key of a metric of the teacher-forced or the greedy
        (or sampled) decode."""
        if is_teacher_forced(metric):
            return metric_tag(metric)
        return metric_tag(metric, self.decode_suffix)

    def result_names(self):
        """The keys `evaluate` returns, in order."""
        names = [LOSS_TAG] + [self._tag(m) for m in self.metrics]
        suffix = beam_suffix(self.beam_width)
        names += [metric_tag(m, suffix) for m in self.beam_metrics]
        return names

    def _compile(self, element_spec):
        spec = {k: v for k, v in element_spec.items() if k in _ID_KEYS}
        model = self.model

        @tf.function(input_signature=[spec], autograph=False)
        def loss_fn(features):
            output = model.forward(features, training=False)
            return output.loss_sum, output.num_tokens

        def make_decode(beam_width):
            @tf.function(input_signature=[spec], autograph=False)
            def decode_fn(features):
                predictions = model.infer(features, beam_width=beam_width)
                return predictions["predicted_ids"], predictions["predicted_len"]

            return decode_fn

        self._loss_fn = loss_fn
        self._greedy_fn = make_decode(1)
        self._beam_fn = make_decode(self.beam_width) if self.beam_metrics else None

    def _decode(self, fn, features, oov_tokens=None):
        ids, lengths = fn(features)
        return tokens_from_ids(
            self.model.target_id_to_token, ids.numpy(), lengths.numpy(), oov_tokens
        )

    def evaluate(self, dataset):
        """Runs one pass over `dataset`.

        Returns:
          A dict with `loss/teacher_forced` (the teacher-forced mean token
          cross-entropy, i.e. log-perplexity) and one entry per metric spec
          (see `result_names`).
        """
        if self._loss_fn is None:
            self._compile(dataset.element_spec)
        for metric in self.metrics + self.beam_metrics:
            metric.reset()
        total_loss = total_tokens = 0.0
        for features in dataset:
            ids_only = {k: features[k] for k in _ID_KEYS if k in features}
            loss_sum, num_tokens = self._loss_fn(ids_only)
            loss_sum, num_tokens = float(loss_sum), float(num_tokens)
            total_loss += loss_sum
            total_tokens += num_tokens
            if not self.metrics:
                continue
            references = tokens_from_strings(
                features["target_tokens"].numpy(), features["target_tokens_len"].numpy()
            )
            greedy = (
                self._decode(self._greedy_fn, ids_only, _oov_tokens(features))
                if self.text_metrics
                else [[] for _ in references]
            )
            for metric in self.metrics:
                metric.update(
                    greedy, references, loss_sum=loss_sum, num_tokens=num_tokens
                )
            if self.beam_metrics:
                beam = self._decode(self._beam_fn, ids_only, _oov_tokens(features))
                for metric in self.beam_metrics:
                    metric.update(
                        beam, references, loss_sum=loss_sum, num_tokens=num_tokens
                    )
        results = {LOSS_TAG: total_loss / max(total_tokens, 1.0)}
        for metric in self.metrics:
            results[self._tag(metric)] = float(metric.result())
        suffix = beam_suffix(self.beam_width)
        for metric in self.beam_metrics:
            results[metric_tag(metric, suffix)] = float(metric.result())
        return results
