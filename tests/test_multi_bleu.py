"""bin/tools/multi-bleu.perl against sacrebleu's whitespace-token BLEU."""

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sacrebleu

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bin" / "tools" / "multi-bleu.perl"

pytestmark = pytest.mark.skipif(shutil.which("perl") is None, reason="needs perl")

LINE = re.compile(
    r"^BLEU = (\S+), (\S+)/(\S+)/(\S+)/(\S+) \(BP=(\S+), ratio=(\S+), "
    r"hyp_len=(\d+), ref_len=(\d+)\)\n$"
)


def run_script(args, hypotheses, cwd):
    return subprocess.run(
        [str(SCRIPT), *args],
        input="".join(line + "\n" for line in hypotheses).encode("utf-8"),
        capture_output=True,
        cwd=cwd,
        timeout=60,
    )


def write(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def moses_line(hypotheses, references, lowercase=False):
    """The line multi-bleu.perl prints, from sacrebleu's figures."""
    bleu = sacrebleu.corpus_bleu(
        hypotheses,
        references,
        tokenize="none",
        force=True,
        smooth_method="none",
        lowercase=lowercase,
    )
    return (
        f"BLEU = {bleu.score:.2f}, "
        + "/".join(f"{p:.1f}" for p in bleu.precisions)
        + f" (BP={bleu.bp:.3f}, ratio={bleu.sys_len / bleu.ref_len:.3f}, "
        f"hyp_len={bleu.sys_len}, ref_len={bleu.ref_len})\n"
    )


def check(result, hypotheses, references, lowercase=False):
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode()
    assert LINE.match(output), output
    assert output == moses_line(hypotheses, references, lowercase)
    return output


def test_is_executable():
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env perl\n")


def test_single_reference_shorter_hypotheses(tmp_path):
    refs = [
        "the cat sat on the mat",
        "there is a cat on the mat today",
        "a b c d e f g",
    ]
    hyps = ["the cat sat on a mat", "there is a cat on the mat", "a b c d x f"]
    write(tmp_path / "ref.txt", refs)
    output = check(run_script(["ref.txt"], hyps, tmp_path), hyps, [refs])
    # BP < 1: the hypotheses are shorter than the references.
    assert "BP=0.900, ratio=0.905, hyp_len=19, ref_len=21" in output


def test_random_corpora_with_several_references(tmp_path):
    rng = random.Random(7)
    words = "a b c d e f g h".split()

    def sentence(length):
        return " ".join(rng.choice(words) for _ in range(length))

    count = 40
    refs = [[sentence(rng.randint(3, 12)) for _ in range(count)] for _ in range(3)]
    # Hypotheses: a noisy copy of reference 0, longer on average (BP = 1).
    hyps = []
    for line in refs[0]:
        tokens = line.split()
        tokens = [t if rng.random() < 0.7 else rng.choice(words) for t in tokens]
        tokens += [rng.choice(words) for _ in range(rng.randint(0, 3))]
        hyps.append(" ".join(tokens))
    for index, lines in enumerate(refs):
        write(tmp_path / f"ref{index}", lines)
    output = check(run_script(["ref"], hyps, tmp_path), hyps, refs)
    assert "BP=1.000" in output
    # One reference file scores differently from three.
    single = check(run_script(["ref0"], hyps, tmp_path), hyps, refs[:1])
    assert single != output


def test_stem_itself_and_extra_files_are_references(tmp_path):
    refs_a = ["the quick brown fox jumps", "over the lazy dog now"]
    refs_b = ["a quick brown fox leaps", "over a lazy dog"]
    refs_c = ["the fast brown fox jumps high", "over the dog"]
    hyps = ["the quick brown fox leaps high", "over the lazy dog"]
    write(tmp_path / "ref", refs_a)
    write(tmp_path / "ref0", refs_b)
    write(tmp_path / "other.txt", refs_c)
    check(
        run_script(["ref", "other.txt"], hyps, tmp_path),
        hyps,
        [refs_b, refs_a, refs_c],
    )


def test_lowercase_flag(tmp_path):
    refs = ["The Cat sat on THE mat", "Ünïcode Wörds ARE here too"]
    hyps = ["the cat sat on the Mat", "ünïcode wörds are here"]
    write(tmp_path / "ref", refs)
    cased = check(run_script(["ref"], hyps, tmp_path), hyps, [refs])
    lowered = check(run_script(["-lc", "ref"], hyps, tmp_path), hyps, [refs], True)
    assert float(lowered.split()[2][:-1]) > float(cased.split()[2][:-1])


def test_zero_precision_scores_zero(tmp_path):
    refs = ["a b c d e", "f g h"]
    hyps = ["a b c x e", "f g y"]  # no 4-gram in common
    write(tmp_path / "ref", refs)
    output = check(run_script(["ref"], hyps, tmp_path), hyps, [refs])
    assert output.startswith("BLEU = 0.00, 75.0/50.0/25.0/0.0 (BP=1.000, ")


def test_empty_references_print_moses_zero_line(tmp_path):
    write(tmp_path / "ref", ["", ""])
    result = run_script(["ref"], ["", ""], tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        b"BLEU = 0, 0/0/0/0 (BP=0, ratio=0, hyp_len=0, ref_len=0)\n"
    )


def test_clipped_counts_and_closest_length_tie(tmp_path):
    hyps = ["the the the the the the"]
    # Both references are 2 tokens away from the 6 of the hypothesis: the
    # shorter one (4) is the reference length. "the" counts up to 4 times
    # (its most in one reference), "the the" 3 times, and so on.
    refs0 = ["the cat the mat x y z w"]
    refs1 = ["the the the the"]
    write(tmp_path / "ref0", refs0)
    write(tmp_path / "ref1", refs1)
    output = check(run_script(["ref"], hyps, tmp_path), hyps, [refs0, refs1])
    assert output == (
        "BLEU = 50.81, 66.7/60.0/50.0/33.3 "
        "(BP=1.000, ratio=1.500, hyp_len=6, ref_len=4)\n"
    )


@pytest.mark.parametrize(
    "args, files, pattern",
    [
        (["missing"], {}, r"no reference file 'missing'"),
        (["ref"], {"ref": ["a", "b", "c"]}, r"has 3 lines but the hypotheses have 2"),
        (["-x", "ref"], {"ref": ["a", "b"]}, r"unknown option '-x'"),
        ([], {}, r"no reference file given"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, args, files, pattern):
    for name, lines in files.items():
        write(tmp_path / name, lines)
    result = run_script(args, ["a b", "c d"], tmp_path)
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("multi-bleu.perl: error: ")
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs gzip")
def test_gzipped_reference(tmp_path):
    import gzip

    refs = ["the cat sat on the mat", "a b c d e f"]
    hyps = ["the cat sat on a mat", "a b c d e"]
    with gzip.open(tmp_path / "ref.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in refs))
    check(run_script(["ref.gz"], hyps, tmp_path), hyps, [refs])
