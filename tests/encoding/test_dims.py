"""``resolve_dims``: the dims checked against the model's width before any encoding."""

from __future__ import annotations

import re

import pytest

from honed.encoding.dims import resolve_dims


def test_resolve_dims_names_the_option_and_the_width() -> None:
    assert resolve_dims(None, 384) == (384, 256, 128, 64)
    with pytest.raises(ValueError, match=re.escape(
            "dims: 512 is larger than the model's embedding width 384 (expected dims <= 384, got "
            "(512, 256)); fix: pass --dims with values up to 384, e.g. --dims 384,256,128,64")):
        resolve_dims((512, 256), 384)
    with pytest.raises(ValueError, match=re.escape("dims: expected positive integers, got (0,)")):
        resolve_dims([0], 384)  # honed evaluate --dims 0, which no TrainConfig checked
