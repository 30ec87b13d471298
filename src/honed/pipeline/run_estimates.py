"""``honed run``'s time estimates: made before the baseline, corrected on the run, recorded.

Before the baseline encoding (the first expensive step), :meth:`RunEstimates.measure` samples
the token lengths and times the probe (:mod:`honed.training.speed_probe`), and
:mod:`honed.training.cost_model` turns them into seconds per stage. Two stages are long enough
to be corrected while they run, from their own first steps:

* the baseline encodes a seeded sample of the documents first (their vectors are kept: nothing
  is encoded twice); measured / estimated for that sample scales the rest of the stage, and the
  later stages' encodings;
* training times steps 2 and 3 (step 1 warms up) with a trainer callback; the remaining steps
  at that pace plus the rest of the stage (dev evaluations, second round) give the figure.

``status.json`` records ``estimates``: {stage: {estimate_seconds, corrected_seconds,
actual_seconds}}; the report shows them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from honed.data.splits import count_pairs, positives_only
from honed.encoding.distributed import world_size
from honed.encoding.encoder import resolve_precision
from honed.pipeline.budget import BudgetPlan, Knobs, format_minutes, plan_budget
from honed.training.cost_model import (
    Lengths,
    Rates,
    StageCosts,
    Workload,
    encode_seconds,
    estimate_stages,
)
from honed.training.long_run import LONG_RUN_SECONDS, long_run_notice
from honed.training.speed_probe import measure_lengths, measure_rates

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from honed.data.beir import BeirData
    from honed.data.splits import Splits
    from honed.encoding.encoder import EmbeddingCache
    from honed.pipeline.config import RunConfig

__all__ = ["RunEstimates", "StepClock"]

CLOCK_STEPS = 2  # steps timed after the first (warm-up) one before training's figure is corrected
SAMPLE_SHARE = 0.03  # of the documents encoded first to correct the baseline's figure
STAGE_NAMES = {"baseline": "baseline", "mine": "mining", "train": "training",
               "evaluate": "evaluation"}  # fmt: skip


def workload(
    data: BeirData, splits: Splits, model: SentenceTransformer, cache: EmbeddingCache,
    doc_texts: Sequence[str],
) -> Workload:  # fmt: skip
    """What the run will encode and train on, from ``splits`` as ``honed check`` carves them.

    Those are after the model-free leakage filter; the near duplicates the base model's
    embeddings find are only known after the baseline encoding (they are few).
    """
    train = positives_only(splits.train)
    qids = sorted({q for split in data.splits for q in data.split(split)})
    return Workload(
        n_docs=len(doc_texts),
        n_queries=len(qids),
        train_queries=len(train),
        train_pairs=count_pairs(train),
        dev_queries=len(splits.dev),
        test_queries=len(splits.test),
        docs_cached=cache.known(model, doc_texts),
        queries_cached=cache.known(model, [data.queries[q] for q in qids]),
        processes=world_size(),
    )


@dataclass
class RunEstimates:
    """The measured inputs of the cost model and the per-stage record of ``status.json``."""

    lengths: Lengths
    rates: Rates
    work: Workload
    config: RunConfig
    probe_seconds: float
    records: dict[str, dict[str, float | None]] = field(default_factory=dict)
    encode_factor: float = 1.0  # measured / estimated encoding time, from the baseline's sample

    @classmethod
    def measure(
        cls, model: SentenceTransformer, data: BeirData, config: RunConfig,
        cache: EmbeddingCache, doc_texts: Sequence[str], splits: Splits,
    ) -> RunEstimates:  # fmt: skip
        """Sample the token lengths, time the probe and count the work (a few seconds).

        ``splits``: train, dev and test as :func:`honed.data.plan.plan_run` carves them.
        """
        start = time.perf_counter()
        queries = list(data.queries.values())
        lengths = measure_lengths(model, doc_texts, queries, config.seed)
        precision = resolve_precision(config.precision, str(model.device))
        rates = measure_rates(
            model, doc_texts, lengths, config.training, precision, config.encode_batch_size
        )
        work = workload(data, splits, model, cache, doc_texts)
        return cls(lengths, rates, work, config, time.perf_counter() - start)

    def costs(self, config: RunConfig | None = None) -> StageCosts:
        config = config or self.config
        return estimate_stages(
            self.lengths,
            self.work.sampled(config.max_train_queries),
            self.rates,
            config.training,
            negatives=config.mining.num_negatives,
            encode_batch=config.encode_batch_size,
            n_resamples=config.n_resamples,
        )

    def record(self) -> None:
        """Record this config's estimate of every stage (the probe counts in the baseline's)."""
        seconds = self.costs().seconds()
        seconds["baseline"] += self.probe_seconds
        self.records = {
            stage: {"estimate_seconds": round(s, 1), "corrected_seconds": None,
                    "actual_seconds": None}
            for stage, s in seconds.items()
        }  # fmt: skip

    def sentence(self) -> str:
        """E.g. "estimates: baseline ~2 min, mining ~0 s, training ~41 min, evaluation ~9 s"."""
        parts = [
            f"{STAGE_NAMES[stage]} ~{format_minutes(r['estimate_seconds'] or 0.0)}"
            for stage, r in self.records.items()
        ]
        total = sum(r["estimate_seconds"] or 0.0 for r in self.records.values())
        # the lengths the run encodes and trains at (a --max-seq-length below the model's cuts them)
        lengths = sorted(self.lengths.truncated(self.config.training.max_seq_length).docs)
        median = lengths[len(lengths) // 2]
        return (
            f"estimates: {', '.join(parts)}; total ~{format_minutes(total)} (probe: documents "
            f"~{median} tokens median, {lengths[-1]} max; "
            f"{self.rates.train_token * 1e6:.0f} us per training token)"
        )

    def long_run_warning(self) -> str | None:
        total = sum(r["estimate_seconds"] or 0.0 for r in self.records.values())
        return long_run_notice(total, "this run", threshold=LONG_RUN_SECONDS)

    def plan(self, budget_seconds: float) -> tuple[BudgetPlan, RunConfig]:
        """The budget plan and the config it gives (nothing run yet)."""
        config, training = self.config, self.config.training

        def planned(knobs: Knobs) -> RunConfig:
            return replace(
                config,
                max_train_queries=knobs.max_train_queries,
                training=replace(
                    training, epochs=knobs.epochs, remine_epochs=knobs.remine_epochs,
                    max_seq_length=knobs.max_seq_length,
                ),
            )  # fmt: skip

        def cost(knobs: Knobs) -> float:
            return self.costs(planned(knobs)).total + self.probe_seconds

        start = Knobs(training.epochs, training.remine_epochs, config.max_train_queries,
                      training.max_seq_length)  # fmt: skip
        plan = plan_budget(
            budget_seconds, cost, start, self.work.train_queries, self.lengths.max_seq_length
        )
        return plan, planned(plan.knobs)

    def correct(self, stage: str, seconds: float) -> None:
        self.records[stage]["corrected_seconds"] = round(seconds, 1)

    def actual(self, stage: str, seconds: float) -> None:
        if stage in self.records:
            self.records[stage]["actual_seconds"] = round(seconds, 1)

    def encode_baseline(
        self, cache: EmbeddingCache, model: SentenceTransformer, texts: Sequence[str],
        elapsed: float, say: Callable[[str], None],
    ) -> np.ndarray:  # fmt: skip
        """Encode the corpus, a seeded sample first, and correct the baseline's figure from it.

        ``elapsed``: seconds of the stage before this call (model load, probe).
        """
        batch, n = cache.batch_size, len(texts)
        if self.work.docs_cached or n < 8 * batch:  # nothing (or too little) to time
            return cache.encode(model, texts, show_progress_bar=True)
        k = max(2 * batch, round(SAMPLE_SHARE * n / batch) * batch)
        sample = [texts[i] for i in sorted(random.Random(self.config.seed).sample(range(n), k))]
        start = time.perf_counter()
        cache.encode(model, sample)
        took = time.perf_counter() - start
        expected = encode_seconds(self.lengths.docs, k, batch, self.rates)
        self.encode_factor = took / max(expected, 1e-9)
        rest = (self.records["baseline"]["estimate_seconds"] or 0.0) - self.probe_seconds
        corrected = elapsed + took + max(rest - expected, 0.0) * self.encode_factor
        self.correct("baseline", corrected)
        say(
            f"baseline: ~{format_minutes(corrected)} after {k} of {n} documents "
            f"(encoding {self.encode_factor:.2f} x the probe's pace)"
        )
        return cache.encode(model, texts, show_progress_bar=True)

    def step_clock(self, config: RunConfig, rows: int, say: Callable[[str], None]) -> StepClock:
        """The trainer callback that corrects the training figure after its first steps."""
        costs = self.costs(config).train
        training = config.training
        step_rows = training.batch_size * self.work.processes  # each process its batch_size
        round2_steps = training.remine_epochs * -(-rows // step_rows)
        start = time.perf_counter()

        def corrected(per_step: float, remaining: int) -> None:
            seconds = (
                time.perf_counter() - start
                + per_step * (remaining + round2_steps)
                + costs.other * self.encode_factor
            )
            self.correct("train", seconds)
            say(
                f"training: ~{format_minutes(seconds)} after {CLOCK_STEPS + 1} steps "
                f"({per_step:.1f} s per step, estimated {costs.step:.1f} s)"
            )

        return StepClock(corrected)


class StepClock(TrainerCallback):  # type: ignore[misc]
    """Times steps 2..``CLOCK_STEPS + 1`` and reports (seconds per step, steps remaining) once."""

    def __init__(self, report: Callable[[float, int], None]) -> None:
        self.report = report
        self.seen = 0
        self.first_end = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first_end = time.perf_counter()
        elif self.seen == CLOCK_STEPS + 1:
            per_step = (time.perf_counter() - self.first_end) / CLOCK_STEPS
            self.report(per_step, max(int(state.max_steps) - int(state.global_step), 0))
