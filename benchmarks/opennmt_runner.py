"""The OpenNMT-tf side of `compare_opennmt.py`; runs in the OpenNMT-tf venv.

Never imported by this project: `compare_opennmt.py` runs it with the
interpreter of the separate virtual environment (OpenNMT-tf 2.32,
TensorFlow 2.13) as

    python opennmt_runner.py train SPEC.json RESULT.json
    python opennmt_runner.py infer SPEC.json RESULT.json

where SPEC.json holds the paths and settings (see `compare_opennmt.py`,
which writes it) and RESULT.json receives the figures. It drives
OpenNMT-tf through its Python API: the model of `opennmt_model.py`,
`model.initialize`, the inputter's `make_training_dataset` /
`make_inference_dataset`, `model.train` (loss, gradients, clipping by the
optimizer, update) compiled with `tf.function` on the dataset's element
spec, and `model.infer` compiled the way `opennmt.inference` compiles it.

`train`: `warmup` untimed steps (the first traces), then `steps` timed
steps; then the per-target-token loss on the dev set (dropout off), then a
checkpoint; optionally a profiler trace of a few more steps.
`train_budget`: trains for a wall-clock budget (or a number of steps) and
writes checkpoints at given times, for `real_corpus_compare.py`.
`infer`: for each beam width, one untimed batch (tracing, restoring), then
every sentence of the test file, timed; optionally a profiler trace of a
few beam-search batches.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# This directory, for the model file and `common.py` (which, unlike the
# rest of the benchmarks, imports only the standard library at module level).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import opennmt  # noqa: E402
import opennmt_model  # noqa: E402

# Resident memory of the interpreter with TensorFlow and OpenNMT-tf loaded,
# before any model exists.
tf.zeros([1]).numpy()
IMPORT_RSS_MB = common.peak_rss_mb()


def build_model(spec, params=None):
    """The model of `opennmt_model.py` (`spec["variant"]`: `ours`, the
    `NMTSmall` with our settings, by default; `defaults`, OpenNMT-tf's own
    defaults), initialized on the spec's vocabularies (`vocab`, or
    `vocab_source` and `vocab_target`)."""
    if spec.get("variant", "ours") == "defaults":
        model = opennmt_model.NMTSmallDefaults(
            dropout=spec.get("input_dropout", opennmt_model.INPUT_DROPOUT)
        )
    else:
        model = opennmt_model.NMTSmall(
            attention=spec.get("attention", "luong"),
            input_dropout=spec.get("input_dropout", opennmt_model.INPUT_DROPOUT),
        )
    data_config = {
        "source_vocabulary": spec.get("vocab_source", spec.get("vocab")),
        "target_vocabulary": spec.get("vocab_target", spec.get("vocab")),
        # Our sources end with SEQUENCE_END; OpenNMT-tf adds nothing to the
        # source unless asked.
        "source_sequence_controls": {"start": False, "end": True},
    }
    all_params = {
        # Per-target-token loss for training, as ours, unless the spec asks
        # for OpenNMT-tf's default (the summed loss over the sentences).
        "average_loss_in_time": spec.get("average_loss_in_time", True),
        "maximum_decoding_length": spec.get("max_decode_length", 250),
        "length_penalty": 0.0,
    }
    all_params.update(params or {})
    model.initialize(data_config, params=all_params)
    return model


def make_optimizer(spec):
    return tf.keras.optimizers.legacy.Adam(
        learning_rate=spec["learning_rate"],
        epsilon=spec["adam_epsilon"],
        global_clipnorm=spec["clip_gradients"],
    )


def dev_loss(model, spec):
    """Sum of token cross-entropies over the number of target tokens.

    The teacher-forced pass of `model.call` with `training=True` (which skips
    decoding) after every dropout rate is set to 0, and the loss of
    `model.compute_loss(..., training=False)`, which OpenNMT-tf normalises by
    the number of target tokens (`</s>` included, as our count).
    """
    opennmt.utils.misc.set_dropout(model, 0.0)
    dataset = model.examples_inputter.make_evaluation_dataset(
        spec["dev_source"], spec["dev_target"], spec["batch_size"]
    )

    @tf.function(input_signature=dataset.element_spec)
    def loss_fn(features, labels):
        outputs, _ = model(features, labels=labels, training=True)
        loss_sum, _, num_tokens = model.compute_loss(outputs, labels, training=False)
        return loss_sum, num_tokens

    total = tokens = 0.0
    for features, labels in dataset:
        loss_sum, num_tokens = loss_fn(features, labels)
        total += float(loss_sum)
        tokens += float(num_tokens)
    return total / max(tokens, 1.0), int(tokens)


def _training_setup(spec):
    """Model, optimizer, batch iterator and compiled train step of a spec;
    `length_bucket_width` (default: none) buckets the batches by length."""
    tf.keras.utils.set_random_seed(spec["seed"])
    model = build_model(spec)
    optimizer = make_optimizer(spec)
    dataset = model.examples_inputter.make_training_dataset(
        spec["source"],
        spec["target"],
        batch_size=spec["batch_size"],
        batch_type="examples",
        shuffle_buffer_size=spec["shuffle_buffer_size"],
        length_bucket_width=spec.get("length_bucket_width"),
        maximum_features_length=None,
        maximum_labels_length=None,
    )
    model.create_variables(optimizer=optimizer)

    @tf.function(input_signature=dataset.element_spec)
    def train_step(features, labels):
        return model.train(features, labels, optimizer)

    return model, optimizer, iter(dataset), train_step


def train(spec):
    clock = common.Stopwatch()
    model, optimizer, iterator, train_step = _training_setup(spec)
    build_s = clock.seconds()

    def run(num_steps):
        tokens = examples = padded = 0
        loss = None
        clock = common.Stopwatch()
        for _ in range(num_steps):
            features, labels = next(iterator)
            loss = train_step(features, labels)
            length = labels["length"].numpy()
            tokens += int(length.sum())
            examples += len(length)
            # Predicted positions the step computes, padding included.
            padded += len(length) * int(labels["ids_out"].shape[1])
        loss = float(loss)  # waits for the last step
        return {
            "seconds": clock.seconds(),
            "cpu_seconds": clock.cpu_seconds(),
            "target_tokens": tokens,
            "examples": examples,
            "padded_targets": padded,
            "steps": num_steps,
            "train_loss": loss,
        }

    first_step_s = run(1)["seconds"]
    if spec["warmup"] > 1:
        run(spec["warmup"] - 1)
    windows = [run(spec["steps"]) for _ in range(spec.get("windows", 1))]
    result = dict(
        common.middle(windows, key=lambda w: w["target_tokens"] / w["seconds"])
    )
    result.update(
        system="opennmt",
        windows=windows,
        train_loss=windows[-1]["train_loss"],
        global_step=int(optimizer.iterations.numpy()),
        parameters=common.count_parameters(model.trainable_variables),
        build_s=build_s,
        first_step_s=first_step_s,
        tf_version=tf.__version__,
        opennmt_version=opennmt.__version__,
        learning_rate=float(spec["learning_rate"]),
    )
    if spec.get("dev_source"):
        result["dev_loss"], result["dev_tokens"] = dev_loss(model, spec)
    checkpoint = tf.train.Checkpoint(model=model)
    result["checkpoint"] = checkpoint.write(os.path.join(spec["model_dir"], "ckpt"))
    if spec.get("profile_dir"):
        # After the dev loss and the checkpoint, which see exactly `warmup +
        # steps` updates. The step was traced with dropout on and is not
        # traced again, so `dev_loss` turning dropout off does not reach it.
        traced = []
        tf.profiler.experimental.start(spec["profile_dir"])
        for index in range(spec.get("profile_steps", 3)):
            with tf.profiler.experimental.Trace("benchmark_step", step_num=index, _r=1):
                traced.append(run(1))
        tf.profiler.experimental.stop()
        result["profile_tokens"] = sum(t["target_tokens"] for t in traced)
        result["profile_padded"] = sum(t["padded_targets"] for t in traced)
    result["peak_rss_self_mb"] = common.peak_rss_mb()
    result["import_rss_mb"] = IMPORT_RSS_MB
    return result


def train_budget(spec):
    """Trains for `budget_s` seconds of training time (or `max_steps` steps)
    and writes a checkpoint at each of `checkpoint_times` (seconds); see
    `common.budget_training_loop`."""
    clock = common.Stopwatch()
    model, optimizer, iterator, train_step = _training_setup(spec)
    build_s = clock.seconds()
    checkpoint = tf.train.Checkpoint(model=model)

    def step():
        features, labels = next(iterator)
        loss = train_step(features, labels)
        return float(loss), int(labels["length"].numpy().sum())

    def save(index):
        return checkpoint.write(os.path.join(spec["model_dir"], f"mark-{index}"))

    result = common.budget_training_loop(spec, step, save)
    result.update(
        system="opennmt",
        variant=spec.get("variant", "ours"),
        global_step=int(optimizer.iterations.numpy()),
        parameters=common.count_parameters(model.trainable_variables),
        build_s=build_s,
        tf_version=tf.__version__,
        opennmt_version=opennmt.__version__,
    )
    if spec.get("dev_source"):
        result["dev_loss"], result["dev_tokens"] = dev_loss(model, spec)
    result["peak_rss_self_mb"] = common.peak_rss_mb()
    result["import_rss_mb"] = IMPORT_RSS_MB
    return result


def infer(spec):
    """Decodes `source` with each beam width of `beam_widths`, from each
    checkpoint of `checkpoints` (default: `[checkpoint]`) in turn; with
    `predictions` (a list of paths, one per checkpoint) the outputs of
    checkpoint i at beam width w go to `predictions[i] + ".beam{w}"`, in
    input order. `length_bucket_width` (default: none, OpenNMT-tf's own
    default; its auto_config uses 5) batches by source length."""
    tf.keras.utils.set_random_seed(spec["seed"])
    model = build_model(spec)
    model.create_variables()
    checkpoints = spec.get("checkpoints") or [spec["checkpoint"]]
    outputs = spec.get("predictions") or [None] * len(checkpoints)
    tf.train.Checkpoint(model=model).read(checkpoints[0]).expect_partial()
    dataset = model.examples_inputter.make_inference_dataset(
        spec["source"],
        spec["batch_size"],
        length_bucket_width=spec.get("length_bucket_width"),
    )
    results = []
    for beam_width in spec["beam_widths"]:
        # The beam width is read when the decoding function is traced.
        model.params["beam_width"] = max(beam_width, 1)
        infer_fn = tf.function(model.infer, input_signature=(dataset.element_spec,))

        def decode(features, infer_fn=infer_fn, lines=None):
            predictions = infer_fn(features)
            length = predictions["length"].numpy()[:, 0]
            steps_run = predictions["tokens"].shape[-1]
            if lines is not None:
                tokens = predictions["tokens"].numpy()[:, 0]
                # Bucketed batches carry each sentence's input position.
                positions = features.get("index")
                positions = (
                    positions.numpy()
                    if positions is not None
                    else range(len(lines), len(lines) + len(tokens))
                )
                for position, row, n in zip(positions, tokens, length):
                    line = b" ".join(row[:n]).decode("utf-8", "replace")
                    lines.append((int(position), line))
            return length, steps_run

        for index, (path, output) in enumerate(zip(checkpoints, outputs)):
            tf.train.Checkpoint(model=model).read(path).expect_partial()
            clock = common.Stopwatch()
            if index == 0:
                decode(next(iter(dataset)))  # traces
            first_batch_s = clock.seconds()
            sentences = tokens = ended = batches = batch_steps = 0
            lines = [] if output else None
            clock = common.Stopwatch()
            for features in dataset:
                length, steps_run = decode(features, lines=lines)
                finished = length < steps_run
                batches += 1
                batch_steps += steps_run
                sentences += len(length)
                # `length` excludes </s>; count it, as our predicted_len does.
                tokens += int(length.sum() + finished.sum())
                ended += int(finished.sum())
            seconds = clock.seconds()
            cpu_seconds = clock.cpu_seconds()
            if output:
                with open(f"{output}.beam{beam_width}", "w", encoding="utf-8") as out:
                    out.writelines(line + "\n" for _, line in sorted(lines))
            results.append(
                {
                    "beam_width": beam_width,
                    "checkpoint": path,
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
            for index, features in enumerate(dataset.take(spec["profile_batches"])):
                with tf.profiler.experimental.Trace(
                    "benchmark_step", step_num=index, _r=1
                ):
                    traced_steps += decode(features)[1]
            tf.profiler.experimental.stop()
            results[-1]["profile_batch_steps"] = traced_steps
    return {
        "system": "opennmt",
        "decoders": results,
        "peak_rss_self_mb": common.peak_rss_mb(),
        "import_rss_mb": IMPORT_RSS_MB,
    }


def main(argv):
    """`opennmt_runner.py train|infer SPEC.json RESULT.json`."""
    return common.child_main(
        argv[1:],
        {"train": train, "train_budget": train_budget, "infer": infer},
        "usage: opennmt_runner.py train|train_budget|infer SPEC.json RESULT.json",
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
