#!/usr/bin/env python3
"""Exports a trained model as a SavedModel that translates raw sentences.

  python -m bin.export --model_dir /tmp/nmt \\
    --model_params "inference.beam_search.beam_width: 5" \\
    --export_dir models/nmt/1

The SavedModel's `serving_default` (and `translate`) signature takes
`source`, a [B] string tensor of sentences, and returns `translation`,
`tokens`, `length`, `log_prob` (and `scores` under beam search; with
`--n_best N`, the N best hypotheses as `nbest_*` outputs). For
TensorFlow Serving, export into a numbered version directory as above.
See docs/serving.md.
"""

import sys

from absl import flags

from bin import cli
from seq2seq.configurable import maybe_load_yaml

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "The training output directory to export.")
flags.DEFINE_string(
    "checkpoint_path",
    None,
    "Checkpoint prefix to export; the latest one in --model_dir if unset.",
)
flags.DEFINE_string(
    "model_params",
    "{}",
    "YAML mapping merged over the saved model params, e.g. "
    "'inference.beam_search.beam_width: 5'.",
)
flags.DEFINE_string(
    "export_dir",
    None,
    "The SavedModel directory to write; for TensorFlow Serving a numbered "
    "version directory such as models/nmt/1.",
)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Replace a previous export (a directory with saved_model.pb) in "
    "--export_dir. Any other non-empty directory, and one that is, contains or "
    "lies inside a training run, is refused even with --overwrite.",
)
flags.DEFINE_boolean(
    "allow_vocab_change",
    False,
    "Export even if a vocabulary file's contents differ from the ones recorded "
    "in train_options.json (sha256) when the model was trained; without it "
    "that is an error, since the token ids would map to the wrong tokens.",
)
flags.DEFINE_string(
    "source_delimiter",
    None,
    "What separates source tokens in a served sentence; default: the training "
    "input pipeline's source_delimiter (else a space). Empty: characters.",
)
flags.DEFINE_string(
    "target_delimiter",
    None,
    "What joins the predicted tokens; default: the training input pipeline's "
    "target_delimiter (else a space).",
)
flags.DEFINE_integer(
    "n_best",
    1,
    "Also return the N best hypotheses of each sentence (nbest_translation "
    "[B, N], nbest_tokens, nbest_length, nbest_log_prob, nbest_scores); needs "
    "beam search with inference.beam_search.beam_width >= N.",
)


def main(argv):
    del argv
    model_params = maybe_load_yaml(FLAGS.model_params, "--model_params")
    from seq2seq.inference import export

    result = export.export_saved_model(
        FLAGS.model_dir,
        FLAGS.export_dir,
        checkpoint_path=FLAGS.checkpoint_path,
        model_params=model_params,
        source_delimiter=FLAGS.source_delimiter,
        target_delimiter=FLAGS.target_delimiter,
        overwrite=FLAGS.overwrite,
        allow_vocab_change=FLAGS.allow_vocab_change,
        n_best=FLAGS.n_best,
    )
    print(f"Exported {result.checkpoint_path} to {result.export_dir}")
    print(
        f"source_delimiter={result.source_delimiter!r} "
        f"target_delimiter={result.target_delimiter!r}"
    )
    print(export.format_signatures(result.signatures))
    return 0


def entry_point():
    """Console-script entry point (`seq2seq-export`)."""
    cli.run(main)


if __name__ == "__main__":
    sys.exit(entry_point())
