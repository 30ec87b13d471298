"""Worker of ``tests/pipeline/test_run_split.py``: ``honed run`` in which process 1 fails alone.

Usage: torchrun --nproc_per_node 2 tests/pipeline/_torchrun_run_fail.py RUN_ARGS...
Process 1 raises as training starts, while process 0 is already in DDP waiting for it: the
launch must end (torchrun stops process 0) with process 1's one-line error, not hang.
"""

from __future__ import annotations

import os
import sys

import honed.pipeline.runner as runner
from honed.cli.main import main


def _fail(*args: object, **kwargs: object) -> None:
    raise ValueError(
        "expected training to start, got a failure in this process only; fix: none (a test)"
    )


if __name__ == "__main__":
    if os.environ.get("RANK") == "1":
        runner.train_model = _fail  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
