"""What the benchmark scripts share: clocks, memory, corpora, tables,
child processes and the machine-load lines around the figures.

`opennmt_runner.py` imports this module inside the OpenNMT-tf virtual
environment (Python 3.8+, TensorFlow 2.13, no `seq2seq` package), so it
imports nothing but the standard library at module level; the helpers that
need `seq2seq` or the synthetic corpus import them when called.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchmarkError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


class ChildFailed(BenchmarkError):
    """A measuring process failed; its log is in the work directory.

    Attributes:
      returncode: The process's exit status.
    """

    def __init__(self, message, returncode=None):
        super().__init__(message)
        self.returncode = returncode


# ---------------------------------------------------------- clocks, memory


class Stopwatch:
    """Wall-clock and processor time (all threads of this process) since it
    was created."""

    def __init__(self):
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def seconds(self):
        """Wall-clock seconds elapsed."""
        return time.perf_counter() - self._wall

    def cpu_seconds(self):
        """Processor seconds this process used."""
        return time.process_time() - self._cpu


def peak_rss_mb(usage=None):
    """Peak resident memory in MiB of a `resource.struct_rusage` (by default
    this process's own)."""
    if usage is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return usage.ru_maxrss / scale


def resident_split_mb(status_path="/proc/self/status"):
    """This process's resident memory now, split by kind, in MiB: `anon`
    (heap, arenas, tensors: what the program allocated) and `file` (mapped
    files: mostly the shared libraries' code and data, TensorFlow's above
    all). An empty dict where the kernel does not report them (not Linux).
    """
    split = {}
    try:
        with open(status_path, encoding="utf-8", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    split[key[3:].lower()] = int(value.split()[0]) / 1024.0
    except OSError:
        return {}
    return split


def count_parameters(variables):
    """The number of weights in a list of variables."""
    total = 0
    for variable in variables:
        size = 1
        for dim in variable.shape:
            size *= int(dim)
        total += size
    return total


# ------------------------------------------------------------- statistics


def median(values):
    """The median of a list of numbers; NaN for an empty one."""
    return statistics.median(values) if values else float("nan")


def middle(items, key=None, upper=False):
    """The item in the middle of `items` ordered by `key`, not an average:
    for an even count the lower of the two middle ones (the upper one with
    `upper=True`)."""
    ordered = sorted(items, key=key)
    return ordered[len(ordered) // 2 if upper else (len(ordered) - 1) // 2]


def number_list(text, flag, convert=int, minimum=1, description=None):
    """Parses a comma-separated flag value such as `"32,64"`.

    Args:
      text: The flag's value.
      flag: The flag's name, for the message.
      convert: `int` or `float`.
      minimum: The smallest value allowed.
      description: What the flag takes, for the message (default:
        "positive integers like 32,64").

    Raises:
      BenchmarkError: `text` holds no number, something else, or a number
        below `minimum`.
    """
    try:
        values = [convert(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        description = description or "positive integers like 32,64"
        raise BenchmarkError(f"--{flag} takes {description}; got {text!r}.")
    return values


def count_ended(ids, lengths, end_id):
    """How many decoded outputs end with SEQUENCE_END rather than at the
    length cap.

    Args:
      ids: [batch, steps] predicted ids (numpy).
      lengths: [batch] output lengths, SEQUENCE_END included (numpy).
      end_id: The id of SEQUENCE_END.
    """
    import numpy as np

    if ids.shape[1] == 0:
        return 0
    last = ids[np.arange(len(lengths)), np.clip(lengths - 1, 0, ids.shape[1] - 1)]
    return int(np.sum((lengths > 0) & (last == end_id)))


# ------------------------------------------------------------ the machine


def load_average():
    """The one-minute load average."""
    return os.getloadavg()[0]


def load_at_start():
    """`"2 CPUs, load average 1.23 at start"`."""
    return f"{os.cpu_count()} CPUs, load average {load_average():.2f} at start"


def load_at_end(load=None, with_cpus=False):
    """`"load average 1.23 at end"` (now, unless `load` is given), with
    `" on 2 CPUs"` appended if `with_cpus`."""
    load = load_average() if load is None else load
    cpus = f" on {os.cpu_count() or 1} CPUs" if with_cpus else ""
    return f"load average {load:.2f} at end{cpus}"


def device_description():
    """What TensorFlow runs on: the GPUs it sees, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU ({os.cpu_count()} cores)"
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return f"{len(gpus)} GPU(s): {', '.join(names)}"


# ----------------------------------------------------------------- tables


def format_table(rows, align="left"):
    """Rows of strings (the first is the header) as a Markdown table.

    Args:
      rows: A list of lists of str.
      align: "left", or "right" (cells padded on the left and the rule
        marked `---:`).
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = align == "right"

    def line(cells):
        padded = (c.rjust(w) if right else c.ljust(w) for c, w in zip(cells, widths))
        return "| " + " | ".join(padded) + " |"

    if right:
        rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    else:
        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), rule] + [line(r) for r in rows[1:]])


def results_table(results, columns):
    """Result dicts as a right-aligned Markdown table.

    Args:
      results: A list of dicts.
      columns: `(title, key, format)` triples, e.g. `("ms/step",
        "ms_per_step", "{:.1f}")`.
    """
    rows = [[title for title, _, _ in columns]]
    rows += [[fmt.format(r[key]) for _, key, fmt in columns] for r in results]
    return format_table(rows, align="right")


# ------------------------------------------------------ corpus and model


def write_corpus(args, directory, **changes):
    """Writes the synthetic corpus the corpus flags in `args` describe (see
    `synthetic_data.add_corpus_flags`), with `changes` to its arguments;
    returns what `write_synthetic_corpus` returns."""
    from benchmarks import synthetic_data

    kwargs = synthetic_data.corpus_kwargs(args)
    kwargs.update(changes)
    return synthetic_data.write_synthetic_corpus(directory, **kwargs)


def write_test_corpus(args, directory, num_examples):
    """A held-out synthetic set of the same task as `write_corpus(args, ...)`:
    another seed (`--seed` + 1), the same dictionary."""
    return write_corpus(args, directory, num_examples=num_examples, seed=args.seed + 1)


def config_path(name):
    """The YAML file of a config given by name (`nmt_small`) or path.

    Raises:
      SystemExit: There is no such config.
    """
    if os.path.isfile(name):
        return name
    path = os.path.join(REPO_ROOT, "example_configs", f"{name}.yml")
    if not os.path.isfile(path):
        raise SystemExit(
            f"error: config {name!r} not found: give a name in example_configs/ "
            "(e.g. nmt_small) or the path of a YAML file."
        )
    return path


def load_model_config(name, vocab_path, overrides=None, vocab_target=None):
    """Reads `model` and `model_params` of a config and points it at the
    vocabularies (`vocab_path` for both sides unless `vocab_target` is given),
    then applies `overrides`.

    Returns:
      `(model_class, model_params)`.
    """
    from seq2seq.configurable import deep_merge, load_yaml_file

    config = load_yaml_file(config_path(name)) or {}
    model_class = config.get("model") or "AttentionSeq2Seq"
    params = deep_merge(
        config.get("model_params") or {},
        {"vocab_source": vocab_path, "vocab_target": vocab_target or vocab_path},
        overrides or {},
    )
    return model_class, params


def text_pipeline(source, target, mode):
    """A `ParallelTextInputPipeline` over one source file (and target file,
    unless None); outside training it reads the files once, in order."""
    from seq2seq.configurable import ModeKeys
    from seq2seq.data import input_pipeline

    files = {"source_files": [source]}
    if target:
        files["target_files"] = [target]
    kwargs = {} if mode == ModeKeys.TRAIN else {"shuffle": False, "num_epochs": 1}
    return input_pipeline.make_input_pipeline_from_def(
        {"class": "ParallelTextInputPipeline", "params": files}, mode, **kwargs
    )


def compiled_train_step(trainer):
    """Readies a `Trainer` the way `Trainer.train()` does, without training.

    Draws the first batch from the Trainer's own input iterator (a second
    `iter()` would start a second prefetching pipeline competing for the
    CPU), builds the variables and optimizer slots on it, and compiles the
    train step for the dataset's (fully dynamic) spec.

    Returns:
      `(iterator, first_batch, step)`: `step(batch)` runs one update on a
      batch and returns the step's outputs (`loss`, ...).
    """
    from seq2seq.training.train_step import ID_KEYS

    iterator = trainer._iterator
    first = next(iterator)
    trainer._build(first)
    train_step = trainer._make_train_step(trainer.train_dataset.element_spec)
    keys = [k for k in ID_KEYS if k in first]

    def step(batch):
        return train_step({k: batch[k] for k in keys})

    return iterator, first, step


# -------------------------------------------------------- child processes


def infer_command(
    model_dir, source, output, model_params, batch_size, checkpoint=None, window=None
):
    """`bin/infer.py` decoding the file `source` into `output` as a user
    runs it (a module of this repository, for `subprocess` with `cwd` at
    `REPO_ROOT`, so that this tree's code runs even where an editable
    install points at another checkout); returns `(argv, env)`.

    Args:
      model_dir: The trained model's directory.
      source: A file of tokenized sentences.
      output: The file `DecodeText` writes.
      model_params: Dict of `--model_params` overrides.
      batch_size: `--batch_size`.
      checkpoint: `--checkpoint_path`; None: the latest.
      window: `--sort_window`; None: its default.
    """
    command = [sys.executable, "-m", "bin.infer", "--model_dir=" + model_dir]
    if checkpoint:
        command.append("--checkpoint_path=" + checkpoint)
    command.append(f"--batch_size={batch_size}")
    if window is not None:
        command.append(f"--sort_window={window}")
    command += [
        "--progress=false",
        "--model_params=" + json.dumps(model_params),
        "--tasks="
        + json.dumps([{"class": "DecodeText", "params": {"output": output}}]),
        "--input_pipeline="
        + json.dumps(
            {
                "class": "ParallelTextInputPipeline",
                "params": {"source_files": [source]},
            }
        ),
    ]
    return command, dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def run_child(command, spec, work_dir, tag, description, env=None, log_tail=25):
    """Runs one measurement in a fresh process; returns its result dict
    (needs Python 3.9+, unlike the rest of this module).

    Writes `spec` to `<work_dir>/<tag>.spec.json` and runs `command + [SPEC,
    RESULT]` from the repository root, its output going to
    `<work_dir>/<tag>.log`; the child writes its result dict as JSON to
    RESULT (see `child_main`). The result gets `peak_rss_mb` and
    `process_cpu_s` of that very process (from `os.wait4`) and
    `process_wall_s`.

    Args:
      command: The child's command line, without the two paths.
      spec: A JSON-serialisable dict for the child.
      work_dir: Where the spec, result and log files go.
      tag: Their base name.
      description: What runs, for the error message ("ours train").
      env: The child's environment (default: this one's).
      log_tail: On failure, how many last lines of the log to print on
        stderr (None: all of it).

    Raises:
      ChildFailed: The child exited with an error or wrote no result.
    """
    spec_path = os.path.join(work_dir, tag + ".spec.json")
    result_path = os.path.join(work_dir, tag + ".result.json")
    log_path = os.path.join(work_dir, tag + ".log")
    with open(spec_path, "w", encoding="utf-8") as out:
        json.dump(spec, out, indent=2)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command + [spec_path, result_path],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0 or not os.path.isfile(result_path):
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().strip().splitlines()
        if log_tail is not None:
            lines = lines[-log_tail:]
        sys.stderr.write("\n".join(lines) + "\n")
        raise ChildFailed(
            f"the {description} run failed (exit {process.returncode}); "
            f"its log is {log_path} (last lines above).",
            process.returncode,
        )
    with open(result_path, encoding="utf-8") as handle:
        result = json.load(handle)
    result.update(
        peak_rss_mb=peak_rss_mb(usage),
        process_cpu_s=usage.ru_utime + usage.ru_stime,
        process_wall_s=elapsed,
    )
    return result


def child_main(argv, tasks, usage):
    """The child side of `run_child`: `argv` is `[TASK, SPEC, RESULT]`.

    Reads the spec, runs `tasks[TASK](spec)` and writes the dict it returns
    to RESULT as JSON.

    Args:
      argv: The arguments.
      tasks: A dict task name -> function of the spec dict.
      usage: The line printed (on stderr) for wrong arguments.

    Returns:
      The exit status: 0, or 2 for wrong arguments.
    """
    if len(argv) != 3 or argv[0] not in tasks:
        sys.stderr.write(usage + "\n")
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    result = tasks[argv[0]](spec)
    with open(argv[2], "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    return 0


# ------------------------------------------------------ budgeted training


def budget_training_loop(spec, step, save):
    """Trains for a wall-clock budget (or a number of steps), saving
    checkpoints at given training times; shared by both systems' children.

    The clock counts the training steps only (the first, tracing, one
    included); saving a checkpoint is not counted.

    Args:
      spec: A dict with `budget_s` (seconds of training; None or 0: no
        limit) and/or `max_steps` (None or 0: no limit; one of the two must
        be set), and optionally `checkpoint_times` (increasing seconds of
        training time at which to save; the last checkpoint is written when
        the budget runs out even if the list ends earlier).
      step: A function running one training step; returns `(loss,
        target_tokens)` of that step.
      save: `save(index)` writes checkpoint number `index` and returns its
        path.

    Returns:
      A dict: `steps`, `seconds`, `cpu_seconds` (of the steps), `target_tokens`,
      `first_step_s`, `losses` (every step's training loss), `marks` (one
      dict per checkpoint: `index`, `seconds`, `step`, `checkpoint`,
      `train_loss` averaged over the steps since the previous mark) and
      `rss_end_mb` (`resident_split_mb()` after the last step).
    """
    budget = spec.get("budget_s") or 0
    max_steps = spec.get("max_steps") or 0
    if not budget and not max_steps:
        raise ValueError("budget_training_loop needs budget_s or max_steps")
    times = list(spec.get("checkpoint_times") or [])
    losses, marks = [], []
    tokens = 0
    seconds = cpu_seconds = 0.0
    first_step_s = None

    def mark():
        since = marks[-1]["step"] if marks else 0
        recent = losses[since:] or losses[-1:]
        marks.append(
            {
                "index": len(marks),
                "seconds": seconds,
                "step": len(losses),
                "checkpoint": save(len(marks)),
                "train_loss": sum(recent) / len(recent),
            }
        )

    while True:
        clock = Stopwatch()
        loss, step_tokens = step()
        seconds += clock.seconds()
        cpu_seconds += clock.cpu_seconds()
        if first_step_s is None:
            first_step_s = seconds
        losses.append(loss)
        tokens += step_tokens
        if len(losses) % 100 == 0:  # progress, in the child's log
            print(f"step {len(losses)}: loss {loss:.4f}, {seconds:.0f}s", flush=True)
        done = (budget and seconds >= budget) or (
            max_steps and len(losses) >= max_steps
        )
        if times and seconds >= times[0] and not done:
            # One checkpoint for every time this step passed (a slow first,
            # tracing, step may pass several).
            while times and seconds >= times[0]:
                times.pop(0)
            mark()
        if done:
            if spec.get("checkpoint_times") is not None or spec.get("save_final"):
                mark()
            break
    return {
        "steps": len(losses),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "target_tokens": tokens,
        "first_step_s": first_step_s,
        "losses": losses,
        "marks": marks,
        "rss_end_mb": resident_split_mb(),
    }
