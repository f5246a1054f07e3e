"""DecodeText: prints the model's predictions as text, one line per input
(or, with `n_best`, a block of scored hypotheses per input)."""

import math
import os

import numpy as np

from seq2seq.configurable import locate_function
from seq2seq.data import postproc
from seq2seq.errors import ConfigError, DataError
from seq2seq.tasks.inference_task import (
    SEQUENCE_END,
    InferenceTask,
    LineWriter,
    unbatch,
)

UNK = "UNK"


def resolve_postproc_fn(name):
    """Finds a post-processing function by name.

    Args:
      name: A function of `seq2seq.data.postproc` by its short name
        (`strip_bpe`) or its dotted path (`seq2seq.data.postproc.strip_bpe`);
        "" for none. Other functions cannot be named.

    Returns:
      A callable `str -> str`, or `None` for "".

    Raises:
      ConfigError: `name` is not a function of `seq2seq.data.postproc`.
    """
    if not name:
        return None
    return locate_function(name, postproc, what="DecodeText: postproc_fn")


def read_unk_mapping(path):
    """Reads a `source<TAB>target` dictionary for UNK replacement.

    Each line is `source<TAB>target`, optionally followed by more tab-separated
    fields (fast_align's `source<TAB>target<TAB>probability` works as is).
    Both tokens are stripped of surrounding whitespace; blank lines are
    skipped; when a source token appears more than once its first line wins.

    Args:
      path: The mapping file (UTF-8).

    Returns:
      A dict from source token to target token.

    Raises:
      DataError: The file is missing or a line has no tab.
    """
    if not os.path.isfile(path):
        raise DataError(
            f"DecodeText: unk_mapping file not found: {path}. Give the path of a "
            "'source<TAB>target' file or remove unk_mapping."
        )
    mapping = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 2:
                raise DataError(
                    f"DecodeText: unk_mapping file {path}: line {number} "
                    f"{line.strip()!r} has no tab; each line must be "
                    "'source<TAB>target'."
                )
            source, target = fields[0].strip(), fields[1].strip()
            mapping.setdefault(source, target)
    return mapping


def replace_unknown_tokens(source_tokens, predicted_tokens, attention, mapping=None):
    """Replaces every UNK with the source token it attends to most.

    For the UNK at step `t`, the source position with the largest
    `attention[t]` is chosen among the source's real tokens: the trailing
    SEQUENCE_END every source ends with is left out (copying it would end
    the output), as the original did. The chosen source token is then
    looked up in `mapping`, if given and present there. An UNK stays UNK
    when the source has no real token.

    Args:
      source_tokens: [S] str, the source tokens (may end with SEQUENCE_END).
      predicted_tokens: [T] str, the predicted tokens.
      attention: [T, S] float, the attention of each step over the source,
        in the order the source was written.
      mapping: An optional dict from source token to target token.

    Returns:
      A list of `T` tokens.
    """
    num_source = len(source_tokens)
    if num_source and source_tokens[num_source - 1] == SEQUENCE_END:
        num_source -= 1
    attention = np.asarray(attention)
    result = []
    for step, token in enumerate(predicted_tokens):
        if token == UNK and num_source > 0 and step < attention.shape[0]:
            row = attention[step, :num_source]
            chosen = source_tokens[int(np.argmax(row))]
            if mapping is not None:
                chosen = mapping.get(chosen, chosen)
            token = chosen
        result.append(token)
    return result


class DecodeText(InferenceTask):
    """Writes the best prediction of each example as one line of text.

    The predicted tokens up to (not including) the first SEQUENCE_END are
    joined with `delimiter` (or, for a model trained with a SentencePiece
    `target_tokenizer`, detokenized by it into plain text), passed through
    `postproc_fn` and stripped; each
    example gives exactly one line, an empty one when nothing was predicted,
    so the output stays aligned with the input. With a copy-attention model
    (`decoder.class: CopyAttentionDecoder`) the predicted tokens already hold the source
    words it copied from outside its vocabulary (`bin/infer.py` maps their
    extended ids back, see `seq2seq.data.copy_vocab`).

    With `n_best: N` > 1 (beam search with a width >= N) each example gives
    a block instead: its N best hypotheses, best first, one per line as
    `score<TAB>text` (the beam search's ranking score with six decimals),
    then one blank line. A hypothesis the search could not fill (score
    -inf, possible only when the beam is wider than the number of possible
    outputs) is left out of its block.

    Params:
      delimiter: The string the tokens are joined with (" "; "" for
        characters).
      unk_replace: Replace each predicted UNK with the source token that has
        the highest attention weight at that step (needs an attention model).
      unk_mapping: With `unk_replace`, the path of a `source<TAB>target` file;
        a copied source token found there is replaced with its target.
      postproc_fn: A function applied to every line: a short name from
        `seq2seq.data.postproc` (`strip_bpe`, `decode_sentencepiece`,
        `slice_text`) or its dotted path in that module; "" for none.
      output: A file to write the lines to; "" for standard output.
      n_best: The number of hypotheses to write per example (1: the best
        only, as one plain line).

    Attributes:
      n_best: The `n_best` param; the driver decodes that many hypotheses.

    Raises:
      ConfigError: `n_best` is not an integer >= 1.
    """

    def __init__(self, params):
        super().__init__(params)
        n_best = self.params["n_best"]
        if isinstance(n_best, bool) or not isinstance(n_best, int) or n_best < 1:
            raise ConfigError(
                f"DecodeText: n_best must be an integer >= 1 (1 writes the best "
                f"hypothesis only), got {n_best!r}."
            )
        self.n_best = n_best
        self._postproc_fn = resolve_postproc_fn(self.params["postproc_fn"])
        self._unk_mapping = None
        if self.params["unk_mapping"]:
            self._unk_mapping = read_unk_mapping(str(self.params["unk_mapping"]))
        self._writer = LineWriter(self.params["output"], "DecodeText: output")
        self._detokenizer = None

    def set_target_tokenizer(self, path):
        """Detokenizes the predicted pieces with this SentencePiece model
        (`bin/infer.py` passes the training `target_tokenizer`)."""
        from seq2seq.data import sentencepiece_model

        self._detokenizer = sentencepiece_model.load_processor(
            path, "DecodeText: target_tokenizer"
        )

    @staticmethod
    def default_params():
        return {
            "delimiter": " ",
            "unk_replace": False,
            "unk_mapping": None,
            "postproc_fn": "",
            "output": "",
            "n_best": 1,
        }

    def output_paths(self):
        return [("DecodeText: output", self.params["output"])]

    def input_paths(self):
        return [str(self.params["unk_mapping"])] if self.params["unk_mapping"] else []

    def begin(self):
        self._writer.open()

    def _text(self, tokens, source_tokens, attention):
        """The output text of one hypothesis.

        Args:
          tokens: [T] str predicted tokens (SEQUENCE_END and what follows
            are cut off).
          source_tokens: [S] str, for `unk_replace`.
          attention: [T, S] attention of the hypothesis, for `unk_replace`.
        """
        tokens = list(tokens)
        if SEQUENCE_END in tokens:
            tokens = tokens[: tokens.index(SEQUENCE_END)]
        if self.params["unk_replace"]:
            tokens = replace_unknown_tokens(
                source_tokens, tokens, attention, self._unk_mapping
            )
        if self._detokenizer is not None:
            from seq2seq.data import sentencepiece_model

            text = sentencepiece_model.detokenize(self._detokenizer, tokens)
        else:
            text = self.params["delimiter"].join(tokens)
        if self._postproc_fn is not None:
            text = self._postproc_fn(text)
        return text.strip()

    def decode_example(self, example):
        """Returns the output line of one (unbatched, trimmed) example."""
        return self._text(
            example["predicted_tokens"],
            example.get("source_tokens"),
            example.get("attention_scores"),
        )

    def decode_nbest(self, example):
        """Returns the `score<TAB>text` lines of one example's n-best list
        (the `nbest.*` arrays of an unbatched, trimmed example)."""
        lines = []
        source_tokens = example.get("source_tokens")
        attention = example.get("nbest.attention_scores")
        for index in range(min(self.n_best, len(example["nbest.scores"]))):
            score = float(example["nbest.scores"][index])
            if math.isinf(score) and score < 0:
                continue
            length = int(example["nbest.predicted_len"][index])
            tokens = example["nbest.predicted_tokens"][index][:length]
            rows = None
            if attention is not None:
                rows = attention[index][:length]
                if source_tokens is not None:
                    rows = rows[:, : len(source_tokens)]
            text = self._text(tokens, source_tokens, rows)
            lines.append(f"{score:.6f}\t{text}")
        return lines

    def process_batch(self, predictions):
        if self.params["unk_replace"] and "attention_scores" not in predictions:
            raise ConfigError(
                "DecodeText: unk_replace needs attention scores, but the model has "
                "no attention. Use an attention model (e.g. AttentionSeq2Seq) or "
                "set unk_replace: false."
            )
        if self.n_best > 1 and "nbest.scores" not in predictions:
            raise ConfigError(
                f"DecodeText: n_best is {self.n_best} but the model decoded one "
                "hypothesis per input; decode with beam search "
                f"(inference.beam_search.beam_width >= {self.n_best})."
            )
        for example in unbatch(predictions):
            if self.n_best > 1:
                for line in self.decode_nbest(example):
                    self._writer.write_line(line)
                self._writer.write_line("")
            else:
                self._writer.write_line(self.decode_example(example))
        self._writer.flush()

    def end(self):
        self._writer.close()
