"""Seconds spent per stage of ``honed run``, across the run and its resumes, kept in status.json.

A resumed run does its stages again (load, baseline and mining from the cache, training from
the last checkpoint), so the time a stage cost is what every session spent in it, the
interrupted one included: a training stage killed after 17 minutes and finished in 2 more cost
19. :class:`StageClock` adds this session's seconds to those recorded by the earlier ones.

What status.json holds (besides ``completed`` and the estimates)::

    "timings":  {stage: seconds}   the completed stages, all sessions together
    "spent":    {stage: seconds}   every stage begun, the running one up to now
    "running":  {"stage": s, "seconds": x}   the stage under way (null between stages)
    "sessions": n                  1 for a run never resumed

While a stage runs, :meth:`StageClock.heartbeat` rewrites status.json every
:data:`HEARTBEAT_SECONDS` from a background thread, so a run killed with SIGKILL loses at most
that much of its record; Ctrl-C (KeyboardInterrupt) records the exact time before it leaves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["HEARTBEAT_SECONDS", "StageClock"]

HEARTBEAT_SECONDS = 15.0


class StageClock:
    """Per-stage seconds of this session added to the earlier sessions' (from status.json).

    Args:
        previous: the status.json of the interrupted session ({} for a new run). A status.json
            written before ``spent`` existed counts its ``timings``.

    Example:
        >>> clock = StageClock({"spent": {"train": 60.0}, "sessions": 1})
        >>> clock.start("train"); clock.stop("train") >= 60.0
        True
    """

    def __init__(self, previous: Mapping[str, Any]) -> None:
        earlier = previous.get("spent") or previous.get("timings") or {}
        self.earlier = {str(k): float(v) for k, v in earlier.items()}
        self.sessions = int(previous.get("sessions", 1 if previous else 0)) + 1
        self.timings: dict[str, float] = {}  # completed stages, all sessions
        self._running: tuple[str, float] | None = None  # (stage, perf_counter at its start)
        self.lock = threading.Lock()  # status.json is written from two threads

    def earlier_of(self, stage: str) -> float:
        """Seconds the earlier sessions spent in ``stage`` (0.0 in a run never resumed)."""
        return self.earlier.get(stage, 0.0)

    def start(self, stage: str) -> None:
        with self.lock:
            self._running = (stage, time.perf_counter())

    def stop(self, stage: str) -> float:
        """End ``stage``; returns its seconds over all sessions."""
        with self.lock:
            self.timings[stage] = round(self._spent_on(stage), 2)
            self._running = None
            return self.timings[stage]

    def _spent_on(self, stage: str) -> float:
        now = 0.0
        if self._running is not None and self._running[0] == stage:
            now = time.perf_counter() - self._running[1]
        return self.earlier.get(stage, 0.0) + now

    def record(self) -> dict[str, Any]:
        """The clock's part of status.json (call with :attr:`lock` held)."""
        spent = {**self.earlier, **self.timings}
        running = None
        if self._running is not None:
            stage = self._running[0]
            spent[stage] = round(self._spent_on(stage), 2)
            running = {"stage": stage, "seconds": spent[stage]}
        return {
            "timings": dict(self.timings),
            "spent": spent,
            "running": running,
            "sessions": self.sessions,
        }

    @contextlib.contextmanager
    def heartbeat(
        self, write: Callable[[], None], every: float = HEARTBEAT_SECONDS
    ) -> Iterator[None]:
        """Call ``write`` every ``every`` seconds from a daemon thread while the block runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every):
                with contextlib.suppress(OSError):  # a full disk costs the record, not the run
                    write()

        thread = threading.Thread(target=beat, name="honed-status", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
