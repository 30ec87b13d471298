"""Behaviour pinned across the restructure: mined rows byte-identical, every metric equal.

``tests/golden/expected.json`` was written by the flat-layout code before any module moved
(see ``tests/golden/outputs.py``). The tiny model, the mini dataset and every seed are fixed, so
on one machine the same code must give the very same bytes and floats.
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


@pytest.mark.slow
def test_mined_rows_are_byte_identical(outputs: dict, expected: dict) -> None:
    assert outputs["mine"] == expected["mine"]
    assert outputs["run"]["mined.jsonl"] == expected["run"]["mined.jsonl"]
    assert outputs["run"]["mined_round2.jsonl"] == expected["run"]["mined_round2.jsonl"]


@pytest.mark.slow
def test_evaluate_metrics_are_equal(outputs: dict, expected: dict) -> None:
    assert outputs["evaluate"] == expected["evaluate"]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["base", "bm25", "tuned", "hybrid"])
def test_run_metrics_are_equal(outputs: dict, expected: dict, system: str) -> None:
    assert outputs["run"]["metrics"][system] == expected["run"]["metrics"][system]
