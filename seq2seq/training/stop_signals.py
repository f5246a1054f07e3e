"""SIGINT and SIGTERM stop training after the current step, not within it.

While `StopSignals.handling()` is active (in the main thread), SIGINT and
SIGTERM are remembered. Outside a train step or a save (`deferring` is
false, e.g. during an evaluation) the signal raises `Interrupted` at once;
within one it is raised by the next `check()`, when the step or save is done,
so that the saved checkpoint and the data position stay consistent. A second
signal while stopping is logged and ignored.

Waits that should end on a signal use `sleep`, not `time.sleep`.
"""

import contextlib
import signal
import time

from absl import logging

from seq2seq.errors import Interrupted


class StopSignals:
    """The stop signal of a training run, if one arrived.

    Args:
      step_fn: Returns the global step (for the log line).
    """

    def __init__(self, step_fn):
        self._step_fn = step_fn
        # The number of the signal received, or None.
        self.signum = None
        # Whether a signal now only stops training at the next `check()`.
        self.deferring = False

    @contextlib.contextmanager
    def handling(self):
        """Routes SIGINT and SIGTERM to this object for the block (where this
        is the main thread; signals can only be handled there)."""
        self.signum = None
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:
            pass  # Not the main thread.
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def deferred(self):
        """Defers signals within the block (e.g. a save), then restores the
        previous setting."""
        previous, self.deferring = self.deferring, True
        try:
            yield
        finally:
            self.deferring = previous

    def _on_signal(self, signum, frame):
        del frame
        name = signal.Signals(signum).name
        if self.signum is not None:
            logging.warning("%s: already stopping; saving a checkpoint first.", name)
            return
        self.signum = signum
        logging.warning(
            "%s at step %d: stopping after saving a checkpoint.", name, self._step_fn()
        )
        if not self.deferring:
            raise Interrupted(signum)

    def check(self):
        """Raises `Interrupted` when a stop signal has arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)


# Longest slice of `sleep`: the delay before a signal caught by another
# thread is handled.
_SLICE_SECS = 0.25


def sleep(seconds):
    """Sleeps for `seconds`, handling SIGINT and SIGTERM within a quarter of
    a second.

    The kernel may deliver a process signal to any thread, e.g. one of
    TensorFlow's. Python then runs the handler in the main thread only when
    that thread next executes bytecode, and a `time.sleep(3600)` there is not
    interrupted: the signal would wait for the hour. Sleeping in short
    slices bounds that wait.
    """
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _SLICE_SECS))
