#!/usr/bin/env bash
# The main job on built-in toy data: generate the toy reverse task, train a
# small attention model (example_configs/nmt_small.yml) with bin/train.py,
# translate the test set with beam search through bin/infer.py from the
# checkpoint with the best dev loss, and score it with sacrebleu.
#
# Environment: WORK_DIR (default ./toy_run), TRAIN_STEPS (default 1500),
# BEAM_WIDTH (default 5), SEED (training's --tf_random_seed, default 1; the
# data are always the same), PYTHON (default python).
set -euo pipefail

BASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${BASE_DIR}"
PYTHON=${PYTHON:-python}
WORK_DIR=${WORK_DIR:-${BASE_DIR}/toy_run}
TRAIN_STEPS=${TRAIN_STEPS:-1500}
BEAM_WIDTH=${BEAM_WIDTH:-5}
SEED=${SEED:-1}
DATA_DIR=${WORK_DIR}/data
MODEL_DIR=${WORK_DIR}/model
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

DATA_TYPE=reverse OUTPUT_DIR="${DATA_DIR}" PYTHON="${PYTHON}" bash bin/data/toy.sh

pipeline() {  # pipeline <split> [with targets]
  echo "class: ParallelTextInputPipeline
params:
  source_files: [${DATA_DIR}/$1/sources.txt]"
  if [ "${2:-}" = targets ]; then
    echo "  target_files: [${DATA_DIR}/$1/targets.txt]"
  fi
}

echo "== Training for ${TRAIN_STEPS} steps into ${MODEL_DIR}"
"${PYTHON}" -m bin.train \
  --config_paths="example_configs/nmt_small.yml,example_configs/train_seq2seq.yml,example_configs/text_metrics_bpe.yml" \
  --model_params "
    vocab_source: ${DATA_DIR}/train/vocab.sources.txt
    vocab_target: ${DATA_DIR}/train/vocab.targets.txt
    optimizer.learning_rate: 0.001" \
  --input_pipeline_train "$(pipeline train targets)" \
  --input_pipeline_dev "$(pipeline dev targets)" \
  --hooks "[{class: PrintModelAnalysisHook}]" \
  --batch_size 32 \
  --tf_random_seed "${SEED}" \
  --train_steps "${TRAIN_STEPS}" \
  --eval_every_n_steps 500 \
  --save_checkpoints_steps 500 \
  --output_dir "${MODEL_DIR}"

echo "== Translating the test set with beam width ${BEAM_WIDTH} (best checkpoint)"
"${PYTHON}" -m bin.infer \
  --tasks "- class: DecodeText" \
  --model_dir "${MODEL_DIR}" \
  --checkpoint_path best \
  --model_params "inference.beam_search.beam_width: ${BEAM_WIDTH}" \
  --input_pipeline "$(pipeline test)" \
  > "${WORK_DIR}/test.predictions.txt"

echo "== A few translations (source => prediction)"
paste -d '\t' <(head -n 5 "${DATA_DIR}/test/sources.txt") \
  <(head -n 5 "${WORK_DIR}/test.predictions.txt") | sed 's/\t/   =>   /'

echo "== Test BLEU (sacrebleu, tokenize none)"
"${PYTHON}" -m sacrebleu "${DATA_DIR}/test/targets.txt" \
  -i "${WORK_DIR}/test.predictions.txt" --tokenize none -b
