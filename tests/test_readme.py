"""The README's Python examples run as printed (doctest), from the repository root.

Every ```python block of README.md is a doctest: lines that need a long run or a finished run
folder carry ``# doctest: +SKIP``; everything else is executed and its printed value compared.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _blocks() -> list[str]:
    return BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_has_python_examples() -> None:
    blocks = _blocks()
    assert blocks and all(">>>" in b for b in blocks), "write README Python examples as doctests"


@pytest.mark.parametrize("number", range(len(_blocks())))
def test_readme_python_example_runs(number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    text = _blocks()[number]
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, f"README.md python block {number + 1}", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
