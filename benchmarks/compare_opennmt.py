#!/usr/bin/env python3
"""Side by side with OpenNMT-tf: the same model, data and steps in both.

Trains `example_configs/nmt_small.yml` here and its nearest OpenNMT-tf 2.32
equivalent (`opennmt_model.py`) on the same corpus for the same number of
steps, then decodes the same sentences with greedy search and beam search
in both, and prints target tokens/s, examples/s, sentences/s, peak resident
memory, dev loss per target token and the ratios ours / OpenNMT-tf:

    python benchmarks/compare_opennmt.py                     # synthetic corpus
    python benchmarks/compare_opennmt.py --steps 50 --repeats 5
    python benchmarks/compare_opennmt.py --source train.src --target train.tgt \\
        --vocab vocab.txt --test_source dev.src --test_target dev.tgt

OpenNMT-tf needs TensorFlow < 2.14, so it runs in its own virtual
environment (`opennmt-tf==2.32.0`, `tensorflow-cpu==2.13.*`), created once
with pip under `~/.cache/seq2seq-benchmarks/opennmt-venv` (`--venv_dir`)
and reused. Every measurement runs in a fresh child process (ours with this
interpreter, OpenNMT-tf's with the venv's), so that each peak RSS is that
process's own (from `os.wait4`); the systems alternate, round after round
(`--repeats`), and medians are shown.

Training: each child builds its model and input pipeline, runs `--warmup`
untimed steps (the first one traces the step), then `--steps` timed steps,
drawing batches of `--batch_size` sentence pairs from its own shuffling
pipeline (no bucketing in either). Then it computes the loss per target
token on the test set (dropout off) and saves its weights. Target tokens are
the predicted positions, words + end-of-sentence, in both systems.

Inference: a child restores those weights and decodes the test sources
(`--num_test`, 1000) at `--infer_batch_size` (32) with greedy search and
beam search (`--beam_width`, 5), one untimed batch first. Both stop a batch
when every hypothesis has ended or after `--max_decode_length` steps; models
this briefly trained rarely end a sentence, so both run to the cap. The
output reports the decoding steps each system ran per batch (the work done)
and how many sentences ended on their own.

`--profile_dir DIR` also writes a `tf.profiler` trace of a few train steps
and beam-search batches of each system under DIR and prints the ops that
take the most time (self time, summed over TensorFlow's compute threads).

Everything is on the CPU; timings depend on what else runs on the machine
(the load average is printed at start and end). The "per CPU-second"
columns divide by the CPU time of the measuring process (all its threads),
which is less sensitive to other processes than wall-clock time.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common, synthetic_data  # noqa: E402
from benchmarks.common import BenchmarkError, ChildFailed, format_table  # noqa: E402

OPENNMT_REQUIREMENTS = ("opennmt-tf==2.32.0", "tensorflow-cpu==2.13.*")
OPENNMT_VERSION = "2.32.0"
OPENNMT_TF_PREFIX = "2.13."
CONFIG_PATH = os.path.join(_REPO_ROOT, "example_configs", "nmt_small.yml")
RUNNER_PATH = os.path.join(_HERE, "opennmt_runner.py")
ONMT_SPECIALS = ("<blank>", "<s>", "</s>")
SYSTEMS = ("ours", "opennmt")
LABELS = {"ours": "ours", "opennmt": "OpenNMT-tf"}

# Where the two nmt_small models differ because one toolkit cannot express
# the other's choice. Printed with the results and copied into
# docs/performance.md.
ARCHITECTURE_DIFFERENCES = (
    "Attention score: ours is AttentionLayerDot, score = (W_k k + b_k) . "
    "(W_q h + b_q) with keys and query both projected to 128 (keys once per "
    "sentence); OpenNMT-tf uses tfa LuongAttention (multiplicative, the "
    "nearest), score = h . (W_m k): the same key projection without bias and "
    "no query projection (ours has 128x128+256 more weights and one more "
    "[B,128]x[128,128] matmul per decoder step).",
    "Input feeding: ours feeds the previous raw attention context c (256 = "
    "the encoder output size) next to the embedding, so the decoder GRU reads "
    "128+256 = 384 inputs; OpenNMT-tf (tfa AttentionWrapper) feeds the "
    "previous attentional state a = tanh(W [h; c]) (128), so its GRU reads "
    "256 inputs (ours: 384x384 input kernel, theirs 256x384).",
    "Output layer: both compute tanh(W [h; c]) of 128 units from the cell "
    "output h and the context c, then a dense layer to the vocabulary; ours "
    "has a bias in the tanh layer, OpenNMT-tf has none.",
    "Embedding gradients: ours clips them to norm 0.1 after the global-norm "
    "clip of 5 (optimizer.clip_embed_gradients, the original's default); "
    "OpenNMT-tf has no such clip (global-norm clip 5 only, via the Keras "
    "optimizer's global_clipnorm).",
    "Vocabulary: ours appends UNK, SEQUENCE_START, SEQUENCE_END to the N "
    "words (N+3 rows); OpenNMT-tf prepends <blank>, <s>, </s> and adds one "
    "OOV bucket (N+4 rows), in both embeddings and the output layer.",
    "Initialisation: GRU kernels uniform in [-0.04, 0.04] in both (set "
    "explicitly in opennmt_model.py); embeddings and our decoder's output "
    "layers uniform in [-0.04, 0.04] here, Glorot-uniform in OpenNMT-tf; "
    "attention projections Glorot-uniform in both.",
    "Dropout: keep 0.8 on the inputs of every GRU cell in both, fresh at "
    "every step. OpenNMT-tf's own `dropout` drops cell outputs, so it is 0 "
    "and its cells are wrapped in RNNCellWrapper(input_dropout=0.2).",
    "GRU: TF1-style (reset gate before the recurrent matmul, "
    "reset_after=False) in both; encoder 128 units per direction in both "
    "(OpenNMT-tf's RNNEncoder gives num_units to each direction), outputs "
    "concatenated (256); decoder starts from zeros in both (ZeroBridge).",
    "Loss: sum of token cross-entropies / number of target tokens in both "
    "(OpenNMT-tf's average_loss_in_time=True; its default divides by the "
    "number of sentences).",
    "Train step: ours is the Trainer's compiled step (forward, loss, "
    "gradients, clipping, a skip-if-not-finite guard, Adam in Keras 3); "
    "OpenNMT-tf's is model.train (forward, loss, gradients, legacy Keras "
    "Adam with global_clipnorm) under tf.function, without the gradient "
    "accumulation variables of its Trainer class (a slight advantage to it).",
    "Engines: ours runs TensorFlow 2.21 with Keras 3.15, OpenNMT-tf "
    "TensorFlow 2.13 with tf.keras 2.13 and TensorFlow Addons 0.21; both "
    "with oneDNN on the CPU and no XLA.",
    "Sentence lengths: no truncation and no length filter in either "
    "(ours: source/target.max_seq_len 0 instead of 50; OpenNMT-tf: no "
    "maximum_*_length), so both see every pair whole.",
)


# --------------------------------------------------------------- venv


def default_venv_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(cache, "seq2seq-benchmarks", "opennmt-venv")


def _venv_python(venv_dir):
    return os.path.join(venv_dir, "bin", "python")


def _base_python(requested):
    """An interpreter TensorFlow 2.13 supports (Python 3.8 to 3.11)."""
    if requested:
        if not shutil.which(requested) and not os.path.isfile(requested):
            raise BenchmarkError(
                f"--venv_python {requested} not found; give the path of a "
                "Python 3.8-3.11 interpreter."
            )
        return requested
    for name in ("python3.11", "python3.10", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found:
            return found
    if (3, 8) <= sys.version_info[:2] <= (3, 11):
        return sys.executable
    raise BenchmarkError(
        "no Python 3.8-3.11 found for the OpenNMT-tf venv (tensorflow-cpu "
        "2.13 has no wheels for newer Pythons); install python3.11 or pass "
        "--venv_python PATH."
    )


def _run_quiet(command, log_path, env=None):
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        return subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode


def _pip_error_lines(log_path, limit=3):
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle]
    errors = [
        line
        for line in lines
        if line.startswith("ERROR") or "No matching distribution" in line
    ]
    return errors[-limit:] or [line for line in lines if line][-limit:]


def _check_opennmt(python):
    """Imports OpenNMT-tf in the venv; returns (opennmt, tensorflow) versions."""
    env = opennmt_env()
    completed = subprocess.run(
        [
            python,
            "-c",
            "import opennmt, tensorflow as tf; print(opennmt.__version__, "
            "tf.__version__)",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        return None
    words = completed.stdout.split()
    return tuple(words[-2:]) if len(words) >= 2 else None


def ensure_opennmt_venv(venv_dir, base_python=None, reinstall=False):
    """Creates (once) the OpenNMT-tf venv; returns its Python interpreter.

    Raises:
      BenchmarkError: The venv cannot be created or pip fails.
    """
    python = _venv_python(venv_dir)
    marker = os.path.join(venv_dir, ".seq2seq-benchmarks")
    wanted = " ".join(OPENNMT_REQUIREMENTS)
    if not reinstall and os.path.isfile(marker) and os.path.isfile(python):
        with open(marker, encoding="utf-8") as handle:
            if handle.read().strip() == wanted:
                return python
    if reinstall or (os.path.isdir(venv_dir) and not os.path.isfile(python)):
        shutil.rmtree(venv_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(venv_dir), exist_ok=True)
    log_path = venv_dir + ".log"
    print(
        f"setting up the OpenNMT-tf venv in {venv_dir} (once; about 1.5 GB, a "
        f"few minutes; log: {log_path})",
        flush=True,
    )
    if not os.path.isfile(python):
        base = _base_python(base_python)
        if _run_quiet([base, "-m", "venv", venv_dir], log_path) != 0:
            raise BenchmarkError(
                f"could not create a virtual environment in {venv_dir} with "
                f"{base} (see {log_path}); install the python3-venv package or "
                "pass --venv_python."
            )
    command = [python, "-m", "pip", "install", *OPENNMT_REQUIREMENTS]
    if _run_quiet(command, log_path) != 0:
        detail = " | ".join(_pip_error_lines(log_path))
        raise BenchmarkError(
            f"pip could not install {wanted} into {venv_dir} ({detail}). Check "
            "that pip reaches PyPI (proxy: HTTPS_PROXY, index: PIP_INDEX_URL), "
            f"or install them yourself with `{python} -m pip install "
            f"{wanted}` and rerun, or pass --opennmt_python with an interpreter "
            "that has them."
        )
    versions = _check_opennmt(python)
    if versions is None:
        raise BenchmarkError(
            f"OpenNMT-tf does not import in {venv_dir} after installing; rerun "
            f"with --reinstall_venv (log: {log_path})."
        )
    with open(marker, "w", encoding="utf-8") as out:
        out.write(wanted + "\n")
    print(f"OpenNMT-tf {versions[0]} with TensorFlow {versions[1]} installed")
    return python


def opennmt_env():
    """The environment of a process in the OpenNMT-tf venv: none of this
    one's Python paths, TensorFlow's and Python's warnings quiet."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # TensorFlow Addons warns at import that it has reached its end of life.
    env["PYTHONWARNINGS"] = "ignore"
    return env


# --------------------------------------------------------------- data


def _count_lines(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for _ in handle)


def _check_file(path, flag):
    if not os.path.isfile(path):
        raise BenchmarkError(f"{flag} {path}: no such file; give an existing path.")
    if os.path.getsize(path) == 0:
        raise BenchmarkError(f"{flag} {path} is empty; give a non-empty file.")


def _read_vocab(path):
    """Tokens of a vocabulary file (first field of `token<TAB>count` lines)."""
    tokens = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            token = line.rstrip("\n").split("\t")[0]
            if token:
                tokens.append(token)
    return tokens


def _build_vocab(paths):
    counts = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                counts.update(line.split())
    return [token for token, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0]))]


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def prepare_corpus(args, work_dir):
    """Writes or checks the corpus; returns a dict of paths and a summary.

    Keys: `source`, `target` (training), `test_source`, `test_target`,
    `vocab` (ours: the words), `onmt_vocab` (OpenNMT-tf: `<blank> <s> </s>`
    then the words).
    """
    paths = {}
    if args.source or args.target:
        if not (args.source and args.target):
            raise BenchmarkError("give both --source and --target (or neither).")
        _check_file(args.source, "--source")
        _check_file(args.target, "--target")
        num_src, num_tgt = _count_lines(args.source), _count_lines(args.target)
        if num_src != num_tgt:
            raise BenchmarkError(
                f"--source has {num_src} lines but --target has {num_tgt}; give "
                "line-aligned parallel files."
            )
        if args.test_source or args.test_target:
            if not (args.test_source and args.test_target):
                raise BenchmarkError("give both --test_source and --test_target.")
            _check_file(args.test_source, "--test_source")
            _check_file(args.test_target, "--test_target")
            paths.update(source=args.source, target=args.target)
            with (
                open(args.test_source, encoding="utf-8") as src,
                open(args.test_target, encoding="utf-8") as tgt,
            ):
                pairs = [p for _, p in zip(range(args.num_test), zip(src, tgt))]
            paths["test_source"] = os.path.join(work_dir, "test.src")
            paths["test_target"] = os.path.join(work_dir, "test.tgt")
            _write_lines(paths["test_source"], [s.rstrip("\n") for s, _ in pairs])
            _write_lines(paths["test_target"], [t.rstrip("\n") for _, t in pairs])
        else:
            if num_src <= args.num_test:
                raise BenchmarkError(
                    f"--source has {num_src} lines, not more than --num_test="
                    f"{args.num_test}; give --test_source/--test_target or a "
                    "smaller --num_test."
                )
            with (
                open(args.source, encoding="utf-8") as src,
                open(args.target, encoding="utf-8") as tgt,
            ):
                pairs = [(s.rstrip("\n"), t.rstrip("\n")) for s, t in zip(src, tgt)]
            split = len(pairs) - args.num_test
            for key, chunk in (("", pairs[:split]), ("test_", pairs[split:])):
                paths[key + "source"] = os.path.join(work_dir, key + "corpus.src")
                paths[key + "target"] = os.path.join(work_dir, key + "corpus.tgt")
                _write_lines(paths[key + "source"], [s for s, _ in chunk])
                _write_lines(paths[key + "target"], [t for _, t in chunk])
        if args.vocab:
            _check_file(args.vocab, "--vocab")
            words = _read_vocab(args.vocab)
        else:
            words = _build_vocab([paths["source"], paths["target"]])
        summary = (
            f"corpus {args.source} / {args.target}: "
            f"{_count_lines(paths['source'])} training pairs, "
            f"{_count_lines(paths['test_source'])} test pairs, {len(words)} words"
        )
    else:
        train = common.write_corpus(args, os.path.join(work_dir, "train"))
        test = common.write_test_corpus(
            args, os.path.join(work_dir, "test"), args.num_test
        )
        paths.update(
            source=train["sources"],
            target=train["targets"],
            test_source=test["sources"],
            test_target=test["targets"],
        )
        words = _read_vocab(train["vocab"])
        summary = (
            "synthetic corpus: "
            + synthetic_data.describe(train)
            + f"; test set: {test['num_examples']} pairs (seed {args.seed + 1}, "
            f"same dictionary), mean length {test['mean_len']:.1f}"
        )
    words = [w for w in words if w not in ONMT_SPECIALS]
    paths["vocab"] = os.path.join(work_dir, "vocab.txt")
    paths["onmt_vocab"] = os.path.join(work_dir, "onmt_vocab.txt")
    _write_lines(paths["vocab"], words)
    _write_lines(paths["onmt_vocab"], list(ONMT_SPECIALS) + words)
    return paths, summary


# -------------------------------------------------------------- config


def nmt_small_settings():
    """Training settings of `nmt_small.yml` both systems are given."""
    import yaml

    with open(CONFIG_PATH, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    params = config.get("model_params") or {}
    optimizer_params = params.get("optimizer.params") or {}
    cell = (params.get("decoder.params") or {}).get("rnn_cell") or {}
    return {
        "learning_rate": float(params.get("optimizer.learning_rate", 1e-4)),
        # Keras's Adam default (1e-7) is not TF1's (1e-8); nmt_small sets it.
        "adam_epsilon": float(optimizer_params.get("epsilon", 1e-8)),
        "clip_gradients": float(params.get("optimizer.clip_gradients", 5.0)),
        "input_dropout": 1.0 - float(cell.get("dropout_input_keep_prob", 1.0)),
    }


# -------------------------------------------------------------- children


def run_child(system, task, spec, work_dir, opennmt_python=None):
    """Runs one measurement of `system` in a fresh process (see
    `common.run_child`); returns its result dict."""
    if system == "ours":
        command = [sys.executable, os.path.abspath(__file__), "--child", task]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    else:
        command = [opennmt_python, RUNNER_PATH, task]
        env = opennmt_env()
    return common.run_child(
        command,
        spec,
        work_dir,
        f"{system}_{task}_{spec['round']}",
        f"{LABELS[system]} {task}",
        env=env,
    )


def _import_rss_mb():
    """Peak RSS with TensorFlow, Keras and the package loaded, no model yet."""
    import tensorflow as tf

    import seq2seq.models  # noqa: F401
    from seq2seq.inference import inference  # noqa: F401
    from seq2seq.training import trainer  # noqa: F401

    tf.zeros([1]).numpy()
    return common.peak_rss_mb()


def _ours_model_config(spec):
    # No truncation: OpenNMT-tf is given no length limit either.
    return common.load_model_config(
        CONFIG_PATH, spec["vocab"], {"source.max_seq_len": 0, "target.max_seq_len": 0}
    )


def _median_window(windows):
    """The timed window with the median target tokens/s (the lower middle
    one for an even count)."""
    return common.middle(windows, key=lambda w: w["target_tokens"] / w["seconds"])


def ours_dev_loss(trainer):
    """`(loss per target token, target tokens)` of the Trainer's model on its
    dev set, teacher-forced, dropout off."""
    import tensorflow as tf

    from seq2seq.training.train_step import ID_KEYS

    model = trainer.model
    dev_spec = {k: trainer.dev_dataset.element_spec[k] for k in ID_KEYS}

    @tf.function(input_signature=[dev_spec])
    def dev_step(features):
        output = model.forward(features, training=False)
        return output.loss_sum, output.num_tokens

    total = count = 0.0
    for batch in trainer.dev_dataset:
        loss_sum, num_tokens = dev_step({k: batch[k] for k in ID_KEYS})
        total += float(loss_sum)
        count += float(num_tokens)
    return total / max(count, 1.0), int(count)


def _ours_train(spec):
    # As bin/train.py: before TensorFlow runs its first op.
    from seq2seq.training import cpu_threads

    cpu_threads.configure_training_threads()
    import_rss_mb = _import_rss_mb()

    import tensorflow as tf

    from seq2seq.configurable import ModeKeys
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    model_class, params = _ours_model_config(spec)
    if spec.get("learning_rate"):
        params["optimizer.learning_rate"] = spec["learning_rate"]
    options = TrainOptions.from_model(model_class, params)
    trainer_lib.check_and_write_train_options(options, spec["model_dir"])
    run_config = trainer_lib.RunConfig(
        output_dir=spec["model_dir"],
        batch_size=spec["batch_size"],
        tf_random_seed=spec["seed"],
        eval_every_n_steps=0,
    )
    dev_pipeline = None
    if spec.get("dev_source"):
        dev_pipeline = common.text_pipeline(
            spec["dev_source"], spec["dev_target"], ModeKeys.EVAL
        )
    clock = common.Stopwatch()
    trainer = trainer_lib.Trainer(
        options,
        common.text_pipeline(spec["source"], spec["target"], ModeKeys.TRAIN),
        dev_pipeline,
        run_config,
    )
    model = trainer.model
    iterator, first, train_step = common.compiled_train_step(trainer)
    build_s = clock.seconds()

    def run(num_steps, features=None):
        tokens = examples = padded = 0
        outputs = None
        clock = common.Stopwatch()
        for _ in range(num_steps):
            batch = features if features is not None else next(iterator)
            features = None
            outputs = train_step(batch)
            target_len = batch["target_len"].numpy()
            tokens += int(target_len.sum() - len(target_len))
            examples += len(target_len)
            # Predicted positions the step computes, padding included.
            padded += len(target_len) * (int(batch["target_ids"].shape[1]) - 1)
        loss = float(outputs["loss"])  # waits for the last step
        return {
            "seconds": clock.seconds(),
            "cpu_seconds": clock.cpu_seconds(),
            "target_tokens": tokens,
            "examples": examples,
            "padded_targets": padded,
            "steps": num_steps,
            "train_loss": loss,
        }

    first_step_s = run(1, first)["seconds"]
    if spec["warmup"] > 1:
        run(spec["warmup"] - 1)
    windows = [run(spec["steps"]) for _ in range(spec.get("windows", 1))]
    result = dict(_median_window(windows))
    result.update(
        system="ours",
        windows=windows,
        train_loss=windows[-1]["train_loss"],
        global_step=trainer.step,
        parameters=common.count_parameters(model.trainable_variables),
        build_s=build_s,
        first_step_s=first_step_s,
        tf_version=tf.__version__,
        learning_rate=float(model.params["optimizer.learning_rate"]),
    )
    if trainer.dev_dataset is not None:
        result["dev_loss"], result["dev_tokens"] = ours_dev_loss(trainer)
    if spec.get("save", True):
        # `save` also writes the `checkpoint` index that inference reads.
        tf.train.Checkpoint(model=model).save(os.path.join(spec["model_dir"], "ckpt"))
    if spec.get("profile_dir"):
        traced = []
        tf.profiler.experimental.start(spec["profile_dir"])
        for index in range(spec.get("profile_steps", 3)):
            with tf.profiler.experimental.Trace("benchmark_step", step_num=index, _r=1):
                traced.append(run(1))
        tf.profiler.experimental.stop()
        result["profile_tokens"] = sum(t["target_tokens"] for t in traced)
        result["profile_padded"] = sum(t["padded_targets"] for t in traced)
    result["peak_rss_self_mb"] = common.peak_rss_mb()
    result["import_rss_mb"] = import_rss_mb
    return result


def _ours_train_budget(spec):
    """Trains as `bin/train.py` would (its Trainer, input pipeline,
    `buckets`, `pad_to_bucket`, `mixed_precision`) for `budget_s` seconds or
    `max_steps` steps, writing checkpoints at `checkpoint_times` (see
    `common.budget_training_loop`).

    The model is `config` (default nmt_small) pointed at `vocab_source` /
    `vocab_target`, with `overrides` merged into its parameters and
    `learning_rate` set.
    """
    # As bin/train.py: before TensorFlow runs its first op.
    from seq2seq.training import cpu_threads

    cpu_threads.configure_training_threads()
    import_rss_mb = _import_rss_mb()

    import tensorflow as tf

    from seq2seq.configurable import ModeKeys
    from seq2seq.training import trainer as trainer_lib
    from seq2seq.training.utils import TrainOptions

    model_class, params = common.load_model_config(
        spec.get("config", CONFIG_PATH),
        spec["vocab_source"],
        spec.get("overrides"),
        vocab_target=spec["vocab_target"],
    )
    params["optimizer.learning_rate"] = spec["learning_rate"]
    options = TrainOptions.from_model(model_class, params)
    trainer_lib.check_and_write_train_options(options, spec["model_dir"])
    run_config = trainer_lib.RunConfig(
        output_dir=spec["model_dir"],
        batch_size=spec["batch_size"],
        buckets=spec.get("buckets"),
        pad_to_bucket=bool(spec.get("pad_to_bucket")),
        mixed_precision=spec.get("mixed_precision", ""),
        tf_random_seed=spec["seed"],
        eval_every_n_steps=0,
    )
    dev_pipeline = None
    if spec.get("dev_source"):
        dev_pipeline = common.text_pipeline(
            spec["dev_source"], spec["dev_target"], ModeKeys.EVAL
        )
    clock = common.Stopwatch()
    trainer = trainer_lib.Trainer(
        options,
        common.text_pipeline(spec["source"], spec["target"], ModeKeys.TRAIN),
        dev_pipeline,
        run_config,
    )
    model = trainer.model
    iterator, first, train_step = common.compiled_train_step(trainer)
    build_s = clock.seconds()
    pending = [first]
    checkpoint = tf.train.Checkpoint(model=model)

    def step():
        batch = pending.pop() if pending else next(iterator)
        outputs = train_step(batch)
        target_len = batch["target_len"].numpy()
        return float(outputs["loss"]), int(target_len.sum() - len(target_len))

    def save(index):
        return checkpoint.write(os.path.join(spec["model_dir"], f"mark-{index}"))

    result = common.budget_training_loop(spec, step, save)
    result.update(
        system="ours",
        global_step=trainer.step,
        parameters=common.count_parameters(model.trainable_variables),
        build_s=build_s,
        tf_version=tf.__version__,
    )
    if trainer.dev_dataset is not None:
        result["dev_loss"], result["dev_tokens"] = ours_dev_loss(trainer)
    result["peak_rss_self_mb"] = common.peak_rss_mb()
    result["import_rss_mb"] = import_rss_mb
    return result


def _ours_infer(spec):
    """Decodes `source` with each beam width, from each checkpoint of
    `checkpoints` (default: the model directory's latest) in turn; with
    `predictions` (one path per checkpoint) the outputs of checkpoint i at
    beam width w go to `predictions[i] + ".beam{w}"`, one line of words per
    sentence in input order. Batches are sorted by source length within
    windows of `sort_window` sentences (2048, as bin/infer.py; 1: input
    order)."""
    import_rss_mb = _import_rss_mb()

    import tensorflow as tf

    from seq2seq.configurable import ModeKeys
    from seq2seq.inference import inference, length_sorting

    tf.keras.utils.set_random_seed(spec["seed"])
    options = inference.load_train_options(spec["model_dir"])
    checkpoints = spec.get("checkpoints") or [
        inference.resolve_checkpoint(spec["model_dir"])
    ]
    outputs = spec.get("predictions") or [None] * len(checkpoints)
    pipeline = common.text_pipeline(spec["source"], None, ModeKeys.INFER)
    results = []
    for beam_width in spec["beam_widths"]:
        model = inference.build_model(
            options,
            {
                "inference.beam_search.beam_width": beam_width,
                "inference.max_decode_length": spec["max_decode_length"],
                **spec.get("model_params", {}),
            },
        )
        end_id = model.target_vocab_info.special_vocab.SEQUENCE_END
        # As bin/infer.py batches: by source length within each window.
        window = spec.get("sort_window", length_sorting.DEFAULT_WINDOW)
        dataset = inference.make_sorted_dataset(
            model, pipeline, spec["batch_size"], window
        )
        predictor = inference.Predictor(model, dataset.element_spec[0])
        for index, (checkpoint, output) in enumerate(zip(checkpoints, outputs)):
            clock = common.Stopwatch()
            if index == 0:
                first, _ = next(iter(dataset))
                # As bin/infer.py does.
                inference.create_variables(model, first)
            inference.restore_model(model, checkpoint)
            if index == 0:
                predictor(first)  # traces
            first_batch_s = clock.seconds()
            sentences = tokens = ended = batches = batch_steps = 0
            lines = []
            clock = common.Stopwatch()
            for features, positions in dataset:
                predictions = predictor(features)
                lengths = predictions["predicted_len"]
                ids = predictions["predicted_ids"]
                batches += 1
                batch_steps += ids.shape[1]  # decoding steps this batch ran
                sentences += len(lengths)
                tokens += int(lengths.sum())
                ended += common.count_ended(ids, lengths, end_id)
                if output:
                    rows = zip(positions.numpy(), predictions["predicted_tokens"])
                    for position, row in rows:
                        words = []
                        for token in row:
                            if token in ("SEQUENCE_END", ""):
                                break
                            words.append(token)
                        lines.append((position, " ".join(words)))
            seconds, cpu_seconds = clock.seconds(), clock.cpu_seconds()
            if output:
                with open(f"{output}.beam{beam_width}", "w", encoding="utf-8") as out:
                    out.writelines(line + "\n" for _, line in sorted(lines))
            results.append(
                {
                    "beam_width": beam_width,
                    "checkpoint": checkpoint,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "sentences": sentences,
                    "output_tokens": tokens,
                    "ended": ended,
                    "batches": batches,
                    "batch_steps": batch_steps,
                    "first_batch_s": first_batch_s,
                }
            )
        if spec.get("profile_dir") and beam_width == max(spec["beam_widths"]):
            traced_steps = 0
            tf.profiler.experimental.start(spec["profile_dir"])
            batches = dataset.take(spec["profile_batches"])
            for index, (features, _) in enumerate(batches):
                with tf.profiler.experimental.Trace(
                    "benchmark_step", step_num=index, _r=1
                ):
                    traced_steps += predictor(features)["predicted_ids"].shape[1]
            tf.profiler.experimental.stop()
            results[-1]["profile_batch_steps"] = traced_steps
    return {
        "system": "ours",
        "decoders": results,
        "peak_rss_self_mb": common.peak_rss_mb(),
        "import_rss_mb": import_rss_mb,
    }


def child_main(argv):
    """`--child train|infer SPEC RESULT`: one measurement of our system."""
    return common.child_main(
        argv,
        {
            "train": _ours_train,
            "train_budget": _ours_train_budget,
            "infer": _ours_infer,
        },
        "usage: compare_opennmt.py --child train|train_budget|infer SPEC RESULT",
    )


# ------------------------------------------------------------- profile


def _op_scope(name):
    """A short layer path of a TF op name: `bwd attention_decoder/logits`."""
    parts = name.split(":")[0].split("/")
    backward = parts and parts[0] == "gradient_tape"
    kept = []
    for part in parts[1:] if backward else parts:
        if (
            not part
            or part[0] in "_0123456789"
            or part.startswith(("while", "body", "cond", "then", "else"))
            or part in ("nmt_small", "att_seq2seq")
        ):
            continue
        kept.append(part.rstrip("_0123456789") or part)
        if len(kept) == 2:
            break
    return ("bwd " if backward else "fwd ") + ("/".join(kept) or "(top)")


def _self_times(events, metadata, by_type, by_scope, counts):
    """Adds the self time (ps) of each event of one thread to the counters.

    Events on a thread nest (an op inside `ExecutorState::Process`, ops
    inside a function call); an event's self time is its duration minus that
    of the events directly inside it.
    """
    stack = []  # [end_ps, kind, scope, duration_ps, children_ps]

    def close():
        _, kind, scope, duration, children = stack.pop()
        by_type[kind] += duration - children
        by_scope[scope] += duration - children
        counts[kind] += 1
        if stack:
            stack[-1][4] += duration

    for event in sorted(events, key=lambda e: (e.offset_ps, -e.duration_ps)):
        while stack and stack[-1][0] <= event.offset_ps:
            close()
        meta = metadata[event.metadata_id]
        if meta.display_name:
            kind, scope = meta.display_name, _op_scope(meta.name)
        else:
            kind = scope = f"[{meta.name}]"
        end = event.offset_ps + event.duration_ps
        stack.append([end, kind, scope, event.duration_ps, 0])
    while stack:
        close()


def summarize_trace(log_dir, top=12):
    """Self time of TensorFlow ops in a `tf.profiler` trace.

    Reads the newest `*.xplane.pb` under `log_dir` and, on TensorFlow's
    compute threads, gives each op event its duration minus the events
    nested in it.

    Returns:
      A dict: `steps_ms` (wall time of each traced step), `total_ms` (summed
      self time), `by_type` and `by_scope` (lists of `(name, ms, count)`).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    found = []
    for root, _, files in os.walk(log_dir):
        found += [os.path.join(root, f) for f in files if f.endswith(".xplane.pb")]
    if not found:
        return None
    space = xplane_pb2.XSpace()
    with open(max(found, key=os.path.getmtime), "rb") as handle:
        space.ParseFromString(handle.read())
    by_type, by_scope, counts = (collections.Counter() for _ in range(3))
    steps = []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        metadata = plane.event_metadata
        for line in plane.lines:
            if line.name == "python":
                steps += [
                    e.duration_ps / 1e9
                    for e in line.events
                    if metadata[e.metadata_id].name == "benchmark_step"
                ]
            if not line.name.startswith("tf_Compute"):
                continue
            _self_times(line.events, metadata, by_type, by_scope, counts)
    total = sum(by_type.values())
    return {
        "steps_ms": steps,
        "total_ms": total / 1e9,
        "by_type": [(k, v / 1e9, counts[k]) for k, v in by_type.most_common(top)],
        "by_scope": [(k, v / 1e9, 0) for k, v in by_scope.most_common(top)],
    }


def print_profile(title, summary, units=None):
    """Prints the top ops of a `summarize_trace` summary.

    Args:
      title: The heading.
      summary: What `summarize_trace` returned, or None.
      units: Optional `(count, name, per)`: also show the time per `per` of
        `count` units (e.g. per 1000 padded target positions), so that traces
        of batches of other lengths compare.
    """
    if summary is None:
        print(f"{title}: no trace found")
        return
    steps = ", ".join(f"{s:.0f}" for s in summary["steps_ms"])
    scale = label = None
    if units and units[0]:
        count, name, per = units
        scale = float(per) / count
        label = f"ms per {'1k ' if per == 1000 else ''}{name.rstrip('s')}"
    per_line = f"; {units[0]} {units[1]}" if scale else ""
    print(
        f"{title}: traced steps {steps} ms; self time summed over the compute "
        f"threads {summary['total_ms']:.0f} ms{per_line}"
    )
    total = max(summary["total_ms"], 1e-9)
    for heading, key in (("op type", "by_type"), ("layer (fwd/bwd)", "by_scope")):
        header = [heading, "ms", "share", "count"]
        if scale:
            header.append(label)
        rows = [header]
        for name, ms, count in summary[key]:
            row = [name, f"{ms:.0f}", f"{100 * ms / total:.1f}%", str(count or "")]
            if scale:
                row.append(f"{ms * scale:.1f}")
            rows.append(row)
        if scale:
            rows.append(["total", f"{total:.0f}", "100%", "", f"{total * scale:.1f}"])
        print(format_table(rows))
        print()


# --------------------------------------------------------------- report


def _decoder_name(beam_width):
    return "greedy" if beam_width <= 1 else f"beam {beam_width}"


def _ratio(ours, theirs):
    return ours / theirs if theirs else float("nan")


def summarize_training(runs):
    """Medians over rounds of one system's training runs."""
    return {
        "tokens_per_s": common.median(
            [r["target_tokens"] / r["seconds"] for r in runs]
        ),
        "examples_per_s": common.median([r["examples"] / r["seconds"] for r in runs]),
        "tokens_per_cpu_s": common.median(
            [r["target_tokens"] / max(r["cpu_seconds"], 1e-9) for r in runs]
        ),
        "ms_per_step": common.median([1000 * r["seconds"] / r["steps"] for r in runs]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "import_rss_mb": common.median([r["import_rss_mb"] for r in runs]),
        "model_rss_mb": max(r["peak_rss_mb"] - r["import_rss_mb"] for r in runs),
        "dev_loss": runs[0]["dev_loss"],
        "dev_loss_range": (
            min(r["dev_loss"] for r in runs),
            max(r["dev_loss"] for r in runs),
        ),
        "train_loss": runs[0]["train_loss"],
        "parameters": runs[0]["parameters"],
        "global_step": runs[0]["global_step"],
        "first_step_s": common.median([r["first_step_s"] for r in runs]),
        "mean_target_len": sum(r["target_tokens"] for r in runs)
        / max(sum(r["examples"] for r in runs), 1),
        "spread": (
            min(r["target_tokens"] / r["seconds"] for r in runs),
            max(r["target_tokens"] / r["seconds"] for r in runs),
        ),
    }


def summarize_inference(runs, beam_width):
    """Medians over rounds of one system's decoding with one beam width."""
    rows = [d for r in runs for d in r["decoders"] if d["beam_width"] == beam_width]
    first = rows[0]
    return {
        "sentences_per_s": common.median([d["sentences"] / d["seconds"] for d in rows]),
        "sentences_per_cpu_s": common.median(
            [d["sentences"] / max(d["cpu_seconds"], 1e-9) for d in rows]
        ),
        "steps_per_batch": first["batch_steps"] / max(first["batches"], 1),
        "batch_steps_per_s": common.median(
            [d["batch_steps"] / d["seconds"] for d in rows]
        ),
        "mean_output_len": first["output_tokens"] / max(first["sentences"], 1),
        "ended": first["ended"] / max(first["sentences"], 1),
        "sentences": first["sentences"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "model_rss_mb": max(r["peak_rss_mb"] - r["import_rss_mb"] for r in runs),
        "spread": (
            min(d["sentences"] / d["seconds"] for d in rows),
            max(d["sentences"] / d["seconds"] for d in rows),
        ),
    }


def training_table(train):
    header = [
        "system",
        "tgt tok/s",
        "ex/s",
        "ms/step",
        "tgt tok/CPU-s",
        "peak RSS MB",
        "RSS over import MB",
        "dev loss/token",
        "params",
    ]
    rows = [header]
    for system in SYSTEMS:
        if system not in train:
            continue
        s = train[system]
        rows.append(
            [
                LABELS[system],
                f"{s['tokens_per_s']:.0f}",
                f"{s['examples_per_s']:.1f}",
                f"{s['ms_per_step']:.0f}",
                f"{s['tokens_per_cpu_s']:.0f}",
                f"{s['peak_rss_mb']:.0f}",
                f"{s['model_rss_mb']:.0f}",
                f"{s['dev_loss']:.4f}",
                f"{s['parameters'] / 1e6:.2f}M",
            ]
        )
    if len(train) == 2:
        o, t = train["ours"], train["opennmt"]
        keys = (
            "tokens_per_s",
            "examples_per_s",
            "ms_per_step",
            "tokens_per_cpu_s",
            "peak_rss_mb",
            "model_rss_mb",
        )
        rows.append(
            ["ours / OpenNMT-tf"]
            + [f"{_ratio(o[k], t[k]):.2f}x" for k in keys]
            + [
                f"{o['dev_loss'] - t['dev_loss']:+.4f}",
                f"{_ratio(o['parameters'], t['parameters']):.2f}x",
            ]
        )
    return format_table(rows)


def inference_table(infer, beam_widths):
    header = [
        "decoder",
        "system",
        "sent/s",
        "sent/CPU-s",
        "steps/batch",
        "batch-steps/s",
        "out tokens/sent",
        "ended",
        "peak RSS MB",
        "RSS over import MB",
    ]
    rows = [header]
    for width in beam_widths:
        name = _decoder_name(width)
        for system in SYSTEMS:
            if system not in infer:
                continue
            s = infer[system][width]
            rows.append(
                [
                    name,
                    LABELS[system],
                    f"{s['sentences_per_s']:.1f}",
                    f"{s['sentences_per_cpu_s']:.1f}",
                    f"{s['steps_per_batch']:.1f}",
                    f"{s['batch_steps_per_s']:.1f}",
                    f"{s['mean_output_len']:.1f}",
                    f"{100 * s['ended']:.0f}%",
                    f"{s['peak_rss_mb']:.0f}",
                    f"{s['model_rss_mb']:.0f}",
                ]
            )
        if len(infer) == 2:
            o, t = infer["ours"][width], infer["opennmt"][width]
            ratio = {
                k: f"{_ratio(o[k], t[k]):.2f}x"
                for k in (
                    "sentences_per_s",
                    "sentences_per_cpu_s",
                    "steps_per_batch",
                    "batch_steps_per_s",
                    "peak_rss_mb",
                    "model_rss_mb",
                )
            }
            rows.append(
                [
                    name,
                    "ours / OpenNMT-tf",
                    ratio["sentences_per_s"],
                    ratio["sentences_per_cpu_s"],
                    ratio["steps_per_batch"],
                    ratio["batch_steps_per_s"],
                    "",
                    "",
                    ratio["peak_rss_mb"],
                    ratio["model_rss_mb"],
                ]
            )
    return format_table(rows)


def target_lines(train, infer, beam_widths):
    """The issue's targets, each marked met or not met."""
    if len(train) < 2:
        return []
    o, t = train["ours"], train["opennmt"]
    checks = [
        (
            "training target tokens/s >= 1.5x OpenNMT-tf",
            _ratio(o["tokens_per_s"], t["tokens_per_s"]) >= 1.5,
            f"{_ratio(o['tokens_per_s'], t['tokens_per_s']):.2f}x",
        )
    ]
    for width in beam_widths:
        name = _decoder_name(width)
        if infer and len(infer) == 2:
            ratio = _ratio(
                infer["ours"][width]["sentences_per_s"],
                infer["opennmt"][width]["sentences_per_s"],
            )
            checks.append(
                (f"{name} sentences/s >= 2x OpenNMT-tf", ratio >= 2, f"{ratio:.2f}x")
            )
    peak_o = max(
        [o["peak_rss_mb"]]
        + [infer["ours"][w]["peak_rss_mb"] for w in infer.get("ours", {})]
    )
    peak_t = max(
        [t["peak_rss_mb"]]
        + [infer["opennmt"][w]["peak_rss_mb"] for w in infer.get("opennmt", {})]
    )
    checks.append(
        (
            "peak memory <= OpenNMT-tf's",
            peak_o <= peak_t,
            f"{peak_o:.0f} vs {peak_t:.0f} MB (of which TensorFlow and the "
            f"toolkit's imports: {o['import_rss_mb']:.0f} vs "
            f"{t['import_rss_mb']:.0f} MB)",
        )
    )
    checks.append(
        (
            "dev loss <= OpenNMT-tf's after the same steps",
            o["dev_loss"] <= t["dev_loss"],
            f"{o['dev_loss']:.4f} vs {t['dev_loss']:.4f}",
        )
    )
    return [
        f"  [{'met' if ok else 'NOT met'}] {name}: {value}"
        for name, ok, value in checks
    ]


# ----------------------------------------------------------------- main


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train and decode nmt_small here and in OpenNMT-tf; print "
        "throughput, memory and dev loss side by side."
    )
    parser.add_argument("--steps", type=int, default=30, help="Timed train steps.")
    parser.add_argument(
        "--warmup", type=int, default=5, help="Untimed train steps before them."
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="Rounds (each system once per round)."
    )
    parser.add_argument(
        "--infer_repeats",
        type=int,
        default=None,
        help="Rounds of the inference measurement (default: --repeats).",
    )
    parser.add_argument("--batch_size", type=int, default=32, help="Train batch.")
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=None,
        help="Learning rate of both systems (default: nmt_small's, 1e-4; a "
        "larger one makes the dev losses move in few steps).",
    )
    parser.add_argument(
        "--infer_batch_size", type=int, default=32, help="Decoding batch."
    )
    parser.add_argument(
        "--num_test", type=int, default=1000, help="Dev/test pairs decoded."
    )
    parser.add_argument("--beam_width", type=int, default=5, help="Beam width.")
    parser.add_argument(
        "--max_decode_length",
        type=int,
        default=40,
        help="Decode steps at most, in both systems (default 40, twice the "
        "mean synthetic sentence).",
    )
    parser.add_argument("--source", help="Training source file (else synthetic).")
    parser.add_argument("--target", help="Training target file.")
    parser.add_argument(
        "--vocab", help="Vocabulary (one token per line); default: built from data."
    )
    parser.add_argument("--test_source", help="Dev/test sources (else held out).")
    parser.add_argument("--test_target", help="Dev/test targets.")
    synthetic_data.add_corpus_flags(parser, num_examples=5000)
    parser.add_argument(
        "--systems",
        default="ours,opennmt",
        help="Which systems to run (ours, opennmt or both).",
    )
    parser.add_argument(
        "--venv_dir", default=default_venv_dir(), help="The OpenNMT-tf venv (cached)."
    )
    parser.add_argument(
        "--venv_python", help="Python 3.8-3.11 to create the venv with."
    )
    parser.add_argument(
        "--opennmt_python",
        help="Use this interpreter (with opennmt-tf installed) instead of the venv.",
    )
    parser.add_argument(
        "--reinstall_venv", action="store_true", help="Recreate the venv."
    )
    parser.add_argument(
        "--profile_dir",
        help="Also trace a few train steps and beam-search batches of each "
        "system here and print the top ops.",
    )
    parser.add_argument(
        "--skip_inference",
        action="store_true",
        help="Only train (e.g. a longer run comparing dev losses).",
    )
    parser.add_argument(
        "--keep_work_dir", action="store_true", help="Keep the corpus, logs, models."
    )
    parser.add_argument("--json", help="Also write all results to this JSON file.")
    return parser


def _validate(args):
    for flag in ("steps", "warmup", "repeats", "batch_size", "infer_batch_size"):
        if getattr(args, flag) < 1:
            raise BenchmarkError(f"--{flag} must be at least 1.")
    if args.num_test < 1 or args.max_decode_length < 1 or args.beam_width < 1:
        raise BenchmarkError(
            "--num_test, --max_decode_length and --beam_width must be positive."
        )
    if args.learning_rate is not None and args.learning_rate <= 0:
        raise BenchmarkError("--learning_rate must be positive.")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or any(s not in SYSTEMS for s in systems):
        raise BenchmarkError(
            f"--systems takes ours, opennmt or both (comma-separated); got "
            f"{args.systems!r}."
        )
    if args.opennmt_python and not os.path.isfile(args.opennmt_python):
        raise BenchmarkError(
            f"--opennmt_python {args.opennmt_python}: no such file; give the "
            "python of an environment with opennmt-tf installed."
        )
    return [s for s in SYSTEMS if s in systems]


def run_benchmark(args):
    systems = _validate(args)
    settings = nmt_small_settings()
    if args.learning_rate:
        settings["learning_rate"] = args.learning_rate
    beam_widths = [1] + ([args.beam_width] if args.beam_width > 1 else [])
    work_dir = tempfile.mkdtemp(prefix="compare_opennmt_")
    keep_work_dir = args.keep_work_dir
    try:
        # The corpus first: a wrong path fails before any installing.
        paths, corpus_line = prepare_corpus(args, work_dir)
        opennmt_python = None
        if "opennmt" in systems:
            if args.opennmt_python:
                opennmt_python = args.opennmt_python
                if _check_opennmt(opennmt_python) is None:
                    raise BenchmarkError(
                        f"--opennmt_python {opennmt_python} cannot import opennmt; "
                        f"install {' '.join(OPENNMT_REQUIREMENTS)} there."
                    )
            else:
                opennmt_python = ensure_opennmt_venv(
                    args.venv_dir, args.venv_python, args.reinstall_venv
                )
        print(corpus_line)
        print(
            f"nmt_small, batch {args.batch_size}, {args.warmup} warm-up + "
            f"{args.steps} timed steps per run, learning rate "
            f"{settings['learning_rate']:g}, Adam epsilon "
            f"{settings['adam_epsilon']:g}, clip {settings['clip_gradients']:g}; "
            f"{args.repeats} round(s), systems alternating; {common.load_at_start()}",
            flush=True,
        )
        train_runs = {s: [] for s in systems}
        infer_runs = {s: [] for s in systems}
        model_dirs = {}
        for index in range(args.repeats):
            order = systems if index % 2 == 0 else systems[::-1]
            for system in order:
                model_dir = os.path.join(work_dir, f"model_{system}_{index}")
                os.makedirs(model_dir, exist_ok=True)
                spec = {
                    "round": index,
                    "source": paths["source"],
                    "target": paths["target"],
                    "dev_source": paths["test_source"],
                    "dev_target": paths["test_target"],
                    "vocab": paths["vocab" if system == "ours" else "onmt_vocab"],
                    "batch_size": args.batch_size,
                    "warmup": args.warmup,
                    "steps": args.steps,
                    "seed": args.seed,
                    "shuffle_buffer_size": 10000,
                    "model_dir": model_dir,
                    **settings,
                }
                if args.profile_dir and index == 0:
                    spec["profile_dir"] = os.path.join(
                        args.profile_dir, f"{system}_train"
                    )
                result = run_child(system, "train", spec, work_dir, opennmt_python)
                train_runs[system].append(result)
                model_dirs.setdefault(system, (model_dir, result.get("checkpoint")))
                print(
                    f"  round {index + 1} train {LABELS[system]}: "
                    f"{result['target_tokens'] / result['seconds']:.0f} tgt tok/s, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB, dev loss "
                    f"{result['dev_loss']:.4f}, child {result['process_wall_s']:.0f}s",
                    flush=True,
                )
        infer_repeats = 0 if args.skip_inference else args.infer_repeats or args.repeats
        for index in range(infer_repeats):
            order = systems if index % 2 == 0 else systems[::-1]
            for system in order:
                model_dir, checkpoint = model_dirs[system]
                spec = {
                    "round": index,
                    "source": paths["test_source"],
                    "vocab": paths["vocab" if system == "ours" else "onmt_vocab"],
                    "model_dir": model_dir,
                    "checkpoint": checkpoint,
                    "batch_size": args.infer_batch_size,
                    "beam_widths": beam_widths,
                    "max_decode_length": args.max_decode_length,
                    "seed": args.seed,
                    "profile_batches": 3,
                }
                if args.profile_dir and index == 0:
                    spec["profile_dir"] = os.path.join(
                        args.profile_dir, f"{system}_beam"
                    )
                result = run_child(system, "infer", spec, work_dir, opennmt_python)
                infer_runs[system].append(result)
                rates = ", ".join(
                    f"{_decoder_name(d['beam_width'])}"
                    f" {d['sentences'] / d['seconds']:.1f} sent/s"
                    for d in result["decoders"]
                )
                print(
                    f"  round {index + 1} infer {LABELS[system]}: {rates}, peak RSS "
                    f"{result['peak_rss_mb']:.0f} MB, child "
                    f"{result['process_wall_s']:.0f}s",
                    flush=True,
                )
    except ChildFailed:
        keep_work_dir = True  # its log is there
        raise
    finally:
        if keep_work_dir:
            print(f"work directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    train = {s: summarize_training(train_runs[s]) for s in systems}
    infer = {}
    if infer_repeats:
        infer = {
            s: {w: summarize_inference(infer_runs[s], w) for w in beam_widths}
            for s in systems
        }
    load_end = common.load_average()
    print()
    print(
        f"Training (nmt_small, batch {args.batch_size}, {args.steps} timed steps "
        f"after {args.warmup} warm-up; median of {args.repeats}):"
    )
    print(training_table(train))
    print()
    if infer:
        print(
            f"Inference ({args.num_test} test sentences at batch "
            f"{args.infer_batch_size}, at most {args.max_decode_length} steps; "
            f"median of {infer_repeats}):"
        )
        print(inference_table(infer, beam_widths))
        print()
    for system in systems:
        s = train[system]
        low, high = s["spread"]
        print(
            f"{LABELS[system]}: tgt tok/s over rounds {low:.0f}-{high:.0f}; first "
            f"step (tracing) {s['first_step_s']:.1f}s; mean target length "
            f"{s['mean_target_len']:.1f} tokens; train loss at step "
            f"{s['global_step']}: {s['train_loss']:.4f}; dev loss over rounds "
            f"{s['dev_loss_range'][0]:.4f}-{s['dev_loss_range'][1]:.4f}"
        )
    for system in systems:
        run = train_runs[system][0]
        engine = f"TensorFlow {run.get('tf_version')}"
        if system == "opennmt":
            engine = f"OpenNMT-tf {run.get('opennmt_version')} on " + engine
        print(f"{LABELS[system]}: {engine}")
    lines = target_lines(train, infer, beam_widths)
    if lines:
        print("Targets of issue 7:")
        print("\n".join(lines))
    print(
        "'ended': sentences that produced end-of-sentence before the cap "
        "(others cost the full --max_decode_length steps); out tokens include "
        "end-of-sentence; dev loss = summed token cross-entropy / target tokens "
        f"(end-of-sentence included) on the {args.num_test} test pairs."
    )
    if "opennmt" in systems and "ours" in systems:
        print()
        print("Where the two architectures differ (everything else matches):")
        for item in ARCHITECTURE_DIFFERENCES:
            print(f"- {item}")
    print()
    cpus = os.cpu_count() or 1
    busy = (
        " - the machine is shared/busy: wall-clock figures are noisy"
        if max(load_end, 0) > cpus
        else ""
    )
    print(common.load_at_end(load_end, with_cpus=True) + busy)
    if args.profile_dir:
        print()
        for system in systems:
            beam = infer_runs[system][0]["decoders"][-1] if infer else {}
            for kind, units in (
                (
                    "train",
                    (
                        train_runs[system][0].get("profile_padded"),
                        "padded targets",
                        1000,
                    ),
                ),
                ("beam", (beam.get("profile_batch_steps"), "batch-steps", 1)),
            ):
                if kind == "beam" and not infer:
                    continue
                print_profile(
                    f"{LABELS[system]} {kind}",
                    summarize_trace(os.path.join(args.profile_dir, f"{system}_{kind}")),
                    units,
                )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "args": vars(args),
                    "train_runs": train_runs,
                    "infer_runs": infer_runs,
                    "train": train,
                    "infer": {
                        s: {str(w): v for w, v in d.items()} for s, d in infer.items()
                    },
                },
                out,
                indent=2,
            )
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return run_benchmark(args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
