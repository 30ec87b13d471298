"""What a ``honed run`` with its defaults would cost on this machine, estimated by ``diagnose``.

The same cost model as ``honed run``'s own estimate (:mod:`honed.training.cost_model`), fed the
same measurements (:mod:`honed.training.speed_probe`): the data's token lengths, a probe of this
model on this device in the run's batch shapes, and the real step counts of the defaults (first
round, second round, a dev evaluation per epoch). So ``diagnose`` and ``run`` print one figure
for one dataset and machine. It replaces a fixed 3.5 training rows/s measured once on one 2-core
CPU, which was ~5x too fast on a CPU without bf16 and blind to the texts' lengths.

The baseline is priced as the run will find it after this diagnosis: the corpus encodings that
``diagnose`` just wrote to the disk cache are not encoded again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from honed.encoding.encoder import Precision, resolve_precision
from honed.mining.config import MiningConfig
from honed.training.config import TrainConfig
from honed.training.cost_model import Workload, estimate_stages
from honed.training.long_run import long_run_notice
from honed.training.speed_probe import measure_lengths, measure_rates

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["ENCODE_BATCH", "CostEstimate", "estimate_cost"]

ENCODE_BATCH = 64  # honed run's --encode-batch-size default (RunConfig.encode_batch_size)


@dataclass(frozen=True)
class CostEstimate:
    """Estimated seconds per stage of a ``honed run`` with its defaults, on this machine."""

    documents: int
    documents_cached: int  # base-model encodings on disk now: the run's baseline skips them
    train_pairs: int
    epochs: int  # first round + second round
    steps: int
    step_seconds: float
    median_tokens: int  # of the sampled documents
    probe_seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # baseline, mine, train, evaluate

    @property
    def total_seconds(self) -> float:
        return sum(self.stages.values())

    @property
    def long_run(self) -> str | None:
        """``honed run``'s notice for a run estimated over an hour (None below)."""
        return long_run_notice(self.total_seconds, "a full run")


def estimate_cost(
    model: SentenceTransformer, doc_texts: Sequence[str], queries: Sequence[str], work: Workload,
    *, precision: Precision | str = Precision.AUTO, seed: int = 42,
) -> CostEstimate:  # fmt: skip
    """Probe ``model`` on this device (~10 s) and price ``work`` with the run's defaults.

    ``queries``: the texts of every query the run encodes (lengths are sampled from them).
    """
    start = time.perf_counter()
    training, mining = TrainConfig(), MiningConfig()
    lengths = measure_lengths(model, doc_texts, queries, seed)
    resolved = resolve_precision(precision, str(model.device))
    rates = measure_rates(model, doc_texts, lengths, training, resolved, ENCODE_BATCH)
    costs = estimate_stages(
        lengths, work, rates, training, negatives=mining.num_negatives, encode_batch=ENCODE_BATCH
    )
    docs = sorted(lengths.docs)
    return CostEstimate(
        documents=work.n_docs,
        documents_cached=work.docs_cached,
        train_pairs=work.train_pairs,
        epochs=training.epochs + training.remine_epochs,
        steps=costs.train.steps,
        step_seconds=costs.train.step,
        median_tokens=docs[len(docs) // 2],
        probe_seconds=time.perf_counter() - start,
        stages=costs.seconds(),
    )
