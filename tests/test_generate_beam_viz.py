"""Tests for bin/tools/generate_beam_viz.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from bin.tools import generate_beam_viz

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "bin" / "tools" / "generate_beam_viz.py"
END = "SEQUENCE_END"


def object_array(items):
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def write_beams(path):
    """Two examples as DumpBeams writes them: beam width 2, 3 and 2 steps,
    padded to [2, 3, 2] (-1 for ids, NaN for floats) with `lengths`.

    Vocabulary ids: 0 hello, 1 world, 2 笑; 3 UNK, 4 SEQUENCE_START,
    5 SEQUENCE_END.
    """
    ids = np.array([[[0, 2], [1, 5], [5, 1]], [[3, 1], [5, 0], [-1, -1]]], np.int32)
    parents = np.array([[[0, 0], [0, 1], [0, 0]], [[0, 0], [1, 1], [-1, -1]]], np.int32)
    scores = np.array(
        [
            [[-0.5, -1.25], [-1.0, -1.5], [-1.2, -3.0]],
            [[-0.1, -0.2], [-0.3, -0.4], [np.nan, np.nan]],
        ],
        np.float32,
    )
    np.savez(
        path,
        predicted_ids=ids,
        beam_parent_ids=parents,
        scores=scores,
        log_probs=scores - 1,
        lengths=np.array([3, 2], np.int32),
    )


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, timeout=60, cwd="/"
    )


def test_tool_writes_self_contained_html(tmp_path):
    data = tmp_path / "beams.npz"
    write_beams(data)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("hello\t10\nworld\t5\n笑\t1\n", encoding="utf-8")
    out = tmp_path / "viz"
    result = run_tool("-d", str(data), "-v", str(vocab), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(os.listdir(out)) == ["000000.html", "000001.html"]
    assert result.stdout.decode().split() == [
        str(out / "000000.html"),
        str(out / "000001.html"),
    ]

    page = (out / "000000.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for token in ("START", "hello", "world", "笑", "SEQUENCE_END", "-1.250"):
        assert token in page
    assert "http" not in page  # no network resources, not even a namespace
    assert not re.search(r"<(script|link|img)\b", page)
    # 1 root + 3 steps x 2 beams; two nodes end the sequence.
    assert page.count('<g class="node') == 7
    assert len(re.findall(r'<g class="node[^"]*finished', page)) == 2
    assert page.count("<line ") == 6
    # The best beam at the last step (beam 0, SEQUENCE_END, -1.2) and its
    # ancestors (world at step 1, hello at step 0, START) are highlighted.
    assert page.count('<line class="edge best"') == 3

    second = (out / "000001.html").read_text(encoding="utf-8")
    assert "UNK" in second and "world" in second
    # Cut to its 2 steps: 1 root + 2 steps x 2 beams, no padding nodes.
    assert second.count('<g class="node') == 5 and "nan" not in second


def test_tree_structure_and_layout():
    ids = np.array([[0, 1], [2, 5], [3, 4]])
    parents = np.array([[0, 0], [1, 1], [0, 1]])
    scores = np.array([[-1.0, -0.5], [-2.0, -1.0], [-3.0, -4.0]])
    vocab = ["a", "b", "c", "UNK", "SEQUENCE_START", END]
    root, nodes = generate_beam_viz.build_tree(ids, parents, scores, vocab=vocab)
    assert [c.token for c in root.children] == ["a", "b"]
    a, b = root.children
    assert a.children == [] and not a.alive  # dropped after the first step
    assert [c.token for c in b.children] == ["c", END]
    c, end = b.children
    assert end.finished and end.alive
    assert [n.token for n in c.children] == ["UNK"]
    assert [n.token for n in end.children] == ["SEQUENCE_START"]
    assert end.children[0].after_end and not c.children[0].after_end
    assert c.alive and c.children[0].alive
    html = generate_beam_viz.render_html(0, root, nodes)
    # Every step is one column further right; siblings do not overlap.
    assert a.x == b.x and c.x > b.x
    ys = sorted(n.y for n in nodes if not n.children)
    assert all(y2 > y1 for y1, y2 in zip(ys, ys[1:]))
    assert "pruned" in html


def test_without_vocab_nodes_show_ids(tmp_path):
    data = tmp_path / "beams.npz"
    write_beams(data)
    out = tmp_path / "viz"
    assert generate_beam_viz.main(["-d", str(data), "-o", str(out)]) == 0
    page = (out / "000001.html").read_text(encoding="utf-8")
    assert ">3</text>" in page and ">5</text>" in page


def test_accepts_stacked_arrays_of_the_original(tmp_path):
    data = tmp_path / "orig.npz"
    np.savez(
        data,
        predicted_ids=np.zeros((3, 2, 2), np.int32),
        beam_parent_ids=np.zeros((3, 2, 2), np.int32),
        scores=np.zeros((3, 2, 2), np.float32),
        log_probs=np.zeros((3, 2, 2), np.float32),
    )
    out = tmp_path / "viz"
    assert generate_beam_viz.main(["-d", str(data), "-o", str(out)]) == 0
    assert len(os.listdir(out)) == 3


def test_user_errors_exit_2(tmp_path):
    result = run_tool("-d", str(tmp_path / "missing.npz"), "-o", str(tmp_path))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "missing.npz" in err and len(err.strip().splitlines()) == 1

    result = run_tool("-o", str(tmp_path))  # no --data
    assert result.returncode == 2 and "--data" in result.stderr.decode()

    bad = tmp_path / "bad.npz"
    np.savez(bad, scores=np.zeros((1, 2, 2)))
    result = run_tool("-d", str(bad), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "predicted_ids" in result.stderr.decode()

    not_npz = tmp_path / "text.npz"
    not_npz.write_text("hello")
    result = run_tool("-d", str(not_npz), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "text.npz" in result.stderr.decode()

    data = tmp_path / "beams.npz"
    write_beams(data)
    result = run_tool("-d", str(data), "-v", str(tmp_path / "nov"), "-o", "x")
    assert result.returncode == 2 and "nov" in result.stderr.decode()

    parents = np.array([[[0, 0], [7, 0]]], np.int32)
    ids = np.zeros((1, 2, 2), np.int32)
    broken = tmp_path / "broken.npz"
    np.savez(broken, predicted_ids=ids, beam_parent_ids=parents, scores=ids)
    result = run_tool("-d", str(broken), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "parent beam 7" in result.stderr.decode()

    np.savez(
        broken,
        predicted_ids=ids,
        beam_parent_ids=ids,
        scores=ids,
        lengths=np.array([3], np.int32),
    )
    result = run_tool("-d", str(broken), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "'lengths'" in result.stderr.decode()


class _RunsCommand:
    """Unpickling this calls os.system: what a crafted .npz could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_objects_are_refused_not_loaded(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _RunsCommand(marker)
    crafted = tmp_path / "crafted.npz"
    ids = np.zeros((1, 2, 2), np.int32)
    np.savez(crafted, predicted_ids=evil, beam_parent_ids=ids, scores=ids)
    result = run_tool("-d", str(crafted), "-o", str(tmp_path / "o"))
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert len(err) == 1 and err[0].startswith("generate_beam_viz: error: "), err
    assert "'predicted_ids' holds pickled Python objects" in err[0]
    assert not marker.exists()
    assert not (tmp_path / "o").exists()

    # The object arrays of older DumpBeams files are refused the same way.
    legacy = tmp_path / "legacy.npz"
    traces = object_array([np.zeros((2, 2), np.int32), np.zeros((1, 2), np.int32)])
    np.savez(legacy, predicted_ids=traces, beam_parent_ids=traces, scores=traces)
    result = run_tool("-d", str(legacy), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "pickled" in result.stderr.decode()


def test_tool_is_executable():
    assert os.access(TOOL, os.X_OK)
