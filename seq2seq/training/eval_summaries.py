"""TensorBoard images and text of a few fixed dev sentences.

With `--eval_summary_examples N` the first N sentences of the dev set (in
file order, whatever the dev batching) are decoded greedily at each
evaluation, and the eval writer (`output_dir/eval`) gets

* `samples`: a text summary, a Markdown table with one row per sentence:
  source, reference and prediction (what `TrainSampleHook` logs for training
  batches);
* `attention/example_<i>`: for models with attention, an image summary of
  sentence i's attention heat map (prediction tokens down, source tokens
  across, drawn by matplotlib's headless Agg canvas as `DumpAttention` draws
  it).

The same sentences are decoded every time, so the images show how the
alignment of one sentence forms as training goes on.
"""

import io

import numpy as np
import tensorflow as tf
from absl import logging

from seq2seq.data import batching
from seq2seq.training.evaluation import tokens_from_ids, tokens_from_strings
from seq2seq.training.train_step import select_ids

# Tokens that frame sequences; left out of the displayed text.
_FRAME_TOKENS = ("SEQUENCE_START", "SEQUENCE_END")


def display_text(tokens, delimiter=" "):
    """Tokens as shown in a summary: framing tokens dropped, joined."""
    return delimiter.join(t for t in tokens if t not in _FRAME_TOKENS and t != "")


def markdown_table(rows, header=("source", "reference", "prediction")):
    """A Markdown table (what TensorBoard's text tab renders).

    Args:
      rows: A list of tuples of strings, each as long as `header`.
      header: The column titles.

    Returns:
      A str; `|` in cells is escaped and empty cells show as `(empty)`.
    """

    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ") or "(empty)"

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def attention_png(scores, source_tokens, predicted_tokens, title=None):
    """A heat map of one attention matrix, as PNG bytes (see
    `seq2seq.tasks.dump_attention.plot_attention`).

    Args:
      scores: [T, S] float.
      source_tokens: [S] str.
      predicted_tokens: [T] str.
      title: An optional title.
    """
    from seq2seq.tasks.dump_attention import plot_attention

    buffer = io.BytesIO()
    plot_attention(scores, source_tokens, predicted_tokens, buffer, title=title)
    return buffer.getvalue()


class EvalSamples:
    """Decodes the first `num_examples` dev sentences and writes their
    translations and attention heat maps to the default summary writer.

    Args:
      model: A `Seq2SeqModel`.
      pipeline: The dev `InputPipeline` (read in file order).
      num_examples: How many sentences (> 0).
    """

    def __init__(self, model, pipeline, num_examples):
        self.model = model
        self.pipeline = pipeline
        self.num_examples = int(num_examples)
        self._features = None
        self._decode = None

    def _batch(self):
        """The preprocessed batch of the first sentences (read once)."""
        if self._features is None:
            dataset = batching.create_input_fn(
                self.pipeline,
                batch_size=self.num_examples,
                allow_smaller_final_batch=True,
                max_source_len=self.model.params.get("source.max_seq_len"),
            )
            self._features = self.model.preprocess(next(iter(dataset.take(1))))
            model = self.model
            self._decode = tf.function(
                lambda features: model.infer(features, beam_width=1),
                autograph=False,
            )
        return self._features

    def decode(self):
        """Decodes the sentences.

        Returns:
          A list of dicts, one per sentence: `source`, `reference`,
          `prediction` (token lists) and `attention` ([T, S] numpy array over
          the source in written order, or None without attention).
        """
        features = self._batch()
        predictions = self._decode(select_ids(features))
        source_len = features["source_len"].numpy()
        sources = tokens_from_strings(features["source_tokens"].numpy(), source_len)
        references = tokens_from_strings(
            features["target_tokens"].numpy(), features["target_tokens_len"].numpy()
        )
        predicted_len = predictions["predicted_len"].numpy()
        hypotheses = tokens_from_ids(
            self.model.target_id_to_token,
            predictions["predicted_ids"].numpy(),
            predicted_len,
        )
        attention = predictions.get("attention_scores")
        attention = None if attention is None else attention.numpy()
        samples = []
        for i, (source, reference, hypothesis) in enumerate(
            zip(sources, references, hypotheses)
        ):
            scores = None
            if attention is not None:
                scores = attention[i, : predicted_len[i], : source_len[i]]
            samples.append(
                {
                    "source": source,
                    "reference": reference,
                    "prediction": [str(t) for t in hypothesis],
                    "attention": scores,
                }
            )
        return samples

    def write(self):
        """Decodes and writes `samples` and `attention/example_<i>` to the
        default writer at its default step."""
        samples = self.decode()
        rows = [
            (
                display_text(s["source"]),
                display_text(s["reference"]),
                display_text(s["prediction"]),
            )
            for s in samples
        ]
        tf.summary.text("samples", markdown_table(rows))
        for index, sample in enumerate(samples):
            if sample["attention"] is None:
                continue
            try:
                png = attention_png(
                    sample["attention"],
                    sample["source"],
                    sample["prediction"],
                    title=f"dev example {index}",
                )
            except (ValueError, RuntimeError, OSError) as err:
                logging.warning(
                    "Could not draw attention of example %d: %s", index, err
                )
                continue
            image = tf.image.decode_png(png, channels=4)
            tf.summary.image(f"attention/example_{index}", image[np.newaxis])
