"""DecodeText: prints the model's predictions as text, one line per input."""

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
    (`copy_attention: true`) the predicted tokens already hold the source
    words it copied from outside its vocabulary (`bin/infer.py` maps their
    extended ids back, see `seq2seq.data.copy_vocab`).

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
    """

    def __init__(self, params):
        super().__init__(params)
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
        }

    def output_paths(self):
        return [("DecodeText: output", self.params["output"])]

    def input_paths(self):
        return [str(self.params["unk_mapping"])] if self.params["unk_mapping"] else []

    def begin(self):
        self._writer.open()

    def decode_example(self, example):
        """Returns the output line of one (unbatched, trimmed) example."""
        tokens = list(example["predicted_tokens"])
        if SEQUENCE_END in tokens:
            tokens = tokens[: tokens.index(SEQUENCE_END)]
        if self.params["unk_replace"]:
            tokens = replace_unknown_tokens(
                example["source_tokens"],
                tokens,
                example["attention_scores"],
                self._unk_mapping,
            )
        if self._detokenizer is not None:
            from seq2seq.data import sentencepiece_model

            text = sentencepiece_model.detokenize(self._detokenizer, tokens)
        else:
            text = self.params["delimiter"].join(tokens)
        if self._postproc_fn is not None:
            text = self._postproc_fn(text)
        return text.strip()

    def process_batch(self, predictions):
        if self.params["unk_replace"] and "attention_scores" not in predictions:
            raise ConfigError(
                "DecodeText: unk_replace needs attention scores, but the model has "
                "no attention. Use an attention model (e.g. AttentionSeq2Seq) or "
                "set unk_replace: false."
            )
        for example in unbatch(predictions):
            self._writer.write_line(self.decode_example(example))
        self._writer.flush()

    def end(self):
        self._writer.close()
