#!/usr/bin/env python3
"""Builds a real English->French parallel corpus from software translation
catalogs, for benchmarks on natural text.

The sentence pairs are the `msgid -> msgstr` entries of the gettext catalogs
(`.mo` files) that Debian packages ship: user-interface strings, menu items,
tooltips, error messages and short help texts of LibreOffice, Inkscape, VLC,
coreutils, GTK and GLib, written by people. The packages are fetched with
`apt-get download` (no installation) into a cache and unpacked with
`dpkg -x`; nothing else is downloaded. `--catalog_dir DIR` reads every `.mo`
file under a directory instead (the English->X catalogs of one language).

    python -m benchmarks.real_corpus --output_dir /tmp/real_fr

writes into the output directory:

- `train.en`, `train.fr`, `dev.en`, `dev.fr`, `test.en`, `test.fr`: one
  tokenized sentence per line (tokens separated by spaces, lower-cased
  unless `--keep_case`);
- `test.raw.en`, `test.raw.fr` (and `dev.raw.*`): the same sentences cleaned
  but not tokenized, for BLEU on detokenized text;
- `vocab.en`, `vocab.fr`: the training words of each side as
  `bin/tools/generate_vocab.py` writes them (`word<TAB>count`);
- `manifest.json`: the packages and versions read, the settings and the
  statistics.

Cleaning: the catalog's header, untranslated and fuzzy-empty entries are
dropped; a message context (`msgctxt`) is dropped; plural entries keep their
singular forms only; keyboard accelerators (`_File`, `~File`, `&File`) and
markup tags are removed, `&&` becomes `&`, whitespace is squeezed; pairs
with no letter on a side (placeholders aside), longer than `--max_words` tokens on a side, or
copied untranslated (same text, more than two words) are dropped; pairs are
deduplicated by tokenized source (the first in catalog order is kept). Then
they are shuffled with `--seed` and split into `--num_dev`, `--num_test` and
the rest for training.

Tokens: printf/Python/brace placeholders (`%s`, `%1$d`, `%(name)s`, `{0}`)
are single tokens, words keep inner hyphens, dots and apostrophes (`l'`,
`file.txt`, `e-mail`), every other non-space character is a token.
"""

import argparse
import collections
import hashlib
import html
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)

# The Debian 12 (bookworm) packages read, with the versions the published
# figures used. A package whose pinned version the archive no longer has
# (stable updates replace old ones) is taken at the archive's version, with a
# warning: the corpus then differs slightly; the manifest records what was
# read.
PACKAGES = (
    ("libreoffice-l10n-fr", "4:7.4.7-1+deb12u14"),
    ("inkscape", "1.2.2-2+deb12u1"),
    ("vlc-l10n", "3.0.24-0+deb12u1"),
    ("coreutils", "9.1-1"),
    ("libgtk-3-common", "3.24.38-2~deb12u3"),
    ("libglib2.0-data", "2.74.6-2+deb12u9"),
)
LANGUAGE = "fr"
SOURCE_SUFFIX = "en"


def default_cache_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(cache, "seq2seq-benchmarks", "real-corpus")


class CorpusError(Exception):
    """A problem the user can fix; printed as one `error:` line, exit 2."""


# ------------------------------------------------------------ .mo files


def read_mo(data):
    """The `(msgid, msgstr)` entries of a compiled gettext catalog.

    The format: a 28-byte header (magic 0x950412de in the file's byte order,
    revision, entry count N, offsets of the original and translation tables),
    then two tables of N `(length, offset)` pairs pointing at the strings.
    A `msgid` may hold a context (`context\\x04msgid`) and plural forms
    separated by NUL, as may a `msgstr`.

    Args:
      data: The file's bytes.

    Returns:
      A list of `(msgid, msgstr)` str pairs, decoded with the charset of the
      catalog's header (UTF-8 when none), header entry included.

    Raises:
      ValueError: Not a .mo file, or truncated.
    """
    if len(data) < 28:
        raise ValueError("too short for a .mo file")
    for order in ("<", ">"):
        if struct.unpack(order + "I", data[:4])[0] == 0x950412DE:
            break
    else:
        raise ValueError("not a .mo file (bad magic number)")
    _, count, originals, translations = struct.unpack(order + "4I", data[4:20])

    def string(table, index):
        length, offset = struct.unpack(
            order + "2I", data[table + 8 * index : table + 8 * index + 8]
        )
        if offset + length > len(data):
            raise ValueError("truncated .mo file")
        return data[offset : offset + length]

    raw = [(string(originals, i), string(translations, i)) for i in range(count)]
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            match = re.search(rb"charset=([A-Za-z0-9_.-]+)", msgstr)
            if match and match.group(1).lower() != b"charset":
                charset = match.group(1).decode("ascii")
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    return [
        (m.decode(charset, errors="replace"), s.decode(charset, errors="replace"))
        for m, s in raw
    ]


# -------------------------------------------------------------- cleaning

_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_ACCEL_TILDE = re.compile(r"~(?=\w)")
_ACCEL_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\W_])|(?<=[^\W\d_])_(?=[^\W_])")
_ACCEL_AMPERSAND = re.compile(r"&(?=[^\W_])(?![A-Za-z]+;)")


def strip_accelerators(text):
    """Removes keyboard accelerator marks: `~` (LibreOffice), `_` (GTK) and
    `&` (Qt) before a letter, and only when the text has exactly one such
    mark, so that identifiers (`file_name`) and `&&` survive; `&&` then
    becomes `&`."""
    if len(_ACCEL_TILDE.findall(text)) == 1:
        text = _ACCEL_TILDE.sub("", text)
    if len(_ACCEL_UNDERSCORE.findall(text)) == 1:
        text = _ACCEL_UNDERSCORE.sub("", text)
    single = re.sub("&&", "", text)
    if len(_ACCEL_AMPERSAND.findall(single)) == 1:
        text = re.sub(r"(?<!&)&(?=[^\W_])(?![A-Za-z]+;)", "", text)
    return text.replace("&&", "&")


def clean_text(text):
    """One catalog string as plain one-line text (accelerators and markup
    tags removed, HTML entities decoded, whitespace squeezed)."""
    text = _TAG.sub(" ", text)
    text = strip_accelerators(text)
    text = html.unescape(text)
    return " ".join(text.split())


def catalog_pairs(entries):
    """`(source, target)` pairs of a catalog's `read_mo` entries: header and
    untranslated entries dropped, contexts dropped, plural entries reduced to
    their singular forms, both sides cleaned (`clean_text`)."""
    pairs = []
    for msgid, msgstr in entries:
        if not msgid or not msgstr:
            continue
        msgid = msgid.split("\x04", 1)[-1].split("\x00")[0]
        msgstr = msgstr.split("\x00")[0]
        source, target = clean_text(msgid), clean_text(msgstr)
        if source and target:
            pairs.append((source, target))
    return pairs


# ------------------------------------------------------------ tokenizing

_TOKEN = re.compile(
    r"%[A-Z][A-Z0-9_]+%?"  # LibreOffice's %PRODUCTNAME
    r"|\$\([A-Z][A-Z0-9_]*\)"  # LibreOffice's $(ARG1)
    r"|(?<![\w-])--?[A-Za-z][\w-]*"  # command-line options: -b, --ignore-backups
    r"|%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|ll|[hlLqjzt])?[diouxXeEfFgGcsSpn%]"  # printf
    r"|%\(\w+\)[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]"  # Python %(name)s
    r"|\{\w*(?::[^{}\s]*)?\}"  # {0}, {name}, {:d}
    r"|\w+(?:['’](?=\w))"  # elided article or pronoun: l' d' qu'
    r"|\w+(?:[-.]\w+)*"  # words, e-mail, file.txt, 1.5
    r"|\S"
)
_LETTER = re.compile(r"[^\W\d_]")


def tokenize(text, lowercase=True):
    """Splits cleaned text into tokens (see the module docstring)."""
    tokens = _TOKEN.findall(text)
    return [t.lower() for t in tokens] if lowercase else tokens


_NO_SPACE_BEFORE = set(".,)]}%")
_NO_SPACE_AFTER = set("([{")


def detokenize(tokens):
    """Joins tokens back into text: no space before `. , ) ] } %` (colons,
    semicolons and marks, which French spaces, keep their space), none after
    opening brackets or an elided `l'`."""
    text = ""
    for index, token in enumerate(tokens):
        if index and not (
            token in _NO_SPACE_BEFORE or text[-1] in _NO_SPACE_AFTER or text[-1] in "'’"
        ):
            text += " "
        text += token
    return text


def _has_word(tokens):
    """Whether a letter occurs outside placeholders (`%s`, `{0}`, `$(ARG)`)."""
    return any(_LETTER.search(t) and not t.startswith(("%", "{", "$(")) for t in tokens)


def select_pairs(pairs, max_words, lowercase):
    """Filters, tokenizes and deduplicates `(source, target)` pairs.

    Returns:
      `(kept, counts)`: kept is a list of `(source_tokens, target_tokens,
      source_text, target_text)`; counts says how many were dropped why.
    """
    counts = collections.Counter()
    seen = set()
    kept = []
    for source, target in pairs:
        source_tokens = tokenize(source, lowercase)
        target_tokens = tokenize(target, lowercase)
        if not (_has_word(source_tokens) and _has_word(target_tokens)):
            counts["no letter"] += 1
            continue
        if max(len(source_tokens), len(target_tokens)) > max_words:
            counts["too long"] += 1
            continue
        if source == target and len(source_tokens) > 2:
            counts["untranslated"] += 1
            continue
        key = " ".join(source_tokens)
        if key in seen:
            counts["duplicate source"] += 1
            continue
        seen.add(key)
        kept.append((source_tokens, target_tokens, source, target))
    return kept, counts


# ------------------------------------------------------------- packages


def _run(command, cwd=None):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_packages(packages, cache_dir):
    """Downloads the `.deb`s (once) into `cache_dir/debs`.

    Returns:
      A list of `(package, version, deb_path)`, the version being the one
      downloaded.

    Raises:
      CorpusError: apt-get is missing or cannot download a package.
    """
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise CorpusError(
            "apt-get and dpkg are needed to fetch the catalogs (a Debian or "
            "Ubuntu machine); elsewhere give --catalog_dir DIR with .mo files."
        )
    deb_dir = os.path.join(cache_dir, "debs")
    os.makedirs(deb_dir, exist_ok=True)
    fetched = []
    for package, version in packages:
        deb = _find_deb(deb_dir, package, version)
        if deb is None:
            result = _run(["apt-get", "download", f"{package}={version}"], deb_dir)
            if result.returncode != 0:
                sys.stderr.write(
                    f"warning: {package} {version} is not in the archive "
                    "(replaced by an update?); taking its current version, "
                    "so the corpus will differ slightly from the pinned one.\n"
                )
                result = _run(["apt-get", "download", package], deb_dir)
                if result.returncode != 0:
                    detail = (result.stderr.strip().splitlines() or ["?"])[-1]
                    raise CorpusError(
                        f"apt-get download {package} failed ({detail}); run "
                        "`apt-get update` first, or give --catalog_dir DIR."
                    )
            deb = _find_deb(deb_dir, package, None)
        fetched.append((package, _deb_version(deb), deb))
    return fetched


def _find_deb(deb_dir, package, version):
    quoted = None if version is None else version.replace(":", "%3a")
    for name in sorted(os.listdir(deb_dir)):
        parts = name[: -len(".deb")].split("_") if name.endswith(".deb") else []
        if len(parts) == 3 and parts[0] == package:
            if quoted is None or parts[1] == quoted:
                return os.path.join(deb_dir, name)
    return None


def _deb_version(deb):
    return os.path.basename(deb).split("_")[1].replace("%3a", ":")


def catalogs_of_deb(deb, language, work_dir):
    """Unpacks a .deb into `work_dir` and lists its `.mo` files of
    `language` (`.../<language>/LC_MESSAGES/*.mo`), sorted."""
    target = os.path.join(work_dir, os.path.basename(deb))
    result = _run(["dpkg", "-x", deb, target])
    if result.returncode != 0:
        raise CorpusError(f"dpkg -x {deb} failed: {result.stderr.strip()}")
    return list_catalogs(target, language)


def list_catalogs(directory, language=None):
    """Every `.mo` file under `directory` (with `language`, only those in a
    `<language>/LC_MESSAGES` folder), sorted by path."""
    found = []
    for root, _, files in os.walk(directory):
        if language and not root.endswith(os.path.join(language, "LC_MESSAGES")):
            continue
        found.extend(os.path.join(root, f) for f in files if f.endswith(".mo"))
    return sorted(found)


# --------------------------------------------------------------- output


def write_vocab(path, token_lines):
    """Writes a vocabulary of tokenized lines with `bin/tools/generate_vocab`'s
    own counting and ordering; returns its size."""
    if _REPO_ROOT not in sys.path:
        sys.path.insert(0, _REPO_ROOT)
    from bin.tools import generate_vocab

    vocab = generate_vocab.select_vocab(generate_vocab.count_tokens(token_lines))
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{token}\t{count}\n" for token, count in vocab)
    return len(vocab)


def _write(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(line + "\n" for line in lines)


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def build_corpus(
    output_dir,
    catalogs,
    sources_read,
    num_dev=1000,
    num_test=1000,
    max_words=50,
    seed=1234,
    lowercase=True,
):
    """Reads the catalogs, cleans, splits and writes the corpus.

    Args:
      output_dir: Where the files go (created).
      catalogs: `.mo` paths, in the order that decides which duplicate wins.
      sources_read: What the catalogs came from, for the manifest.
      num_dev, num_test: Sizes of the held-out splits.
      max_words: Longest side kept, in tokens.
      seed: Seed of the shuffle before the split.
      lowercase: Lower-case the tokenized files.

    Returns:
      The manifest dict (also written to `manifest.json`).

    Raises:
      CorpusError: Too few pairs for the splits, or an unreadable catalog.
    """
    pairs = []
    per_catalog = {}
    for path in catalogs:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            found = catalog_pairs(read_mo(data))
        except ValueError as exc:
            raise CorpusError(f"{path}: {exc}; remove it or rebuild it.") from exc
        per_catalog[os.path.basename(path)] = per_catalog.get(
            os.path.basename(path), 0
        ) + len(found)
        pairs.extend(found)
    kept, dropped = select_pairs(pairs, max_words, lowercase)
    if len(kept) <= num_dev + num_test:
        raise CorpusError(
            f"only {len(kept)} pairs after cleaning, not more than --num_dev + "
            f"--num_test = {num_dev + num_test}; give more catalogs or smaller "
            "splits."
        )
    random.Random(seed).shuffle(kept)
    splits = {
        "dev": kept[:num_dev],
        "test": kept[num_dev : num_dev + num_test],
        "train": kept[num_dev + num_test :],
    }
    os.makedirs(output_dir, exist_ok=True)
    stats = {}
    files = {}
    for name, chunk in splits.items():
        for side, index in ((SOURCE_SUFFIX, 0), (LANGUAGE, 1)):
            path = os.path.join(output_dir, f"{name}.{side}")
            _write(path, [" ".join(p[index]) for p in chunk])
            files[f"{name}.{side}"] = path
            if name != "train":
                raw = os.path.join(output_dir, f"{name}.raw.{side}")
                _write(raw, [p[index + 2] for p in chunk])
                files[f"{name}.raw.{side}"] = raw
        stats[name] = {
            "pairs": len(chunk),
            "mean_tokens_" + SOURCE_SUFFIX: _mean(len(p[0]) for p in chunk),
            "mean_tokens_" + LANGUAGE: _mean(len(p[1]) for p in chunk),
        }
    vocab_sizes = {}
    for side, index in ((SOURCE_SUFFIX, 0), (LANGUAGE, 1)):
        path = os.path.join(output_dir, f"vocab.{side}")
        vocab_sizes[side] = write_vocab(
            path, (" ".join(p[index]) for p in splits["train"])
        )
        files[f"vocab.{side}"] = path
    manifest = {
        "pair": f"{SOURCE_SUFFIX}-{LANGUAGE}",
        "sources": sources_read,
        "catalog_pairs": per_catalog,
        "settings": {
            "num_dev": num_dev,
            "num_test": num_test,
            "max_words": max_words,
            "seed": seed,
            "lowercase": lowercase,
        },
        "raw_pairs": len(pairs),
        "dropped": dict(dropped),
        "splits": stats,
        "vocab_sizes": vocab_sizes,
        "sha256": {key: _sha256(path) for key, path in sorted(files.items())},
    }
    with open(os.path.join(output_dir, "manifest.json"), "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
    return manifest


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def describe(manifest):
    """The printed summary of a corpus manifest."""
    lines = [
        f"{manifest['pair']} corpus from {len(manifest['sources'])} source(s): "
        + ", ".join(f"{s['name']} {s['version']}" for s in manifest["sources"]),
        f"{manifest['raw_pairs']} catalog pairs; dropped: "
        + (
            ", ".join(f"{v} {k}" for k, v in sorted(manifest["dropped"].items()))
            or "none"
        ),
    ]
    src, tgt = SOURCE_SUFFIX, LANGUAGE
    for name in ("train", "dev", "test"):
        s = manifest["splits"][name]
        lines.append(
            f"  {name}: {s['pairs']} pairs, mean {s['mean_tokens_' + src]:.1f} "
            f"{src} / {s['mean_tokens_' + tgt]:.1f} {tgt} tokens"
        )
    v = manifest["vocab_sizes"]
    lines.append(f"  vocabularies (train): {v[src]} {src} words, {v[tgt]} {tgt} words")
    return "\n".join(lines)


def corpus_paths(output_dir):
    """The files of a corpus built into `output_dir` (keys `train_source`,
    `train_target`, `dev_source`, ..., `test_raw_target`, `vocab_source`,
    `vocab_target`)."""
    paths = {}
    for name in ("train", "dev", "test"):
        paths[f"{name}_source"] = os.path.join(output_dir, f"{name}.{SOURCE_SUFFIX}")
        paths[f"{name}_target"] = os.path.join(output_dir, f"{name}.{LANGUAGE}")
    for name in ("dev", "test"):
        for key, side in (("source", SOURCE_SUFFIX), ("target", LANGUAGE)):
            paths[f"{name}_raw_{key}"] = os.path.join(output_dir, f"{name}.raw.{side}")
    paths["vocab_source"] = os.path.join(output_dir, f"vocab.{SOURCE_SUFFIX}")
    paths["vocab_target"] = os.path.join(output_dir, f"vocab.{LANGUAGE}")
    return paths


def ensure_corpus(output_dir, cache_dir=None, **kwargs):
    """Builds the default corpus into `output_dir` unless its manifest is
    already there; returns the manifest."""
    manifest_path = os.path.join(output_dir, "manifest.json")
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as handle:
            return json.load(handle)
    return build_from_packages(output_dir, cache_dir or default_cache_dir(), **kwargs)


def build_from_packages(output_dir, cache_dir, **kwargs):
    """Fetches `PACKAGES` and builds the corpus from their catalogs."""
    fetched = fetch_packages(PACKAGES, cache_dir)
    with tempfile.TemporaryDirectory(prefix="real_corpus_") as work_dir:
        catalogs, sources = [], []
        for package, version, deb in fetched:
            found = catalogs_of_deb(deb, LANGUAGE, work_dir)
            catalogs.extend(found)
            sources.append(
                {
                    "name": package,
                    "version": version,
                    "catalogs": [os.path.basename(p) for p in found],
                }
            )
        return build_corpus(output_dir, catalogs, sources, **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="Where to write.")
    parser.add_argument(
        "--catalog_dir",
        help="Read every .mo file under this directory (English msgids, "
        "one target language) instead of fetching the Debian packages.",
    )
    parser.add_argument(
        "--cache_dir",
        default=default_cache_dir(),
        help="Where the downloaded packages are kept.",
    )
    parser.add_argument("--num_dev", type=int, default=1000)
    parser.add_argument("--num_test", type=int, default=1000)
    parser.add_argument(
        "--max_words", type=int, default=50, help="Longest side kept, in tokens."
    )
    parser.add_argument("--seed", type=int, default=1234, help="Split seed.")
    parser.add_argument(
        "--keep_case", action="store_true", help="Do not lower-case the tokens."
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        for flag in ("num_dev", "num_test", "max_words"):
            if getattr(args, flag) < 1:
                raise CorpusError(f"--{flag} must be at least 1.")
        kwargs = dict(
            num_dev=args.num_dev,
            num_test=args.num_test,
            max_words=args.max_words,
            seed=args.seed,
            lowercase=not args.keep_case,
        )
        if args.catalog_dir:
            if not os.path.isdir(args.catalog_dir):
                raise CorpusError(
                    f"--catalog_dir {args.catalog_dir}: no such directory."
                )
            catalogs = list_catalogs(args.catalog_dir)
            if not catalogs:
                raise CorpusError(
                    f"--catalog_dir {args.catalog_dir} holds no .mo file; "
                    "compile .po files with msgfmt first."
                )
            manifest = build_corpus(
                args.output_dir,
                catalogs,
                [{"name": args.catalog_dir, "version": "-", "catalogs": catalogs}],
                **kwargs,
            )
        else:
            manifest = build_from_packages(args.output_dir, args.cache_dir, **kwargs)
    except CorpusError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    print(describe(manifest))
    print(f"written to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
