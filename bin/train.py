#!/usr/bin/env python3
"""Trains a seq2seq model from YAML configs and flags.

Same flags as the original `bin/train.py`. Config files (`--config_paths`,
comma-separated) are merged recursively in order; a key in them sets the flag
of the same name unless that flag is given on the command line, and dict
flags (`model_params`, input pipelines) are deep-merged with the command
line winning.

  python -m bin.train --config_paths=example_configs/nmt_small.yml,... \\
    --model_params "vocab_source: ...\\nvocab_target: ..." \\
    --input_pipeline_train "class: ParallelTextInputPipeline ..." \\
    --output_dir /tmp/nmt

With `--schedule continuous_eval` it evaluates each new checkpoint of
--output_dir as a training run beside it writes them; with `--schedule
run_std_server` it serves this task of the `TF_CONFIG` cluster until stopped.

Exit status: 0 when done; 2 with one `error: ...` line for a problem to fix
(bad flag or config, --output_dir in use by another training run, no intact
checkpoint, a file that cannot be written); 130 (SIGINT, Ctrl-C) or 143
(SIGTERM) with one `interrupted: ...` line naming the checkpoint saved before
stopping. Running the same command again resumes from it.
"""

import contextlib
import os
import sys
import tempfile

from absl import flags, logging

from bin import cli
from seq2seq.configurable import (
    ModeKeys,
    deep_merge,
    load_yaml_file,
    locate_class,
    maybe_load_yaml,
    parse_params,
)
from seq2seq.errors import ConfigError

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "config_paths",
    "",
    "Comma-separated YAML config files whose keys set flags of the same name; "
    "merged recursively in order.",
)
flags.DEFINE_string("hooks", "[]", "YAML list of training hooks {class, params}.")
flags.DEFINE_string("metrics", "[]", "YAML list of eval metrics {class, params}.")
flags.DEFINE_string(
    "model", "", "Model class: a name in seq2seq.models or a dotted path."
)
flags.DEFINE_string("model_params", "{}", "YAML mapping of model parameters.")
flags.DEFINE_string(
    "input_pipeline_train", "{}", "YAML {class, params} of the training input."
)
flags.DEFINE_string(
    "input_pipeline_dev", "{}", "YAML {class, params} of the dev (eval) input."
)
flags.DEFINE_string(
    "buckets",
    None,
    'Bucket boundaries on source length, e.g. "10,20,30" makes the buckets '
    "<10, 10-20, 20-30, >30; auto: derived from the training data's length "
    "histogram (buckets 2 wide where sentences are dense). Unset: no bucketing.",
)
flags.DEFINE_integer(
    "batch_size",
    16,
    "Examples per batch (train and eval), or target-side tokens per batch with "
    "--batch_type tokens; the global batch over all replicas.",
)
flags.DEFINE_string(
    "batch_type",
    "examples",
    "examples: --batch_size counts examples; tokens: it counts tokens (rows x "
    "the longest side of the bucket), with length buckets (--buckets or "
    "automatic ones).",
)
flags.DEFINE_boolean(
    "pad_to_bucket",
    False,
    "Pad training batches to their bucket's upper length so a compiled step "
    "(--jit_compile) sees one shape per bucket; needs source.max_seq_len and "
    "target.max_seq_len in --model_params.",
)
flags.DEFINE_integer(
    "cache_max_bytes",
    0,
    "Cache the parsed training corpus in memory when its files total at most "
    "this many bytes (0: never). Makes checkpoints larger.",
)
flags.DEFINE_string(
    "output_dir",
    None,
    "Where checkpoints and summaries go; a temporary directory if unset.",
)
flags.DEFINE_string(
    "schedule",
    "continuous_train_and_eval",
    "What to run: continuous_train_and_eval / train_and_evaluate (train with "
    "periodic eval), train (no eval), evaluate (eval the latest checkpoint "
    "once), continuous_eval (eval each new checkpoint of --output_dir as it "
    "appears), run_std_server (serve this task of the TF_CONFIG cluster).",
)
flags.DEFINE_float(
    "continuous_eval_throttle_secs",
    60,
    "continuous_eval: look for a new checkpoint (and start evaluations) at "
    "most this often, in seconds.",
)
flags.DEFINE_float(
    "continuous_eval_timeout_secs",
    None,
    "continuous_eval: stop after this many seconds without a new checkpoint; "
    "unset waits until a checkpoint reaches --train_steps.",
)
flags.DEFINE_integer("train_steps", None, "Steps to train; unset trains forever.")
flags.DEFINE_integer(
    "eval_every_n_steps", 1000, "Evaluate on the dev data every N steps."
)
flags.DEFINE_integer("tf_random_seed", None, "Seed for initializers and shuffling.")
flags.DEFINE_integer(
    "save_checkpoints_secs",
    None,
    "Save a checkpoint every N seconds (600 if neither save flag is set).",
)
flags.DEFINE_integer("save_checkpoints_steps", None, "Save a checkpoint every N steps.")
flags.DEFINE_integer(
    "keep_checkpoint_max", 5, "Recent checkpoints to keep (0 or unset: all)."
)
flags.DEFINE_float(
    "keep_checkpoint_every_n_hours",
    4,
    "Also keep one checkpoint every N hours of training.",
)
flags.DEFINE_integer("log_every_n_steps", 100, "Log and summarise every N steps.")
flags.DEFINE_integer(
    "eval_beam_width",
    0,
    "Also compute the text metrics on beam search decodes of this width "
    "(reported as e.g. bleu/beam4); 0 or 1: greedy only.",
)
flags.DEFINE_boolean(
    "gradient_summaries",
    False,
    "At each summary step (--log_every_n_steps) also write a histogram and "
    "the norm of every variable's clipped gradient (gradients/<var>, "
    "gradient_norm/<var>), as the original's optimize_loss did.",
)
flags.DEFINE_integer(
    "eval_summary_examples",
    0,
    "At each evaluation write the translations of the first N dev sentences "
    "(text summary 'samples') and, for attention models, their attention heat "
    "maps (images 'attention/example_<i>') to TensorBoard; 0: off.",
)
flags.DEFINE_integer(
    "max_consecutive_nan_steps",
    5,
    "Stop training after this many batches in a row with a non-finite loss or "
    "gradient norm (their updates are skipped); 0 never stops.",
)
flags.DEFINE_float(
    "loss_spike_factor",
    3.0,
    "Log a warning when the training loss exceeds this factor times its "
    "running average; 0 disables.",
)
flags.DEFINE_string(
    "early_stopping_metric",
    "",
    "Dev result to stop on and to pick the best checkpoint by, e.g. "
    "bleu/greedy or loss/teacher_forced. Unset: no early stopping, and the "
    "best checkpoint is kept by loss/teacher_forced.",
)
flags.DEFINE_string(
    "early_stopping_mode",
    "auto",
    "min or max: whether lower or higher is better; auto: min for names with "
    "loss or perplexity, max otherwise.",
)
flags.DEFINE_integer(
    "early_stopping_patience",
    5,
    "Stop after this many evaluations in a row without improvement.",
)
flags.DEFINE_float(
    "early_stopping_min_delta",
    0.0,
    "Smallest change of the metric that counts as an improvement.",
)
flags.DEFINE_string(
    "distribution_strategy",
    "default",
    "default (one device), mirrored (every GPU of this machine) or "
    "multi_worker_mirrored (the cluster in TF_CONFIG). --batch_size is the "
    "global batch, split over all replicas.",
)
flags.DEFINE_integer(
    "effective_batch_size",
    None,
    "Examples per update: accumulate the gradients of effective_batch_size / "
    "batch_size batches before each update (a multiple of --batch_size).",
)
flags.DEFINE_string(
    "mixed_precision",
    "",
    "float16 (with dynamic loss scaling) or bfloat16: compute in that type "
    "with float32 weights, softmax and loss; bfloat16_logits: float32 but for "
    "the output layer's matrix product in training; auto: bfloat16_logits on "
    "a CPU with native bfloat16 (avx512_bf16 / amx_bf16 flags) and no GPU, "
    "else float32. Unset: float32.",
)
flags.DEFINE_boolean(
    "jit_compile",
    False,
    "Compile the forward and backward pass with XLA (one compilation per "
    "batch shape; use --buckets to bound the number of shapes).",
)
flags.DEFINE_boolean(
    "fused_optimizer",
    True,
    "Apply a plain Adam's update in one kernel per variable (the same "
    "arithmetic and checkpoint slots as Keras's Adam); --nofused_optimizer "
    "keeps Keras's own update. Other optimizers are never fused.",
)
flags.DEFINE_float(
    "gpu_memory_fraction", 1.0, "Fraction of each GPU's memory to use (<1 caps it)."
)
flags.DEFINE_boolean(
    "gpu_allow_growth", False, "Grow GPU memory on demand instead of at start."
)
flags.DEFINE_boolean("log_device_placement", False, "Log the device of every op.")

_YAML_FLAGS = (
    "hooks",
    "metrics",
    "model_params",
    "input_pipeline_train",
    "input_pipeline_dev",
)
_SCHEDULES = {
    "continuous_train_and_eval": "train_and_eval",
    "train_and_evaluate": "train_and_eval",
    "local_run": "train_and_eval",
    "train": "train",
    "evaluate": "evaluate",
    "continuous_eval": "continuous_eval",
    "run_std_server": "run_std_server",
}


def resolve_flags(flag_values):
    """Merges config files into flags; returns the dict of final values.

    Args:
      flag_values: The parsed absl FlagValues.

    Returns:
      A dict flag name -> value, with YAML flags parsed.
    """
    values = {name: flag_values[name].value for name in flag_values}
    for name in _YAML_FLAGS:
        values[name] = maybe_load_yaml(values[name], f"--{name}")
    merged = {}
    for path in (values["config_paths"] or "").split(","):
        path = path.strip()
        if path:
            logging.info("Loading config from %s", os.path.abspath(path))
            config = load_yaml_file(path)
            if not isinstance(config, dict):
                raise ConfigError(
                    f"{path}: a config file must be a mapping of flag: value."
                )
            merged = deep_merge(merged, config)
    for key, value in merged.items():
        if key not in values:
            logging.warning("Ignoring config key '%s': it is not a flag.", key)
            continue
        given = flag_values[key].present
        if isinstance(values[key], dict) and isinstance(value, dict):
            values[key] = deep_merge(value, values[key])
        elif key in _YAML_FLAGS and not given:
            values[key] = value
        elif not given:
            values[key] = cli.config_value(flag_values[key], value)
    cli.check_counts(values, _AT_LEAST)
    return values


# Smallest valid value of the counting flags (0 means "never" or "all" where
# it is allowed).
_AT_LEAST = {
    "batch_size": 1,
    "log_every_n_steps": 1,
    "train_steps": 0,
    "eval_every_n_steps": 0,
    "save_checkpoints_steps": 0,
    "save_checkpoints_secs": 0,
    "keep_checkpoint_max": 0,
    "eval_beam_width": 0,
    "eval_summary_examples": 0,
    "max_consecutive_nan_steps": 0,
    "cache_max_bytes": 0,
    "continuous_eval_throttle_secs": 0,
    "continuous_eval_timeout_secs": 0,
}


def main(argv):
    del argv
    values = resolve_flags(FLAGS)
    # Imported here so that --help stays fast.
    from seq2seq import run_dir
    from seq2seq.data import batching, input_pipeline, tokenizers
    from seq2seq.train_options import TRAIN_OPTIONS_FILENAME
    from seq2seq.training import cpu_features, cpu_threads, distribution
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    schedule = _SCHEDULES.get(values["schedule"])
    if schedule is None:
        raise ConfigError(
            f"--schedule={values['schedule']} is not supported; use one of "
            f"{', '.join(sorted(_SCHEDULES))}."
        )
    if schedule == "run_std_server":
        return _run_std_server()
    if not values["model"]:
        raise ConfigError(
            "no model given: set --model (e.g. AttentionSeq2Seq) or a 'model' "
            "key in a --config_paths file."
        )
    evaluate_only = schedule in ("evaluate", "continuous_eval")
    if not values["input_pipeline_train"] and not evaluate_only:
        raise ConfigError(
            "--input_pipeline_train is not set; give a YAML {class, params} such "
            "as 'class: ParallelTextInputPipeline\\nparams: {source_files: [...], "
            "target_files: [...]}'."
        )
    cli.configure_devices(
        values["gpu_allow_growth"],
        values["gpu_memory_fraction"],
        values["log_device_placement"],
    )
    if not evaluate_only:
        cpu_threads.configure_training_threads()
    if values["mixed_precision"] == "auto":
        values["mixed_precision"] = cpu_features.resolve_mixed_precision("auto")
        logging.info(
            "--mixed_precision=auto: %s.", values["mixed_precision"] or "float32"
        )
    trainer_lib.check_mixed_precision(values["mixed_precision"])
    # Before any TensorFlow op: multi-worker collectives are set up at start.
    strategy = distribution.create_strategy(values["distribution_strategy"])
    is_chief = distribution.is_chief_from_env() or (
        values["distribution_strategy"] != "multi_worker_mirrored"
    )
    output_dir = values["output_dir"] or tempfile.mkdtemp(prefix="seq2seq_")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(
            f"--output_dir={output_dir} is a file; give a new or existing directory."
        )
    if (
        values["save_checkpoints_secs"] is None
        and values["save_checkpoints_steps"] is None
    ):
        values["save_checkpoints_secs"] = 600

    # Resolve the model params against the class defaults now, so that a typo
    # fails before anything is written and train_options.json records every
    # value the model was built with.
    from seq2seq.models import ModelBase

    model_class = locate_class(
        values["model"], ["seq2seq.models"], "model", base=ModelBase
    )
    model_params = parse_params(
        values["model_params"], model_class.default_params(), model_class.__name__
    )
    resolved = {k: v for k, v in values.items() if k not in ("model_params",)}
    train_options = TrainOptions.from_model(
        values["model"], model_params, resolved_config=resolved
    )
    train_pipeline = (
        input_pipeline.make_input_pipeline_from_def(
            values["input_pipeline_train"], ModeKeys.TRAIN
        )
        if values["input_pipeline_train"]
        else None
    )
    dev_pipeline = None
    if values["input_pipeline_dev"] and schedule != "train":
        dev_pipeline = input_pipeline.make_input_pipeline_from_def(
            values["input_pipeline_dev"], ModeKeys.EVAL, shuffle=False, num_epochs=1
        )
    elif schedule != "train":
        logging.warning("No --input_pipeline_dev: training without evaluation.")
    # Input files are checked before anything is written to output_dir.
    for pipeline in (train_pipeline, dev_pipeline):
        if pipeline is not None:
            pipeline.check()
            tokenizers.check_vocabularies(
                [pipeline.tokenizer_path(side) for side in ("source", "target")],
                model_params,
            )
    config = trainer_lib.RunConfig(
        output_dir=output_dir,
        batch_size=values["batch_size"],
        buckets=batching.parse_buckets(values["buckets"]),
        train_steps=values["train_steps"],
        eval_every_n_steps=values["eval_every_n_steps"],
        save_checkpoints_secs=values["save_checkpoints_secs"],
        save_checkpoints_steps=values["save_checkpoints_steps"],
        keep_checkpoint_max=values["keep_checkpoint_max"],
        keep_checkpoint_every_n_hours=values["keep_checkpoint_every_n_hours"],
        log_every_n_steps=values["log_every_n_steps"],
        tf_random_seed=values["tf_random_seed"],
        eval_beam_width=values["eval_beam_width"],
        max_consecutive_nan_steps=values["max_consecutive_nan_steps"],
        loss_spike_factor=values["loss_spike_factor"],
        early_stopping_metric=values["early_stopping_metric"] or "",
        early_stopping_mode=values["early_stopping_mode"] or "auto",
        early_stopping_patience=values["early_stopping_patience"],
        early_stopping_min_delta=values["early_stopping_min_delta"],
        distribution_strategy=values["distribution_strategy"],
        effective_batch_size=values["effective_batch_size"],
        mixed_precision=values["mixed_precision"] or "",
        jit_compile=bool(values["jit_compile"]),
        fused_optimizer=bool(values["fused_optimizer"]),
        batch_type=values["batch_type"] or "examples",
        pad_to_bucket=bool(values["pad_to_bucket"]),
        cache_max_bytes=values["cache_max_bytes"] or 0,
        gradient_summaries=bool(values["gradient_summaries"]),
        eval_summary_examples=values["eval_summary_examples"] or 0,
    )
    config.accumulation_steps()  # A bad --effective_batch_size fails here.
    trainer_lib.check_component_classes(values["metrics"] or [], values["hooks"] or [])
    if evaluate_only:
        # Evaluation only reads checkpoints: it takes no lock and may run
        # beside the training run that writes them.
        trainer_lib.check_train_options(train_options, output_dir)
        trainer = _make_trainer(
            values, train_options, train_pipeline, dev_pipeline, config, strategy
        )
        if schedule == "evaluate":
            trainer.evaluate_latest()
        else:
            _evaluate_continuously(trainer, values)
        return 0
    # Only the chief writes to output_dir; it holds the lock from before its
    # first write until the run ends (normally, on an error or a signal).
    existed = os.path.isdir(output_dir)
    options_path = os.path.join(output_dir, TRAIN_OPTIONS_FILENAME)
    undo_options = False
    previous_options = None  # The file's bytes before this run, if any.
    lock = run_dir.lock_output_dir(output_dir) if is_chief else contextlib.nullcontext()
    try:
        with lock:
            if is_chief:
                undo_options = True
                previous_options = _read_if_exists(options_path)
                trainer_lib.check_and_write_train_options(train_options, output_dir)
                logging.info("Writing to %s", output_dir)
            trainer = _make_trainer(
                values, train_options, train_pipeline, dev_pipeline, config, strategy
            )
            undo_options = False  # From here on the run owns its files.
            trainer.train()
    except BaseException:
        # A config error found while building the model or its input (a
        # nested param, an unknown --batch_type, say) leaves output_dir as it
        # found it, with an earlier run's train_options.json.
        if undo_options:
            if previous_options is not None:
                _write_if_possible(options_path, previous_options)
            else:
                _remove_if_possible(options_path)
                if not existed:
                    _remove_if_possible(output_dir)
        raise
    return 0


def _read_if_exists(path):
    """The bytes of file `path`, or None when there is none."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write_if_possible(path, data):
    """Puts `data` (bytes) back into file `path`; a failed write (a full
    disk) leaves the file as it is and raises nothing, so that the error
    being handled is the one reported."""
    from seq2seq.atomic_write import WRITE_ERRORS, replace_file

    with contextlib.suppress(*WRITE_ERRORS):
        replace_file(path, data)


def _remove_if_possible(path):
    """Removes a file or an empty directory; leaves anything else."""
    try:
        if os.path.isdir(path):
            os.rmdir(path)
        else:
            os.remove(path)
    except OSError:
        pass


def _evaluate_continuously(trainer, values):
    """Evaluates each new checkpoint of --output_dir (`continuous_eval`)."""
    from seq2seq.training import continuous_eval

    if trainer.dev_dataset is None:
        raise ConfigError(
            "--schedule=continuous_eval needs --input_pipeline_dev to evaluate on."
        )

    def evaluate_checkpoint(prefix):
        results = trainer.evaluate_latest(prefix)
        return trainer.step, results

    logging.info(
        "continuous_eval: watching %s for new checkpoints every %gs.",
        trainer.config.output_dir,
        values["continuous_eval_throttle_secs"],
    )
    evaluated = continuous_eval.evaluate_continuously(
        evaluate_checkpoint,
        trainer.config.output_dir,
        train_steps=values["train_steps"],
        throttle_secs=values["continuous_eval_throttle_secs"],
        timeout_secs=values["continuous_eval_timeout_secs"],
    )
    logging.info(
        "continuous_eval: evaluated %d checkpoint(s): steps %s",
        len(evaluated),
        ", ".join(str(step) for step, _ in evaluated) or "none",
    )


def _run_std_server():
    """Serves this process's task of the `TF_CONFIG` cluster until SIGINT or
    SIGTERM (`run_std_server`)."""
    import signal

    from seq2seq.training import distribution, stop_signals

    server, address = distribution.start_std_server()
    print(
        f"Serving {server.target} ({address}); stop with Ctrl-C or SIGTERM.",
        file=sys.stderr,
        flush=True,
    )
    # Sleep in Python rather than in server.join(), so that signals are
    # handled. There is nothing to save: report the signal and leave at once,
    # without waiting for TensorFlow to tear the server down.
    try:
        while True:
            stop_signals.sleep(3600)
    except KeyboardInterrupt as err:
        code = getattr(err, "exit_code", 128 + signal.SIGINT)
        print(f"interrupted: {err or 'stopped by SIGINT'}", file=sys.stderr, flush=True)
        os._exit(code)


def _make_trainer(
    values, train_options, train_pipeline, dev_pipeline, config, strategy
):
    from seq2seq.training import trainer as trainer_lib

    return trainer_lib.Trainer(
        train_options,
        train_pipeline,
        dev_pipeline,
        config,
        hooks=values["hooks"] or [],
        metrics=values["metrics"] or [],
        strategy=strategy,
    )


def entry_point():
    """Console-script entry point (`seq2seq-train`)."""
    cli.run(main)


if __name__ == "__main__":
    sys.exit(entry_point())
