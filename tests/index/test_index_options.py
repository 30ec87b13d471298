"""The settings dataclasses of the index room: each refusal and its message, before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from honed.index.ann import HnswConfig
from honed.index.index import Index
from honed.index.options import BuildOptions
from honed.index.planner import PlanGrid
from honed.index.postgres.upload import UploadOptions
from honed.index.quantize import Quantization
from honed.retrieval.fusion import FusionConfig


def test_build_options_coerce_once() -> None:
    options = BuildOptions(precision="int8", encode_precision="bf16", ann="hnsw")
    assert options.precision is Quantization.INT8 and options.encode_precision == "bf16"
    assert options.hnsw == HnswConfig() and BuildOptions().hnsw is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shortlist_dim": 0}, "shortlist_dim must be a positive integer, got 0"),
        ({"batch_size": True}, "batch_size must be a positive integer, got True"),
        ({"precision": "fp8"}, "precision: expected one of float32, int8, binary, got 'fp8'"),
        ({"encode_precision": "fp16"}, "'fp16' is not a valid Precision"),
        ({"ann": "ivf"}, "ann: expected one of 'hnsw' or None"),
        ({"fusion": {"method": "rrf"}, "bm25": True}, "fusion: expected a honed.retrieval"),
        ({"fusion": FusionConfig("rrf", 0.5)}, "fusion needs a BM25 index .*pass bm25=True"),
    ],
)
def test_build_options_refuse(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuildOptions(**settings)  # type: ignore[arg-type]


def test_build_methods_refuse_settings_they_do_not_use(tmp_path: Path) -> None:
    # Refused before any model loads or any corpus is read.
    with pytest.raises(
        TypeError, match="build_from_corpus\\(\\) got an unexpected keyword argument 'bm25'"
    ):
        Index.build_from_corpus("no-such-model", tmp_path, tmp_path / "ix", bm25=True)
    with pytest.raises(
        TypeError, match="Index.build\\(\\) got an unexpected keyword argument 'colour'"
    ):
        Index.build("no-such-model", ["a"], ["x"], tmp_path / "ix", colour="red")
    with pytest.raises(
        TypeError, match="from_embeddings\\(\\) got an unexpected keyword argument 'resume'"
    ):
        Index.from_embeddings(np.eye(2), ["a", "b"], 1, resume=True)
    index = Index.from_embeddings(np.ones((2, 2)), ["a", "b"], 1, model_name="m")
    assert index.info.model_name == "m" and not (tmp_path / "ix").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shortlists": ()}, "shortlists is empty"),
        ({"shortlists": (10, 0)}, "shortlists: each must be a positive integer, got 0"),
        ({"precisions": ("int4",)}, "precision: expected one of float32, int8, binary"),
    ],
)
def test_plan_grid_refuses(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlanGrid(**settings)  # type: ignore[arg-type]


def test_plan_grid_dims_for_a_width() -> None:
    assert PlanGrid().dims_for(384) == (256, 128, 64)
    assert PlanGrid(dims=[8]).dims == (8,)
    with pytest.raises(ValueError, match=r"dims: each must be an integer in \[1, 15\]"):
        PlanGrid(dims=(16,)).dims_for(16)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"table": "Bad-Name"}, "table name 'Bad-Name': expected lower-case letters"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"hnsw_m": -1}, "hnsw_m must be a positive integer, got -1"),
        ({"hnsw_ef_construction": 1.5}, "hnsw_ef_construction must be a positive integer"),
    ],
)
def test_upload_options_refuse(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UploadOptions(**settings)  # type: ignore[arg-type]
