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
    from honed.data.beir import load_beir
    from honed.encoding.encoder import EmbeddingCache, load_model, resolve_precision

    beir = load_beir(data)
    model = load_model(model_path, "cpu")
    from honed.encoding.disk_cache import resolve_cache_dir

    # precision auto: bf16 where the CPU does it natively; the on-disk cache makes reruns cheap
    cache = EmbeddingCache(directory=resolve_cache_dir("auto"))
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
    from honed.index.planner import plan_embeddings

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


def nn_cosines(docs: np.ndarray) -> np.ndarray:
    """Each real document's cosine to its nearest other document."""
    sims = docs @ docs.T  # (n, n): 5,183^2 floats, 107 MB
    np.fill_diagonal(sims, -1.0)
    return sims.max(axis=1)


def noise_factor(docs: np.ndarray, noise: str, target_cos: float, sigma: float) -> np.ndarray:
    """(dim, dim) matrix ``A``: a copy is ``normalise(e + A g)`` with ``g ~ N(0, I)``.

    isotropic: ``A = sigma I`` (the first bench's construction).
    corpus: ``A = s L`` with ``L L^T`` the covariance of the real embeddings, so the noise spreads
    over the dims as real documents differ from each other (a Matryoshka model puts most of that
    spread in its leading dims), and ``s`` such that a copy's expected cosine to its source is
    ``target_cos`` (by default the real corpus's median nearest-neighbour cosine): a copy is as
    far from its source as a real abstract is from its closest neighbour.
    """
    dim = docs.shape[1]
    if noise == "isotropic":
        return (sigma * np.eye(dim)).astype(np.float32)
    cov = np.cov(docs, rowvar=False).astype(np.float64) + 1e-6 * np.eye(dim)
    chol = np.linalg.cholesky(cov)
    # |e| = 1 and the noise is ~orthogonal to e, so cos ~ 1 / sqrt(1 + s^2 tr(cov)).
    s = np.sqrt(1.0 / target_cos**2 - 1.0) / np.sqrt(np.trace(cov))
    return (s * chol).astype(np.float32)


def synthetic_corpus(docs: np.ndarray, n: int, factor: np.ndarray, seed: int) -> np.ndarray:
    """The real rows, then noisy normalised copies up to ``n`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, docs.shape[1]), dtype=np.float32)
    m = min(n, len(docs))
    out[:m] = docs[:m]
    chunk = 100_000
    for start in range(m, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        block = docs[(rows - m) % len(docs)]  # (c, dim): copy j comes from abstract j mod 5,183
        block = block + rng.standard_normal(block.shape, dtype=np.float32) @ factor.T
        out[start : start + len(rows)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def real_recall(enc: dict, shortlist_dim: int, shortlists: list[int]) -> dict[int, float]:
    """Recall@10 vs exact of the flat two-stage search on the real corpus, all test queries."""
    from honed.index.index import Index

    index = Index.from_embeddings(enc["docs"], enc["doc_ids"], shortlist_dim, "float32")
    exact = index.search_exact(enc["queries"], 10)
    out = {}
    for s in shortlists:
        hits = index.search(enc["queries"], 10, s)
        out[s] = float(
            np.mean([len({d for d, _ in a} & {d for d, _ in b}) / 10 for a, b in zip(hits, exact)])
        )
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
    parser.add_argument("--sigma", type=float, default=0.02, help="isotropic noise per dimension")
    parser.add_argument(
        "--noise",
        choices=["isotropic", "corpus"],
        default="corpus",
        help="perturbation of the copies (see noise_factor)",
    )
    parser.add_argument(
        "--target-cos",
        type=float,
        default=None,
        help="corpus noise: copy-to-source cosine (default: median real nearest-neighbour cosine)",
    )
    parser.add_argument("--ann", action="store_true", help="add faiss HNSW shortlist rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the indexes (default: a temp folder)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    from honed.index.index import Index

    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}")
    enc = encode_scifact(args.data, args.model)
    n_src, dim = enc["docs"].shape
    print(f"encoded {n_src:,} abstracts in {enc['encode_s']:.0f} s ({enc['precision']})")
    qual = quality(enc, args.shortlist_dim, args.shortlists[0])

    nn = nn_cosines(enc["docs"])
    target = args.target_cos or float(np.median(nn))
    print(
        f"real corpus nearest-neighbour cosine: median {np.median(nn):.3f}, "
        f"p10 {np.percentile(nn, 10):.3f}, p90 {np.percentile(nn, 90):.3f}"
    )
    recall_real = real_recall(enc, args.shortlist_dim, sorted({*args.shortlists, 50, 100, 200, 500, 1000}))
    print(f"real corpus Recall@10 vs exact by shortlist: {recall_real}")
    factor = noise_factor(enc["docs"], args.noise, target, args.sigma)
    corpus = synthetic_corpus(enc["docs"], args.docs, factor, args.seed)
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
        if args.ann:
            start = time.perf_counter()
            Index.from_embeddings(
                corpus, ids, args.shortlist_dim, "float32", out=Path(work) / "hnsw", ann="hnsw"
            )
            build_s["hnsw"] = time.perf_counter() - start
            indexes["hnsw"] = Index.load(Path(work) / "hnsw")
        del corpus
        f32, i8, sd = indexes["float32"], indexes["int8"], args.shortlist_dim
        calls = {f"exact {dim}-dim float32": lambda q: f32.search_exact(q, 10)}
        tiers = {f"exact {dim}-dim float32": f32.full.nbytes}
        for s in args.shortlists:
            for p, ix in (("float32", f32), ("int8", i8)):
                name = f"two-stage: {sd}-dim {p} top-{s}, re-rank at {dim}"
                calls[name] = lambda q, ix=ix, s=s: ix.search(q, 10, s)
                tiers[name] = ix.fast_tier_bytes
        if args.ann:
            hn = indexes["hnsw"]
            for s in args.shortlists:
                name = f"two-stage: {sd}-dim HNSW top-{s} (efSearch {2 * s}), re-rank at {dim}"
                calls[name] = lambda q, s=s: hn.search(q, 10, s)
                tiers[name] = hn.fast_tier_bytes
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
        f"\ncorpus: {n_src:,} SciFact abstracts + {args.docs - n_src:,} noisy copies ({args.noise} "
        f"noise{f', sigma {args.sigma}/dim' if args.noise == 'isotropic' else f', target cosine {target:.3f}'}, "
        f"seed {args.seed}; copy-to-source cosine mean {cos.mean():.3f}, min "
        f"{cos.min():.3f}) = {args.docs:,} x {dim}; {len(queries)} SciFact test queries, k = 10, "
        f"one query per call; threads: {threads()}; index builds (s): {', '.join(f'{k} {v:.0f}' for k, v in build_s.items())}"
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
                    "real_recall_by_shortlist": recall_real,
                    "real_nn_cosine_median": float(np.median(nn)),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
