#!/usr/bin/env python3
"""Draws the beam search traces written by the DumpBeams task as trees.

For every example in the `.npz` file, writes one self-contained HTML page
(inline SVG and CSS; no scripts, no network resources) to the output
directory, named `000000.html`, `000001.html`, ...:

    python3 bin/tools/generate_beam_viz.py -d /tmp/beams.npz \
        -v vocab.targets.txt -o /tmp/beam_viz

A node is the token beam `k` chose at step `t`, labelled with the token and
its score; an edge joins it to the beam it extended at step `t - 1`. Nodes
that produced SEQUENCE_END are marked as finished, branches the search
dropped are faded, and the path to the best-scoring beam of the last step is
highlighted. Uses only the Python standard library and numpy.
"""

import html
import os
import sys
import zipfile

import numpy as np

if __package__:
    from ._usage import ArgumentParser, UsageError, reports_usage_errors
else:  # run as a script: this directory is sys.path[0]
    from _usage import ArgumentParser, UsageError, reports_usage_errors

SPECIAL_TOKENS = ("UNK", "SEQUENCE_START", "SEQUENCE_END")
SEQUENCE_END = "SEQUENCE_END"
REQUIRED_KEYS = ("predicted_ids", "beam_parent_ids", "scores")

# Layout, in pixels.
STEP_WIDTH = 120
ROW_HEIGHT = 44
MARGIN = 60
RADIUS = 7


def build_parser():
    parser = ArgumentParser(
        description="Generate HTML beam search visualizations from a DumpBeams file."
    )
    parser.add_argument(
        "-d", "--data", required=True, help="the .npz file written by DumpBeams"
    )
    parser.add_argument(
        "-o", "--output_dir", required=True, help="where to write the HTML files"
    )
    parser.add_argument(
        "-v",
        "--vocab",
        default=None,
        help="the target vocabulary file; without it nodes show token ids and "
        "finished hypotheses cannot be recognised",
    )
    return parser


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_vocab(path):
    """Reads a vocabulary file into a list indexed by token id.

    The file has one token per line, optionally `token<TAB>count` (decided by
    the first line, as the model does). UNK, SEQUENCE_START and SEQUENCE_END
    follow the file's tokens.

    Raises:
      UsageError: The file is missing or not UTF-8.
    """
    if not os.path.isfile(path):
        raise UsageError(f"vocabulary file not found: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError:
        raise UsageError(f"vocabulary file {path} is not valid UTF-8") from None
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if lines and lines[-1] == "":
        lines.pop()
    if lines:
        first = lines[0].rsplit("\t", 1)
        if len(first) == 2 and _is_number(first[1]):
            lines = [line.rsplit("\t", 1)[0] for line in lines]
    return lines + list(SPECIAL_TOKENS)


def token_name(token_id, vocab):
    """The token of `token_id`, or the id as text without a vocabulary (or
    for an id past its end)."""
    token_id = int(token_id)
    if vocab is not None and 0 <= token_id < len(vocab):
        return vocab[token_id]
    return str(token_id)


def _as_steps_by_beams(array, name, index):
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise UsageError(
            f"example {index}: {name} has shape {array.shape}; expected [steps, beams]"
        )
    return array


def _read_array(data, key, path):
    """Reads one array of an open `.npz` without unpickling anything."""
    try:
        return data[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        raise UsageError(
            f"{path}: '{key}' holds pickled Python objects, which this tool "
            "does not load (unpickling can run code); give a file written by "
            "the DumpBeams inference task of this version"
        ) from None


def load_traces(path):
    """Loads a DumpBeams file without unpickling anything.

    Reads the dense `[N, T, K]` arrays DumpBeams writes, cut to each
    example's `lengths[i]` steps, and the original's stacked `[N, T, K]`
    arrays (no `lengths`: every example has T steps). Arrays of Python
    objects are refused.

    Returns:
      A list of dicts with `predicted_ids`, `beam_parent_ids`, `scores` and
      `log_probs` (`None` when absent), each `[T_i, K]`.

    Raises:
      UsageError: The file is missing, unreadable, holds pickled objects or
        lacks a key.
    """
    if not os.path.isfile(path):
        raise UsageError(f"beam data file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise UsageError(
            f"{path} is not a .npz file; give the file written by the DumpBeams "
            "inference task"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in REQUIRED_KEYS if key not in data.files]
            if missing:
                raise UsageError(
                    f"{path} has no '{missing[0]}' array; give the file written "
                    "by the DumpBeams inference task"
                )
            arrays = {key: _read_array(data, key, path) for key in REQUIRED_KEYS}
            arrays["log_probs"] = (
                _read_array(data, "log_probs", path) if "log_probs" in data else None
            )
            lengths = _read_array(data, "lengths", path) if "lengths" in data else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise UsageError(f"cannot read {path} as a .npz file: {err}") from None

    count = len(arrays["predicted_ids"])
    steps = arrays["predicted_ids"].shape[1] if arrays["predicted_ids"].ndim > 1 else 0
    if lengths is not None:
        lengths = np.asarray(lengths)
        if (
            lengths.shape != (count,)
            or not np.issubdtype(lengths.dtype, np.integer)
            or np.any(lengths < 0)
            or np.any(lengths > steps)
        ):
            raise UsageError(
                f"{path}: 'lengths' must hold {count} integers in 0..{steps} "
                "(the steps of each example)"
            )
    traces = []
    for index in range(count):
        trace = {}
        for key in (*REQUIRED_KEYS, "log_probs"):
            if arrays[key] is None:
                trace[key] = None
                continue
            if len(arrays[key]) != count:
                raise UsageError(
                    f"{path}: '{key}' has {len(arrays[key])} examples but "
                    f"predicted_ids has {count}"
                )
            example = arrays[key][index]
            if lengths is not None:
                example = example[: lengths[index]]
            trace[key] = _as_steps_by_beams(example, key, index)
        shapes = {key: v.shape for key, v in trace.items() if v is not None}
        if len(set(shapes.values())) > 1:
            raise UsageError(f"{path}: example {index} has arrays of shapes {shapes}")
        traces.append(trace)
    return traces


class Node:
    """One hypothesis in the tree: the token beam `beam` chose at `step`."""

    def __init__(self, step, beam, token, score=None, log_prob=None, parent=None):
        self.step = step
        self.beam = beam
        self.token = token
        self.score = score
        self.log_prob = log_prob
        self.parent = parent
        self.children = []
        self.finished = token == SEQUENCE_END
        self.after_end = False
        self.alive = False
        self.best = False
        self.x = 0.0
        self.y = 0.0


def build_tree(predicted_ids, parent_ids, scores, log_probs=None, vocab=None):
    """Builds the beam search tree of one example.

    Args:
      predicted_ids: [T, K] int, the token each beam chose at each step.
      parent_ids: [T, K] int, the beam of step `t - 1` each beam extended
        (ignored at the first step, where every beam extends START).
      scores: [T, K] float, the beams' scores.
      log_probs: Optional [T, K] float, the log-probability of each token.
      vocab: Optional list of tokens indexed by id.

    Returns:
      `(root, nodes)`: the START node and every node, in step order.

    Raises:
      UsageError: A parent id is not a beam of the previous step.
    """
    steps, beams = predicted_ids.shape
    root = Node(-1, 0, "START")
    nodes = [root]
    previous = [root]
    for step in range(steps):
        current = []
        for beam in range(beams):
            if step == 0:
                parent = root
            else:
                parent_id = int(parent_ids[step, beam])
                if not 0 <= parent_id < beams:
                    raise UsageError(
                        f"step {step}, beam {beam}: parent beam {parent_id} is "
                        f"not in 0..{beams - 1}"
                    )
                parent = previous[parent_id]
            node = Node(
                step,
                beam,
                token_name(predicted_ids[step, beam], vocab),
                score=float(scores[step, beam]),
                log_prob=None if log_probs is None else float(log_probs[step, beam]),
                parent=parent,
            )
            node.after_end = parent.finished or parent.after_end
            parent.children.append(node)
            nodes.append(node)
            current.append(node)
        previous = current

    # Alive: on the way to a hypothesis that reached the last step or ended.
    for node in nodes[1:]:
        if node.step == steps - 1 or node.finished:
            walker = node
            while walker is not None and not walker.alive:
                walker.alive = True
                walker = walker.parent
    root.alive = True
    if steps:
        last = previous
        best = max(last, key=lambda n: (np.nan_to_num(n.score, nan=-np.inf), -n.beam))
        walker = best
        while walker is not None:
            walker.best = True
            walker = walker.parent
    return root, nodes


def _layout(root):
    """Places nodes: x by step, y so that sibling subtrees do not overlap."""
    next_row = 0
    # Iterative post-order: leaves take the next row, parents sit between
    # their first and last child.
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        node.x = MARGIN + (node.step + 1) * STEP_WIDTH
        if not node.children:
            node.y = MARGIN + next_row * ROW_HEIGHT
            next_row += 1
        elif expanded:
            node.y = (node.children[0].y + node.children[-1].y) / 2.0
        else:
            stack.append((node, True))
            for child in reversed(node.children):
                stack.append((child, False))
    return next_row


STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px 0; }
p.legend { font-size: 13px; margin: 0 0 12px 0; }
p.legend span { margin-right: 14px; }
.scroll { overflow: auto; border: 1px solid #ddd; }
line.edge { stroke: #9ab; stroke-width: 1.5; }
line.edge.best { stroke: #d62728; stroke-width: 3; }
g.node circle { fill: #fff; stroke: #4682b4; stroke-width: 1.5; }
g.node.finished circle { fill: #2ca02c; stroke: #1b6e1b; }
g.node.best circle { stroke: #d62728; stroke-width: 2.5; }
g.node.root circle { fill: #4682b4; }
g.node text { font-size: 12px; }
g.node text.score { fill: #666; font-size: 10px; }
g.pruned { opacity: 0.35; }
g.after-end { opacity: 0.5; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px;
          border: 1.5px solid #4682b4; vertical-align: middle; }
"""


def _classes(node, *base):
    classes = list(base)
    if node.step < 0:
        classes.append("root")
    if node.finished:
        classes.append("finished")
    if node.best:
        classes.append("best")
    if not node.alive:
        classes.append("pruned")
    if node.after_end:
        classes.append("after-end")
    return " ".join(classes)


def _number(value):
    return "" if value is None else f"{value:.3f}"


def render_html(index, root, nodes):
    """Returns the HTML page of one example's tree (laid out here)."""
    rows = _layout(root)
    width = int(2 * MARGIN + (max(n.step for n in nodes) + 2) * STEP_WIDTH)
    height = int(2 * MARGIN + max(rows, 1) * ROW_HEIGHT)
    parts = []
    for node in nodes:
        if node.parent is None:
            continue
        best = " best" if node.best and node.parent.best else ""
        parts.append(
            f'<line class="edge{best}" x1="{node.parent.x:.1f}" '
            f'y1="{node.parent.y:.1f}" x2="{node.x:.1f}" y2="{node.y:.1f}"/>'
        )
    for node in nodes:
        token = html.escape(node.token)
        if node.step < 0:
            tooltip = "START"
        else:
            tooltip = f"step {node.step}, beam {node.beam}: {node.token}"
            tooltip += f"\nscore {_number(node.score)}"
            if node.log_prob is not None:
                tooltip += f"\nlog_prob {_number(node.log_prob)}"
            if node.finished:
                tooltip += "\nfinished (SEQUENCE_END)"
            elif not node.alive:
                tooltip += "\ndropped from the beam"
        parts.append(
            f'<g class="{_classes(node, "node")}" '
            f'transform="translate({node.x:.1f},{node.y:.1f})">'
            f"<title>{html.escape(tooltip)}</title>"
            f'<circle r="{RADIUS}"/>'
            f'<text class="token" text-anchor="middle" y="-11">{token}</text>'
            f'<text class="score" text-anchor="middle" y="20">'
            f"{_number(node.score)}</text></g>"
        )
    svg = (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">' + "\n".join(parts) + "</svg>"
    )
    steps = max(n.step for n in nodes) + 1
    beams = max(n.beam for n in nodes) + 1
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Beam search, example {index}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Beam search, example {index}</h1>
<p class="legend">{steps} steps, beam width {beams}.
<span><span class="swatch" style="background:#2ca02c"></span> finished
(SEQUENCE_END)</span>
<span style="color:#d62728">&#9472; best final beam</span>
<span style="opacity:0.4">faded: dropped from the beam</span>
Hover over a node for its step, beam, score and log-probability.</p>
<div class="scroll">
{svg}
</div>
</body>
</html>
"""


@reports_usage_errors("generate_beam_viz")
def main(argv=None):
    """Runs the tool; returns the exit status."""
    args = build_parser().parse_args(argv)
    vocab = read_vocab(args.vocab) if args.vocab else None
    traces = load_traces(args.data)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"cannot create output directory {args.output_dir}: {err.strerror}"
        ) from None
    for index, trace in enumerate(traces):
        try:
            root, nodes = build_tree(
                trace["predicted_ids"],
                trace["beam_parent_ids"],
                trace["scores"],
                trace["log_probs"],
                vocab,
            )
        except UsageError as err:
            raise UsageError(f"{args.data}: example {index}: {err}") from None
        page = render_html(index, root, nodes)
        path = os.path.join(args.output_dir, f"{index:06d}.html")
        try:
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(page)
        except OSError as err:
            raise UsageError(f"cannot write {path}: {err.strerror}") from None
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
