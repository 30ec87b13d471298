"""Launching ``torchrun`` from a test: a free port, and a run that cannot hang the suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(
    args: list[str], env: dict[str, str], timeout: int
) -> subprocess.CompletedProcess[str]:
    """Run torchrun in its own session so that a timeout kills its worker processes too."""
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    proc = subprocess.Popen(
        cmd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s; output:\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def gloo_env(**extra: str) -> dict[str, str]:
    """The environment of a CPU (gloo) launch in a test: offline, one thread, no GPU."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }
