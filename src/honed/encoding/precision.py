"""Devices and arithmetic: which device, and bf16 or fp32 for the model's matrix products.

``auto`` means bf16 where the hardware does it natively (CUDA with bf16, a CPU with AVX512-BF16
or AMX: oneDNN), fp32 elsewhere, where bf16 is emulated and slower. Re-exported by
:mod:`honed.encoding.encoder`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import Enum

__all__ = ["Precision", "autocast", "resolve_device", "resolve_precision"]


class Precision(str, Enum):
    """Arithmetic used for the model's matrix products."""

    AUTO = "auto"  # bf16 where the hardware does it natively, else fp32
    FP32 = "fp32"
    BF16 = "bf16"


def resolve_device(device: str | None = None) -> str:
    """Return ``device`` or, when it is None or "auto", "cuda" if available else "cpu"."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise ValueError(
            f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        )
    return str(device)


def _native_bf16(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device == "cpu":
        # oneDNN runs bf16 matmuls on AVX512-BF16 / AMX units; elsewhere bf16 is emulated and slower
        # than fp32, so "auto" must not pick it.
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: Precision | str, device: str) -> Precision:
    """Turn ``auto`` into the concrete precision for ``device``."""
    precision = Precision(precision)
    if precision is Precision.AUTO:
        return Precision.BF16 if _native_bf16(device) else Precision.FP32
    return precision


@contextlib.contextmanager
def autocast(device: str, precision: Precision | str) -> Iterator[None]:
    """Autocast to bf16 on ``device`` when ``precision`` resolves to bf16; a no-op for fp32.

    Weights stay fp32 (the optimizer needs their precision); only matmuls and attention run in
    bf16, which on this project's CPUs (AMX) is 2-3x faster at a cosine of >0.9999 to fp32.
    """
    import torch

    if resolve_precision(precision, device) is Precision.BF16:
        device_type = "cuda" if device.startswith("cuda") else "cpu"
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
    else:
        yield
