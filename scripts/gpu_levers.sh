#!/usr/bin/env bash
# Issue #7 lever sweep on a lent GPU machine (offline), from what scripts/gpu_prepare.sh made
# (.whl/ and .gpu/, carried along): bench/levers.py on SciFact, every variant chosen on dev.
# Usage: scripts/gpu_levers.sh OUT_DIR SECONDS [VARIANT ...]   (results: OUT_DIR/levers.jsonl)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1 seconds=$2
shift 2
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/scifact/qrels "$out"
for f in corpus queries; do gunzip -c .gpu/scifact/$f.jsonl.gz > /tmp/scifact/$f.jsonl; done
cp .gpu/scifact/qrels/*.tsv /tmp/scifact/qrels/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, sentence_transformers as s; print('torch', torch.__version__, 'st', s.__version__)"
timeout "$seconds" python3 bench/levers.py /tmp/scifact --out /tmp/levers --base .gpu/model \
  --device cuda --precision bf16 --no-save --rotate --results "$out/levers.jsonl" \
  --alphas 0.5,0.7,0.85 --interp-only default train:rotate=true selfsup:1 \
  --remine-epochs 1 --remine-only default selfsup:1 --variants "$@" 2>&1 \
  | grep -v -E "it/s\]|s/it\]|Loading weights|Writing model" | tee "$out/levers.log"
