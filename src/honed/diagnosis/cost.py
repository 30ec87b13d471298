"""What a full ``honed run`` would cost on this machine, estimated before anything is trained.

``(1 + epochs)`` corpus encodings (the baseline, then the dev evaluation of each epoch) at the
documents-per-second measured by ``honed diagnose``, plus ``pairs * epochs`` training rows at
``REF_ROWS_PER_SECOND`` (3.5 rows/s, measured for all-MiniLM-L6-v2, 6 layers x 384 wide, on this
project's 2-core CPU) scaled by ``REF_PARAMETERS / parameters``. ``epochs`` is read from
``TrainConfig``'s defaults (first round plus second round), so the figure follows the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from honed.training.config import TrainConfig

__all__ = ["CostEstimate", "estimate_cost"]


REF_ROWS_PER_SECOND = 3.5



REF_PARAMETERS = 22_713_216  # all-MiniLM-L6-v2



@dataclass(frozen=True)
class CostEstimate:
    """Estimated time of a full ``honed run`` on this machine, from rates measured in this run."""

    documents: int
    documents_per_second: float
    parameters: int
    train_rows: int
    train_rows_per_second: float
    epochs: int
    encode_seconds: float
    train_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.encode_seconds + self.train_seconds



def estimate_cost(
    documents: int, documents_per_second: float, train_rows: int, parameters: int,
    epochs: int | None = None,
) -> CostEstimate:
    """Time of a full run: ``1 + epochs`` corpus encodings and ``rows * epochs`` training rows.

    ``epochs`` defaults to what ``honed run`` trains with its defaults: ``TrainConfig().epochs``
    plus the second round's ``remine_epochs`` (read from the dataclass, so it cannot drift).
    """
    if epochs is None:
        defaults = TrainConfig()
        epochs = defaults.epochs + defaults.remine_epochs
    if documents_per_second <= 0 or parameters < 1:
        raise ValueError(
            f"documents_per_second and parameters: expected positive values, got "
            f"{documents_per_second} and {parameters}"
        )
    rate = REF_ROWS_PER_SECOND * REF_PARAMETERS / parameters
    return CostEstimate(
        documents=documents,
        documents_per_second=documents_per_second,
        parameters=parameters,
        train_rows=train_rows,
        train_rows_per_second=rate,
        epochs=epochs,
        encode_seconds=(1 + epochs) * documents / documents_per_second,
        train_seconds=train_rows * epochs / rate,
    )
