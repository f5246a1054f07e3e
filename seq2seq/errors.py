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
