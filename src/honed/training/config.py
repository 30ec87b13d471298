"""The fine-tuning stage's settings: the loss choice and :class:`TrainConfig`, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from honed.encoding.encoder import Precision

__all__ = ["LossName", "TrainConfig"]


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
            object.__setattr__(self, "dims", tuple(self.dims))
        # One check per group, in field order: the first bad field is the one reported.
        self._check_schedule()
        self._check_matryoshka_weights()
        self._check_dropout_and_second_round()
        self._check_switches()

    def _check_schedule(self) -> None:
        for name in ("epochs", "batch_size", "mini_batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate: expected a value in (0, 1), got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio: expected a value in [0, 1), got {self.warmup_ratio}")
        self._check_dims_and_length()

    def _check_dims_and_length(self) -> None:
        # Against the model's width right after it loads (honed.encoding.dims.resolve_dims).
        if self.dims is not None and (not self.dims or min(self.dims) < 1):
            raise ValueError(f"dims: expected positive integers, got {self.dims}")
        if self.dims is not None and list(self.dims) != sorted(set(self.dims), reverse=True):
            # Not sorted silently: matryoshka_weights pair with the dims in the order given.
            raise ValueError(
                f"dims: expected distinct integers, largest first (e.g. --dims 384,256,128,64), "
                f"got {self.dims}; fix: list each dim once, from the largest down"
            )
        length = self.max_seq_length
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or length < 1
        ):
            raise ValueError(
                f"max_seq_length: expected a positive integer (tokens per text) or None for the "
                f"model's own, got {length!r}; fix: pass --max-seq-length 128 (or more), or "
                "leave it out"
            )

    def _check_matryoshka_weights(self) -> None:
        if self.matryoshka_weights is None:
            return
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

    def _check_dropout_and_second_round(self) -> None:
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

    def _check_switches(self) -> None:
        for name in ("rotate", "label_aware_batches", "label_aware_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.label_aware_loss and self.loss is not LossName.CACHED_MNRL:
            raise ValueError(
                f"label_aware_loss: only implemented for loss 'cached_mnrl', got loss "
                f"'{self.loss.value}'; fix: use loss 'cached_mnrl', or label_aware_batches"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (enums as their strings), as written into ``config.json``."""
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}
