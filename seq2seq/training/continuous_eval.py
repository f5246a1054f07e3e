"""`--schedule continuous_eval`: evaluate each checkpoint as training writes it.

A second process beside a training run (`--schedule train` on the same
`--output_dir`, or any schedule) polls the directory and evaluates every new
checkpoint once, writing the dev results to `output_dir/eval` as an
in-process evaluation would. It stops when a checkpoint reaches
`train_steps`, or when `timeout_secs` pass without a new checkpoint.

As in the original's `Experiment.continuous_eval`, polls (and the starts of
evaluations) are at least `throttle_secs` apart, and each poll takes the
newest intact checkpoint: checkpoints saved and superseded while an
evaluation ran are skipped, so a slow evaluation never falls behind.
"""

import time

from absl import logging

from seq2seq import run_dir
from seq2seq.training import stop_signals


def new_checkpoints(
    directory,
    throttle_secs=60.0,
    timeout_secs=None,
    clock=time.monotonic,
    sleep=stop_signals.sleep,
):
    """Yields each new checkpoint of `directory` as it appears.

    A checkpoint is new when its number (the global step) is higher than
    that of the last one yielded; the caller evaluates it before the next
    poll. A checkpoint whose files are incomplete or damaged is not yielded
    (a later poll sees it once it is whole).

    Args:
      directory: The training output directory.
      throttle_secs: Seconds from one poll (or the start of one evaluation)
        to the next.
      timeout_secs: Stop after this many seconds without a new checkpoint,
        counted from the start or from the end of the last evaluation; None
        waits forever.
      clock: Returns the time in seconds (tests pass a fake one).
      sleep: Sleeps for a number of seconds (tests pass a fake one).

    Yields:
      Checkpoint prefixes, e.g. `directory/ckpt-1500`, in increasing order.
    """
    throttle_secs = max(0.0, float(throttle_secs or 0.0))
    last_number = -1
    waiting_since = clock()
    while True:
        polled_at = clock()
        prefix = _newest_whole(directory)
        if prefix is not None and run_dir.checkpoint_number(prefix) > last_number:
            last_number = run_dir.checkpoint_number(prefix)
            yield prefix
            waiting_since = clock()
        elif timeout_secs is not None and clock() - waiting_since >= timeout_secs:
            logging.info(
                "continuous_eval: no new checkpoint in %s for %.0fs; stopping.",
                directory,
                clock() - waiting_since,
            )
            return
        wait = throttle_secs - (clock() - polled_at)
        if timeout_secs is not None:
            # Wake up in time to stop when the timeout passes.
            wait = min(wait, waiting_since + timeout_secs - clock())
        if wait > 0:
            sleep(wait)


def _newest_whole(directory):
    """The newest intact checkpoint of `directory`, or None (none yet, or
    only ones still being written)."""
    try:
        return run_dir.newest_intact(directory, warn=False)
    except run_dir.CheckpointDamagedError:
        return None


def evaluate_continuously(
    evaluate_checkpoint,
    directory,
    train_steps=None,
    throttle_secs=60.0,
    timeout_secs=None,
    clock=time.monotonic,
    sleep=stop_signals.sleep,
):
    """Evaluates each new checkpoint of `directory` once (see `new_checkpoints`).

    Args:
      evaluate_checkpoint: `prefix -> (step, results)`: restores and
        evaluates one checkpoint (e.g. `Trainer.evaluate_latest`).
      directory: The training output directory.
      train_steps: Stop after evaluating a checkpoint at this step or later;
        None: no limit.
      throttle_secs, timeout_secs, clock, sleep: As for `new_checkpoints`.

    Returns:
      A list of `(step, results)`, one per evaluated checkpoint.
    """
    evaluated = []
    for prefix in new_checkpoints(
        directory, throttle_secs, timeout_secs, clock=clock, sleep=sleep
    ):
        try:
            step, results = evaluate_checkpoint(prefix)
        except run_dir.CheckpointDamagedError as err:
            # Deleted by keep_checkpoint_max, or damaged, after it was found.
            logging.warning("continuous_eval: skipping %s: %s", prefix, err)
            continue
        evaluated.append((step, results))
        if train_steps is not None and step >= train_steps:
            logging.info(
                "continuous_eval: step %d reaches train_steps=%d; done.",
                step,
                train_steps,
            )
            break
    return evaluated
