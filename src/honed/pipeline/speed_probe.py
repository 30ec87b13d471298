"""Measure what :mod:`honed.pipeline.cost_model` needs, on this model and device, in a few seconds.

* token lengths: a seeded sample of the documents and queries through the model's tokenizer,
  truncated at its ``max_seq_length`` (what the encoder and the trainer will feed it);
* encoding: two inference forward passes of ``PROBE_TEXTS`` real documents, padded to a short
  and to the longest sampled length, fitted as ``per_batch + per_token x padded tokens``;
* training: the same two shapes with gradients, forward + backward, in the state training gives
  the model (train mode, its attention dropout, autocast), which is restored afterwards;
* one AdamW step, timed on a slice of the weights' size and scaled to all of them.

A first forward pass warms the kernels up and is not timed.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from honed.encoding.encoder import autocast, embedding_dim, resolve_precision
from honed.pipeline.cost_model import Lengths, Rates
from honed.pipeline.estimates import as_in_training, score_seconds

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.training.config import TrainConfig

__all__ = ["measure_lengths", "measure_rates"]

SAMPLE_TEXTS = 512  # texts tokenized per side: the 2nd..98th percentiles within a few tokens
PROBE_TEXTS = 8  # texts per timed pass: 4 passes of 8 x 256 tokens take ~4 s on 2 CPU cores
OPTIMIZER_SLICE = 1 << 22  # weights in the timed AdamW step (scaled to the model's count)


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


def _features(model: SentenceTransformer, texts: Sequence[str], length: int) -> dict[str, Any]:
    """``texts`` tokenized at ``length`` tokens (longer ones cut), on the model's device."""
    import torch

    old = model.max_seq_length
    model.max_seq_length = length
    try:
        features = model.preprocess(list(texts))
    finally:
        model.max_seq_length = old
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


def _fit(short: tuple[int, float], long: tuple[int, float]) -> tuple[float, float]:
    """(per token, per batch) through two (padded tokens, seconds) points; both kept >= 0."""
    (t1, s1), (t2, s2) = short, long
    per_token = max((s2 - s1) / max(t2 - t1, 1), 0.0)
    per_batch = max(s2 - per_token * t2, 0.0)
    if per_token == 0.0:
        per_token, per_batch = s2 / t2, 0.0
    return per_token, per_batch


def _optimizer_seconds(parameters: int, device: str) -> float:
    import torch

    size = min(parameters, OPTIMIZER_SLICE)
    weight = torch.zeros(size, device=device, requires_grad=True)
    weight.grad = torch.ones(size, device=device)
    optimizer = torch.optim.AdamW([weight], lr=1e-4)
    optimizer.step()  # allocates the moments
    return _timed(optimizer.step, device) * parameters / size


def measure_rates(
    model: SentenceTransformer, docs: Sequence[str], lengths: Lengths, config: TrainConfig,
    encode_precision: Any,
) -> Rates:  # fmt: skip
    """Time the passes of :class:`Rates` on real documents; the model is left as it was."""
    import torch

    device = str(model.device)
    texts = sorted(docs[: 4 * PROBE_TEXTS], key=len, reverse=True)[:PROBE_TEXTS]
    long = max(8, min(max(lengths.docs), _model_length(model)))
    short = max(8, long // 4)
    shapes = {n: _features(model, texts, n) for n in (short, long)}
    padded = {n: int(f["attention_mask"].numel()) for n, f in shapes.items()}

    def forward(features: dict[str, Any]) -> None:
        with torch.inference_mode(), autocast(device, encode_precision):
            model(dict(features))

    was_training = model.training
    model.eval()
    forward(shapes[short])  # warm-up
    encode = _fit(*[(padded[n], _timed(functools.partial(forward, shapes[n]), device)) for n in shapes])
    model.train(was_training)
    precision = resolve_precision(config.precision, device)

    def step(features: dict[str, Any]) -> None:
        with autocast(device, precision):
            model(dict(features))["sentence_embedding"].float().square().sum().backward()

    with as_in_training(model, config):
        step(shapes[short])  # warm-up of the backward kernels
        train = _fit(*[(padded[n], _timed(functools.partial(step, shapes[n]), device)) for n in shapes])
        for p in model.parameters():
            p.grad = None
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Rates(
        encode_token=encode[0],
        encode_batch=encode[1],
        train_token=train[0],
        train_batch=train[1],
        optimizer_step=_optimizer_seconds(parameters, device),
        score=score_seconds(embedding_dim(model)),
        parameter_bytes=4 * sum(p.numel() for p in model.parameters()),
    )
