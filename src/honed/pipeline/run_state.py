"""What the stages of one ``honed run`` share: the run folder, status.json, estimates, processes.

:class:`honed.pipeline.runner._Runner` adds the stages; this class sequences them (``execute``),
records each stage in ``status.json`` so that ``--resume`` knows where to go on, prints and
records the resource estimates, and under ``torchrun`` lets the first process alone write and
decide (:meth:`RunState._main`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from honed import __version__
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.distributed import is_main_process, log_encode, on_main_process, world_size
from honed.encoding.encoder import EmbeddingCache, resolve_device, resolve_model_name
from honed.files import write_json
from honed.pipeline.clock import StageClock
from honed.pipeline.config import Notify, RunConfig, refuse_unsplit_options
from honed.pipeline.resources import ResourceEstimate, check, peak_memory, reset_peak
from honed.pipeline.results import RunResult
from honed.pipeline.resume_changes import Change, change_record
from honed.pipeline.run_estimates import RunEstimates
from honed.pipeline.run_folder import prepare_run_dir, run_lock

__all__ = ["STAGES", "RunState"]

STAGES = ("load", "baseline", "mine", "train", "save", "evaluate", "report")
T = TypeVar("T")


class RunState:
    """One execution of ``honed run``: the stages' shared state, status.json and estimates.

    Under ``torchrun`` every process runs this same sequence: each encodes its share of every
    corpus and query encoding (the cache splits each call), training is DDP, and the first
    process alone writes files, prints, searches, mines and scores (:meth:`_main`); what the
    others need of that (the splits, the mined rows, the decisions) reaches them by broadcast,
    so every process takes the same decisions.
    """

    result: RunResult  # set by the report stage

    def __init__(
        self, config: RunConfig, say: Notify, device: str, resume: bool = False
    ) -> None:
        self.config, self.resume, self.device = config, resume, device
        self.main = is_main_process()
        self.say: Notify = say if self.main else (lambda message: None)
        self.completed: list[str] = []
        self.cache = EmbeddingCache(
            batch_size=config.encode_batch_size,
            precision=config.precision,
            directory=resolve_cache_dir(config.cache_dir),  # base model encodings, across runs
            # Every process makes the same encode calls, so under torchrun each one is split,
            # however small; in one process this changes nothing.
            split_min_texts=1,
        )
        self.runs: dict[str, Any] = {}  # searches and scores: the first process's alone
        self.resources: dict[str, dict[str, Any]] = {}  # stage -> memory estimate, then actual
        self.costs: RunEstimates | None = None  # time per stage: estimate, corrected, actual
        self.budget: dict[str, Any] | None = None  # the --time-budget plan
        self._status: dict[str, Any] = {"completed": []}  # the last recorded stages, estimates
        self.changes: tuple[Change, ...] = ()  # settings a resume changed (resume_changes)
        self._watch: tuple[bool, float] = (False, 0.0)  # (peak window opened, start)

    # --- sequencing ---------------------------------------------------------------------------

    def execute(self) -> RunResult:
        # Held to the end by the process that writes: a second run or resume is refused.
        with run_lock(self.config.out) if self.main else nullcontext():
            self._open_folder()
            with self.clock.heartbeat(self._beat):
                try:
                    for stage in STAGES:
                        self.clock.start(stage)
                        getattr(self, f"stage_{stage}")()
                        self.clock.stop(stage)  # also self.timings[stage]
                        if self.costs is not None:
                            self.costs.actual(stage, self.timings[stage])
                        self.completed.append(stage)
                        self._write_status()
                except BaseException:  # Ctrl-C included: the time spent so far is recorded
                    with contextlib.suppress(OSError):
                        self._beat()
                    raise
            result = replace(self.result, timings=self.timings)
            self._main(lambda: write_json(self.out / "report.json", asdict(result)))
        return result

    @contextmanager
    def _logged(self, label: str) -> Iterator[None]:
        """What this process encoded in the block, to ``$HONED_LOG_ENCODE`` when it is set."""
        before = asdict(self.cache.stats)
        yield
        log_encode(label, {k: v - before[k] for k, v in asdict(self.cache.stats).items()})

    def _main(self, work: Callable[[], T]) -> T:
        """``work`` (writing, searching, scoring) done by the first process; its result for all.

        A no-op wrapper in one process. ``work`` may set attributes: those exist in the first
        process only, so only other ``_main`` work may read them.
        """
        return on_main_process(work)

    def _open_folder(self) -> None:
        refuse_unsplit_options(self.config)
        self.out = Path(self.config.out)
        if self.resume:
            status = self.out / "status.json"
            self.previous = self._main(
                lambda: json.loads(status.read_text(encoding="utf-8")) if status.is_file() else {}
            )
            done = ", ".join(self.previous.get("completed", [])) or "nothing"
            self.say(f"resuming {self.out} (completed before: {done})")
        else:
            self._main(lambda: prepare_run_dir(self.config.out, self.config.overwrite))
            self.previous = {}
        if world_size() > 1:
            self.say(
                f"{world_size()} processes: each encodes its share, training is DDP "
                f"({self.config.training.batch_size} rows per process, "
                f"{self.config.training.batch_size * world_size()} per step); the first one writes"
            )
        self.base_path = resolve_model_name(self.config.base_model)
        self.resolved = {
            **self.config.to_dict(),
            "honed_version": __version__,
            "device": resolve_device(self.config.device),  # not cuda:RANK: a resume re-pins it
            "base_model_path": self.base_path,
            "embedding_cache_dir": str(self.cache.directory) if self.cache.directory else None,
        }
        self.clock = StageClock(self.previous)  # seconds per stage, earlier sessions included
        self.timings = self.clock.timings
        if not self.resume:
            self._main(lambda: write_json(self.out / "config.json", self.resolved))
        else:
            self._main(self._record_changes)

    def _record_changes(self) -> None:
        """Under the run's lock: an applied change, and the history of them, in config.json."""
        before = json.loads((self.out / "config.json").read_text(encoding="utf-8"))
        history = before.get("resume_changes", [])
        if self.changes:
            self.say("resume: applying " + ", ".join(c.describe() for c in self.changes))
            history = [*history, change_record(self.changes)]
        if history:
            self.resolved["resume_changes"] = history
        if self.changes:
            write_json(self.out / "config.json", self.resolved)

    def _write_status(self) -> None:
        # A copy: the heartbeat thread writes it again while the stages change the originals.
        self._status = copy.deepcopy(
            {
                "completed": self.completed,
                "estimates": self.costs.records if self.costs is not None else {},
                "resources": self.resources,
                "budget": self.budget,
            }
        )
        self._beat()

    def _beat(self) -> None:
        """status.json: the last recorded stages and estimates, the clock as of now.

        Written by the first process only; no broadcast: a failed write ends that process,
        and torchrun the others.
        """
        if not self.main:
            return
        with self.clock.lock:
            write_json(self.out / "status.json", {**self._status, **self.clock.record()})

    def _guard(self, estimate: ResourceEstimate) -> None:
        """Print and record the estimate, refuse what cannot fit, and open the peak window.

        The time printed is the cost model's (:mod:`.run_estimates`), made before the baseline.
        """
        record = self.costs.records.get(estimate.stage) if self.costs is not None else None
        if record is not None:
            estimate = replace(estimate, seconds=record["estimate_seconds"] or 0.0)
        self.say(estimate.sentence())
        self.resources[estimate.stage] = estimate.to_dict()
        self._write_status()  # recorded before the work: a killed stage still leaves it
        check(estimate)
        self._watch = (reset_peak(estimate.device), time.perf_counter())

    def _record_actual(self, stage: str) -> None:
        """Add the stage's measured time and peak memory next to its estimate."""
        entry, (window, start) = self.resources[stage], self._watch
        entry["actual_seconds"] = round(time.perf_counter() - start, 2)
        entry["actual_peak_bytes"] = peak_memory(entry["device"]) if window else None
