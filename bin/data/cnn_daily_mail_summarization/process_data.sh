#!/usr/bin/env bash
# CNN / Daily Mail summarization data, prepared as the original recipe did:
# every .story file becomes one article (the source) and one summary (its
# highlights joined with "; ", the target); the first DEV_SIZE stories are
# the dev set, the next TEST_SIZE the test set, the rest the training set;
# a SentencePiece BPE model learned on the training text (articles and
# summaries together, bin/tools/learn_subwords.py) splits every file into
# subwords and gives the vocabulary.
#
#   process_data.sh STORIES_DIR OUTPUT_DIR          # .story files already extracted
#   process_data.sh --from ARCHIVE_DIR OUTPUT_DIR   # the downloaded archives
#   process_data.sh --download OUTPUT_DIR           # download them first
#
# The archives are the question-answering corpus' story files
# (cs.nyu.edu/~kcho/DMQA): cnn_stories.tgz (cnn/stories/*.story) and
# dailymail_stories.tgz (dailymail/stories/*.story); --from uses those of
# the two found in ARCHIVE_DIR. --download fetches them from
# CNN_STORIES_URL and DAILYMAIL_STORIES_URL (Google Drive by default, which
# may refuse scripted downloads: then download them with a browser and use
# --from).
#
# Environment: PYTHON (default python3), VOCAB_SIZE (subword pieces, default
# 32000), DEV_SIZE and TEST_SIZE (default 1000 each), SUBWORD_SAMPLE (lines
# SentencePiece trains on, default 1000000; 0: all).
#
# Writes to OUTPUT_DIR: stories_and_summaries.txt, data.{stories,summaries},
# {train,dev,test}.{stories,summaries} (raw text, one example per line),
# bpe.model, bpe.vocab and {train,dev,test}.bpe.{stories,summaries}. Decode
# with postproc_fn seq2seq.data.postproc.decode_sentencepiece (see
# docs/summarization.md).

set -euo pipefail

BASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
HERE="${BASE_DIR}/bin/data/cnn_daily_mail_summarization"
TOOLS="${BASE_DIR}/bin/tools"
PYTHON="${PYTHON:-python3}"
VOCAB_SIZE="${VOCAB_SIZE:-32000}"
DEV_SIZE="${DEV_SIZE:-1000}"
TEST_SIZE="${TEST_SIZE:-1000}"
SUBWORD_SAMPLE="${SUBWORD_SAMPLE:-1000000}"
CNN_STORIES_URL="${CNN_STORIES_URL:-https://drive.google.com/uc?export=download&confirm=t&id=0BwmD_VLjROrfTHk4NFg2SndKcjQ}"
DAILYMAIL_STORIES_URL="${DAILYMAIL_STORIES_URL:-https://drive.google.com/uc?export=download&confirm=t&id=0BwmD_VLjROrfM1BxdkxVaTY2bWs}"
USAGE="usage: process_data.sh STORIES_DIR OUTPUT_DIR | --from ARCHIVE_DIR OUTPUT_DIR | --download OUTPUT_DIR"

die() {
  echo "process_data.sh: error: $*" >&2
  exit 2
}

MODE=stories
case "${1:-}" in
  --from)
    [ $# -eq 3 ] || die "${USAGE}"
    MODE=archives
    ARCHIVE_DIR="$2"
    OUTPUT_DIR="$3"
    [ -d "${ARCHIVE_DIR}" ] || die "--from ${ARCHIVE_DIR}: not a directory"
    ;;
  --download)
    [ $# -eq 2 ] || die "${USAGE}"
    MODE=download
    OUTPUT_DIR="$2"
    ARCHIVE_DIR="${OUTPUT_DIR}/archives"
    ;;
  -h | --help)
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    [ $# -eq 2 ] || die "${USAGE}"
    STORIES_DIR="$1"
    OUTPUT_DIR="$2"
    [ -d "${STORIES_DIR}" ] || die "${STORIES_DIR}: not a directory of .story files"
    ;;
esac
for count in DEV_SIZE TEST_SIZE VOCAB_SIZE SUBWORD_SAMPLE; do
  [[ "${!count}" =~ ^[0-9]+$ ]] || die "${count}=${!count} must be a whole number"
done

mkdir -p "${OUTPUT_DIR}"
echo "Writing to ${OUTPUT_DIR}"

if [ "${MODE}" = download ]; then
  mkdir -p "${ARCHIVE_DIR}"
  for pair in "cnn_stories.tgz|${CNN_STORIES_URL}" "dailymail_stories.tgz|${DAILYMAIL_STORIES_URL}"; do
    name="${pair%%|*}"
    url="${pair#*|}"
    if [ -s "${ARCHIVE_DIR}/${name}" ]; then
      echo "Already downloaded: ${ARCHIVE_DIR}/${name}"
      continue
    fi
    echo "Downloading ${name}. This may take a while..."
    if ! curl -fsSL -o "${ARCHIVE_DIR}/${name}" "${url}"; then
      rm -f "${ARCHIVE_DIR}/${name}"
      die "could not download ${name} from ${url}; download it with a browser and use --from DIR"
    fi
  done
fi

if [ "${MODE}" != stories ]; then
  STORIES_DIR="${OUTPUT_DIR}/stories"
  mkdir -p "${STORIES_DIR}"
  found=0
  for name in cnn_stories.tgz dailymail_stories.tgz; do
    if [ -f "${ARCHIVE_DIR}/${name}" ]; then
      echo "Extracting ${ARCHIVE_DIR}/${name}..."
      tar -xzf "${ARCHIVE_DIR}/${name}" -C "${STORIES_DIR}" ||
        die "cannot extract ${ARCHIVE_DIR}/${name}: not a gzipped tar archive"
      found=$((found + 1))
    fi
  done
  [ "${found}" -gt 0 ] ||
    die "${ARCHIVE_DIR} holds neither cnn_stories.tgz nor dailymail_stories.tgz"
fi

# One article<TAB>summary line per story, in a fixed (sorted) order.
find "${STORIES_DIR}/" -name '*.story' -type f | LC_ALL=C sort > "${OUTPUT_DIR}/story_files.txt"
[ -s "${OUTPUT_DIR}/story_files.txt" ] || die "no .story file under ${STORIES_DIR}"
"${PYTHON}" "${HERE}/process_story.py" --list "${OUTPUT_DIR}/story_files.txt" \
  > "${OUTPUT_DIR}/stories_and_summaries.txt"

cut -f 1 "${OUTPUT_DIR}/stories_and_summaries.txt" > "${OUTPUT_DIR}/data.stories"
cut -f 2 "${OUTPUT_DIR}/stories_and_summaries.txt" > "${OUTPUT_DIR}/data.summaries"
total="$(wc -l < "${OUTPUT_DIR}/data.stories")"
[ "${total}" -gt $((DEV_SIZE + TEST_SIZE)) ] ||
  die "only ${total} stories: fewer than DEV_SIZE + TEST_SIZE + 1 = $((DEV_SIZE + TEST_SIZE + 1))"

# The first DEV_SIZE lines are dev, the next TEST_SIZE test, the rest train.
for side in stories summaries; do
  head -n "${DEV_SIZE}" "${OUTPUT_DIR}/data.${side}" > "${OUTPUT_DIR}/dev.${side}"
  head -n $((DEV_SIZE + TEST_SIZE)) "${OUTPUT_DIR}/data.${side}" | tail -n +$((DEV_SIZE + 1)) \
    > "${OUTPUT_DIR}/test.${side}"
  tail -n +$((DEV_SIZE + TEST_SIZE + 1)) "${OUTPUT_DIR}/data.${side}" > "${OUTPUT_DIR}/train.${side}"
done
wc -l "${OUTPUT_DIR}"/{train,dev,test}.stories

echo "Learning a subword model of ${VOCAB_SIZE} pieces. This may take a while..."
sample=()
if [ "${SUBWORD_SAMPLE}" != 0 ]; then
  sample=(--input_sentence_size "${SUBWORD_SAMPLE}")
fi
"${PYTHON}" "${TOOLS}/learn_subwords.py" \
  --input "${OUTPUT_DIR}/train.stories" "${OUTPUT_DIR}/train.summaries" \
  --model_prefix "${OUTPUT_DIR}/bpe" --vocab_size "${VOCAB_SIZE}" --model_type bpe --hard_vocab_limit false \
  ${sample[@]+"${sample[@]}"}

for data in train dev test; do
  for side in stories summaries; do
    "${PYTHON}" "${TOOLS}/apply_subwords.py" --model "${OUTPUT_DIR}/bpe.model" \
      "${OUTPUT_DIR}/${data}.${side}" > "${OUTPUT_DIR}/${data}.bpe.${side}"
  done
done

echo "All done."
