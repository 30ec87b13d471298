"""Tests for honed.training.sampler: label-aware batches, their guarantees, and the exposure count."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

import honed.training.trainer
from honed.mining.rows import MinedRow
from honed.training.config import LossName, TrainConfig
from honed.training.dataset import build_dataset
from honed.training.sampler import (
    LabelAwareBatchSampler,
    build_label_aware_sampler,
    false_negative_exposure,
    positives_by_query,
    text_hash,
)
from honed.training.trainer import TrainRun, train_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _row(query: str, positive: str, negatives: tuple[str, ...]) -> MinedRow:
    return MinedRow(
        query_id=f"id {query}", query=query, positive_id=f"id {positive}", positive=positive,
        positive_score=0.5, negative_ids=tuple(f"id {n}" for n in negatives),
        negatives=negatives, negative_scores=tuple(0.1 for _ in negatives),
    )


def _sampler(dataset: Dataset, forbidden: Any = None, **kwargs: Any) -> LabelAwareBatchSampler:
    options = {"batch_size": 2, "drop_last": False, "generator": torch.Generator(), "seed": 7}
    return LabelAwareBatchSampler(dataset, forbidden=forbidden, **{**options, **kwargs})


def _stock(dataset: Dataset, **kwargs: Any) -> NoDuplicatesBatchSampler:
    options = {"batch_size": 2, "drop_last": False, "generator": torch.Generator(), "seed": 7}
    return NoDuplicatesBatchSampler(dataset, **{**options, **kwargs})


# Query "a" has positives x and y; row 2 (query "b") brings x as a mined negative. The stock
# sampler may batch rows 1 and 2 together, which makes x an in-batch negative of "a".
ROWS = (_row("a", "x", ("n1",)), _row("a", "y", ("n2",)), _row("b", "z", ("x",)))
POSITIVES = {"a": {"x", "y"}, "b": {"z"}}


def _texts(dataset: Dataset, index: int) -> set[str]:
    return {str(v) for v in dataset[index].values()}


def _assert_clean(dataset: Dataset, batches: list[list[int]], forbidden: list[set[str]]) -> None:
    """No duplicate text and no forbidden pair inside any batch."""
    for batch in batches:
        texts = [t for i in batch for t in _texts(dataset, i)]
        assert len(texts) == len(set(texts)), f"duplicate text in batch {batch}"
        for i in batch:
            others = {t for j in batch if j != i for t in _texts(dataset, j)}
            assert not forbidden[i] & others, f"row {i} meets a forbidden text in {batch}"


# --- random small datasets -------------------------------------------------------------------

_dataset_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # query
        st.integers(0, 11),  # positive document
        st.lists(st.integers(0, 11), min_size=1, max_size=2),  # negatives
    ),
    min_size=1,
    max_size=24,
)


def _random_case(spec: list[tuple[int, int, list[int]]]) -> tuple[Dataset, list[set[str]]]:
    rows = [_row(f"q{q}", f"d{p}", tuple(f"d{n}" for n in negs)) for q, p, negs in spec]
    dataset = build_dataset(rows, LossName.CACHED_MNRL)
    positives = positives_by_query(rows)
    return dataset, [set(positives[r.query]) for r in rows]


@settings(max_examples=60, deadline=None)
@given(spec=_dataset_strategy, batch_size=st.integers(1, 6), seed=st.integers(0, 3))
def test_batches_hold_every_row_once_without_duplicates_or_forbidden_pairs(
    spec: list[tuple[int, int, list[int]]], batch_size: int, seed: int
) -> None:
    dataset, forbidden = _random_case(spec)
    sampler = _sampler(dataset, forbidden, batch_size=batch_size, seed=seed)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert Counter(i for b in batches for i in b) == Counter(range(len(dataset)))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert len(sampler) == len(batches)
        _assert_clean(dataset, batches, forbidden)


@settings(max_examples=40, deadline=None)
@given(spec=_dataset_strategy, batch_size=st.integers(1, 6))
def test_drop_last_yields_only_full_batches_and_no_row_twice(
    spec: list[tuple[int, int, list[int]]], batch_size: int
) -> None:
    dataset, forbidden = _random_case(spec)
    sampler = _sampler(dataset, forbidden, batch_size=batch_size, drop_last=True)
    batches = list(sampler)
    rows = [i for b in batches for i in b]
    assert len(rows) == len(set(rows))
    assert all(len(b) == batch_size for b in batches)
    assert len(sampler) == len(batches)
    _assert_clean(dataset, batches, forbidden)


@settings(max_examples=40, deadline=None)
@given(spec=_dataset_strategy, batch_size=st.integers(1, 6), seed=st.integers(0, 3))
def test_without_forbidden_texts_batches_equal_the_stock_sampler(
    spec: list[tuple[int, int, list[int]]], batch_size: int, seed: int
) -> None:
    dataset, _ = _random_case(spec)
    empty: list[set[str]] = [set() for _ in range(len(dataset))]
    for forbidden in (None, empty):
        ours = _sampler(dataset, forbidden, batch_size=batch_size, seed=seed)
        stock = _stock(dataset, batch_size=batch_size, seed=seed)
        for epoch in (0, 2):
            ours.set_epoch(epoch)
            stock.set_epoch(epoch)
            assert list(ours) == list(stock)


def test_known_positive_of_another_row_never_shares_its_batch() -> None:
    dataset = build_dataset(ROWS, LossName.CACHED_MNRL)
    forbidden = [POSITIVES[r.query] for r in ROWS]
    stock_pairs, ours_pairs = set(), set()
    for seed in range(20):
        stock_pairs |= {frozenset(b) for b in _stock(dataset, seed=seed)}
        ours_pairs |= {frozenset(b) for b in _sampler(dataset, forbidden, seed=seed)}
    assert frozenset({1, 2}) in stock_pairs  # the stock sampler lets the false negative in
    assert frozenset({1, 2}) not in ours_pairs


def test_batches_are_deterministic_per_seed_and_epoch() -> None:
    rows = [_row(f"q{i % 5}", f"d{i}", (f"d{(i * 7) % 40}",)) for i in range(40)]
    dataset = build_dataset(rows, LossName.CACHED_MNRL)
    positives = positives_by_query(rows)
    forbidden = [positives[r.query] for r in rows]

    def batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = _sampler(dataset, forbidden, batch_size=4, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert batches(1, 0) == batches(1, 0)
    assert batches(1, 0) != batches(1, 1)
    assert batches(1, 0) != batches(2, 0)
    sampler = _sampler(dataset, forbidden, batch_size=4, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first  # coming back to an epoch gives its batches again


def test_without_generator_the_shuffle_still_follows_seed_and_epoch() -> None:
    dataset = build_dataset(ROWS, LossName.CACHED_MNRL)
    seeded = _sampler(dataset, seed=3)
    bare = LabelAwareBatchSampler(dataset, batch_size=2, drop_last=False, seed=3)
    assert list(bare) == list(seeded)


def test_len_counts_the_extra_batches_that_conflicts_cause() -> None:
    # Four rows of one query (positives d0..d3) must all go to different batches.
    rows = [_row("q", f"d{i}", (f"n{i}",)) for i in range(4)]
    dataset = build_dataset(rows, LossName.CACHED_MNRL)
    sampler = _sampler(dataset, [{"d0", "d1", "d2", "d3"}] * 4, batch_size=4)
    assert len(sampler) == 4
    assert [len(b) for b in sampler] == [1, 1, 1, 1]


def test_empty_dataset_gives_no_batches() -> None:
    dataset = Dataset.from_dict({"anchor": [], "positive": []})
    sampler = _sampler(dataset, [])
    assert list(sampler) == []
    assert len(sampler) == 0


# --- errors ----------------------------------------------------------------------------------


def test_forbidden_of_the_wrong_length_names_both_lengths() -> None:
    dataset = build_dataset(ROWS, LossName.CACHED_MNRL)
    with pytest.raises(ValueError, match=r"forbidden: expected .*\(3 rows\), got 2"):
        _sampler(dataset, [{"x"}, {"y"}])


def test_forbidden_entry_that_is_a_string_is_refused() -> None:
    dataset = build_dataset(ROWS, LossName.CACHED_MNRL)
    with pytest.raises(ValueError, match=r"forbidden\[1\]: expected a collection of texts"):
        _sampler(dataset, [{"x"}, "y", set()])


def test_unknown_anchor_column_is_refused() -> None:
    dataset = build_dataset(ROWS, LossName.CACHED_MNRL)
    with pytest.raises(ValueError, match=r"anchor_column: expected one of .*got 'query'"):
        build_label_aware_sampler(
            dataset, POSITIVES, anchor_column="query", batch_size=2, drop_last=False
        )


def test_label_aware_batches_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"label_aware_batches: expected true or false, got 'no'"):
        TrainConfig(label_aware_batches="no")  # type: ignore[arg-type]
    assert TrainConfig().to_dict()["label_aware_batches"] is False  # opt-in: quality unmeasured


def test_run_config_without_the_flag_still_loads() -> None:
    from honed.pipeline.config import RunConfig

    values = RunConfig(data="somewhere", out="elsewhere").to_dict()
    del values["training"]["label_aware_batches"]  # a config.json written before the flag
    assert RunConfig.from_dict(values).training.label_aware_batches is False


# --- helpers and the exposure count -----------------------------------------------------------


def test_text_hash_is_stable_and_signed_64_bit() -> None:
    assert text_hash("x") == text_hash("x") != text_hash("y")
    assert -(2**63) <= text_hash("x") < 2**63
    assert text_hash("x") == 5717441744405258058  # the same in every process and run


def test_positives_by_query_groups_the_rows() -> None:
    assert positives_by_query(ROWS) == {"a": frozenset({"x", "y"}), "b": frozenset({"z"})}


def test_exposure_counts_by_hand() -> None:
    # Both rows fit one stock batch: query "a" meets y (its positive, brought by row "b").
    rows = [_row("a", "x", ("n1",)), _row("b", "z", ("y",))]
    positives = {"a": {"x", "y"}, "b": {"z"}}
    stock = false_negative_exposure(rows, positives, batch_size=2, seed=0)
    assert (stock.batches, stock.rows) == (1, 2)
    assert stock.negative_pairs == 2 * (4 - 1)  # 4 texts scored per query, one is its positive
    assert stock.in_batch_pairs == 2 * 2  # the other row's positive and negative
    assert stock.false_negative_pairs == 1
    assert (stock.rows_exposed, stock.queries_exposed) == (1, 1)
    assert stock.fraction == pytest.approx(1 / 4)
    aware = false_negative_exposure(rows, positives, batch_size=2, seed=0, label_aware=True)
    assert (aware.batches, aware.false_negative_pairs, aware.in_batch_pairs) == (2, 0, 0)
    assert aware.fraction == 0.0


def test_exposure_counts_own_mined_negatives_apart() -> None:
    # Mining let a known positive through as the row's own negative: no sampler can help.
    rows = [_row("a", "x", ("y",))]
    exposure = false_negative_exposure(rows, {"a": {"x", "y"}}, batch_size=4, seed=0)
    assert exposure.false_hard_negative_pairs == 1
    assert exposure.false_negative_pairs == 0


def test_exposure_is_zero_with_label_aware_batches_on_a_multi_positive_set() -> None:
    rows = [
        _row(f"q{q}", f"d{(q * 3 + k) % 30}", (f"d{(q * 11 + k + 5) % 30}",))
        for q in range(12)
        for k in range(4)
    ]
    rows = [r for r in rows if r.positive not in r.negatives]
    positives = positives_by_query(rows)
    stock = false_negative_exposure(rows, positives, batch_size=8, seed=42)
    aware = false_negative_exposure(rows, positives, batch_size=8, seed=42, label_aware=True)
    assert stock.false_negative_pairs > 0
    assert aware.false_negative_pairs == 0
    assert aware.rows == stock.rows == len(rows)


# --- training --------------------------------------------------------------------------------


def _train(
    model: SentenceTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> tuple[Any, list[LabelAwareBatchSampler]]:
    built: list[LabelAwareBatchSampler] = []

    def spy(*args: Any, **options: Any) -> LabelAwareBatchSampler:
        built.append(build_label_aware_sampler(*args, **options))
        return built[-1]

    monkeypatch.setattr(honed.training.trainer, "build_label_aware_sampler", spy)
    rows = list(ROWS) + [_row(f"q{i}", f"doc {i}", (f"other {i}",)) for i in range(5)]
    config = TrainConfig(
        epochs=1, batch_size=4, mini_batch_size=4, learning_rate=1e-3, dims=(32, 16),
        precision="fp32", logging_steps=1, **kwargs.pop("config", {}),
    )
    result = train_model(
        copy.deepcopy(model), rows, config, tmp_path / "ckpt", run=TrainRun(show_progress_bar=False),
        **kwargs,
    )
    return result, built


def test_train_model_uses_label_aware_batches_when_positives_are_given(
    tiny_model: SentenceTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, built = _train(
        tiny_model, tmp_path, monkeypatch, positives=POSITIVES, config={"label_aware_batches": True}
    )
    assert len(built) == 1
    sampler = built[0]
    assert result.steps == len(sampler)  # the schedule counted every batch the sampler made
    assert result.config["label_aware_batches"] is True
    dataset = build_dataset(list(ROWS), LossName.CACHED_MNRL)
    forbidden = [POSITIVES[r.query] for r in ROWS]
    batches = [[i for i in b if i < len(ROWS)] for b in sampler]
    _assert_clean(dataset, batches, forbidden)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # no positives: exactly the stock batches
        {"positives": POSITIVES},  # the default: label-aware batches off
        {"positives": POSITIVES, "config": {"label_aware_batches": False}},
        {"positives": POSITIVES, "config": {"loss": "triplet", "label_aware_batches": True}},
    ],
)
def test_train_model_keeps_stock_batches_otherwise(
    tiny_model: SentenceTransformer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
) -> None:
    _, built = _train(tiny_model, tmp_path, monkeypatch, **kwargs)
    assert built == []
