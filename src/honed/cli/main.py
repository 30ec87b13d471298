"""The ``honed`` command: argument parsing and rendering only; the work is in the library.

Heavy imports (torch, sentence-transformers) happen inside the handlers so ``honed --help`` is
instant. Expected user errors print ``error: ...`` and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from honed.cli.index import (
    INDEX_HANDLERS,
    add_fusion_args,
    add_index_parsers,
    add_model_args,
    fusion_from_args,
)
from honed.pipeline.resources import (
    ResourceError,  # no torch at import: `honed --help` stays instant
)

__all__ = ["main"]

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    ImportError,
    PermissionError,
    OSError,  # disk full, read-only folder, ...: one line naming the path (atomic writes leave no half file)
    ResourceError,  # the guard's refusal; other MemoryErrors are bugs and keep their traceback
)


def _add_mining_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mining")
    g.add_argument("--negatives", type=int, default=3, help="hard negatives per pair (default 3)")
    g.add_argument("--depth", type=int, default=50, help="candidates per query (default 50)")
    g.add_argument(
        "--margin",
        type=float,
        default=0.95,
        help="drop candidates scoring above MARGIN x the positive's score (default 0.95; 1 = off)",
    )
    g.add_argument("--sampling", default="top", choices=["top", "random"])


def _add_encode_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encode-batch-size",
        type=int,
        default=64,
        help="texts per forward pass when encoding (under torchrun the unit dealt to processes)",
    )


def _add_training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--loss", default="cached_mnrl", choices=["cached_mnrl", "mnrl", "gist", "triplet"]
    )
    g.add_argument("--epochs", type=int, default=5)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument(
        "--mini-batch-size", type=int, default=32, help="cached loss: texts per forward pass"
    )
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument(
        "--dims",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        help="Matryoshka dims, e.g. 384,256,128,64 (default: full, then powers of two down to 64)",
    )
    g.add_argument("--no-matryoshka", action="store_true")
    g.add_argument("--max-seq-length", type=int, default=None)
    g.add_argument(
        "--label-aware-batches",
        action="store_true",
        help="never put a known positive of a query in its batch as an in-batch negative",
    )
    g.add_argument(
        "--label-aware-loss",
        action="store_true",
        help="mask a query's known positives (and copies of its own positive) out of the loss "
        "instead of pushing them away; keeps the full batch (cached_mnrl only)",
    )
    g.add_argument(
        "--remine-epochs",
        type=int,
        default=1,
        help="`honed run` only (needs the corpus and a dev split): second round, mine again with "
        "the tuned model and train N more epochs, kept only if dev improves (0: no second round)",
    )
    g.add_argument(
        "--no-rotate",
        action="store_true",
        help="do not start from the base model rotated by the corpus's principal directions",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="honed",
        description="Fine-tune a sentence-embedding model for retrieval in one domain.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the whole pipeline: baseline, mine, train, evaluate, report")
    p.add_argument(
        "data", nargs="?", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv"
    )
    p.add_argument("--out", help="run folder to create")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint"
    )
    p.add_argument("--base", default="all-MiniLM-L6-v2", help="base model folder or hub id")
    p.add_argument("--dev-fraction", type=float, default=0.1)
    p.add_argument("--min-dev-queries", type=int, default=30)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-bm25", action="store_true")
    p.add_argument(
        "--allow-leakage",
        action="store_true",
        help="keep training queries that duplicate test queries (test metrics then not clean)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing honed run folder")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir",
        default="auto",
        help="on-disk cache of the base model's embeddings, reused across runs "
        "(default: $HONED_CACHE_DIR or ~/.cache/honed/embeddings)",
    )
    cache.add_argument("--no-cache", action="store_true", help="keep embeddings in memory only")
    p.add_argument(
        "--corpus-pairs",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="add RATIO self-supervised rows per labelled row, cut from the corpus (title -> body, "
        "sentence -> rest; default 0: labelled rows only)",
    )
    _add_qgen_args(p)
    add_model_args(p)
    _add_mining_args(p)
    _add_training_args(p)

    p = sub.add_parser("compare", help="paired significance between models and/or TREC run files")
    p.add_argument("data")
    p.add_argument("systems", nargs="+", help="model folders / hub ids, or .trec/.run files")
    p.add_argument("--split", default="test")
    p.add_argument("--bm25", action="store_true", help="add BM25 as a system")
    p.add_argument("--n-resamples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", help="write the comparisons as JSON here")
    add_model_args(p)

    p = sub.add_parser("check", help="validate a BEIR folder and print its statistics")
    p.add_argument("data")

    p = sub.add_parser("evaluate", help="evaluate a model (and BM25) on a split at every dim")
    p.add_argument("model", help="model folder or hub id ('all-MiniLM-L6-v2' = the bundled base)")
    p.add_argument("data")
    p.add_argument("--split", default="test")
    p.add_argument("--dims", type=lambda s: tuple(int(x) for x in s.split(",")), default=None)
    p.add_argument("--bm25", action="store_true", help="also evaluate BM25")
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="dense, BM25 and their fusion side by side, with paired tests and a deploy line",
    )
    add_fusion_args(p)
    p.add_argument("--n-resamples", type=int, default=10_000, help="of the paired tests (--hybrid)")
    p.add_argument("--seed", type=int, default=42, help="of the paired tests (--hybrid)")
    p.add_argument("--out", help="write the metrics as JSON here")
    add_model_args(p)
    _add_encode_batch_size(p)

    p = sub.add_parser("mine", help="mine hard negatives for the training split")
    p.add_argument("data")
    p.add_argument(
        "--out", required=True, help="mined.jsonl to write (mining_report.json goes beside it)"
    )
    p.add_argument("--base", default="all-MiniLM-L6-v2")
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--overwrite", action="store_true")
    add_model_args(p)
    _add_encode_batch_size(p)
    _add_mining_args(p)

    p = sub.add_parser(
        "train", help="fine-tune on mined.jsonl or a pair file (query, positive, negative...)"
    )
    p.add_argument("rows", help="mined.jsonl from `honed mine`, or a .jsonl/.csv pair file")
    p.add_argument("--out", required=True, help="model folder to create")
    p.add_argument("--base", default="all-MiniLM-L6-v2")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--overwrite", action="store_true")
    add_model_args(p)
    _add_training_args(p)

    p = sub.add_parser(
        "report", help="re-render report.md and plots from a run folder's report.json"
    )
    p.add_argument("run_dir")

    p = sub.add_parser(
        "diagnose", help="measure whether a domain is worth fine-tuning (trains only with --probe)"
    )
    p.add_argument("data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv")
    p.add_argument("--base", default="all-MiniLM-L6-v2", help="base model folder or hub id")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also fine-tune briefly on a slice and measure the gain",
    )
    p.add_argument("--probe-rows", type=int, default=128, help="training rows of the probe")
    p.add_argument("--out", help="also write the report (markdown) to this file")
    add_model_args(p)
    add_index_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``honed`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = HANDLERS[args.command]
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        hint = ""
        if args.command == "run" and (args.out or args.resume):
            hint = f"; continue with: honed run --resume {args.resume or args.out}"
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.debug:
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1


def _mining_config(args: argparse.Namespace) -> Any:
    from honed.mining.hard_negatives import MiningConfig

    return MiningConfig(
        num_negatives=args.negatives,
        depth=args.depth,
        margin=args.margin,
        strategy=args.sampling,
        seed=args.seed,
    )


def _add_qgen_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generated queries (optional; off unless --qgen-endpoint is given)")
    g.add_argument(
        "--qgen-endpoint",
        metavar="URL",
        help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1: an LLM writes a query "
        "for random documents; those whose document the base model ranks in its top 10 are added",
    )
    g.add_argument("--qgen-model", metavar="NAME", help="model name the endpoint serves")
    g.add_argument("--qgen-docs", type=int, metavar="N", help="documents to use (default 1000)")
    g.add_argument(
        "--qgen-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY; unset = no key)",
    )


def _qgen_config(args: argparse.Namespace) -> Any:
    """The query-generator config, or None when --qgen-endpoint is not given."""
    flags = {
        "--qgen-model": args.qgen_model,
        "--qgen-docs": args.qgen_docs,
        "--qgen-key-env": args.qgen_key_env,
    }
    given = [flag for flag, value in flags.items() if value is not None]
    if args.qgen_endpoint is None:
        if given:
            raise ValueError(
                f"{given[0]}: only used with --qgen-endpoint; fix: add --qgen-endpoint URL, or "
                f"leave out {given[0]}"
            )
        return None
    if args.qgen_model is None:
        raise ValueError(
            "--qgen-model: required with --qgen-endpoint (got none); fix: add --qgen-model NAME, "
            "a model the server serves (GET URL/models lists them)"
        )
    from honed.mining.qgen import QueryGenConfig

    optional = {"n_docs": args.qgen_docs, "api_key_env": args.qgen_key_env, "seed": args.seed}
    return QueryGenConfig(
        endpoint=args.qgen_endpoint,
        model=args.qgen_model,
        **{k: v for k, v in optional.items() if v is not None},
    )


def _train_config(args: argparse.Namespace) -> Any:
    from honed.training.trainer import TrainConfig

    return TrainConfig(
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        mini_batch_size=args.mini_batch_size,
        learning_rate=args.lr,
        dims=args.dims,
        matryoshka=not args.no_matryoshka,
        max_seq_length=args.max_seq_length,
        precision=args.precision,
        seed=args.seed,
        label_aware_batches=args.label_aware_batches,
        label_aware_loss=args.label_aware_loss,
        rotate=not args.no_rotate,
        remine_epochs=args.remine_epochs,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from honed.pipeline.config import RunConfig
    from honed.pipeline.runner import resume_pipeline, run_pipeline

    say = lambda m: print(f"[honed] {m}", file=sys.stderr, flush=True)  # noqa: E731
    if args.resume:
        result = resume_pipeline(args.resume, notify=say)
        args.out = args.resume
        return _print_run(args, result)
    if not args.data or not args.out:
        raise ValueError(
            "honed run needs DATA and --out RUN_DIR (or --resume RUN_DIR); see honed run --help"
        )

    config = RunConfig(
        data=args.data,
        out=args.out,
        base_model=args.base,
        dev_fraction=args.dev_fraction,
        min_dev_queries=args.min_dev_queries,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        bm25=not args.no_bm25,
        allow_leakage=args.allow_leakage,
        mining=_mining_config(args),
        training=_train_config(args),
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
        cache_dir=None if args.no_cache else args.cache_dir,
        corpus_pairs=args.corpus_pairs,
        qgen=_qgen_config(args),
    )
    result = run_pipeline(config, notify=say)
    return _print_run(args, result)


def _print_run(args: argparse.Namespace, result: Any) -> int:
    print()
    for sentence in result.verdict["sentences"]:
        print(sentence)
    total = sum(result.timings.values())
    print(
        f"\nwrote {args.out}/report.md, report.json, model/, metrics/, mined.jsonl ({total / 60:.1f} min)"
    )
    print(
        f'next: open {args.out}/report.md, or load the model with SentenceTransformer("{args.out}/model")'
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from honed.data.check import check_dataset

    report = check_dataset(args.data)
    print(f"{report.path}: {report.n_documents} documents, {report.n_queries} queries")
    for s in report.splits:
        print(
            f"  {s.name:>6}: {s.n_queries} queries, {s.n_judgments} judgments, {s.n_positive} positive"
            + (
                f", {s.queries_without_positive} queries without a positive"
                if s.queries_without_positive
                else ""
            )
        )
    for label, st in (("documents", report.document_lengths), ("queries", report.query_lengths)):
        print(
            f"  {label} length (words): mean {st.mean_words:.1f}, median {st.p50_words:.0f}, "
            f"p95 {st.p95_words:.0f}, max {st.max_words}"
        )
    for w in report.warnings:
        print(f"warning: {w}")
    for problem in report.problems:
        print(f"problem: {problem}")
    if not report.ok:
        print(
            f"error: {len(report.problems)} problem(s) found; fix them and run `honed check {args.data}` again",
            file=sys.stderr,
        )
        return 1
    missing = [name for name in ("train", "test") if name not in {sp.name for sp in report.splits}]
    if missing:
        print(
            f"ok, but honed run needs qrels/{' and qrels/'.join(m + '.tsv' for m in missing)} "
            f"(it trains on train and reports on test). next: honed evaluate MODEL {args.data} "
            f"--split {report.splits[0].name if report.splits else 'test'}"
        )
        return 0
    print(f"ok. next: honed run {args.data} --out runs/{Path(args.data).name}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from honed.encoding.distributed import is_main_process, world_size

    fusion = fusion_from_args(args)
    if (args.hybrid or fusion is not None) and world_size() > 1:
        raise ValueError(
            f"honed evaluate --hybrid/--fusion: expected a single process, got a torchrun launch of "
            f"{world_size()}; fix: run it without torchrun, or leave out --hybrid and --fusion"
        )
    if args.hybrid or fusion is not None:
        return _evaluate_hybrid(args, fusion)
    from honed.pipeline.commands import evaluate_model

    metrics = evaluate_model(
        args.model,
        args.data,
        split=args.split,
        dims=args.dims,
        bm25=args.bm25,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.encode_batch_size,
    )
    if not is_main_process():  # under torchrun: the first process prints and writes
        return 0
    from honed.report.markdown import COLUMNS, HEADERS

    print("| system | dim | " + " | ".join(HEADERS) + " |")
    for system, by_dim in metrics.items():
        for dim, values in by_dim.items():
            print(f"| {system} | {dim} | " + " | ".join(f"{values[c]:.4f}" for c in COLUMNS) + " |")
    if args.out:
        from honed.files import write_json

        write_json(Path(args.out), metrics)
        print(f"wrote {args.out}")
    return 0


def _evaluate_hybrid(args: argparse.Namespace, fusion: Any) -> int:
    from honed.evaluation.hybrid import evaluate_hybrid
    from honed.report.markdown import COLUMNS, HEADERS

    result = evaluate_hybrid(
        args.model,
        args.data,
        split=args.split,
        fusion=fusion,
        dims=args.dims,
        n_resamples=args.n_resamples,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
    )
    print("| system | dim | " + " | ".join(HEADERS) + " |")
    for system, by_dim in result.metrics.items():
        for dim, values in by_dim.items():
            print(f"| {system} | {dim} | " + " | ".join(f"{values[c]:.4f}" for c in COLUMNS) + " |")
    chosen = result.fusion
    how = "given" if chosen.source == "user" else chosen.source
    if fusion is None:  # chosen here, on dev
        how = f"chosen on dev, {result.dev}: dev nDCG@10 {chosen.dev_ndcg10:.4f}"
    print(
        f"\nhybrid = dense@{result.dim} + BM25 by {chosen.method.value}, dense weight "
        f"{chosen.dense_weight:g} ({how})"
    )
    print(f"{args.split}: paired bootstrap + randomization tests, {args.n_resamples} resamples")
    for t in result.tests:
        print(f"  {t['system_b']} vs {t['system_a']}: {t['sentence']}")
    print(result.sentence)
    if args.out:
        from honed.files import write_json

        write_json(Path(args.out), result.to_dict())
        print(f"wrote {args.out}")
    flags = (
        f"--fusion-from {args.fusion_from}"
        if args.fusion_from
        else f"--fusion {chosen.method.value} --dense-weight {chosen.dense_weight:g}"
    )
    if result.deploy == "hybrid":
        print(f"next: honed index {args.model} {args.data} --out index {flags}")
    else:
        print(f"next: honed index {args.model} {args.data} --out index (hybrid does not pay here)")
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    from honed.encoding.distributed import is_main_process
    from honed.pipeline.commands import mine

    report = mine(
        args.data,
        args.out,
        base_model=args.base,
        split=args.split,
        config=_mining_config(args),
        device=args.device,
        precision=args.precision,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.encode_batch_size,
    )
    if not is_main_process():  # under torchrun: the first process wrote the files and prints
        return 0
    print(
        f"mined {report.num_negatives} negatives for {report.pairs - report.pairs_without_negatives} of "
        f"{report.pairs} pairs ({report.pairs_short} short, {report.pairs_filled_from_deeper} filled from deeper; "
        f"{report.dropped_margin} candidates dropped by the margin, {report.dropped_known_positive} known positives)"
    )
    print(f"wrote {args.out} and {Path(args.out).with_name('mining_report.json')}")
    print(f"next: honed train {args.out} --out runs/model")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from honed.pipeline.commands import train

    result = train(
        args.rows,
        args.out,
        base_model=args.base,
        config=_train_config(args),
        device=args.device,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
    )
    from honed.encoding.distributed import is_main_process

    if not is_main_process():
        return 0  # under torchrun every rank returns here; rank 0 alone reports
    print(
        f"trained {result.rows} rows x {args.epochs} epochs in {result.seconds / 60:.1f} min "
        f"({result.rows_per_second:.2f} rows/s, {result.precision})"
    )
    print(f"wrote {args.out}; next: honed evaluate {args.out} DATA --split test")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from honed.pipeline.commands import rerender_report

    path = rerender_report(args.run_dir)
    print(f"wrote {path}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from honed.diagnosis.diagnoser import DiagnoseConfig, Verdict, diagnose, render_diagnosis

    config = DiagnoseConfig(
        data=args.data,
        base_model=args.base,
        probe=args.probe,
        probe_rows=args.probe_rows,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
    )
    result = diagnose(
        config,
        notify=lambda m: print(f"[honed] {m}", file=sys.stderr, flush=True),
        show_progress_bar=True,
    )
    text = render_diagnosis(result)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    if result.verdict is Verdict.NOT_RECOMMENDED:
        print(
            f"next: use the base model as it is, or compare: honed evaluate {args.base} {args.data} --bm25"
        )
    else:
        print(f"next: honed run {args.data} --out runs/{Path(args.data).name} --base {args.base}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from honed.pipeline.commands import compare_systems

    tests = compare_systems(
        args.data,
        args.systems,
        split=args.split,
        bm25=args.bm25,
        n_resamples=args.n_resamples,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
    )
    print(
        f"{args.split} split, paired bootstrap + randomization test, {args.n_resamples} resamples"
    )
    for t in tests:
        print(f"{t['system_b']} vs {t['system_a']}: {t['sentence']}")
    if args.out:
        from honed.files import write_json

        write_json(Path(args.out), tests)
        print(f"wrote {args.out}")
    return 0


HANDLERS = {
    "run": cmd_run,
    "check": cmd_check,
    "evaluate": cmd_evaluate,
    "mine": cmd_mine,
    "train": cmd_train,
    "report": cmd_report,
    "diagnose": cmd_diagnose,
    "compare": cmd_compare,
    **INDEX_HANDLERS,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
