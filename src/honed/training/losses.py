"""The training loss for a :class:`TrainConfig`, and attention dropout (off by default: see below).

Attention dropout is off by default because PyTorch's fused CPU attention kernel cannot apply
dropout: with the BERT default (0.1) every training forward falls back to the slow "math"
attention; measured on all-MiniLM-L6-v2 at 256 tokens, attention was 60% of the step.
Hidden-layer dropout stays on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sentence_transformers import SentenceTransformer

from honed.encoding.dims import matryoshka_dims
from honed.encoding.distributed import world_size
from honed.encoding.encoder import embedding_dim
from honed.training.config import LossName, TrainConfig
from honed.training.masked_loss import LabelAwareCachedMNRL

__all__ = ["build_loss", "set_attention_dropout"]


def build_loss(
    model: SentenceTransformer,
    config: TrainConfig,
    guide: SentenceTransformer | None = None,
    positives: Mapping[str, Collection[str]] | None = None,
) -> Any:
    """The configured loss, wrapped in MatryoshkaLoss when ``config.matryoshka``.

    With ``config.label_aware_loss`` the cached loss masks false in-batch negatives, found from
    ``positives`` (query text -> all its known positive texts; :mod:`honed.training.masked_loss`).

    Under ``torchrun`` (world size > 1) the in-batch losses gather the embeddings of every
    process, so each query sees ``batch_size x world_size`` in-batch candidates, not only its own
    process's ``batch_size``. ``WORLD_SIZE`` is read too: the trainer creates the process group
    after the loss is built.

    Raises:
        ValueError: label-aware loss without ``positives``, GIST without a ``guide``, or
            ``config.matryoshka_weights`` that do not match the Matryoshka dims.
    """
    inner = _inner_loss(model, config, guide, positives)
    if not config.matryoshka:
        return inner
    return _matryoshka(model, inner, config)


def _inner_loss(
    model: SentenceTransformer,
    config: TrainConfig,
    guide: SentenceTransformer | None,
    positives: Mapping[str, Collection[str]] | None,
) -> Any:
    """The loss at full dimension: the one ``config.loss`` names."""
    from sentence_transformers import losses  # type: ignore[attr-defined]

    gather = world_size() > 1
    if config.loss is LossName.MNRL:
        return losses.MultipleNegativesRankingLoss(
            model, scale=config.scale, gather_across_devices=gather
        )
    if config.loss is LossName.CACHED_MNRL and config.label_aware_loss:
        if positives is None:
            raise ValueError(
                "label_aware_loss: needs the known positives (query text -> positive texts), got "
                "none; fix: pass positives, e.g. honed.training.sampler.positives_by_query(rows)"
            )
        return LabelAwareCachedMNRL(
            model,
            positives,
            scale=config.scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=gather,
        )
    if config.loss is LossName.CACHED_MNRL:
        return losses.CachedMultipleNegativesRankingLoss(
            model,
            scale=config.scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=gather,
        )
    if config.loss is LossName.GIST:
        if guide is None:
            raise ValueError("loss 'gist' needs a guide model; fix: pass the base model as guide")
        return losses.GISTEmbedLoss(
            model, guide, temperature=config.gist_temperature, gather_across_devices=gather
        )
    return losses.TripletLoss(model, triplet_margin=config.triplet_margin)


def _matryoshka(model: SentenceTransformer, inner: Any, config: TrainConfig) -> Any:
    """``inner`` at every Matryoshka dim (``config.dims``, or those of the model's width)."""
    from sentence_transformers import losses  # type: ignore[attr-defined]

    dims = config.dims or matryoshka_dims(embedding_dim(model))
    weights = config.matryoshka_weights
    if weights is not None and len(weights) != len(dims):
        raise ValueError(
            f"matryoshka_weights: expected one weight per Matryoshka dim {tuple(dims)}, "
            f"got {weights}; fix: give {len(dims)} weights, largest dim first"
        )
    return losses.MatryoshkaLoss(
        model,
        inner,
        matryoshka_dims=list(dims),
        matryoshka_weights=list(weights) if weights is not None else None,
    )


def set_attention_dropout(model: SentenceTransformer, p: float) -> int:
    """Set the dropout of every self-attention block to ``p``; returns how many were changed."""
    changed = 0
    for module in model.modules():
        dropout: Any = getattr(module, "dropout", None)
        if type(module).__name__.endswith("SelfAttention") and hasattr(dropout, "p"):
            dropout.p = p
            changed += 1
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    if changed and config is not None and hasattr(config, "attention_probs_dropout_prob"):
        config.attention_probs_dropout_prob = p  # so the saved config says what was trained
    return changed
