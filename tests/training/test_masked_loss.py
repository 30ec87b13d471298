"""Tests for honed.training.masked_loss: which logits are masked, the loss value, Matryoshka, training."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers.sentence_transformer import losses

import honed.training.masked_loss
from honed.data.beir import load_beir
from honed.encoding.encoder import load_model
from honed.mining.rows import MinedRow
from honed.training.config import TrainConfig
from honed.training.losses import build_loss
from honed.training.masked_loss import (
    LabelAwareCachedMNRL,
    find_label_aware_loss,
    sequence_fingerprints,
)
from honed.training.trainer import TrainRun, train_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SCALE = 20.0

# A hand-built batch of four (anchor, positive, negative) rows. Candidate columns, in the loss's
# layout (positive column, then negative column):  0 "y"   1 "z"   2 "u"   3 "x"
#                                                   4 "n1"  5 "x"   6 "n2"  7 "u"
POSITIVES = {"qa": {"x", "y"}, "qb": {"z"}, "qd": {"x"}}  # "qc" has no known positives
ROWS = (("qa", "y", "n1"), ("qb", "z", "x"), ("qc", "u", "n2"), ("qd", "x", "u"))
EXPECTED = {
    (0, 3),  # "x", a known positive of qa, is row 3's positive
    (0, 5),  # ... and row 1's negative
    (2, 7),  # "u" copies qc's own positive (qc has no known positives: a duplicate only)
    (3, 5),  # "x" copies qd's own positive (and is a known positive of qd)
}
# Nothing to mask: every text distinct, each query's only known positive is its own.
CLEAN_ROWS = (("qa", "pa", "na"), ("qb", "pb", "nb"), ("qc", "pc", "nc"), ("qd", "pd", "nd"))
CLEAN_POSITIVES = {"qa": {"pa"}, "qb": {"pb"}, "qc": {"pc"}, "qd": {"pd"}}


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> SentenceTransformer:
    """A private copy of the tiny model: the losses here back-propagate into its weights."""
    return load_model(str(tiny_model_path), "cpu")


def _features(model: SentenceTransformer, rows: Sequence[tuple[str, ...]]) -> list[dict[str, Any]]:
    """Tokenized columns as the trainer's collator makes them (``model.preprocess`` per column)."""
    return [dict(model.preprocess(list(column))) for column in zip(*rows)]


def _embed(model: SentenceTransformer, rows: Sequence[tuple[str, ...]]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(f)["sentence_embedding"] for f in _features(model, rows)]  # (batch, dim)


def _hand_loss(
    embeddings: Sequence[torch.Tensor], masked: set[tuple[int, int]], rows: Sequence[int]
) -> torch.Tensor:
    """Mean over ``rows`` of cross-entropy against every candidate not in ``masked``."""
    queries, docs = embeddings[0], torch.cat(list(embeddings[1:]))  # (batch, dim), (n_cand, dim)
    scores = SCALE * F.normalize(queries, dim=-1) @ F.normalize(docs, dim=-1).T  # (batch, n_cand)
    total = torch.zeros(())
    for i in rows:
        kept = [j for j in range(docs.shape[0]) if (i, j) not in masked]
        total += torch.logsumexp(scores[i, kept], dim=0) - scores[i, i]
    return total / len(rows)


def _grads(model: SentenceTransformer) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --- fingerprints ----------------------------------------------------------------------------------


def test_fingerprints_ignore_padding_and_follow_the_truncation(model: SentenceTransformer) -> None:
    alone = sequence_fingerprints(model.preprocess(["vitamin d"]))
    padded = sequence_fingerprints(model.preprocess(["vitamin d", "vitamin d and bone " * 5]))
    assert padded[0] == alone[0] != padded[1]
    assert sequence_fingerprints(model.preprocess(["Vitamin D"])) == alone  # lower-cased alike
    long = "malaria " * 80  # past max_seq_length (64): the model never sees the tail
    assert len(set(sequence_fingerprints(model.preprocess([long, long + "insulin"])))) == 1


def test_fingerprints_refuse_flattened_inputs() -> None:
    flat = {"input_ids": torch.tensor([[1, 2, 3]]), "cu_seq_lens_q": torch.tensor([0, 3])}
    with pytest.raises(ValueError, match=r"features: expected padded token ids .* got keys"):
        sequence_fingerprints(flat)


# --- which logits are masked ---------------------------------------------------------------------


def test_false_negatives_are_exactly_the_known_positives_and_copies(
    model: SentenceTransformer,
) -> None:
    loss = LabelAwareCachedMNRL(model, POSITIVES)
    rows, cols = loss.false_negatives(_features(model, ROWS))
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == EXPECTED
    assert len(rows) == len(EXPECTED)  # no pair twice (a copy that is also a known positive)


def test_masked_logits_are_minus_inf_across_mini_batches(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.Tensor] = []
    logsumexp = torch.logsumexp

    def spy(scores: torch.Tensor, dim: int) -> torch.Tensor:
        seen.append(scores.detach().clone())
        return logsumexp(scores, dim=dim)

    loss = LabelAwareCachedMNRL(model, POSITIVES, mini_batch_size=3)  # chunks of rows 0-2, 3
    monkeypatch.setattr(honed.training.masked_loss.torch, "logsumexp", spy)
    value = loss(_features(model, ROWS), None)
    assert [s.shape for s in seen] == [(3, 8), (1, 8)]
    logits = torch.cat(seen)  # (batch, n_cand)
    assert set(map(tuple, torch.isinf(logits).nonzero().tolist())) == EXPECTED
    assert torch.isfinite(value)
    assert loss.masked_last == loss.masked_total == len(EXPECTED)


def test_without_false_negatives_it_is_the_stock_loss(model: SentenceTransformer) -> None:
    features = _features(model, CLEAN_ROWS)
    model.train()  # dropout on: the cached replay must reproduce it in both losses alike
    results = []
    for loss in (
        LabelAwareCachedMNRL(model, CLEAN_POSITIVES, mini_batch_size=3),
        losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=3),
    ):
        model.zero_grad()
        torch.manual_seed(0)
        value = loss(copy.deepcopy(features), None)
        value.backward()
        results.append((value.detach(), _grads(model)))
    (masked, masked_grads), (stock, stock_grads) = results
    assert masked.item() == pytest.approx(stock.item(), abs=1e-5)
    assert masked_grads.keys() == stock_grads.keys() and masked_grads
    for name, grad in masked_grads.items():
        torch.testing.assert_close(grad, stock_grads[name], atol=1e-5, rtol=1e-5)
    model.zero_grad()


def test_loss_is_the_cross_entropy_without_the_masked_candidates(
    model: SentenceTransformer,
) -> None:
    model.eval()  # no dropout: the hand computation embeds once
    loss = LabelAwareCachedMNRL(model, POSITIVES, mini_batch_size=3)
    value = loss(_features(model, ROWS), None)
    embeddings = _embed(model, ROWS)
    expected = _hand_loss(embeddings, EXPECTED, rows=range(len(ROWS)))
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    unmasked = _hand_loss(embeddings, set(), rows=range(len(ROWS)))
    assert abs(value.item() - unmasked.item()) > 1e-3  # the masking changed something
    model.zero_grad()
    value.backward()  # (no NaN from the -inf logits)
    grads = _grads(model)
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    model.zero_grad()


def test_works_inside_matryoshka_and_counts_once_per_batch(model: SentenceTransformer) -> None:
    model.eval()
    inner = LabelAwareCachedMNRL(model, POSITIVES, mini_batch_size=2)
    loss = losses.MatryoshkaLoss(model, inner, matryoshka_dims=[32, 16])
    assert find_label_aware_loss(loss) is inner
    value = loss(_features(model, ROWS), None)
    embeddings = _embed(model, ROWS)
    expected = sum(
        _hand_loss([e[:, :dim] for e in embeddings], EXPECTED, rows=range(len(ROWS)))
        for dim in (32, 16)
    )
    assert value.item() == pytest.approx(float(expected), abs=1e-5)
    assert inner.masked_last == inner.masked_total == len(EXPECTED)  # not once per dim
    model.zero_grad()
    value.backward()
    grads = _grads(model)
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    model.zero_grad()


def test_gathered_candidates_of_other_processes_are_masked_too(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of 2: rows 0-1 of ROWS live on rank 0, rows 2-3 here; the fakes gather them."""
    model.eval()
    here, there = ROWS[2:], ROWS[:2]
    there_fingerprints = iter([sequence_fingerprints(f) for f in _features(model, there)[1:]])
    there_embeddings = iter(_embed(model, there))

    def gather(tensor: torch.Tensor, with_grad: bool = False) -> torch.Tensor:
        return torch.cat([torch.tensor(next(there_fingerprints)), tensor])

    def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([next(there_embeddings), tensor])

    monkeypatch.setattr(honed.training.masked_loss, "all_gather", gather)
    monkeypatch.setattr(honed.training.masked_loss, "all_gather_with_grad", gather_with_grad)
    monkeypatch.setattr(honed.training.masked_loss, "get_rank", lambda: 1)
    loss = LabelAwareCachedMNRL(model, POSITIVES, gather_across_devices=True)
    value = loss(_features(model, here), None)
    # Candidate columns are those of the whole batch; anchor rows are this process's (2, 3 -> 0, 1).
    assert loss.masked_last == 2  # (2, 7) and (3, 5) of EXPECTED
    expected = _hand_loss(_embed(model, ROWS), EXPECTED, rows=[2, 3])
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positives", "message"),
    [
        (
            [("qa", {"x"})],
            r"positives: expected a mapping of query text -> known positive texts, got list",
        ),
        (
            {"qa": "x"},
            r"positives\['qa'\]: expected a str key and a collection of texts, got str -> str",
        ),
        ({1: {"x"}}, r"positives\[1\]: expected a str key .* got int -> set"),
    ],
)
def test_bad_positives_are_refused(
    model: SentenceTransformer, positives: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LabelAwareCachedMNRL(model, positives)


def test_unsupported_settings_are_refused(model: SentenceTransformer) -> None:
    loss = LabelAwareCachedMNRL(model, POSITIVES)
    loss.hardness_mode = "all_negatives"
    with pytest.raises(
        ValueError, match=r"expected directions \('query_to_doc',\), partition_mode"
    ):
        loss(_features(model, ROWS), None)


def test_calculate_loss_outside_forward_is_refused(model: SentenceTransformer) -> None:
    loss = LabelAwareCachedMNRL(model, POSITIVES)
    with pytest.raises(RuntimeError, match=r"calculate_loss runs inside forward"):
        loss.calculate_loss([[torch.zeros(1, 32)], [torch.zeros(1, 32)]])


def test_one_column_is_refused(model: SentenceTransformer) -> None:
    loss = LabelAwareCachedMNRL(model, POSITIVES)
    with pytest.raises(ValueError, match=r"Expected at least 2 inputs, got 1"):
        loss(_features(model, ROWS)[:1], None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_aware_loss": "yes"}, r"label_aware_loss: expected true or false, got 'yes'"),
        (
            {"loss": "mnrl", "label_aware_loss": True},
            r"label_aware_loss: only implemented for loss 'cached_mnrl', got loss 'mnrl'; fix:",
        ),
    ],
)
def test_train_config_validates_label_aware_loss(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_build_loss_needs_the_positives(model: SentenceTransformer) -> None:
    with pytest.raises(ValueError, match=r"label_aware_loss: needs the known positives"):
        build_loss(model, TrainConfig(label_aware_loss=True))


# --- wiring into training ---------------------------------------------------------------------------


def test_build_loss_passes_the_settings_and_positives(model: SentenceTransformer) -> None:
    config = TrainConfig(label_aware_loss=True, scale=7.0, mini_batch_size=4, dims=(32, 16))
    loss = build_loss(model, config, positives=POSITIVES)
    assert isinstance(loss, losses.MatryoshkaLoss)
    inner = find_label_aware_loss(loss)
    assert inner is loss.loss and inner is not None
    assert (inner.scale, inner.mini_batch_size, inner.positives) == (7.0, 4, POSITIVES)
    bare = build_loss(model, TrainConfig(matryoshka=False), positives=POSITIVES)
    assert type(bare) is losses.CachedMultipleNegativesRankingLoss  # off by default
    assert find_label_aware_loss(bare) is None


def _rows_with_a_false_negative(mini_beir: Path) -> tuple[list[MinedRow], dict[str, set[str]]]:
    """One row per train query (its first positive), with q12's other positive as q11's negative.

    q12 has two positives in the qrels (d26, d28); its row is (q12, d26) and d28 stays a known
    positive only, as when a positive was filtered out of the rows. Every other negative is a
    text of its own, so no two rows conflict and all 16 rows form one batch: exactly one false
    negative, d28 against q12.
    """
    data = load_beir(mini_beir)
    text = {d: data.corpus[d].full_text for d in data.corpus}
    rows, positives = [], {}
    for qid, docs in sorted(data.positives("train").items()):
        positives[data.queries[qid]] = {text[d] for d in docs}
        pid = min(docs)
        negative = text["d28"] if qid == "q11" else f"an unrelated note number {len(rows)}"
        rows.append(
            MinedRow(qid, data.queries[qid], pid, text[pid], 0.0, ("n",), (negative,), (0.0,))
        )
    return rows, positives


@pytest.mark.parametrize(("flag", "expected"), [([], False), (["--label-aware-loss"], True)])
def test_cli_flag_reaches_the_train_config(flag: list[str], expected: bool) -> None:
    from honed.cli.configs import train_config
    from honed.cli.parser import build_parser

    args = build_parser().parse_args(["train", "mined.jsonl", "--out", "m", *flag])
    assert train_config(args).label_aware_loss is expected


@pytest.mark.slow
def test_train_model_masks_false_negatives(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path
) -> None:
    rows, positives = _rows_with_a_false_negative(mini_beir)
    config = TrainConfig(
        label_aware_loss=True, epochs=1, batch_size=32, mini_batch_size=8, dims=(32, 16),
        precision="fp32", logging_steps=1,
    )  # fmt: skip
    model = load_model(str(tiny_model_path), "cpu")
    result = train_model(
        model, rows, config, tmp_path / "ckpt", positives=positives,
        run=TrainRun(show_progress_bar=False),
    )
    assert (len(rows), result.steps) == (16, 1)
    assert result.masked_negatives == 1
    assert result.config["label_aware_loss"] is True
    assert result.loss_curve and all(math.isfinite(p["loss"]) for p in result.loss_curve)
