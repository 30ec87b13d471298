"""Hybrid (dense + BM25) with the tuned model of a finished run, fusion chosen on dev.

Recreates the run's dev/test split (same seed, same leaked queries dropped), encodes the corpus
with RUN_DIR/model, and compares dense, BM25 and the dev-chosen fusion on test, as `honed run`
does. Then writes hybrid indexes of the same embeddings and texts (`Index.from_embeddings(...,
bm25=True, fusion=...)`, what `honed index --fusion ...` writes), checks that
`Index.search_hybrid` reproduces the test nDCG@10, and times dense two-stage search against
hybrid search, one query per call, interleaved query by query.

    python bench/hybrid.py ../shared/data/scifact runs/scifact
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from honed.data.beir import load_beir
from honed.data.splits import split_data
from honed.encoding.encoder import EmbeddingCache, load_model
from honed.evaluation.fusion_choice import choose_fusion
from honed.evaluation.metrics import evaluate, per_query
from honed.evaluation.runs import bm25_runs, dense_runs, metrics_of
from honed.evaluation.significance import paired_test
from honed.index.index import Index
from honed.pipeline.config import RunConfig
from honed.retrieval.fusion import FusionConfig

DATA, RUN = sys.argv[1], sys.argv[2]
data = load_beir(DATA)
dropped = set(json.load(open(f"{RUN}/data.json"))["train_queries_dropped_as_leaked"])
cfg = RunConfig(data=DATA, out="unused")
parts = split_data(data, cfg.split_rule, frozenset(dropped))
train, dev, test = parts.train, parts.dev, parts.test
splits = {"dev": dev, "test": test}
ids = list(data.corpus)
texts = [data.corpus[d].full_text for d in ids]
model = load_model(f"{RUN}/model", "cpu")
cache = EmbeddingCache()
t0 = time.perf_counter()
docs = cache.encode(model, texts, show_progress_bar=True)
print(f"encoded {len(ids)} documents in {time.perf_counter() - t0:.0f} s")
qids = sorted({*dev, *test})
q = dict(zip(qids, cache.encode(model, [data.queries[x] for x in qids])))
dense = dense_runs(q, docs, ids, splits, [384])
bm25 = bm25_runs(data, ids, texts, splits)
choice = choose_fusion(dev, dense["dev"]["384"], bm25["dev"]["bm25"])
fusion = FusionConfig(choice.method, choice.dense_weight, source=f"dev of {RUN} (bench/hybrid.py)")
hyb = {s: {"hybrid": fusion.fuse(dense[s]["384"], bm25[s]["bm25"])} for s in splits}
print("choice", choice.method.value, choice.dense_weight, round(choice.dev_ndcg10, 4))
for name, runs in (("dense", dense), ("bm25", bm25), ("hybrid", hyb)):
    m = metrics_of(runs, splits)
    print(name, {s: round(list(v.values())[0]["ndcg@10"], 4) for s, v in m.items()})
pq = {
    n: per_query(test, r, ["ndcg@10"])["ndcg@10"]
    for n, r in (
        ("dense", dense["test"]["384"]),
        ("bm25", bm25["test"]["bm25"]),
        ("hybrid", hyb["test"]["hybrid"]),
    )
}
print("hybrid vs dense:", paired_test(pq["dense"], pq["hybrid"], "ndcg@10").sentence())
print("hybrid vs bm25:", paired_test(pq["bm25"], pq["hybrid"], "ndcg@10").sentence())

# ---- the index serves the same hybrid: reproduction and latency --------------------------
test_ids = sorted(test)
test_texts = [data.queries[x] for x in test_ids]
test_emb = np.stack([q[x] for x in test_ids])  # (n_test, 384)
pipeline_ndcg = evaluate(test, hyb["test"]["hybrid"], ["ndcg@10"])["ndcg@10"]
with tempfile.TemporaryDirectory() as tmp:
    indexes = {}
    for sd in (384, 128):  # 384: exact dense part, as the run; 128: honed index's default
        t0 = time.perf_counter()
        out = Path(tmp) / f"ix{sd}"
        indexes[sd] = Index.from_embeddings(
            docs, ids, sd, out=out, texts=texts, bm25=True, fusion=fusion
        )
        print(f"index {sd}: written in {time.perf_counter() - t0:.1f} s (bm25/ included)")
    for sd, index in indexes.items():
        for shortlist in (100, 200):
            hits = index.search_hybrid(test_texts, test_emb, k=100, shortlist=shortlist)
            run = {qid: dict(row) for qid, row in zip(test_ids, hits)}
            ndcg = evaluate(test, run, ["ndcg@10"])["ndcg@10"]
            print(
                f"index {sd}d shortlist {shortlist}: hybrid test nDCG@10 {ndcg:.4f} "
                f"(pipeline {pipeline_ndcg:.4f}, diff {ndcg - pipeline_ndcg:+.4f})"
            )

    index = Index.load(Path(tmp) / "ix128")  # memory-mapped, as honed search opens it
    index.hybrid_parts()  # load bm25/ once, outside the timings
    times: dict[str, list[float]] = {"encode": [], "dense": [], "hybrid": []}
    for _ in range(3):  # warm-up
        index.search(test_emb[:1], k=10, shortlist=100)
        index.search_hybrid(test_texts[:1], test_emb[:1], k=10, shortlist=100)
    for i, (text, row) in enumerate(zip(test_texts, test_emb)):
        t0 = time.perf_counter()
        model.encode([text], normalize_embeddings=True)
        times["encode"].append(time.perf_counter() - t0)
        order = ("dense", "hybrid") if i % 2 == 0 else ("hybrid", "dense")
        for name in order:
            t0 = time.perf_counter()
            if name == "dense":
                index.search(row[None, :], k=10, shortlist=100)
            else:
                index.search_hybrid([text], row[None, :], k=10, shortlist=100)
            times[name].append(time.perf_counter() - t0)
    for name, values in times.items():
        ms = np.array(values) * 1000
        print(
            f"latency {name}: median {statistics.median(ms):.2f} ms, "
            f"p95 {np.percentile(ms, 95):.2f} ms over {len(ms)} queries"
        )
