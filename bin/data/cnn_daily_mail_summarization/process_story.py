#!/usr/bin/env python3
"""Turns CNN / Daily Mail `.story` files into `article<TAB>summary` lines.

A story file holds the article's paragraphs, then its highlights, each after
an `@highlight` line. The article's whitespace (newlines included) is
collapsed to single spaces, and the highlights are joined with "; " into
one summary, as in the original recipe.

    process_story.py < one.story                    # one line, as the original
    process_story.py --list story_files.txt > out   # many files, one per line

With `--list`, files are read in the list's order; stories without an
article or without highlights are left out and counted on stderr.
Standard library only.
"""

import argparse
import io
import re
import sys

HIGHLIGHT = "@highlight"


def process_story(text):
    """`(article, summary)` of a story's text; either may be empty."""
    parts = [part.strip() for part in text.split(HIGHLIGHT)]
    article = re.sub(r"\s+", " ", parts[0]).strip()
    highlights = [re.sub(r"\s+", " ", part).strip() for part in parts[1:]]
    summary = "; ".join(h for h in highlights if h)
    return article, summary


def _line(article, summary):
    # A tab inside the text would shift the columns.
    return f"{article.replace(chr(9), ' ')}\t{summary.replace(chr(9), ' ')}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--list", help="A file naming one .story file per line (default: stdin)."
    )
    args = parser.parse_args(argv)
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    if not args.list:
        text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        out.write(_line(*process_story(text.read())))
        out.flush()
        return 0
    written = skipped = 0
    try:
        with open(args.list, encoding="utf-8") as names:
            for name in names:
                name = name.rstrip("\n")
                if not name:
                    continue
                with open(name, encoding="utf-8", errors="replace") as story:
                    article, summary = process_story(story.read())
                if article and summary:
                    out.write(_line(article, summary))
                    written += 1
                else:
                    skipped += 1
    except OSError as err:
        print(f"process_story: error: {err}", file=sys.stderr)
        return 2
    out.flush()
    print(
        f"process_story: {written} stories written, {skipped} without an "
        "article or highlights left out.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
