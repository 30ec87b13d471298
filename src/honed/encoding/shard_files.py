"""The files of an embedding-cache shard: ``.npy`` headers read without the data, atomic saves.

Helpers of :mod:`honed.encoding.disk_cache`: a shard's files are written under temporary names
and renamed into place, and the sha256 of the bytes written is recorded beside them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from honed.files import sha256_file

__all__ = ["npy_shape", "save_atomic", "save_tmp"]


def npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, expected file size) read from an ``.npy`` header, without the data."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        offset = handle.tell()
    return tuple(shape), np.dtype(dtype), offset + int(np.prod(shape)) * np.dtype(dtype).itemsize


def save_tmp(path: Path, content: np.ndarray | bytes) -> Path:
    """Write ``content`` (an array as .npy, or bytes) to a temporary name beside ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                np.save(handle, content, allow_pickle=False)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def save_atomic(path: Path, array: np.ndarray) -> str:
    """``np.save`` to a temporary name, then rename; returns the sha256 of the bytes written."""
    tmp = save_tmp(path, array)
    try:
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest
