"""Errors a user can fix, as opposed to bugs.

Every mistake in a config, a flag or an input file raises `UserError` (or a
subclass) with a single-line message that names the offending file, key or
value and says how to fix it. The command-line entry points catch it, print
`error: <message>` on stderr and exit with status 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input, configuration or files."""


class ConfigError(UserError, ValueError):
    """An invalid configuration key, value or class name."""


class DataError(UserError, ValueError):
    """A missing, empty or malformed data file (corpus, vocabulary, ...)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM.

    A `KeyboardInterrupt`, so that `except Exception` does not swallow it.
    The command-line entry points print `interrupted: <message>` and exit
    with `exit_code`, 128 + the signal number as shells report it: 130 for
    SIGINT, 143 for SIGTERM.

    Args:
      signum: The signal number.
      message: What was done about it, e.g. which checkpoint was saved.
    """

    def __init__(self, signum, message=""):
        import signal

        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        name = signal.Signals(self.signum).name
        super().__init__(message or f"stopped by {name}")
