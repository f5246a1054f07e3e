#!/usr/bin/env python3
"""Runs inference tasks with a trained model over an input pipeline.

Same flags as the original `bin/infer.py`:

  python -m bin.infer --tasks "- class: DecodeText" --model_dir /tmp/nmt \\
    --model_params "inference.beam_search.beam_width: 5" \\
    --input_pipeline "class: ParallelTextInputPipeline
  params: {source_files: [test/sources.txt]}" > predictions.txt

Predictions go to stdout, logs and the progress line to stderr.
"""

import sys

from absl import flags, logging

from bin import cli
from seq2seq.configurable import (
    ModeKeys,
    create_from_dict,
    deep_merge,
    load_yaml_file,
    maybe_load_yaml,
)
from seq2seq.errors import ConfigError
from seq2seq.inference import length_sorting

FLAGS = flags.FLAGS

flags.DEFINE_string("tasks", "[]", "YAML list of inference tasks {class, params}.")
flags.DEFINE_string(
    "model_params",
    "{}",
    "YAML mapping merged over the saved model params, e.g. "
    "'inference.beam_search.beam_width: 5'.",
)
flags.DEFINE_string(
    "config_path", None, "A YAML file whose keys set flags of the same name."
)
flags.DEFINE_string(
    "input_pipeline", None, "YAML {class, params} of the input to decode."
)
flags.DEFINE_string(
    "model_dir",
    None,
    "The training output directory to load; several, comma-separated, decode "
    "as an ensemble (same source and target vocabularies).",
)
flags.DEFINE_string(
    "checkpoint_path",
    None,
    "Checkpoint prefix to restore; 'best' for the best checkpoint by the dev "
    "metric (--model_dir/best), 'latest' or unset for the latest one in "
    "--model_dir. Comma-separated for an ensemble: one per --model_dir, or "
    "several checkpoints of a single --model_dir.",
)
flags.DEFINE_boolean(
    "allow_vocab_change",
    False,
    "Decode even if a vocabulary file's contents differ from the ones recorded "
    "in train_options.json (sha256) when the model was trained; without it "
    "that is an error, since the token ids would map to the wrong tokens.",
)
flags.DEFINE_integer("batch_size", 32, "Sentences per batch.")
flags.DEFINE_integer(
    "sort_window",
    length_sorting.DEFAULT_WINDOW,
    "Decode each window of this many input sentences in batches of similar "
    "source length, so that fewer steps are spent on padding and on waiting "
    "for a batch's longest output; the outputs keep the input order. 0 "
    "decodes the batches in input order.",
)
flags.DEFINE_boolean("progress", True, "Show a progress line on stderr.")
flags.DEFINE_boolean(
    "jit_compile",
    False,
    "Compile the decoding loop (greedy or beam search) with XLA; compiles once "
    "per batch shape (sources padded to a multiple of 8 tokens).",
)
flags.DEFINE_float(
    "gpu_memory_fraction", 1.0, "Fraction of each GPU's memory to use (<1 caps it)."
)
flags.DEFINE_boolean(
    "gpu_allow_growth", False, "Grow GPU memory on demand instead of at start."
)
flags.DEFINE_boolean("log_device_placement", False, "Log the device of every op.")

_YAML_FLAGS = ("tasks", "model_params", "input_pipeline")


# Smallest valid value of the counting flags (--sort_window 0: no sorting).
_AT_LEAST = {"batch_size": 1, "sort_window": 0}


def resolve_flags(flag_values):
    """Applies `--config_path` under the command line; parses YAML flags."""
    values = {name: flag_values[name].value for name in flag_values}
    if values["config_path"]:
        config = load_yaml_file(values["config_path"])
        if not isinstance(config, dict):
            raise ConfigError(
                f"{values['config_path']}: must be a mapping of flag: value."
            )
        for key, value in config.items():
            if key not in values:
                logging.warning("Ignoring config key '%s': it is not a flag.", key)
            elif not flag_values[key].present:
                values[key] = cli.config_value(flag_values[key], value)
    for name in _YAML_FLAGS:
        source = f"--{name}"
        if values[name] is None:
            values[name] = {}
        parsed = (
            maybe_load_yaml(values[name], source)
            if isinstance(values[name], str)
            else values[name]
        )
        values[name] = parsed
    if (
        isinstance(values["model_params"], dict)
        and flag_values["model_params"].present
        and values["config_path"]
    ):
        config_params = load_yaml_file(values["config_path"]).get("model_params")
        if isinstance(config_params, dict):
            values["model_params"] = deep_merge(config_params, values["model_params"])
    cli.check_counts(values, _AT_LEAST)
    return values


def _split_list(value):
    """A comma-separated flag value (or a YAML list from --config_path) as a
    list of its non-empty entries."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def main(argv):
    del argv
    values = resolve_flags(FLAGS)
    from seq2seq import tasks as tasks_lib
    from seq2seq.data import input_pipeline, tokenizers
    from seq2seq.inference import inference

    task_defs = values["tasks"] or []
    if isinstance(task_defs, dict):
        task_defs = [task_defs]
    if not task_defs:
        raise ConfigError(
            "--tasks is empty; give at least one, e.g. --tasks '- class: DecodeText'."
        )
    if not values["input_pipeline"]:
        raise ConfigError(
            "--input_pipeline is not set; e.g. 'class: ParallelTextInputPipeline\\n"
            "params: {source_files: [input.txt]}'."
        )
    cli.configure_devices(
        values["gpu_allow_growth"],
        values["gpu_memory_fraction"],
        values["log_device_placement"],
    )
    tasks = [
        create_from_dict(d, [tasks_lib], what="task", base=tasks_lib.InferenceTask)
        for d in task_defs
    ]
    model_dirs = _split_list(values["model_dir"])
    checkpoint_paths = _split_list(values["checkpoint_path"])
    if len(model_dirs) > 1 or len(checkpoint_paths) > 1:
        from seq2seq.models import ensemble

        model, checkpoint = ensemble.load_ensemble(
            model_dirs,
            checkpoint_paths,
            values["model_params"],
            allow_vocab_change=bool(values["allow_vocab_change"]),
        )
        # The first run leads: its pipeline settings and tokenizers apply.
        lead_dir = ensemble.pair_runs(model_dirs, checkpoint_paths)[0][0]
        train_options = inference.load_train_options(lead_dir)
    else:
        model_dir = model_dirs[0] if model_dirs else None
        train_options = inference.load_train_options(model_dir)
        checkpoint = inference.resolve_checkpoint(
            model_dir, checkpoint_paths[0] if checkpoint_paths else None
        )
        inference.check_vocabularies(
            train_options,
            values["model_params"],
            allow_change=bool(values["allow_vocab_change"]),
        )
        model = inference.build_model(train_options, values["model_params"])
    # A model trained on raw text with SentencePiece reads raw text and
    # writes plain text: the pipeline and the tasks get its tokenizers.
    pipeline = input_pipeline.make_input_pipeline_from_def(
        inference.inherit_tokenizers(values["input_pipeline"], train_options),
        ModeKeys.INFER,
        shuffle=False,
        num_epochs=1,
    )
    tokenizer_paths = tuple(
        pipeline.tokenizer_path(side) for side in ("source", "target")
    )
    tokenizers.check_vocabularies(tokenizer_paths, model.params)
    for task in tasks:
        if tokenizer_paths[1] and hasattr(task, "set_target_tokenizer"):
            task.set_target_tokenizer(tokenizer_paths[1])
    count = inference.run_inference(
        model,
        pipeline,
        tasks,
        batch_size=values["batch_size"],
        checkpoint_path=checkpoint,
        progress=values["progress"],
        jit_compile=bool(values["jit_compile"]),
        protected_paths=[values["config_path"]],
        sort_window=values["sort_window"],
    )
    logging.info("Decoded %d sentences with %s", count, checkpoint)
    return 0


def entry_point():
    """Console-script entry point (`seq2seq-infer`)."""
    cli.run(main)


if __name__ == "__main__":
    sys.exit(entry_point())
