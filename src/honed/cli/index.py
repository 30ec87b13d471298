"""The ``honed index``, ``search`` and ``plan`` commands: argument parsing and rendering only.

Split from :mod:`honed.cli.main` to keep each module small; :mod:`honed.cli.main` adds these parsers
and dispatches to :data:`INDEX_HANDLERS`. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from honed.cli.defaults import enum_values, field_default
from honed.encoding.encoder import Precision
from honed.index.options import BuildOptions
from honed.index.planner import PlanGrid
from honed.index.postgres.tables import DEFAULT_TABLE
from honed.index.quantize import Quantization
from honed.index.search import DEFAULT_SHORTLIST
from honed.pipeline.config import RunConfig

__all__ = [
    "INDEX_HANDLERS",
    "add_cache_args",
    "add_fusion_args",
    "add_index_parsers",
    "add_model_args",
    "add_store_args",
    "fusion_from_args",
]


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The --device, --precision and --trust-remote-code options every model command takes."""
    p.add_argument(
        "--device", default=field_default(RunConfig, "device"),
        help="auto (cuda if present), cpu, cuda, cuda:N",
    )
    p.add_argument(
        "--precision",
        default=field_default(RunConfig, "precision"),
        choices=enum_values(Precision, first=field_default(RunConfig, "precision")),
        help="matmul precision; auto = bf16 where the hardware runs it natively",
    )
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow a model's own Python code to run"
    )


def add_cache_args(p: argparse.ArgumentParser) -> None:
    """--cache-dir DIR / --no-cache: the on-disk embedding cache every corpus encoding goes through."""
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir",
        default=field_default(RunConfig, "cache_dir"),
        help="on-disk cache of the embeddings, written as they are computed (an interrupted "
        "encoding resumes) and reused across runs (default: $HONED_CACHE_DIR or "
        "~/.cache/honed/embeddings)",
    )
    cache.add_argument("--no-cache", action="store_true", help="keep embeddings in memory only")


def cache_dir_of(args: argparse.Namespace) -> str | None:
    """The ``cache_dir`` setting of --cache-dir / --no-cache (None: memory only)."""
    return None if args.no_cache else str(args.cache_dir)


def add_fusion_args(p: argparse.ArgumentParser) -> None:
    """--fusion-from RUN_DIR, or --fusion METHOD with --dense-weight W."""
    g = p.add_argument_group("hybrid fusion (default: chosen on the dev split)")
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--fusion-from",
        metavar="RUN_DIR",
        help="the method and weight RUN_DIR chose on its dev split",
    )
    source.add_argument(
        "--fusion", choices=["rrf", "minmax", "zscore"], help="this method (needs --dense-weight)"
    )
    g.add_argument("--dense-weight", type=float, help="dense weight in [0, 1]; BM25 gets 1 - W")


def fusion_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~honed.retrieval.fusion.FusionConfig` of --fusion-from / --fusion, or None if neither."""
    from honed.retrieval.fusion import FusionConfig, fusion_from_run

    if args.dense_weight is not None and not args.fusion:
        raise ValueError(
            "--dense-weight goes with --fusion METHOD; fix: add --fusion zscore (or rrf, minmax)"
        )
    if args.fusion_from:
        return fusion_from_run(args.fusion_from)
    if args.fusion:
        if args.dense_weight is None:
            raise ValueError(
                f"--fusion {args.fusion} needs --dense-weight W (BM25 gets 1 - W); "
                "fix: add e.g. --dense-weight 0.7"
            )
        return FusionConfig(args.fusion, args.dense_weight)
    return None


def add_store_args(p: argparse.ArgumentParser, help_text: str) -> None:
    """--store postgresql://... and --table NAME (the PostgreSQL serving replica)."""
    p.add_argument("--store", metavar="postgresql://...", help=help_text)
    p.add_argument("--table", default=DEFAULT_TABLE, help=f"table in --store ({DEFAULT_TABLE})")


def _upload(args: argparse.Namespace, index: Any) -> int:
    """Upload the built folder to --store; print what was written and the next command."""
    from honed.index.postgres.store import PgIndex, redact

    where = redact(args.store)
    with PgIndex.upload(index, args.store, table=args.table, overwrite=args.overwrite) as pg:
        tables = ", ".join(
            f"{args.table}{s}" for s in ("", "_meta", "_bm25", "_vocab")[: 4 if pg.bm25 else 2]
        )
        print(
            f"uploaded {len(pg):,} documents to {where} in {pg.upload_seconds:.1f} s: {tables} "
            f"(HNSW on the {pg.info.shortlist_dim}-dim float32 prefix, re-rank at {pg.info.dim})"
        )
        if pg.fusion is not None:
            print(f"hybrid: {pg.fusion.describe()}, with the BM25 side table {args.table}_bm25")
    table = f" --table {args.table}" if args.table != "honed_index" else ""
    hybrid = " --hybrid" if pg.fusion is not None else ""
    print(f'next: honed search {args.out} "your query" --store {where}{table}{hybrid}')
    return 0


def _search_store(args: argparse.Namespace) -> int:
    """``honed search INDEX QUERY --store DSN``: the database, with INDEX's (or --model's) model."""
    from honed.encoding.encoder import encode_texts, load_model
    from honed.index.postgres.store import PgIndex, redact
    from honed.index.store import read_info

    with PgIndex.open(args.store, table=args.table) as pg:  # unreachable: fails before the model
        if args.hybrid:
            pg.check_hybrid()
        local = Path(args.index, "index.json").is_file()
        name = args.model or (read_info(args.index) if local else pg.info).model_name
        if not args.model and not Path(name).exists():
            raise ValueError(
                f"{args.index if local else args.table} records the model {name or '(none)'!r}, "
                "which is not a folder here; fix: pass --model MODEL (the model that built the index)"
            )
        model = load_model(name, args.device)
        pg.check_model(model)
        query = encode_texts(model, [args.query])  # (1, dim)
        exact = args.exact_shortlist
        if args.hybrid:
            hits = pg.hybrid_search([args.query], query, args.k, args.shortlist, exact)[0]
        else:
            hits = pg.search(query, args.k, args.shortlist, exact, args.ef_search)[0]
        texts = pg.texts([doc_id for doc_id, _ in hits])
        info = pg.info
    dense = (
        f"{'exact' if exact else 'HNSW'} shortlist {min(args.shortlist, info.count)} at "
        f"{info.shortlist_dim} dims float32, re-ranked at {info.dim}"
    )
    how = f"hybrid {pg.fusion.describe()}, dense {dense}" if args.hybrid and pg.fusion else dense
    print(f"top {len(hits)} of {info.count:,} from {redact(args.store)} {args.table} ({how}):")
    for rank, (doc_id, score) in enumerate(hits, start=1):
        text = " ".join(texts.get(doc_id, "").split())
        print(f"{rank:>3}. {score:.4f}  {doc_id}  {text[:100]}{'...' if len(text) > 100 else ''}")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def add_index_parsers(sub: Any) -> None:
    """Add the ``index``, ``search`` and ``plan`` subcommands to ``sub``."""
    _add_index(sub)
    _add_search(sub)
    _add_plan(sub)


def _add_index(sub: Any) -> None:
    p = sub.add_parser("index", help="build a two-stage Matryoshka index of a corpus")
    p.add_argument("model", help="model folder or hub id ('all-MiniLM-L6-v2' = the bundled base)")
    p.add_argument("corpus", help="BEIR folder or corpus.jsonl")
    p.add_argument("--out", required=True, help="index folder to create")
    shortlist_dim = field_default(BuildOptions, "shortlist_dim")
    p.add_argument(
        "--shortlist-dim", type=int, default=shortlist_dim,
        help=f"dims of the fast tier ({shortlist_dim})",
    )
    p.add_argument(
        "--precision",
        default=field_default(BuildOptions, "precision"),
        choices=enum_values(Quantization, first=field_default(BuildOptions, "precision")),
        help="fast-tier storage: 4, 1 or 1/8 byte per dim",
    )
    p.add_argument(
        "--batch-size", type=int, default=field_default(BuildOptions, "batch_size"),
        help="texts encoded per write",
    )
    p.add_argument(
        "--encode-precision", default=field_default(BuildOptions, "encode_precision"),
        choices=enum_values(Precision, first=field_default(BuildOptions, "encode_precision")),
    )
    p.add_argument(
        "--device", default=field_default(RunConfig, "device"),
        help="auto (cuda if present), cpu, cuda, cuda:N",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing index folder (and --table)"
    )
    p.add_argument(
        "--bm25", action="store_true", help="also store a BM25 index (bm25s) for search --hybrid"
    )
    add_fusion_args(p)  # either implies --bm25
    p.add_argument(
        "--ann",
        choices=["hnsw"],
        help="also build an HNSW graph of the shortlist (faiss; for millions of documents)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted build of --out (OUT.partial)"
    )
    add_cache_args(p)
    add_store_args(p, "then upload --out to this PostgreSQL + pgvector database (honed[pg])")


def _add_search(sub: Any) -> None:
    p = sub.add_parser("search", help="search an index with a query text")
    p.add_argument("index", help="index folder from honed index")
    p.add_argument("query")
    p.add_argument("--model", help="model folder (default: the one recorded in index.json)")
    p.add_argument("-k", type=int, default=10, help="results (10)")
    p.add_argument(
        "--shortlist",
        type=int,
        default=DEFAULT_SHORTLIST,
        help=f"candidates re-ranked at full dim ({DEFAULT_SHORTLIST}: 99.7%% of the exact top-10 on SciFact)",
    )
    p.add_argument(
        "--device", default=field_default(RunConfig, "device"),
        help="auto (cuda if present), cpu, cuda, cuda:N",
    )
    p.add_argument("--hybrid", action="store_true", help="fuse with BM25 as recorded at index time")
    p.add_argument(
        "--exact-shortlist", action="store_true", help="scan short.npy even with an HNSW graph"
    )
    p.add_argument("--ef-search", type=int, help="HNSW candidates searched (2 x --shortlist)")
    add_store_args(p, "search this PostgreSQL database instead of the folder (model: INDEX's)")


def _add_plan(sub: Any) -> None:
    p = sub.add_parser("plan", help="choose shortlist dim, precision and size on a labelled split")
    p.add_argument("model", help="model folder or hub id")
    p.add_argument("data", help="BEIR folder")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--dims", type=_ints, default=None, help="shortlist dims (Matryoshka dims < full)"
    )
    p.add_argument(
        "--precisions",
        type=lambda s: tuple(s.split(",")),
        default=field_default(PlanGrid, "precisions"),
        help="fast-tier precisions to try",
    )
    p.add_argument(
        "--shortlists", type=_ints, default=field_default(PlanGrid, "shortlists"),
        help="shortlist sizes",
    )
    p.add_argument("--out", help="folder for plan.md, plan.json and plan.png")
    add_model_args(p)


def _index_cache(args: argparse.Namespace) -> Any:
    """The disk cache an index build writes its vectors through as they are computed (or None).

    Vectors reach the cache every few seconds, the index's own ``OUT.partial`` only every
    ``--batch-size`` documents: a build interrupted between the two, run again with
    ``--resume``, reads what it had from the cache. ``memory=False`` keeps memory bounded.
    """
    from honed.encoding.disk_cache import resolve_cache_dir
    from honed.encoding.encoder import EmbeddingCache
    from honed.index import build

    folder = resolve_cache_dir(cache_dir_of(args))
    if folder is None:
        return None
    return EmbeddingCache(
        build.ENCODE_BATCH, args.encode_precision, directory=folder, memory=False
    )


def cmd_index(args: argparse.Namespace) -> int:
    from honed.data.corpus import corpus_file, read_corpus
    from honed.encoding.encoder import load_model, resolve_model_name
    from honed.index.index import Index
    from honed.index.partial import partial_path, partial_rows

    fusion = fusion_from_args(args)  # before the model loads: a bad RUN_DIR fails at once
    corpus_file(args.corpus)  # so does a missing corpus
    if args.store:  # and an unreachable database or a taken table, before hours of encoding
        from honed.index.postgres.store import PgIndex

        PgIndex.check_target(args.store, table=args.table, overwrite=args.overwrite)
    resolved = resolve_model_name(args.model)
    name = str(Path(resolved).resolve()) if Path(resolved).exists() else resolved
    model = load_model(resolved, args.device)
    options: dict[str, Any] = {
        "cache": _index_cache(args),
        "shortlist_dim": args.shortlist_dim,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "overwrite": args.overwrite,
        "model_name": name,
        "encode_precision": args.encode_precision,
        "show_progress_bar": True,
        "ann": args.ann,
        "resume": args.resume,
    }
    done = partial_rows(args.out) if args.resume else None
    if done is not None:
        print(f"resuming {partial_path(args.out)}: {done[0]:,} of {done[1]:,} documents encoded")
    if args.bm25 or fusion is not None:  # BM25 indexes every text at once: read them all
        ids, texts = read_corpus(args.corpus)
        index = Index.build(model, ids, texts, args.out, bm25=True, fusion=fusion, **options)
    else:  # streamed: a corpus larger than memory works
        index = Index.build_from_corpus(model, args.corpus, args.out, **options)
    info, full_mb = index.info, index.full.nbytes / 2**20
    print(
        f"indexed {info.count:,} documents at {info.dim} dims; fast tier {info.shortlist_dim} dims "
        f"{info.precision.value}: {index.fast_tier_bytes / 2**20:.1f} MB "
        f"(1/{index.full.nbytes / index.fast_tier_bytes:.0f} of the {full_mb:.1f} MB full vectors)"
    )
    files = "index.json, ids.json, texts.jsonl, full.npy, short.npy"
    files += ", short_scale.npy" if index.scales is not None else ""
    files += ", short.hnsw" if index.ann is not None else ""
    files += ", bm25/" if args.bm25 or fusion is not None else ""
    print(f"wrote {args.out}/{{{files}}}")
    if args.store:
        return _upload(args, index)
    if fusion is not None:
        print(f"hybrid: {fusion.describe()}, recorded in index.json")
        print(f'next: honed search {args.out} "your query" --hybrid')
    elif args.bm25:
        print(
            "no fusion recorded, so search --hybrid will refuse this index; to enable it, rebuild "
            "with --fusion-from RUN_DIR or --fusion METHOD --dense-weight W"
        )
        print(f'next: honed search {args.out} "your query" -k 10')
    else:
        print(f'next: honed search {args.out} "your query" -k 10')
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from honed.encoding.encoder import encode_texts, load_model
    from honed.index.index import Index
    from honed.index.store import read_info

    if args.store:
        return _search_store(args)
    info = read_info(args.index)
    name = args.model or info.model_name
    if not args.model and not Path(name).exists():
        raise ValueError(
            f"{args.index}/index.json records the model {name or '(none)'!r}, which is not a folder "
            "here; fix: pass --model MODEL (the model that built the index)"
        )
    if args.hybrid:
        Index.load(args.index).hybrid_parts()  # refuse before the model loads
    model = load_model(name, args.device)
    index = Index.load(args.index, model)
    query = encode_texts(model, [args.query])  # (1, dim)
    if args.hybrid:
        hits = index.search_hybrid([args.query], query, k=args.k, shortlist=args.shortlist)[0]
    else:
        hits = index.search(
            query,
            k=args.k,
            shortlist=args.shortlist,
            exact_shortlist=args.exact_shortlist,
            ef_search=args.ef_search,
        )[0]
    has_texts = (Path(args.index) / "texts.jsonl").is_file()
    texts = index.texts(i for i, _ in hits) if has_texts else {}
    graph = index.ann is not None and not args.exact_shortlist
    dense = (
        f"{'HNSW ' if graph else ''}shortlist {min(args.shortlist, info.count)} at "
        f"{info.shortlist_dim} dims {'float32' if graph else info.precision.value}, "
        f"re-ranked at {info.dim}"
    )
    how = (
        f"hybrid {info.fusion.describe()}, dense {dense}" if args.hybrid and info.fusion else dense
    )
    print(f"top {len(hits)} of {info.count:,} ({how}):")
    for rank, (doc_id, score) in enumerate(hits, start=1):
        text = " ".join(texts.get(doc_id, "").split())
        print(f"{rank:>3}. {score:.4f}  {doc_id}  {text[:100]}{'...' if len(text) > 100 else ''}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from honed.index.plan_report import render_plan, write_plan
    from honed.index.planner import plan

    result = plan(
        args.model,
        args.data,
        split=args.split,
        dims=args.dims,
        precisions=args.precisions,
        shortlists=args.shortlists,
        device=args.device,
        encode_precision=args.precision,
    )
    print(render_plan(result))
    if args.out:
        print("wrote " + ", ".join(str(p) for p in write_plan(result, args.out)))
    rec = result.recommended
    if rec.exact:
        print(
            f"next: keep exact {rec.shortlist_dim}-dim search (no cheaper configuration shown "
            f"within {result.tolerance:.0%} of it on {result.decided_on_queries} queries)"
        )
    else:
        print(
            f"next: honed index {args.model} {args.data} --out index --shortlist-dim "
            f"{rec.shortlist_dim} --precision {rec.precision.value}, then search with "
            f"--shortlist {rec.shortlist}"
        )
    return 0


INDEX_HANDLERS = {"index": cmd_index, "search": cmd_search, "plan": cmd_plan}
