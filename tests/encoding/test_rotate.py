"""The corpus PCA rotation: orthogonal, ordered by energy, invisible at full dim, saved in the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer, models

from honed.encoding.encoder import load_model
from honed.encoding.rotation import add_rotation, pca_rotation
from honed.training.config import TrainConfig

TEXTS = ["vitamin d deficiency", "protein folding", "a cat on a mat", "stock markets fell", "gene x"]


def test_rotation_is_orthogonal_and_orders_directions_by_energy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * np.array([0.1, 3.0, 0.5, 2.0, 1.0, 0.2])  # (n, dim)
    r = pca_rotation(x)
    assert r.shape == (6, 6) and r.dtype == np.float32
    np.testing.assert_allclose(r.T @ r, np.eye(6), atol=1e-5)
    energy = ((x @ r) ** 2).sum(axis=0)
    assert np.all(np.diff(energy) <= 1e-6 * energy[0])  # largest first
    # The first coordinate is the axis with the largest scale (column 1), up to sign.
    assert abs(r[1, 0]) > 0.99 and r[1, 0] > 0  # signs are fixed: largest entry positive
    np.testing.assert_array_equal(r, pca_rotation(x))  # deterministic


def test_rotation_refuses_what_is_not_a_matrix_of_rows() -> None:
    with pytest.raises(ValueError, match=r"expected a \(n >= 2, dim\) matrix"):
        pca_rotation(np.ones((1, 4)))


def test_rotated_model_keeps_full_dim_cosines_and_loads_without_honed(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    bare = add_rotation(load_model(str(tiny_model_path), "cpu"), np.eye(32))
    assert type(bare[-1]).__name__ == "Dense"  # no Normalize module: the rotation goes last
    model = load_model(str(tiny_model_path), "cpu")
    model.append(models.Normalize())
    before = model.encode(TEXTS)  # (5, 32), normalised by the model
    rotation = pca_rotation(before)
    add_rotation(model, rotation)
    names = [type(m).__name__ for m in model]
    assert names[-2:] == ["Dense", "Normalize"]
    after = model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(after, before @ rotation, atol=1e-5)
    np.testing.assert_allclose(after @ after.T, before @ before.T, atol=1e-5)
    model.save(str(tmp_path / "m"))
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert any(m["type"].endswith("Dense") for m in modules)
    reloaded = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(TEXTS, normalize_embeddings=True), after, atol=1e-5)


def test_add_rotation_refuses_wrong_shapes_and_non_rotations(tiny_model_path: Path) -> None:
    model = load_model(str(tiny_model_path), "cpu")
    with pytest.raises(ValueError, match=r"expected a \(32, 32\) matrix, got \(8, 8\)"):
        add_rotation(model, np.eye(8))
    with pytest.raises(ValueError, match="not orthogonal"):
        add_rotation(model, 2 * np.eye(32))


def test_rotate_setting_is_validated() -> None:
    assert TrainConfig().rotate is True
    with pytest.raises(ValueError, match="rotate: expected true or false"):
        TrainConfig(rotate="yes")  # type: ignore[arg-type]
