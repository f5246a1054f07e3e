#!/usr/bin/env python3
"""Ours against OpenNMT-tf on a real corpus, for a fixed wall-clock budget.

    python benchmarks/real_corpus_compare.py [--budget_s 600 --seeds 3]

The corpus is the English->French software-catalog corpus of
`real_corpus.py` (built once into `--data_dir`, by default under
`~/.cache/seq2seq-benchmarks`). For each seed, each system trains in a
fresh process for `--budget_s` seconds of training time (model building and
checkpoint writing not counted), writing a checkpoint at `--num_marks`
evenly spaced times; then every checkpoint decodes the test set with greedy
search, and the last one also with beam search (`--beam_width`, 5), each
final decoder in its own timed process, and once more with each toolkit's
own command line, as a user translates a file (`bin/infer.py`;
`onmt-main ... infer` with the same model file and settings), timed as a
whole process and its output checked against the first. Outputs are
scored with sacrebleu on the tokenized text (`tokenize="none"`) and,
detokenized, against the raw references with the standard `13a`
tokenizer.

- Ours: `example_configs/nmt_small.yml` with `train_seq2seq.yml`'s buckets,
  the learning rate `--learning_rate` (1e-3), batch `--batch_size` (32),
  trained by this project's `Trainer` and input pipeline as `bin/train.py`
  sets them up (`compare_opennmt.py --child train_budget`);
  `--ours_variant NAME` merges one of `AB_VARIANTS` into its parameters
  (e.g. `init_scale_0_attentional`: Keras initialisers and Luong's input
  feeding).
- OpenNMT-tf 2.32: `opennmt_model.NMTSmallDefaults` (the same architecture
  with OpenNMT-tf's own defaults: Keras initialisers, Luong attention with
  input feeding, dropout 0.2 on embeddings and layer outputs) trained with
  length buckets of width 2 and its own training loss (the summed token
  losses over the sentences; `--onmt_loss tokens` for the per-token loss of
  earlier sessions), same optimizer settings (Adam, the learning
  rate, global norm clipping at 5) and batch size; `--onmt_variant ours`
  trains `NMTSmall` (our settings copied) without buckets instead.

It prints per system the medians over seeds of: steps, target tokens/s,
CPU-s per step, peak RSS, the resident memory after the last step split
into allocated and mapped files, training loss at the end, dev loss per target
token, BLEU (greedy and beam), decode time of the whole process and of the
decoding loop; then the ratios ours / OpenNMT-tf, and draws BLEU (greedy)
against training time into `--plot` (PNG).

`--decode_only --work_dir DIR` decodes again (greedy and beam, each in its
own process, the systems alternating) with the final checkpoints of an
earlier run kept in DIR, and prints the decoding figures alone: how a
change to decoding compares on the same trained models.

`--combine A.json,B.json` prints the same summary, the medians over every
seed of several earlier runs' `--json` results (e.g. seeds 0-1 in one run
and seed 2 in another), and draws their plot; it trains nothing.

`--ab_steps N` runs the loss-per-step comparison instead: ours trained for
N steps with each of several model variants (`--ab_variants`), OpenNMT-tf
for N steps, the training loss averaged over the last `--ab_window` steps
(the comparison does not depend on the machine's speed).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, compare_opennmt, real_corpus  # noqa: E402
from benchmarks.common import BenchmarkError  # noqa: E402
from seq2seq.configurable import deep_merge  # noqa: E402
from seq2seq.inference import length_sorting  # noqa: E402

TRAIN_CONFIG = os.path.join(_REPO_ROOT, "example_configs", "train_seq2seq.yml")
SYSTEMS = ("ours", "opennmt")
LABELS = compare_opennmt.LABELS

# Model-parameter variants of ours for `--ab_steps` (merged into nmt_small).
AB_VARIANTS = {
    "default": {},
    "init_scale_0": {
        "encoder.params": {"init_scale": 0.0},
        "decoder.params": {"init_scale": 0.0},
    },
    "no_dropout": {
        "encoder.params": {"rnn_cell": {"dropout_input_keep_prob": 1.0}},
        "decoder.params": {"rnn_cell": {"dropout_input_keep_prob": 1.0}},
    },
    # GRU gate biases starting at 0 (Keras's default) instead of TF1's 1.0.
    "gru_bias_0": {
        "encoder.params": {"rnn_cell": {"cell_params": {"bias_initializer": "zeros"}}},
        "decoder.params": {"rnn_cell": {"cell_params": {"bias_initializer": "zeros"}}},
    },
    "no_input_feeding": {"decoder.params": {"input_feeding": False}},
}
# Keras initialisers, and each of OpenNMT-tf's other modelling choices on top.
_INIT_SCALE_0 = AB_VARIANTS["init_scale_0"]
# Luong's input feeding: the attentional vector is fed back, not the
# attention context (OpenNMT-tf's decoder).
_ATTENTIONAL = {"decoder.params": {"input_feeding_vector": "attentional"}}
# No biases in the attention's key and query projections (Luong's bilinear
# score, OpenNMT-tf's).
_NO_ATT_BIAS = {"attention.params": {"use_bias": False}}
# Without the original's extra clip of embedding gradients to norm 0.1.
_NO_EMBED_CLIP = {"optimizer.clip_embed_gradients": 0.0}
# Dropout on the cells' outputs as well as their inputs (OpenNMT-tf drops
# out each layer's output).
_OUTPUT_DROPOUT = {
    side: {"rnn_cell": {"dropout_output_keep_prob": 0.8}}
    for side in ("encoder.params", "decoder.params")
}
# OpenNMT-tf's dropout placement on top of the cell inputs': 0.2 of each
# cell's outputs (encoder memory, decoder query) and of the attentional
# vector before the logits.
_ATTENTIONAL_DROPOUT = {"decoder.params": {"attentional_keep_prob": 0.8}}
# OpenNMT-tf's training loss is summed over each sentence's tokens and
# averaged over sentences, about 8.8 times ours (the mean over tokens) here;
# Adam does not see the scale, but its epsilon and the gradient clip do.
# These are its epsilon (8e-7) and clip norm (5) brought to our scale.
_OPENNMT_EPSILON = {"optimizer.params": {"epsilon": 8e-7 / 8.8}}
_OPENNMT_LOSS_SCALE = deep_merge(
    _OPENNMT_EPSILON, {"optimizer.clip_gradients": 5.0 / 8.8}
)
# OpenNMT-tf's training loss itself.
_SENTENCE_LOSS = {"loss.normalize_by": "sentences"}
# Session 12's best: Keras initialisers, Luong feeding, unbiased attention.
_LUONG = deep_merge(_INIT_SCALE_0, _ATTENTIONAL, _NO_ATT_BIAS)
# Luong's general score h^T W k: the query is not projected (OpenNMT-tf's
# LuongAttention).
_UNPROJECTED_QUERY = {"attention.params": {"project_query": False}}
# Keras's GRU as OpenNMT-tf builds it: the reset gate applied after the
# recurrent matmul, zero gate biases.
_RESET_AFTER = {
    side: {"rnn_cell": {"cell_params": {"reset_after": True}}}
    for side in ("encoder.params", "decoder.params")
}
# Session 13's best: the sentence loss and OpenNMT-tf's dropout placement.
_SESSION13 = deep_merge(_LUONG, _SENTENCE_LOSS, _OUTPUT_DROPOUT, _ATTENTIONAL_DROPOUT)
AB_VARIANTS.update(
    {
        "init_scale_0_attentional": deep_merge(_INIT_SCALE_0, _ATTENTIONAL),
        "init_scale_0_attentional_no_att_bias": _LUONG,
        "luong": deep_merge(_LUONG, _NO_EMBED_CLIP),
        "init_scale_0_no_embed_clip": deep_merge(_INIT_SCALE_0, _NO_EMBED_CLIP),
        "init_scale_0_output_dropout": deep_merge(_INIT_SCALE_0, _OUTPUT_DROPOUT),
        "luong_attentional_dropout": deep_merge(_LUONG, _ATTENTIONAL_DROPOUT),
        "luong_opennmt_dropout": deep_merge(
            _LUONG, _OUTPUT_DROPOUT, _ATTENTIONAL_DROPOUT
        ),
        "luong_opennmt_loss_scale": deep_merge(_LUONG, _OPENNMT_LOSS_SCALE),
        "luong_sentence_loss": deep_merge(_LUONG, _SENTENCE_LOSS),
        "luong_sentence_loss_opennmt_dropout": _SESSION13,
        "session13_unprojected_query": deep_merge(_SESSION13, _UNPROJECTED_QUERY),
        "session13_reset_after": deep_merge(_SESSION13, _RESET_AFTER),
        "session13_no_embed_clip": deep_merge(_SESSION13, _NO_EMBED_CLIP),
        "session14_no_embed_clip": deep_merge(
            _SESSION13, _UNPROJECTED_QUERY, _NO_EMBED_CLIP
        ),
        "luong_opennmt_epsilon": deep_merge(_LUONG, _OPENNMT_EPSILON),
    }
)


def default_data_dir():
    return os.path.join(real_corpus.default_cache_dir(), "en-fr")


def train_buckets():
    """The `buckets` of `example_configs/train_seq2seq.yml`, as a list."""
    import yaml

    with open(TRAIN_CONFIG, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    buckets = config.get("buckets")
    if isinstance(buckets, str):
        return [int(b) for b in buckets.split(",") if b.strip()]
    return list(buckets) if buckets else None


def parse_buckets(text):
    """`--ours_buckets`: `auto` or comma-separated lengths."""
    from seq2seq.data import batching
    from seq2seq.errors import ConfigError

    try:
        return batching.parse_buckets(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def prepare(args, work_dir):
    """Builds (once) the corpus; writes OpenNMT-tf's vocabularies; returns
    the paths and the manifest."""
    manifest = real_corpus.ensure_corpus(args.data_dir)
    paths = real_corpus.corpus_paths(args.data_dir)
    for path in paths.values():
        if not os.path.isfile(path):
            raise BenchmarkError(
                f"{path} is missing from --data_dir {args.data_dir}; remove its "
                "manifest.json to rebuild the corpus."
            )
    for side in ("source", "target"):
        words = compare_opennmt._read_vocab(paths[f"vocab_{side}"])
        words = [w for w in words if w not in compare_opennmt.ONMT_SPECIALS]
        paths[f"onmt_vocab_{side}"] = os.path.join(work_dir, f"onmt_vocab.{side}")
        compare_opennmt._write_lines(
            paths[f"onmt_vocab_{side}"], list(compare_opennmt.ONMT_SPECIALS) + words
        )
    return paths, manifest


def onmt_loss(args):
    """OpenNMT-tf's training loss: `--onmt_loss`, else its own default for
    its defaults and ours (per token) for the model that copies ours."""
    if args.onmt_loss:
        return args.onmt_loss
    return "sentences" if args.onmt_variant == "defaults" else "tokens"


def train_spec(args, system, paths, seed, model_dir, tag):
    settings = compare_opennmt.nmt_small_settings()
    spec = {
        "round": tag,
        "seed": seed,
        "model_dir": model_dir,
        "source": paths["train_source"],
        "target": paths["train_target"],
        "dev_source": paths["dev_source"],
        "dev_target": paths["dev_target"],
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
    }
    if system == "ours":
        spec.update(
            vocab_source=paths["vocab_source"],
            vocab_target=paths["vocab_target"],
            buckets=args.ours_buckets or train_buckets(),
            pad_to_bucket=args.ours_pad_to_bucket,
            mixed_precision=args.ours_mixed_precision,
        )
    else:
        spec.update(
            vocab_source=paths["onmt_vocab_source"],
            vocab_target=paths["onmt_vocab_target"],
            variant=args.onmt_variant,
            adam_epsilon=settings["adam_epsilon"],
            clip_gradients=settings["clip_gradients"],
            input_dropout=settings["input_dropout"],
            shuffle_buffer_size=args.shuffle_buffer_size,
            max_decode_length=args.max_decode_length,
            average_loss_in_time=onmt_loss(args) == "tokens",
        )
        if args.onmt_variant == "defaults":
            spec["length_bucket_width"] = 2
    os.makedirs(model_dir, exist_ok=True)
    return spec


def infer_spec(args, system, paths, train, seed, tag, checkpoints, outputs, beams):
    spec = {
        "round": tag,
        "seed": seed,
        "model_dir": train["model_dir"],
        "source": paths["test_source"],
        "batch_size": args.batch_size,
        "beam_widths": beams,
        "max_decode_length": args.max_decode_length,
        "checkpoints": checkpoints,
        "predictions": outputs,
    }
    if system == "opennmt":
        spec.update(
            vocab_source=paths["onmt_vocab_source"],
            vocab_target=paths["onmt_vocab_target"],
            variant=args.onmt_variant,
            length_bucket_width=args.onmt_length_bucket_width,
        )
    else:
        spec["sort_window"] = args.sort_window
        if args.ours_max_decode_length_ratio:
            spec["model_params"] = {
                "inference.max_decode_length_ratio": args.ours_max_decode_length_ratio
            }
    return spec


# ---------------------------------------------------------------- BLEU


def bleu_scores(hypothesis_path, paths, lowercase):
    """`(BLEU on tokens, BLEU 13a on detokenized text)` of a file of
    tokenized outputs against the test references."""
    import sacrebleu

    with open(hypothesis_path, encoding="utf-8") as handle:
        hyps = [line.rstrip("\n") for line in handle]
    with open(paths["test_target"], encoding="utf-8") as handle:
        refs = [line.rstrip("\n") for line in handle]
    with open(paths["test_raw_target"], encoding="utf-8") as handle:
        raw_refs = [line.rstrip("\n") for line in handle]
    if len(hyps) != len(refs):
        raise BenchmarkError(
            f"{hypothesis_path} has {len(hyps)} lines for {len(refs)} references."
        )
    tokens = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", force=True).score
    detok = [real_corpus.detokenize(h.split()) for h in hyps]
    standard = sacrebleu.corpus_bleu(
        detok, [raw_refs], tokenize="13a", lowercase=lowercase
    ).score
    return tokens, standard


# ------------------------------------------------------------ one seed


def decode_final(
    args, paths, lowercase, seed, work_dir, opennmt_python, system, train, name=None
):
    """Decodes the test set with a run's final checkpoint, greedy and with
    `--beam_width`, each in its own process (for its whole-process time);
    returns `{beam: decoder result with BLEU}`. Files are named after `name`
    (default `s{seed}`)."""
    final = train["marks"][-1]
    decoders = {}
    for beam in (1, args.beam_width):
        tag = f"{name or f's{seed}'}_beam{beam}"
        out = os.path.join(work_dir, f"{system}_{tag}_final")
        spec = infer_spec(
            args, system, paths, train, seed, tag, [final["checkpoint"]], [out], [beam]
        )
        print(f"  seed {seed}: decoding with {LABELS[system]}, beam {beam}")
        infer = compare_opennmt.run_child(
            system, "infer", spec, work_dir, opennmt_python
        )
        decoder = dict(infer["decoders"][0])
        decoder.update(
            process_wall_s=infer["process_wall_s"], peak_rss_mb=infer["peak_rss_mb"]
        )
        print(f"  seed {seed}: the same with {COMMAND_LINES[system]}")
        cli_out = f"{out}.cli.beam{beam}"
        decoder["cli_process_wall_s"] = command_line_decode(
            args,
            paths,
            system,
            train,
            final["checkpoint"],
            beam,
            cli_out,
            work_dir,
            opennmt_python,
        )
        decoder["cli_same_output"] = same_lines(f"{out}.beam{beam}", cli_out)
        if not decoder["cli_same_output"]:
            print(f"  warning: {cli_out} differs from {out}.beam{beam}")
        decoder["bleu"], decoder["bleu_13a"] = bleu_scores(
            f"{out}.beam{beam}", paths, lowercase
        )
        decoders[beam] = decoder
    return decoders


COMMAND_LINES = {"ours": "bin/infer.py", "opennmt": "onmt-main infer"}


def command_line_decode(
    args, paths, system, train, checkpoint, beam, output, work_dir, opennmt_python
):
    """Decodes the test set with the toolkit's own command line, as a user
    translates a file (`bin/infer.py`; OpenNMT-tf's `onmt-main ... infer`
    with the same model definition file), with the same checkpoint, batch
    size, beam width and length limit as the benchmark's decoding child;
    returns the wall-clock seconds of that whole process."""
    if system == "ours":
        model_params = {
            "inference.beam_search.beam_width": beam,
            "inference.max_decode_length": args.max_decode_length,
        }
        if args.ours_max_decode_length_ratio:
            ratio = args.ours_max_decode_length_ratio
            model_params["inference.max_decode_length_ratio"] = ratio
        command, env = common.infer_command(
            train["model_dir"],
            paths["test_source"],
            output,
            model_params,
            args.batch_size,
            checkpoint=checkpoint,
            window=args.sort_window,
        )
    else:
        model_file, config = opennmt_cli_files(args, paths, beam, work_dir)
        command = [
            opennmt_python,
            "-m",
            "opennmt.bin.main",
            "--model=" + model_file,
            "--config",
            config,
            "--checkpoint_path",
            checkpoint,
            "infer",
            "--features_file",
            paths["test_source"],
            "--predictions_file",
            output,
        ]
        env = compare_opennmt.opennmt_env()
    log_path = output + ".log"
    with open(log_path, "w", encoding="utf-8") as log:
        clock = common.Stopwatch()
        code = subprocess.call(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=_REPO_ROOT
        )
        seconds = clock.seconds()
    if code != 0:
        raise BenchmarkError(
            f"{COMMAND_LINES[system]} exited with {code}; see {log_path}."
        )
    return seconds


def opennmt_cli_files(args, paths, beam, work_dir):
    """The model definition file and the configuration that make `onmt-main`
    decode as `opennmt_runner.py infer` does; returns their paths."""
    model_file = os.path.join(work_dir, f"onmt_cli_model_{args.onmt_variant}.py")
    model_class = {"defaults": "NMTSmallDefaults", "ours": "NMTSmall"}[
        args.onmt_variant
    ]
    with open(model_file, "w", encoding="utf-8") as out:
        out.write(
            "import sys\n"
            f"sys.path.insert(0, {_HERE!r})\n"
            "import opennmt_model\n\n\n"
            "def model():\n"
            f"    return opennmt_model.{model_class}()\n"
        )
    infer = {"batch_size": args.batch_size}
    if args.onmt_length_bucket_width:
        infer["length_bucket_width"] = args.onmt_length_bucket_width
    config = {
        "model_dir": os.path.join(work_dir, "onmt_cli_model_dir"),
        "data": {
            "source_vocabulary": paths["onmt_vocab_source"],
            "target_vocabulary": paths["onmt_vocab_target"],
            "source_sequence_controls": {"start": False, "end": True},
        },
        "params": {
            "beam_width": beam,
            "maximum_decoding_length": args.max_decode_length,
            "length_penalty": 0.0,
        },
        "infer": infer,
    }
    config_path = os.path.join(work_dir, f"onmt_cli_beam{beam}.json")
    with open(config_path, "w", encoding="utf-8") as out:
        json.dump(config, out, indent=2)
    return model_file, config_path


def same_lines(path_a, path_b):
    """Whether two text files hold the same lines (trailing spaces aside)."""
    with open(path_a, encoding="utf-8") as a, open(path_b, encoding="utf-8") as b:
        return [line.rstrip() for line in a] == [line.rstrip() for line in b]


def decode_only(args, paths, lowercase, work_dir, opennmt_python):
    """`--decode_only`: decodes again with the final checkpoints of an
    earlier run in `--work_dir` (the systems alternating, as in a full run);
    prints and returns the decoding figures."""
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        order = SYSTEMS if seed % 2 == 0 else SYSTEMS[::-1]
        run_ = {}
        for system in order:
            path = os.path.join(work_dir, f"{system}_train_budget_s{seed}.result.json")
            if not os.path.isfile(path):
                raise BenchmarkError(
                    f"--decode_only: {path} does not exist; give the --work_dir "
                    "of a finished run (and its --seed and --seeds)."
                )
            with open(path, encoding="utf-8") as handle:
                train = json.load(handle)
            train["model_dir"] = os.path.join(work_dir, f"{system}_model_s{seed}")
            run_[system] = decode_final(
                args, paths, lowercase, seed, work_dir, opennmt_python, system, train
            )
        runs.append(run_)
    rows = [["", "ours", "OpenNMT-tf", "ours / OpenNMT-tf"]]
    for beam in (1, args.beam_width):
        name = "greedy" if beam == 1 else f"beam {beam}"
        for title, key, fmt in (
            ("BLEU (tokens)", "bleu", "{:.2f}"),
            ("loop (s)", "seconds", "{:.2f}"),
            ("command line (s)", "cli_process_wall_s", "{:.1f}"),
            ("process (s)", "process_wall_s", "{:.1f}"),
            ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
        ):
            ours, theirs = (
                common.median([r[system][beam][key] for r in runs])
                for system in ("ours", "opennmt")
            )
            ratio = f"{ours / theirs:.2f}x" if theirs else "-"
            rows.append(
                [f"{name}: {title}", fmt.format(ours), fmt.format(theirs), ratio]
            )
    print(common.format_table(rows))
    return {"decode_only": runs}


def run_seed(args, paths, lowercase, seed, work_dir, opennmt_python):
    """Trains and decodes both systems once; returns `{system: result}`."""
    marks = [args.budget_s * k / args.num_marks for k in range(1, args.num_marks)]
    order = SYSTEMS if seed % 2 == 0 else SYSTEMS[::-1]
    results = {}
    for system in order:
        tag = f"s{seed}"
        model_dir = os.path.join(work_dir, f"{system}_model_{tag}")
        spec = train_spec(args, system, paths, seed, model_dir, tag)
        spec.update(budget_s=args.budget_s, checkpoint_times=marks)
        if system == "ours" and args.ours_variant != "default":
            spec["overrides"] = AB_VARIANTS[args.ours_variant]
        print(f"  seed {seed}: training {LABELS[system]} for {args.budget_s}s")
        train = compare_opennmt.run_child(
            system, "train_budget", spec, work_dir, opennmt_python
        )
        train["model_dir"] = model_dir
        results[system] = {"seed": seed, "train": train, "decoders": {}, "curve": []}
    for system in order:
        train = results[system]["train"]
        final = train["marks"][-1]
        results[system]["decoders"] = decode_final(
            args, paths, lowercase, seed, work_dir, opennmt_python, system, train
        )
        earlier = train["marks"][:-1]
        outs = [
            os.path.join(work_dir, f"{system}_s{seed}_mark{m['index']}")
            for m in earlier
        ]
        if earlier:
            spec = infer_spec(
                args,
                system,
                paths,
                train,
                seed,
                f"s{seed}_marks",
                [m["checkpoint"] for m in earlier],
                outs,
                [1],
            )
            print(f"  seed {seed}: decoding {len(earlier)} earlier checkpoints")
            compare_opennmt.run_child(system, "infer", spec, work_dir, opennmt_python)
        for mark, out in zip(earlier, outs):
            bleu, _ = bleu_scores(f"{out}.beam1", paths, lowercase)
            results[system]["curve"].append((mark["seconds"], mark["step"], bleu))
        results[system]["curve"].append(
            (final["seconds"], final["step"], results[system]["decoders"][1]["bleu"])
        )
    return results


# ------------------------------------------------------------ summary


def report(all_runs, beam_width, plot, budget_s):
    """Prints the medians over `all_runs` (one `{system: result}` per seed)
    and each seed's BLEU curve, draws the plot; returns the JSON results."""
    summaries = {
        system: summarize([r[system] for r in all_runs], beam_width)
        for system in SYSTEMS
    }
    print()
    print(summary_table(summaries, beam_width))
    print()
    for system in SYSTEMS:
        for index, run_ in enumerate(all_runs):
            curve = ", ".join(
                f"{s:.0f}s/{n} steps: {b:.2f}" for s, n, b in run_[system]["curve"]
            )
            # Results from before the seed was recorded: their position.
            seed = run_[system].get("seed", f"#{index}")
            print(f"{LABELS[system]} seed {seed} BLEU greedy: {curve}")
    plot_curves(all_runs, plot, budget_s)
    print(f"plot: {plot}")
    return {"runs": all_runs, "summaries": summaries}


def load_runs(path, beam_width):
    """The per-seed results of one earlier run's `--json` file, with the
    decoders keyed by beam width again (JSON made the keys strings)."""
    try:
        with open(path, encoding="utf-8") as handle:
            runs = json.load(handle).get("runs")
    except (OSError, ValueError, AttributeError) as err:
        raise BenchmarkError(
            f"--combine: cannot read {path} ({err}); give the --json files of "
            "earlier runs."
        ) from None
    no_full_run = BenchmarkError(
        f"--combine: {path} holds no full run (an --ab_steps or "
        "--decode_only result?); give the --json files of runs that trained "
        "both systems."
    )
    if not isinstance(runs, list) or not runs:
        raise no_full_run
    for run_ in runs:
        for system in SYSTEMS:
            try:
                decoders = {int(b): d for b, d in run_[system]["decoders"].items()}
                complete = bool(run_[system]["curve"]) and "steps" in (
                    run_[system]["train"]
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                complete = False
            if not complete:
                raise no_full_run
            if set(decoders) != {1, beam_width}:
                raise BenchmarkError(
                    f"--combine: {path} was decoded with beams "
                    f"{sorted(decoders)}, not 1 and {beam_width}; pass its "
                    "--beam_width."
                )
            run_[system]["decoders"] = decoders
    return runs


def combine(args):
    """`--combine`: the summary of several earlier runs taken together;
    returns the JSON results."""
    paths = [p for p in args.combine.split(",") if p]
    all_runs = [run_ for path in paths for run_ in load_runs(path, args.beam_width)]
    budgets = sorted(
        run_[system]["curve"][-1][0] for run_ in all_runs for system in SYSTEMS
    )
    # A run stops at the first step past its budget, a second or so late.
    if budgets[-1] > 1.05 * budgets[0]:
        raise BenchmarkError(
            f"--combine: the runs trained for {budgets[0]:.0f} to "
            f"{budgets[-1]:.0f} s; combine runs of the same --budget_s."
        )
    print(f"{len(all_runs)} seed(s) from {len(paths)} run(s): {', '.join(paths)}")
    plot = args.plot or os.path.join(
        os.path.dirname(os.path.abspath(paths[0])), "bleu_vs_time_combined.png"
    )
    return report(all_runs, args.beam_width, plot, budgets[-1])


def summarize(runs, beam_width):
    """Medians over seeds of one system's figures."""
    med = common.median

    def decoder(beam, key):
        return med([r["decoders"][beam][key] for r in runs])

    trains = [r["train"] for r in runs]
    summary = {
        "steps": med([t["steps"] for t in trains]),
        "train_s": med([t["seconds"] for t in trains]),
        "tgt_tok_s": med([t["target_tokens"] / t["seconds"] for t in trains]),
        "cpu_s_step": med([t["cpu_seconds"] / t["steps"] for t in trains]),
        "peak_rss_mb": med([t["peak_rss_mb"] for t in trains]),
        # Older results and other systems than Linux have no split.
        "rss_anon_mb": med(
            [t["rss_end_mb"]["anon"] for t in trains if t.get("rss_end_mb")]
        ),
        "rss_file_mb": med(
            [t["rss_end_mb"]["file"] for t in trains if t.get("rss_end_mb")]
        ),
        "train_loss": med([t["marks"][-1]["train_loss"] for t in trains]),
        "dev_loss": med([t["dev_loss"] for t in trains]),
        "build_s": med([t["build_s"] for t in trains]),
        "first_step_s": med([t["first_step_s"] for t in trains]),
    }
    for beam, name in ((1, "greedy"), (beam_width, f"beam{beam_width}")):
        summary[f"bleu_{name}"] = decoder(beam, "bleu")
        summary[f"bleu13a_{name}"] = decoder(beam, "bleu_13a")
        summary[f"decode_process_s_{name}"] = decoder(beam, "process_wall_s")
        # Results from before the command-line timing have none.
        summary[f"decode_cli_s_{name}"] = med(
            [
                r["decoders"][beam]["cli_process_wall_s"]
                for r in runs
                if "cli_process_wall_s" in r["decoders"][beam]
            ]
        )
        summary[f"decode_loop_s_{name}"] = decoder(beam, "seconds")
        summary[f"decode_rss_mb_{name}"] = decoder(beam, "peak_rss_mb")
    return summary


ROWS = (
    ("training steps", "steps", "{:.0f}"),
    ("target tokens/s", "tgt_tok_s", "{:.0f}"),
    ("CPU-s per step", "cpu_s_step", "{:.3f}"),
    ("peak RSS, training (MB)", "peak_rss_mb", "{:.0f}"),
    ("RSS at the end: allocated (MB)", "rss_anon_mb", "{:.0f}"),
    ("RSS at the end: mapped files (MB)", "rss_file_mb", "{:.0f}"),
    ("train loss, last interval", "train_loss", "{:.3f}"),
    ("dev loss per target token", "dev_loss", "{:.3f}"),
    ("BLEU greedy (tokens)", "bleu_greedy", "{:.2f}"),
    ("BLEU beam (tokens)", "bleu_beam", "{:.2f}"),
    ("BLEU greedy (13a, detok.)", "bleu13a_greedy", "{:.2f}"),
    ("BLEU beam (13a, detok.)", "bleu13a_beam", "{:.2f}"),
    ("decode greedy, command line (s)", "decode_cli_s_greedy", "{:.1f}"),
    ("decode greedy, process (s)", "decode_process_s_greedy", "{:.1f}"),
    ("decode greedy, loop (s)", "decode_loop_s_greedy", "{:.2f}"),
    ("decode beam, command line (s)", "decode_cli_s_beam", "{:.1f}"),
    ("decode beam, process (s)", "decode_process_s_beam", "{:.1f}"),
    ("decode beam, loop (s)", "decode_loop_s_beam", "{:.2f}"),
    ("model+pipeline build (s)", "build_s", "{:.1f}"),
    ("first step, tracing (s)", "first_step_s", "{:.1f}"),
)


def summary_table(summaries, beam_width):
    rows = [["", "ours", "OpenNMT-tf", "ours / OpenNMT-tf"]]
    for title, key, fmt in ROWS:
        key = key.replace("_beam", f"_beam{beam_width}")
        title = title.replace("beam", f"beam {beam_width}")
        ours, theirs = summaries["ours"][key], summaries["opennmt"][key]
        known = theirs and not (math.isnan(ours) or math.isnan(theirs))
        ratio = f"{ours / theirs:.2f}x" if known else "-"
        cells = ["-" if math.isnan(v) else fmt.format(v) for v in (ours, theirs)]
        rows.append([title, *cells, ratio])
    return common.format_table(rows)


def plot_curves(all_runs, path, budget_s):
    """BLEU (greedy, tokens) against training time, every seed a thin line,
    the median over seeds a thick one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    colors = {"ours": "tab:blue", "opennmt": "tab:orange"}
    for system in SYSTEMS:
        curves = [run[system]["curve"] for run in all_runs]
        for curve in curves:
            axes.plot(
                [c[0] for c in curve],
                [c[2] for c in curve],
                color=colors[system],
                alpha=0.35,
                linewidth=1,
            )
        points = min(len(c) for c in curves)
        axes.plot(
            [common.median([c[i][0] for c in curves]) for i in range(points)],
            [common.median([c[i][2] for c in curves]) for i in range(points)],
            color=colors[system],
            marker="o",
            linewidth=2,
            label=LABELS[system],
        )
    axes.set_xlabel("training time (s, wall clock)")
    axes.set_ylabel("test BLEU, greedy (tokenized)")
    axes.set_xlim(0, budget_s * 1.02)
    axes.set_ylim(bottom=0)
    axes.set_title("nmt_small on the en-fr software-catalog corpus")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ------------------------------------------------------------------ A/B


def run_ab(args, paths, lowercase, work_dir, opennmt_python):
    """Loss per step: ours with each variant, OpenNMT-tf, same steps; with
    `--ab_bleu` also the test BLEU of each final model (greedy and beam)."""
    window = min(args.ab_window, args.ab_steps)
    rows = [
        ["system", "variant", "steps", f"train loss, last {window} steps", "dev loss"]
    ]
    if args.ab_bleu:
        rows[0] += ["BLEU greedy", f"BLEU beam {args.beam_width}"]
    results = {}
    wanted = [v for v in args.ab_variants.split(",") if v]
    for name in wanted:
        if name not in AB_VARIANTS and name != "opennmt":
            raise BenchmarkError(
                f"--ab_variants: unknown variant {name!r}; choose from "
                f"{', '.join(AB_VARIANTS)}, opennmt."
            )
    jobs = [
        ("opennmt", args.onmt_variant) if n == "opennmt" else ("ours", n)
        for n in wanted
    ]
    for system, name in jobs:
        tag = f"ab_{name}"
        model_dir = os.path.join(work_dir, f"{system}_{tag}")
        spec = train_spec(args, system, paths, args.seed, model_dir, tag)
        spec.update(max_steps=args.ab_steps, save_final=args.ab_bleu)
        if system == "ours":
            spec["overrides"] = AB_VARIANTS[name]
        train = compare_opennmt.run_child(
            system, "train_budget", spec, work_dir, opennmt_python
        )
        train["model_dir"] = model_dir
        losses = train["losses"]
        mean = sum(losses[-window:]) / window
        results[f"{system}:{name}"] = {
            "mean_loss": mean,
            "dev_loss": train.get("dev_loss"),
            "losses": losses,
        }
        row = [LABELS[system], name, str(train["steps"]), f"{mean:.3f}"]
        row.append(f"{train.get('dev_loss', float('nan')):.3f}")
        if args.ab_bleu:
            decoders = decode_final(
                args,
                paths,
                lowercase,
                args.seed,
                work_dir,
                opennmt_python,
                system,
                train,
                name=tag,
            )
            results[f"{system}:{name}"]["bleu"] = {
                beam: decoder["bleu"] for beam, decoder in decoders.items()
            }
            row += [f"{decoders[beam]['bleu']:.2f}" for beam in sorted(decoders)]
        print("  " + " | ".join(row), flush=True)
        rows.append(row)
    print(common.format_table(rows))
    return results


# ------------------------------------------------------------------ main


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=default_data_dir())
    parser.add_argument("--budget_s", type=float, default=600.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="The first seed.")
    parser.add_argument(
        "--num_marks", type=int, default=4, help="Checkpoints per run, for the plot."
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--beam_width", type=int, default=5)
    parser.add_argument("--max_decode_length", type=int, default=100)
    parser.add_argument(
        "--sort_window",
        type=int,
        default=length_sorting.DEFAULT_WINDOW,
        help="Ours: bin/infer.py's --sort_window (1: batches in input order).",
    )
    parser.add_argument(
        "--onmt_length_bucket_width",
        type=int,
        help="OpenNMT-tf decoding: its infer length_bucket_width (default none, "
        "its default; its auto_config sets 5).",
    )
    parser.add_argument("--shuffle_buffer_size", type=int, default=500000)
    parser.add_argument(
        "--onmt_variant",
        choices=("defaults", "ours"),
        default="defaults",
        help="OpenNMT-tf model: its own defaults, or our settings copied.",
    )
    parser.add_argument(
        "--onmt_loss",
        choices=("tokens", "sentences"),
        help="OpenNMT-tf's training loss: the summed token losses over its "
        "sentences (its default; the default for --onmt_variant defaults), or "
        "over its target tokens (average_loss_in_time, as ours by default; "
        "the default for --onmt_variant ours).",
    )
    parser.add_argument(
        "--ours_buckets",
        type=parse_buckets,
        help="Ours: bin/train.py's --buckets (e.g. auto; default: "
        "train_seq2seq.yml's).",
    )
    parser.add_argument(
        "--ours_pad_to_bucket",
        action="store_true",
        help="Ours: bin/train.py's --pad_to_bucket (each batch padded to its "
        "bucket's bound: one batch shape per bucket).",
    )
    parser.add_argument(
        "--ours_mixed_precision",
        default="",
        help="Ours: bin/train.py's --mixed_precision (e.g. bfloat16_logits; "
        "default float32).",
    )
    parser.add_argument(
        "--ours_variant",
        choices=sorted(AB_VARIANTS),
        default="default",
        help="Ours: nmt_small with this variant's model parameters (AB_VARIANTS).",
    )
    parser.add_argument(
        "--ours_max_decode_length_ratio",
        type=float,
        default=0.0,
        help="Ours' decoding: inference.max_decode_length_ratio (a length limit "
        "per sentence, ceil(ratio * source length) + 5; 0: off, the default). "
        "OpenNMT-tf has no such limit.",
    )
    parser.add_argument("--work_dir", help="Keep runs here (default: temporary).")
    parser.add_argument(
        "--plot", help="PNG of BLEU against time (default: in work_dir)."
    )
    parser.add_argument("--json", help="Write all results here.")
    parser.add_argument(
        "--decode_only",
        action="store_true",
        help="Only decode again with the final checkpoints in --work_dir.",
    )
    parser.add_argument(
        "--combine",
        help="Comma-separated --json files of earlier runs: print their "
        "medians over all seeds together and draw their plot (--plot); "
        "trains nothing.",
    )
    parser.add_argument("--ab_steps", type=int, default=0)
    parser.add_argument("--ab_window", type=int, default=500)
    parser.add_argument(
        "--ab_bleu",
        action="store_true",
        help="--ab_steps: also decode the test set with each final model.",
    )
    parser.add_argument(
        "--ab_variants",
        default=",".join(list(AB_VARIANTS) + ["opennmt"]),
        help="Comma-separated: variants of ours (see AB_VARIANTS) and/or opennmt.",
    )
    parser.add_argument(
        "--venv_dir",
        default=compare_opennmt.default_venv_dir(),
        help="OpenNMT-tf venv.",
    )
    parser.add_argument("--venv_python", help="Python 3.8-3.11 for the venv.")
    parser.add_argument(
        "--opennmt_python", help="An interpreter with opennmt-tf instead of the venv."
    )
    return parser


def run(args):
    for flag in ("budget_s", "seeds", "num_marks", "batch_size", "beam_width"):
        if getattr(args, flag) <= 0:
            raise BenchmarkError(f"--{flag} must be positive.")
    if args.ours_max_decode_length_ratio < 0:
        raise BenchmarkError("--ours_max_decode_length_ratio must be >= 0 (0: off).")
    if args.combine:
        return write_results(args, combine(args))
    if args.decode_only and not args.work_dir:
        raise BenchmarkError("--decode_only needs the --work_dir of a finished run.")
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="real_corpus_compare_")
    os.makedirs(work_dir, exist_ok=True)
    opennmt_python = args.opennmt_python or compare_opennmt.ensure_opennmt_venv(
        args.venv_dir, args.venv_python
    )
    paths, manifest = prepare(args, work_dir)
    print(real_corpus.describe(manifest))
    print(common.load_at_start())
    lowercase = manifest["settings"]["lowercase"]
    if args.ours_max_decode_length_ratio:
        print(
            "ours decodes with inference.max_decode_length_ratio "
            f"{args.ours_max_decode_length_ratio:g}"
        )
    if args.decode_only:
        results = decode_only(args, paths, lowercase, work_dir, opennmt_python)
    elif args.ab_steps:
        results = run_ab(args, paths, lowercase, work_dir, opennmt_python)
    else:
        print(
            f"budget {args.budget_s:g}s of training per run, {args.seeds} seed(s), "
            f"batch {args.batch_size}, learning rate {args.learning_rate:g}, "
            f"ours variant {args.ours_variant}, OpenNMT-tf variant "
            f"{args.onmt_variant}; work dir {work_dir}"
        )
        all_runs = [
            run_seed(args, paths, lowercase, seed, work_dir, opennmt_python)
            for seed in range(args.seed, args.seed + args.seeds)
        ]
        plot = args.plot or os.path.join(work_dir, "bleu_vs_time.png")
        results = report(all_runs, args.beam_width, plot, args.budget_s)
    print(common.load_at_end())
    return write_results(args, results)


def write_results(args, results):
    """Writes `results` to `--json` when given; returns the exit code 0."""
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1, default=str)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (BenchmarkError, real_corpus.CorpusError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
