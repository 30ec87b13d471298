"""One cost model of ``honed run``: seconds per stage from token lengths, a probe and step counts.

Three inputs, all measured on this run before its first expensive step:

* :class:`Lengths`: the token lengths of a sample of the documents and of the queries, with
  the model's tokenizer, truncated at its ``max_seq_length``;
* :class:`Rates`: seconds per text of a forward pass (encoding) and of a forward+backward pass
  (training) at several padded lengths, in the run's batch shape, timed by
  :mod:`honed.training.speed_probe` on real text of this model on this device;
* :class:`Workload`: how many texts each stage encodes and how many steps it trains.

The fixed per-step cost that made short texts train as slowly as long ones is padding: the
trainer tokenizes each column of a batch padded to its longest text, and the cached loss cuts
mini-batches of ``mini_batch_size`` texts, each padded to its own longest. The cost of a step
is set by the *maximum* length of each mini-batch, not the mean: one long text among 32 short
ones makes all 32 long. So a step is costed from mini-batches drawn at random from the length
sample (``DRAWS`` seeded draws), while encoding, which sentence-transformers sorts by length,
pays little padding and is costed on the sorted lengths.

Everything here is arithmetic (no torch): the budget planner (:mod:`honed.pipeline.budget`) calls
it many times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from honed.training.config import LossName, TrainConfig

__all__ = ["Lengths", "Rates", "StageCosts", "TrainCost", "Workload", "encode_seconds",
           "estimate_stages", "train_step_seconds"]  # fmt: skip

DRAWS = 64  # random batches drawn to average a step's padded length; seeded: estimates repeat
# A checkpoint per epoch writes the weights and AdamW's two moments (3 x the fp32 weights);
# 200 MB/s is a conservative local-disk write rate (the checkpoint is ~1-3% of an epoch).
CHECKPOINT_BYTES_PER_SECOND = 200e6
# The short stages are mostly numpy and Python work around the encoder, priced per item on the
# profiled CPU (REF_SCORE) and scaled by this machine's measured score time against it. Profiled:
# a 2-core AMD EPYC (Zen 4, avx512_bf16), 2026-12-02, where speed_probe.score_seconds gave 12.6-14.9
# ns (median 13.0) in five processes.
REF_SCORE = 13.0e-9  # seconds per (query, document) score on the profiled CPU
# Mining: the candidate search (one product and top-k per pair), then filters and rows per pair;
# fitted on the demo's and the short-text set's mining (0.09 s, 0.2 s) after the fill walk
# became vectorised (honed.mining.candidates.deeper_negatives).
MINE_FIXED = 0.07  # seconds
MINE_SCORE = 3.0  # per (training query, document), in scores
# The index planner searches every dev and test query one at a time (as a service would) in each
# of its 31 configurations, each query costing a fixed part and a part per document; it builds
# each index once (per document) and writes its plot (fixed). Timed on synthetic embeddings
# (1,500-29,000 documents x 40-1,000 queries: per query and configuration 0.18 ms + 26 ns per
# document) and the demo's and short-text set's runs (2.1 s, 5.3 s; the fixed part).
PLANNER_FIXED = 1.1
PLANNER_DOC = 2.5e-5  # per document
PLANNER_QUERY = 5.6e-3  # per dev or test query
PLANNER_PAIR = 8.1e-7  # per (document, dev or test query)
EVIDENCE_DRAW = 1.0e-6  # significance tests per (resample, test query): ~3 s for 10,000 x 300
BASELINE_OTHER = 2.5  # seconds: BM25 index and runs, leakage check, metrics (2.1 s for 5,183)


@dataclass(frozen=True)
class Lengths:
    """Token lengths (special tokens included) of sampled documents and queries, truncated."""

    docs: tuple[int, ...]
    queries: tuple[int, ...]
    max_seq_length: int  # the model's own: what the baseline encodes at

    def __post_init__(self) -> None:
        if not self.docs or not self.queries or min(self.docs + self.queries) < 1:
            raise ValueError(
                f"lengths: expected positive token counts for documents and queries, got "
                f"{len(self.docs)} and {len(self.queries)} values"
            )

    def truncated(self, max_seq_length: int | None) -> Lengths:
        """The lengths as ``--max-seq-length`` would leave them (None: unchanged)."""
        if max_seq_length is None or max_seq_length >= self.max_seq_length:
            return self
        return Lengths(
            tuple(min(n, max_seq_length) for n in self.docs),
            tuple(min(n, max_seq_length) for n in self.queries),
            max_seq_length,
        )


Curve = tuple[tuple[int, float], ...]  # (padded length, seconds per text), lengths ascending


@dataclass(frozen=True)
class Rates:
    """Seconds measured by the probe for a pass of ``texts`` texts padded to ``length`` tokens.

    Where the probe timed a curve (the run's batch shape at several lengths), a pass costs
    ``texts x seconds per text at that length``, interpolated between the timed lengths: the
    per-token cost is not constant on a CPU (on the profiled 2-core EPYC a training token cost
    309 us in 32 x 64-token mini-batches, 345 us at 128 and 670 us at 256, and 8-text passes
    cost 25-40% more per token than 32-text ones), so the straight line through two timed points
    that came before over-priced 128-token steps by ~1.4x. Without a curve (unit tests), a pass
    costs ``per_batch + per_token x padded tokens``.
    """

    encode_token: float  # forward, no gradients (encoding; the cached loss's first pass)
    encode_batch: float
    train_token: float  # forward + backward with gradients
    train_batch: float
    optimizer_step: float  # one AdamW step over the model's weights
    score: float  # one (query, document) dot product and its share of a top-k (mining)
    parameter_bytes: int  # fp32 weights: what a checkpoint writes (x3)
    encode_curve: Curve = ()
    train_curve: Curve = ()
    # The cached loss's first pass: no gradients, but in training state (train mode, its
    # dropout, the trainer's shape): ~30% slower per text than eval-mode inference on the CPU.
    nograd_curve: Curve = ()
    # Seconds per document to tokenize it: an encoding does it twice (honed counts the tokens to
    # sort by them, sentence-transformers tokenizes each batch), ~0.4 ms per 256-token abstract.
    tokenize: float = 0.0

    def encode_pass(self, texts: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Seconds of inference passes of ``texts`` texts padded to ``length`` (element-wise)."""
        return _pass(self.encode_curve, self.encode_batch, self.encode_token, texts, length)

    def nograd_pass(self, texts: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Seconds of no-gradient passes in training state (``encode_pass`` without a curve)."""
        if not self.nograd_curve:
            return self.encode_pass(texts, length)
        return _pass(self.nograd_curve, 0.0, 0.0, texts, length)

    def train_pass(self, texts: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Seconds of forward + backward passes, as :meth:`encode_pass`."""
        return _pass(self.train_curve, self.train_batch, self.train_token, texts, length)

    @property
    def machine(self) -> float:
        """This CPU's speed relative to the profiled one (> 1: slower), for the per-item costs."""
        return self.score / REF_SCORE

    def scaled(self, factor: float) -> Rates:
        """Every time x ``factor`` (a run measured ``factor`` slower than the probe)."""
        return replace(
            self,
            encode_token=self.encode_token * factor,
            encode_batch=self.encode_batch * factor,
            train_token=self.train_token * factor,
            train_batch=self.train_batch * factor,
            optimizer_step=self.optimizer_step * factor,
            score=self.score * factor,
            encode_curve=tuple((n, t * factor) for n, t in self.encode_curve),
            train_curve=tuple((n, t * factor) for n, t in self.train_curve),
            nograd_curve=tuple((n, t * factor) for n, t in self.nograd_curve),
            tokenize=self.tokenize * factor,
        )


def _pass(
    curve: Curve, per_batch: float, per_token: float, texts: np.ndarray, length: np.ndarray
) -> np.ndarray:
    texts, length = np.asarray(texts, dtype=float), np.asarray(length, dtype=float)
    if not curve:
        return per_batch + per_token * texts * length
    lengths, seconds = zip(*curve)
    # Below the shortest timed length: its per-text time scaled down with the length (the
    # interpolation would clamp to it); above the longest the sample never goes.
    shortest = lengths[0]
    per_text = np.where(
        length < shortest,
        seconds[0] * np.maximum(length, 1) / shortest,
        np.interp(length, lengths, seconds),
    )
    return texts * per_text


@dataclass(frozen=True)
class Workload:
    """What the run encodes and trains on (counts before any budget cut)."""

    n_docs: int
    n_queries: int  # all queries the baseline encodes (train, dev, test)
    train_queries: int  # training queries with a positive
    train_pairs: int  # (query, positive) pairs: one training row each
    dev_queries: int
    test_queries: int
    docs_cached: int = 0  # base-model encodings already on disk: the baseline skips them
    queries_cached: int = 0
    # Processes of a torchrun launch: each encodes its share of every encoding and trains its
    # own batch_size rows a step (so a step covers batch_size x processes rows); mining, the
    # planner and the tests run in the first process alone.
    processes: int = 1

    def sampled(self, max_train_queries: int | None) -> Workload:
        """The workload with a sample of ``max_train_queries`` training queries (same pairs/query)."""
        if max_train_queries is None or max_train_queries >= self.train_queries:
            return self
        pairs = round(self.train_pairs * max_train_queries / self.train_queries)
        return replace(self, train_queries=max_train_queries, train_pairs=max(1, pairs))


@dataclass(frozen=True)
class TrainCost:
    """The training stage: ``steps`` optimizer steps at ``step`` s, plus everything else."""

    step: float  # seconds per step (both rounds share the batch shape)
    steps: int  # first round and second round together
    other: float  # dev evaluations, checkpoints, the second round's encodings and mining

    @property
    def seconds(self) -> float:
        return self.step * self.steps + self.other


@dataclass(frozen=True)
class StageCosts:
    """Seconds per stage of ``honed run``, as estimated; ``train`` keeps its parts."""

    baseline: float
    mine: float
    train: TrainCost
    evaluate: float
    parts: dict[str, float] = field(default_factory=dict)  # named terms, for the detail line

    def seconds(self) -> dict[str, float]:
        return {
            "baseline": self.baseline,
            "mine": self.mine,
            "train": self.train.seconds,
            "evaluate": self.evaluate,
        }

    @property
    def total(self) -> float:
        return sum(self.seconds().values())


def encode_seconds(lengths: Sequence[int], n_texts: int, batch_size: int, rates: Rates) -> float:
    """Seconds to encode ``n_texts`` texts whose lengths are distributed like ``lengths``.

    The encoder sorts the texts by token count (longest first) and pads each batch to its
    first text, so a batch costs its size x the length at its start in the sorted order: the
    quantile of the sample at that position; each text is tokenized twice on the way
    (``Rates.tokenize``).

    Example:
        >>> r = Rates(1e-4, 1e-3, 3e-4, 1e-3, 0.0, 1e-9, 1)
        >>> round(encode_seconds([10, 20], 4, 2, r), 5)  # 4 texts at 20, 16.7, 13.3, 10 tokens
        0.00867
    """
    if n_texts <= 0:
        return 0.0
    starts = np.arange(0, n_texts, batch_size)  # (n_batches,) first position of each batch
    sizes = np.minimum(batch_size, n_texts - starts)  # (n_batches,)
    ordered = np.sort(np.asarray(lengths, dtype=float))[::-1]  # longest first
    positions = starts / max(n_texts - 1, 1) * (len(ordered) - 1)
    padded = np.interp(positions, np.arange(len(ordered)), ordered)  # (n_batches,)
    return float(rates.encode_pass(sizes, padded).sum()) + 2 * n_texts * rates.tokenize


def _column_seconds(
    lengths: Sequence[int], batch: int, mini: int, seed: int,
    cost: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> float:  # fmt: skip
    """Mean seconds of one column of ``batch`` random texts cut in ``mini``-text pieces.

    ``cost(texts, padded length)``: a pass's seconds (:meth:`Rates.train_pass` or ``encode_pass``).
    """
    rng = np.random.default_rng(seed)
    draws = rng.choice(np.asarray(lengths), size=(DRAWS, batch))  # (DRAWS, batch)
    total = np.zeros(DRAWS)
    for begin in range(0, batch, mini):
        piece = draws[:, begin : begin + mini]  # (DRAWS, <= mini)
        # each piece padded to its longest text
        total += cost(np.full(DRAWS, piece.shape[1]), piece.max(axis=1))
    return float(total.mean())


def train_step_seconds(
    lengths: Lengths, config: TrainConfig, negatives: int, rates: Rates, batch: int | None = None
) -> float:
    """Seconds of one optimizer step of ``config``'s loss on rows with ``negatives`` negatives.

    Columns: anchor (query lengths), positive and each negative (document lengths), each of
    ``batch`` texts. cached_mnrl embeds every column twice in mini-batches (no gradients, then
    with gradients and backward); mnrl and triplet once, the whole column at a time; gist adds
    its guide model's forward pass. Triplet and gist train on one negative per row.
    """
    batch = batch or config.batch_size
    loss = config.loss
    doc_columns = 1 + (1 if loss in (LossName.TRIPLET, LossName.GIST) else negatives)
    cached = loss is LossName.CACHED_MNRL
    mini = config.mini_batch_size if cached else batch
    seconds = rates.optimizer_step
    for column_lengths, count in ((lengths.queries, 1), (lengths.docs, doc_columns)):
        grad = _column_seconds(column_lengths, batch, mini, config.seed, rates.train_pass)
        nograd = 0.0
        if cached or loss is LossName.GIST:  # the cached first pass; GIST's guide, in eval mode
            first = rates.nograd_pass if cached else rates.encode_pass
            nograd = _column_seconds(column_lengths, batch, mini, config.seed, first)
        seconds += count * (grad + nograd)
    return seconds


def _steps(rows: int, config: TrainConfig, epochs: int, processes: int = 1) -> int:
    return epochs * max(1, math.ceil(rows / (config.batch_size * processes)))


def _dev_eval(lengths: Lengths, work: Workload, batch: int, rates: Rates) -> float:
    """One dev evaluation: the corpus and the dev queries encoded by the model in training."""
    return (
        encode_seconds(lengths.docs, work.n_docs, batch, rates)
        + encode_seconds(lengths.queries, work.dev_queries, batch, rates)
    ) / work.processes + work.dev_queries * work.n_docs * rates.score


def _mining(work: Workload, rates: Rates) -> float:
    return MINE_FIXED * rates.machine + work.train_queries * work.n_docs * rates.score * MINE_SCORE


def _train_cost(
    lengths: Lengths, work: Workload, config: TrainConfig, negatives: int, rates: Rates,
    encode_batch: int,
) -> tuple[TrainCost, dict[str, float]]:  # fmt: skip
    tuned = lengths.truncated(config.max_seq_length)
    step = train_step_seconds(tuned, config, negatives, rates)
    rows = work.train_pairs * (negatives if config.loss in (LossName.TRIPLET, LossName.GIST) else 1)
    epochs = config.epochs + config.remine_epochs
    evaluation = _dev_eval(tuned, work, encode_batch, rates)
    checkpoint = 3 * rates.parameter_bytes / CHECKPOINT_BYTES_PER_SECOND
    round2 = 0.0
    if config.remine_epochs:  # encode the training queries with the tuned model, then mine
        # The corpus is not encoded again: the kept epoch's dev evaluation left its encoding in
        # the cache (same weights, same fingerprint), and the final evaluation finds it too.
        round2 = (
            encode_seconds(tuned.queries, work.train_queries, encode_batch, rates) / work.processes
            + _mining(work, rates)
        )
    parts = {"step": step, "dev_evaluation": evaluation, "checkpoint": checkpoint,
             "round2_mining": round2}  # fmt: skip
    other = epochs * (evaluation + checkpoint) + round2
    steps = _steps(rows, config, config.epochs, work.processes) + _steps(
        rows, config, config.remine_epochs, work.processes
    )
    return TrainCost(step=step, steps=steps, other=other), parts


def estimate_stages(
    lengths: Lengths,
    work: Workload,
    rates: Rates,
    config: TrainConfig,
    *,
    negatives: int,
    encode_batch: int,
    n_resamples: int = 10_000,
) -> StageCosts:
    """Seconds of the baseline, mining, training and evaluation stages of ``honed run``.

    Baseline: the documents and queries not yet on disk, at the model's own length. Mining: every
    training query scored against every document. Training: steps x the step time, plus per
    epoch a dev evaluation (corpus + dev queries re-encoded by the model in training) and a
    checkpoint; the second round encodes the training queries with the tuned model and mines again.
    Evaluation: the test queries (the kept epoch's corpus encoding is the dev evaluation's, in
    memory), the index planner and the significance tests. Mining, the planner and the tests are
    priced per item (``MINE_SCORE``, ``PLANNER_QUERY``, ``PLANNER_PAIR``, ``EVIDENCE_DRAW``), scaled
    to this CPU.

    Example:
        >>> r = Rates(1e-4, 1e-3, 3e-4, 1e-3, 0.01, 1e-9, 90_000_000)
        >>> w = Workload(1000, 300, 200, 250, 30, 70)
        >>> costs = estimate_stages(Lengths((200,), (20,), 256), w, r, TrainConfig(), negatives=3,
        ...                         encode_batch=64)
        >>> costs.train.steps  # 5 epochs + 1 of the second round, 4 steps of 64 rows each
        24
    """
    baseline = encode_seconds(
        lengths.docs, work.n_docs - work.docs_cached, encode_batch, rates
    ) + encode_seconds(lengths.queries, work.n_queries - work.queries_cached, encode_batch, rates)
    baseline = baseline / work.processes + BASELINE_OTHER * rates.machine
    mine = _mining(work, rates)
    train, parts = _train_cost(lengths, work, config, negatives, rates, encode_batch)
    tuned = lengths.truncated(config.max_seq_length)
    searched = work.dev_queries + work.test_queries
    around = PLANNER_FIXED + PLANNER_DOC * work.n_docs + PLANNER_QUERY * searched
    around += PLANNER_PAIR * work.n_docs * searched
    around += EVIDENCE_DRAW * n_resamples * work.test_queries
    evaluate = encode_seconds(tuned.queries, work.test_queries, encode_batch, rates) / work.processes
    evaluate += around * rates.machine
    return StageCosts(baseline, mine, train, evaluate, parts)
