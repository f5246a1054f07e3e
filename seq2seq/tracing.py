"""Per-thread switches that code reads while a `tf.function` is traced.

A switch changes what gets traced, not what runs: set it around the
tracing (`get_concrete_function`, the first call) of the function whose
graph should differ. Being per thread, it cannot leak into a function
traced concurrently by another thread (e.g. a `tf.distribute` replica or an
evaluation thread).
"""

import contextlib
import threading

__all__ = ["TraceSwitch", "tracing_for_xla", "xla_tracing"]


class TraceSwitch:
    """A boolean with a per-thread value and a default.

    Args:
      default: The value outside any `set` block.
    """

    def __init__(self, default=False):
        self._local = threading.local()
        self._default = bool(default)

    @property
    def value(self):
        """The value in effect in this thread."""
        return getattr(self._local, "value", self._default)

    @contextlib.contextmanager
    def set(self, enabled):
        """Sets the value in this thread for the duration of the block."""
        previous = self.value
        self._local.value = bool(enabled)
        try:
            yield
        finally:
            self._local.value = previous


_XLA_TRACING = TraceSwitch()


def xla_tracing(enabled=True):
    """Marks functions traced inside the block as compiled with XLA.

    Code with a faster path that XLA cannot compile reads
    `tracing_for_xla()` and traces its other path: `Decoder.call` runs the
    scheduled-sampling pass instead of a `tf.cond` between it and the
    teacher-forced pass (XLA cannot compile the gradient of a `tf.cond`
    whose branches run `tf.while_loop`s over Keras variables: "Resource
    _Retval node's input does not come from _Arg directly"); the
    cross-entropy's gradient scatters instead of subtracting in place
    (`InplaceSub` has no XLA kernel).

    Args:
      enabled: Whether the traced code will be compiled with XLA.

    Returns:
      A context manager.
    """
    return _XLA_TRACING.set(enabled)


def tracing_for_xla():
    """Whether the caller is inside `xla_tracing()`."""
    return _XLA_TRACING.value
