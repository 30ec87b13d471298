"""Fine-tuning: sentence-transformers' ``SentenceTransformerTrainer`` runs the loop; honed adds four things.

* bf16 autocast around the *whole* training step. The trainer's own ``bf16=True`` autocasts the
  forward only, but cached losses (CachedMultipleNegativesRankingLoss) redo the forward with
  gradients inside ``backward()``, i.e. in fp32. Wrapping the step covers both.
* attention dropout off by default (:mod:`honed.training.losses` says why). Together with bf16
  the step is ~4x faster on this project's CPUs.
* a dev evaluator that scores full-corpus retrieval at every Matryoshka dim with honed's metrics
  and shares its corpus encoding with the final evaluation (:mod:`honed.training.evaluator`).
* label-aware batches: given each query's known positives, no batch makes one of them an
  in-batch negative of that query (:mod:`honed.training.sampler`); or, keeping the batch, label-aware
  loss masking: such a text is left out of that query's softmax (:mod:`honed.training.masked_loss`).

The other components live beside this module: the config (:mod:`honed.training.config`), the
dataset (:mod:`honed.training.dataset`) and the losses (:mod:`honed.training.losses`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

from honed.encoding.dims import matryoshka_dims
from honed.encoding.distributed import BatchLog, world_size
from honed.encoding.encoder import Precision, autocast, embedding_dim, resolve_precision
from honed.training.config import LossName, TrainConfig
from honed.training.dataset import build_dataset
from honed.training.losses import build_loss, set_attention_dropout
from honed.training.masked_loss import find_label_aware_loss
from honed.training.sampler import build_label_aware_sampler

if TYPE_CHECKING:
    from honed.mining.rows import MinedRow

__all__ = [
    "HonedTrainer",
    "TrainResult",
    "TrainRun",
    "checkpoint_epoch",
    "latest_checkpoint",
    "merge_rounds",
    "train_model",
]


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


DEPRECATIONS_OF_LIBRARIES = (
    r"`broadcast_buffers` is deprecated",
    r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
)


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
    if processes > 1 and n_rows < config.batch_size * processes:
        # Distributed batches are full ones only (see dataloader_drop_last): none would remain.
        raise ValueError(
            f"training: {n_rows} rows are fewer than one step of {processes} processes x "
            f"{config.batch_size} rows; fix: --batch-size {max(1, n_rows // processes)} or less, "
            "or fewer processes"
        )
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


@dataclass(frozen=True)
class TrainRun:
    """How one call of :func:`train_model` runs, apart from what it learns (not in ``config.json``).

    Attributes:
        show_progress_bar: the trainer's progress bars.
        resume_from: a checkpoint folder of an earlier call to continue from (optimizer,
            schedule, RNG states and the dev curve included); None: start afresh.
        keep_checkpoints: leave the per-epoch checkpoints in ``output_dir`` (the pipeline
            removes them once the model is saved); by default they are removed at the end.
        callbacks: ``transformers.TrainerCallback`` objects handed to the trainer (``honed run``
            times its first steps with one, to correct its estimate).
        earlier_seconds: seconds spent training before this call by the interrupted process
            that wrote ``resume_from``: counted in the result's ``seconds``, and its
            ``rows_per_second`` is then over every epoch, those of the earlier process included.
    """

    show_progress_bar: bool = True
    resume_from: str | Path | None = None
    keep_checkpoints: bool = False
    callbacks: tuple[Any, ...] = ()
    earlier_seconds: float = 0.0


def train_model(
    model: SentenceTransformer,
    rows: Sequence[MinedRow],
    config: TrainConfig,
    output_dir: str | Path,
    evaluator: Any | None = None,
    guide: SentenceTransformer | None = None,
    positives: Mapping[str, Collection[str]] | None = None,
    run: TrainRun | None = None,
) -> TrainResult:
    """Fine-tune ``model`` in place on ``rows``; keeps the epoch with the best dev nDCG@10.

    Checkpoints go to ``output_dir``, one per epoch; ``run`` says whether to resume from one of
    them and whether to keep them (:class:`TrainRun`).

    ``positives`` (query text -> all its positive texts) turns on label-aware batches when
    ``config.label_aware_batches``: a known positive of a query never shares a batch with that
    query's rows unless it is the row's own positive (:class:`honed.training.sampler.LabelAwareBatchSampler`).
    Without it, or with the triplet loss (no in-batch negatives), batches are the stock ones.
    With ``config.label_aware_loss`` the loss masks those texts instead (``positives`` required).

    Example:
        >>> result = train_model(model, rows, TrainConfig(epochs=1), "ckpt", run=TrainRun(show_progress_bar=False))  # doctest: +SKIP
        >>> result.best_epoch  # doctest: +SKIP
        1.0
    """
    run = run or TrainRun()
    device = str(model.device)
    precision = resolve_precision(config.precision, device)
    if config.attention_dropout is not None:
        set_attention_dropout(model, config.attention_dropout)
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    dataset = build_dataset(rows, config.loss)
    dims = config.dims or matryoshka_dims(embedding_dim(model))
    args = _training_args(
        config, Path(output_dir), len(dataset), evaluator is not None, device, run.show_progress_bar
    )
    loss = build_loss(model, config, guide, positives=positives)
    # Triplet and GIST rows carry one negative and no in-batch ones worth guarding.
    in_batch = config.label_aware_batches and config.loss not in (LossName.TRIPLET, LossName.GIST)
    trainer = HonedTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        precision=precision,
        positives=positives if in_batch else None,
        callbacks=list(run.callbacks) or None,
    )
    start_epoch = checkpoint_epoch(run.resume_from)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Printed once per process under torchrun, about the libraries' own calls (accelerate's
        # DDP arguments, sentence-transformers' gather), with nothing for a user to change.
        for deprecated in DEPRECATIONS_OF_LIBRARIES:
            warnings.filterwarnings("ignore", message=deprecated, category=FutureWarning)
        trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    seconds = time.perf_counter() - start
    _remove_checkpoints(trainer, output_dir, run.keep_checkpoints)
    model.eval()
    timing = (seconds, start_epoch, run.earlier_seconds)
    return _result(trainer, config, len(dataset), timing, tuple(dims), loss)


def checkpoint_epoch(checkpoint: str | Path | None) -> float:
    """The epoch a checkpoint was written at (0.0 for no checkpoint)."""
    if checkpoint is None:
        return 0.0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return float(state.get("epoch") or 0.0)


def _remove_checkpoints(trainer: HonedTrainer, output_dir: str | Path, keep: bool) -> None:
    # Every process writes its RNG state into the checkpoints: wait for all before removing them
    # (once per machine: on several nodes without a shared disk each node has its own copy).
    trainer.accelerator.wait_for_everyone()
    if not keep and trainer.is_local_process_zero():
        shutil.rmtree(output_dir, ignore_errors=True)


def _result(
    trainer: HonedTrainer,
    config: TrainConfig,
    rows: int,
    timing: tuple[float, float, float],
    dims: tuple[int, ...],
    loss: Any,
) -> TrainResult:
    """What the finished ``trainer`` did, from its log history; the kept epoch is the best on dev.

    ``timing`` is (seconds spent training, epoch resumed from, seconds of earlier processes).
    With earlier seconds, they are added and the rate is over all epochs; without, a resumed
    call's rate is over the epochs it trained itself.
    """
    own, start_epoch, earlier = timing
    seconds = own + earlier
    epochs = config.epochs if earlier > 0 else max(config.epochs - start_epoch, 0.0)
    curve, losses = _curves(trainer.state.log_history)
    best = (
        max(curve, key=lambda c: c["dev_ndcg@10"])
        if curve
        else {"epoch": float(config.epochs), "dev_ndcg@10": float("nan")}
    )
    masking = find_label_aware_loss(loss)
    return TrainResult(
        curve=curve,
        loss_curve=losses,
        best_epoch=best["epoch"],
        best_dev_ndcg10=best["dev_ndcg@10"],
        rows=rows,
        steps=trainer.state.global_step,
        seconds=seconds,
        rows_per_second=rows * epochs / seconds if seconds > 0 else 0.0,
        precision=trainer.honed_precision.value,
        dims=dims,
        config=config.to_dict(),
        resumed_from_epoch=start_epoch,
        masked_negatives=masking.masked_total if masking is not None else 0,
    )
