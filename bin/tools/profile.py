#!/usr/bin/env python3
"""Profiles a few training steps of a model and writes a TensorBoard trace.

The original tool read the run metadata a TF1 training run had dumped into
its model directory and printed tfprof tables into `model_dir/profile`. Here
the steps are run and traced on the spot: the model of a training run's
`--model_dir` (its `train_options.json`: model class, params, input pipeline
and batch size) is built and trained for `--warmup_steps` untraced steps and
then `--steps` traced ones with `tf.profiler.experimental`, on fresh weights
and in a scratch directory, so nothing in the model directory changes. It
writes, into `--output_dir` (default `model_dir/profile`, as the original):

* `plugins/profile/<run>/*.xplane.pb`: the trace, for TensorBoard's profile
  tab (`tensorboard --logdir <output_dir>`, needs the
  `tensorboard-plugin-profile` package);
* `params.txt`: the trainable variables with shapes and parameter counts;
* `ops.txt`: the TensorFlow op types that took the most host time in the
  traced steps (also printed).

  python -m bin.tools.profile --model_dir /tmp/nmt --steps 10
"""

import collections
import glob
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

    # This file would otherwise stand in for the standard library's
    # `profile` module; the package lives two levels up.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(sys.path[0])))

# A TensorFlow op's trace event is named "<op name>:<op type>".
_OP_EVENT = re.compile(r"^([^:\s]+):([A-Za-z_]\w*)$")


def parse_args(argv):
    parser = ArgumentParser(
        prog="profile.py",
        description="Trace a few training steps of a model for TensorBoard.",
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="a training run's output directory (with train_options.json)",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="where the trace and tables go (default: MODEL_DIR/profile)",
    )
    parser.add_argument(
        "--steps", type=int, default=5, help="traced training steps (default 5)"
    )
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=2,
        help="untraced steps first, so tracing and graph building are left "
        "out (default 2)",
    )
    parser.add_argument(
        "--input_pipeline",
        default=None,
        help="YAML {class, params} of the data to train on (default: the run's "
        "input_pipeline_train)",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="batch size (default: the run's --batch_size)",
    )
    parser.add_argument(
        "--top", type=int, default=15, help="rows of the op table (default 15)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.warmup_steps < 0:
        raise UsageError(f"--warmup_steps must be 0 or more, got {args.warmup_steps}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if not os.path.isdir(args.model_dir):
        raise UsageError(
            f"--model_dir {args.model_dir} is not a directory; give the "
            "--output_dir of a training run"
        )
    return args


def host_threads(xplane_paths):
    """The events of each host thread in the given trace files.

    Args:
      xplane_paths: `*.xplane.pb` files written by `tf.profiler`.

    Yields:
      `(thread_name, events)` for each line of each `/host:` plane, where
      `events` is a list of `(start_ps, duration_ps, event_name)`; a
      TensorFlow op's event is named `<op name>:<op type>`.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    for path in xplane_paths:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            names = plane.event_metadata
            for line in plane.lines:
                yield line.name, [
                    (event.offset_ps, event.duration_ps, names[event.metadata_id].name)
                    for event in line.events
                ]


def op_table(xplane_paths, top):
    """Host time per TensorFlow op type in the given trace files.

    Args:
      xplane_paths: `*.xplane.pb` files written by `tf.profiler`.
      top: Number of rows.

    Returns:
      `(rows, total_ps)`: up to `top` `(op_type, count, picoseconds)` rows,
      most expensive first, and the time of all op events.
    """
    time_ps = collections.Counter()
    count = collections.Counter()
    for _, events in host_threads(xplane_paths):
        for _, duration_ps, name in events:
            match = _OP_EVENT.match(name)
            if match:
                time_ps[match.group(2)] += duration_ps
                count[match.group(2)] += 1
    rows = [(op, count[op], ps) for op, ps in time_ps.most_common(top)]
    return rows, sum(time_ps.values())


def format_op_table(rows, total_ps):
    """The op table as text: type, calls, total and mean milliseconds, share."""
    if not rows:
        return "no TensorFlow op events in the trace"
    width = max(len("op type"), *(len(op) for op, _, _ in rows))
    lines = [
        f"{'op type':<{width}}  {'calls':>7}  {'total ms':>10}  {'mean us':>9}  share"
    ]
    for op, calls, ps in rows:
        lines.append(
            f"{op:<{width}}  {calls:>7}  {ps / 1e9:>10.3f}  "
            f"{ps / calls / 1e6:>9.1f}  {100.0 * ps / total_ps:>4.1f}%"
        )
    return "\n".join(lines)


def _load_run(args):
    """The run's TrainOptions, input pipeline and batch size."""
    from seq2seq.configurable import ModeKeys, maybe_load_yaml
    from seq2seq.data import input_pipeline
    from seq2seq.errors import UserError
    from seq2seq.training.utils import TrainOptions

    try:
        options = TrainOptions.load(args.model_dir)
        resolved = options.resolved_config or {}
        pipeline_def = args.input_pipeline or resolved.get("input_pipeline_train")
        pipeline_def = maybe_load_yaml(pipeline_def, "--input_pipeline")
        if not pipeline_def:
            raise UsageError(
                f"{TrainOptions.path(args.model_dir)} records no "
                "input_pipeline_train; give --input_pipeline"
            )
        pipeline = input_pipeline.make_input_pipeline_from_def(
            pipeline_def, ModeKeys.TRAIN
        )
        pipeline.check()
    except UserError as err:
        raise UsageError(str(err)) from None
    batch_size = args.batch_size or int(resolved.get("batch_size") or 16)
    return options, pipeline, batch_size, resolved


class _TraceSteps:
    """A training hook that traces steps `warmup + 1 .. warmup + steps` and
    times them (the Trainer calls `begin`, `before_step`, `after_step`,
    `end`)."""

    def __init__(self, logdir, warmup_steps, steps):
        self.logdir = logdir
        self.first = warmup_steps
        self.last = warmup_steps + steps
        self.active = False
        self.traced = 0
        self.started_at = None
        self.seconds = 0.0

    def begin(self, trainer):
        del trainer

    def before_step(self, step):
        if step == self.first:
            import tensorflow as tf

            tf.profiler.experimental.start(self.logdir)
            self.active = True
            self.started_at = time.perf_counter()

    def after_step(self, step, features, outputs):
        del features, outputs
        if self.active:
            self.traced += 1
            if step >= self.last:  # `step`: the global step after the update
                self.stop()

    def end(self, trainer):
        del trainer
        self.stop()

    def stop(self):
        if self.active:
            import tensorflow as tf

            tf.profiler.experimental.stop()
            self.seconds = time.perf_counter() - self.started_at
            self.active = False


@reports_usage_errors("profile")
def main(argv=None):
    args = parse_args(argv)
    options, pipeline, batch_size, resolved = _load_run(args)
    output_dir = args.output_dir or os.path.join(args.model_dir, "profile")

    from seq2seq.data import batching
    from seq2seq.errors import UserError
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.hooks import model_analysis

    os.makedirs(output_dir, exist_ok=True)
    before = set(glob.glob(os.path.join(output_dir, "plugins", "profile", "*")))
    hook = _TraceSteps(output_dir, args.warmup_steps, args.steps)
    with tempfile.TemporaryDirectory(prefix="seq2seq_profile_") as scratch:
        config = trainer_lib.RunConfig(
            output_dir=scratch,
            batch_size=batch_size,
            buckets=batching.parse_buckets(resolved.get("buckets")),
            train_steps=args.warmup_steps + args.steps,
            save_checkpoints_steps=10**9,
            keep_checkpoint_max=1,
            log_every_n_steps=10**9,
            mixed_precision=resolved.get("mixed_precision") or "",
            jit_compile=bool(resolved.get("jit_compile")),
            batch_type=resolved.get("batch_type") or "examples",
            pad_to_bucket=bool(resolved.get("pad_to_bucket")),
            effective_batch_size=resolved.get("effective_batch_size"),
            tf_random_seed=resolved.get("tf_random_seed"),
        )
        try:
            trainer = trainer_lib.Trainer(options, pipeline, None, config)
            trainer.hooks.append(hook)
            trainer.train()
        except UserError as err:
            raise UsageError(str(err)) from None
        finally:
            hook.stop()
        params_text = model_analysis(trainer.model)
    if not hook.traced:
        raise UsageError(
            f"the training data ran out after {args.warmup_steps} warm-up steps; "
            "lower --warmup_steps or give a larger --input_pipeline"
        )
    with open(os.path.join(output_dir, "params.txt"), "w") as handle:
        handle.write(params_text + "\n")
    runs = set(glob.glob(os.path.join(output_dir, "plugins", "profile", "*")))
    traces = [
        path
        for run in sorted(runs - before)
        for path in glob.glob(os.path.join(run, "*.xplane.pb"))
    ]
    rows, total_ps = op_table(traces, args.top)
    table = format_op_table(rows, total_ps)
    with open(os.path.join(output_dir, "ops.txt"), "w") as handle:
        handle.write(table + "\n")
    print(
        f"Traced {hook.traced} training steps in {hook.seconds:.2f} s "
        f"({1000.0 * hook.seconds / hook.traced:.1f} ms/step, tracing included)."
    )
    print(table)
    for path in traces:
        print(f"Wrote {path}")
    print(f"Wrote {os.path.join(output_dir, 'params.txt')}")
    print(f"Wrote {os.path.join(output_dir, 'ops.txt')}")
    print(f"View with: tensorboard --logdir {output_dir}  (profile tab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
