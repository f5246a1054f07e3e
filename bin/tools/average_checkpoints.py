#!/usr/bin/env python3
"""Averages the last checkpoints of a training run into a new model dir.

The weights of the `--num_last` newest intact checkpoints of `--model_dir`
are averaged (the arithmetic mean of each variable) and saved as one
checkpoint in `--output_dir`, named after the newest step, beside a copy
of the run's `train_options.json`: the output directory is a model
directory that `bin/infer.py --model_dir` and `bin/export.py --model_dir`
load like the run itself. Only the model's weights are written (no
optimizer slots, step counter or data position), so it is for decoding and
export, not for resuming training.

  python -m bin.tools.average_checkpoints --model_dir /tmp/nmt \\
    --num_last 5 --output_dir /tmp/nmt_avg5

The run directory is only read. `--output_dir` must be a new or empty
directory outside it.
"""

import json
import os
import shutil
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: the package lives two levels up
    from _usage import ArgumentParser, UsageError, reports_usage_errors

    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(sys.path[0]))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Written into --output_dir: which checkpoints were averaged.
AVERAGE_INFO_FILE = "averaged_checkpoints.json"


def parse_args(argv):
    parser = ArgumentParser(
        prog="average_checkpoints.py",
        description="Average the last checkpoints of a training run.",
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="a training run's output directory (checkpoints, train_options.json)",
    )
    parser.add_argument(
        "--num_last",
        type=int,
        default=5,
        help="how many of the newest checkpoints to average (default 5)",
    )
    parser.add_argument(
        "--output_dir",
        required=True,
        help="a new or empty directory, outside --model_dir, for the result",
    )
    args = parser.parse_args(argv)
    if args.num_last < 1:
        raise UsageError(f"--num_last must be at least 1, got {args.num_last}")
    check_dirs(args.model_dir, args.output_dir)
    return args


def check_dirs(model_dir, output_dir):
    """Refuses directories that would lose or mix anything; touches nothing.

    Raises:
      UsageError: `model_dir` is not a directory, or `output_dir` is it,
        lies inside it, contains it, is a file or is not empty.
    """
    from seq2seq.inference.safe_paths import is_within

    if not os.path.isdir(model_dir):
        raise UsageError(
            f"--model_dir {model_dir} is not a directory; give the --output_dir "
            "of a training run"
        )
    if is_within(output_dir, model_dir):
        raise UsageError(
            f"--output_dir {output_dir} is or lies inside --model_dir {model_dir}; "
            "choose a directory outside the run, e.g. "
            f"{os.path.normpath(model_dir)}_avg"
        )
    if is_within(model_dir, output_dir):
        raise UsageError(
            f"--output_dir {output_dir} contains --model_dir {model_dir}; choose "
            "a new directory outside the run"
        )
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise UsageError(f"--output_dir {output_dir} is a file; give a directory")
        if os.listdir(output_dir):
            raise UsageError(
                f"--output_dir {output_dir} is not empty; choose a new or empty "
                "directory (nothing there is replaced)"
            )


def newest_intact(model_dir, count):
    """The `count` newest intact checkpoints of `model_dir`, newest first;
    damaged ones are skipped with a warning.

    Raises:
      UsageError: Fewer than `count` intact checkpoints.
    """
    from absl import logging

    from seq2seq import run_dir

    found = []
    for prefix in run_dir.checkpoint_prefixes(model_dir):
        reason = run_dir.damage(prefix)
        if reason:
            logging.warning("Skipping damaged checkpoint %s (%s)", prefix, reason)
            continue
        found.append(prefix)
        if len(found) == count:
            return found
    raise UsageError(
        f"--model_dir {model_dir} holds {len(found)} intact checkpoint(s), fewer "
        f"than --num_last {count}; lower --num_last (training keeps "
        "--keep_checkpoint_max of them, 5 by default)"
    )


def _step(prefix):
    """The number at the end of a checkpoint prefix (`ckpt-1200` -> 1200)."""
    tail = os.path.basename(prefix).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def average(model_dir, num_last, output_dir):
    """Writes the average of the `num_last` newest checkpoints of
    `model_dir` into `output_dir` (see the module docstring).

    Returns:
      `(written checkpoint prefix, averaged prefixes newest first)`.

    Raises:
      UsageError: The run, its checkpoints or `output_dir` are unusable.
    """
    check_dirs(model_dir, output_dir)
    import tensorflow as tf

    from seq2seq import run_dir
    from seq2seq.errors import UserError
    from seq2seq.inference import inference
    from seq2seq.training import checkpointing

    try:
        options = inference.load_train_options(model_dir)
        prefixes = newest_intact(model_dir, num_last)
        model = inference.build_model(options)
        inference.create_variables(model)
        checkpointing.average_checkpoints(model, prefixes)
        os.makedirs(output_dir, exist_ok=True)
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model), output_dir, max_to_keep=1
        )
        with run_dir.writing("the averaged checkpoint", output_dir):
            written = manager.save(checkpoint_number=_step(prefixes[0]))
            shutil.copyfile(
                os.path.join(model_dir, run_dir.TRAIN_OPTIONS_FILENAME),
                os.path.join(output_dir, run_dir.TRAIN_OPTIONS_FILENAME),
            )
            info = {
                "model_dir": os.path.abspath(model_dir),
                "checkpoints": [os.path.basename(p) for p in prefixes],
            }
            with open(
                os.path.join(output_dir, AVERAGE_INFO_FILE), "w", encoding="utf-8"
            ) as handle:
                json.dump(info, handle, indent=2)
                handle.write("\n")
    except UserError as err:
        raise UsageError(str(err)) from None
    return written, prefixes


@reports_usage_errors("average_checkpoints")
def main(argv=None):
    args = parse_args(argv)
    written, prefixes = average(args.model_dir, args.num_last, args.output_dir)
    names = ", ".join(os.path.basename(p) for p in prefixes)
    print(f"Averaged {len(prefixes)} checkpoints of {args.model_dir} ({names})")
    print(f"Wrote {written} and {args.output_dir}/train_options.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
