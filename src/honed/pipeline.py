"""The end-to-end run: load -> baseline -> mine -> train -> evaluate -> report.

Every stage writes plain files into one run folder; ``status.json`` records the stages done.
The corpus is encoded once with the base model and that one encoding serves the baseline at
every dim, the dev score of epoch 0, the leakage check and the miner; the tuned model's corpus
encoding is made by the dev evaluator of the kept epoch and reused for the test evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from honed.cache import resolve_cache_dir
from honed.data import BeirData, Qrels, carve_dev
from honed.encode import Precision
from honed.evaluate import DEFAULT_METRICS, Run, evaluate
from honed.mine import MiningConfig
from honed.qgen import QueryGenConfig
from honed.retrieve import BM25Retriever, search, truncate
from honed.train import TrainConfig, TrainResult

__all__ = [
    "RunConfig",
    "RunResult",
    "bm25_metrics",
    "dense_metrics",
    "make_verdict",
    "prepare_run_dir",
    "resume_pipeline",
    "run_pipeline",
    "split_data",
    "write_json",
]

Notify = Callable[[str], None]
SplitMetrics = dict[str, dict[str, dict[str, float]]]  # split -> dim -> metric -> value
SplitRuns = dict[str, dict[str, Run]]  # split -> dim -> run


@dataclass(frozen=True)
class RunConfig:
    """Everything ``honed run`` needs; written, resolved, to ``RUN_DIR/config.json``.

    ``allow_leakage``: keep training queries that duplicate (exactly or nearly) a test query.
    By default they are dropped from training and dev, so the test metrics stay clean.
    """

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
    allow_leakage: bool = False
    n_resamples: int = 10_000
    mining: MiningConfig = field(default_factory=MiningConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    overwrite: bool = False
    trust_remote_code: bool = False
    # On-disk embedding cache of the base model: "auto" = $HONED_CACHE_DIR or
    # ~/.cache/honed/embeddings, None = memory only (see honed.cache).
    cache_dir: str | None = "auto"
    # Self-supervised corpus rows (honed.selfsup) per labelled row; 0 = labelled rows only.
    corpus_pairs: float = 0.0
    # Queries written by an LLM behind an OpenAI-compatible endpoint (honed.qgen); None = off.
    qgen: QueryGenConfig | None = None

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
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples: expected at least 100, got {self.n_resamples}")
        resolve_cache_dir(self.cache_dir)  # raises on ''
        if not 0.0 <= self.corpus_pairs <= 100.0:
            raise ValueError(
                f"corpus_pairs: expected a ratio in [0, 100] (self-supervised rows per labelled "
                f"row), got {self.corpus_pairs}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Rebuild a config from ``config.json`` (extra keys such as ``honed_version`` ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in values.items() if k in known}
        training = dict(kwargs.get("training", {}))
        if training.get("dims") is not None:
            training["dims"] = tuple(training["dims"])
        kwargs["training"] = TrainConfig(**training)
        kwargs["mining"] = MiningConfig(**kwargs.get("mining", {}))
        if kwargs.get("qgen") is not None:
            kwargs["qgen"] = QueryGenConfig(**kwargs["qgen"])
        return cls(**kwargs)

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
    metrics: dict[str, SplitMetrics]  # system (base, bm25, tuned, hybrid) -> split -> dim -> metric
    mining: dict[str, Any]
    training: dict[str, Any]
    timings: dict[str, float]
    encode_stats: dict[str, int]
    verdict: dict[str, Any]
    environment: dict[str, str]
    evidence: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # the budget planner; {} in older runs


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
        config = out / "config.json"
        text = config.read_text(encoding="utf-8", errors="replace") if config.is_file() else ""
        if "honed_version" not in text:
            raise FileExistsError(
                f"{out}: not a honed run folder (no honed config.json), so --overwrite will not "
                "delete it; fix: choose a new or empty --out folder"
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


def _count(qrels: Qrels) -> dict[str, int]:
    return {
        "queries": len(qrels),
        "pairs": sum(1 for d in qrels.values() for s in d.values() if s >= 1),
        "queries_without_positive": sum(
            1 for d in qrels.values() if not any(s >= 1 for s in d.values())
        ),
    }


def _data_summary(
    data: BeirData, splits: Mapping[str, Qrels], dropped: Sequence[str]
) -> dict[str, Any]:
    root = Path(data.path)
    candidates = [root / "corpus.jsonl", root / "queries.jsonl", *root.glob("qrels/*.tsv")]
    files = sorted(p for p in candidates if p.is_file())
    return {
        "path": str(root.resolve()),
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "splits": {name: _count(q) for name, q in splits.items()},
        "train_queries_dropped_as_leaked": sorted(dropped),
        "warnings": list(data.warnings),
        "files": {
            str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in files
        },
    }


def require_splits(data: BeirData) -> None:
    """Raise unless the dataset has the train and test splits that ``honed run`` needs."""
    for needed in ("train", "test"):
        if needed not in data.splits:
            raise ValueError(
                f"{data.path}/qrels: no {needed}.tsv (found: {', '.join(data.splits) or 'none'}); "
                "fix: honed run needs qrels/train.tsv to train and qrels/test.tsv for the final "
                "evaluation"
            )


def split_data(
    data: BeirData, config: RunConfig, drop: frozenset[str] = frozenset()
) -> tuple[Qrels, Qrels, Qrels, list[str]]:
    """(train, dev, test, dropped) qrels: dev is the user's ``dev`` split or carved from train.

    Training queries that are also test queries, or that are in ``drop`` (near duplicates of
    test queries), are removed from train and dev before the dev split is carved.
    """
    require_splits(data)
    test = data.split("test")
    train_all = data.split("train")
    dropped = sorted((set(train_all) & set(test)) | (set(train_all) & drop))
    train_all = {q: d for q, d in train_all.items() if q not in set(dropped)}
    if "dev" in data.splits:
        dev = {q: d for q, d in data.split("dev").items() if q not in test and q not in drop}
        train = {q: d for q, d in train_all.items() if q not in dev}
    else:
        train, dev = carve_dev(train_all, config.dev_fraction, config.min_dev_queries, config.seed)
    return train, dev, test, dropped


def positives_only(qrels: Qrels) -> Qrels:
    """Only the judgments with score >= 1; queries left without any are dropped."""
    return {
        q: {d: s for d, s in docs.items() if s >= 1}
        for q, docs in qrels.items()
        if any(s >= 1 for s in docs.values())
    }


def dense_runs(
    query_emb: Mapping[str, np.ndarray],
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
    k: int = 100,
) -> SplitRuns:
    """Top-``k`` runs of a dense model on each split at each dim (truncated, re-normalised)."""
    out: SplitRuns = {}
    for name, qrels in splits.items():
        qids = sorted(qrels)
        q = np.stack([query_emb[qid] for qid in qids])  # (n_queries, dim)
        out[name] = {
            str(dim): search(truncate(q, dim), truncate(doc_emb, dim), qids, doc_ids, k=k)
            for dim in dims
        }
    return out


def bm25_runs(
    data: BeirData, doc_ids: Sequence[str], doc_texts: Sequence[str], splits: Mapping[str, Qrels]
) -> SplitRuns:
    """BM25 (bm25s) runs on each split, under the 'dim' key ``"bm25"``."""
    retriever = BM25Retriever(doc_ids, doc_texts)
    return {
        name: {"bm25": retriever.search(sorted(q), [data.queries[i] for i in sorted(q)], k=100)}
        for name, q in splits.items()
    }


def metrics_of(
    runs: SplitRuns, splits: Mapping[str, Qrels], metrics: Sequence[str] = DEFAULT_METRICS
) -> SplitMetrics:
    """Aggregate metrics of every run: split -> dim -> metric -> value."""
    return {
        split: {dim: evaluate(splits[split], run, metrics) for dim, run in by_dim.items()}
        for split, by_dim in runs.items()
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
    return metrics_of(dense_runs(query_emb, doc_emb, doc_ids, splits, dims), splits, metrics)


def bm25_metrics(
    data: BeirData,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    splits: Mapping[str, Qrels],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> SplitMetrics:
    """BM25 (bm25s) on each split; reported under the key ``"bm25"`` as its 'dim'."""
    return metrics_of(bm25_runs(data, doc_ids, doc_texts, splits), splits, metrics)


def environment() -> dict[str, str]:
    """Library versions and machine facts recorded in every run folder."""
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


def resume_pipeline(run_dir: str | Path, notify: Notify | None = None) -> RunResult:
    """Continue an interrupted ``honed run`` from its last completed stage or checkpoint.

    Load, baseline and mining are recomputed (deterministic, about a minute); training continues
    from the newest complete epoch checkpoint; a saved model is not trained again.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json`` (not a honed run folder).
        ValueError: an input file changed since the run started (its sha256 differs).
    """
    from honed.stages import Run as _Run

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path}: no such file, so {run_dir} is not a honed run folder; "
            "fix: pass the --out folder of an earlier `honed run`"
        )
    values = json.loads(config_path.read_text(encoding="utf-8"))
    config = RunConfig.from_dict({**values, "out": str(run_dir), "overwrite": False})
    return _Run(config, notify or (lambda message: None), resume=True).execute()


def run_pipeline(config: RunConfig, notify: Notify | None = None) -> RunResult:
    """Run every stage of ``honed run`` and write the run folder; returns the result.

    Example:
        >>> result = run_pipeline(RunConfig(data="data/scifact", out="runs/scifact"))
        >>> result.verdict["recommendation"]
        'tuned'
    """
    from honed.stages import Run as _Run

    return _Run(config, notify or (lambda message: None)).execute()


def _training_dict(result: TrainResult, base: SplitMetrics, dims: Sequence[int]) -> dict[str, Any]:
    """The training result with the untuned model's dev scores as epoch 0 of the curve."""
    full = str(max(dims))
    epoch0 = {"epoch": 0.0, "dev_ndcg@10": base["dev"][full]["ndcg@10"]}
    for dim in dims:
        if str(dim) != full:
            epoch0[f"dev_ndcg@10@{dim}d"] = base["dev"][str(dim)]["ndcg@10"]
    d = asdict(result)
    d["curve"] = [epoch0, *d["curve"]]
    return d


def _hybrid_verdict(
    metrics: Mapping[str, SplitMetrics],
    full: str,
    model: str,
    stat: Mapping[tuple[str, str, str], Mapping[str, Any]],
    fusion: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """Which of dense / BM25 / hybrid to deploy, decided on dev nDCG@10, and the sentence saying so.

    ``dense`` is the recommended model (``model``: tuned or base) at full dim. On a dev tie the
    simpler system wins: dense, then BM25 (one index each), then hybrid (needs both).
    """
    scores = {
        split: {
            "dense": metrics[model][split][full]["ndcg@10"],
            "bm25": metrics["bm25"][split]["bm25"]["ndcg@10"],
            "hybrid": metrics["hybrid"][split]["hybrid"]["ndcg@10"],
        }
        for split in ("dev", "test")
    }
    dev, test = scores["dev"], scores["test"]
    deploy = max(dev, key=lambda name: dev[name])  # first of the tied: dense, bm25, hybrid
    how = f" ({fusion['method']}, dense weight {fusion['weight']:g})" if fusion else ""
    quoted = [
        f"vs {label} {t['sentence']}"
        for label, pair in (("tuned", (f"tuned@{full}", "hybrid")), ("BM25", ("bm25", "hybrid")))
        if (t := stat.get((*pair, "ndcg@10")))
    ]
    sentence = (
        f"Deploy {deploy} retrieval (decided on dev nDCG@10: dense {dev['dense']:.3f}, BM25 "
        f"{dev['bm25']:.3f}, hybrid{how} {dev['hybrid']:.3f}); on test hybrid {test['hybrid']:.3f}"
        + (
            f": {'; '.join(quoted)}."
            if quoted
            else f" vs dense {test['dense']:.3f}, BM25 {test['bm25']:.3f}."
        )
    )
    return sentence, {"deploy": deploy, "dense_model": model, "ndcg10": scores}


def make_verdict(
    metrics: Mapping[str, SplitMetrics],
    dims: Sequence[int],
    result: Any,
    tests: Sequence[Mapping[str, Any]] = (),
    fusion: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Did fine-tuning clear the baseline and BM25? Decided on dev; test is reported, not used to choose.

    With a ``"hybrid"`` system in ``metrics`` (and ``fusion``, the chosen
    :class:`~honed.fuse.FusionChoice` as a dict), one more sentence says which of dense, BM25 and
    hybrid to deploy (``verdict["retrieval"]``; None without hybrid).
    """
    full = str(max(dims))
    base_dev = metrics["base"]["dev"][full]["ndcg@10"]
    tuned_dev = metrics["tuned"]["dev"][full]["ndcg@10"]
    base_test = metrics["base"]["test"][full]["ndcg@10"]
    tuned_test = metrics["tuned"]["test"][full]["ndcg@10"]
    bm25_test = metrics["bm25"]["test"]["bm25"]["ndcg@10"] if "bm25" in metrics else None
    recommend = "tuned" if tuned_dev > base_dev else "base"
    stat = {(t["system_a"], t["system_b"], t["metric"]): t for t in tests}
    lines = []
    if recommend == "base":
        lines.append(
            f"Fine-tuning did NOT help on dev (nDCG@10 {tuned_dev:.3f} tuned vs {base_dev:.3f} "
            "base): keep the base model."
        )
    else:
        lines.append(
            f"Fine-tuning helped on dev: nDCG@10 {base_dev:.3f} -> {tuned_dev:.3f} "
            f"({tuned_dev - base_dev:+.3f})."
        )
    vs_base = stat.get((f"base@{full}", f"tuned@{full}", "ndcg@10"))
    lines.append(
        f"On test: tuned {tuned_test:.3f} vs base {base_test:.3f}"
        + (f": {vs_base['sentence']}." if vs_base else f" ({tuned_test - base_test:+.3f}).")
    )
    if bm25_test is not None:
        word = "beats" if tuned_test > bm25_test else "does not beat"
        vs_bm25 = stat.get(("bm25", f"tuned@{full}", "ndcg@10"))
        lines.append(
            f"The tuned model {word} BM25 on test ({tuned_test:.3f} vs {bm25_test:.3f}"
            + (f"; {vs_bm25['sentence']})." if vs_bm25 else ").")
        )
    small = [d for d in dims if metrics["tuned"]["test"][str(d)]["ndcg@10"] >= base_test]
    if small:
        best = metrics["tuned"]["test"][str(min(small))]["ndcg@10"]
        lines.append(
            f"Smallest tuned dim at least as good as the untuned model at {full} dims: "
            f"{min(small)} ({best:.3f} vs {base_test:.3f})."
        )
    retrieval = None
    if "hybrid" in metrics and "bm25" in metrics:
        sentence, retrieval = _hybrid_verdict(metrics, full, recommend, stat, fusion)
        lines.append(sentence)
    return {
        "recommendation": recommend,
        "base_dev_ndcg10": base_dev,
        "tuned_dev_ndcg10": tuned_dev,
        "base_test_ndcg10": base_test,
        "tuned_test_ndcg10": tuned_test,
        "bm25_test_ndcg10": bm25_test,
        "best_epoch": result.best_epoch,
        "retrieval": retrieval,
        "sentences": lines,
    }
