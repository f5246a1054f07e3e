"""Export of a trained model as a SavedModel for serving.

`export_saved_model` rebuilds a model from its training directory (as
`bin/infer.py` does), restores a checkpoint and writes a SavedModel whose
`serving_default` signature translates raw sentences:

    inputs:   source       [B] tf.string    one sentence per element
    outputs:  translation  [B] tf.string    the predicted tokens joined
              tokens       [B, T] tf.string the predicted tokens, "" padded
              length       [B] int32        number of predicted tokens
              log_prob     [B] float32      log-probability of the output
              scores       [B] float32      (beam search only) its ranking
                                            score, length-penalised

Exported with `n_best` N > 1 (beam search of width >= N), it also returns
the N best hypotheses of each sentence, best first:

              nbest_translation [B, N] tf.string
              nbest_tokens      [B, N, T] tf.string
              nbest_length      [B, N] int32
              nbest_log_prob    [B, N] float32
              nbest_scores      [B, N] float32 (ranking scores, descending)

The same function is exported under the signature key `translate` and as the
`translate` attribute of the loaded object.

Inside the graph each sentence is split exactly as the training input
pipeline splits a source line (same delimiter, empty tokens dropped, a
trailing carriage return removed, `SEQUENCE_END` appended), so a client
sends the text it would have written into a source file. The outputs stop
before `SEQUENCE_END`, which is never part of `tokens` or `translation`; a
sentence with no tokens (blank, or only delimiters) gets an empty
translation with length 0 and log-probability 0.

When the model was trained on raw text with SentencePiece tokenizers (the
training input pipeline's `source_tokenizer` / `target_tokenizer`), the
sentence is split into pieces by the source model, `tokens` are the
predicted pieces and `translation` is their detokenized text: raw text in,
plain text out. Both SentencePiece models are embedded in the SavedModel;
a server loading it must `import tensorflow_text` first, which registers
the SentencePiece ops.

The vocabularies live inside the SavedModel (the lookup tables are built
from constants and the id-to-token list is a constant), so the export
directory alone is enough to serve: neither the vocabulary files nor this
package are needed to load it.
"""

import collections
import json
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from seq2seq.configurable import deep_merge
from seq2seq.data import tokenizers as tokenizers_lib
from seq2seq.data.input_pipeline import SEQUENCE_END
from seq2seq.data.text_tokens import split_tokens, split_tokens_batch
from seq2seq.errors import ConfigError, UserError
from seq2seq.inference import inference, safe_paths

SIGNATURE_KEY = "serving_default"
TRANSLATE_KEY = "translate"
EXPORT_INFO_FILE = os.path.join("assets.extra", "export_info.json")
DEFAULT_DELIMITER = " "

ExportResult = collections.namedtuple(
    "ExportResult",
    [
        "export_dir",
        "checkpoint_path",
        "source_delimiter",
        "target_delimiter",
        "signatures",
    ],
)
ExportResult.__doc__ = """What `export_saved_model` wrote.

Fields:
  export_dir: The SavedModel directory.
  checkpoint_path: The checkpoint whose weights were exported.
  source_delimiter: The delimiter sentences are split on.
  target_delimiter: The delimiter output tokens are joined with.
  signatures: `{key: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}`
    of the exported signatures, dtypes as names and shapes as lists with
    `None` for unknown sizes.
"""


class _Translator:
    """The serving computation: sentences in, translations out.

    A plain object, deliberately not trackable: the SavedModel holds the
    variables the traced function reads (see `TranslationModule`), not the
    Keras layers, whose variable wrappers TensorFlow Serving could not
    restore.
    """

    def __init__(
        self, model, source_delimiter, target_delimiter, tokenizers=None, n_best=1
    ):
        self.model = model
        self._source_delimiter = source_delimiter
        self._target_delimiter = target_delimiter
        self._source_tokenizer, self._target_tokenizer = tokenizers or (None, None)
        self._n_best = int(n_best)
        self._end_id = model.target_vocab_info.special_vocab.SEQUENCE_END
        self._id_to_token = [str(t) for t in model.target_id_to_token]

    def _split(self, source):
        """[B] sentences -> `([B, S] tokens padded with "", [B] lengths)`."""
        if self._source_tokenizer is not None:
            ragged, lengths = split_tokens_batch(
                source, self._source_tokenizer, append_token=SEQUENCE_END
            )
            return ragged.to_tensor(default_value=""), lengths

        def split_one(line):
            tokens, _ = split_tokens(
                line, self._source_delimiter, append_token=SEQUENCE_END
            )
            return tokens

        ragged = tf.map_fn(
            split_one,
            source,
            fn_output_signature=tf.RaggedTensorSpec([None], tf.string),
        )
        return ragged.to_tensor(default_value=""), tf.cast(
            ragged.row_lengths(), tf.int32
        )

    def _tokens(self, ids, oov_tokens):
        """[B, T] ids -> tokens; with copy attention an id `V + j` is the
        sentence's j-th source OOV word."""
        if oov_tokens is None:
            return tf.gather(tf.constant(self._id_to_token), ids)
        vocab_size = len(self._id_to_token)
        tokens = tf.gather(
            tf.constant(self._id_to_token), tf.minimum(ids, vocab_size - 1)
        )
        padded = tf.pad(oov_tokens, [[0, 0], [0, 1]], constant_values="UNK")
        slots = tf.clip_by_value(ids - vocab_size, 0, tf.shape(oov_tokens)[1])
        copied = tf.gather(padded, slots, batch_dims=1)
        return tf.where(ids >= vocab_size, copied, tokens)

    def translate(self, source):
        """Translates a batch of sentences; see the module docstring."""
        # The decoding loops cannot stack zero rows: answer an empty batch
        # without running the model.
        return tf.cond(
            tf.size(source) > 0,
            lambda: self._translate_batch(source),
            self._empty_outputs,
        )

    def _empty_outputs(self):
        outputs = {
            "translation": tf.zeros([0], tf.string),
            "tokens": tf.zeros([0, 0], tf.string),
            "length": tf.zeros([0], tf.int32),
            "log_prob": tf.zeros([0], tf.float32),
        }
        if self.model.use_beam_search:
            outputs["scores"] = tf.zeros([0], tf.float32)
        n = self._n_best
        if n > 1:
            outputs.update(
                {
                    "nbest_translation": tf.zeros([0, n], tf.string),
                    "nbest_tokens": tf.zeros([0, n, 0], tf.string),
                    "nbest_length": tf.zeros([0, n], tf.int32),
                    "nbest_log_prob": tf.zeros([0, n], tf.float32),
                    "nbest_scores": tf.zeros([0, n], tf.float32),
                }
            )
        return outputs

    def _words(self, ids, lengths, blank, oov_tokens=None):
        """The output tokens of decoded hypotheses.

        Args:
          ids: [M, T] int32 decoded ids.
          lengths: [M] int32 decoded lengths (SEQUENCE_END included).
          blank: [M] bool, hypotheses of blank sentences (no output).
          oov_tokens: [M, O] string source OOV words of each hypothesis'
            sentence (copy attention), or None.

        Returns:
          `(tokens [M, W] string padded with "", length [M] int32,
          translation [M] string)`, SEQUENCE_END left out; the translation
          is detokenized when a target tokenizer is set.
        """
        positions = tf.range(tf.shape(ids)[1])[None, :]
        valid = (
            (positions < lengths[:, None])
            & tf.not_equal(ids, self._end_id)
            & tf.logical_not(blank)[:, None]
        )
        length = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        width = tf.reduce_max(tf.concat([length, [0]], axis=0))
        tokens = self._tokens(ids, oov_tokens)
        tokens = tf.where(valid, tokens, "")[:, :width]
        kept = tf.RaggedTensor.from_tensor(tokens, lengths=length)
        if self._target_tokenizer is not None:
            translation = self._target_tokenizer.detokenize(kept)
        else:
            translation = tf.strings.reduce_join(
                kept, axis=1, separator=self._target_delimiter
            )
        return tokens, length, translation

    def _translate_batch(self, source):
        model = self.model
        source_tokens, source_len = self._split(source)
        features = model.preprocess(
            {"source_tokens": source_tokens, "source_len": source_len}
        )
        keys = ("source_ids", "source_len", "source_copy_ids", "source_oov_mask")
        extra = {"n_best": self._n_best} if model.use_beam_search else {}
        predictions = model.infer(
            {k: features[k] for k in keys if k in features}, **extra
        )
        # Only SEQUENCE_END was there: nothing to translate.
        blank = source_len <= 1
        oov_tokens = features.get("source_oov_tokens")
        tokens, length, translation = self._words(
            predictions["predicted_ids"],
            predictions["predicted_len"],
            blank,
            oov_tokens,
        )
        zero = tf.zeros_like(predictions["log_probs"])
        outputs = {
            "translation": translation,
            "tokens": tokens,
            "length": length,
            "log_prob": tf.where(blank, zero, predictions["log_probs"]),
        }
        if model.use_beam_search:
            scores = predictions["nbest.scores"][:, 0]
            outputs["scores"] = tf.where(blank, zero, scores)
        if self._n_best > 1:
            outputs.update(self._nbest_outputs(predictions, blank, oov_tokens))
        return outputs

    def _nbest_outputs(self, predictions, blank, oov_tokens=None):
        """The `nbest_*` outputs ([B, N, ...]) from the `nbest.*`
        predictions."""
        ids = predictions["nbest.predicted_ids"]  # [B, N, T]
        batch, n = tf.shape(ids)[0], self._n_best
        flat_blank = tf.repeat(blank, n)
        if oov_tokens is not None:
            oov_tokens = tf.repeat(oov_tokens, n, axis=0)
        tokens, length, translation = self._words(
            tf.reshape(ids, [batch * n, -1]),
            tf.reshape(predictions["nbest.predicted_len"], [-1]),
            flat_blank,
            oov_tokens,
        )
        kept = tf.logical_not(blank)[:, None]
        return {
            "nbest_translation": tf.reshape(translation, [batch, n]),
            "nbest_tokens": tf.reshape(tokens, [batch, n, -1]),
            "nbest_length": tf.reshape(length, [batch, n]),
            "nbest_log_prob": tf.where(kept, predictions["nbest.log_probs"], 0.0),
            "nbest_scores": tf.where(kept, predictions["nbest.scores"], 0.0),
        }


class TranslationModule(tf.Module):
    """The object saved in the SavedModel.

    It holds the traced `translate` function, the variables that function
    reads and the vocabulary lookup table, and nothing else: the Keras model
    itself is not part of the SavedModel, so the variables are saved once,
    under the names the function reads, as the TensorFlow Serving (C++) and
    TF1 loaders need.

    Args:
      model: A `Seq2SeqModel` in infer mode whose variables exist.
      source_delimiter: Characters that separate source tokens; "" splits
        into Unicode characters.
      target_delimiter: The string the output tokens are joined with.
      tokenizers: `(source, target)` `SubwordTokenizer`s or `None`s: a
        source tokenizer splits sentences instead of `source_delimiter`, a
        target tokenizer detokenizes the translation instead of joining
        with `target_delimiter`. Their models are saved with the module.
      n_best: With N > 1, also return the N best hypotheses (`nbest_*`).
    """

    def __init__(
        self,
        model,
        source_delimiter=" ",
        target_delimiter=" ",
        tokenizers=None,
        n_best=1,
    ):
        super().__init__(name="seq2seq_serving")
        translator = _Translator(
            model, source_delimiter, target_delimiter, tokenizers, n_best
        )
        # Tracked, so that the SentencePiece models are saved as well.
        self.tokenizers = [t for t in (tokenizers or ()) if t is not None]
        self.translate = tf.function(
            translator.translate,
            input_signature=[tf.TensorSpec([None], tf.string, name="source")],
            autograph=False,
        )
        concrete = self.translate.get_concrete_function()
        # What the function captures must be reachable from the root object.
        self.model_variables = list(concrete.variables)
        self.vocab_tables = [model.source_vocab_table]


def _pipeline_delimiters(train_options):
    """The (source, target) delimiters of the training input pipeline, or
    `None` for each one it does not name."""
    params = inference.training_pipeline_params(train_options)
    return params.get("source_delimiter"), params.get("target_delimiter")


SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def _check_export_dir(export_dir, overwrite, model_dirs):
    """Refuses an `export_dir` whose replacement could lose anything.

    Only a directory that holds a previous export (a SavedModel) is ever
    replaced, and only with `overwrite`. A directory that is, contains or
    lies inside a training run (one of `model_dirs`, or any directory with a
    `train_options.json` or `checkpoint` file) is never written to.

    Raises:
      UserError: `export_dir` is not usable; nothing has been touched.
    """
    if not export_dir:
        raise UserError("--export_dir is not set; e.g. --export_dir models/nmt/1.")
    if tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
        raise UserError(
            f"--export_dir={export_dir} is a file; choose a directory path."
        )
    outside = "choose a directory outside it, e.g. models/nmt/1."
    for model_dir in model_dirs:
        if not model_dir or not os.path.isdir(model_dir):
            continue
        if safe_paths.is_within(export_dir, model_dir):
            raise UserError(
                f"--export_dir={export_dir} is or lies inside the training run "
                f"{model_dir}; {outside}"
            )
        if safe_paths.is_within(model_dir, export_dir):
            raise UserError(
                f"--export_dir={export_dir} contains the training run {model_dir}; "
                f"{outside}"
            )
    run = safe_paths.enclosing_training_run(export_dir)
    if run:
        raise UserError(
            f"--export_dir={export_dir} is or lies inside the training run {run}; "
            f"{outside}"
        )
    if not tf.io.gfile.exists(export_dir) or not tf.io.gfile.listdir(export_dir):
        return
    if not overwrite:
        raise UserError(
            f"--export_dir={export_dir} exists and is not empty; choose a new "
            "directory (e.g. the next version number) or pass --overwrite to "
            "replace the export in it."
        )
    if not any(os.path.isfile(os.path.join(export_dir, n)) for n in SAVED_MODEL_FILES):
        raise UserError(
            f"--export_dir={export_dir} is not empty and holds no SavedModel "
            "(saved_model.pb); --overwrite only replaces a previous export. Choose "
            "a new or empty directory."
        )
    run = safe_paths.training_run_inside(export_dir)
    if run:
        raise UserError(
            f"--export_dir={export_dir} contains the training run {run}; {outside}"
        )


def _spec_summary(spec):
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    return spec.dtype.name, shape


def _signature_summary(concrete):
    args, kwargs = concrete.structured_input_signature
    specs = {spec.name: spec for spec in args}
    specs.update(kwargs)
    inputs = {name: _spec_summary(spec) for name, spec in sorted(specs.items())}
    outputs = {
        name: _spec_summary(tf.TensorSpec(t.shape, t.dtype))
        for name, t in sorted(concrete.structured_outputs.items())
    }
    return {"inputs": inputs, "outputs": outputs}


def format_signatures(signatures):
    """Human-readable lines describing `ExportResult.signatures`."""
    lines = []

    def fmt(name, dtype_shape):
        dtype, shape = dtype_shape
        dims = (
            "?"
            if shape is None
            else ", ".join("None" if d is None else str(d) for d in shape)
        )
        return f"    {name}: {dtype} [{dims}]"

    for key, sig in signatures.items():
        lines.append(f"signature '{key}':")
        lines.append("  inputs:")
        lines.extend(fmt(n, s) for n, s in sig["inputs"].items())
        lines.append("  outputs:")
        lines.extend(fmt(n, s) for n, s in sig["outputs"].items())
    return "\n".join(lines)


def _check_n_best(model, n_best):
    """Raises a ConfigError for an `n_best` the model cannot give."""
    if isinstance(n_best, bool) or not isinstance(n_best, int) or n_best < 1:
        raise ConfigError(f"--n_best must be an integer >= 1, got {n_best!r}.")
    if n_best == 1:
        return
    if not model.use_beam_search:
        raise ConfigError(
            f"--n_best={n_best} needs beam search; add --model_params "
            f"'inference.beam_search.beam_width: {n_best}' (or wider)."
        )
    width = model.beam_search_config().beam_width
    if n_best > width:
        raise ConfigError(
            f"--n_best={n_best} is more than inference.beam_search.beam_width "
            f"{width}; lower --n_best or raise the beam width."
        )


def _dummy_features(model):
    return inference.dummy_features(model)


def export_saved_model(
    model_dir,
    export_dir,
    checkpoint_path=None,
    model_params=None,
    source_delimiter=None,
    target_delimiter=None,
    overwrite=False,
    allow_vocab_change=False,
    n_best=1,
):
    """Writes a trained model as a SavedModel that translates raw sentences.

    Args:
      model_dir: The training output directory (with `train_options.json`).
      export_dir: The SavedModel directory to write, e.g. `models/nmt/1` for
        TensorFlow Serving. It must not exist or be empty unless `overwrite`.
      checkpoint_path: The checkpoint to export; the latest one in
        `model_dir` when `None`.
      model_params: Overrides merged over the saved model params, chosen at
        export time, e.g. `{"inference.beam_search.beam_width": 5}`.
      source_delimiter: How sentences are split into tokens; `None` takes
        the training input pipeline's `source_delimiter` (default " "), ""
        splits into characters.
      target_delimiter: What output tokens are joined with; `None` takes the
        training input pipeline's `target_delimiter` (default " ").
      overwrite: Replace a previous export (a SavedModel) in `export_dir`.
        The old export is only removed once the new one is written. A
        non-empty directory without `saved_model.pb` is never replaced, and
        an `export_dir` that is, contains or lies inside a training run is
        always refused.
      allow_vocab_change: Export even if a vocabulary file differs from the
        one recorded in `train_options.json` (see
        `inference.check_vocabularies`).
      n_best: With N > 1 the signature also returns the N best hypotheses
        of each sentence (`nbest_*` outputs); needs beam search of width
        >= N.

    Returns:
      An `ExportResult`.

    Raises:
      UserError: `export_dir` is not usable, or the model directory,
        checkpoint, params or vocabularies are.
    """
    model_dirs = [model_dir]
    if checkpoint_path and checkpoint_path not in ("best", "latest"):
        model_dirs.append(
            checkpoint_path
            if os.path.isdir(checkpoint_path)
            else os.path.dirname(os.path.abspath(checkpoint_path))
        )
    _check_export_dir(export_dir, overwrite, model_dirs)
    if model_params is not None and not isinstance(model_params, dict):
        raise ConfigError(
            "--model_params must be a YAML mapping such as "
            "'inference.beam_search.beam_width: 5'."
        )
    train_options = inference.load_train_options(model_dir)
    inference.check_vocabularies(
        train_options, model_params, allow_change=allow_vocab_change
    )
    checkpoint = inference.resolve_checkpoint(model_dir, checkpoint_path)
    trained_source, trained_target = _pipeline_delimiters(train_options)
    if source_delimiter is None:
        source_delimiter = trained_source
    if source_delimiter is None:
        source_delimiter = DEFAULT_DELIMITER
    if target_delimiter is None:
        target_delimiter = trained_target
    if target_delimiter is None:
        target_delimiter = DEFAULT_DELIMITER
    logging.info(
        "Sentences are split on %r, output tokens joined with %r",
        source_delimiter,
        target_delimiter,
    )

    # Raw text in, plain text out when training tokenized with SentencePiece.
    tokenizer_paths = inference.training_tokenizers(train_options)
    tokenizers_lib.check_vocabularies(
        tokenizer_paths, deep_merge(train_options.model_params, model_params or {})
    )
    tokenizers = tuple(
        (
            tokenizers_lib.SubwordTokenizer(path, f"training {side}_tokenizer")
            if path
            else None
        )
        for side, path in zip(("source", "target"), tokenizer_paths)
    )

    model = inference.build_model(train_options, model_params)
    _check_n_best(model, n_best)
    inference.create_variables(model)
    inference.restore_model(model, checkpoint)

    module = TranslationModule(
        model, source_delimiter, target_delimiter, tokenizers, n_best
    )
    concrete = module.translate.get_concrete_function()
    signatures = {SIGNATURE_KEY: concrete, TRANSLATE_KEY: concrete}

    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    tf.io.gfile.makedirs(parent)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        info = {
            "model_class": train_options.model_class,
            "model_dir": os.path.abspath(model_dir),
            "checkpoint_path": checkpoint,
            "model_params": dict(model.params),
            "source_delimiter": source_delimiter,
            "target_delimiter": target_delimiter,
            "source_tokenizer": tokenizer_paths[0],
            "target_tokenizer": tokenizer_paths[1],
            "n_best": n_best,
            "signatures": sorted(signatures),
        }
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(
            os.path.join(staging, EXPORT_INFO_FILE), "w", encoding="utf-8"
        ) as handle:
            json.dump(info, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        if os.path.isdir(export_dir):
            shutil.rmtree(export_dir)
        os.rename(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logging.info("Exported %s to %s", checkpoint, export_dir)
    summary = {key: _signature_summary(fn) for key, fn in signatures.items()}
    return ExportResult(
        export_dir, checkpoint, source_delimiter, target_delimiter, summary
    )
