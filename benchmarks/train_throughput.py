#!/usr/bin/env python3
"""Training throughput of the example NMT configs on a synthetic corpus.

For each config (`nmt_small` and `nmt_medium` from `example_configs/` by
default) this builds the model and a `Trainer` exactly as `bin/train.py`
does, draws batches from the Trainer's own `tf.data` pipeline and runs the
Trainer's compiled train step (forward, loss, gradients, clipping, Adam
update). The first `--warmup` steps (tracing included) are not timed; then
`--steps` steps are timed `--repeats` times and the median is reported:

    python -m benchmarks.train_throughput
    python benchmarks/train_throughput.py --configs nmt_small --steps 50

Each config runs in a fresh child process, so that its peak resident memory
(`ru_maxrss`) is its own (`--in_process` runs them all in this process; the
peak is then cumulative). Without `--source/--target/--vocab` a synthetic
corpus (Zipfian words, gamma-distributed lengths; see `synthetic_data.py`) is
written to a temporary directory first.

Token counts exclude padding: target tokens are the predicted positions
(target length - 1, as the training log counts them), source tokens include
the appended SEQUENCE_END. The timed loop includes drawing each batch from
the (prefetching) input pipeline, as in real training. "CPU ms/step" is the
processor time of the whole process (all threads, input pipeline included)
per step; on a machine shared with other jobs it varies less than the wall
clock.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, synthetic_data  # noqa: E402
from benchmarks.common import config_path  # noqa: E402

_COLUMNS = (
    ("config", "config", "{}"),
    ("batch", "batch_size", "{}"),
    ("tgt tok/s", "target_tokens_per_s", "{:.0f}"),
    ("src tok/s", "source_tokens_per_s", "{:.0f}"),
    ("ex/s", "examples_per_s", "{:.1f}"),
    ("steps/s", "steps_per_s", "{:.2f}"),
    ("ms/step", "ms_per_step", "{:.1f}"),
    ("CPU ms/step", "cpu_ms_per_step", "{:.0f}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
)


def measure(name, paths, args):
    """Benchmarks one config; returns a dict of figures."""
    import tensorflow as tf

    from seq2seq.configurable import ModeKeys
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    model_class, params = common.load_model_config(
        name, paths["vocab"], vocab_target=paths.get("vocab_target")
    )
    output_dir = tempfile.mkdtemp(prefix="bench_train_")
    try:
        pipeline = common.text_pipeline(
            paths["sources"], paths["targets"], ModeKeys.TRAIN
        )
        run_config = trainer_lib.RunConfig(
            output_dir=output_dir,
            batch_size=args.batch_size,
            buckets=args.buckets,
            tf_random_seed=args.seed,
            jit_compile=args.jit_compile,
            pad_to_bucket=args.pad_to_bucket,
            mixed_precision=args.mixed_precision,
            distribution_strategy=args.distribution_strategy,
        )
        clock = common.Stopwatch()
        trainer = trainer_lib.Trainer(
            TrainOptions(model_class, params), pipeline, None, run_config
        )
        iterator, first, train_step = common.compiled_train_step(trainer)
        build_s = clock.seconds()

        def run(num_steps, features=None):
            target_tokens = source_tokens = examples = 0
            outputs = None
            clock = common.Stopwatch()
            for _ in range(num_steps):
                batch = features if features is not None else next(iterator)
                features = None
                outputs = train_step(batch)
                target_len = batch["target_len"].numpy()
                target_tokens += int(target_len.sum() - len(target_len))
                source_tokens += int(batch["source_len"].numpy().sum())
                examples += len(target_len)
            loss = float(outputs["loss"])  # waits for the last step
            return (
                clock.seconds(),
                clock.cpu_seconds(),
                target_tokens,
                source_tokens,
                examples,
                loss,
            )

        first_step_s, *_ = run(1, first)
        warmup_s, *_ = run(max(args.warmup - 1, 0)) if args.warmup > 1 else (0.0,)
        repeats = []
        loss = float("nan")
        for _ in range(args.repeats):
            seconds, cpu_seconds, target_tokens, source_tokens, examples, loss = run(
                args.steps
            )
            repeats.append(
                {
                    "target_tokens_per_s": target_tokens / seconds,
                    "source_tokens_per_s": source_tokens / seconds,
                    "examples_per_s": examples / seconds,
                    "steps_per_s": args.steps / seconds,
                    "ms_per_step": 1000.0 * seconds / args.steps,
                    "cpu_ms_per_step": 1000.0 * cpu_seconds / args.steps,
                    "mean_target_len": target_tokens / max(examples, 1),
                }
            )
        result = {key: common.median([r[key] for r in repeats]) for key in repeats[0]}
        ms = [r["ms_per_step"] for r in repeats]
        result.update(
            config=name,
            model_class=model_class,
            batch_size=args.batch_size,
            parameters=common.count_parameters(trainer.model.trainable_variables),
            build_s=build_s,
            first_step_s=first_step_s,
            warmup_s=first_step_s + warmup_s,
            ms_per_step_min=min(ms),
            ms_per_step_max=max(ms),
            final_loss=loss,
            step=trainer.step,
            peak_rss_mb=common.peak_rss_mb(),
            tf_version=tf.__version__,
            device=common.device_description(),
            options=options_description(args),
        )
        return result
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def options_description(args):
    """The engine options of a run, e.g. "xla, bfloat16"."""
    options = []
    if args.jit_compile:
        options.append("xla")
    if args.pad_to_bucket:
        options.append("padded to buckets")
    if args.mixed_precision:
        options.append(args.mixed_precision)
    if args.distribution_strategy != "default":
        options.append(args.distribution_strategy)
    return ", ".join(options) or "float32"


def build_parser():
    parser = argparse.ArgumentParser(
        description="Training throughput of example configs (prints a table)."
    )
    parser.add_argument(
        "--configs",
        default="nmt_small,nmt_medium",
        help="Comma-separated config names in example_configs/ or YAML paths.",
    )
    parser.add_argument("--batch_size", type=int, default=32, help="Batch size.")
    parser.add_argument(
        "--buckets",
        default=None,
        help='Bucket boundaries on source length, e.g. "10,20,30" (default: none).',
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per repeat.")
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="Untimed steps first (the first one traces the step).",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="Timed repeats; the median is shown."
    )
    parser.add_argument("--source", help="Source text file (instead of synthetic).")
    parser.add_argument("--target", help="Target text file (instead of synthetic).")
    parser.add_argument(
        "--vocab", help="Vocabulary (with --source), for both sides by default."
    )
    parser.add_argument(
        "--vocab_target", help="Target vocabulary, if it differs from --vocab."
    )
    parser.add_argument(
        "--jit_compile", action="store_true", help="XLA train step (--jit_compile)."
    )
    parser.add_argument(
        "--pad_to_bucket",
        action="store_true",
        help="Pad batches to their bucket's upper length (with --buckets).",
    )
    parser.add_argument(
        "--mixed_precision",
        default="",
        choices=["", "float16", "bfloat16"],
        help="Mixed precision policy (--mixed_precision).",
    )
    parser.add_argument(
        "--distribution_strategy",
        default="default",
        choices=["default", "mirrored"],
        help="tf.distribute strategy (mirrored: every GPU).",
    )
    synthetic_data.add_corpus_flags(parser, num_examples=5000)
    parser.add_argument(
        "--in_process",
        action="store_true",
        help="Run all configs in this process (peak RSS becomes cumulative).",
    )
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    return parser


def _given_paths(args):
    return {
        "sources": args.source,
        "targets": args.target,
        "vocab": args.vocab,
        "vocab_target": args.vocab_target,
    }


def _corpus(args, work_dir):
    given = [args.source, args.target, args.vocab]
    if any(given) or args.vocab_target:
        if not all(given):
            raise SystemExit("error: give all of --source, --target and --vocab.")
        for path in given + [args.vocab_target]:
            if path and not os.path.isfile(path):
                raise SystemExit(f"error: file not found: {path}")
        vocabs = args.vocab + (f" / {args.vocab_target}" if args.vocab_target else "")
        return _given_paths(args), (
            f"corpus: {args.source} / {args.target}, vocab {vocabs}"
        )
    info = common.write_corpus(args, work_dir)
    return info, "synthetic corpus: " + synthetic_data.describe(info)


def _measure_child(spec):
    """The child side of `_run_child`: one config, measured."""
    return measure(spec["config"], spec["paths"], argparse.Namespace(**spec["args"]))


def _run_child(args, name, paths, work_dir, index):
    """Measures one config in a fresh process; returns its result."""
    spec = {
        "config": name,
        "paths": {
            key: paths.get(key)
            for key in ("sources", "targets", "vocab", "vocab_target")
        },
        "args": vars(args),
    }
    command = [sys.executable, os.path.abspath(__file__), "--child", "measure"]
    try:
        # TensorFlow's start-up chatter is shown only when the child fails.
        return common.run_child(
            command, spec, work_dir, f"config{index}", name, log_tail=None
        )
    except common.ChildFailed as err:
        raise SystemExit(
            f"error: the benchmark of {name} failed (exit {err.returncode})."
        ) from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return common.child_main(
            argv[1:],
            {"measure": _measure_child},
            "usage: train_throughput.py --child measure SPEC RESULT",
        )
    args = build_parser().parse_args(argv)
    for flag in ("batch_size", "steps", "repeats"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"error: --{flag} must be at least 1.")
    names = [n.strip() for n in args.configs.split(",") if n.strip()]

    for name in names:
        config_path(name)  # fail early on a bad name
    work_dir = tempfile.mkdtemp(prefix="bench_corpus_")
    try:
        paths, corpus_line = _corpus(args, work_dir)
        print(corpus_line)
        print(
            f"batch size {args.batch_size}, buckets {args.buckets or 'none'}, "
            f"{args.warmup} warm-up steps, {args.repeats} x {args.steps} timed "
            f"steps (median shown); {common.load_at_start()}",
            flush=True,
        )
        results = []
        for index, name in enumerate(names):
            if args.in_process:
                result = measure(name, paths, args)
            else:
                result = _run_child(args, name, paths, work_dir, index)
            results.append(result)
            print(
                f"  {name}: done ({result['parameters'] / 1e6:.2f}M parameters)",
                flush=True,
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    print()
    print(common.results_table(results, _COLUMNS))
    print()
    if results:
        print(
            f"device: {results[0]['device']}; TensorFlow {results[0]['tf_version']}; "
            f"options: {results[0]['options']}"
        )
    for r in results:
        print(
            f"{r['config']}: {r['model_class']}, {r['parameters'] / 1e6:.2f}M "
            f"parameters; model+pipeline build {r['build_s']:.1f}s, first step "
            f"(tracing) {r['first_step_s']:.1f}s; ms/step over repeats "
            f"{r['ms_per_step_min']:.1f}-{r['ms_per_step_max']:.1f}; mean target "
            f"length {r['mean_target_len']:.1f}; loss after {r['step']} steps "
            f"{r['final_loss']:.3f}"
        )
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            ratio = r["target_tokens_per_s"] / base["target_tokens_per_s"]
            print(
                f"{r['config']} / {base['config']} target tokens/s: {ratio:.2f}x "
                f"(parameters {r['parameters'] / base['parameters']:.2f}x)"
            )
    print(
        common.load_at_end() + " (a shared machine makes figures noisy; "
        "compare runs taken together)"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
