"""The run report compares every split with test (dev included), as ``honed check`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from honed.data.beir import load_beir
from honed.pipeline.final import split_shift
from honed.report.markdown import _splits_table
from shift_helpers import write_shift_beir


def _sets(folder: Path) -> tuple[dict[str, dict[str, str]], dict[str, np.ndarray]]:
    data = load_beir(folder)
    train = {q: data.queries[q] for q in data.split("train")}
    qids = sorted(train)
    dev = {q: train.pop(q) for q in qids[: len(qids) // 4]}  # a dev carve of train
    test = {q: data.queries[q] for q in data.split("test")}
    rng = np.random.default_rng(0)  # one embedding population: the text checks decide here
    centre = rng.normal(size=8)
    q_base = {q: (centre + 0.1 * rng.normal(size=8)).astype(np.float32) for q in data.queries}
    return {"train": train, "dev": dev, "test": test}, q_base


def test_templated_train_and_dev_are_flagged_against_free_form_test(tmp_path: Path) -> None:
    sets, q_base = _sets(write_shift_beir(tmp_path / "shifted"))
    splits = split_shift(sets, q_base)
    assert [p["name"] for p in splits["profiles"]] == ["train", "dev", "test"]
    words = {p["name"]: p["mean_words"] for p in splits["profiles"]}
    assert words["test"] > 3 * words["train"] and words["test"] > 3 * words["dev"]
    assert len(splits["warnings"]) == 1  # one line for the reference, test
    assert "train" in splits["warnings"][0] and "dev" in splits["warnings"][0]
    table = _splits_table(splits)
    assert "| dev |" in table and splits["warnings"][0] in table


def test_one_population_gives_no_warning(tmp_path: Path) -> None:
    sets, q_base = _sets(write_shift_beir(tmp_path / "same", shifted=False))
    splits = split_shift(sets, q_base)
    assert splits["warnings"] == []
    assert _splits_table(splits).endswith("No split differs from test.")


def test_the_html_page_states_a_train_test_shift_once(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from honed.report.html_sections import warnings_of

    sets, q_base = _sets(write_shift_beir(tmp_path / "shifted"))
    splits = split_shift(sets, q_base)
    train_only = {"warnings": ["shift: train queries differ from test"]}
    run = SimpleNamespace(evidence={"shift": train_only, "splits": splits}, data={})
    lines = [text for _, text in warnings_of(run)]  # type: ignore[arg-type]
    assert lines == [f"Splits vs test: {splits['warnings'][0]}"]
    older = SimpleNamespace(evidence={"shift": train_only}, data={})  # a run from before splits
    assert [t for _, t in warnings_of(older)] == [  # type: ignore[arg-type]
        "Train/test shift: shift: train queries differ from test"
    ]


def test_report_md_states_a_train_test_shift_once(tmp_path: Path) -> None:
    from honed.report.markdown import _train_test_line

    sets, q_base = _sets(write_shift_beir(tmp_path / "shifted"))
    splits = split_shift(sets, q_base)
    shift = {"train_mean_words": 8.0, "test_mean_words": 31.5, "vocabulary_overlap": 0.2,
             "centroid_cosine": 0.7, "warnings": ["shift: train queries differ from test"]}
    line = _train_test_line({"shift": shift, "splits": splits})
    assert "8.0 vs 31.5 words" in line and "shift: train" not in line  # the table says it
    older = _train_test_line({"shift": shift})  # a run from before the every-split table
    assert older.endswith("shift: train queries differ from test")
