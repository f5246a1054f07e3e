"""Tests of the real-corpus builder (benchmarks/real_corpus.py) and the
budgeted training loop the real-corpus benchmark shares (common.py)."""

import json
import os
import struct
import subprocess
import sys

import pytest

from benchmarks import common, real_corpus

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_mo(entries, order="<", charset="UTF-8"):
    """Bytes of a .mo file holding `entries` (`(msgid, msgstr)` str pairs),
    a header entry first, strings encoded with `charset`."""
    entries = [("", f"Content-Type: text/plain; charset={charset}\n")] + list(entries)
    entries.sort(key=lambda e: e[0])
    ids = [e[0].encode(charset) for e in entries]
    strs = [e[1].encode(charset) for e in entries]
    count = len(entries)
    originals = 28
    translations = originals + 8 * count
    data_start = translations + 8 * count
    blob = b""
    table_o, table_t = b"", b""
    for raw in ids:
        table_o += struct.pack(order + "2I", len(raw), data_start + len(blob))
        blob += raw + b"\0"
    for raw in strs:
        table_t += struct.pack(order + "2I", len(raw), data_start + len(blob))
        blob += raw + b"\0"
    header = struct.pack(
        order + "7I", 0x950412DE, 0, count, originals, translations, 0, 0
    )
    return header + table_o + table_t + blob


@pytest.mark.parametrize("order", ["<", ">"])
def test_read_mo_round_trip_both_byte_orders(order):
    entries = [("Open", "Ouvrir"), ("ctx\x04Close", "Fermer"), ("a\x00b", "x\x00y")]
    read = dict(real_corpus.read_mo(make_mo(entries, order)))
    assert read["Open"] == "Ouvrir"
    assert read["ctx\x04Close"] == "Fermer"
    assert read["a\x00b"] == "x\x00y"
    assert "" in read  # the header entry


def test_read_mo_decodes_the_header_charset():
    read = dict(real_corpus.read_mo(make_mo([("Size", "Größe")], charset="latin-1")))
    assert read["Size"] == "Größe"


def test_read_mo_rejects_other_files():
    with pytest.raises(ValueError, match="magic"):
        real_corpus.read_mo(b"\0" * 40)


def test_catalog_pairs_cleaning():
    entries = [
        ("", "header"),
        ("_Save As", "Enregistrer _sous"),
        ("~Open File", "~Ouvrir le fichier"),
        ("&Print && Export", "&Imprimer && exporter"),
        ("file_name", "nom_de_fichier"),
        ("menu\x04<b>Bold</b> text", "Texte <b>gras</b>"),
        ("%d file\x00%d files", "%d fichier\x00%d fichiers"),
        ("Untranslated", ""),
        ("Tab\n  here", "Onglet\n ici"),
    ]
    pairs = real_corpus.catalog_pairs(entries)
    assert pairs == [
        ("Save As", "Enregistrer sous"),
        ("Open File", "Ouvrir le fichier"),
        ("Print & Export", "Imprimer & exporter"),
        # One inner underscore looks like a GTK accelerator (Sa_ve): removed
        # from both sides alike.
        ("filename", "nom_de_fichier"),
        ("Bold text", "Texte gras"),
        ("%d file", "%d fichier"),
        ("Tab here", "Onglet ici"),
    ]


def test_tokenize_keeps_placeholders_and_splits_punctuation():
    assert real_corpus.tokenize(
        "Start %PRODUCTNAME with %1$s, %(name)s or {0}: l'image (e-mail)."
    ) == [
        "start",
        "%productname",
        "with",
        "%1$s",
        ",",
        "%(name)s",
        "or",
        "{0}",
        ":",
        "l'",
        "image",
        "(",
        "e-mail",
        ")",
        ".",
    ]
    assert real_corpus.tokenize("-B, --ignore-backups", lowercase=False) == [
        "-B",
        ",",
        "--ignore-backups",
    ]


def test_detokenize_joins_what_tokenize_split():
    text = "Ouvrir l'image (fichier.png), 5 % : oui."
    assert real_corpus.detokenize(real_corpus.tokenize(text, False)) == (
        "Ouvrir l'image (fichier.png), 5% : oui."
    )


def write_catalogs(directory, count=30):
    os.makedirs(directory)
    first = [(f"Item {i}", f"Élément {i}") for i in range(count)]
    # A duplicate source in the second catalog (dropped), an untranslated
    # copy (dropped), a pair without letters (dropped), a long one (dropped
    # with --max_words 10).
    second = [
        ("Item 3", "Autre élément 3"),
        ("Copy this long text", "Copy this long text"),
        ("%s: %d", "%s : %d"),
        (" ".join(["word"] * 11), " ".join(["mot"] * 11)),
    ]
    with open(os.path.join(directory, "a.mo"), "wb") as out:
        out.write(make_mo(first))
    with open(os.path.join(directory, "b.mo"), "wb") as out:
        out.write(make_mo(second))


def test_build_from_catalog_dir(tmp_path):
    write_catalogs(str(tmp_path / "cat"))
    output = tmp_path / "out"
    args = [
        "--catalog_dir",
        str(tmp_path / "cat"),
        "--output_dir",
        str(output),
        "--num_dev",
        "3",
        "--num_test",
        "4",
        "--max_words",
        "10",
    ]
    assert real_corpus.main(args) == 0
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert manifest["dropped"] == {
        "duplicate source": 1,
        "untranslated": 1,
        "no letter": 1,
        "too long": 1,
    }
    assert [manifest["splits"][s]["pairs"] for s in ("train", "dev", "test")] == [
        23,
        3,
        4,
    ]
    lines = {
        name: (output / name).read_text("utf-8").splitlines()
        for name in ("train.en", "train.fr", "dev.en", "test.en", "test.raw.fr")
    }
    assert len(lines["train.en"]) == len(lines["train.fr"]) == 23
    all_sources = lines["train.en"] + lines["dev.en"] + lines["test.en"]
    assert len(set(all_sources)) == 30
    # The first catalog's translation wins a duplicate source.
    index = lines["train.en"].index("item 3") if "item 3" in lines["train.en"] else -1
    if index >= 0:
        assert lines["train.fr"][index] == "élément 3"
    assert all(line.startswith("Élément") for line in lines["test.raw.fr"])
    vocab = (output / "vocab.en").read_text("utf-8").splitlines()
    assert vocab[0] == "item\t23"
    # Same seed, same files.
    again = tmp_path / "again"
    assert real_corpus.main(args[:3] + [str(again)] + args[4:]) == 0
    for name in ("train.en", "test.fr", "vocab.fr"):
        assert (again / name).read_bytes() == (output / name).read_bytes()


def test_bad_catalog_dir_is_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.real_corpus",
            "--catalog_dir",
            str(tmp_path / "empty"),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --catalog_dir")
    assert "holds no .mo file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_budget_training_loop_marks_and_losses():
    losses = iter([4.0, 3.0, 2.0, 1.0])
    saved = []

    def step():
        return next(losses), 10

    def save(index):
        saved.append(index)
        return f"ckpt-{index}"

    result = common.budget_training_loop(
        {"max_steps": 4, "checkpoint_times": [0.0]}, step, save
    )
    assert result["steps"] == 4
    assert result["target_tokens"] == 40
    assert result["losses"] == [4.0, 3.0, 2.0, 1.0]
    assert saved == [0, 1]
    assert [(m["step"], m["checkpoint"]) for m in result["marks"]] == [
        (1, "ckpt-0"),
        (4, "ckpt-1"),
    ]
    assert result["marks"][0]["train_loss"] == 4.0
    assert result["marks"][1]["train_loss"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        common.budget_training_loop({}, step, save)


def test_budget_training_loop_one_mark_for_times_passed_together():
    saved = []

    def save(index):
        saved.append(index)
        return f"ckpt-{index}"

    result = common.budget_training_loop(
        {"max_steps": 3, "checkpoint_times": [0.0, 0.0, 0.0]},
        lambda: (1.0, 5),
        save,
    )
    # The first step passes all three times: one checkpoint, then the final.
    assert saved == [0, 1]
    assert [m["step"] for m in result["marks"]] == [1, 3]


def test_resident_split_reads_anon_and_file_kib(tmp_path):
    status = tmp_path / "status"
    status.write_text(
        "Name:\tpython\nVmRSS:\t  3072 kB\nRssAnon:\t  2048 kB\n"
        "RssFile:\t   1536 kB\nRssShmem:\t  0 kB\n",
        encoding="ascii",
    )
    assert common.resident_split_mb(str(status)) == {"anon": 2.0, "file": 1.5}
    assert common.resident_split_mb(str(tmp_path / "missing")) == {}


@pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="needs Linux's /proc"
)
def test_resident_split_sees_an_allocation_grow():
    before = common.resident_split_mb()["anon"]
    block = bytearray(64 * 1024 * 1024)  # zero-filled, so every page is touched
    after = common.resident_split_mb()["anon"]
    assert after - before > 60
    del block


def test_budget_training_loop_records_the_memory_split():
    result = common.budget_training_loop(
        {"max_steps": 1}, lambda: (1.0, 5), lambda index: f"ckpt-{index}"
    )
    split = result["rss_end_mb"]
    if os.path.exists("/proc/self/status"):
        assert set(split) == {"anon", "file"}
        assert split["anon"] > 1 and split["file"] > 1
    else:
        assert split == {}


def test_summary_table_shows_the_memory_split_and_dashes_without_it():
    from benchmarks import real_corpus_compare as compare

    def train(anon, file):
        run = {
            "steps": 100,
            "seconds": 10.0,
            "target_tokens": 1000,
            "cpu_seconds": 20.0,
            "peak_rss_mb": anon + file,
            "marks": [{"train_loss": 2.0}],
            "dev_loss": 3.0,
            "build_s": 1.0,
            "first_step_s": 1.0,
        }
        if anon is not None:
            run["rss_end_mb"] = {"anon": anon, "file": file}
        return run

    decoder = {"bleu": 10.0, "bleu_13a": 11.0, "process_wall_s": 5.0}
    decoder.update(seconds=1.0, peak_rss_mb=500.0)

    def runs(*splits):
        return [
            {"train": train(*s), "decoders": {1: decoder, 5: decoder}} for s in splits
        ]

    ours = compare.summarize(runs((800.0, 400.0), (900.0, 400.0), (700.0, 420.0)), 5)
    theirs = compare.summarize(runs((600.0, 200.0)), 5)
    assert ours["rss_anon_mb"] == 800.0 and ours["rss_file_mb"] == 400.0
    table = compare.summary_table({"ours": ours, "opennmt": theirs}, 5)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()}
    assert "| 800 " in rows["RSS at the end: allocated (MB)"]
    assert "1.33x" in rows["RSS at the end: allocated (MB)"]
    assert "2.00x" in rows["RSS at the end: mapped files (MB)"]

    old = dict(theirs, rss_anon_mb=float("nan"), rss_file_mb=float("nan"))
    table = compare.summary_table({"ours": ours, "opennmt": old}, 5)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()}
    cells = [c.strip() for c in rows["RSS at the end: allocated (MB)"].split("|")]
    assert cells[2:5] == ["800", "-", "-"]
    # Decoders timed before the command-line runs have no such figure.
    cells = [c.strip() for c in rows["decode greedy, command line (s)"].split("|")]
    assert cells[2:5] == ["-", "-", "-"]
    timed = dict(decoder, cli_process_wall_s=4.0)
    ours = compare.summarize(
        [{"train": train(1.0, 1.0), "decoders": {1: timed, 5: timed}}], 5
    )
    table = compare.summary_table({"ours": ours, "opennmt": theirs}, 5)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()}
    cells = [c.strip() for c in rows["decode beam 5, command line (s)"].split("|")]
    assert cells[2:5] == ["4.0", "-", "-"]


def test_train_spec_passes_our_bucket_flags_to_ours_only(tmp_path):
    from benchmarks import real_corpus_compare as compare

    args = compare.build_parser().parse_args(
        ["--ours_buckets", "auto", "--ours_pad_to_bucket"]
    )
    paths = {
        f"{split}_{side}": f"{split}.{side}"
        for split in ("train", "dev")
        for side in ("source", "target")
    }
    paths.update(
        {f"{p}vocab_{s}": "v" for p in ("", "onmt_") for s in ("source", "target")}
    )
    ours = compare.train_spec(args, "ours", paths, 0, str(tmp_path / "a"), "t")
    assert ours["buckets"] == "auto" and ours["pad_to_bucket"] is True
    theirs = compare.train_spec(args, "opennmt", paths, 0, str(tmp_path / "b"), "t")
    assert "pad_to_bucket" not in theirs and "buckets" not in theirs
    default = compare.build_parser().parse_args([])
    spec = compare.train_spec(default, "ours", paths, 0, str(tmp_path / "c"), "t")
    assert spec["pad_to_bucket"] is False
    assert spec["buckets"] == compare.train_buckets()


def _decode_args(*flags):
    from benchmarks import real_corpus_compare as compare

    return compare.build_parser().parse_args(list(flags))


def test_command_line_decode_runs_each_toolkits_own_command(tmp_path, monkeypatch):
    from benchmarks import real_corpus_compare as compare

    calls = []

    def call(command, stdout, stderr, env, cwd):
        assert os.path.isfile(os.path.join(cwd, "bin", "infer.py"))
        calls.append((command, env))
        return 0 if len(calls) < 3 else 1

    monkeypatch.setattr(compare.subprocess, "call", call)
    args = _decode_args("--max_decode_length", "40", "--onmt_length_bucket_width", "5")
    paths = {
        "test_source": "test.en",
        "onmt_vocab_source": "vs",
        "onmt_vocab_target": "vt",
    }
    train = {"model_dir": str(tmp_path / "run")}
    out = str(tmp_path / "out")
    seconds = compare.command_line_decode(
        args, paths, "ours", train, "run/ckpt-9", 5, out, str(tmp_path), "onmt-python"
    )
    assert seconds >= 0
    command, env = calls[0]
    assert command[1:3] == ["-m", "bin.infer"]
    flags = dict(arg[2:].split("=", 1) for arg in command[3:])
    assert flags["model_dir"] == train["model_dir"]
    assert flags["checkpoint_path"] == "run/ckpt-9"
    assert flags["batch_size"] == "32" and flags["progress"] == "false"
    assert json.loads(flags["model_params"]) == {
        "inference.beam_search.beam_width": 5,
        "inference.max_decode_length": 40,
    }
    assert json.loads(flags["tasks"]) == [
        {"class": "DecodeText", "params": {"output": out}}
    ]
    assert json.loads(flags["input_pipeline"])["params"] == {
        "source_files": ["test.en"]
    }
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"

    compare.command_line_decode(
        args, paths, "opennmt", train, "m/mark-3", 1, out, str(tmp_path), "onmt-python"
    )
    command, env = calls[1]
    assert command[:3] == ["onmt-python", "-m", "opennmt.bin.main"]
    # onmt-main takes --checkpoint_path before its subcommand.
    at = command.index("infer")
    assert command[at - 2 : at] == ["--checkpoint_path", "m/mark-3"]
    assert command[at + 1 :] == [
        "--features_file",
        "test.en",
        "--predictions_file",
        out,
    ]
    config = json.load(open(command[command.index("--config") + 1]))
    assert config["params"] == {
        "beam_width": 1,
        "maximum_decoding_length": 40,
        "length_penalty": 0.0,
    }
    assert config["infer"] == {"batch_size": 32, "length_bucket_width": 5}
    assert config["data"]["source_sequence_controls"] == {"start": False, "end": True}
    model_file = command[3].split("=", 1)[1]
    source = open(model_file).read()
    compile(source, model_file, "exec")
    assert "opennmt_model.NMTSmallDefaults()" in source
    assert "PYTHONPATH" not in env

    with pytest.raises(common.BenchmarkError, match=r"out\.log"):
        compare.command_line_decode(
            args, paths, "ours", train, "c", 1, out, str(tmp_path), "onmt-python"
        )


def test_ours_length_ratio_reaches_both_of_ours_decoders_only(
    tmp_path, monkeypatch, capsys
):
    from benchmarks import real_corpus_compare as compare

    args = _decode_args("--ours_max_decode_length_ratio", "1.5")
    paths = {
        "test_source": "test.en",
        "onmt_vocab_source": "vs",
        "onmt_vocab_target": "vt",
    }
    train = {"model_dir": str(tmp_path / "run")}
    ours = compare.infer_spec(args, "ours", paths, train, 0, "t", ["c"], ["o"], [1])
    assert ours["model_params"] == {"inference.max_decode_length_ratio": 1.5}
    theirs = compare.infer_spec(
        args, "opennmt", paths, train, 0, "t", ["c"], ["o"], [1]
    )
    assert "model_params" not in theirs
    default = compare.infer_spec(
        _decode_args(), "ours", paths, train, 0, "t", ["c"], ["o"], [1]
    )
    assert "model_params" not in default

    calls = []
    monkeypatch.setattr(
        compare.subprocess,
        "call",
        lambda command, **kwargs: calls.append(command) or 0,
    )
    compare.command_line_decode(
        args, paths, "ours", train, "c", 1, str(tmp_path / "out"), str(tmp_path), "p"
    )
    flags = dict(arg[2:].split("=", 1) for arg in calls[0][3:])
    assert json.loads(flags["model_params"])["inference.max_decode_length_ratio"] == 1.5

    assert compare.main(["--ours_max_decode_length_ratio", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --ours_max_decode_length_ratio must be >= 0 (0: off)."]


def test_same_lines_ignores_trailing_spaces_only(tmp_path):
    from benchmarks import real_corpus_compare as compare

    a, b, c = (tmp_path / n for n in "abc")
    a.write_text("le chat\nun chien\n", encoding="utf-8")
    b.write_text("le chat \nun chien\n", encoding="utf-8")
    c.write_text("le chat\nun chat\n", encoding="utf-8")
    assert compare.same_lines(a, b)
    assert not compare.same_lines(a, c)


def _full_run(seed, steps, bleu, seconds=600.0):
    """One seed of a full run's `--json` result, as JSON stores it."""

    def system(name, factor):
        train = {
            "steps": steps * factor,
            "seconds": seconds,
            "target_tokens": 10 * steps * factor,
            "cpu_seconds": 0.1 * steps,
            "peak_rss_mb": 1000.0,
            "rss_end_mb": {"anon": 700.0, "file": 300.0},
            "marks": [{"train_loss": 2.5}],
            "dev_loss": 3.0,
            "build_s": 1.0,
            "first_step_s": 2.0,
        }
        decoder = {"bleu": bleu * factor, "bleu_13a": bleu, "process_wall_s": 9.0}
        decoder.update(seconds=2.0, peak_rss_mb=700.0, cli_process_wall_s=8.0)
        curve = [[seconds / 2, steps // 2, bleu / 3], [seconds, steps, bleu * factor]]
        return {
            "seed": seed,
            "train": train,
            "decoders": {"1": decoder, "5": dict(decoder, bleu=bleu + 2)},
            "curve": curve,
        }

    return {"ours": system("ours", 1), "opennmt": system("opennmt", 2)}


def test_combine_takes_the_medians_over_the_seeds_of_several_runs(
    tmp_path, monkeypatch, capsys
):
    from benchmarks import compare_opennmt
    from benchmarks import real_corpus_compare as compare

    def no_training(*args, **kwargs):
        raise AssertionError("--combine must not build a venv or train")

    monkeypatch.setattr(compare_opennmt, "ensure_opennmt_venv", no_training)
    monkeypatch.setattr(compare_opennmt, "run_child", no_training)
    first, second = tmp_path / "s01.json", tmp_path / "s2.json"
    first.write_text(
        json.dumps({"runs": [_full_run(0, 100, 10), _full_run(1, 300, 14)]})
    )
    second.write_text(json.dumps({"runs": [_full_run(2, 200, 6, seconds=601.0)]}))
    plot, out = tmp_path / "bleu.png", tmp_path / "all.json"
    argv = ["--combine", f"{first},{second}", "--plot", str(plot), "--json", str(out)]
    assert compare.main(argv) == 0
    printed = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): line for line in printed.splitlines() if "|" in line
    }
    # Medians over seeds 0, 1, 2: steps 100 / 300 / 200 (OpenNMT-tf twice
    # as many), greedy BLEU 10 / 14 / 6 (OpenNMT-tf twice as high).
    cells = [c.strip() for c in rows["training steps"].split("|")]
    assert cells[2:5] == ["200", "400", "0.50x"]
    cells = [c.strip() for c in rows["BLEU greedy (tokens)"].split("|")]
    assert cells[2:5] == ["10.00", "20.00", "0.50x"]
    cells = [c.strip() for c in rows["BLEU beam 5 (tokens)"].split("|")]
    assert cells[2:4] == ["12.00", "12.00"]
    assert "ours seed 2 BLEU greedy: 300s/100 steps: 2.00, 601s/200 steps: 6.00" in (
        printed
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    combined = json.loads(out.read_text())
    assert [r["ours"]["seed"] for r in combined["runs"]] == [0, 1, 2]
    assert combined["summaries"]["opennmt"]["steps"] == 400


def test_combine_refuses_other_results_in_one_line(tmp_path, capsys):
    from benchmarks import real_corpus_compare as compare

    full = tmp_path / "full.json"
    full.write_text(json.dumps({"runs": [_full_run(0, 100, 10)]}))
    ab = tmp_path / "ab.json"
    ab.write_text(json.dumps({"ours:default": {"steps": 10}}))
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps({"runs": [_full_run(1, 100, 10, seconds=1200.0)]}))
    broken = tmp_path / "broken.json"
    run_ = _full_run(1, 100, 10)
    del run_["opennmt"]["curve"]
    broken.write_text(json.dumps({"runs": [run_]}))
    cases = [
        (f"{full},{tmp_path / 'missing.json'}", "cannot read"),
        (f"{full},{ab}", "holds no full run"),
        (f"{full},{broken}", "holds no full run"),
        (f"{full},{longer}", "trained for 600 to 1200 s"),
    ]
    for paths, message in cases:
        assert compare.main(["--combine", paths]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --combine:") and message in err, err
        assert len(err.splitlines()) == 1
    assert compare.main(["--combine", str(full), "--beam_width", "4"]) == 2
    assert "not 1 and 4; pass its --beam_width" in capsys.readouterr().err


def test_decode_length_limits_refuses_bad_input_in_one_line(tmp_path, capsys):
    from benchmarks import decode_length_limits

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "test.fr").write_text("a b\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    work = tmp_path / "work"
    base = ["--corpus_dir", str(corpus), "--work_dir", str(work)]
    for flags, message in (
        (["--model_dirs", str(tmp_path / "nope")], "is not a directory"),
        (["--model_dirs", str(empty)], "has no checkpoint"),
        (["--model_dirs", str(empty), "--ratios", "x"], "--ratios takes"),
        (["--model_dirs", str(empty), "--ratios", "-1"], "--ratios takes"),
        (["--model_dirs", str(empty), "--beams", "0"], "--beams takes"),
        (["--model_dirs", str(empty), "--offset", "-1"], "--offset must be"),
        (["--model_dirs", str(empty), "--split", "dev"], "dev.fr does not exist"),
    ):
        assert decode_length_limits.main(flags + base) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not work.exists()  # nothing written before the checks
    (empty / "mark-3.index").write_text("")
    (empty / "mark-12.index").write_text("")
    assert decode_length_limits.final_checkpoint(str(empty)).endswith("mark-12")


def test_train_profile_self_times_subtract_nested_events():
    from benchmarks import train_profile

    # (start, duration, name): "Process" holds a MatMul and an Add; a later
    # ParallelFor stands alone.
    events = [
        (10, 5, "while/Add:AddV2"),
        (0, 20, "ExecutorState::Process"),
        (2, 6, "while/MatMul:_MklMatMul"),
        (30, 4, "ParallelFor"),
    ]
    assert dict(train_profile.self_times(events)) == {
        "ExecutorState::Process": 9,
        "while/MatMul:_MklMatMul": 6,
        "while/Add:AddV2": 5,
        "ParallelFor": 4,
    }


def test_train_profile_parts_follow_the_op_scopes():
    from benchmarks.train_profile import part_of

    loss = "gradient_tape/projected_sequence_loss/logits/MatMul/MatMul:_MklMatMul"
    assert part_of(loss) == "output layer and loss"
    assert part_of("projected_sequence_loss/Softmax:_MklSoftmax") == (
        "output layer and loss"
    )
    decoder_grad = "gradient_tape/while/while_grad/body/_633/gradient_tape/x:Mul"
    assert part_of(decoder_grad) == "decoder loop, backward"
    assert part_of("while/body/_331/while/MatMul:_MklMatMul") == (
        "decoder loop, forward"
    )
    encoder_grad = (
        "gradient_tape/bidi_rnn_encoder/while/bidi_rnn_encoder/while_grad/body/"
        "_1/x/MatMul:_MklMatMul"
    )
    assert part_of(encoder_grad) == "encoder loops, backward"
    assert part_of("bidi_rnn_encoder/while/body/_2/x/MatMul:_MklMatMul") == (
        "encoder loops, forward"
    )
    assert part_of("cond/then/_10/cond/ResourceApplyAdam:ResourceApplyAdam") == (
        "update (clip, Adam)"
    )
    assert part_of("multiply_add_fusion.1") == "update (clip, Adam)"
    assert part_of("gradient_tape/att_keys/MatMul:_MklMatMul") == "other backward"
    assert part_of("att_keys/MatMul:_MklMatMul") == "other forward"
    assert part_of("ExecutorState::Process") == "executor and thread pool"


def test_train_profile_refuses_an_unknown_variant_in_one_line(capsys):
    from benchmarks import train_profile

    assert train_profile.main(["--model_variant", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --model_variant")
