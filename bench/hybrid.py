"""Hybrid (dense + BM25) with the tuned model of a finished run, fusion chosen on dev.

Recreates the run's dev/test split (same seed, same leaked queries dropped), encodes the corpus
with RUN_DIR/model, and compares dense, BM25 and the dev-chosen fusion on test.

    python bench/hybrid.py ../shared/data/scifact runs/scifact
"""

import json
import sys

from honed.compare import paired_test
from honed.data import load_beir
from honed.encode import EmbeddingCache, load_model
from honed.evaluate import per_query
from honed.fuse import choose_fusion, fuse
from honed.pipeline import RunConfig, bm25_runs, dense_runs, metrics_of, split_data

DATA, RUN = sys.argv[1], sys.argv[2]
data = load_beir(DATA)
dropped = set(json.load(open(f"{RUN}/data.json"))["train_queries_dropped_as_leaked"])
cfg = RunConfig(data=DATA, out="unused")
train, dev, test, _ = split_data(data, cfg, frozenset(dropped))
splits = {"dev": dev, "test": test}
ids = list(data.corpus)
texts = [data.corpus[d].full_text for d in ids]
model = load_model(f"{RUN}/model", "cpu")
cache = EmbeddingCache()
docs = cache.encode(model, texts, show_progress_bar=True)
qids = sorted({*dev, *test})
q = dict(zip(qids, cache.encode(model, [data.queries[x] for x in qids])))
dense = dense_runs(q, docs, ids, splits, [384])
bm25 = bm25_runs(data, ids, texts, splits)
choice = choose_fusion(dev, dense["dev"]["384"], bm25["dev"]["bm25"])
hyb = {
    s: {
        "hybrid": fuse(
            [dense[s]["384"], bm25[s]["bm25"]], choice.method, [choice.weight, 1 - choice.weight]
        )
    }
    for s in splits
}
print("choice", choice.method, choice.weight, round(choice.dev_ndcg10, 4))
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
