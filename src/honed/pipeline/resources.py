"""Resource guard: estimate a stage's time and peak memory before it runs; refuse what cannot fit.

The estimators themselves (a probe step, the arithmetic) are in :mod:`honed.pipeline.estimates`;
this module holds the estimate type, the refusal and the memory readings.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    pass

__all__ = [
    "ResourceError",
    "ResourceEstimate",
    "available_memory",
    "check",
    "peak_memory",
    "process_memory",
    "reset_peak",
]

MARGIN = 0.9  # refuse above 90% of the available memory: the estimate is not exact
_STAGE_NAMES = {"train": "training", "mine": "mining"}
_CGROUP = Path("/sys/fs/cgroup")


class ResourceError(MemoryError):
    """A stage would need more memory than the machine has (one line: expected / got / fix)."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Time and peak memory a stage is expected to take, and the memory available for it.

    Bytes are resident memory on CPU, allocated memory on CUDA. ``available_bytes`` is what the
    process can hold at most now (held + free), None where unknown: then nothing is refused.
    """

    stage: str  # "train" or "mine"
    seconds: float
    peak_bytes: int
    available_bytes: int | None
    detail: str  # one line: how it was estimated
    load: str = ""  # what drives the peak, for the refusal message
    fix: str = ""  # how to lower it, for the refusal message
    device: str = "cpu"
    parts: dict[str, int] = field(default_factory=dict)  # the peak's terms, in bytes

    def __post_init__(self) -> None:
        if self.stage not in _STAGE_NAMES:
            raise ValueError(f"stage: expected 'train' or 'mine', got {self.stage!r}")
        if self.seconds < 0 or self.peak_bytes < 0:
            raise ValueError(
                f"seconds and peak_bytes: expected >= 0, got {self.seconds} and {self.peak_bytes}"
            )

    def fits(self, margin: float = MARGIN) -> bool:
        """Whether the peak stays within ``margin`` x the available memory (True when unknown)."""
        return self.available_bytes is None or self.peak_bytes <= margin * self.available_bytes

    def sentence(self) -> str:
        """One line, e.g. "training: ~14 min, peak ~3.1 GiB of 21.5 GiB available"."""
        name, peak = _STAGE_NAMES[self.stage], format_size(self.peak_bytes)
        head = f"{name}: ~{_duration(self.seconds)}, peak ~{peak}"
        if self.available_bytes is None:
            return f"{head} (available memory unknown on this platform: not checked)"
        return f"{head} of {format_size(self.available_bytes)} available{_on(self.device)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the sentence (what ``status.json`` records)."""
        return {**asdict(self), "sentence": self.sentence()}


def format_size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _on(device: str) -> str:
    return f" on {device}" if device.startswith("cuda") else ""


def check(estimate: ResourceEstimate, margin: float = MARGIN) -> None:
    """Refuse a stage whose estimated peak exceeds ``margin`` x the available memory.

    Raises:
        ValueError: ``margin`` is not in (0, 1].
        ResourceError: the estimate does not fit; the message gives both numbers and a fix.

    Example:
        >>> check(ResourceEstimate("mine", 1.0, 2**20, 2**30, "example"))  # fits: returns None
    """
    if not 0.0 < margin <= 1.0:
        raise ValueError(f"margin: expected a value in (0, 1], got {margin}")
    available = estimate.available_bytes
    if available is None or estimate.peak_bytes <= margin * available:
        return
    load = f" ({estimate.load})" if estimate.load else ""
    raise ResourceError(
        f"{_STAGE_NAMES[estimate.stage]} needs ~{format_size(estimate.peak_bytes)} at peak{load} "
        f"but {format_size(available)} is available{_on(estimate.device)} and honed uses at most "
        f"{margin:.0%} of it; fix: {estimate.fix or 'free memory or use a machine with more'}"
    )


# --- memory readers: resident memory on CPU (Linux /proc, else psutil), allocator on CUDA -----


def _proc_bytes(path: str, key: str) -> int | None:
    """The ``key:  N kB`` line of a ``/proc`` file in bytes; None without ``/proc``."""
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    return next((int(ln.split()[1]) * 1024 for ln in lines if ln.startswith(f"{key}:")), None)


def _psutil() -> Any:
    with contextlib.suppress(ImportError):
        import psutil  # type: ignore[import-untyped]

        return psutil
    return None


def process_memory(device: str = "cpu") -> int | None:
    """Bytes this process holds now: resident memory, or allocated memory on a CUDA device."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.memory_allocated(device))
    rss = _proc_bytes("/proc/self/status", "VmRSS")
    psutil = _psutil() if rss is None else None
    return int(psutil.Process().memory_info().rss) if psutil is not None else rss


def _cgroup_free() -> int | None:
    """What this process's cgroup may still use (v2, then v1); None when it has no limit.

    In a container ``/proc/meminfo`` shows the host, but the cgroup limit is what the
    out-of-memory killer enforces. Inactive file cache is reclaimable, so it counts as free.
    """
    for limit_file, usage_file, stat_file, key in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
         "total_inactive_file"),
    ):  # fmt: skip
        try:
            limit = (_CGROUP / limit_file).read_text(encoding="ascii").strip()
            usage = int((_CGROUP / usage_file).read_text(encoding="ascii"))
            stat = [ln.split() for ln in (_CGROUP / stat_file).read_text("ascii").splitlines()]
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as ~2^63
            return None
        return max(0, int(limit) - usage + sum(int(s[1]) for s in stat if s[0] == key))
    return None


def available_memory(device: str = "cpu") -> int | None:
    """Bytes this process can hold at most now: what it holds plus what is free for it.

    CPU: resident memory + ``MemAvailable`` (psutil's ``available`` off Linux), capped by the
    cgroup's headroom in a container. CUDA: this process's reserved memory + the device's free
    memory. None when unknown.
    """
    if device.startswith("cuda"):
        import torch

        device_free, _ = torch.cuda.mem_get_info(device)
        return int(device_free + torch.cuda.memory_reserved(device))
    free: int | None = _proc_bytes("/proc/meminfo", "MemAvailable")
    psutil = _psutil() if free is None else None
    if psutil is not None:
        free = int(psutil.virtual_memory().available)
    held, headroom = process_memory("cpu"), _cgroup_free()
    if held is None or free is None:
        return None
    return held + (free if headroom is None else min(free, headroom))


def reset_peak(device: str = "cpu") -> bool:
    """Start a new peak-memory window (``VmHWM`` on Linux); False where that is not possible."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def peak_memory(device: str = "cpu") -> int | None:
    """Peak bytes since :func:`reset_peak` (resident on CPU, allocated on CUDA), or None."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return _proc_bytes("/proc/self/status", "VmHWM")


# --- training -------------------------------------------------------------------------------


# --- mining ---------------------------------------------------------------------------------


