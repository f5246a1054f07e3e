#!/usr/bin/env bash
# Writes the toy copy/reverse data set: train (10000 examples), dev (1000) and
# test (1000), plus vocab.sources.txt and vocab.targets.txt in train/.
#
#   DATA_TYPE=reverse OUTPUT_DIR=/tmp/toy_reverse bin/data/toy.sh
#
# Environment: DATA_TYPE (copy or reverse, default copy), OUTPUT_DIR (default
# $HOME/nmt_data/toy_$DATA_TYPE), PYTHON (default python3). Each split has its
# own fixed seed, so the output is the same on every run. With
# SENTENCEPIECE=true, spm_train/spm_encode (google/sentencepiece) also write
# BPE-encoded copies (*.bpe.txt).

set -euo pipefail

BASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

DATA_TYPE="${DATA_TYPE:-copy}"
case "${DATA_TYPE}" in
  copy | reverse) ;;
  *)
    echo "toy.sh: error: DATA_TYPE must be 'copy' or 'reverse', got '${DATA_TYPE}'" >&2
    exit 2
    ;;
esac
echo "Using type=${DATA_TYPE}. Set DATA_TYPE to 'copy' or 'reverse' to change it."

OUTPUT_DIR="${OUTPUT_DIR:-${HOME}/nmt_data/toy_${DATA_TYPE}}"
echo "Writing to ${OUTPUT_DIR}. Set OUTPUT_DIR to change it."

OUTPUT_DIR_TRAIN="${OUTPUT_DIR}/train"
OUTPUT_DIR_DEV="${OUTPUT_DIR}/dev"
OUTPUT_DIR_TEST="${OUTPUT_DIR}/test"
mkdir -p "${OUTPUT_DIR}"

generate() {
  # generate <output dir> <number of examples> <seed>
  "${PYTHON}" "${BASE_DIR}/bin/tools/generate_toy_data.py" \
    --type "${DATA_TYPE}" \
    --num_examples "$2" \
    --vocab_size 20 \
    --max_len 20 \
    --seed "$3" \
    --output_dir "$1"
}

generate "${OUTPUT_DIR_TRAIN}" 10000 1
generate "${OUTPUT_DIR_DEV}" 1000 2
generate "${OUTPUT_DIR_TEST}" 1000 3

for side in sources targets; do
  "${PYTHON}" "${BASE_DIR}/bin/tools/generate_vocab.py" \
    < "${OUTPUT_DIR_TRAIN}/${side}.txt" \
    > "${OUTPUT_DIR_TRAIN}/vocab.${side}.txt"
  echo "Wrote ${OUTPUT_DIR_TRAIN}/vocab.${side}.txt"
done

if [ "${SENTENCEPIECE:-false}" = true ]; then
  if ! command -v spm_train > /dev/null; then
    echo "toy.sh: error: SENTENCEPIECE=true needs spm_train and spm_encode on PATH" >&2
    exit 2
  fi
  spm_train \
    --input="${OUTPUT_DIR_TRAIN}/sources.txt,${OUTPUT_DIR_TRAIN}/targets.txt" \
    --model_prefix="${OUTPUT_DIR}/bpe" \
    --vocab_size=20 \
    --model_type=bpe
  for dir in "${OUTPUT_DIR_TRAIN}" "${OUTPUT_DIR_DEV}" "${OUTPUT_DIR_TEST}"; do
    for side in sources targets; do
      spm_encode --model="${OUTPUT_DIR}/bpe.model" --output_format=piece \
        < "${dir}/${side}.txt" > "${dir}/${side}.bpe.txt"
    done
  done
fi
