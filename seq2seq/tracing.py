"""Per-thread switches that code reads while a `tf.function` is traced.

A switch changes what gets traced, not what runs: set it around the
tracing (`get_concrete_function`, the first call) of the function whose
graph should differ. Being per thread, it cannot leak into a function
traced concurrently by another thread (e.g. a `tf.distribute` replica or an
evaluation thread).
"""

import contextlib
import threading

__all__ = ["TraceSwitch"]


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
