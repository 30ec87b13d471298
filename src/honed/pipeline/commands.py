"""The pipeline's stages as commands of their own: ``honed evaluate``, ``mine``, ``train``,
``compare`` and ``report``, built from the same stage functions as ``honed run``.

``evaluate_model``, ``mine`` and ``train`` also run as several processes under ``torchrun``:
training through DDP, evaluation and mining by splitting the encoding across the processes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honed.data.beir import load_beir
from honed.data.pairs import load_pairs
from honed.data.splits import require_positives
from honed.encoding.dims import resolve_dims
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.distributed import (
    barrier,
    is_main_process,
    log_encode,
    on_main_process,
    process_device,
    process_group,
)
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    encode_texts,
    load_model,
    resolve_device,
    resolve_model_name,
)
from honed.evaluation.runs import (
    bm25_metrics,
    bm25_runs,
    dense_metrics,
    model_runs,
    read_trec_run,
)
from honed.evaluation.significance import compare
from honed.files import LOCK_FILE, folder_lock, refuse_existing
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import MiningReport
from honed.mining.rows import MinedRow, read_mined
from honed.pipeline.results import RunResult
from honed.pipeline.stages import mine_pairs, rotate_to_corpus, save_model, write_mining
from honed.report.writer import write_report
from honed.training.config import TrainConfig
from honed.training.sampler import positives_by_query
from honed.training.trainer import TrainResult, train_model
from honed.types import SplitMetrics

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

__all__ = ["compare_systems", "evaluate_model", "mine", "rerender_report", "train"]

#: Documents that stand for the corpus when `train` fits the rotation (plenty for a 1k-dim PCA).
ROTATION_SAMPLE = 20_000


def evaluate_model(
    model: str,
    data: str | Path,
    split: str = "test",
    dims: Sequence[int] | None = None,
    bm25: bool = False,
    device: str = "auto",
    precision: Precision | str = Precision.AUTO,
    trust_remote_code: bool = False,
    batch_size: int = 64,
    cache_dir: str | Path | None = "auto",
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of ``model`` (and BM25) on one split: system -> dim -> metric -> value.

    The corpus encoding goes through the on-disk embedding cache (``cache_dir``: "auto" =
    $HONED_CACHE_DIR or ~/.cache/honed/embeddings, None = memory only), as it is done: an
    interrupted evaluation, run again, encodes only what it had not reached.

    Under ``torchrun`` each process encodes its share of the corpus and queries (``batch_size``
    texts per forward pass), the first one computes the metrics, and every process returns them.

    Example:
        >>> evaluate_model("runs/scifact/model", "data/scifact")["dense"]["384"]["ndcg@10"]  # doctest: +SKIP
        0.73...
    """
    beir = load_beir(data)
    qrels = beir.split(split)
    device = process_device(resolve_device(device))  # cuda:LOCAL_RANK under torchrun
    with process_group(device):
        st_model = load_model(resolve_model_name(model), device, trust_remote_code)
        dims = resolve_dims(dims, embedding_dim(st_model))  # before any encoding
        cache = _launch_cache(precision, batch_size, cache_dir)
        doc_ids, doc_texts = beir.documents()
        doc_emb = _encode(cache, st_model, doc_texts, "corpus", show_progress_bar=True)
        qids = sorted(qrels)
        q_emb = dict(zip(qids, _encode(cache, st_model, [beir.queries[q] for q in qids], "queries")))

        def metrics() -> dict[str, dict[str, dict[str, float]]]:
            out: dict[str, SplitMetrics] = {
                "dense": dense_metrics(q_emb, doc_emb, doc_ids, {split: qrels}, dims)
            }
            if bm25:
                out["bm25"] = bm25_metrics(beir, doc_ids, doc_texts, {split: qrels})
            return {system: values[split] for system, values in out.items()}

        return on_main_process(metrics)


def _launch_cache(
    precision: Precision | str, batch_size: int, cache_dir: str | Path | None = "auto"
) -> EmbeddingCache:
    """The cache of one command: under ``torchrun`` each of its calls is split across processes.

    Every process of the launch makes the same calls with the same texts, which is what a split
    needs, so even small calls are split (the default threshold guards library callers).
    """
    return EmbeddingCache(
        batch_size=batch_size, precision=precision, split_min_texts=1,
        directory=resolve_cache_dir(cache_dir),
    )


def _encode(
    cache: EmbeddingCache,
    model: SentenceTransformer,
    texts: Sequence[str],
    label: str,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """``cache.encode``, its counts logged under ``label`` when ``$HONED_LOG_ENCODE`` is set."""
    before = asdict(cache.stats)
    vectors = cache.encode(model, texts, show_progress_bar=show_progress_bar)  # (n, dim)
    log_encode(label, {key: value - before[key] for key, value in asdict(cache.stats).items()})
    return vectors


def _hold(folder: Path, what: str, lock_name: str = LOCK_FILE) -> AbstractContextManager[Path]:
    """``folder``'s lock, held by the process that writes (the first one under ``torchrun``)."""
    if not is_main_process():
        return nullcontext(folder)
    return folder_lock(folder, what, fix="choose another --out", lock_name=lock_name)


def _is_model_folder(path: Path) -> bool:
    return (path / "modules.json").is_file()


def mine(
    data: str | Path,
    out: str | Path,
    base_model: str = "all-MiniLM-L6-v2",
    split: str = "train",
    config: MiningConfig | None = None,
    device: str = "auto",
    precision: Precision | str = Precision.AUTO,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    batch_size: int = 64,
    cache_dir: str | Path | None = "auto",
) -> MiningReport:
    """Mine hard negatives for every positive pair of ``split`` and write ``out`` (JSON lines).

    The mining report is written beside it as ``mining_report.json``. Under ``torchrun`` each
    process encodes its share of the corpus and queries (``batch_size`` texts per forward pass),
    the first one mines and writes the files, and every process returns that report.
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    beir = load_beir(data)
    positives = require_positives(beir, split, "no positive pair to mine")  # before the model
    device = process_device(resolve_device(device))  # cuda:LOCAL_RANK under torchrun
    # The folder, not the file: mining_report.json goes beside mined.jsonl (and a run folder).
    with _hold(out.parent, f"honed mine --out {out}"), process_group(device):
        model = load_model(resolve_model_name(base_model), device, trust_remote_code)
        cache = _launch_cache(precision, batch_size, cache_dir)
        doc_ids, doc_texts = beir.documents()
        doc_emb = _encode(cache, model, doc_texts, "corpus", show_progress_bar=True)
        qids = sorted(positives)
        q_emb = dict(zip(qids, _encode(cache, model, [beir.queries[q] for q in qids], "queries")))

        def mine_and_write() -> MiningReport:
            result = mine_pairs(positives, beir, doc_ids, doc_texts, q_emb, doc_emb, config)
            write_mining(result, out, out.with_name("mining_report.json"))
            return result.report

        return on_main_process(mine_and_write)


def _rows_from_file(path: Path) -> tuple[MinedRow, ...]:
    """mined.jsonl rows, or a pair file turned into rows (ids are line numbers)."""
    if path.suffix == ".jsonl":
        first = path.read_text(encoding="utf-8", errors="replace").lstrip().split("\n", 1)[0]
        try:
            is_mined = first and "positive_id" in json.loads(first)
        except (ValueError, TypeError, RecursionError):
            is_mined = False  # not a mined file: load_pairs reports the bad line with file:line
        if is_mined:
            return read_mined(path)
    pairs = load_pairs(path)
    with_neg = {len(p.negatives) > 0 for p in pairs}
    if len(with_neg) > 1:
        raise ValueError(
            f"{path}: some rows have negatives and some do not; fix: give every row a negative, or none "
            "(then only in-batch negatives are used)"
        )
    return tuple(
        MinedRow(
            query_id=str(i),
            query=p.query,
            positive_id=str(i),
            positive=p.positive,
            positive_score=float("nan"),
            negative_ids=tuple(f"{i}-{j}" for j in range(len(p.negatives))),
            negatives=p.negatives,
            negative_scores=tuple(float("nan") for _ in p.negatives),
        )
        for i, p in enumerate(pairs, start=1)
    )


def _rotation_documents(path: Path, rows: Sequence[MinedRow], config: TrainConfig) -> list[str]:
    """The texts the rotation is fitted to: no corpus here, so (a sample of) the rows' documents.

    Checked before the model loads: a PCA of one document has no second direction.
    """
    docs = sorted({t for r in rows for t in (r.positive, *r.negatives)})
    if len(docs) < 2:
        raise ValueError(
            f"{path}: too few documents for the rotation (rotate, on by default: expected at "
            f"least 2 distinct positives and negatives to fit it, got {len(docs)}); fix: pass "
            "--no-rotate, or add rows or negatives"
        )
    if len(docs) > ROTATION_SAMPLE:
        docs = random.Random(config.seed).sample(docs, ROTATION_SAMPLE)
    return docs


def train(
    rows: str | Path,
    out: str | Path,
    base_model: str = "all-MiniLM-L6-v2",
    config: TrainConfig | None = None,
    device: str = "auto",
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> TrainResult:
    """Fine-tune ``base_model`` on mined rows or a pair file and save it to ``out``.

    Without a dev split there is no checkpoint selection: the last epoch is saved. ``honed run``
    does the selection on a dev split carved from the training data. For the same reason
    ``config.remine_epochs`` does not apply here (the second round needs a corpus and a dev
    split); ``config.rotate`` fits the rotation on the rows' documents.

    Runs as several processes under ``torchrun`` / ``accelerate launch`` (DDP): each process
    trains on its share of the rows, and only the first one (rank 0) writes ``out``.
    """
    out = Path(out)
    refuse_existing(
        out, overwrite, ours=_is_model_folder,
        what="a sentence-transformers model folder (no modules.json)",
    )
    # OUT, OUT.tmp and OUT.checkpoints are named after OUT: its own lock file, beside it.
    with _hold(out.parent, f"honed train --out {out}", f".{out.name}.honed.lock"):
        return _train(Path(rows), out, base_model, config or TrainConfig(), device, trust_remote_code)


def _train(
    rows: Path,
    out: Path,
    base_model: str,
    config: TrainConfig,
    device: str,
    trust_remote_code: bool,
) -> TrainResult:
    """:func:`train` once its output is checked and held."""
    training_rows = _rows_from_file(rows)
    docs = _rotation_documents(rows, training_rows, config) if config.rotate else []
    device = process_device(resolve_device(device))  # cuda:LOCAL_RANK under torchrun
    model = load_model(resolve_model_name(base_model), device, trust_remote_code)
    resolve_dims(config.dims, embedding_dim(model))  # right after loading, before any encoding
    guide = (
        load_model(resolve_model_name(base_model), device, trust_remote_code)
        if config.loss.value == "gist"
        else None
    )
    if config.rotate:
        rotate_to_corpus(model, encode_texts(model, docs))
    result = train_model(
        model,
        training_rows,
        config,
        out.with_name(out.name + ".checkpoints"),
        None,
        guide,
        # Without qrels, a query's known positives are those of its rows in the file.
        positives=positives_by_query(training_rows),
    )
    if is_main_process():  # DDP keeps the weights identical: one process writes them
        save_model(model, out)
    barrier()  # no process reports success before the model exists
    return result


def rerender_report(run_dir: str | Path) -> Path:
    """Rebuild ``report.md`` and the plots from ``RUN_DIR/report.json``."""
    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; fix: point at a finished `honed run` folder"
        )
    return write_report(RunResult(**json.loads(path.read_text(encoding="utf-8"))), run_dir)


def compare_systems(
    data: str | Path,
    systems: Sequence[str],
    split: str = "test",
    bm25: bool = False,
    n_resamples: int = 10_000,
    seed: int = 42,
    device: str = "auto",
    precision: Precision | str = Precision.AUTO,
    cache_dir: str | Path | None = "auto",
) -> list[dict[str, Any]]:
    """Paired significance between models and/or TREC run files on one split (every pair).

    The models' corpus encodings go through the on-disk embedding cache (``cache_dir``, as in
    :func:`evaluate_model`).

    ``systems``: model folders or hub ids (retrieved at full dim, top 100), or ``.trec``/``.run``
    files. Returns one dict per (pair, metric) with the statistics and a one-line sentence.
    """
    beir = load_beir(data)
    qrels = beir.split(split)
    runs: dict[str, Any] = {}
    for name in systems:
        if Path(name).suffix in (".trec", ".run", ".txt"):
            runs[name] = read_trec_run(name)
            continue
        model = load_model(resolve_model_name(name), device)
        full = embedding_dim(model)
        cache = EmbeddingCache(precision=precision, directory=resolve_cache_dir(cache_dir))
        dense, _ = model_runs(cache, model, beir, {split: qrels}, [full])
        runs[name] = dense[split][str(full)]
    if bm25:
        runs["bm25"] = bm25_runs(beir, *beir.documents(), {split: qrels})[split]["bm25"]
    if len(runs) < 2:
        raise ValueError(f"systems: expected at least two to compare, got {len(runs)}")
    tests = compare(qrels, runs, n_resamples=n_resamples, seed=seed)
    return [{**asdict(t), "sentence": t.sentence()} for t in tests]
