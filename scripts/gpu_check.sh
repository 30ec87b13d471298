#!/usr/bin/env bash
# Run the SciFact pipeline on a GPU machine without network, from what scripts/gpu_prepare.sh
# made (.whl/ and .gpu/, carried along). Prints stage times, test nDCG@10 and peak GPU memory.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (needs python3 with torch + sentence-transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/honed-gpu}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/scifact/qrels
for f in corpus queries; do gunzip -c .gpu/scifact/$f.jsonl.gz > /tmp/scifact/$f.jsonl; done
cp .gpu/scifact/qrels/*.tsv /tmp/scifact/qrels/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - "$out" <<'PY'
import json, sys, time, torch
from honed import RunConfig, run_pipeline
start = time.perf_counter()
result = run_pipeline(
    RunConfig(data="/tmp/scifact", out=sys.argv[1], base_model=".gpu/model", device="cuda",
              precision="bf16", overwrite=True),
    notify=lambda m: print(f"[honed] {m}", flush=True),
)
wall = time.perf_counter() - start
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
print("stage seconds:", json.dumps(result.timings))
print(f"wall: {wall:.0f} s; peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
print(f"training: {result.training['rows_per_second']:.1f} rows/s, kept epoch {result.training['best_epoch']}")
for dim, values in result.metrics["tuned"]["test"].items():
    base = result.metrics["base"]["test"][dim]["ndcg@10"]
    print(f"test nDCG@10 @{dim}: tuned {values['ndcg@10']:.4f} (base {base:.4f})")
print("\n".join(result.verdict["sentences"]))
PY
