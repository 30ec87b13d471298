"""The end-to-end run: load -> split -> baseline -> mine -> train -> evaluate -> report.

Every stage writes plain files into one run folder; ``status.json`` records the stages done.
The corpus is encoded once with the base model and that one encoding serves the baseline at
every dim, the dev score of epoch 0 and the miner; the tuned model's corpus encoding is made by
the dev evaluator of the kept epoch and reused for the test evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from honed.data import BeirData, Qrels, carve_dev, load_beir
from honed.encode import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    load_model,
    resolve_device,
    resolve_model_name,
)
from honed.evaluate import DEFAULT_METRICS, evaluate
from honed.mine import MiningConfig, mine_hard_negatives, write_mined
from honed.retrieve import BM25Retriever, search, truncate
from honed.train import DevEvaluator, TrainConfig, TrainResult, matryoshka_dims, train_model

__all__ = ["RunConfig", "RunResult", "prepare_run_dir", "run_pipeline", "write_json"]

Notify = Callable[[str], None]
SplitMetrics = dict[str, dict[str, dict[str, float]]]  # split -> dim -> metric -> value


@dataclass(frozen=True)
class RunConfig:
    """Everything ``honed run`` needs; written, resolved, to ``RUN_DIR/config.json``."""

    data: str
    out: str
    base_model: str = "all-MiniLM-L6-v2"
    dev_fraction: float = 0.1
    min_dev_queries: int = 30
    seed: int = 42
    device: str = "auto"
    precision: Precision = Precision.AUTO
    encode_batch_size: int = 64
    bm25: bool = True
    mining: MiningConfig = field(default_factory=MiningConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    overwrite: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision(self.precision))
        if not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction: expected a value in (0, 1), got {self.dev_fraction}")
        if self.min_dev_queries < 1:
            raise ValueError(
                f"min_dev_queries: expected a positive integer, got {self.min_dev_queries}"
            )
        if self.encode_batch_size < 1:
            raise ValueError(
                f"encode_batch_size: expected a positive integer, got {self.encode_batch_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Enum):
                return value.value
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``honed run``; ``report.json`` is this, serialised."""

    run_dir: str
    config: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, SplitMetrics]  # system ("base", "bm25", "tuned") -> split -> dim -> metric
    mining: dict[str, Any]
    training: dict[str, Any]
    timings: dict[str, float]
    encode_stats: dict[str, int]
    verdict: dict[str, Any]
    environment: dict[str, str]


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename): a half-written file never looks finished."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def prepare_run_dir(out: str | Path, overwrite: bool) -> Path:
    """Create the run folder; refuse to touch an existing one unless ``overwrite`` and it is honed's.

    Raises:
        FileExistsError: the folder exists and is not empty (names the fix), or ``overwrite`` was
            given for a folder that is not a honed run folder (nothing is deleted then).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out}: run folder exists and is not empty; fix: pass --overwrite to replace it, "
                "or choose another --out"
            )
        if not (out / "config.json").is_file() or "honed_version" not in (
            out / "config.json"
        ).read_text(encoding="utf-8", errors="replace"):
            raise FileExistsError(
                f"{out}: not a honed run folder (no honed config.json), so --overwrite will not delete "
                "it; fix: choose a new or empty --out folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_summary(
    data: BeirData, train: Qrels, dev: Qrels, test: Qrels, dropped: Sequence[str]
) -> dict[str, Any]:
    root = Path(data.path)
    files = sorted(
        p
        for p in [root / "corpus.jsonl", root / "queries.jsonl", *root.glob("qrels/*.tsv")]
        if p.is_file()
    )

    def count(q: Qrels) -> dict[str, int]:
        return {
            "queries": len(q),
            "pairs": sum(1 for d in q.values() for s in d.values() if s >= 1),
            "queries_without_positive": sum(
                1 for d in q.values() if not any(s >= 1 for s in d.values())
            ),
        }

    return {
        "path": str(root.resolve()),
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "splits": {"train": count(train), "dev": count(dev), "test": count(test)},
        "train_queries_dropped_as_leaked": sorted(dropped),
        "warnings": list(data.warnings),
        "files": {
            str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in files
        },
    }


def split_data(data: BeirData, config: RunConfig) -> tuple[Qrels, Qrels, Qrels, list[str]]:
    """(train, dev, test, leaked) qrels: dev is the user's ``dev`` split or carved from train.

    Training queries that also appear in the test split are removed from training (leakage).
    """
    for needed in ("train", "test"):
        if needed not in data.splits:
            raise ValueError(
                f"{data.path}/qrels: no {needed}.tsv (found: {', '.join(data.splits) or 'none'}); "
                f"fix: honed run needs qrels/train.tsv to train and qrels/test.tsv for the final evaluation"
            )
    test = data.split("test")
    train_all = data.split("train")
    leaked = sorted(set(train_all) & set(test))
    train_all = {q: d for q, d in train_all.items() if q not in set(leaked)}
    if "dev" in data.splits:
        dev = {q: d for q, d in data.split("dev").items() if q not in test}
        train = {q: d for q, d in train_all.items() if q not in dev}
    else:
        train, dev = carve_dev(train_all, config.dev_fraction, config.min_dev_queries, config.seed)
    return train, dev, test, leaked


def _positives(qrels: Qrels) -> Qrels:
    return {
        q: {d: s for d, s in docs.items() if s >= 1}
        for q, docs in qrels.items()
        if any(s >= 1 for s in docs.values())
    }


def dense_metrics(
    query_emb: Mapping[str, np.ndarray],
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> SplitMetrics:
    """Metrics of a dense model on each split at each dim, from precomputed embeddings."""
    out: SplitMetrics = {}
    for name, qrels in splits.items():
        qids = sorted(qrels)
        q = np.stack([query_emb[qid] for qid in qids])  # (n_queries, dim)
        out[name] = {}
        for dim in dims:
            run = search(truncate(q, dim), truncate(doc_emb, dim), qids, doc_ids, k=100)
            out[name][str(dim)] = evaluate(qrels, run, metrics)
    return out


def bm25_metrics(
    data: BeirData,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    splits: Mapping[str, Qrels],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> SplitMetrics:
    """BM25 (bm25s) on each split; reported under the key ``"bm25"`` as its 'dim'."""
    retriever = BM25Retriever(doc_ids, doc_texts)
    out: SplitMetrics = {}
    for name, qrels in splits.items():
        qids = sorted(qrels)
        run = retriever.search(qids, [data.queries[q] for q in qids], k=100)
        out[name] = {"bm25": evaluate(qrels, run, metrics)}
    return out


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, clock: _Clock, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.clock.timings[self.name] = round(time.perf_counter() - self.start, 2)


def _environment() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    from honed import __version__

    return {
        "honed": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
    }


def _encode_queries(
    cache: EmbeddingCache, model: Any, data: BeirData, qids: Sequence[str]
) -> dict[str, np.ndarray]:
    emb = cache.encode(model, [data.queries[q] for q in qids], show_progress_bar=False)
    return dict(zip(qids, emb))


def run_pipeline(config: RunConfig, notify: Notify | None = None) -> RunResult:
    """Run every stage of ``honed run`` and write the run folder; returns the result.

    Example:
        >>> result = run_pipeline(RunConfig(data="data/scifact", out="runs/scifact"))
        >>> result.verdict["recommendation"]
        'tuned'
    """
    say = notify or (lambda message: None)
    from honed import __version__

    out = prepare_run_dir(config.out, config.overwrite)
    clock = _Clock()
    device = resolve_device(config.device)
    base_name = resolve_model_name(config.base_model)
    resolved = {
        **config.to_dict(),
        "honed_version": __version__,
        "device": device,
        "base_model_path": base_name,
    }
    write_json(out / "config.json", resolved)
    status: dict[str, Any] = {"completed": []}

    def done(stage: str) -> None:
        status["completed"].append(stage)
        write_json(out / "status.json", status)

    with clock.stage("load"):
        say(f"loading {config.data}")
        data = load_beir(config.data)
        train, dev, test, leaked = split_data(data, config)
        summary = _data_summary(data, train, dev, test, leaked)
        write_json(out / "data.json", summary)
        doc_ids = list(data.corpus)
        doc_texts = [data.corpus[d].full_text for d in doc_ids]
    done("load")
    splits = {"dev": dev, "test": test}
    cache = EmbeddingCache(batch_size=config.encode_batch_size, precision=config.precision)
    with clock.stage("baseline"):
        say(f"baseline: encoding {len(doc_ids)} documents with {config.base_model}")
        model = load_model(base_name, device, config.trust_remote_code)
        dims = config.training.dims or matryoshka_dims(embedding_dim(model))
        base_fp = cache.fingerprint(model)
        base_docs = cache.encode(
            model, doc_texts, show_progress_bar=True
        )  # (n_docs, dim), the one encoding
        q_base = _encode_queries(cache, model, data, sorted({*train, *dev, *test}))
        metrics: dict[str, SplitMetrics] = {
            "base": dense_metrics(q_base, base_docs, doc_ids, splits, dims)
        }
        if config.bm25:
            say("baseline: BM25 (bm25s)")
            metrics["bm25"] = bm25_metrics(data, doc_ids, doc_texts, splits)
        (out / "metrics").mkdir(exist_ok=True)
        for system, values in metrics.items():
            write_json(out / "metrics" / f"{system}.json", values)
    done("baseline")

    with clock.stage("mine"):
        say(f"mining {config.mining.num_negatives} hard negatives per training pair")
        train_pos = _positives(train)
        qids = sorted(train_pos)
        mined = mine_hard_negatives(
            train_pos,
            data.queries,
            doc_ids,
            doc_texts,
            np.stack([q_base[q] for q in qids]),
            base_docs,
            replace(config.mining, seed=config.mining.seed),
        )
        write_mined(mined.rows, out / "mined.jsonl")
        write_json(out / "mining_report.json", asdict(mined.report))
    done("mine")

    with clock.stage("train"):
        say(
            f"training on {len(mined.rows)} rows ({config.training.loss.value}, {config.training.epochs} epochs)"
        )
        guide = (
            load_model(base_name, device, config.trust_remote_code)
            if config.training.loss.value == "gist"
            else None
        )
        evaluator = DevEvaluator(data.queries, dev, doc_ids, doc_texts, dims, cache)
        result = train_model(
            model, mined.rows, config.training, out / "checkpoints", evaluator, guide
        )
        cache.forget(model)
    done("train")

    with clock.stage("evaluate"):
        say("evaluating the tuned model on dev and test at every dim")
        tuned_docs = cache.encode(model, doc_texts, show_progress_bar=True)
        q_tuned = _encode_queries(cache, model, data, sorted({*dev, *test}))
        metrics["tuned"] = dense_metrics(q_tuned, tuned_docs, doc_ids, splits, dims)
        write_json(out / "metrics" / "tuned.json", metrics["tuned"])
    done("evaluate")

    verdict = make_verdict(metrics, dims, result)
    with clock.stage("save"):
        model.save(str(out / "model"))
    done("save")
    run = RunResult(
        run_dir=str(out),
        config=resolved,
        data=summary,
        metrics=metrics,
        mining=asdict(mined.report),
        training=_training_dict(result, metrics["base"], dims),
        timings=clock.timings,
        encode_stats=asdict(cache.stats),
        verdict=verdict,
        environment={**_environment(), "base_fingerprint": base_fp},
    )
    from honed.report import write_report

    with clock.stage("report"):
        write_report(run, out)
    done("report")
    write_json(out / "report.json", asdict(replace(run, timings=clock.timings)))
    return replace(run, timings=clock.timings)


def _training_dict(result: TrainResult, base: SplitMetrics, dims: Sequence[int]) -> dict[str, Any]:
    full = str(max(dims))
    epoch0 = {"epoch": 0.0, "dev_ndcg@10": base["dev"][full]["ndcg@10"]}
    for dim in dims:
        if str(dim) != full:
            epoch0[f"dev_ndcg@10@{dim}d"] = base["dev"][str(dim)]["ndcg@10"]
    d = asdict(result)
    d["curve"] = [epoch0, *d["curve"]]
    return d


def make_verdict(
    metrics: Mapping[str, SplitMetrics], dims: Sequence[int], result: TrainResult
) -> dict[str, Any]:
    """Did fine-tuning clear the baseline and BM25? Decided on dev; test is reported, not used to choose."""
    full = str(max(dims))
    base_dev = metrics["base"]["dev"][full]["ndcg@10"]
    tuned_dev = metrics["tuned"]["dev"][full]["ndcg@10"]
    base_test = metrics["base"]["test"][full]["ndcg@10"]
    tuned_test = metrics["tuned"]["test"][full]["ndcg@10"]
    bm25_test = metrics["bm25"]["test"]["bm25"]["ndcg@10"] if "bm25" in metrics else None
    recommend = "tuned" if tuned_dev > base_dev else "base"
    lines = []
    if recommend == "base":
        lines.append(
            f"Fine-tuning did NOT help on dev (nDCG@10 {tuned_dev:.3f} tuned vs {base_dev:.3f} base): "
            "keep the base model."
        )
    else:
        lines.append(
            f"Fine-tuning helped on dev: nDCG@10 {base_dev:.3f} -> {tuned_dev:.3f} ({tuned_dev - base_dev:+.3f})."
        )
    lines.append(
        f"On test: tuned {tuned_test:.3f} vs base {base_test:.3f} ({tuned_test - base_test:+.3f})."
    )
    if bm25_test is not None:
        word = "beats" if tuned_test > bm25_test else "does not beat"
        lines.append(f"The tuned model {word} BM25 on test ({tuned_test:.3f} vs {bm25_test:.3f}).")
    small = [d for d in dims if metrics["tuned"]["test"][str(d)]["ndcg@10"] >= base_test]
    if small:
        lines.append(
            f"Smallest tuned dim at least as good as the untuned model at {full} dims: {min(small)} "
            f"({metrics['tuned']['test'][str(min(small))]['ndcg@10']:.3f})."
        )
    return {
        "recommendation": recommend,
        "base_dev_ndcg10": base_dev,
        "tuned_dev_ndcg10": tuned_dev,
        "base_test_ndcg10": base_test,
        "tuned_test_ndcg10": tuned_test,
        "bm25_test_ndcg10": bm25_test,
        "best_epoch": result.best_epoch,
        "sentences": lines,
    }
