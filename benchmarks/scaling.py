#!/usr/bin/env python3
"""How the cost of training `nmt_small` grows with batch, length and vocabulary.

Two tables, each cell measured in its own fresh process (the same child as
`compare_opennmt.py`: the Trainer's compiled train step on batches from its
own pipeline, `--warmup` untimed steps, then `--repeats` windows of
`--steps` timed steps, median shown):

1. training target tokens/s (and per CPU-second) for every batch size in
   `--batch_sizes` (32, 64, 128) and mean sentence length in `--mean_lens`
   (10, 30, 50 words);
2. peak resident memory of training for every vocabulary size in
   `--vocab_sizes` (1k, 10k, 50k words; batch 32, mean length 20), with the
   part above the interpreter's RSS once TensorFlow is imported.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --batch_sizes 32,64 --mean_lens 10,30 --steps 10

The corpora are synthetic (see `synthetic_data.py`: Zipfian words, gamma
lengths). So that a mean length of 50 is reachable, the longest sentence is
`max(50, 2.5 x mean)` words here; the measured mean target length (words +
end-of-sentence) is printed in every cell. No length truncation and no
bucketing: each batch is padded to its longest sentence. Timings depend on
the other work on the machine; the load average is printed at start and end.
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

from benchmarks import common, compare_opennmt, synthetic_data  # noqa: E402
from benchmarks.common import BenchmarkError, ChildFailed, format_table  # noqa: E402


def write_corpus(work_dir, name, vocab_size, mean_len, num_examples, seed):
    """A synthetic corpus whose longest sentence is max(50, 2.5 x mean)."""
    info = synthetic_data.write_synthetic_corpus(
        os.path.join(work_dir, name),
        num_examples=num_examples,
        vocab_size=vocab_size,
        mean_len=mean_len,
        max_len=max(50, int(round(2.5 * mean_len))),
        seed=seed,
    )
    return info


def measure(info, batch_size, args, work_dir, tag):
    """One training measurement in a fresh process; returns its result."""
    model_dir = os.path.join(work_dir, "model_" + tag)
    os.makedirs(model_dir, exist_ok=True)
    spec = {
        "round": tag,
        "source": info["sources"],
        "target": info["targets"],
        "vocab": info["vocab"],
        "batch_size": batch_size,
        "warmup": args.warmup,
        "steps": args.steps,
        "windows": args.repeats,
        "seed": args.seed,
        "model_dir": model_dir,
        "save": False,
    }
    result = compare_opennmt.run_child("ours", "train", spec, work_dir)
    shutil.rmtree(model_dir, ignore_errors=True)
    windows = result.get("windows") or [result]
    result["tokens_per_s"] = common.median(
        [w["target_tokens"] / w["seconds"] for w in windows]
    )
    result["tokens_per_cpu_s"] = common.median(
        [w["target_tokens"] / max(w["cpu_seconds"], 1e-9) for w in windows]
    )
    result["ms_per_step"] = common.median(
        [1000.0 * w["seconds"] / w["steps"] for w in windows]
    )
    result["mean_target_len"] = sum(w["target_tokens"] for w in windows) / max(
        sum(w["examples"] for w in windows), 1
    )
    return result


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train tokens/s of nmt_small by batch size and sentence "
        "length, and peak memory by vocabulary size."
    )
    parser.add_argument("--batch_sizes", default="32,64,128", help="Batch sizes.")
    parser.add_argument(
        "--mean_lens", default="10,30,50", help="Mean sentence lengths (words)."
    )
    parser.add_argument(
        "--vocab_sizes", default="1000,10000,50000", help="Vocabulary sizes."
    )
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=8000,
        help="Vocabulary of the batch x length table.",
    )
    parser.add_argument(
        "--memory_mean_len",
        type=float,
        default=20.0,
        help="Mean length of the vocabulary table.",
    )
    parser.add_argument(
        "--memory_batch_size", type=int, default=32, help="Batch of the vocab table."
    )
    parser.add_argument("--steps", type=int, default=4, help="Timed steps a window.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument(
        "--repeats", type=int, default=3, help="Timed windows; the median is shown."
    )
    parser.add_argument(
        "--num_examples",
        type=int,
        default=3000,
        help="Sentence pairs per synthetic corpus.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument(
        "--skip",
        choices=("length", "vocab"),
        help="Leave out one of the two tables.",
    )
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    return parser


def run(args):
    batch_sizes = common.number_list(args.batch_sizes, "batch_sizes")
    mean_lens = common.number_list(
        args.mean_lens, "mean_lens", float, description="numbers >= 1 like 10,30"
    )
    vocab_sizes = common.number_list(args.vocab_sizes, "vocab_sizes")
    for flag in ("steps", "warmup", "repeats", "num_examples", "memory_batch_size"):
        if getattr(args, flag) < 1:
            raise BenchmarkError(f"--{flag} must be at least 1.")
    if args.vocab_size < 2:
        raise BenchmarkError("--vocab_size must be at least 2.")
    work_dir = tempfile.mkdtemp(prefix="scaling_")
    keep = False
    grid, memory = {}, {}
    print(
        f"nmt_small (ours), {args.warmup} warm-up + {args.repeats} x {args.steps} "
        f"timed steps per cell, each cell in its own process; "
        f"{common.load_at_start()}",
        flush=True,
    )
    try:
        if args.skip != "length":
            for mean_len in mean_lens:
                info = write_corpus(
                    work_dir,
                    f"len{mean_len:g}",
                    args.vocab_size,
                    mean_len,
                    args.num_examples,
                    args.seed,
                )
                for batch_size in batch_sizes:
                    result = measure(
                        info, batch_size, args, work_dir, f"b{batch_size}_l{mean_len:g}"
                    )
                    grid[(batch_size, mean_len)] = result
                    print(
                        f"  batch {batch_size}, mean length {mean_len:g}: "
                        f"{result['tokens_per_s']:.0f} tgt tok/s, "
                        f"{result['ms_per_step']:.0f} ms/step, peak RSS "
                        f"{result['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
        if args.skip != "vocab":
            for vocab_size in vocab_sizes:
                info = write_corpus(
                    work_dir,
                    f"vocab{vocab_size}",
                    vocab_size,
                    args.memory_mean_len,
                    args.num_examples,
                    args.seed,
                )
                result = measure(
                    info, args.memory_batch_size, args, work_dir, f"v{vocab_size}"
                )
                memory[vocab_size] = result
                print(
                    f"  vocabulary {vocab_size}: peak RSS "
                    f"{result['peak_rss_mb']:.0f} MB, "
                    f"{result['parameters'] / 1e6:.2f}M parameters",
                    flush=True,
                )
    except ChildFailed:
        keep = True
        raise
    finally:
        if keep:
            print(f"work directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    if grid:
        print()
        print(
            "Training target tokens/s (per CPU-second in brackets; mean target "
            "length measured, words + end-of-sentence):"
        )
        rows = [["batch \\ mean length"] + [f"{m:g}" for m in mean_lens]]
        for batch_size in batch_sizes:
            rows.append(
                [str(batch_size)]
                + [
                    f"{grid[(batch_size, m)]['tokens_per_s']:.0f} "
                    f"({grid[(batch_size, m)]['tokens_per_cpu_s']:.0f})"
                    for m in mean_lens
                ]
            )
        rows.append(
            ["measured mean target length"]
            + [f"{grid[(batch_sizes[0], m)]['mean_target_len']:.1f}" for m in mean_lens]
        )
        print(format_table(rows))
        print()
        rows = [["batch \\ mean length"] + [f"{m:g}" for m in mean_lens]]
        for batch_size in batch_sizes:
            rows.append(
                [str(batch_size)]
                + [
                    f"{grid[(batch_size, m)]['ms_per_step']:.0f} ms, "
                    f"{grid[(batch_size, m)]['peak_rss_mb']:.0f} MB"
                    for m in mean_lens
                ]
            )
        print("Milliseconds per step and peak RSS:")
        print(format_table(rows))
    if memory:
        print()
        print(
            f"Peak memory of training by vocabulary size (batch "
            f"{args.memory_batch_size}, mean length {args.memory_mean_len:g}):"
        )
        rows = [
            [
                "vocabulary",
                "parameters",
                "peak RSS MB",
                "RSS over import MB",
                "tgt tok/s",
            ]
        ]
        for vocab_size in vocab_sizes:
            r = memory[vocab_size]
            rows.append(
                [
                    str(vocab_size),
                    f"{r['parameters'] / 1e6:.2f}M",
                    f"{r['peak_rss_mb']:.0f}",
                    f"{r['peak_rss_mb'] - r['import_rss_mb']:.0f}",
                    f"{r['tokens_per_s']:.0f}",
                ]
            )
        print(format_table(rows))
    print()
    print(
        common.load_at_end(with_cpus=True)
        + " (a shared machine makes wall-clock figures noisy; the per-CPU-second "
        "figures are less sensitive)"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "grid": {f"{b},{m:g}": r for (b, m), r in grid.items()},
                    "memory": {str(v): r for v, r in memory.items()},
                },
                out,
                indent=2,
            )
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
