"""Worker of ``tests/test_commands_split.py``: :func:`honed.encoding.distributed.on_main_process` (gloo).

Usage: torchrun --nproc_per_node 2 tests/_torchrun_main.py OUT_DIR
Writes ``OUT_DIR/rank<N>.json``: what this process received from the first one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from honed.encoding.distributed import group_ready, on_main_process, process_group, rank


def _fails() -> None:
    raise ValueError("expected a thing, got another; fix: this")


def _fails_unpicklably() -> None:
    class LocalError(Exception):  # a local class cannot be pickled
        pass

    raise LocalError("cannot pickle me")


def _outcome(work: object) -> str:
    try:
        on_main_process(work)  # type: ignore[arg-type]
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return "no error"


def main(out_dir: str) -> None:
    worked: list[int] = []

    def work() -> dict[str, int]:
        worked.append(rank())
        return {"computed_by": rank()}

    report: dict[str, object] = {}
    with process_group("cpu"):
        report["result"] = on_main_process(work)
        report["error"] = _outcome(_fails)
        report["unpicklable"] = _outcome(_fails_unpicklably)
        count = torch.tensor([len(worked)])
        dist.all_reduce(count)
        report["ranks_that_worked"] = int(count.item())
    report["group_after"] = group_ready()
    Path(out_dir, f"rank{os.environ['RANK']}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
