"""seq2seq.deferred_imports: pyplot is not loaded until it is used."""

import subprocess
import sys
import textwrap


def run_python(directory, code):
    # From a file: AutoGraph converts only functions whose source it can read.
    script = directory / "script.py"
    script.write_text(textwrap.dedent(code))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_tensorflow_import_leaves_pyplot_unloaded_until_used(tmp_path):
    out = run_python(
        tmp_path,
        """
        import sys, types
        import seq2seq
        import tensorflow
        from keras.src.visualization import plot_image_gallery

        stand_in = sys.modules["matplotlib.pyplot"]
        print(type(stand_in).__name__, plot_image_gallery.plt is stand_in)
        # AutoGraph scans sys.modules for the converted function's file.
        def plus_one(x):
            return x + 1

        tensorflow.data.Dataset.range(3).map(plus_one)
        print("matplotlib.backend_bases" in sys.modules)
        figure = plot_image_gallery.plt.figure
        real = sys.modules["matplotlib.pyplot"]
        print(type(real) is types.ModuleType, figure is real.figure)
        print(type(figure()).__name__, hasattr(real, "subplots"))
        """,
    )
    assert out == ["DeferredModule", "True", "False", "True", "True", "Figure", "True"]


def test_stand_in_imports_the_real_module_once(tmp_path):
    out = run_python(
        tmp_path,
        """
        import importlib.util, inspect, sys
        from seq2seq.deferred_imports import DeferredModule, defer_pyplot

        # Importing seq2seq deferred pyplot already: nothing more to do.
        print(defer_pyplot())
        spec = importlib.util.find_spec("wave")
        sys.modules["wave"] = stand_in = DeferredModule(spec)
        import wave
        inspect.getmodule(DeferredModule)  # reads every module's __file__
        print(wave is stand_in, "_deferred_real" in vars(stand_in))
        print(wave.__file__ == spec.origin, "_deferred_real" in vars(stand_in))
        print(wave.Error.__module__, sys.modules["wave"] is not stand_in)
        print(stand_in.open is sys.modules["wave"].open)
        """,
    )
    assert out == ["False", "True", "False", "True", "False", "wave", "True", "True"]


def test_startup_benchmark_reports_medians_against_tensorflow_alone():
    from benchmarks import startup_time

    times = {
        "tensorflow": [(4.0, 3.0), (5.0, 3.5), (9.0, 2.5)],
        "seq2seq, tensorflow": [(3.5, 2.0), (4.5, 2.5), (3.0, 3.0)],
        "seq2seq, tensorflow, pyplot used": [(5.0, 3.5)],
    }
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in startup_time.report(times).splitlines()[2:]
    ]
    assert rows == [
        ["tensorflow", "5.00", "3.00", "+0.00 s", "+0.00 s (1.00x)"],
        ["seq2seq, tensorflow", "3.50", "2.50", "-1.50 s", "-0.50 s (1.20x)"],
        [
            "seq2seq, tensorflow, pyplot used",
            "5.00",
            "3.50",
            "+0.00 s",
            "+0.50 s (0.86x)",
        ],
    ]


def test_startup_benchmark_refuses_bad_rounds_in_one_line(capsys):
    from benchmarks import startup_time

    assert startup_time.main(["--rounds", "0"]) == 2
    assert (
        capsys.readouterr().err.strip() == "error: --rounds must be at least 1, got 0."
    )


def test_startup_benchmark_names_the_versions_the_processes_import():
    import importlib.metadata

    from benchmarks import startup_time

    named = dict(item.split(" ") for item in startup_time.versions().split(", "))
    assert list(named) == ["tensorflow", "keras", "numpy", "ml_dtypes"]
    for name, version in named.items():
        assert version == importlib.metadata.version(name)
