"""Dev-set evaluation: teacher-forced loss and metrics on free-running decodes.

The loss (and log-perplexity) are measured with teacher forcing, as in
training. Text metrics (BLEU, ROUGE) are measured on real greedy decodes, the
same ones `bin/infer.py` produces, so the BLEU seen in TensorBoard is the BLEU
a user gets at inference time (the original computed it on teacher-forced
argmax outputs, which overstated it).
"""

import tensorflow as tf

_ID_KEYS = ("source_ids", "source_len", "target_ids", "target_len")


def tokens_from_ids(id_to_token, ids, lengths):
    """Maps decoded ids to token lists.

    Args:
      id_to_token: numpy array of token strings indexed by id.
      ids: [B, T] int array.
      lengths: [B] int array of the number of valid ids per row.

    Returns:
      A list of B lists of strings.
    """
    return [list(id_to_token[row[:length]]) for row, length in zip(ids, lengths)]


def tokens_from_strings(tokens, lengths):
    """[B, T] padded byte-string array + [B] lengths -> list of str lists."""
    return [
        [t.decode("utf-8") for t in row[:length]]
        for row, length in zip(tokens, lengths)
    ]


class Evaluator:
    """Evaluates a model on a dataset of preprocessed, batched features.

    Args:
      model: A `Seq2SeqModel`.
      metrics: `MetricSpec` objects fed with free-running hypotheses.
    """

    def __init__(self, model, metrics):
        self.model = model
        self.metrics = list(metrics)
        self._loss_fn = None
        self._decode_fn = None

    def _compile(self, element_spec):
        spec = {k: v for k, v in element_spec.items() if k in _ID_KEYS}
        model = self.model

        @tf.function(input_signature=[spec])
        def loss_fn(features):
            output = model.forward(features, training=False)
            return output.loss_sum, output.num_tokens

        @tf.function(input_signature=[spec])
        def decode_fn(features):
            predictions = model.infer(features)
            return predictions["predicted_ids"], predictions["predicted_len"]

        self._loss_fn, self._decode_fn = loss_fn, decode_fn

    def evaluate(self, dataset):
        """Runs one pass over `dataset`.

        Returns:
          A dict with `loss` (teacher-forced mean token cross-entropy, i.e.
          log-perplexity) and one entry per metric spec, keyed by its name.
        """
        if self._loss_fn is None:
            self._compile(dataset.element_spec)
        for metric in self.metrics:
            metric.reset()
        total_loss = total_tokens = 0.0
        id_to_token = self.model.target_id_to_token
        for features in dataset:
            ids_only = {k: features[k] for k in _ID_KEYS}
            loss_sum, num_tokens = self._loss_fn(ids_only)
            total_loss += float(loss_sum)
            total_tokens += float(num_tokens)
            if not self.metrics:
                continue
            ids, lengths = self._decode_fn(ids_only)
            hypotheses = tokens_from_ids(id_to_token, ids.numpy(), lengths.numpy())
            references = tokens_from_strings(
                features["target_tokens"].numpy(), features["target_tokens_len"].numpy()
            )
            for metric in self.metrics:
                metric.update(
                    hypotheses,
                    references,
                    loss_sum=float(loss_sum),
                    num_tokens=float(num_tokens),
                )
        results = {"loss": total_loss / max(total_tokens, 1.0)}
        for metric in self.metrics:
            results[metric.name] = float(metric.result())
        return results
