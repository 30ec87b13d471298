"""HNSW shortlist vs flat shortlist: build time, per-query latency, Recall@10 vs exact search.

Corpus. ``--docs`` synthetic vectors of ``--dim`` dims whose variance decays with the dimension
(``x_j ~ N(0, 1 / (1 + j))``, then L2-normalised), so the leading dims carry most of the signal
as in a Matryoshka model (seed 0). Queries are noisy copies of random documents,
``q = normalise(x + g)`` with ``g`` drawn like ``x``: cosine ~0.7 to their source document.
Gaussian data has a high intrinsic dimension, the hard case for a graph index, so recall on real
embeddings is usually higher at the same ``efSearch``.

Method. Both indexes hold the same vectors in memory (``Index.from_embeddings``): the flat one
scans a float32 fast tier of ``--shortlist-dim`` dims; the HNSW one searches a graph of the same
prefixes (``M``, ``efConstruction`` as given). Both re-rank a shortlist of ``--shortlist`` with the
full vectors and return 10. Queries run one at a time (as a service would), methods interleaved
query by query so that load changes hit them alike; latency is the median. Recall@10 is the
share of exact full-dim top-10 documents found.

    python bench/ann.py --docs 200000 --queries 200 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(1.0 + np.arange(dim))).astype(np.float32)
    x = rng.standard_normal((n, dim), dtype=np.float32) * scale  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(hits: list[list[tuple[str, float]]], truth: list[list[tuple[str, float]]]) -> float:
    found = [len({d for d, _ in h} & {d for d, _ in t}) / len(t) for h, t in zip(hits, truth)]
    return float(np.mean(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shortlist-dim", type=int, default=128)
    parser.add_argument("--shortlist", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="faiss and BLAS threads")
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ef-search", default="100,200,400", help="efSearch values to try")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from honed.encoding.dims import truncate
    from honed.index.ann import AnnKind, HnswConfig, build_hnsw
    from honed.index.index import Index

    docs = synthetic(args.docs, args.dim, 0)
    rng = np.random.default_rng(1)
    sources = rng.integers(0, args.docs, args.queries)
    queries = docs[sources] + synthetic(args.queries, args.dim, 2) * 1.0
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(args.docs)]
    sd, shortlist = args.shortlist_dim, args.shortlist
    with threadpool_limits(args.threads):
        flat = Index.from_embeddings(docs, ids, sd)
        truth = flat.search_exact(queries, 10)
        config = HnswConfig(m=args.m, ef_construction=args.ef_construction, threads=args.threads)
        start = time.perf_counter()
        graph = build_hnsw([truncate(flat.full, sd)], sd, args.docs, config)
        build_s = time.perf_counter() - start
        print(f"hnsw built in {build_s:.1f} s", file=sys.stderr, flush=True)
        hnsw = Index(replace(flat.info, ann=AnnKind.HNSW), ids, flat.full, flat.short, ann=graph)
        efs = [int(e) for e in args.ef_search.split(",")]
        methods: dict[str, Callable[[np.ndarray], list]] = {
            "flat": lambda q: flat.search(q, 10, shortlist)
        }
        for ef in efs:
            methods[f"hnsw ef={ef}"] = partial(hnsw.search, k=10, shortlist=shortlist, ef_search=ef)
        times: dict[str, list[float]] = {m: [] for m in methods}
        hits: dict[str, list] = {m: [] for m in methods}
        for q in queries:
            for name, search in methods.items():
                start = time.perf_counter()
                hits[name] += search(q[None])
                times[name].append(time.perf_counter() - start)
    result = {
        "docs": args.docs,
        "dim": args.dim,
        "shortlist_dim": sd,
        "shortlist": shortlist,
        "queries": args.queries,
        "threads": args.threads,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "hnsw_build_s": round(build_s, 1),
        "graph_mb": round(args.docs * (4 * sd + 8 * args.m) / 2**20, 1),
        "fast_tier_mb": round(flat.fast_tier_bytes / 2**20, 1),
        "methods": {
            name: {
                "median_ms": round(1000 * statistics.median(times[name]), 2),
                "recall@10": round(recall(hits[name], truth), 4),
            }
            for name in methods
        },
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
