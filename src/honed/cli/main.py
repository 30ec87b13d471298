"""The ``honed`` command: argument parsing and rendering only; the work is in the library.

Heavy imports (torch, sentence-transformers) happen inside the handlers so ``honed --help`` is
instant. Expected user errors print ``error: ...`` and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from honed.cli.data import cmd_check, cmd_diagnose
from honed.cli.evaluation import cmd_compare, cmd_evaluate
from honed.cli.index import INDEX_HANDLERS
from honed.cli.parser import build_parser, options_given
from honed.cli.run import cmd_run
from honed.cli.serve import cmd_serve
from honed.cli.training import cmd_mine, cmd_report, cmd_train
from honed.encoding.distributed import reported_by_main
from honed.index.postgres.redact import scrub
from honed.pipeline.resources import (
    ResourceError,  # no torch at import: `honed --help` stays instant
)

__all__ = ["HANDLERS", "USER_ERRORS", "build_parser", "main"]

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    ImportError,
    PermissionError,
    OSError,  # disk full, read-only folder, ...: one line naming the path (atomic writes leave no half file)
    ResourceError,  # the guard's refusal; other MemoryErrors are bugs and keep their traceback
)

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check": cmd_check,
    "evaluate": cmd_evaluate,
    "mine": cmd_mine,
    "train": cmd_train,
    "report": cmd_report,
    "diagnose": cmd_diagnose,
    "compare": cmd_compare,
    **INDEX_HANDLERS,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``honed`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "run":  # --resume applies (or refuses) only the options written
        args.given = options_given(argv)
    handler = HANDLERS[args.command]
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        hint = ""
        if args.command == "run" and (args.out or args.resume):
            launch = f"torchrun --nproc_per_node {world_size()} -m honed.cli" if world_size() > 1 else "honed"
            hint = f"; continue with: {launch} run --resume {args.resume or args.out}"
        if rank() == 0:
            print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.debug:
            raise
        if reported_by_main(err):  # under torchrun: the first process printed it
            return 1
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        # The library masks passwords already; this is the last line of defence for --store.
        print(f"error{_which_process()}: {scrub(message, getattr(args, 'store', None))}", file=sys.stderr)
        return 1


def rank() -> int:
    """This process's rank in a torchrun/accelerate launch, from the launcher's environment.

    Not ``torch.distributed``: an error or a Ctrl-C may arrive while torch is still importing.
    """
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes in the launch, from the launcher's environment (1 when not launched so)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _which_process() -> str:
    """`` (process 2 of 4)`` for an error of a process other than the first of a launch."""
    return f" (process {rank()} of {world_size()})" if rank() > 0 else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
