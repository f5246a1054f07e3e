#!/usr/bin/env python3
"""Where a training step's CPU time goes, by part of the model, on the real
corpus.

    python benchmarks/train_profile.py [--model_variant session14_no_embed_clip]
        [--warmup 60] [--steps 40] [--top 15] [--mixed_precision bfloat16_logits]

Trains `example_configs/nmt_small.yml` (learning rate 1e-3, batch 32, the
tutorial's buckets `10,20,30,40`) merged with a model variant of
`real_corpus_compare.py` (`AB_VARIANTS`; the default is the variant its
real-corpus runs train) on the English->French corpus of `real_corpus.py`
with this project's `Trainer`, for `--warmup` steps, then records
`--steps` steps with TensorFlow's profiler. It prints the CPU time per
step of TensorFlow's compute threads (the self time of each event: an op's
kernel, or the executor's own work between kernels) summed by part:

- the output layer and the loss (`projected_sequence_loss`), forward and
  backward;
- the decoder's recurrence (its `tf.while_loop`), forward and backward;
- the encoders' recurrences, forward and backward;
- the update (clipping, Adam);
- other ops of the forward and the backward pass;
- the executor's own bookkeeping (`ExecutorState::Process`, `ParallelFor`).

then the `--top` ops by time. The process's CPU-seconds and wall seconds
per traced step are printed as well; the trace itself slows the steps, so
use `train_levers.py` for speed and this for shares.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, real_corpus  # noqa: E402
from benchmarks.common import BenchmarkError  # noqa: E402
from seq2seq.errors import UserError  # noqa: E402

TUTORIAL_BUCKETS = [10, 20, 30, 40]
DEFAULT_VARIANT = "session14_no_embed_clip"

# (part, test on the op's name), first match wins; ops are named by the
# scopes TensorFlow gives them in the traced train step.
PARTS = (
    ("output layer and loss", lambda op: "projected_sequence_loss" in op),
    ("decoder loop, backward", lambda op: op.startswith("gradient_tape/while/")),
    ("decoder loop, forward", lambda op: op.startswith("while/")),
    ("encoder loops, backward", lambda op: "encoder" in op and "while_grad" in op),
    ("encoder loops, forward", lambda op: "encoder" in op and "/while/" in op),
    ("update (clip, Adam)", lambda op: op.startswith(("cond/", "global_norm"))),
    ("other backward", lambda op: op.startswith("gradient_tape/")),
    ("other forward", lambda op: True),
)


def part_of(event_name):
    """The part an event of a compute thread belongs to.

    Kernel events are named `op_name:OpType`; the executor's own events
    (`ExecutorState::Process`, `ParallelFor`, ...) and XLA clusters (the
    fused Adam) have no op name.
    """
    if "::" in event_name or ":" not in event_name:
        if "fusion" in event_name:
            return "update (clip, Adam)"
        return "executor and thread pool"
    op = event_name.rsplit(":", 1)[0]
    return next(name for name, test in PARTS if test(op))


def self_times(events):
    """Self time of each `(start, duration, name)` event of one thread: its
    duration less that of the events nested in it. Returns `[(name, ps)]`."""
    events = sorted(events, key=lambda e: (e[0], -e[1]))
    own = [duration for _, duration, _ in events]
    stack = []
    for index, (start, _, _) in enumerate(events):
        while stack and sum(events[stack[-1]][:2]) <= start:
            stack.pop()
        if stack:
            own[stack[-1]] -= events[index][1]
        stack.append(index)
    return [(name, own[i]) for i, (_, _, name) in enumerate(events)]


def summarize(trace_dir, steps):
    """`(parts, ops)`: CPU-ms per step by part and by op, from the compute
    threads of the profiler's traces in `trace_dir`."""
    from bin.tools.profile import host_threads

    paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise BenchmarkError(f"no profiler trace was written under {trace_dir}.")
    parts, ops = collections.Counter(), collections.Counter()
    for thread, events in host_threads(paths):
        if not thread.startswith("tf_Compute"):
            continue
        for name, picoseconds in self_times(events):
            ms = picoseconds / 1e9 / steps
            parts[part_of(name)] += ms
            # Loop bodies number their scopes (body/_633/...); drop that.
            ops[re.sub(r"/_\d+/", "/", name)] += ms
    return parts, ops


def profile(args):
    import tensorflow as tf

    from benchmarks import real_corpus_compare, train_levers

    if args.model_variant not in real_corpus_compare.AB_VARIANTS:
        raise BenchmarkError(
            f"--model_variant: unknown variant {args.model_variant!r}; choose "
            f"from {', '.join(real_corpus_compare.AB_VARIANTS)}."
        )
    for flag in ("warmup", "steps", "top"):
        if getattr(args, flag) <= 0:
            raise BenchmarkError(f"--{flag} must be positive.")
    real_corpus.ensure_corpus(args.data_dir)
    work_dir = tempfile.mkdtemp(prefix="train_profile_")
    warmup, steps = args.warmup, args.steps
    trainer = train_levers.real_corpus_trainer(
        real_corpus.corpus_paths(args.data_dir),
        work_dir,
        learning_rate=1e-3,
        batch_size=32,
        seed=args.seed,
        train_steps=warmup + steps,
        params=real_corpus_compare.AB_VARIANTS[args.model_variant],
        buckets=TUTORIAL_BUCKETS,
        mixed_precision=args.mixed_precision,
    )
    trace_dir = os.path.join(work_dir, "trace")
    clock = train_levers.step_clock(
        warmup,
        steps,
        on_start=lambda: tf.profiler.experimental.start(trace_dir),
        on_stop=tf.profiler.experimental.stop,
    )
    trainer.hooks.append(clock)
    print(common.load_at_start(), flush=True)
    trainer.train()
    parts, ops = summarize(trace_dir, steps)
    total = sum(parts.values())
    print(
        f"{args.model_variant} ({args.mixed_precision or 'float32'}), "
        f"steps {warmup + 1}-{warmup + steps} traced: "
        f"{clock.cpu_s_step:.4f} CPU-s and {clock.wall_s_step:.4f} s "
        f"per step (the process); compute threads {total:.1f} CPU-ms per step:"
    )
    rows = [["part", "CPU-ms per step", "share"]]
    rows += [
        [name, f"{ms:.2f}", f"{ms / total:.0%}"] for name, ms in parts.most_common()
    ]
    print(common.format_table(rows))
    rows = [["op", "CPU-ms per step"]]
    rows += [[name[-100:], f"{ms:.2f}"] for name, ms in ops.most_common(args.top)]
    print(common.format_table(rows))
    print(common.load_at_end(with_cpus=True))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data_dir", default=os.path.join(real_corpus.default_cache_dir(), "en-fr")
    )
    parser.add_argument("--model_variant", default=DEFAULT_VARIANT)
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mixed_precision",
        default="",
        help="bin/train.py's --mixed_precision (default float32).",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return profile(args)
    except (BenchmarkError, real_corpus.CorpusError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
