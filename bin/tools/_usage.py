"""What the command-line tools in `bin/tools/` share: mistakes the user can
fix become one line on stderr and exit status 2, without a traceback.

Standard library only, so that the tools that run without TensorFlow (or
without this package installed) keep doing so. A tool imports it as

    if __package__:
        from ._usage import ArgumentParser, UsageError, reports_usage_errors
    else:  # run as a script: this directory is sys.path[0]
        from _usage import ArgumentParser, UsageError, reports_usage_errors

because it runs as a script (`bin/tools/generate_vocab.py`), as a module
(`python -m bin.tools.generate_vocab`) and is imported by the tests.
"""

import argparse
import functools
import sys


class UsageError(Exception):
    """A mistake in the command line or the input files the user can fix."""


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser that raises `UsageError` for a bad command line
    instead of printing its usage and exiting."""

    def error(self, message):
        raise UsageError(message)


def reports_usage_errors(tool):
    """Makes a tool's `main(argv=None)` report a `UsageError` as
    `<tool>: error: <message>` on stderr and return exit status 2.

    Args:
      tool: The name the message starts with, e.g. "generate_vocab".
    """

    def decorate(main):
        @functools.wraps(main)
        def guarded(argv=None):
            try:
                return main(argv)
            except UsageError as err:
                print(f"{tool}: error: {err}", file=sys.stderr)
                return 2

        return guarded

    return decorate
