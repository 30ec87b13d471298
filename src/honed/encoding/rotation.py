"""An orthogonal rotation of the embedding space that puts the corpus's main directions first.

Truncating an embedding to its first ``k`` dims keeps whatever those coordinates happen to hold.
Rotating the space first by the principal directions of the corpus embeddings (uncentred, so
it is a pure rotation about the origin) makes the first ``k`` coordinates the ``k``-dim subspace
that keeps the most of the corpus's energy. A rotation changes no full-dim cosine, so the
full-dim model is exactly the same model; only its truncations change.

:func:`add_rotation` stores the rotation inside the model as a bias-free, identity-activation
:class:`sentence_transformers.models.Dense` layer placed before ``Normalize``, so the output
folder still loads with plain ``SentenceTransformer(path)`` and ``truncate_dim`` works as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pca_rotation(embeddings: np.ndarray) -> np.ndarray:
    """A ``(dim, dim)`` orthogonal matrix whose columns are the principal directions of the rows
    of ``embeddings`` (uncentred second moment), largest first. ``x @ R`` rotates ``x``."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"pca_rotation: expected a (n >= 2, dim) matrix, got shape {x.shape}")
    values, vectors = np.linalg.eigh(x.T @ x)
    order = np.argsort(values)[::-1]
    rotation = vectors[:, order]
    # Fix each direction's sign (largest-magnitude entry positive) so the result is deterministic.
    signs = np.sign(rotation[np.abs(rotation).argmax(axis=0), np.arange(rotation.shape[1])])
    signs[signs == 0] = 1.0
    return (rotation * signs).astype(np.float32)


def add_rotation(model: Any, rotation: np.ndarray) -> Any:
    """Insert ``rotation`` into ``model`` (in place) as a Dense layer before its Normalize module
    (at the end when it has none). Returns the model."""
    import torch
    from sentence_transformers import models  # type: ignore[attr-defined]

    from honed.encoding.encoder import embedding_dim

    r = np.asarray(rotation, dtype=np.float32)
    dim = embedding_dim(model)
    if r.shape != (dim, dim):
        raise ValueError(f"add_rotation: expected a ({dim}, {dim}) matrix, got {r.shape}")
    if not np.allclose(r.T @ r, np.eye(dim), atol=1e-4):
        raise ValueError("add_rotation: the matrix is not orthogonal")
    dense = models.Dense(
        dim,
        dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        init_weight=torch.from_numpy(np.ascontiguousarray(r.T)),
    )
    names = [type(m).__name__ for m in model]
    at = names.index("Normalize") if "Normalize" in names else len(names)
    model.insert(at, dense.to(model.device))
    return model
