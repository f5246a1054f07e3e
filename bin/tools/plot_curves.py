#!/usr/bin/env python3
"""Plots training and dev curves of one or more runs to a PNG file.

Reads the TensorBoard event files that `bin/train.py` writes (training
curves in `output_dir`, dev curves in `output_dir/eval`) and draws the
chosen tags, one panel per tag and one line per run, with matplotlib (no
display needed).

  python -m bin.tools.plot_curves \\
    --runs "teacher forcing=/tmp/tf,scheduled sampling=/tmp/ss" \\
    --tags "loss,eval:loss/teacher_forced,eval:bleu/greedy" \\
    --output curves.png

A tag is looked up in the training events; prefix it with `eval:` for the
dev events (`train:` is also accepted). A run is `label=directory` or just a
directory (labelled with its base name).
"""

import os
import re
import sys

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EVAL_SUBDIR = "eval"


def parse_runs(text):
    """`"a=/x,b=/y"` or `"/x,/y"` -> list of `(label, directory)`; a label
    may contain `=` (the last one separates), not `,`."""
    runs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            # The last "=" separates, so that a label may contain one.
            label, directory = item.rsplit("=", 1)
        else:
            label, directory = os.path.basename(item.rstrip("/")), item
        runs.append((label.strip(), directory.strip()))
    return runs


def parse_tag(text):
    """`"eval:bleu/greedy"` -> `("eval", "bleu/greedy")`; no prefix is train."""
    for split in ("train", "eval"):
        if text.startswith(split + ":"):
            return split, text[len(split) + 1 :]
    return "train", text


def event_files(directory):
    """The event files directly in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory) if n.startswith("events.out"))
    return [os.path.join(directory, n) for n in names]


def read_scalars(directory, tags):
    """Reads scalar summaries from the event files of one directory.

    Args:
      directory: A directory with `events.out.tfevents.*` files.
      tags: The tags to keep (an iterable of str).

    Returns:
      A dict tag -> sorted list of `(step, value)`; a step written twice
      (e.g. by a resumed run) keeps its last value.

    Raises:
      ValueError: An event file is damaged before its end. A file that ends
        in a cut-off record (a run killed while writing) is read up to it,
        with a warning on stderr.
    """
    import tensorflow as tf

    wanted = set(tags)
    series = {tag: {} for tag in wanted}
    for path in event_files(directory):
        for event in _read_events(path):
            for value in event.summary.value:
                if value.tag not in wanted:
                    continue
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.size != 1:
                        continue  # a histogram or an image, not a scalar
                    number = float(array.reshape(-1)[0])
                else:
                    continue
                series[value.tag][int(event.step)] = float(number)
    return {tag: sorted(points.items()) for tag, points in series.items()}


def _read_events(path):
    """Yields the `Event` protos of one event file (see `read_scalars`)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    count = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            yield tf.compat.v1.Event.FromString(record.numpy())
            count += 1
    except tf.errors.DataLossError as err:
        if "truncated record" in str(err):
            print(
                f"warning: {path} ends in a cut-off record (was the run killed "
                f"while writing?); using the {count} events before it",
                file=sys.stderr,
            )
            return
        found = re.search(r"corrupted record at \d+", str(err))
        what = found.group(0) if found else "unreadable data"
        raise ValueError(
            f"{path} is damaged ({what} after {count} events); move it out of "
            "the run directory to plot the other event files"
        ) from None
    except (tf.errors.OpError, DecodeError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err) else ""
        raise ValueError(
            f"{path} is not a readable event file ({type(err).__name__}: "
            f"{first}); move it out of the run directory"
        ) from None


def smooth(values, weight):
    """TensorBoard-style exponential smoothing (0 = none)."""
    if not weight:
        return list(values)
    result, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        result.append(last)
    return result


def plot(runs, tags, output, title=None, smoothing=0.0, width=5.0, height=3.2):
    """Draws the curves and writes the PNG.

    Args:
      runs: A list of `(label, output_dir)`.
      tags: A list of tag specs (`loss`, `eval:bleu/greedy`).
      output: The PNG path.
      title: Optional figure title.
      smoothing: Exponential smoothing weight in [0, 1) for the training
        curves (drawn over the faint raw curve); dev curves are drawn as
        measured.
      width, height: Size of one panel, inches.

    Returns:
      A dict `(label, tag spec) -> number of points drawn`.

    Raises:
      ValueError: No run has any of the tags, an event file is damaged or
        `output` cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(tags), 3)
    rows = (len(tags) + columns - 1) // columns
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False
    )
    drawn = {}
    # Each directory is read once, for all its tags.
    wanted = {}
    for spec in tags:
        split, tag = parse_tag(spec)
        wanted.setdefault(split, set()).add(tag)
    scalars = {}
    for index, spec in enumerate(tags):
        split, tag = parse_tag(spec)
        axis = axes[index // columns][index % columns]
        for number, (label, directory) in enumerate(runs):
            path = (
                directory if split == "train" else os.path.join(directory, EVAL_SUBDIR)
            )
            if path not in scalars:
                scalars[path] = read_scalars(path, wanted[split])
            points = scalars[path][tag]
            drawn[(label, spec)] = len(points)
            if not points:
                continue
            steps = [s for s, _ in points]
            values = [v for _, v in points]
            color = f"C{number}"
            if smoothing and split == "train":
                # The raw curve faint, the smoothed one on top.
                axis.plot(steps, values, "-", color=color, alpha=0.25, linewidth=1)
                values = smooth(values, smoothing)
            style = "o-" if len(points) <= 30 else "-"
            axis.plot(
                steps,
                values,
                style,
                color=color,
                label=label,
                markersize=3,
                linewidth=1.3,
            )
        axis.set_title(f"{tag} ({split})", fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if any(drawn[(label, spec)] for label, _ in runs):
            axis.legend(fontsize=8)
    for index in range(len(tags), rows * columns):
        axes[index // columns][index % columns].axis("off")
    if not any(drawn.values()):
        plt.close(figure)
        raise ValueError(
            f"none of the tags {', '.join(tags)} was found in the runs "
            f"{', '.join(d for _, d in runs)}"
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(directory, exist_ok=True)
        _save_small_png(figure, output)
    except OSError as err:
        where = f" ({err.filename})" if err.filename not in (None, output) else ""
        raise ValueError(
            f"cannot write --output {output}: {err.strerror or err}{where}; "
            "choose a writable path"
        ) from None
    finally:
        plt.close(figure)
    return drawn


def _save_small_png(figure, output, dpi=80, colors=64):
    """Saves the figure as a palette PNG: line plots need few colours, and
    this keeps a six-panel figure well under 100 KB."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    image.save(output, format="PNG", optimize=True)


@reports_usage_errors("plot_curves")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        required=True,
        help="comma-separated label=output_dir (or output_dir) of training runs",
    )
    parser.add_argument(
        "--tags",
        default="loss,eval:loss/teacher_forced",
        help="comma-separated tags; prefix eval: for dev curves",
    )
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument("--title", default=None)
    parser.add_argument(
        "--smoothing",
        type=float,
        default=0.0,
        help="exponential smoothing in [0, 1) of the training curves",
    )
    args = parser.parse_args(argv)
    runs = parse_runs(args.runs)
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    if not runs or not tags:
        raise UsageError("--runs and --tags must name at least one run and one tag")
    for _, directory in runs:
        if not os.path.isdir(directory):
            raise UsageError(f"run directory not found: {directory}")
    if not 0.0 <= args.smoothing < 1.0:
        raise UsageError(f"--smoothing must be in [0, 1), got {args.smoothing}")
    try:
        drawn = plot(runs, tags, args.output, args.title, args.smoothing)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except OSError as err:  # --output under a file, in a read-only place, ...
        raise UsageError(
            f"cannot write --output {args.output}: {err.strerror}: {err.filename}"
        ) from None
    for (label, spec), count in sorted(drawn.items()):
        if not count:
            print(f"warning: {label} has no {spec}", file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
