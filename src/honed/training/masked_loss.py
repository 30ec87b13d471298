"""Label-aware InfoNCE: false in-batch negatives are masked out of the loss, not pushed away.

CachedMultipleNegativesRankingLoss scores each query against every positive and hard negative of
the batch and pushes it away from all of them except its own positive. Two kinds of candidate
are wrongly pushed away: (a) a *known positive* of the query that enters the batch as another
row's positive or negative (query A has positives X and Y; in row ``(A, Y)``, X is a negative),
and (b) a *copy* of the query's own positive text. :mod:`honed.training.sampler` avoids them by building
batches around them, which costs batch size; :class:`LabelAwareCachedMNRL` keeps the batch and
sets those logits to ``-inf`` instead, so they drop out of the softmax: the loss of query ``i``
becomes ``-log(exp(s_ii) / sum_{j not masked} exp(s_ij))``.

The loss sees only token ids, so texts are identified by their token-id sequence after the
model's own tokenization and truncation (padding dropped via the attention mask): two texts that
differ only past ``max_seq_length`` are the same text to the model and to this mask. Each
sequence is reduced to a 64-bit BLAKE2b fingerprint, equal in every process, so that under
``gather_across_devices`` the candidates of the other processes are identified by gathering
one integer per text instead of their token ids.

Example:
    >>> loss = LabelAwareCachedMNRL(model, {"query a": {"doc x", "doc y"}})  # doctest: +SKIP
    >>> trainer = SentenceTransformerTrainer(model=model, loss=loss, ...)  # doctest: +SKIP
    >>> loss.masked_total  # false negatives masked so far  # doctest: +SKIP
    12
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses.cached_multiple_negatives_ranking import (
    CachedMultipleNegativesRankingLoss,
)
from sentence_transformers.util import all_gather, all_gather_with_grad, cos_sim, get_rank
from torch import Tensor

__all__ = ["LabelAwareCachedMNRL", "find_label_aware_loss", "sequence_fingerprints"]

# Texts tokenized per call when indexing the known positives: bounds the padded id matrix.
_INDEX_CHUNK = 256


def sequence_fingerprints(features: Mapping[str, Any]) -> list[int]:
    """One signed 64-bit fingerprint per row of tokenized ``features``: its non-padding token ids.

    >>> import torch
    >>> a = {"input_ids": torch.tensor([[101, 7, 102, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    >>> b = {"input_ids": torch.tensor([[101, 7, 102]]), "attention_mask": torch.tensor([[1, 1, 1]])}
    >>> sequence_fingerprints(a) == sequence_fingerprints(b)
    True
    """
    if "cu_seq_lens_q" in features or "input_ids" not in features:
        raise ValueError(
            f"features: expected padded token ids (input_ids, attention_mask), got keys "
            f"{sorted(features)}; fix: label-aware masking needs a text model without input "
            "flattening (DataCollatorWithFlattening) or image inputs"
        )
    ids = features["input_ids"].detach().cpu().numpy().astype("<i8")  # (batch, seq_len)
    mask = features.get("attention_mask")
    keep = (
        np.ones(ids.shape, dtype=bool)
        if mask is None
        else mask.detach().cpu().numpy().astype(bool)  # (batch, seq_len)
    )
    fingerprints = []
    for row, row_keep in zip(ids, keep):
        digest = hashlib.blake2b(row[row_keep].tobytes(), digest_size=8).digest()
        fingerprints.append(int.from_bytes(digest, "little", signed=True))
    return fingerprints


class LabelAwareCachedMNRL(CachedMultipleNegativesRankingLoss):  # type: ignore[misc]
    """CachedMultipleNegativesRankingLoss that masks each query's false in-batch negatives.

    For anchor ``i``, every candidate column ``j`` (all positives and hard negatives of the batch,
    gathered across processes under ``gather_across_devices``) except its own positive is masked
    when its text is a known positive of anchor ``i``'s query, or the same text as anchor ``i``'s
    own positive. Known positives include the anchor's own hard negatives: a mined negative that
    is a known positive is masked too. With nothing to mask the loss equals the stock one.

    ``masked_last`` is the number of (anchor, candidate) logits masked in the latest batch, and
    ``masked_total`` their sum over every batch this loss has seen (counted once per batch, not
    once per Matryoshka dim; this process's anchors only). Only the default InfoNCE form is
    supported: directions ``("query_to_doc",)``, joint partition, no hardness weighting.

    Args:
        model: the SentenceTransformer being trained; its ``preprocess`` and ``max_seq_length``
            define when two texts are the same.
        positives: query text -> all its known positive texts.
        scale: logit scale (1 / temperature), as in the stock loss.
        similarity_fct: similarity of embeddings, cosine by default.
        mini_batch_size: rows embedded (and loss rows computed) at a time.
        gather_across_devices: score each query against the candidates of every process.
        show_progress_bar: show the mini-batch progress of the stock loss.

    Raises:
        ValueError: ``positives`` is not a mapping of query text to a collection of texts.
    """

    def __init__(
        self,
        model: Any,
        positives: Mapping[str, Collection[str]],
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        mini_batch_size: int = 32,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            mini_batch_size=mini_batch_size,
            gather_across_devices=gather_across_devices,
            show_progress_bar=show_progress_bar,
        )
        _check_positives(positives)
        self.positives = positives
        self.masked_last = 0
        self.masked_total = 0
        # (anchor row, candidate column) pairs to mask in the batch being computed; set by forward
        # because calculate_loss (which MatryoshkaLoss wraps) receives embeddings only.
        self._false: tuple[Tensor, Tensor] | None = None
        self._index_length: int | None = None
        self._known: dict[int, frozenset[int]] = {}
        self._reindex_if_needed()

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        sentence_features = list(sentence_features)
        if len(sentence_features) < 2:
            raise ValueError(f"Expected at least 2 inputs, got {len(sentence_features)}")
        self._check_supported()
        self._reindex_if_needed()
        self._false = self.false_negatives(sentence_features)
        self.masked_last = len(self._false[0])
        self.masked_total += self.masked_last
        try:
            return self.forward_cached(sentence_features, labels)
        finally:
            self._false = None  # the backward hook re-embeds only; it never recomputes the loss

    def false_negatives(
        self, sentence_features: Sequence[Mapping[str, Any]]
    ) -> tuple[Tensor, Tensor]:
        """(anchor rows, candidate columns) to mask; columns index the stock loss's ``docs_all``.

        Candidates are laid out as in the stock loss: the positive column, then each negative
        column, each ``batch x world_size`` long when gathering. Anchor rows are this process's.
        """
        anchors = sequence_fingerprints(sentence_features[0])  # batch
        device = sentence_features[0]["input_ids"].device
        columns = [sequence_fingerprints(f) for f in sentence_features[1:]]  # (1 + nn) x batch
        offset = 0
        if self.gather_across_devices:
            columns = [
                all_gather(torch.tensor(c, dtype=torch.int64, device=device)).tolist()
                for c in columns
            ]  # (1 + nn) x (batch * world_size)
            offset = get_rank() * len(anchors)
        where: dict[int, list[int]] = {}
        width = len(columns[0])
        for c, column in enumerate(columns):
            for j, fingerprint in enumerate(column):
                where.setdefault(fingerprint, []).append(c * width + j)
        rows: list[int] = []
        cols: list[int] = []
        for i, anchor in enumerate(anchors):
            own = offset + i  # the anchor's own positive: never masked
            for fingerprint in self._known.get(anchor, frozenset()) | {columns[0][own]}:
                for j in where.get(fingerprint, ()):
                    if j != own:
                        rows.append(i)
                        cols.append(j)
        return (
            torch.tensor(rows, dtype=torch.int64, device=device),  # (n_false,)
            torch.tensor(cols, dtype=torch.int64, device=device),  # (n_false,)
        )

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The stock all-pairs InfoNCE with the false negatives of :meth:`forward` at ``-inf``.

        The positive logit is never masked, so every row keeps a finite log-partition and the
        masked logits get an exact zero gradient (softmax weight ``exp(-inf) = 0``).
        """
        if self._false is None:
            raise RuntimeError(
                "calculate_loss runs inside forward, which finds the false negatives"
            )
        false_rows, false_cols = self._false
        queries = torch.cat(reps[0])  # (batch, dim)
        docs = [torch.cat(r) for r in reps[1:]]  # (1 + nn) x (batch, dim)
        batch_size = len(queries)
        offset = 0
        if self.gather_across_devices:
            queries = all_gather_with_grad(queries)  # (batch * world_size, dim)
            docs = [all_gather_with_grad(d) for d in docs]  # (1 + nn) x (batch * world_size, dim)
            offset = get_rank() * batch_size
        docs_all = torch.cat(docs)  # (batch * world_size * (1 + nn), dim)
        false_rows, false_cols = false_rows.to(queries.device), false_cols.to(queries.device)
        losses: list[Tensor] = []
        for begin in range(0, batch_size, self.mini_batch_size):
            end = min(begin + self.mini_batch_size, batch_size)
            own = torch.arange(offset + begin, offset + end, device=queries.device)  # (mbs,)
            scores = self.similarity_fct(queries[own], docs_all) * self.scale  # (mbs, n_cand)
            chunk = (false_rows >= begin) & (false_rows < end)  # (n_false,)
            mask = torch.zeros_like(scores, dtype=torch.bool)  # (mbs, n_cand)
            mask[false_rows[chunk] - begin, false_cols[chunk]] = True
            scores = scores.masked_fill(mask, float("-inf"))  # (mbs, n_cand)
            positive = scores[torch.arange(end - begin, device=queries.device), own]  # (mbs,)
            per_row = torch.logsumexp(scores, dim=1) - positive  # (mbs,)
            loss = per_row.mean() * (end - begin) / batch_size
            if with_backward:
                loss.backward()
                loss = loss.detach()
            losses.append(loss)
        return torch.stack(losses).sum()

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "label_aware": True, "known_queries": len(self._known)}

    def _check_supported(self) -> None:
        settings = (self.directions, self.partition_mode, self.hardness_mode)
        if settings != (("query_to_doc",), "joint", None):
            raise ValueError(
                f"LabelAwareCachedMNRL: expected directions ('query_to_doc',), partition_mode "
                f"'joint' and hardness_mode None, got {settings}; fix: use the stock "
                "CachedMultipleNegativesRankingLoss for other settings"
            )

    def _reindex_if_needed(self) -> None:
        """Fingerprint the known texts, again whenever ``max_seq_length`` changed since."""
        length = self.model.max_seq_length
        if self._index_length == length:
            return
        texts = sorted(
            {q for q in self.positives} | {t for ts in self.positives.values() for t in ts}
        )
        fingerprint: dict[str, int] = {}
        for begin in range(0, len(texts), _INDEX_CHUNK):
            chunk = texts[begin : begin + _INDEX_CHUNK]
            fingerprint.update(zip(chunk, sequence_fingerprints(self.model.preprocess(chunk))))
        known: dict[int, set[int]] = {}
        for query, docs in self.positives.items():
            # Two queries that tokenize alike are one query to the model: pool their positives.
            known.setdefault(fingerprint[query], set()).update(fingerprint[d] for d in docs)
        self._known = {q: frozenset(d) for q, d in known.items()}
        self._index_length = length


def _check_positives(positives: Any) -> None:
    if not isinstance(positives, Mapping):
        raise ValueError(
            f"positives: expected a mapping of query text -> known positive texts, got "
            f"{type(positives).__name__}; fix: pass e.g. honed.training.sampler.positives_by_query(rows)"
        )
    for query, docs in positives.items():
        if not isinstance(query, str) or isinstance(docs, str) or not isinstance(docs, Collection):
            raise ValueError(
                f"positives[{query!r}]: expected a str key and a collection of texts, got "
                f"{type(query).__name__} -> {type(docs).__name__}; fix: wrap a single text in a "
                "set, e.g. {query: {text}}"
            )


def find_label_aware_loss(loss: Any) -> LabelAwareCachedMNRL | None:
    """The :class:`LabelAwareCachedMNRL` in ``loss`` (bare or inside MatryoshkaLoss), else None."""
    while loss is not None and not isinstance(loss, LabelAwareCachedMNRL):
        loss = getattr(loss, "loss", None)
    return loss
