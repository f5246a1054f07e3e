"""How command-line entry points end: `bin.cli.run` after `main`."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest

from bin import cli
from seq2seq.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def unfrozen(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["entry_point"])
    gc.unfreeze()
    yield
    gc.unfreeze()


def _run(main):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    return exit_info.value.code


def test_a_main_that_returns_leaves_no_object_to_the_final_collection(unfrozen):
    assert gc.get_freeze_count() == 0
    assert _run(lambda argv: 0) == 0
    # Every object alive after main is frozen: the exit's collection skips it.
    assert gc.get_freeze_count() > 1000


def test_a_user_error_keeps_the_final_collection(unfrozen, capsys):
    def main(argv):
        raise UserError("--model_dir: not set; pass the training directory.")

    assert _run(main) == 2
    assert capsys.readouterr().err.startswith("error: --model_dir")
    assert gc.get_freeze_count() == 0


def test_buffered_output_and_atexit_handlers_survive_the_fast_exit(tmp_path):
    # Written without a flush by main, and by an atexit handler: both must be
    # complete after the process ends.
    marker = tmp_path / "atexit.txt"
    script = textwrap.dedent(f"""
        import atexit, sys
        from bin import cli

        def last_words():
            with open({str(marker)!r}, "w") as handle:
                handle.write("done")

        def main(argv):
            atexit.register(last_words)
            sys.stdout.write("x" * 100000)
            return 0

        cli.run(main)
        """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "x" * 100000
    assert marker.read_text() == "done"
