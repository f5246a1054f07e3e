#!/usr/bin/env bash
# WMT'16 English-German, prepared as the original recipe did: download the
# training corpora (Europarl v7, Common Crawl, News Commentary v11) and the
# newstest 2014-2016 dev/test sets, extract them, convert the SGML test sets
# to text, tokenize (Moses rules, sacremoses), drop pairs longer than 80
# tokens, build word and character vocabularies (bin/tools/generate_vocab.py),
# and learn and apply one shared subword model (SentencePiece BPE,
# bin/tools/learn_subwords.py) with its vocabulary.
#
#   bin/data/wmt16_en_de.sh                      # download (about 1.5 GB)
#   bin/data/wmt16_en_de.sh --from ~/downloads   # archives already there
#
# --from DIR takes the five archives from DIR instead of downloading them,
# each under its download name or the name the original saved it as:
#   de-en.tgz or europarl-v7-de-en.tgz
#   training-parallel-commoncrawl.tgz or common-crawl.tgz
#   training-parallel-nc-v11.tgz or nc-v11.tgz
#   dev.tgz, test.tgz
#
# Environment: OUTPUT_DIR (default $HOME/nmt_data/wmt16_de_en), PYTHON
# (default python3), MERGE_OPS (subword vocabulary size, default 32000; the
# file names say bpe.$MERGE_OPS as the original's did), MAX_VOCAB_SIZE (word
# vocabularies, default 50000), MAX_LEN (longest kept sentence in tokens,
# default 80), THREADS (tokenizer processes, default 8), SUBWORD_SAMPLE
# (lines SentencePiece trains on, default 2000000; 0: all).
#
# Writes to OUTPUT_DIR: train.{en,de}, newstest201{4,5,6}.{en,de} (raw text),
# *.tok.{en,de}, train.tok.clean.{en,de} and train.clean.{en,de} (the same
# pairs, untokenized), vocab.50k.{en,de}, vocab.tok.char.{en,de},
# vocab.char.{en,de}, bpe.$MERGE_OPS.model, vocab.bpe.$MERGE_OPS, and
# *.tok.bpe.$MERGE_OPS.{en,de} / *.tok.clean.bpe.$MERGE_OPS.{en,de}.
# Decode the subword output with postproc_fn
# seq2seq.data.postproc.decode_sentencepiece (example_configs/text_metrics_sp.yml).

set -euo pipefail

BASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
MERGE_OPS="${MERGE_OPS:-32000}"
MAX_VOCAB_SIZE="${MAX_VOCAB_SIZE:-50000}"
MAX_LEN="${MAX_LEN:-80}"
THREADS="${THREADS:-8}"
SUBWORD_SAMPLE="${SUBWORD_SAMPLE:-2000000}"
TOOLS="${BASE_DIR}/bin/tools"

die() {
  echo "wmt16_en_de.sh: error: $*" >&2
  exit 2
}

FROM_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from)
      [ $# -ge 2 ] || die "--from needs a directory holding the downloaded archives"
      FROM_DIR="$2"
      shift 2
      ;;
    --from=*)
      FROM_DIR="${1#--from=}"
      shift
      ;;
    -h | --help)
      sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument '$1'; usage: wmt16_en_de.sh [--from DIR]" ;;
  esac
done
if [ -n "${FROM_DIR}" ] && [ ! -d "${FROM_DIR}" ]; then
  die "--from ${FROM_DIR}: not a directory"
fi

OUTPUT_DIR="${OUTPUT_DIR:-${HOME}/nmt_data/wmt16_de_en}"
OUTPUT_DIR_DATA="${OUTPUT_DIR}/data"
echo "Writing to ${OUTPUT_DIR}. To change this, set the OUTPUT_DIR environment variable."
mkdir -p "${OUTPUT_DIR_DATA}"

# name in OUTPUT_DIR_DATA | download URL | other accepted name with --from
ARCHIVES=(
  "europarl-v7-de-en.tgz|http://www.statmt.org/europarl/v7/de-en.tgz|de-en.tgz"
  "common-crawl.tgz|http://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz|training-parallel-commoncrawl.tgz"
  "nc-v11.tgz|http://data.statmt.org/wmt16/translation-task/training-parallel-nc-v11.tgz|training-parallel-nc-v11.tgz"
  "dev.tgz|http://data.statmt.org/wmt16/translation-task/dev.tgz|dev.tgz"
  "test.tgz|http://data.statmt.org/wmt16/translation-task/test.tgz|test.tgz"
)

fetch() {  # fetch <url> <file>
  if command -v wget > /dev/null; then
    wget -nc -nv -O "$2" "$1" || { rm -f "$2"; die "could not download $1; download it by hand and use --from DIR"; }
  elif command -v curl > /dev/null; then
    curl -fsSL -o "$2" "$1" || { rm -f "$2"; die "could not download $1; download it by hand and use --from DIR"; }
  else
    die "neither wget nor curl is installed; download the archives by hand and use --from DIR"
  fi
}

for entry in "${ARCHIVES[@]}"; do
  IFS='|' read -r name url other <<< "${entry}"
  target="${OUTPUT_DIR_DATA}/${name}"
  if [ -n "${FROM_DIR}" ]; then
    if [ -f "${FROM_DIR}/${name}" ]; then
      source_file="${FROM_DIR}/${name}"
    elif [ -f "${FROM_DIR}/${other}" ]; then
      source_file="${FROM_DIR}/${other}"
    else
      die "--from ${FROM_DIR}: neither ${other} nor ${name} is there (download ${url})"
    fi
    echo "Using ${source_file}"
    ln -sf "$(cd "$(dirname "${source_file}")" && pwd)/$(basename "${source_file}")" "${target}"
  elif [ -s "${target}" ]; then
    echo "Already downloaded: ${target}"
  else
    echo "Downloading ${url}. This may take a while..."
    fetch "${url}" "${target}"
  fi
done

echo "Extracting all files..."
for entry in "${ARCHIVES[@]}"; do
  IFS='|' read -r name _ _ <<< "${entry}"
  directory="${OUTPUT_DIR_DATA}/${name%.tgz}"
  mkdir -p "${directory}"
  tar -xzf "${OUTPUT_DIR_DATA}/${name}" -C "${directory}" ||
    die "cannot extract ${OUTPUT_DIR_DATA}/${name}: not a gzipped tar archive"
done

find_member() {  # find_member <archive name> <file name>: its extracted path
  local directory="${OUTPUT_DIR_DATA}/${1%.tgz}" found
  found="$(find "${directory}" -name "$2" -type f | sort | head -n 1)"
  [ -n "${found}" ] || die "$1 has no file $2; is it the WMT'16 archive?"
  echo "${found}"
}

for lang in en de; do
  europarl="$(find_member europarl-v7-de-en.tgz "europarl-v7.de-en.${lang}")"
  common_crawl="$(find_member common-crawl.tgz "commoncrawl.de-en.${lang}")"
  news_commentary="$(find_member nc-v11.tgz "news-commentary-v11.de-en.${lang}")"
  cat "${europarl}" "${common_crawl}" "${news_commentary}" > "${OUTPUT_DIR}/train.${lang}"
  wc -l "${OUTPUT_DIR}/train.${lang}"
done
[ "$(wc -l < "${OUTPUT_DIR}/train.en")" = "$(wc -l < "${OUTPUT_DIR}/train.de")" ] ||
  die "train.en and train.de differ in length; an archive is damaged"

echo "Converting the SGML dev/test sets to text..."
for year in 2014 2015 2016; do
  archive=dev.tgz
  if [ "${year}" = 2016 ]; then archive=test.tgz; fi
  source_sgm="$(find_member "${archive}" "newstest${year}-deen-src.de.sgm")"
  reference_sgm="$(find_member "${archive}" "newstest${year}-deen-ref.en.sgm")"
  "${PYTHON}" "${TOOLS}/prepare_corpus.py" sgm_to_text "${source_sgm}" \
    > "${OUTPUT_DIR}/newstest${year}.de"
  "${PYTHON}" "${TOOLS}/prepare_corpus.py" sgm_to_text "${reference_sgm}" \
    > "${OUTPUT_DIR}/newstest${year}.en"
done

SETS="train newstest2014 newstest2015 newstest2016"
for set in ${SETS}; do
  for lang in en de; do
    echo "Tokenizing ${OUTPUT_DIR}/${set}.${lang}..."
    "${PYTHON}" "${TOOLS}/prepare_corpus.py" tokenize --lang "${lang}" \
      --threads "${THREADS}" "${OUTPUT_DIR}/${set}.${lang}" \
      > "${OUTPUT_DIR}/${set}.tok.${lang}"
  done
done

echo "Cleaning the training data (1 to ${MAX_LEN} tokens a sentence)..."
"${PYTHON}" "${TOOLS}/prepare_corpus.py" clean \
  "${OUTPUT_DIR}/train.tok" de en "${OUTPUT_DIR}/train.tok.clean" 1 "${MAX_LEN}" \
  --also "${OUTPUT_DIR}/train" "${OUTPUT_DIR}/train.clean"

echo "Building vocabularies..."
for lang in en de; do
  "${PYTHON}" "${TOOLS}/generate_vocab.py" --delimiter "" \
    < "${OUTPUT_DIR}/train.tok.clean.${lang}" > "${OUTPUT_DIR}/vocab.tok.char.${lang}"
  "${PYTHON}" "${TOOLS}/generate_vocab.py" --delimiter "" \
    < "${OUTPUT_DIR}/train.clean.${lang}" > "${OUTPUT_DIR}/vocab.char.${lang}"
  "${PYTHON}" "${TOOLS}/generate_vocab.py" --max_vocab_size "${MAX_VOCAB_SIZE}" \
    < "${OUTPUT_DIR}/train.tok.clean.${lang}" > "${OUTPUT_DIR}/vocab.50k.${lang}"
done

echo "Learning a shared subword model of ${MERGE_OPS} pieces. This may take a while..."
sample=()
if [ "${SUBWORD_SAMPLE}" != 0 ]; then
  sample=(--input_sentence_size "${SUBWORD_SAMPLE}")
fi
"${PYTHON}" "${TOOLS}/learn_subwords.py" \
  --input "${OUTPUT_DIR}/train.tok.clean.de" "${OUTPUT_DIR}/train.tok.clean.en" \
  --model_prefix "${OUTPUT_DIR}/bpe.${MERGE_OPS}" \
  --vocab_size "${MERGE_OPS}" --model_type bpe --hard_vocab_limit false ${sample[@]+"${sample[@]}"}
mv "${OUTPUT_DIR}/bpe.${MERGE_OPS}.vocab" "${OUTPUT_DIR}/vocab.bpe.${MERGE_OPS}"

echo "Applying the subword model to the tokenized files..."
for lang in en de; do
  for file in "${OUTPUT_DIR}"/*.tok."${lang}" "${OUTPUT_DIR}"/*.tok.clean."${lang}"; do
    outfile="${file%.*}.bpe.${MERGE_OPS}.${lang}"
    "${PYTHON}" "${TOOLS}/apply_subwords.py" --model "${OUTPUT_DIR}/bpe.${MERGE_OPS}.model" \
      "${file}" > "${outfile}"
    echo "${outfile}"
  done
done

echo "All done."
