#!/usr/bin/env python3
"""CPU-seconds per training step of engine options, A/B on the real corpus.

    python benchmarks/train_levers.py [--variants base,jit --steps 300 --rounds 2]

Each variant trains `example_configs/nmt_small.yml` (learning rate
`--learning_rate`, batch `--batch_size`) on the English->French
software-catalog corpus of `real_corpus.py` with this project's `Trainer`
loop, as `bin/train.py` runs it (logging, summaries, curve health), in a
fresh process, for `--warmup` untimed steps and then `--steps` timed ones.
Variants run in turn, round after round (A B A B ...), so that a change in
the machine's load falls on all of them; the figure per variant is the
median over rounds of the process CPU time per timed step, which depends
less on other processes than wall time does. Wall seconds per step and the
mean training loss over the timed steps are printed beside it (the loss
says whether a variant changed the model's maths beyond noise), and the
peak resident memory of the child process.

A variant is a name of `VARIANTS`: changes to the `RunConfig` (the
`bin/train.py` flags of the same names), e.g. `jit` is `--jit_compile`,
and under `env` environment variables of the child (e.g. `eigen` turns
oneDNN off with `TF_ENABLE_ONEDNN_OPTS=0`).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, real_corpus  # noqa: E402
from benchmarks.common import BenchmarkError  # noqa: E402

CONFIG = "nmt_small"
TUTORIAL_BUCKETS = "10,20,30,40"

# RunConfig changes of each variant (keys are `bin/train.py` flag names);
# `fused_optimizer: False` applies updates with Keras's own Adam instead of
# `seq2seq.training.fused_adam` (the same update, unfused; the default).
VARIANTS = {
    "base": {"buckets": TUTORIAL_BUCKETS},
    "keras_adam": {"buckets": TUTORIAL_BUCKETS, "fused_optimizer": False},
    "nobuckets": {"buckets": None},
    "auto": {"buckets": "auto"},
    # Batches padded to their bucket's bound: one batch shape per bucket, so
    # oneDNN compiles (and keeps) one primitive per bucket, not per length.
    "auto_pad": {"buckets": "auto", "pad_to_bucket": True},
    "jit": {"buckets": TUTORIAL_BUCKETS, "jit_compile": True},
    "jit_auto": {"buckets": "auto", "jit_compile": True},
    # One compiled shape per bucket (needs the config's maximum lengths).
    "jit_pad": {
        "buckets": TUTORIAL_BUCKETS,
        "pad_to_bucket": True,
        "jit_compile": True,
    },
    "jit_pad_auto": {"buckets": "auto", "pad_to_bucket": True, "jit_compile": True},
    # XLA's CPU backend with its oneDNN matmuls, or without the thunk runtime
    # (a compiled program per computation instead of a sequence of thunks).
    "jit_pad_onednn": {
        "buckets": TUTORIAL_BUCKETS,
        "pad_to_bucket": True,
        "jit_compile": True,
        "env": {"XLA_FLAGS": "--xla_cpu_use_onednn=true"},
    },
    "jit_pad_no_thunks": {
        "buckets": TUTORIAL_BUCKETS,
        "pad_to_bucket": True,
        "jit_compile": True,
        "env": {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false"},
    },
    "bf16": {"buckets": TUTORIAL_BUCKETS, "mixed_precision": "bfloat16"},
    "auto_bf16": {"buckets": "auto", "mixed_precision": "bfloat16"},
    # Only the output layer's product in bfloat16, while training.
    "bf16_logits": {"buckets": TUTORIAL_BUCKETS, "mixed_precision": "bfloat16_logits"},
    "auto_keras_adam": {"buckets": "auto", "fused_optimizer": False},
    # Environment variables of the child process instead of flags.
    "eigen": {"buckets": TUTORIAL_BUCKETS, "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "auto_eigen": {"buckets": "auto", "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "one_interop": {
        "buckets": TUTORIAL_BUCKETS,
        "env": {"TF_NUM_INTEROP_THREADS": "1"},
    },
    "one_intraop": {
        "buckets": TUTORIAL_BUCKETS,
        "env": {"TF_NUM_INTRAOP_THREADS": "1"},
    },
    # TensorFlow's own intra-op threads, as wide as the machine (on at most
    # two CPUs training uses one: seq2seq.training.cpu_threads).
    "tf_intraop": {
        "buckets": TUTORIAL_BUCKETS,
        "env": {"TF_NUM_INTRAOP_THREADS": "0"},
    },
    # Large CPU tensors from glibc's malloc instead of TensorFlow's oneDNN
    # pool, glibc tuned to give them back: blocks from 16 MB mapped alone,
    # the heap trimmed past 16 MB, two arenas (docs/training.md, "Memory").
    "system_allocator": {
        "buckets": TUTORIAL_BUCKETS,
        "env": {
            "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1",
            "MALLOC_MMAP_THRESHOLD_": str(16 << 20),
            "MALLOC_TRIM_THRESHOLD_": str(16 << 20),
            "MALLOC_ARENA_MAX": "2",
        },
    },
    # oneDNN computes float32 matmuls with bfloat16 inputs (AMX, AVX512-BF16).
    "fpmath_bf16": {
        "buckets": TUTORIAL_BUCKETS,
        "env": {"TF_SET_ONEDNN_FPMATH_MODE": "BF16"},
    },
    "bf16_logits_one_intraop": {
        "buckets": TUTORIAL_BUCKETS,
        "mixed_precision": "bfloat16_logits",
        "env": {"TF_NUM_INTRAOP_THREADS": "1"},
    },
}


def real_corpus_trainer(
    paths, model_dir, learning_rate, batch_size, seed, train_steps, params=None, **run
):
    """A `Trainer` of `example_configs/nmt_small.yml` on the real corpus, as
    `bin/train.py` runs it, without evaluation or checkpoints.

    Args:
      paths: `real_corpus.corpus_paths` of the corpus.
      model_dir: Where the run writes its options and summaries.
      learning_rate: Adam's learning rate.
      batch_size: Sentences per batch.
      seed: `--tf_random_seed`.
      train_steps: Steps to train.
      params: Model parameters merged into nmt_small's (default none).
      **run: Other `RunConfig` fields (`bin/train.py` flags), e.g.
        `buckets="10,20,30,40"` or `jit_compile=True`.
    """
    from seq2seq.configurable import ModeKeys, deep_merge
    from seq2seq.data import batching
    from seq2seq.training import cpu_threads
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    cpu_threads.configure_training_threads()
    model_class, model_params = common.load_model_config(
        CONFIG, paths["vocab_source"], vocab_target=paths["vocab_target"]
    )
    model_params = deep_merge(model_params, params or {})
    model_params["optimizer.learning_rate"] = learning_rate
    options = TrainOptions.from_model(model_class, model_params)
    trainer_lib.check_and_write_train_options(options, model_dir)
    pipeline = common.text_pipeline(
        paths["train_source"], paths["train_target"], ModeKeys.TRAIN
    )
    if isinstance(run.get("buckets"), str):
        run["buckets"] = batching.parse_buckets(run["buckets"])
    config = trainer_lib.RunConfig(
        output_dir=model_dir,
        batch_size=batch_size,
        tf_random_seed=seed,
        eval_every_n_steps=0,
        train_steps=train_steps,
        save_checkpoints_steps=10**9,
        **run,
    )
    return trainer_lib.Trainer(options, pipeline, None, config)


def step_clock(warmup, steps, on_start=None, on_stop=None):
    """A `TrainingHook` timing steps `warmup + 1` .. `warmup + steps`.

    After training, `clock.cpu_s_step` and `clock.wall_s_step` are the
    process CPU-seconds and wall seconds per timed step (a `common.Stopwatch`
    started after step `warmup`), and `clock.losses` the training losses of
    the timed steps. `on_start()` runs just before the clock starts,
    `on_stop()` just after it stops (e.g. to trace those steps).
    """
    from seq2seq.training.hooks import TrainingHook

    class StepClock(TrainingHook):
        def __init__(self):
            self.losses = []
            self.watch = None
            self.cpu_s_step = self.wall_s_step = None

        def after_step(self, step, features, outputs):
            if warmup < step <= warmup + steps:
                self.losses.append(float(outputs["loss"]))
            if step == warmup:
                if on_start:
                    on_start()
                self.watch = common.Stopwatch()
            elif step == warmup + steps:
                self.cpu_s_step = self.watch.cpu_seconds() / steps
                self.wall_s_step = self.watch.seconds() / steps
                if on_stop:
                    on_stop()

    return StepClock()


def child_train(spec):
    """Trains one variant; returns the timing of the steps after warmup."""
    import tensorflow as tf

    warmup, steps = spec["warmup"], spec["steps"]
    trainer = real_corpus_trainer(
        spec["paths"],
        spec["model_dir"],
        spec["learning_rate"],
        spec["batch_size"],
        spec["seed"],
        warmup + steps,
        **spec["changes"],
    )
    clock = step_clock(warmup, steps)
    trainer.hooks.append(clock)
    trainer.train()
    return {
        "cpu_s_step": clock.cpu_s_step,
        "wall_s_step": clock.wall_s_step,
        "mean_loss": sum(clock.losses) / max(len(clock.losses), 1),
        "buckets": trainer.config.buckets,
        "tf_version": tf.__version__,
    }


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data_dir", default=os.path.join(real_corpus.default_cache_dir(), "en-fr")
    )
    parser.add_argument("--variants", default="base,jit")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", help="Keep runs here (default: temporary).")
    parser.add_argument("--json", help="Write all results here.")
    return parser


def run(args):
    names = [v for v in args.variants.split(",") if v]
    for name in names:
        if name not in VARIANTS:
            raise BenchmarkError(
                f"--variants: unknown variant {name!r}; choose from "
                f"{', '.join(VARIANTS)}."
            )
    for flag in ("steps", "warmup", "rounds", "batch_size"):
        if getattr(args, flag) <= 0:
            raise BenchmarkError(f"--{flag} must be positive.")
    real_corpus.ensure_corpus(args.data_dir)
    paths = real_corpus.corpus_paths(args.data_dir)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="train_levers_")
    os.makedirs(work_dir, exist_ok=True)
    print(common.load_at_start(), flush=True)
    results = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names:
            tag = f"{name}_r{round_}"
            changes = dict(VARIANTS[name])
            env = dict(os.environ, **changes.pop("env", {}))
            spec = {
                "changes": changes,
                "model_dir": os.path.join(work_dir, tag),
                "paths": paths,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
                "warmup": args.warmup,
                "steps": args.steps,
            }
            result = common.run_child(
                [sys.executable, os.path.abspath(__file__), "--child", "train"],
                spec,
                work_dir,
                tag,
                f"{name} round {round_}",
                env=env,
            )
            results[name].append(result)
            print(
                f"  round {round_} {name}: {result['cpu_s_step']:.4f} CPU-s/step, "
                f"{result['wall_s_step']:.4f} s/step, loss {result['mean_loss']:.3f}"
                f", peak RSS {result['peak_rss_mb']:.0f} MB"
                f", load {common.load_average():.2f}",
                flush=True,
            )
    base = common.median([r["cpu_s_step"] for r in results[names[0]]])
    rows = [
        [
            "variant",
            "CPU-s/step",
            "s/step",
            "mean loss",
            "peak RSS MB",
            f"vs {names[0]}",
        ]
    ]
    for name in names:
        runs = results[name]
        cpu = common.median([r["cpu_s_step"] for r in runs])
        rows.append(
            [
                name,
                f"{cpu:.4f}",
                f"{common.median([r['wall_s_step'] for r in runs]):.4f}",
                f"{common.median([r['mean_loss'] for r in runs]):.3f}",
                f"{common.median([r['peak_rss_mb'] for r in runs]):.0f}",
                f"{base / cpu:.2f}x",
            ]
        )
    print(common.format_table(rows))
    print(common.load_at_end(with_cpus=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return common.child_main(
            argv[1:],
            {"train": child_train},
            "usage: train_levers.py --child train SPEC RESULT",
        )
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (BenchmarkError, real_corpus.CorpusError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
