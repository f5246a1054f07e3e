#!/usr/bin/env python3
"""Inference throughput: greedy vs. beam search, batch 1 vs. batch 32.

Decodes `--num_sentences` sentences with the project's inference path
(`seq2seq.inference.inference`: `build_model` with the beam width as a
param override, `make_dataset`, the compiled `Predictor`, `restore_model`)
for every combination of `--beam_widths` (greedy and beam 5 by default) and
`--batch_sizes` (1 and 32), and prints sentences/s, output tokens/s and the
beam/greedy ratio.

By default it runs standalone: it writes a synthetic corpus (Zipfian words,
gamma-distributed lengths; see `synthetic_data.py`), builds a randomly
initialised `nmt_small` for it and decodes a held-out set of the same task:

    python -m benchmarks.infer_throughput
    python benchmarks/infer_throughput.py --num_sentences 100 --batch_sizes 32

A model that has not learned the task almost never emits SEQUENCE_END, so in
standalone mode every output is capped at `--max_decode_length` tokens
(default: twice the mean sentence length, 40) and the figures measure
decoding of that many steps; a converged model stops near the reference
length instead (the output says how many sentences ended on their own).
`--train_steps N` first trains the model for N steps with the project's
`Trainer` (at `--train_learning_rate`); on a 2-core CPU a few hundred or even
a thousand steps are not enough for the model to stop by itself, and a
half-trained model makes beam search prefer the empty hypothesis (its
SEQUENCE_END at step 1 beats every capped hypothesis), so it is off by
default.

With `--model_dir` (a `bin/train.py` output directory) and `--source` (a
file of sentences in its vocabulary) it measures that trained model, with
the model's own decode length limit unless `--max_decode_length` is given.

For each setting one batch is decoded first and not timed (tracing and
restoring happen there); then all sentences are decoded, timed. Output tokens
count each sentence's predicted tokens including SEQUENCE_END. "CPU
ms/sent" is the processor time of the whole process per sentence; on a
machine shared with other jobs it varies less than the wall clock.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, synthetic_data  # noqa: E402


def _int_list(text, flag):
    try:
        return common.number_list(
            text, flag, minimum=0, description="integers like 1,32"
        )
    except common.BenchmarkError as err:
        raise SystemExit(f"error: {err}") from None


def build_parser():
    parser = argparse.ArgumentParser(
        description="Greedy vs. beam search decoding throughput (prints a table)."
    )
    parser.add_argument(
        "--model_dir", help="A trained model directory (default: train one here)."
    )
    parser.add_argument(
        "--checkpoint_path", help="Checkpoint in --model_dir (default: latest)."
    )
    parser.add_argument(
        "--source", help="Sentences to decode (needed with --model_dir)."
    )
    parser.add_argument(
        "--num_sentences", type=int, default=200, help="Sentences to decode."
    )
    parser.add_argument(
        "--batch_sizes", default="1,32", help="Comma-separated batch sizes."
    )
    parser.add_argument(
        "--beam_widths",
        default="1,5",
        help="Comma-separated beam widths; 0 or 1 means greedy.",
    )
    parser.add_argument(
        "--max_decode_length",
        type=int,
        default=None,
        help="Cap on output length (default: the model's own with --model_dir, "
        "else twice --mean_len).",
    )
    parser.add_argument(
        "--jit_compile",
        choices=("off", "on", "both"),
        default="off",
        help="Compile the decoding loop with XLA (bin/infer.py --jit_compile); "
        "'both' measures each setting without and with it, back to back.",
    )
    parser.add_argument(
        "--config", default="nmt_small", help="Config to train (standalone mode)."
    )
    parser.add_argument(
        "--train_steps",
        type=int,
        default=0,
        help="Training steps before measuring (standalone); 0: random model.",
    )
    parser.add_argument(
        "--train_batch_size", type=int, default=32, help="Batch size for training."
    )
    parser.add_argument(
        "--train_learning_rate",
        type=float,
        default=0.003,
        help="Learning rate of the short training run.",
    )
    synthetic_data.add_corpus_flags(parser, num_examples=5000)
    return parser


def train_model(args, work_dir):
    """Trains `args.config` on a synthetic corpus; returns the model dir."""
    from seq2seq.configurable import ModeKeys
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    corpus = common.write_corpus(args, os.path.join(work_dir, "train"))
    print("training corpus: " + synthetic_data.describe(corpus))
    model_class, params = common.load_model_config(
        args.config,
        corpus["vocab"],
        {"optimizer.learning_rate": args.train_learning_rate},
    )
    model_dir = os.path.join(work_dir, "model")
    options = TrainOptions.from_model(model_class, params)
    trainer_lib.check_and_write_train_options(options, model_dir)
    pipeline = common.text_pipeline(
        corpus["sources"], corpus["targets"], ModeKeys.TRAIN
    )
    config = trainer_lib.RunConfig(
        output_dir=model_dir,
        batch_size=args.train_batch_size,
        train_steps=args.train_steps,
        save_checkpoints_steps=args.train_steps,
        log_every_n_steps=max(args.train_steps, 1),
        tf_random_seed=args.seed,
    )
    clock = common.Stopwatch()
    trainer = trainer_lib.Trainer(options, pipeline, None, config)
    trainer.train()
    seconds = clock.seconds()
    print(
        f"trained {args.config} for {trainer.step} steps (batch "
        f"{args.train_batch_size}, learning rate {args.train_learning_rate}) "
        f"in {seconds:.0f}s"
    )
    return model_dir


def save_random_model(args, work_dir, source_path, vocab_path):
    """Writes an untrained model's weights as a checkpoint (train_steps 0)."""
    import tensorflow as tf

    from seq2seq.configurable import ModeKeys
    from seq2seq.inference import inference
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    model_class, params = common.load_model_config(args.config, vocab_path)
    model_dir = os.path.join(work_dir, "model")
    options = TrainOptions.from_model(model_class, params)
    trainer_lib.check_and_write_train_options(options, model_dir)
    tf.keras.utils.set_random_seed(args.seed)
    model = inference.build_model(options, mode=ModeKeys.INFER)
    dataset = inference.make_dataset(model, _pipeline(source_path), 1)
    model.infer(next(iter(dataset)), max_length=1)  # creates the variables
    # `save` also writes the `checkpoint` index that `resolve_checkpoint` reads.
    tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "ckpt"))
    print(f"untrained {args.config} (random weights, seed {args.seed})")
    return model_dir


def _pipeline(source_path):
    from seq2seq.configurable import ModeKeys

    return common.text_pipeline(source_path, None, ModeKeys.INFER)


def measure(
    model_dir,
    checkpoint_path,
    source_path,
    beam_widths,
    batch_sizes,
    cap,
    jit_settings=(False,),
):
    """Decodes the source file in every setting; returns a list of dicts."""
    from seq2seq.inference import inference

    options = inference.load_train_options(model_dir)
    checkpoint = inference.resolve_checkpoint(model_dir, checkpoint_path)
    pipeline = _pipeline(source_path)
    results = []
    settings = [(w, jit) for w in beam_widths for jit in jit_settings]
    for beam_width, jit_compile in settings:
        overrides = {"inference.beam_search.beam_width": beam_width}
        if cap:
            overrides["inference.max_decode_length"] = cap
        model = inference.build_model(options, overrides)
        limit = model.max_decode_length()
        end_id = model.target_vocab_info.special_vocab.SEQUENCE_END
        predictor = None
        for batch_size in batch_sizes:
            dataset = inference.make_dataset(model, pipeline, batch_size)
            if predictor is None:
                predictor = inference.Predictor(
                    model, dataset.element_spec, jit_compile=jit_compile
                )
                warm = next(iter(dataset))
                predictor(warm)  # traces and creates the variables
                inference.restore_model(model, checkpoint)
            # Warm-up at this batch size (not timed); under XLA a pass over
            # the data compiles every batch shape first.
            clock = common.Stopwatch()
            for features in dataset if jit_compile else [next(iter(dataset))]:
                predictor(features)
            warm_s = clock.seconds()
            sentences = tokens = ended = 0
            clock = common.Stopwatch()
            for features in dataset:
                predictions = predictor(features)
                lengths = predictions["predicted_len"]
                sentences += len(lengths)
                tokens += int(lengths.sum())
                ended += common.count_ended(
                    predictions["predicted_ids"], lengths, end_id
                )
            seconds = clock.seconds()
            cpu_seconds = clock.cpu_seconds()
            name = "greedy" if beam_width <= 1 else f"beam {beam_width}"
            results.append(
                {
                    "decoder": name + (" XLA" if jit_compile else ""),
                    "jit_compile": jit_compile,
                    "warmup_s": warm_s,
                    "sentences_per_cpu_s": sentences / max(cpu_seconds, 1e-9),
                    "beam_width": beam_width,
                    "batch_size": batch_size,
                    "seconds": seconds,
                    "sentences": sentences,
                    "sentences_per_s": sentences / seconds,
                    "tokens_per_s": tokens / seconds,
                    "ms_per_sentence": 1000.0 * seconds / max(sentences, 1),
                    "cpu_ms_per_sentence": 1000.0 * cpu_seconds / max(sentences, 1),
                    "mean_output_len": tokens / max(sentences, 1),
                    "ended": ended / max(sentences, 1),
                    "limit": limit,
                }
            )
            print(
                f"  {results[-1]['decoder']}, batch {batch_size}: "
                f"{seconds:.1f}s for {sentences} sentences",
                flush=True,
            )
    return results


_COLUMNS = (
    ("decoder", "decoder", "{}"),
    ("batch", "batch_size", "{}"),
    ("sent/s", "sentences_per_s", "{:.1f}"),
    ("tgt tok/s", "tokens_per_s", "{:.0f}"),
    ("ms/sent", "ms_per_sentence", "{:.1f}"),
    ("CPU ms/sent", "cpu_ms_per_sentence", "{:.1f}"),
    ("sent/CPU-s", "sentences_per_cpu_s", "{:.1f}"),
    ("warm-up s", "warmup_s", "{:.1f}"),
    ("mean out len", "mean_output_len", "{:.1f}"),
    ("ended", "ended", "{:.0%}"),
)


def ratios(results):
    """Lines comparing beam search with greedy, and batch sizes."""
    lines = []
    plain = [r for r in results if not r.get("jit_compile")]
    compiled = {
        (r["beam_width"], r["batch_size"]): r for r in results if r.get("jit_compile")
    }
    for r in plain:
        x = compiled.get((r["beam_width"], r["batch_size"]))
        if x:
            lines.append(
                f"{x['decoder']} / {r['decoder']} at batch {r['batch_size']}: "
                f"{x['sentences_per_s'] / r['sentences_per_s']:.2f}x the "
                f"sentences/s, {x['sentences_per_cpu_s'] / r['sentences_per_cpu_s']:.2f}x "
                "per CPU-second"
            )
    by_key = {(r["beam_width"], r["batch_size"]): r for r in plain or results}
    greedy = sorted({r["beam_width"] for r in results if r["beam_width"] <= 1})
    beams = sorted({r["beam_width"] for r in results if r["beam_width"] > 1})
    batch_sizes = sorted({r["batch_size"] for r in results})
    for beam in beams if greedy else ():
        for batch in batch_sizes:
            b, g = by_key.get((beam, batch)), by_key.get((greedy[0], batch))
            if b and g:
                ratio = b["sentences_per_s"] / g["sentences_per_s"]
                lines.append(
                    f"beam {beam} / greedy at batch {batch}: {ratio:.2f}x the "
                    f"sentences/s ({1 / ratio:.1f}x slower)"
                )
    if len(batch_sizes) > 1:
        small, large = batch_sizes[0], batch_sizes[-1]
        for width in sorted({r["beam_width"] for r in results}):
            s, big = by_key.get((width, small)), by_key.get((width, large))
            if s and big:
                name = s["decoder"]
                lines.append(
                    f"{name}: batch {large} / batch {small}: "
                    f"{big['sentences_per_s'] / s['sentences_per_s']:.1f}x the sentences/s"
                )
    return lines


def main(argv=None):
    args = build_parser().parse_args(argv)
    beam_widths = _int_list(args.beam_widths, "beam_widths")
    batch_sizes = _int_list(args.batch_sizes, "batch_sizes")
    if min(batch_sizes) < 1:
        raise SystemExit("error: --batch_sizes must be positive.")
    if args.num_sentences < 1:
        raise SystemExit("error: --num_sentences must be at least 1.")
    if args.model_dir and not args.source:
        raise SystemExit(
            "error: --model_dir needs --source, a file of sentences in the "
            "model's source vocabulary."
        )
    work_dir = tempfile.mkdtemp(prefix="bench_infer_")
    print(common.load_at_start(), flush=True)
    try:
        cap = args.max_decode_length
        if args.model_dir:
            model_dir = args.model_dir
            source = os.path.join(work_dir, "source.txt")
            with open(args.source, encoding="utf-8") as handle:
                lines = [line for _, line in zip(range(args.num_sentences), handle)]
            with open(source, "w", encoding="utf-8") as out:
                out.writelines(lines)
            print(f"model {model_dir}; {len(lines)} sentences from {args.source}")
        else:
            test = common.write_test_corpus(
                args, os.path.join(work_dir, "test"), args.num_sentences
            )
            source = test["sources"]
            print("test set: " + synthetic_data.describe(test))
            print(
                f"reference output length (target + SEQUENCE_END): "
                f"{test['mean_len'] + 1:.1f} tokens on average"
            )
            if args.train_steps > 0:
                model_dir = train_model(args, work_dir)
            else:
                model_dir = save_random_model(args, work_dir, source, test["vocab"])
            if cap is None:
                cap = int(round(2 * args.mean_len))
            print(
                f"NOTE: a model that has not learned the task rarely emits "
                f"SEQUENCE_END; output length is capped at {cap} tokens "
                f"(--max_decode_length), so every sentence costs up to {cap} "
                "decode steps.",
                flush=True,
            )
        jit_settings = {"off": (False,), "on": (True,), "both": (False, True)}
        results = measure(
            model_dir,
            args.checkpoint_path,
            source,
            beam_widths,
            batch_sizes,
            cap,
            jit_settings[args.jit_compile],
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    print()
    print(common.results_table(results, _COLUMNS))
    print()
    limits = sorted({r["limit"] for r in results})
    print(
        f"max decode length {', '.join(map(str, limits))}; 'ended': outputs "
        "that end with SEQUENCE_END before the cap; output tokens include "
        "SEQUENCE_END; warm-up batch excluded"
    )
    for line in ratios(results):
        print(line)
    print(
        f"peak RSS {common.peak_rss_mb():.0f} MB; {common.load_at_end()} "
        "(a shared machine makes figures noisy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
