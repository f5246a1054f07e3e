#!/usr/bin/env python3
"""What a process pays to start: importing TensorFlow, with and without
this package's deferred imports.

    python benchmarks/startup_time.py [--rounds 7]

Every `bin/` command imports TensorFlow, and with it Keras, which imports
`matplotlib.pyplot` whenever matplotlib is installed. Importing `seq2seq`
first puts a stand-in for pyplot in place (`seq2seq.deferred_imports`).
The script times, in fresh processes and in alternating order, `--rounds`
times each:

- `tensorflow`: `import tensorflow` alone (pyplot loaded with Keras);
- `seq2seq, tensorflow`: `import seq2seq` then `import tensorflow` (as
  every `bin/` command does);
- `seq2seq, tensorflow, pyplot used`: the same, then a pyplot attribute
  read, which loads the real module (what deferring moves, not saves, for
  a process that draws with pyplot);
- `numpy, ml_dtypes`: the NumPy types TensorFlow imports first (bfloat16,
  float8); ml_dtypes 0.7.0 spends about a second here registering its
  ufunc loops, which is why setup.py keeps it below 0.7.

To compare versions of a dependency, run the script twice, once with
`PYTHONPATH` naming a folder that holds the other version (`pip install
--no-deps --target DIR ml_dtypes==0.7.0`): the processes inherit it.

It prints the median wall seconds and CPU seconds of each process
(interpreter start and exit included) and the ratios to the first.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import common  # noqa: E402
from benchmarks.common import BenchmarkError  # noqa: E402

VARIANTS = {
    "tensorflow": "import tensorflow",
    "seq2seq, tensorflow": "import seq2seq, tensorflow",
    "seq2seq, tensorflow, pyplot used": (
        "import seq2seq, tensorflow, matplotlib.pyplot as plt; plt.figure"
    ),
    "numpy, ml_dtypes": "import numpy, ml_dtypes",
}

_VERSIONED = ("tensorflow", "keras", "numpy", "ml_dtypes")


def time_process(code):
    """`(wall_s, cpu_s)` of a fresh interpreter running `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = common.Stopwatch()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=_REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    wall = clock.seconds()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise BenchmarkError(
            f"python -c {code!r} failed: {result.stderr.strip().splitlines()[-1]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(rounds):
    """`{variant: [(wall_s, cpu_s)]}`, the variants alternating."""
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, code in VARIANTS.items():
            times[name].append(time_process(code))
    return times


def versions():
    """`name version, ...` of the packages whose import the variants time, as
    the processes see them (`PYTHONPATH` first)."""
    code = (
        "import importlib.metadata as m\n"
        f"for name in {_VERSIONED!r}:\n"
        "    try:\n"
        "        print(name, m.version(name))\n"
        "    except m.PackageNotFoundError:\n"
        "        print(name, 'absent')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=_REPO_ROOT
    )
    return ", ".join(result.stdout.split("\n")[:-1])


def report(times):
    """The table of medians and ratios, as text."""
    base_wall = common.median([w for w, _ in times["tensorflow"]])
    base_cpu = common.median([c for _, c in times["tensorflow"]])
    rows = [("process", "wall s", "CPU s", "wall vs tensorflow", "CPU vs tensorflow")]
    for name, samples in times.items():
        wall = common.median([w for w, _ in samples])
        cpu = common.median([c for _, c in samples])
        rows.append(
            (
                name,
                f"{wall:.2f}",
                f"{cpu:.2f}",
                f"{wall - base_wall:+.2f} s",
                f"{cpu - base_cpu:+.2f} s ({base_cpu / cpu:.2f}x)",
            )
        )
    return common.format_table(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        if args.rounds < 1:
            raise BenchmarkError(f"--rounds must be at least 1, got {args.rounds}.")
        print(f"{args.rounds} rounds; {common.load_at_start()}")
        print(f"versions: {versions()}")
        print(report(measure(args.rounds)))
        print(common.load_at_end())
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
