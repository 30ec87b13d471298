"""Two-stage Matryoshka retrieval at 1,000,000 documents: latency, Recall@10 vs exact, bytes.

Corpus. The SciFact abstracts are encoded once with MODEL (honed's encoder, bf16 autocast where
the CPU runs it natively). They are kept as they are, and extended to ``--docs`` documents with
noisy copies: copy ``j`` (j = 0, 1, ...) of the corpus is built from abstract ``j mod 5,183`` as

    x = normalise(e + sigma * g),   g ~ N(0, I_dim),   sigma = 0.02 per dimension (seed 0)

so the noise has norm ~ 0.02 * sqrt(384) = 0.39 and a copy has cosine ~ 0.93 to its source (the
script prints the measured value): every abstract gets ~190 near neighbours, a denser corpus than
the original, which makes the shortlist's job harder, not easier.

Queries. The first ``--queries`` SciFact test queries (sorted ids), encoded with the same model.
Each is searched on its own (one query per call, as a service would), by exact full-dim search
and by two-stage search (shortlist at ``--shortlist-dim`` dims, re-rank at full dim), methods
interleaved query by query so that load changes hit them alike. The first ``--shortlists``
size (100) is the headline; the others show what a longer shortlist buys. Both indexes are written with
``Index.from_embeddings(out=...)`` and loaded memory-mapped (warm page cache).

Quality. On the real SciFact corpus and all its test queries, the planner's grid restricted to
exact 384 / exact 128 / two-stage 128 (float32 and int8) with the first shortlist gives test
nDCG@10 of two-stage against exact full-dim search.

    python bench/index_scale.py ../shared/data/scifact runs/scifact/model --docs 1000000 --queries 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def encode_scifact(data: str, model_path: str) -> dict:
    from honed.data import load_beir
    from honed.encode import EmbeddingCache, load_model, resolve_precision

    beir = load_beir(data)
    model = load_model(model_path, "cpu")
    cache = EmbeddingCache()  # precision auto: bf16 where the CPU does it natively
    doc_ids = list(beir.corpus)
    start = time.perf_counter()
    docs = cache.encode(model, [beir.corpus[d].full_text for d in doc_ids], show_progress_bar=True)
    seconds = time.perf_counter() - start
    qrels = beir.split("test")
    qids = sorted(qrels)
    queries = cache.encode(model, [beir.queries[q] for q in qids])
    return {
        "doc_ids": doc_ids,
        "docs": docs,
        "qids": qids,
        "queries": queries,
        "qrels": qrels,
        "encode_s": seconds,
        "precision": resolve_precision("auto", "cpu").value,
    }


def quality(enc: dict, shortlist_dim: int, shortlist: int) -> list[dict]:
    from honed.plan import plan_embeddings

    result = plan_embeddings(
        enc["docs"],
        enc["doc_ids"],
        enc["queries"],
        enc["qids"],
        enc["qrels"],
        dims=(shortlist_dim,),
        precisions=("float32", "int8"),
        shortlists=(shortlist,),
    )
    ref = result.reference.ndcg_at_10
    return [
        {
            "name": r.name,
            "ndcg@10": r.ndcg_at_10,
            "delta": r.ndcg_at_10 - ref,
            "recall@100": r.recall_at_100,
        }
        for r in result.rows
    ]


def synthetic_corpus(docs: np.ndarray, n: int, sigma: float, seed: int) -> np.ndarray:
    """The real rows, then noisy normalised copies up to ``n`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, docs.shape[1]), dtype=np.float32)
    m = min(n, len(docs))
    out[:m] = docs[:m]
    chunk = 100_000
    for start in range(m, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        block = docs[(rows - m) % len(docs)]  # (c, dim): copy j comes from abstract j mod 5,183
        block = block + sigma * rng.standard_normal(block.shape, dtype=np.float32)
        out[start : start + len(rows)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def time_searches(calls: dict, queries: np.ndarray) -> dict:
    """Per-query latency (ms) of each method, interleaved query by query, and their hits."""
    for call in calls.values():  # warm-up: page cache, lazy imports
        call(queries[:1])
    latency: dict[str, list[float]] = {name: [] for name in calls}
    hits: dict[str, list[list[str]]] = {name: [] for name in calls}
    for i in range(len(queries)):
        names = list(calls)
        names = names[i % len(names) :] + names[: i % len(names)]  # rotate the order
        for name in names:
            start = time.perf_counter()
            result = calls[name](queries[i : i + 1])
            latency[name].append((time.perf_counter() - start) * 1e3)
            hits[name].append([doc for doc, _ in result[0]])
    return {"latency": latency, "hits": hits}


def threads() -> str:
    import torch

    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    return f"torch {torch.get_num_threads()}, OpenBLAS {blas}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="SciFact BEIR folder")
    parser.add_argument("model", help="Matryoshka-trained model folder")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shortlist-dim", type=int, default=128)
    parser.add_argument(
        "--shortlists",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[100, 200],
        help="shortlist sizes; the first is the headline, the others show the trade-off",
    )
    parser.add_argument("--sigma", type=float, default=0.02, help="noise per dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the indexes (default: a temp folder)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    from honed.index import Index

    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}")
    enc = encode_scifact(args.data, args.model)
    n_src, dim = enc["docs"].shape
    print(f"encoded {n_src:,} abstracts in {enc['encode_s']:.0f} s ({enc['precision']})")
    qual = quality(enc, args.shortlist_dim, args.shortlists[0])

    corpus = synthetic_corpus(enc["docs"], args.docs, args.sigma, args.seed)
    copies = corpus[n_src : n_src + 10_000]
    cos = np.sum(copies * enc["docs"][np.arange(len(copies)) % n_src], axis=1)
    ids = [
        *enc["doc_ids"][: min(n_src, args.docs)],
        *(f"{enc['doc_ids'][j % n_src]}#{j}" for j in range(max(0, args.docs - n_src))),
    ]
    queries = enc["queries"][: args.queries]
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        indexes, build_s = {}, {}
        for precision in ("float32", "int8"):
            start = time.perf_counter()
            Index.from_embeddings(
                corpus, ids, args.shortlist_dim, precision, out=Path(work) / precision
            )
            build_s[precision] = time.perf_counter() - start
            indexes[precision] = Index.load(Path(work) / precision)
        del corpus
        f32, i8, sd = indexes["float32"], indexes["int8"], args.shortlist_dim
        calls = {f"exact {dim}-dim float32": lambda q: f32.search_exact(q, 10)}
        tiers = {f"exact {dim}-dim float32": f32.full.nbytes}
        for s in args.shortlists:
            for p, ix in (("float32", f32), ("int8", i8)):
                name = f"two-stage: {sd}-dim {p} top-{s}, re-rank at {dim}"
                calls[name] = lambda q, ix=ix, s=s: ix.search(q, 10, s)
                tiers[name] = ix.fast_tier_bytes
        timed = time_searches(calls, queries)
        full_bytes = f32.full.nbytes

    lat, hits = timed["latency"], timed["hits"]
    exact = next(iter(calls))
    rows = []
    for name in calls:
        recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(hits[name], hits[exact])])
        median = statistics.median(lat[name])
        rows.append(
            {
                "search": name,
                "fast_tier_mb": tiers[name] / 2**20,
                "of_full": tiers[name] / full_bytes,
                "median_ms": median,
                "p95_ms": float(np.percentile(lat[name], 95)),
                "speedup": statistics.median(lat[exact]) / median,
                "recall@10_vs_exact": float(recall),
            }
        )

    print(
        f"\ncorpus: {n_src:,} SciFact abstracts + {args.docs - n_src:,} noisy copies (sigma "
        f"{args.sigma}/dim, seed {args.seed}; copy-to-source cosine mean {cos.mean():.3f}, min "
        f"{cos.min():.3f}) = {args.docs:,} x {dim}; {len(queries)} SciFact test queries, k = 10, "
        f"one query per call; threads: {threads()}; index writes {build_s['float32']:.0f} s / {build_s['int8']:.0f} s"
    )
    print(
        "\n| search | fast tier MB | of float32 full | median ms | p95 ms | speed-up | Recall@10 vs exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['search']} | {r['fast_tier_mb']:,.0f} | 1/{1 / r['of_full']:.0f} | {r['median_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['speedup']:.2f}x | {r['recall@10_vs_exact']:.4f} |"
        )
    print(f"\nSciFact test ({len(enc['qids'])} queries, {n_src:,} documents), nDCG@10:")
    print(f"\n| search | nDCG@10 | vs exact {dim} |\n|---|---:|---:|")
    for q in qual:
        print(f"| {q['name']} | {q['ndcg@10']:.4f} | {q['delta']:+.4f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "rows": rows,
                    "quality": qual,
                    "copy_cosine_mean": float(cos.mean()),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
