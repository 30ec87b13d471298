"""The hard-negative miner's settings: :class:`MiningConfig`, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["MiningConfig", "SamplingStrategy"]


class SamplingStrategy(str, Enum):
    """How N negatives are picked among the candidates that survive the filters."""

    TOP = "top"  # the N highest-scoring survivors: the hardest negatives
    RANDOM = "random"  # N survivors drawn at random (seeded) from inside the candidate depth


@dataclass(frozen=True)
class MiningConfig:
    """Settings of the hard-negative miner.

    Attributes:
        num_negatives: negatives per (query, positive) pair.
        depth: candidates considered per query, from the top of the ranking over the whole corpus.
        margin: relative margin; a candidate scoring above ``margin * positive_score`` is dropped.
            1.0 disables it. NV-Retriever found 0.95 best among the values it tried.
        strategy: which survivors become negatives.
        fill: walk past ``depth`` when fewer than ``num_negatives`` survive, instead of leaving
            the pair short.
        seed: seeds the random strategy.
    """

    num_negatives: int = 3
    depth: int = 50
    margin: float = 0.95
    strategy: SamplingStrategy = SamplingStrategy.TOP
    fill: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", SamplingStrategy(self.strategy))
        if self.num_negatives < 1:
            raise ValueError(
                f"num_negatives: expected an integer >= 1, got {self.num_negatives}; "
                "fix: use 1 or more (in-batch negatives alone need no mining: skip `honed mine`)"
            )
        if self.depth < self.num_negatives:
            raise ValueError(
                f"depth: expected at least num_negatives ({self.num_negatives}), got {self.depth}"
            )
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(
                f"margin: expected a value in (0, 1] (1.0 disables the filter), got {self.margin}"
            )
