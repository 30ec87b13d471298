"""Behaviour pinned across the restructure: the same mined rows, every metric equal.

``tests/golden/expected.json`` was written by the flat-layout code before any module moved
(see ``tests/golden/outputs.py``). The tiny model, the mini dataset and every seed are fixed, so
the same code must give the very same rows and metrics. (The file first held the sha256 of each
mined file; a later machine's CPU rounded the last digits of some scores differently, with the
flat code too, so the rows are now kept themselves: ids compared exactly, scores to 1e-5. The
rows were recorded by the flat code, commit 9fc963e, and its metrics equal the first file's.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden.outputs import EXPECTED, golden_outputs


@pytest.fixture(scope="module")
def outputs(tiny_model_path: Path, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory):
    return golden_outputs(tiny_model_path, mini_beir, tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def _same_rows(got: list, want: list) -> None:
    """The same rows with the same ids in the same order; scores equal to float rounding."""
    assert [row[:3] for row in got] == [row[:3] for row in want]
    for row, expected in zip(got, want):
        assert row[3] == pytest.approx(expected[3], abs=1e-5)
        assert row[4] == pytest.approx(expected[4], abs=1e-5)


@pytest.mark.slow
def test_mined_rows_are_identical(outputs: dict, expected: dict) -> None:
    _same_rows(outputs["mine"]["mined.jsonl"], expected["mine"]["mined.jsonl"])
    for name in ("mined.jsonl", "mined_round2.jsonl"):
        _same_rows(outputs["run"][name], expected["run"][name])


@pytest.mark.slow
def test_evaluate_metrics_are_equal(outputs: dict, expected: dict) -> None:
    assert outputs["evaluate"] == expected["evaluate"]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["base", "bm25", "tuned", "hybrid"])
def test_run_metrics_are_equal(outputs: dict, expected: dict, system: str) -> None:
    assert outputs["run"]["metrics"][system] == expected["run"]["metrics"][system]
