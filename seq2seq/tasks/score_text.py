"""ScoreText: the model's log-probability and perplexity of given targets."""

import math

import numpy as np

from seq2seq.errors import ConfigError
from seq2seq.tasks.inference_task import InferenceTask, LineWriter, unbatch


def perplexity(log_prob, num_tokens):
    """`exp(-log_prob / num_tokens)`; NaN when there are no tokens."""
    if num_tokens <= 0:
        return float("nan")
    exponent = -float(log_prob) / num_tokens
    return math.exp(exponent) if exponent < 709.0 else float("inf")


class ScoreText(InferenceTask):
    """Scores the input's target sequences with the model (forced decoding).

    Writes one line per example, aligned with the input:
    `log_prob<TAB>perplexity<TAB>num_tokens`, where `log_prob` is the natural
    log-probability of the whole target, `num_tokens` counts the target
    tokens after SEQUENCE_START (SEQUENCE_END included), and perplexity is
    `exp(-log_prob / num_tokens)`. Numbers have six decimals. The input
    pipeline must read target files.

    Params:
      output: A file to write the lines to; "" for standard output.
    """

    needs_scores = True

    def __init__(self, params):
        super().__init__(params)
        self._writer = LineWriter(self.params["output"], "ScoreText: output")

    @staticmethod
    def default_params():
        return {"output": ""}

    def output_paths(self):
        return [("ScoreText: output", self.params["output"])]

    def begin(self):
        self._writer.open()

    @staticmethod
    def score_example(example):
        """Returns `(log_prob, perplexity, num_tokens)` of one example."""
        token_log_probs = example.get("token_log_probs")
        if "target_len" in example:
            num_tokens = max(int(example["target_len"]) - 1, 0)
        else:
            num_tokens = len(token_log_probs)
        if "sequence_log_prob" in example:
            log_prob = float(example["sequence_log_prob"])
        else:
            log_prob = float(np.sum(np.asarray(token_log_probs, np.float64)))
        return log_prob, perplexity(log_prob, num_tokens), num_tokens

    def process_batch(self, predictions):
        has_scores = "sequence_log_prob" in predictions or (
            "token_log_probs" in predictions
        )
        if not has_scores:
            raise ConfigError(
                "ScoreText: the predictions have no target scores; give the input "
                "pipeline target files (e.g. ParallelTextInputPipeline with "
                "target_files) so the targets can be scored."
            )
        for example in unbatch(predictions):
            log_prob, ppl, num_tokens = self.score_example(example)
            self._writer.write_line(f"{log_prob:.6f}\t{ppl:.6f}\t{num_tokens}")
        self._writer.flush()

    def end(self):
        self._writer.close()
