#!/usr/bin/env python3
"""Per-sentence decode length limits on trained models: BLEU, runaways, time.

Decodes the real corpus's test (or `--split dev`) set (`real_corpus.py`,
en-fr; choose a ratio on dev, report it on test) with each
model of `--model_dirs` (`bin/train.py` output directories, e.g. the
`ours_model_s{seed}` directories that `real_corpus_compare.py` leaves in its
work directory) through `bin/infer.py`, as a user translates a file, once
per beam width of `--beams` and per ratio of `--ratios`
(`inference.max_decode_length_ratio`, with
`inference.max_decode_length_offset` = `--offset`; ratio 0 is the plain
`--max_decode_length` limit). For each run it prints the BLEU on tokens
(sacrebleu, tokenize none, as `real_corpus_compare.py` scores), the
output / reference length ratio, the output tokens, the outputs that ran to
`--max_decode_length` ("runaways") and the wall-clock seconds of the whole
process (median of `--repeats`); then the medians over the models.

    python benchmarks/decode_length_limits.py \\
        --model_dirs W/ours_model_s0,W/ours_model_s1,W/ours_model_s2 \\
        --ratios 0,1.5,2 --beams 1,5
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS)

import common  # noqa: E402
import real_corpus  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_dirs", required=True, help="comma-separated trained model dirs"
    )
    parser.add_argument(
        "--corpus_dir",
        default=os.path.join(real_corpus.default_cache_dir(), "en-fr"),
        help="the real corpus (built by real_corpus.py)",
    )
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--ratios", default="0,1.5,2", help="comma-separated")
    parser.add_argument("--offset", type=int, default=5)
    parser.add_argument("--beams", default="1,5", help="comma-separated widths")
    parser.add_argument("--max_decode_length", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs each")
    parser.add_argument(
        "--work_dir", default="decode_length_limits", help="where outputs go"
    )
    return parser.parse_args(argv)


def final_checkpoint(model_dir):
    """The newest checkpoint of `model_dir`: the `checkpoint` state file's,
    else the highest `mark-N` (as `real_corpus_compare.py` names them).

    Raises:
      BenchmarkError: `model_dir` is not a directory or has no checkpoint.
    """
    if not os.path.isdir(model_dir):
        raise common.BenchmarkError(
            f"--model_dirs: {model_dir} is not a directory; give bin/train.py "
            "output directories."
        )
    state = os.path.join(model_dir, "checkpoint")
    if os.path.isfile(state):
        return None  # bin/infer.py takes the latest itself
    marks = [
        int(match.group(1))
        for name in os.listdir(model_dir)
        if (match := re.fullmatch(r"mark-(\d+)\.index", name))
    ]
    if not marks:
        raise common.BenchmarkError(
            f"--model_dirs: {model_dir} has no checkpoint; train it first."
        )
    return os.path.join(model_dir, f"mark-{max(marks)}")


def decode(args, model_dir, checkpoint, beam, ratio, output):
    """Runs `bin/infer.py` once; returns its wall-clock seconds."""
    params = {
        "inference.beam_search.beam_width": beam,
        "inference.max_decode_length": args.max_decode_length,
        "inference.max_decode_length_ratio": ratio,
        "inference.max_decode_length_offset": args.offset,
    }
    source = os.path.join(args.corpus_dir, f"{args.split}.en")
    command, env = common.infer_command(
        model_dir, source, output, params, args.batch_size, checkpoint=checkpoint
    )
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=common.REPO_ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise common.ChildFailed(
            f"bin/infer.py exited with {done.returncode} on {model_dir}: {last}",
            done.returncode,
        )
    return seconds


def score(output, references, max_length):
    import sacrebleu

    with open(output, encoding="utf-8") as handle:
        hyps = [line.rstrip("\n") for line in handle]
    bleu = sacrebleu.corpus_bleu(hyps, [references], tokenize="none", force=True)
    lengths = [len(h.split()) for h in hyps]
    return {
        "bleu": bleu.score,
        "length_ratio": bleu.sys_len / bleu.ref_len,
        "tokens": sum(lengths),
        # Output tokens exclude SEQUENCE_END: max_length - 1 or more means
        # the limit cut the sentence.
        "runaways": sum(n >= max_length - 1 for n in lengths),
    }


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except common.BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run(args):
    ratios = common.number_list(
        args.ratios, "ratios", float, 0, "ratios >= 0 like 0,1.5,2"
    )
    beams = common.number_list(args.beams, "beams")
    for flag in ("max_decode_length", "batch_size", "repeats"):
        if getattr(args, flag) < 1:
            raise common.BenchmarkError(f"--{flag} must be positive.")
    if args.offset < 0:
        raise common.BenchmarkError("--offset must be >= 0.")
    references_path = os.path.join(args.corpus_dir, f"{args.split}.fr")
    if not os.path.isfile(references_path):
        raise common.BenchmarkError(
            f"{references_path} does not exist; build the corpus with "
            "benchmarks/real_corpus.py or give --corpus_dir."
        )
    with open(references_path, encoding="utf-8") as handle:
        references = [line.rstrip("\n") for line in handle]
    model_dirs = args.model_dirs.split(",")
    checkpoints = [final_checkpoint(model_dir) for model_dir in model_dirs]
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    for index, (model_dir, checkpoint) in enumerate(zip(model_dirs, checkpoints)):
        for beam in beams:
            for ratio in ratios:
                output = os.path.join(
                    args.work_dir, f"{args.split}_m{index}_beam{beam}_r{ratio}"
                )
                seconds = statistics.median(
                    decode(args, model_dir, checkpoint, beam, ratio, output)
                    for _ in range(args.repeats)
                )
                row = dict(model=index, beam=beam, ratio=ratio, seconds=seconds)
                row.update(score(output, references, args.max_decode_length))
                rows.append(row)
                print(
                    f"model {index} beam {beam} ratio {ratio:g}: BLEU "
                    f"{row['bleu']:.2f}, length ratio {row['length_ratio']:.3f}, "
                    f"{row['tokens']} tokens, {row['runaways']} runaways, "
                    f"{seconds:.1f} s",
                    flush=True,
                )
    print(
        f"\n{args.split} set, medians over {index + 1} models (offset {args.offset}, "
        f"max_decode_length {args.max_decode_length}):"
    )
    print("| beam | ratio | BLEU | length ratio | tokens | runaways | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for beam in beams:
        for ratio in ratios:
            runs = [r for r in rows if r["beam"] == beam and r["ratio"] == ratio]

            def med(key, runs=runs):
                return statistics.median(r[key] for r in runs)

            label = "off" if ratio == 0 else f"{ratio:g}"
            print(
                f"| {beam} | {label} | {med('bleu'):.2f} | "
                f"{med('length_ratio'):.3f} | {med('tokens'):.0f} | "
                f"{med('runaways'):.0f} | {med('seconds'):.1f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
