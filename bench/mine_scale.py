"""Hard-negative mining at corpus scale: time and peak memory at three corpus sizes.

Synthetic, L2-normalised random vectors (dim 384) stand in for document embeddings; each query
is a noisy copy of its positive document, so positives score high and the margin filter has
work to do. Each size runs in a fresh subprocess so its peak RSS is its own. Mining never builds
a queries x corpus matrix: top-k is computed in query chunks bounded to 2^25 scores.

    python bench/mine_scale.py --sizes 250000 500000 1000000 --queries 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def one(n_docs: int, n_queries: int, dim: int) -> dict[str, float]:
    from honed.mining.config import MiningConfig
    from honed.mining.hard_negatives import mine_hard_negatives

    rng = np.random.default_rng(0)
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    positives_idx = rng.choice(n_docs, n_queries, replace=False)
    queries = docs[positives_idx] + 0.9 * rng.standard_normal(
        (n_queries, dim), dtype=np.float32
    ) / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    qids = [f"q{i:06d}" for i in range(n_queries)]  # sorted order == row order
    doc_ids = [f"d{i}" for i in range(n_docs)]
    positives = {q: {doc_ids[p]: 1} for q, p in zip(qids, positives_idx)}
    texts = doc_ids  # unique stand-ins: the duplicate-text guard compares texts
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = mine_hard_negatives(
        positives, dict(zip(qids, qids)), doc_ids, texts, queries, docs, MiningConfig()
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "docs": n_docs,
        "queries": n_queries,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "embeddings_mb": docs.nbytes / 2**20,
        "rss_before_mining_mb": base_rss,
        "rows": len(result.rows),
        "short": result.report.pairs_short,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.queries, args.dim)))
        return
    rows = []
    for size in args.sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(size),
                "--queries",
                str(args.queries),
                "--dim",
                str(args.dim),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.queries} queries, dim {args.dim}, 3 negatives, depth 50, margin 0.95")
    print(
        "| documents | mining s | s per 100k docs | peak RSS MB | of which embeddings MB | RSS before mining MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['docs']:,} | {r['seconds']:.1f} | {r['seconds'] / r['docs'] * 1e5:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['embeddings_mb']:.0f} | {r['rss_before_mining_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
