"""``honed diagnose``: should this domain be fine-tuned? Measurements first, then a verdict.

Everything comes from one encoding of the corpus with the base model (through
:class:`~honed.encoding.encoder.EmbeddingCache`) and the dev split carved exactly as ``honed run`` carves it.

* **Terminology.** The share of corpus words the base model's tokenizer splits into 3+ pieces,
  against everyday English, and the domain terms that fragment most (see :mod:`honed.diagnosis.measure`).
* **Baseline.** Dense (base model) vs BM25 nDCG@10 and Recall@10 on dev. A dense model that does
  not beat BM25 is not bringing its semantic advantage: it does not understand the domain.
* **Relationship difficulty.** Per dev query: best positive score minus best non-positive score
  (the margin; negative = a non-positive outranks every positive), and whether the first positive
  is outside the top 10.
* **Data.** Verified training pairs: score >= 1 in the train split left after carving dev.

Verdict (thresholds are the module constants below):

* ``not recommended`` when pairs < ``MIN_PAIRS`` (100: too few to learn from without overfitting)
  or dense dev nDCG@10 >= ``HIGH_BASELINE`` (0.9: little left to gain);
* otherwise ``worth it`` when at least ``SIGNALS_NEEDED`` (2) of the three signals fire and pairs
  >= ``ENOUGH_PAIRS`` (300): fragmentation ratio >= ``RATIO_HIGH`` (1.5), dense nDCG@10 <= BM25 +
  ``BM25_MARGIN`` (0.02), share of dev queries with no positive in the top 10 >= ``MISS_HIGH``
  (0.2);
* otherwise ``marginal``.

The rule of thumb behind the pair counts: fine-tuning a small embedding model pays off from a few
hundred pairs and saturates at a few thousand. The optional probe (``--probe``) is reported, not
voted: one epoch on ``probe_rows`` rows is too small to decide with, but shows the direction.

Cost of a full run: :mod:`honed.diagnosis.cost`; the optional probe: :mod:`honed.diagnosis.probe`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from honed.data.beir import load_beir
from honed.data.shift import SplitShift
from honed.data.splits import count_pairs, split_data
from honed.data.user_queries import load_user_queries
from honed.diagnosis.config import DiagnoseConfig
from honed.diagnosis.cost import CostEstimate, estimate_cost
from honed.diagnosis.measure import (
    FRAGMENT_PIECES,
    REFERENCE_FLOOR,
    Difficulty,
    DomainTerm,
    Terminology,
    measure_difficulty,
    measure_terminology,
    reference_text,
)
from honed.diagnosis.probe import PROBE_POOL_DEPTH, Probe, run_probe
from honed.diagnosis.splits import SplitMeasure, measure_splits
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.encoder import (
    EmbeddingCache,
    load_model,
    resolve_device,
    resolve_model_name,
)
from honed.evaluation.runs import bm25_metrics, dense_metrics
from honed.training.cost_model import Workload
from honed.types import Qrels

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.data.beir import BeirData

__all__ = [
    "Baseline", "CostEstimate", "DataSize", "DiagnoseConfig", "Diagnosis", "Difficulty",
    "DomainTerm", "Probe", "SplitMeasure", "Terminology", "Verdict", "decide", "diagnose",
    "estimate_cost",
    "measure_difficulty", "measure_terminology", "reference_text", "render_diagnosis",
]

RATIO_HIGH = 1.5
BM25_MARGIN = 0.02
MISS_HIGH = 0.2
SIGNALS_NEEDED = 2
MIN_PAIRS = 100
ENOUGH_PAIRS = 300
HIGH_BASELINE = 0.9

Notify = Callable[[str], None]


class Verdict(str, Enum):
    """The answer to "should this domain be fine-tuned?"."""

    WORTH_IT = "worth it"
    MARGINAL = "marginal"
    NOT_RECOMMENDED = "not recommended"


@dataclass(frozen=True)
class Baseline:
    """Dense base model vs BM25 on the dev split."""

    dev_queries: int
    dense_ndcg10: float
    dense_recall10: float
    bm25_ndcg10: float
    bm25_recall10: float


@dataclass(frozen=True)
class DataSize:
    """What there is to train on."""

    documents: int
    train_queries: int
    train_pairs: int
    dev_queries: int


@dataclass(frozen=True)
class Diagnosis:
    """Everything ``honed diagnose`` measured and concluded.

    ``splits`` holds the base model on every split (and the user queries), ``shift`` the
    comparison of each split with test and the user queries (:mod:`honed.diagnosis.splits`).
    """

    data: str
    base_model: str
    device: str
    terminology: Terminology
    baseline: Baseline
    difficulty: Difficulty
    size: DataSize
    cost: CostEstimate
    probe: Probe | None
    verdict: Verdict
    reasons: tuple[str, ...]
    seconds: float
    splits: tuple[SplitMeasure, ...] = ()
    shift: SplitShift | None = None


def _signals(t: Terminology, b: Baseline, d: Difficulty) -> list[tuple[bool, str]]:
    """(fired, sentence) for each of the three signals."""
    ratio = t.ratio >= RATIO_HIGH
    weak = b.dense_ndcg10 <= b.bm25_ndcg10 + BM25_MARGIN
    miss = d.miss_top10_share >= MISS_HIGH
    diff = b.dense_ndcg10 - b.bm25_ndcg10
    floored = t.reference_fragmented < REFERENCE_FLOOR
    floor = f" (counted as {REFERENCE_FLOOR:.0%})" if floored else ""
    beats = "loses to" if diff < 0 else "does not beat" if weak else "beats"
    return [
        (ratio, f"Terminology: {t.corpus_fragmented:.1%} of corpus words split into "
                f"{FRAGMENT_PIECES}+ pieces vs {t.reference_fragmented:.1%} in everyday "
                f"English{floor}, ratio {t.ratio:.2f} "
                f"({'at or above' if ratio else 'below'} {RATIO_HIGH})."),
        (weak, f"Baseline: the base model {beats} BM25 on dev (nDCG@10 {b.dense_ndcg10:.3f} vs "
               f"{b.bm25_ndcg10:.3f}, {diff:+.3f}; signal when not ahead by more than "
               f"{BM25_MARGIN})."),
        (miss, f"Difficulty: {d.miss_top10_share:.0%} of dev queries have no positive in the "
               f"base model's top 10 ({'at or above' if miss else 'below'} {MISS_HIGH:.0%}); "
               f"median margin {d.median_margin:+.3f}, negative for "
               f"{d.negative_margin_share:.0%}."),
    ]


def decide(
    terminology: Terminology, baseline: Baseline, difficulty: Difficulty, size: DataSize,
    probe: Probe | None = None,
) -> tuple[Verdict, tuple[str, ...]]:
    """The verdict and its reasons, one sentence per measurement (thresholds in the module doc)."""
    signals = _signals(terminology, baseline, difficulty)
    fired = sum(on for on, _ in signals)
    pairs = size.train_pairs
    reasons = [text for _, text in signals]
    reasons.append(f"Data: {pairs} verified training pairs from {size.train_queries} queries "
                   f"(rule of thumb: hundreds to a few thousand pairs).")
    if probe is not None:
        reasons.append(f"Probe: {probe.rows} rows for one epoch moved dev nDCG@10 "
                       f"{probe.dev_ndcg10_before:.3f} -> {probe.dev_ndcg10_after:.3f} "
                       f"({probe.gain:+.3f}, {probe.gain_per_minute:+.4f} per training minute); "
                       "reported, not voted.")
    if pairs < MIN_PAIRS:
        verdict = Verdict.NOT_RECOMMENDED
        reasons.append(f"Too few pairs: {pairs} < {MIN_PAIRS}; collect more labelled pairs first.")
    elif baseline.dense_ndcg10 >= HIGH_BASELINE:
        verdict = Verdict.NOT_RECOMMENDED
        reasons.append(f"Baseline already high: dense nDCG@10 {baseline.dense_ndcg10:.3f} >= "
                       f"{HIGH_BASELINE} leaves little to gain.")
    elif fired >= SIGNALS_NEEDED and pairs >= ENOUGH_PAIRS:
        verdict = Verdict.WORTH_IT
        reasons.append(f"{fired} of 3 signals fire and {pairs} >= {ENOUGH_PAIRS} pairs.")
    else:
        verdict = Verdict.MARGINAL
        reasons.append(f"{fired} of 3 signals fire (worth it needs {SIGNALS_NEEDED}) with "
                       f"{pairs} pairs (worth it needs {ENOUGH_PAIRS}).")
    return verdict, tuple(reasons)


def _positives(qrels: Qrels) -> Qrels:
    kept = {q: {d: s for d, s in docs.items() if s >= 1} for q, docs in qrels.items()}
    return {q: docs for q, docs in kept.items() if docs}


def diagnose(
    config: DiagnoseConfig, notify: Notify | None = None, show_progress_bar: bool = False
) -> Diagnosis:
    """Measure a BEIR dataset against a base model and say whether fine-tuning is worth it.

    Raises:
        FileNotFoundError: the dataset folder or one of its files is missing.
        ValueError: bad data (see :func:`honed.data.beir.load_beir`), no train/test split, or a
            model that cannot be loaded.

    Example:
        >>> d = diagnose(DiagnoseConfig(data="data/scifact"))  # doctest: +SKIP
        >>> d.verdict  # doctest: +SKIP
        <Verdict.WORTH_IT: 'worth it'>
    """
    say = notify or (lambda message: None)
    start = time.perf_counter()
    data = load_beir(config.data)
    user = load_user_queries(config.user_queries) if config.user_queries else None
    parts = split_data(data)
    train, dev, test = _positives(parts.train), _positives(parts.dev), _positives(parts.test)
    device = resolve_device(config.device)
    model_path = resolve_model_name(config.base_model)
    model = load_model(model_path, device, config.trust_remote_code)
    doc_ids = list(data.corpus)
    doc_texts = [data.corpus[d].full_text for d in doc_ids]

    say("terminology: splitting corpus words with the base model's tokenizer")
    order = list(range(len(doc_texts)))
    random.Random(config.seed).shuffle(order)
    terminology = measure_terminology((doc_texts[i] for i in order), reference_text(),
                                      model.tokenizer, config.sample_words)

    say(f"baseline: encoding {len(doc_texts)} documents with {config.base_model}")
    cache = EmbeddingCache(precision=config.precision, directory=resolve_cache_dir(config.cache_dir))
    doc_emb = cache.encode(model, doc_texts, show_progress_bar=show_progress_bar)  # (n_docs, dim)
    qids = sorted(dev)
    q_emb = cache.encode(model, [data.queries[q] for q in qids])  # (n_dev, dim)
    dim = str(doc_emb.shape[1])
    metrics = ["ndcg@10", "recall@10"]
    dense = dense_metrics(dict(zip(qids, q_emb)), doc_emb, doc_ids, {"dev": dev}, [int(dim)],
                          metrics)["dev"][dim]
    say("baseline: BM25 (bm25s)")
    bm25 = bm25_metrics(data, doc_ids, doc_texts, {"dev": dev}, metrics)["dev"]["bm25"]
    baseline = Baseline(len(qids), dense["ndcg@10"], dense["recall@10"], bm25["ndcg@10"],
                        bm25["recall@10"])
    difficulty = measure_difficulty(q_emb, doc_emb, qids, doc_ids, dev)
    size = DataSize(len(doc_ids), len(train), sum(map(len, train.values())), len(qids))
    probe = None
    if config.probe:
        say(f"probe: one epoch on {config.probe_rows} training rows")
        probe = run_probe(model_path, config, data, train, dev, (doc_ids, doc_texts, doc_emb),
                       cache, device)
    say("splits: the base model on train, dev, test" + " and the user queries" * bool(user))
    measured, shift = measure_splits(data, {"train": train, "dev": dev, "test": test}, user,
                                     model, cache, (doc_ids, doc_texts, doc_emb), config.seed)
    say("cost: timing the run's encoding and training shapes on this device")
    cost = _cost(config, data, (train, dev, test), model, cache, doc_texts)
    verdict, reasons = decide(terminology, baseline, difficulty, size, probe)
    if shift is not None and shift.warnings:
        reasons = (*reasons, "Shift (reported, not voted): "
                   + " ".join(w.removeprefix("shift: ") for w in shift.warnings))
    return Diagnosis(str(data.path), config.base_model, device, terminology, baseline,
                     difficulty, size, cost, probe, verdict, reasons,
                     time.perf_counter() - start, measured, shift)


def _cost(
    config: DiagnoseConfig, data: BeirData, splits: tuple[Qrels, Qrels, Qrels],
    model: SentenceTransformer, cache: EmbeddingCache, doc_texts: list[str],
) -> CostEstimate:  # fmt: skip
    """A full ``honed run``'s cost with ``honed run``'s cost model, after this diagnosis's
    encodings reached the cache (the run's baseline will not repeat them)."""
    train, dev, test = splits
    on_disk = cache.directory is not None  # what this process holds in memory, the run will not
    qids = sorted({q for split in data.splits for q in data.split(split)})
    queries = [data.queries[q] for q in qids]
    work = Workload(
        n_docs=len(doc_texts), n_queries=len(qids), train_queries=len(train),
        train_pairs=count_pairs(train), dev_queries=len(dev), test_queries=len(test),
        docs_cached=cache.known(model, doc_texts) if on_disk else 0,
        queries_cached=cache.known(model, queries) if on_disk else 0,
    )  # fmt: skip
    return estimate_cost(model, doc_texts, queries, work, precision=config.precision,
                         seed=config.seed)  # fmt: skip


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _splits_section(d: Diagnosis) -> list[str]:
    """The base model on every split, then the shift lines (none: the splits look alike)."""
    if not d.splits:
        return []

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = ["## Every split (base model)", "",
             "| split | queries | dense nDCG@10 | BM25 nDCG@10 | no positive in top 10 | "
             "top-1 score | mean words | repeated opening |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    profiles = {p.name: p for p in d.shift.profiles} if d.shift else {}
    for m in d.splits:
        p = profiles.get(m.name)
        miss = "-" if m.miss_top10_share is None else f"{m.miss_top10_share:.1%}"
        words = "-" if p is None else f"{p.mean_words:.1f}"
        opening = "-" if p is None else f"{p.template_share:.0%}"
        measured = f"{m.queries}" + (f" of {m.total}" if m.total > m.queries else "")
        lines.append(f"| {m.name} | {measured} | {cell(m.dense_ndcg10)} | {cell(m.bm25_ndcg10)} "
                     f"| {miss} | {m.top1_score:.4f} | {words} | {opening} |")
    warnings = d.shift.warnings if d.shift else ()
    lines += ["", *(f"- warning: {w}" for w in warnings)] if warnings else [
        "", "No shift: the splits' lengths, words, openings and embeddings look alike."]
    return [*lines, ""]


def _cost_lines(c: CostEstimate, device: str) -> list[str]:
    """The stages as ``honed run`` would estimate them before its baseline (same cost model)."""
    stages = c.stages
    cached = (f"; {c.documents_cached:,} of {c.documents:,} documents are cached by this "
              "diagnosis" if c.documents_cached else "")  # fmt: skip
    lines = [
        f"- baseline: ~{_minutes(stages['baseline'])} (base-model encodings and BM25{cached})",
        f"- mining: ~{_minutes(stages['mine'])}",
        f"- training: ~{_minutes(stages['train'])} ({c.steps} steps of ~{c.step_seconds:.1f} s: "
        f"{c.epochs} epochs with the second round, on {c.train_pairs:,} pairs; a dev evaluation "
        "per epoch)",
        f"- evaluation: ~{_minutes(stages['evaluate'])}",
        f"- total: about {_minutes(c.total_seconds)} on {device}, from `honed run`'s cost model "
        f"(documents ~{c.median_tokens} tokens median; probe {c.probe_seconds:.0f} s); "
        "`honed run` prints its own before the baseline and corrects it as it goes",
    ]
    if c.long_run is not None:
        lines.append(f"- {c.long_run}")
    return [*lines, ""]


def render_diagnosis(d: Diagnosis) -> str:
    """The diagnosis as markdown, for the terminal and for a file alike."""
    t, b, x, s, c = d.terminology, d.baseline, d.difficulty, d.size, d.cost
    lines = [
        f"# honed diagnose: {d.data}", "",
        f"**Verdict: {d.verdict.value}** (base model `{d.base_model}`, {d.device}, "
        f"measured in {_minutes(d.seconds)})", "",
        *(f"- {reason}" for reason in d.reasons), "",
        "## Terminology", "",
        f"| text | words | split into {FRAGMENT_PIECES}+ pieces |", "|---|---:|---:|",
        f"| corpus (sample) | {t.corpus_words:,} | {t.corpus_fragmented:.1%} |",
        f"| everyday English (reference) | {t.reference_words:,} | {t.reference_fragmented:.1%} |",
        "", f"Ratio {t.ratio:.2f} (signal at >= {RATIO_HIGH}; a reference share below "
        f"{REFERENCE_FLOOR:.0%} counts as {REFERENCE_FLOOR:.0%}).", "",
    ]
    if t.terms:
        lines += ["| domain term | count | pieces |", "|---|---:|---|"]
        lines += [f"| {w.word} | {w.count} | {' '.join(w.pieces)} |" for w in t.terms]
    else:
        lines.append("No frequent domain term is split into 3+ pieces.")
    lines += [
        "", f"## Baseline on dev ({b.dev_queries} queries)", "",
        "| system | nDCG@10 | Recall@10 |", "|---|---:|---:|",
        f"| dense (base model) | {b.dense_ndcg10:.4f} | {b.dense_recall10:.4f} |",
        f"| BM25 | {b.bm25_ndcg10:.4f} | {b.bm25_recall10:.4f} |", "",
        *_splits_section(d),
        "## Relationship difficulty", "",
        f"- median margin (best positive - best non-positive): {x.median_margin:+.4f}",
        f"- margin negative: {x.negative_margin_share:.1%} of {x.queries} dev queries",
        f"- first positive not in the top 10: {x.miss_top10_share:.1%}", "",
        "## Data", "",
        f"- {s.train_pairs} verified training pairs (score >= 1) from {s.train_queries} queries; "
        f"{s.dev_queries} dev queries; {s.documents:,} documents",
        "- rule of thumb: hundreds to a few thousand pairs", "",
    ]
    if d.probe is not None:
        p = d.probe
        lines += [
            "## Probe", "",
            f"- {p.rows} rows, 1 epoch, {_minutes(p.train_seconds)} of training",
            f"- dev nDCG@10 re-ranking the base top {PROBE_POOL_DEPTH} ({p.pool_documents} "
            f"documents): {p.dev_ndcg10_before:.4f} -> {p.dev_ndcg10_after:.4f} "
            f"({p.gain:+.4f}, {p.gain_per_minute:+.4f} per minute)", "",
        ]
    lines += [
        "## Estimated time of a full `honed run` (its defaults, this machine)", "",
        *_cost_lines(c, d.device),
        f"Thresholds: worth it = at least {SIGNALS_NEEDED} of (ratio >= {RATIO_HIGH}, dense <= "
        f"BM25 + {BM25_MARGIN}, top-10 miss >= {MISS_HIGH:.0%}) and >= {ENOUGH_PAIRS} pairs; not "
        f"recommended = < {MIN_PAIRS} pairs or dense nDCG@10 >= {HIGH_BASELINE}.",
    ]
    return "\n".join(lines) + "\n"
