"""Measure what :mod:`honed.training.cost_model` needs, on this model and device, in a few seconds.

* token lengths: a seeded sample of the documents and queries through the model's tokenizer,
  truncated at its ``max_seq_length`` (what the encoder and the trainer will feed it);
* encoding: inference forward passes in the encoder's batch shape and
* training: forward + backward passes in the trainer's mini-batch shape, and the cached loss's
  no-gradient first pass, in the state training gives the model (train mode, its attention
  dropout, autocast), restored afterwards, all at
  several padded lengths (:func:`probe_lengths`), so the cost model interpolates seconds per
  text between real timings instead of extrapolating a per-token line;
* one AdamW step, timed on a slice of the weights' size and scaled to all of them;
* tokenizing a sample of the documents (an encoding tokenizes each text twice).

Each curve starts with an untimed pass at its largest shape (kernels warm up, memory is
allocated). ~10 s for MiniLM on a 2-core CPU with SciFact's 256-token abstracts.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from honed.encoding.encoder import autocast, embedding_dim, resolve_precision
from honed.training.config import LossName, TrainConfig
from honed.training.cost_model import Lengths, Rates

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["as_in_training", "measure_lengths", "measure_rates", "probe_lengths", "score_seconds"]

SAMPLE_TEXTS = 512  # texts tokenized per side: the 2nd..98th percentiles within a few tokens
PROBE_ROWS = 32  # texts per timed pass at most: smaller passes cost more per token on a CPU
MIN_PROBE_LENGTH = 8  # shortest padded length timed
REPEAT_BELOW_SECONDS = 0.5  # a length whose passes took less is timed again (up to 3 times)
OPTIMIZER_SLICE = 1 << 22  # weights in the timed AdamW step (scaled to the model's count)
TOKENIZE_SAMPLE = 256  # documents tokenized to time it


@contextlib.contextmanager
def as_in_training(model: SentenceTransformer, config: TrainConfig) -> Iterator[None]:
    """Give ``model`` in place the state training gives it, and restore everything on exit.

    Train mode, the configured attention dropout (it picks fused or "math" attention, which
    differ in memory and time) and max_seq_length. No copy of a large model is made; gradients,
    buffers, dropout, mode and the RNG state are as before.
    """
    import torch

    from honed.training.losses import set_attention_dropout

    device = torch.device(str(model.device))
    params = list(model.parameters())
    grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    attention: list[Any] = [
        getattr(m, "dropout", None)
        for m in model.modules()
        if type(m).__name__.endswith("SelfAttention")
    ]
    dropouts = [(d, d.p) for d in attention if hasattr(d, "p")]
    hf_config: Any = getattr(getattr(model[0], "auto_model", None), "config", None)
    old_prob = getattr(hf_config, "attention_probs_dropout_prob", None)
    was_training, old_len = model.training, model.max_seq_length
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            for p in params:
                p.grad = None
            model.train()
            if config.attention_dropout is not None:
                set_attention_dropout(model, config.attention_dropout)
            if config.max_seq_length is not None:
                model.max_seq_length = config.max_seq_length
            yield
    finally:
        for p, grad in zip(params, grads):
            p.grad = grad
        with torch.no_grad():
            for buffer, copy in buffers:
                buffer.copy_(copy)
        for dropout, p_old in dropouts:
            dropout.p = p_old
        if old_prob is not None:
            hf_config.attention_probs_dropout_prob = old_prob
        model.max_seq_length = old_len
        model.train(was_training)



@functools.lru_cache(maxsize=8)
def score_seconds(dim: int) -> float:
    """Seconds per (query, document) score: a (256, dim) x (dim, 4096) product and its top 50.

    Measured once per dim and process: one untimed pass, then the median of 5 (~0.1 s; a best
    of 3 smaller products, before, varied by 30% between processes on one machine), so
    estimates made in one process agree. The short stages' per-item costs scale with it
    (:attr:`honed.training.cost_model.Rates.machine`).
    """
    import numpy as np

    rng = np.random.default_rng(0)
    queries = rng.standard_normal((256, dim), dtype=np.float32)  # (256, dim)
    docs = rng.standard_normal((4096, dim), dtype=np.float32)  # (4096, dim)
    np.argpartition(queries @ docs.T, 4096 - 50, axis=1)  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.argpartition(queries @ docs.T, 4096 - 50, axis=1)  # (256, 4096) scores
        times.append(time.perf_counter() - start)
    return sorted(times)[2] / (256 * 4096)


def _sample(texts: Sequence[str], n: int, seed: int) -> list[str]:
    if len(texts) <= n:
        return list(texts)
    return random.Random(seed).sample(list(texts), n)


def _token_counts(model: SentenceTransformer, texts: Sequence[str]) -> list[int]:
    counts: list[int] = []
    for begin in range(0, len(texts), 128):  # bounded tokenizer batches
        mask = model.preprocess(list(texts[begin : begin + 128]))["attention_mask"]  # (n, tokens)
        counts.extend(int(n) for n in mask.sum(dim=1).tolist())
    return counts


def measure_lengths(
    model: SentenceTransformer, docs: Sequence[str], queries: Sequence[str], seed: int
) -> Lengths:
    """Token lengths of up to ``SAMPLE_TEXTS`` documents and queries (seeded sample)."""
    return Lengths(
        docs=tuple(_token_counts(model, _sample(docs, SAMPLE_TEXTS, seed))),
        queries=tuple(_token_counts(model, _sample(queries, SAMPLE_TEXTS, seed + 1))),
        max_seq_length=_model_length(model),
    )


def _model_length(model: SentenceTransformer) -> int:
    """The model's max_seq_length (512, BERT's, where it sets none)."""
    return int(model.max_seq_length or 512)


def _features(model: SentenceTransformer, text: str, rows: int, length: int) -> dict[str, Any]:
    """``rows`` copies of ``text`` cut at ``length`` tokens, on the model's device.

    Below the model's ``max_seq_length`` the last row is one token shorter (its mask ends in a 0),
    as in a real batch of texts of different lengths: attention with a padding mask takes a
    slower path than with none (forward + backward of 32 x 64 tokens: 21.6 ms a text without
    padding, 25.8 with one padded row, 26.9 with 40, on zen4). At the cap itself every text of a
    real batch is cut to the same length, so no row is padded.
    """
    import torch

    old = model.max_seq_length
    model.max_seq_length = length
    try:
        features = model.preprocess([text] * rows)
    finally:
        model.max_seq_length = old
    if rows > 1 and length < _model_length(model) and "attention_mask" in features:
        features["attention_mask"][-1, -1] = 0  # (rows, length): one padding position
    device = model.device
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}


def _timed(run: Callable[[], None], device: str) -> float:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start


def probe_lengths(lengths: Lengths, longest: int) -> list[int]:
    """The padded lengths the probe times: powers of two from the short end of the sample up to
    ``longest``, and ``longest`` itself (ascending).

    Example:
        >>> probe_lengths(Lengths((40, 300), (12, 20), 256), 256)
        [8, 16, 32, 64, 128, 256]
        >>> probe_lengths(Lengths((14, 30), (9, 12), 256), 30)
        [8, 16, 30]
    """
    every = sorted(lengths.docs + lengths.queries)
    low = max(MIN_PROBE_LENGTH, every[len(every) // 20])  # the 5th percentile
    length = MIN_PROBE_LENGTH
    while length * 2 <= low:
        length *= 2
    points = []
    while length < longest:
        points.append(length)
        length *= 2
    return [*points, longest]


def _curve(
    run: Callable[[dict[str, Any]], None], shapes: dict[int, dict[str, Any]], rows: int,
    device: str,
) -> tuple[tuple[int, float], ...]:  # fmt: skip
    """Seconds per text at each length: longest first, after one untimed pass at it (the first
    pass of a new shape allocates), the short ones repeated while cheap (the least time kept)."""
    timed: dict[int, float] = {}
    ordered = sorted(shapes, reverse=True)
    run(shapes[ordered[0]])  # warm-up at the largest shape
    for length in ordered:
        times = [_timed(functools.partial(run, shapes[length]), device)]
        while sum(times) < REPEAT_BELOW_SECONDS and len(times) < 3:
            times.append(_timed(functools.partial(run, shapes[length]), device))
        timed[length] = min(times) / rows
    return tuple((n, timed[n]) for n in sorted(timed))


def _optimizer_seconds(parameters: int, device: str) -> float:
    import torch

    size = min(parameters, OPTIMIZER_SLICE)
    weight = torch.zeros(size, device=device, requires_grad=True)
    weight.grad = torch.ones(size, device=device)
    optimizer = torch.optim.AdamW([weight], lr=1e-4)
    optimizer.step()  # allocates the moments
    return _timed(optimizer.step, device) * parameters / size


def _tokenize_seconds(model: SentenceTransformer, docs: Sequence[str]) -> float:
    """Seconds per document of ``model.preprocess`` (tokenizing to padded tensors), sampled."""
    sample = _sample(docs, TOKENIZE_SAMPLE, 0)
    start = time.perf_counter()
    model.preprocess(sample)
    return (time.perf_counter() - start) / max(len(sample), 1)


def measure_rates(
    model: SentenceTransformer, docs: Sequence[str], lengths: Lengths, config: TrainConfig,
    encode_precision: Any, encode_batch: int = PROBE_ROWS,
) -> Rates:  # fmt: skip
    """Time the passes of :class:`Rates` on real text; the model is left as it was.

    Inference passes in the encoder's batch shape and training passes (forward + backward) in
    the trainer's mini-batch shape, both capped at ``PROBE_ROWS`` texts, at the lengths of
    :func:`probe_lengths`; every text of a pass is exactly that long (real words of the
    documents, cut), so the time is the padded shape's.
    """
    import torch

    device = str(model.device)
    longest = max(8, min(max(lengths.docs + lengths.queries), _model_length(model)))
    words = " ".join(docs[: 4 * PROBE_ROWS]).split()
    text = " ".join((words * (1 + 2 * longest // max(len(words), 1)))[: 2 * longest])
    points = probe_lengths(lengths, longest)
    encode_rows = max(1, min(encode_batch, PROBE_ROWS))
    train_rows = max(1, min(
        config.mini_batch_size if config.loss is LossName.CACHED_MNRL else config.batch_size,
        PROBE_ROWS,
    ))  # fmt: skip

    def shapes(rows: int) -> dict[int, dict[str, Any]]:
        return {n: _features(model, text, rows, n) for n in points}

    def forward(features: dict[str, Any]) -> None:
        with torch.inference_mode(), autocast(device, encode_precision):
            model(dict(features))

    was_training = model.training
    model.eval()
    encode = _curve(forward, shapes(encode_rows), encode_rows, device)
    model.train(was_training)
    precision = resolve_precision(config.precision, device)

    def step(features: dict[str, Any]) -> None:
        with autocast(device, precision):
            model(dict(features))["sentence_embedding"].float().square().sum().backward()

    def first_pass(features: dict[str, Any]) -> None:  # the cached loss's, without gradients
        with torch.no_grad(), autocast(device, precision):
            model(dict(features))

    with as_in_training(model, config):
        train_shapes = shapes(train_rows)
        train = _curve(step, train_shapes, train_rows, device)
        for p in model.parameters():
            p.grad = None
        nograd = _curve(first_pass, train_shapes, train_rows, device)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    (_, encode_text), (_, train_text) = encode[-1], train[-1]
    return Rates(
        encode_token=encode_text / encode[-1][0],  # at the longest length: the summary line's
        encode_batch=0.0,
        train_token=train_text / train[-1][0],
        train_batch=0.0,
        optimizer_step=_optimizer_seconds(parameters, device),
        score=score_seconds(embedding_dim(model)),
        parameter_bytes=4 * sum(p.numel() for p in model.parameters()),
        encode_curve=encode,
        train_curve=train,
        nograd_curve=nograd,
        tokenize=_tokenize_seconds(model, docs),
    )
