"""Loss and trainer construction; the loop itself is sentence-transformers' ``SentenceTransformerTrainer``.

honed adds four things the stock recipe lacks:

* bf16 autocast around the *whole* training step. The trainer's own ``bf16=True`` autocasts the
  forward only, but cached losses (CachedMultipleNegativesRankingLoss) redo the forward with
  gradients inside ``backward()``, i.e. in fp32. Wrapping the step covers both.
* attention dropout off by default. PyTorch's fused CPU attention kernel cannot apply dropout, so
  with the BERT default (0.1) every training forward falls back to the slow "math" attention;
  measured on all-MiniLM-L6-v2 at 256 tokens, attention was 60% of the step. Hidden-layer
  dropout stays on. Together with bf16 the step is ~4x faster on this project's CPUs.
* a dev evaluator that scores full-corpus retrieval at every Matryoshka dim with honed's metrics
  and shares its corpus encoding with the final evaluation through the embedding cache.
* label-aware batches: given each query's known positives, no batch makes one of them an
  in-batch negative of that query (:mod:`honed.training.sampler`); or, keeping the batch, label-aware
  loss masking: such a text is left out of that query's softmax (:mod:`honed.training.masked_loss`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers.evaluation import SentenceEvaluator

from honed.encoding.dims import matryoshka_dims, truncate
from honed.encoding.distributed import BatchLog, world_size
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    autocast,
    embedding_dim,
    model_fingerprint,
    resolve_precision,
)
from honed.evaluation.metrics import evaluate
from honed.mining.hard_negatives import MinedRow
from honed.retrieval.dense import search
from honed.training.masked_loss import LabelAwareCachedMNRL, find_label_aware_loss
from honed.training.sampler import build_label_aware_sampler

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "DevEvaluator",
    "LossName",
    "TrainConfig",
    "TrainResult",
    "build_dataset",
    "build_loss",
    "matryoshka_dims",
    "train_model",
]


class LossName(str, Enum):
    """Training objectives offered by ``honed train --loss``."""

    MNRL = "mnrl"  # MultipleNegativesRankingLoss: InfoNCE over hard + in-batch negatives
    CACHED_MNRL = "cached_mnrl"  # same loss, gradient caching: large batch at fixed memory
    GIST = "gist"  # GISTEmbedLoss: the base model guides which in-batch negatives to trust
    TRIPLET = "triplet"  # TripletLoss on (query, positive, one negative) rows


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the fine-tuning stage (validated on construction)."""

    loss: LossName = LossName.CACHED_MNRL
    epochs: int = 5
    batch_size: int = 64
    mini_batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0
    matryoshka: bool = True
    dims: tuple[int, ...] | None = None  # None: matryoshka_dims(model width)
    # Weight of each Matryoshka dim's loss, largest dim first; None: all 1 (sentence-transformers').
    matryoshka_weights: tuple[float, ...] | None = None
    max_seq_length: int | None = None  # None: the model's own
    attention_dropout: float | None = 0.0  # None: keep the model's; see module docstring
    precision: Precision = Precision.AUTO
    triplet_margin: float = 5.0
    gist_temperature: float = 0.01
    logging_steps: int = 5
    seed: int = 42
    # Keep a query's known positives out of its batch. Off by default: on SciFact the stock
    # sampler exposes ~1e-4 of in-batch pairs (nothing to gain), and on data with many positives
    # per query the constraint halves the batch (docs/benchmarks.md); its effect on quality is
    # not measured yet.
    label_aware_batches: bool = False
    # Mask a query's known positives (and copies of its own positive) out of the loss instead of
    # pushing them away (honed.training.masked_loss); keeps the full batch. cached_mnrl only.
    label_aware_loss: bool = False
    # Start from the base model rotated by the principal directions of the corpus embeddings
    # (honed.encoding.rotation: a Dense layer before Normalize; no full-dim cosine changes), so the first
    # Matryoshka dims begin as the best linear truncation. Chosen on dev (docs/benchmarks.md).
    rotate: bool = True
    # Second round (honed.pipeline.stages): mine again with the tuned model under the same filters and
    # train this many more epochs at remine_learning_rate; kept only if dev nDCG@10 improves.
    remine_epochs: int = 1
    remine_learning_rate: float = 5e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", LossName(self.loss))
        object.__setattr__(self, "precision", Precision(self.precision))
        if self.dims is not None:
            object.__setattr__(self, "dims", tuple(sorted(set(self.dims), reverse=True)))
        for name in ("epochs", "batch_size", "mini_batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate: expected a value in (0, 1), got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio: expected a value in [0, 1), got {self.warmup_ratio}")
        if self.dims is not None and (not self.dims or min(self.dims) < 1):
            raise ValueError(f"dims: expected positive integers, got {self.dims}")
        if self.matryoshka_weights is not None:
            weights = tuple(float(w) for w in self.matryoshka_weights)
            object.__setattr__(self, "matryoshka_weights", weights)
            if not weights or min(weights) <= 0:
                raise ValueError(
                    f"matryoshka_weights: expected positive numbers, got {self.matryoshka_weights}"
                )
            if self.dims is not None and len(weights) != len(self.dims):
                raise ValueError(
                    f"matryoshka_weights: expected one weight per dim {self.dims}, got {weights}"
                )
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(
                f"attention_dropout: expected a value in [0, 1) or None, got {self.attention_dropout}"
            )
        if (
            isinstance(self.remine_epochs, bool)
            or not isinstance(self.remine_epochs, int)
            or (self.remine_epochs < 0)
        ):
            raise ValueError(
                f"remine_epochs: expected an integer >= 0 (0: no second round), "
                f"got {self.remine_epochs!r}"
            )
        if not 0.0 < self.remine_learning_rate < 1.0:
            raise ValueError(
                f"remine_learning_rate: expected a value in (0, 1), got {self.remine_learning_rate}"
            )
        if not isinstance(self.rotate, bool):
            raise ValueError(f"rotate: expected true or false, got {self.rotate!r}")
        if not isinstance(self.label_aware_batches, bool):
            raise ValueError(
                f"label_aware_batches: expected true or false, got {self.label_aware_batches!r}"
            )
        if not isinstance(self.label_aware_loss, bool):
            raise ValueError(
                f"label_aware_loss: expected true or false, got {self.label_aware_loss!r}"
            )
        if self.label_aware_loss and self.loss is not LossName.CACHED_MNRL:
            raise ValueError(
                f"label_aware_loss: only implemented for loss 'cached_mnrl', got loss "
                f"'{self.loss.value}'; fix: use loss 'cached_mnrl', or label_aware_batches"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}


def build_dataset(rows: Sequence[MinedRow], loss: LossName) -> Dataset:
    """Training rows as a ``datasets.Dataset``: columns anchor, positive, negative_1..N.

    Rows with fewer negatives than the longest row repeat theirs cyclically (a repeated negative
    only re-weights that logit; it is never a false negative). TripletLoss and GISTEmbedLoss take
    one negative per row (sentence-transformers' GIST refuses more than three columns), so each
    (query, positive, negative) becomes its own row.
    """
    from datasets import Dataset

    if not rows:
        raise ValueError(
            "rows: expected at least one mined row, got none; fix: check the training split"
        )
    if loss in (LossName.TRIPLET, LossName.GIST):
        triples = [(r.query, r.positive, n) for r in rows for n in r.negatives]
        return Dataset.from_dict(
            {
                "anchor": [t[0] for t in triples],
                "positive": [t[1] for t in triples],
                "negative": [t[2] for t in triples],
            }
        )
    width = max(len(r.negatives) for r in rows)
    columns: dict[str, list[str]] = {
        "anchor": [r.query for r in rows],
        "positive": [r.positive for r in rows],
    }
    for j in range(width):
        columns[f"negative_{j + 1}"] = [r.negatives[j % len(r.negatives)] for r in rows]
    return Dataset.from_dict(columns)


def build_loss(
    model: SentenceTransformer,
    config: TrainConfig,
    guide: SentenceTransformer | None = None,
    positives: Mapping[str, Collection[str]] | None = None,
) -> Any:
    """The configured loss, wrapped in MatryoshkaLoss when ``config.matryoshka``.

    With ``config.label_aware_loss`` the cached loss masks false in-batch negatives, found from
    ``positives`` (query text -> all its known positive texts; :mod:`honed.training.masked_loss`).

    Under ``torchrun`` (world size > 1) the in-batch losses gather the embeddings of every
    process, so each query sees ``batch_size x world_size`` in-batch candidates, not only its own
    process's ``batch_size``. ``WORLD_SIZE`` is read too: the trainer creates the process group
    after the loss is built.
    """
    from sentence_transformers import losses  # type: ignore[attr-defined]

    gather = world_size() > 1
    if config.loss is LossName.MNRL:
        inner = losses.MultipleNegativesRankingLoss(
            model, scale=config.scale, gather_across_devices=gather
        )
    elif config.loss is LossName.CACHED_MNRL and config.label_aware_loss:
        if positives is None:
            raise ValueError(
                "label_aware_loss: needs the known positives (query text -> positive texts), got "
                "none; fix: pass positives, e.g. honed.training.sampler.positives_by_query(rows)"
            )
        inner = LabelAwareCachedMNRL(
            model,
            positives,
            scale=config.scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=gather,
        )
    elif config.loss is LossName.CACHED_MNRL:
        inner = losses.CachedMultipleNegativesRankingLoss(
            model,
            scale=config.scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=gather,
        )
    elif config.loss is LossName.GIST:
        if guide is None:
            raise ValueError("loss 'gist' needs a guide model; fix: pass the base model as guide")
        inner = losses.GISTEmbedLoss(
            model, guide, temperature=config.gist_temperature, gather_across_devices=gather
        )
    else:
        inner = losses.TripletLoss(model, triplet_margin=config.triplet_margin)
    if not config.matryoshka:
        return inner
    dims = config.dims or matryoshka_dims(embedding_dim(model))
    weights = config.matryoshka_weights
    if weights is not None and len(weights) != len(dims):
        raise ValueError(
            f"matryoshka_weights: expected one weight per Matryoshka dim {tuple(dims)}, "
            f"got {weights}; fix: give {len(dims)} weights, largest dim first"
        )
    return losses.MatryoshkaLoss(
        model,
        inner,
        matryoshka_dims=list(dims),
        matryoshka_weights=list(weights) if weights is not None else None,
    )


def set_attention_dropout(model: SentenceTransformer, p: float) -> int:
    """Set the dropout of every self-attention block to ``p``; returns how many were changed."""
    changed = 0
    for module in model.modules():
        dropout: Any = getattr(module, "dropout", None)
        if type(module).__name__.endswith("SelfAttention") and hasattr(dropout, "p"):
            dropout.p = p
            changed += 1
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    if changed and config is not None and hasattr(config, "attention_probs_dropout_prob"):
        config.attention_probs_dropout_prob = p  # so the saved config says what was trained
    return changed


class DevEvaluator(SentenceEvaluator):  # type: ignore[misc]
    """Full-corpus retrieval on the dev split at every dim; primary metric ``dev_ndcg@10`` at full dim.

    The corpus goes through the shared :class:`EmbeddingCache`, keyed by the weights' fingerprint, so
    the final test evaluation of the kept epoch finds its corpus encoding already there.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        doc_ids: Sequence[str],
        doc_texts: Sequence[str],
        dims: Sequence[int],
        cache: EmbeddingCache,
    ) -> None:
        super().__init__()
        self.queries, self.qrels, self.dims, self.cache = queries, qrels, tuple(dims), cache
        self.doc_ids, self.doc_texts = doc_ids, doc_texts
        self.primary_metric = "dev_ndcg@10"
        self.history: list[dict[str, float]] = []

    def __call__(
        self,
        model: SentenceTransformer,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        metrics = dev_metrics(
            model, self.queries, self.qrels, self.doc_ids, self.doc_texts, self.dims, self.cache
        )
        self.history.append({"epoch": float(epoch), "step": float(steps), **metrics})
        return metrics


def dev_metrics(
    model: SentenceTransformer,
    queries: Mapping[str, str],
    qrels: Mapping[str, Any],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    dims: Sequence[int],
    cache: EmbeddingCache,
) -> dict[str, float]:
    """nDCG@10 (and Recall@10) on ``qrels`` at every dim, corpus encoded through ``cache``."""
    fingerprint = model_fingerprint(model)  # weights change during training: no memo
    qids = sorted(qrels)
    # disk=False: weights in training are new every epoch; no later run could reuse these.
    doc_emb = cache.encode(model, doc_texts, fingerprint=fingerprint, disk=False)  # (n_docs, dim)
    query_emb = cache.encode(model, [queries[q] for q in qids], fingerprint=fingerprint, disk=False)
    metrics: dict[str, float] = {}
    for dim in dims:
        run = search(truncate(query_emb, dim), truncate(doc_emb, dim), qids, doc_ids, k=10)
        scores = evaluate(dict(qrels), run, ["ndcg@10", "recall@10"])
        suffix = "" if dim == max(dims) else f"@{dim}d"
        metrics[f"dev_ndcg@10{suffix}"] = scores["ndcg@10"]
        metrics[f"dev_recall@10{suffix}"] = scores["recall@10"]
    model.train()
    return metrics


@dataclass(frozen=True)
class TrainResult:
    """What training did: per-epoch dev scores, the kept epoch, and its cost."""

    curve: tuple[dict[str, float], ...]  # one entry per dev evaluation
    loss_curve: tuple[dict[str, float], ...]  # (epoch, step, loss) every logging_steps
    best_epoch: float
    best_dev_ndcg10: float
    rows: int
    steps: int
    seconds: float
    rows_per_second: float
    precision: str
    dims: tuple[int, ...]
    config: dict[str, Any] = field(default_factory=dict)
    resumed_from_epoch: float = 0.0  # > 0 when training continued from a checkpoint
    # The re-mining round (TrainConfig.remine_epochs): rows, its best dev score, kept or not.
    round2: dict[str, Any] | None = None
    # Logits masked as false in-batch negatives (TrainConfig.label_aware_loss; this process's).
    masked_negatives: int = 0


def merge_rounds(first: TrainResult, second: TrainResult, kept: bool) -> TrainResult:
    """One record of two training rounds; the second round's epochs continue the first's."""
    offset = max((float(c["epoch"]) for c in first.curve), default=0.0)

    def shift(entries: tuple[dict[str, float], ...]) -> tuple[dict[str, float], ...]:
        return tuple({**e, "epoch": float(e["epoch"]) + offset} for e in entries)

    return replace(
        first,
        curve=first.curve + shift(second.curve),
        loss_curve=first.loss_curve + shift(second.loss_curve),
        best_epoch=second.best_epoch + offset if kept else first.best_epoch,
        best_dev_ndcg10=second.best_dev_ndcg10 if kept else first.best_dev_ndcg10,
        steps=first.steps + second.steps,
        seconds=first.seconds + second.seconds,
        masked_negatives=first.masked_negatives + second.masked_negatives,
        round2={
            "rows": second.rows,
            "epochs": second.config.get("epochs"),
            "learning_rate": second.config.get("learning_rate"),
            "best_dev_ndcg10": second.best_dev_ndcg10,
            "first_round_dev_ndcg10": first.best_dev_ndcg10,
            "kept": kept,
        },
    )


class HonedTrainer(SentenceTransformerTrainer):  # type: ignore[misc]
    """The stock trainer, with the whole step (forward and cached re-forward) under autocast.

    Debugging aid: with ``HONED_LOG_BATCHES=PREFIX`` set, every process appends the anchor texts
    of each batch it trains on to ``PREFIX.rank<N>.jsonl`` (see :class:`honed.encoding.distributed.BatchLog`).
    """

    def __init__(
        self,
        *args: Any,
        precision: Precision = Precision.FP32,
        positives: Mapping[str, Collection[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.honed_positives = positives  # None: the stock no-duplicates batches
        super().__init__(*args, **kwargs)
        self.honed_precision = precision
        self.data_collator = BatchLog.from_env(self.data_collator, self.args.process_index)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        with autocast(str(self.model.device), self.honed_precision):
            return super().training_step(*args, **kwargs)

    def get_batch_sampler(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> Any:
        # Overridden rather than passed as args.batch_sampler: the trainer pickles its args into
        # every checkpoint, which would copy every positive text into training_args.bin.
        options = {
            "batch_size": batch_size,
            "drop_last": drop_last,
            "valid_label_columns": valid_label_columns,
            "generator": generator,
            "seed": seed,
        }
        if self.honed_positives is None:
            return super().get_batch_sampler(dataset, **options)
        return build_label_aware_sampler(dataset, self.honed_positives, **options)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest *complete* checkpoint in ``folder`` (one with ``trainer_state.json``), or None.

    A checkpoint is written file by file; a run killed while writing leaves one without its
    trainer state, which must not be resumed from.
    """
    folder = Path(folder)
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _training_args(
    config: TrainConfig, output_dir: Path, n_rows: int, has_eval: bool, device: str, progress: bool
) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    processes = world_size()  # under torchrun each process takes its own batch_size rows a step
    steps_per_epoch = math.ceil(n_rows / (config.batch_size * processes))
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=math.ceil(config.warmup_ratio * config.epochs * steps_per_epoch),
        weight_decay=config.weight_decay,
        batch_sampler="no_duplicates",  # a duplicate text in a batch would be a false in-batch negative
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",  # one checkpoint per epoch: what a killed run resumes from
        save_total_limit=2 if has_eval else 1,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_dev_ndcg@10" if has_eval else None,
        greater_is_better=True,
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=device == "cpu",
        # Distributed, every process must get the same number of full batches: the loss gathers
        # equal-sized batches and DDP all-reduces every step, so an uneven tail would hang.
        # The dropped tail (< batch_size x processes rows) differs from epoch to epoch.
        dataloader_drop_last=processes > 1,
    )


def _curves(
    history: Sequence[Mapping[str, Any]],
) -> tuple[tuple[dict[str, float], ...], tuple[dict[str, float], ...]]:
    curve = tuple(
        {
            "epoch": float(h["epoch"]),
            **{k[5:]: float(v) for k, v in h.items() if k.startswith("eval_dev_")},
        }
        for h in history
        if "eval_dev_ndcg@10" in h
    )
    losses = tuple(
        {"epoch": float(h["epoch"]), "step": float(h["step"]), "loss": float(h["loss"])}
        for h in history
        if "loss" in h
    )
    return curve, losses


def train_model(
    model: SentenceTransformer,
    rows: Sequence[MinedRow],
    config: TrainConfig,
    output_dir: str | Path,
    evaluator: Any | None = None,
    guide: SentenceTransformer | None = None,
    show_progress_bar: bool = True,
    resume_from: str | Path | None = None,
    keep_checkpoints: bool = False,
    positives: Mapping[str, Collection[str]] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` in place on ``rows``; keeps the epoch with the best dev nDCG@10.

    Checkpoints go to ``output_dir``, one per epoch; ``resume_from`` continues from one of them
    (optimizer, schedule, RNG states and the dev curve included). They are removed at the end
    unless ``keep_checkpoints`` (the pipeline removes them once the model is saved).

    ``positives`` (query text -> all its positive texts) turns on label-aware batches when
    ``config.label_aware_batches``: a known positive of a query never shares a batch with that
    query's rows unless it is the row's own positive (:class:`honed.training.sampler.LabelAwareBatchSampler`).
    Without it, or with the triplet loss (no in-batch negatives), batches are the stock ones.
    With ``config.label_aware_loss`` the loss masks those texts instead (``positives`` required).
    """
    device = str(model.device)
    precision = resolve_precision(config.precision, device)
    if config.attention_dropout is not None:
        set_attention_dropout(model, config.attention_dropout)
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    dataset = build_dataset(rows, config.loss)
    dims = config.dims or matryoshka_dims(embedding_dim(model))
    args = _training_args(
        config, Path(output_dir), len(dataset), evaluator is not None, device, show_progress_bar
    )
    loss = build_loss(model, config, guide, positives=positives)
    trainer = HonedTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        precision=precision,
        positives=(
            positives
            if config.label_aware_batches and config.loss not in (LossName.TRIPLET, LossName.GIST)
            else None
        ),
    )
    start_epoch = 0.0
    if resume_from is not None:
        state = json.loads((Path(resume_from) / "trainer_state.json").read_text(encoding="utf-8"))
        start_epoch = float(state.get("epoch") or 0.0)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - start
    masking = find_label_aware_loss(loss)
    curve, losses = _curves(trainer.state.log_history)
    best = (
        max(curve, key=lambda c: c["dev_ndcg@10"])
        if curve
        else {"epoch": float(config.epochs), "dev_ndcg@10": float("nan")}
    )
    # Every process writes its RNG state into the checkpoints: wait for all before removing them
    # (once per machine: on several nodes without a shared disk each node has its own copy).
    trainer.accelerator.wait_for_everyone()
    if not keep_checkpoints and trainer.is_local_process_zero():
        shutil.rmtree(output_dir, ignore_errors=True)
    model.eval()
    return TrainResult(
        curve=curve,
        loss_curve=losses,
        best_epoch=best["epoch"],
        best_dev_ndcg10=best["dev_ndcg@10"],
        rows=len(dataset),
        steps=trainer.state.global_step,
        seconds=seconds,
        rows_per_second=len(dataset) * max(config.epochs - start_epoch, 0.0) / seconds,
        precision=precision.value,
        dims=tuple(dims),
        config=config.to_dict(),
        resumed_from_epoch=start_epoch,
        masked_negatives=masking.masked_total if masking is not None else 0,
    )
