"""Estimates of a stage's time and peak memory, made before the stage runs.

A run killed for memory halfway through training has spent its baseline and mining for nothing,
and the out-of-memory killer prints no message. So ``honed run`` prints an estimate before mining
and training and refuses, with the number and a fix, a peak above the available memory.

Training peak = in use now + weights state + activations:

* weights state = trainable parameter bytes x 3 (gradients, AdamW's two moments) + all parameter
  bytes (checkpoints are saved, and the best epoch reloaded, through a copy) + 1 more for gist's
  guide model;
* activations = bytes autograd saves for backward (``saved_tensors_hooks``, parameters excluded)
  in a probe: forward+backward on the 2, then the 4, longest training texts. They are affine in
  the number of texts (the fixed part: bf16 weight copies under autocast), so two sizes give the
  bytes per text, scaled to one forward pass with gradients: ``mini_batch_size`` texts for
  cached_mnrl, ``batch_size x (2 + negatives)`` for mnrl (every column's graph lives
  until backward), ``batch_size x 3`` for triplet and gist; x ``TRANSIENT`` for the activation gradients
  of backward. On a MiniLM-sized BERT (6 x 384, 256 tokens, CPU) a fresh process's peak RSS was
  6-12% above saved + gradient bytes; per text it saved 41.7 MiB (fp32), 95.6 MiB (attention
  dropout 0.1: "math" attention keeps the probabilities), 25.6 MiB (bf16).

Not a peak-RSS delta: glibc keeps freed pages and a probe after the corpus encoding reuses them
(2 texts saving 191 MiB moved it by 0.1 MiB). Counting saved tensors needs no ``/proc`` either,
so there is no analytic fallback. The stage records the peak RSS after its work, as the actual.

Time is not estimated here: the caller passes the seconds of :mod:`honed.training.cost_model`
(the one cost model of ``honed run``), so that the line printed with the peak tells the same time.
Mining's memory: :func:`estimate_mining`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honed.encoding.encoder import resolve_precision
from honed.pipeline import resources
from honed.pipeline.resources import MARGIN, ResourceEstimate, format_size
from honed.training.speed_probe import as_in_training, score_seconds

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

    from honed.mining.rows import MinedRow
    from honed.training.config import TrainConfig

__all__ = ["estimate_mining", "estimate_training"]

TRANSIENT = 1.2  # backward's activation gradients on top of the saved tensors (measured 1.06-1.12)
PROBE_SIZES = (2, 4)  # texts per probe step: two sizes give the per-text slope
QUERY_CHUNK = 4096  # honed.retrieval.dense.top_k's default chunk_size, which the miner uses


@dataclass(frozen=True)
class _Probe:
    per_text: float  # bytes saved for backward per text
    fixed: float  # bytes saved whatever the number of texts
    forward: float  # seconds per text
    backward: float  # seconds per text
    tokens: int  # per text
    precision: str



def _longest_texts(model: SentenceTransformer, rows: Sequence[MinedRow], n: int) -> list[str]:
    """The ``n`` training texts with the most tokens (repeated when there are fewer)."""
    texts = {t for r in rows for t in (r.query, r.positive, *r.negatives)}
    candidates = sorted(texts, key=lambda t: (-len(t), t))[: 4 * n]  # by characters first: cheap
    mask = model.preprocess(candidates).get("attention_mask")  # (candidates, tokens)
    if mask is not None:
        tokens = mask.sum(dim=1).tolist()
        candidates = [t for _, t in sorted(zip(tokens, candidates), key=lambda p: -p[0])]
    return (candidates * n)[:n]



def _probe_step(
    model: SentenceTransformer, texts: Sequence[str], precision: Any
) -> tuple[int, float, float, int]:
    """One forward+backward: (bytes saved for backward, forward s, backward s, tokens per text)."""
    import torch

    from honed.encoding.encoder import autocast

    device = str(model.device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    features = model.preprocess(list(texts))
    features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}  # storage address -> bytes; saved tensors stay alive: no reuse

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    start = time.perf_counter()
    with autocast(device, precision):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            embeddings = model(features)["sentence_embedding"]  # (n, dim)
        sync()
        middle = time.perf_counter()
        embeddings.float().square().sum().backward()
        sync()
    tokens = int(features["attention_mask"].shape[1]) if "attention_mask" in features else 0
    return sum(saved.values()), middle - start, time.perf_counter() - middle, tokens



def _probe(model: SentenceTransformer, rows: Sequence[MinedRow], config: TrainConfig) -> _Probe:


    precision = resolve_precision(config.precision, str(model.device))
    small_n, large_n = PROBE_SIZES
    with as_in_training(model, config):
        texts = _longest_texts(model, rows, large_n)
        small = _probe_step(model, texts[:small_n], precision)  # also warms the kernels up
        large = _probe_step(model, texts, precision)
    per_text = (large[0] - small[0]) / (large_n - small_n)
    return _Probe(
        per_text=per_text,
        fixed=max(0.0, small[0] - per_text * small_n),
        forward=large[1] / large_n,
        backward=large[2] / large_n,
        tokens=large[3],
        precision=precision.value,
    )



def _training_fix(config: TrainConfig, tokens: int, weights_alone: bool) -> str:
    if weights_alone:
        return (
            "the memory in use plus the weights' gradients and optimizer state already exceed "
            "it: free memory, use a machine with more, or a smaller --base model"
        )
    if config.loss.value == "cached_mnrl":
        return (
            f"lower --mini-batch-size (now {config.mini_batch_size}) or --max-seq-length "
            f"(the longest text has {tokens} tokens); cached_mnrl's peak does not grow with "
            "--batch-size"
        )
    return (
        "use --loss cached_mnrl (default; its peak does not grow with the batch) or lower "
        f"--batch-size (now {config.batch_size}) / --max-seq-length (the longest text has "
        f"{tokens} tokens)"
    )



def estimate_training(
    model: SentenceTransformer,
    rows: Sequence[MinedRow],
    config: TrainConfig,
    *,
    seconds: float = 0.0,
) -> ResourceEstimate:
    """Estimate the peak memory of ``train_model(model, rows, config)`` from a probe.

    The probe runs two forward+backward steps on the longest training texts, in train mode and
    at training's precision; weights, gradients, buffers, mode, dropout, max_seq_length and RNG
    state are restored after it (no optimizer step is taken).

    Args:
        model: the model about to be trained.
        rows: the training rows.
        config: the training settings.
        seconds: the stage's time, from :func:`honed.training.cost_model.estimate_stages`.

    Raises:
        ValueError: no rows, or negative ``seconds``.

    Example:
        >>> estimate_training(model, mined.rows, TrainConfig()).sentence()  # doctest: +SKIP
        'training: ~14 min, peak ~3.1 GiB of 21.5 GiB available'
    """
    if not rows:
        raise ValueError("rows: expected at least one row, got none; fix: check the training split")
    if seconds < 0:
        raise ValueError(f"seconds: expected a value >= 0, got {seconds}")
    device, loss = str(model.device), config.loss.value
    one_negative = loss in ("triplet", "gist")  # build_dataset: one row per negative
    n_rows = sum(len(r.negatives) for r in rows) if one_negative else len(rows)
    columns = 3 if one_negative else 2 + max(len(r.negatives) for r in rows)
    per_step = min(config.batch_size, n_rows)
    grad_texts = (
        min(config.mini_batch_size, per_step) if loss == "cached_mnrl" else per_step * columns
    )
    probe = _probe(model, rows, config)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    in_use = resources.process_memory(device)
    parts = {
        "in_use": in_use or 0,
        "weights_state": 3 * trainable + weights + (weights if loss == "gist" else 0),
        "activations": round(TRANSIENT * (probe.fixed + probe.per_text * grad_texts)),
    }
    available = resources.available_memory(device)
    detail = (
        f"probe: forward+backward of {' and '.join(map(str, PROBE_SIZES))} texts of "
        f"{probe.tokens} tokens ({probe.precision}): {format_size(probe.per_text)} saved per text + "
        f"{format_size(probe.fixed)} fixed, x{TRANSIENT} for backward; time from the cost model"
        + ("; memory in use unknown" if in_use is None else "")
    )
    weights_alone = parts["in_use"] + parts["weights_state"] > MARGIN * (available or float("inf"))
    return ResourceEstimate(
        stage="train",
        seconds=seconds,
        peak_bytes=sum(parts.values()),
        available_bytes=available,
        detail=detail,
        load=f"{grad_texts} texts of {probe.tokens} tokens per forward pass with gradients",
        fix=_training_fix(config, probe.tokens, weights_alone),
        device=device,
        parts=parts,
    )



def estimate_mining(
    n_queries: int, n_docs: int, dim: int, depth: int, *, embeddings_resident: bool = False
) -> ResourceEstimate:
    """Estimate the time and peak memory of mining ``depth`` candidates for each query.

    Peak = in use now + embeddings ((n_queries + n_docs) x dim x 4 bytes; 0 when
    ``embeddings_resident``: already in memory) + one chunk of scores (chunk x n_docs x 12 bytes:
    float32 scores and int64 argpartition indices; ``honed.retrieval.dense.MAX_SCORE_ELEMENTS`` bounds
    the chunk) + candidates (n_queries x depth x 12 bytes, twice: per chunk, then joined).
    Time = n_queries x n_docs x a measured time per score.

    Raises:
        ValueError: an argument is not a positive integer.

    Example:
        >>> estimate_mining(800, 5183, 384, 50).stage
        'mine'
    """
    from honed.retrieval.dense import MAX_SCORE_ELEMENTS

    sizes = {"n_queries": n_queries, "n_docs": n_docs, "dim": dim, "depth": depth}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    chunk = min(n_queries, QUERY_CHUNK, max(1, MAX_SCORE_ELEMENTS // n_docs))
    embeddings = (n_queries + n_docs) * dim * 4
    in_use = resources.process_memory("cpu")
    parts = {
        "in_use": in_use or 0,
        "embeddings": 0 if embeddings_resident else embeddings,
        "scores": chunk * n_docs * 12,
        "candidates": n_queries * min(depth, n_docs) * 12 * 2,
    }
    per_score = score_seconds(dim)
    return ResourceEstimate(
        stage="mine",
        seconds=n_queries * n_docs * per_score,
        peak_bytes=sum(parts.values()),
        available_bytes=resources.available_memory("cpu"),
        detail=(
            f"analytic: {n_queries} x {n_docs} scores at {per_score * 1e9:.2f} ns each "
            f"(measured), {chunk} queries per chunk, embeddings {format_size(embeddings)}"
            + (" (already in memory)" if embeddings_resident else "")
            + ("; memory in use unknown" if in_use is None else "")
        ),
        load=f"{n_docs} x {dim} document embeddings and a {chunk} x {n_docs} score matrix",
        fix=(
            f"free memory or use a machine with more; the embeddings of the {n_docs} documents "
            f"take {format_size(n_docs * dim * 4)}, and the score matrix is already bounded by "
            "honed.retrieval.dense.MAX_SCORE_ELEMENTS"
        ),
        parts=parts,
    )
