"""What every command-line entry point shares: user errors, devices, exit."""

import gc
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from seq2seq.errors import ConfigError, Interrupted, UserError  # noqa: E402


class _QuietTensorFlowInfo:
    """Drops TensorFlow's own INFO lines (checkpoint sharding, ...) and its
    per-variable warnings about checkpoint values left unrestored (a training
    checkpoint holds optimizer slots that inference does not restore), so the
    log shows this project's progress lines and errors."""

    _NOISE = (
        "Value in checkpoint could not be found",
        "Detecting that an object or model or tf.train.Checkpoint is being deleted",
    )

    def filter(self, record):
        if "/tensorflow/" not in record.pathname:
            return True
        if record.levelno <= 20:
            return False
        message = str(record.msg)
        return not message.startswith(self._NOISE)


def _raise_interrupted(signum, frame):
    del frame
    raise Interrupted(signum)


def run(main):
    """Runs an absl `main`, turning a `UserError` into one line and exit code 2.

    SIGTERM is raised as an `Interrupted` exception, like SIGINT's
    `KeyboardInterrupt`, so that cleanups run (the training lock is released,
    the trainer saves a checkpoint). An interrupt prints one line,
    `interrupted: <what was saved>`, and exits with 128 + the signal number
    (130 for SIGINT, 143 for SIGTERM). Anything else is a bug and keeps its
    traceback. After a `main` that returns, the exit skips the interpreter's
    last garbage collection (`_skip_final_collection`).
    """

    def guarded(argv):
        signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            if len(argv) > 1:
                # No entry point takes positional arguments: a stray one is
                # most often the rest of an unquoted flag value.
                raise UserError(
                    f"unexpected argument {argv[1]!r}: every input is a flag "
                    "(--name=value); quote values that contain spaces, e.g. "
                    "--model_params 'embedding.dim: 8'."
                )
            result = main(argv)
            _skip_final_collection()
            return result
        except UserError as err:
            logging.flush()
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt as err:
            if not isinstance(err, Interrupted):
                err = Interrupted(signal.SIGINT)
            logging.flush()
            print(f"interrupted: {err}", file=sys.stderr, flush=True)
            sys.exit(err.exit_code)

    logging.get_absl_handler().addFilter(_QuietTensorFlowInfo())
    app.run(guarded, flags_parser=_parse_flags)


def _skip_final_collection():
    """Takes every live object out of the cyclic garbage collector's reach.

    At exit Python collects every object still alive. With TensorFlow loaded
    that takes about a second, an eighth of a greedy `bin/infer.py` run over
    1000 sentences (`benchmarks/real_corpus_compare.py`); after `gc.freeze()`
    it takes about 0.1 s. The cost: objects in reference cycles are then not
    finalized. So it runs only once `main` has returned, when every output,
    checkpoint and summary writer is closed or flushed; atexit handlers and
    the flush of stdout and stderr still run.
    """
    logging.flush()
    gc.freeze()


def _parse_flags(argv):
    """Parses the command line like absl, but a bad flag (unknown name, a
    value of the wrong type) is a user error: one line and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        lines = (line.strip() for line in str(err).splitlines())
        message = "; ".join(line for line in lines if line).rstrip(" .?")
        print(
            f"error: {message}. Run with --helpshort to list the flags.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)


def config_value(flag, value):
    """A config file's value for a number or boolean flag, parsed as the same
    value on the command line would be (so `train_steps: abc` is an error)."""
    if value is None or flag.flag_type() not in ("int", "float", "bool"):
        return value
    try:
        return flag.parser.parse(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key '{flag.name}': {value!r} is not a valid "
            f"{flag.flag_type()} for --{flag.name}."
        ) from None


def check_counts(values, at_least):
    """Rejects counting flags below their smallest valid value, before
    anything is written.

    Args:
      values: Flag name -> final value (None: unset, not checked).
      at_least: Flag name -> smallest valid value.
    """
    for name, least in at_least.items():
        value = values[name]
        if value is not None and value < least:
            raise ConfigError(f"--{name}={value} must be >= {least}.")


def configure_devices(allow_growth=False, memory_fraction=1.0, log_placement=False):
    """Applies the GPU flags before TensorFlow touches a device.

    Args:
      allow_growth: Allocate GPU memory on demand.
      memory_fraction: Cap each GPU at this fraction of its memory (< 1).
      log_placement: Log the device each op runs on.
    """
    import tensorflow as tf

    if log_placement:
        tf.debugging.set_log_device_placement(True)
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        if allow_growth or memory_fraction < 1.0:
            logging.info("No GPU found; GPU memory flags have no effect.")
        return
    for gpu in gpus:
        if allow_growth:
            tf.config.experimental.set_memory_growth(gpu, True)
        elif memory_fraction < 1.0:
            total_mb = _gpu_memory_mb(gpu)
            if total_mb is None:
                logging.warning("Cannot read %s's memory size; not capping it.", gpu)
                continue
            tf.config.set_logical_device_configuration(
                gpu,
                [
                    tf.config.LogicalDeviceConfiguration(
                        memory_limit=int(total_mb * memory_fraction)
                    )
                ],
            )
    logging.info("Using %d GPU(s)", len(gpus))


def _gpu_memory_mb(gpu):
    """Total memory of a physical GPU in MiB, from nvidia-smi when available."""
    import subprocess

    index = gpu.name.rsplit(":", 1)[-1]
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=memory.total",
                "--format=csv,noheader,nounits",
                "-i",
                index,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
