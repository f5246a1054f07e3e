"""The data recipes of bin/data/ run on small local archives in the format of
the real downloads (`--from DIR`), and the corpus tool they use."""

import io
import os
import re
import subprocess
import sys
import tarfile

import pytest

from bin.tools import prepare_corpus
from seq2seq.data.postproc import decode_sentencepiece

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, env=None, **kwargs):
    return subprocess.run(
        args,
        cwd=REPO,
        env=dict(os.environ, PYTHON=sys.executable, **(env or {})),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _tgz(path, members):
    """Writes a .tgz holding `members` ({name: text})."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _lines(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


# ------------------------------------------------------------ prepare_corpus


def test_sgm_segments_in_order_stripped():
    sgm = [
        '<srcset setid="newstest2014" srclang="any">\n',
        '<doc sysid="ref" docid="1" genre="news" origlang="de">\n',
        '<seg id="1"> Guten Morgen . </seg>\n',
        '<seg id="2">Wie &amp; warum?</seg>\n',
        "</doc>\n",
        "</srcset>\n",
    ]
    assert list(prepare_corpus.sgm_segments(sgm)) == [
        "Guten Morgen .",
        "Wie &amp; warum?",
    ]


@pytest.mark.parametrize(
    "first, second, kept",
    [
        ("a b", "c", True),
        ("", "c", False),  # an empty side
        (" ".join("x" * 81), "y", False),  # 81 tokens > 80
        (" ".join(["w"] * 10), "v", False),  # ratio 10 > 9
        (" ".join(["w"] * 9), "v", True),  # ratio 9
    ],
)
def test_clean_keeps_pairs_by_length_and_ratio(first, second, kept):
    assert prepare_corpus.keep_pair(first, second, 1, 80, 9.0) is kept


def test_clean_filters_two_file_pairs_alike_and_refuses_unparallel_files(tmp_path):
    (tmp_path / "tok.de").write_text("a  b\n\nc d e\n", encoding="utf-8")
    (tmp_path / "tok.en").write_text("x\ny\nz z z z\n", encoding="utf-8")
    (tmp_path / "raw.de").write_text("ab\nempty\ncde\n", encoding="utf-8")
    (tmp_path / "raw.en").write_text("x\ny\nzzzz\n", encoding="utf-8")
    code = prepare_corpus.main(
        [
            "clean",
            str(tmp_path / "tok"),
            "de",
            "en",
            str(tmp_path / "out"),
            "1",
            "3",
            "--also",
            str(tmp_path / "raw"),
            str(tmp_path / "raw_out"),
        ]
    )
    assert code == 0
    # Line 2 has an empty side, line 3 a 4-token side: only line 1 is kept.
    assert _lines(tmp_path / "out.de") == ["a b"]
    assert _lines(tmp_path / "out.en") == ["x"]
    assert _lines(tmp_path / "raw_out.de") == ["ab"]
    assert _lines(tmp_path / "raw_out.en") == ["x"]

    (tmp_path / "tok.en").write_text("x\n", encoding="utf-8")
    result = _run(
        [
            sys.executable,
            "bin/tools/prepare_corpus.py",
            "clean",
            str(tmp_path / "tok"),
            "de",
            "en",
            str(tmp_path / "out"),
            "1",
            "80",
        ]
    )
    assert result.returncode == 2
    assert result.stderr.startswith("prepare_corpus: error: ")
    assert "do not have the same number of lines" in result.stderr


def test_tokenize_follows_moses_and_keeps_order_with_processes(tmp_path):
    pytest.importorskip("sacremoses")
    text = ['Das ist "gut", oder?', "It's 3.5% & more.", "Hallo Welt!"] * 3
    (tmp_path / "in.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    outputs = []
    for threads in ("1", "2"):
        result = _run(
            [
                sys.executable,
                "bin/tools/prepare_corpus.py",
                "tokenize",
                "--lang",
                "en",
                "--threads",
                threads,
                str(tmp_path / "in.txt"),
            ]
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.splitlines())
    assert outputs[0] == outputs[1]
    assert outputs[0][:3] == [
        "Das ist &quot; gut &quot; , oder ?",
        "It &apos;s 3.5 % &amp; more .",
        "Hallo Welt !",
    ]


# ---------------------------------------------------------------- WMT'16


def _sgm(setid, lines):
    segs = "".join(f'<seg id="{i}">{line}</seg>\n' for i, line in enumerate(lines, 1))
    return f'<srcset setid="{setid}" srclang="any">\n<doc docid="d1">\n{segs}</doc>\n</srcset>\n'


def _wmt_archives(directory):
    """The five WMT'16 archives, each with a few sentences, under the names
    of the downloads (Europarl, Common Crawl) and of the original's saved
    copies (the rest), laid out inside as the real ones are."""
    pairs = {
        "europarl": [("Das Haus ist klein.", "The house is small.")] * 3,
        "commoncrawl": [("Ich bin hier.", "I am here.")] * 2
        # Too long a target: dropped by the cleaning (MAX_LEN=12 below).
        + [("Kurz.", " ".join(["long"] * 13) + ".")],
        "nc": [("Der Baum ist grün.", "The tree is green.")] * 2,
    }

    def side(name, index):
        return "".join(pair[index] + "\n" for pair in pairs[name])

    _tgz(
        directory / "de-en.tgz",
        {
            "europarl-v7.de-en.de": side("europarl", 0),
            "europarl-v7.de-en.en": side("europarl", 1),
        },
    )
    _tgz(
        directory / "training-parallel-commoncrawl.tgz",
        {
            "commoncrawl.de-en.de": side("commoncrawl", 0),
            "commoncrawl.de-en.en": side("commoncrawl", 1),
            "commoncrawl.fr-en.fr": "Bonjour.\n",
        },
    )
    _tgz(
        directory / "nc-v11.tgz",
        {
            "training-parallel-nc-v11/news-commentary-v11.de-en.de": side("nc", 0),
            "training-parallel-nc-v11/news-commentary-v11.de-en.en": side("nc", 1),
        },
    )
    dev = {}
    for year in (2014, 2015):
        dev[f"dev/newstest{year}-deen-src.de.sgm"] = _sgm(
            f"newstest{year}", [f"Das Jahr {year}.", "Gut!"]
        )
        dev[f"dev/newstest{year}-deen-ref.en.sgm"] = _sgm(
            f"newstest{year}", [f"The year {year}.", "Good!"]
        )
    _tgz(directory / "dev.tgz", dev)
    _tgz(
        directory / "test.tgz",
        {
            "test/newstest2016-deen-src.de.sgm": _sgm("n16", ["Ein Haus."]),
            "test/newstest2016-deen-ref.en.sgm": _sgm("n16", ["A house."]),
        },
    )


@pytest.fixture
def subword_packages():
    pytest.importorskip("sacremoses")
    pytest.importorskip("sentencepiece")


def test_wmt16_recipe_from_local_archives(tmp_path, subword_packages):
    archives = tmp_path / "downloads"
    archives.mkdir()
    _wmt_archives(archives)
    out = tmp_path / "wmt16"
    env = {
        "OUTPUT_DIR": str(out),
        "MERGE_OPS": "60",
        "MAX_LEN": "12",
        "THREADS": "1",
        "SUBWORD_SAMPLE": "0",
    }
    result = _run(["bash", "bin/data/wmt16_en_de.sh", "--from", str(archives)], env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    assert len(_lines(out / "train.de")) == len(_lines(out / "train.en")) == 8
    assert _lines(out / "newstest2015.de") == ["Das Jahr 2015.", "Gut!"]
    assert _lines(out / "newstest2016.en") == ["A house."]
    assert _lines(out / "newstest2014.tok.en") == ["The year 2014 .", "Good !"]
    # The 14-token target is cleaned away, from both the tokenized and the
    # raw copies.
    clean_en = _lines(out / "train.tok.clean.en")
    assert len(clean_en) == len(_lines(out / "train.clean.de")) == 7
    assert "The house is small ." in clean_en and not any("long" in c for c in clean_en)
    vocab_en = [line.split("\t")[0] for line in _lines(out / "vocab.50k.en")]
    assert vocab_en[0] == "." and {"house", "tree", "am"} <= set(vocab_en)
    assert "l" in [line.split("\t")[0] for line in _lines(out / "vocab.char.en")]
    # Subwords: one shared model; pieces join back into the tokenized text;
    # every piece of the training text is in the subword vocabulary (a test
    # set may have characters the training text lacks: "A" becomes UNK).
    assert (out / "bpe.60.model").exists()
    for name, lang in (("train.tok.clean", "de"), ("newstest2016.tok", "en")):
        tokenized = _lines(out / f"{name}.{lang}")
        pieces = _lines(out / f"{name}.bpe.60.{lang}")
        assert [decode_sentencepiece(p) for p in pieces] == tokenized
    pieces = {
        piece
        for lang in ("de", "en")
        for line in _lines(out / f"train.tok.clean.bpe.60.{lang}")
        for piece in line.split()
    }
    assert pieces <= set(_lines(out / "vocab.bpe.60"))


def test_wmt16_recipe_names_a_missing_archive(tmp_path):
    (tmp_path / "downloads").mkdir()
    result = _run(
        ["bash", "bin/data/wmt16_en_de.sh", "--from", str(tmp_path / "downloads")],
        {"OUTPUT_DIR": str(tmp_path / "out")},
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wmt16_en_de.sh: error: --from ") and "de-en.tgz" in last


# ------------------------------------------------------- CNN / Daily Mail


def _story(article, highlights):
    text = article + "\n\n"
    for highlight in highlights:
        text += f"@highlight\n\n{highlight}\n\n"
    return text


def test_cnn_dailymail_recipe_from_local_archives(tmp_path, subword_packages):
    archives = tmp_path / "downloads"
    archives.mkdir()
    cnn = {
        f"cnn/stories/{i:03d}.story": _story(
            f"CNN story {i} .\n\nA second   paragraph\tabout {i} .",
            [f"Point {i}", "Another point"],
        )
        for i in range(4)
    }
    cnn["cnn/stories/999.story"] = "An article without highlights .\n"
    dailymail = {
        f"dailymail/stories/{i:03d}.story": _story(f"Mail story {i} .", [f"Mail {i}"])
        for i in range(3)
    }
    _tgz(archives / "cnn_stories.tgz", cnn)
    _tgz(archives / "dailymail_stories.tgz", dailymail)
    out = tmp_path / "cnndm"
    env = {"DEV_SIZE": "2", "TEST_SIZE": "1", "VOCAB_SIZE": "60"}
    script = "bin/data/cnn_daily_mail_summarization/process_data.sh"
    result = _run(["bash", script, "--from", str(archives), str(out)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "7 stories written, 1 without an article or highlights" in result.stderr

    # Sorted paths: cnn/ before dailymail/; dev 2, test 1, train the rest.
    assert _lines(out / "dev.stories") == [
        "CNN story 0 . A second paragraph about 0 .",
        "CNN story 1 . A second paragraph about 1 .",
    ]
    assert _lines(out / "dev.summaries")[0] == "Point 0; Another point"
    assert _lines(out / "test.summaries") == ["Point 2; Another point"]
    assert _lines(out / "train.summaries") == [
        "Point 3; Another point",
        "Mail 0",
        "Mail 1",
        "Mail 2",
    ]
    vocab = set(_lines(out / "bpe.vocab"))
    for data in ("train", "dev", "test"):
        for side in ("stories", "summaries"):
            pieces = _lines(out / f"{data}.bpe.{side}")
            assert [decode_sentencepiece(p) for p in pieces] == _lines(
                out / f"{data}.{side}"
            )
            assert {p for line in pieces for p in line.split()} <= vocab | {"UNK"}


def test_cnn_dailymail_recipe_errors_are_one_line(tmp_path):
    script = "bin/data/cnn_daily_mail_summarization/process_data.sh"
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "a.story").write_text(_story("Text .", ["Sum"]), encoding="utf-8")
    cases = [
        ([str(stories), str(tmp_path / "o1")], "only 1 stories"),
        (["--from", str(tmp_path), str(tmp_path / "o2")], "holds neither"),
        ([str(tmp_path / "missing"), str(tmp_path / "o3")], "not a directory"),
        ([str(stories)], "usage: process_data.sh"),
    ]
    for args, message in cases:
        result = _run(["bash", script, *args])
        assert result.returncode == 2, (args, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("process_data.sh: error: ") and message in last, last


def test_process_story_reads_one_story_on_stdin_as_the_original():
    script = "bin/data/cnn_daily_mail_summarization/process_story.py"
    result = _run(
        [sys.executable, script],
        input=_story("First  line .\nSecond line .", ["One", "Two  words"]),
    )
    assert result.returncode == 0
    assert result.stdout == "First line . Second line .\tOne; Two words\n"


def test_summarization_doc_example_runs_as_written(tmp_path, subword_packages):
    """The runnable example of docs/summarization.md, in a temporary
    directory, prints what the page shows."""
    with open(os.path.join(REPO, "docs", "summarization.md"), encoding="utf-8") as f:
        doc = f.read()
    blocks = re.findall(
        r"```bash\n(mkdir -p /tmp/cnndm_demo.*?)```\n+```\n(.*?)```", doc, re.S
    )
    assert len(blocks) == 1
    command, expected = (
        part.replace("/tmp/cnndm_demo", str(tmp_path)) for part in blocks[0]
    )
    result = _run(["bash", "-c", "set -e\n" + command])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.endswith(expected), result.stdout[-2000:]
