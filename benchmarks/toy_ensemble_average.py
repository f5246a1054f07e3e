"""BLEU on the toy reverse task: one model, its averaged checkpoints, and an
ensemble of two runs.

Generates a small toy reverse data set (`bin/tools/generate_toy_data.py`:
`--vocab_size` tokens, sentences of 1 to `--max_len`), trains a small
attention model twice with different seeds (`bin/train.py`, keeping a
checkpoint every `--save_every` steps), averages the last `--num_last`
checkpoints of each run (`bin/tools/average_checkpoints.py`) and decodes
the test set (`bin/infer.py`) with each single run, each average, the
ensemble of the two runs and the ensemble of the two averages. Prints the
corpus BLEU (sacrebleu, no tokenisation) of each.

  python -m benchmarks.toy_ensemble_average --work_dir /tmp/toy_ens \\
    --train_steps 800

Everything is written under `--work_dir`; runs and data already there are
reused.
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(args[:4])} ...\n{result.stderr[-3000:]}")
    return result.stdout


def _model_params(data_dir, units, learning_rate):
    cell = (
        f"{{cell_class: GRUCell, cell_params: {{num_units: {units}}}, "
        "dropout_input_keep_prob: 1.0, dropout_output_keep_prob: 1.0, "
        "num_layers: 1}"
    )
    return (
        f"{{vocab_source: {data_dir}/train/vocab.sources.txt, "
        f"vocab_target: {data_dir}/train/vocab.targets.txt, "
        f"embedding.dim: {units}, attention.params: {{num_units: {units}}}, "
        f"encoder.params: {{rnn_cell: {cell}}}, "
        f"decoder.params: {{rnn_cell: {cell}}}, "
        f"optimizer.learning_rate: {learning_rate}, source.reverse: true}}"
    )


def _pipeline(path):
    return "{class: ParallelTextInputPipeline, params: {source_files: [" + path + "]}}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--train_steps", type=int, default=800)
    parser.add_argument("--save_every", type=int, default=80)
    parser.add_argument("--vocab_size", type=int, default=10)
    parser.add_argument("--max_len", type=int, default=6)
    parser.add_argument("--num_train", type=int, default=3000)
    parser.add_argument("--num_last", type=int, default=5)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=0.005)
    parser.add_argument("--beam_width", type=int, default=1)
    args = parser.parse_args()
    python = sys.executable
    data_dir = os.path.join(args.work_dir, "data")
    if not os.path.exists(os.path.join(data_dir, "test", "sources.txt")):
        for split, count, seed in (("train", args.num_train, 1), ("test", 500, 3)):
            _run(
                [
                    python,
                    "bin/tools/generate_toy_data.py",
                    "--type=reverse",
                    f"--vocab_size={args.vocab_size}",
                    f"--num_examples={count}",
                    "--min_len=1",
                    f"--max_len={args.max_len}",
                    f"--seed={seed}",
                    f"--output_dir={data_dir}/{split}",
                ]
            )
        for side in ("sources", "targets"):
            vocab = _run(
                [python, "bin/tools/generate_vocab.py", f"{data_dir}/train/{side}.txt"]
            )
            with open(f"{data_dir}/train/vocab.{side}.txt", "w") as handle:
                handle.write(vocab)
    train_pipeline = (
        "{class: ParallelTextInputPipeline, params: {source_files: ["
        f"{data_dir}/train/sources.txt], target_files: [{data_dir}/train/targets.txt]}}}}"
    )
    runs = []
    for seed in args.seeds.split(","):
        run = os.path.join(args.work_dir, f"run{seed}")
        if not os.path.exists(os.path.join(run, f"ckpt-{args.train_steps}.index")):
            _run(
                [
                    python,
                    "-m",
                    "bin.train",
                    "--model",
                    "AttentionSeq2Seq",
                    "--model_params",
                    _model_params(data_dir, args.units, args.learning_rate),
                    "--input_pipeline_train",
                    train_pipeline,
                    "--batch_size",
                    "32",
                    "--train_steps",
                    str(args.train_steps),
                    "--save_checkpoints_steps",
                    str(args.save_every),
                    "--keep_checkpoint_max",
                    str(max(args.num_last, 5)),
                    "--tf_random_seed",
                    seed,
                    "--output_dir",
                    run,
                ]
            )
        average = run + f"_avg{args.num_last}"
        if not os.path.exists(average):
            _run(
                [
                    python,
                    "-m",
                    "bin.tools.average_checkpoints",
                    "--model_dir",
                    run,
                    "--num_last",
                    str(args.num_last),
                    "--output_dir",
                    average,
                ]
            )
        runs.append((run, average))

    from seq2seq.metrics.bleu import corpus_bleu

    with open(os.path.join(data_dir, "test", "targets.txt"), encoding="utf-8") as f:
        references = f.read().splitlines()
    systems = []
    for run, average in runs:
        name = os.path.basename(run)
        systems.append((f"{name} (last checkpoint)", run))
        systems.append((f"{name} average of last {args.num_last}", average))
    systems.append(("ensemble of the runs", ",".join(r for r, _ in runs)))
    systems.append(("ensemble of the averages", ",".join(a for _, a in runs)))
    print(
        f"toy reverse, {args.train_steps} steps, {args.units} units, "
        f"beam width {args.beam_width}, vocabulary {args.vocab_size}, up to "
        f"{args.max_len} tokens, test set of {len(references)} sentences"
    )
    for label, model_dir in systems:
        output = _run(
            [
                python,
                "-m",
                "bin.infer",
                "--tasks",
                "- class: DecodeText",
                "--model_dir",
                model_dir,
                "--model_params",
                f"inference.beam_search.beam_width: {args.beam_width}",
                "--input_pipeline",
                _pipeline(os.path.join(data_dir, "test", "sources.txt")),
                "--batch_size",
                "64",
                "--noprogress",
            ]
        )
        bleu = corpus_bleu(output.splitlines(), references, tokenize="none")
        print(f"{label:<40} BLEU {bleu:6.2f}")


if __name__ == "__main__":
    main()
