"""Build the `django_code` dataset: code search in one codebase (docstring summary -> function).

Source: the Django wheel from PyPI, Django==5.1.4 (BSD-3-Clause), file
Django-5.1.4-py3-none-any.whl (sha256 WHEEL_SHA256). Like CodeSearchNet: each function
or method of a module (top level, or in a class at any depth; not functions nested in
functions) with a docstring gives one pair. Query = the docstring's first paragraph
(whitespace collapsed), written by the Django developers. Document = the function's
source (decorators and `def` line included) with the docstring statement removed,
dedented, cut at MAX_CHARS characters; title = the dotted path
(module.Class.method).
Kept when: the summary has >= 3 words; the function name does not start with "test";
the body without the docstring is not only pass / ... / raise NotImplementedError;
the file is not a migration, test or locale file. A summary whose normalised text occurs
more than once ("Return the string representation...", copied docstrings) is ambiguous
and not used as a query, but its function stays in the corpus. Identical code texts
are kept once (the first, by path). Split by module file, so a class's methods are
never on both sides: files shuffled with random.Random(SEED); files go to test until it
has >= TEST_Q queries, the rest to train.

Usage: python build_django_code.py [--wheel PATH] [--out DIR]
(without --wheel: `pip download Django==5.1.4 --no-deps` into a temporary folder.)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from beir_io import print_stats, write_beir  # noqa: E402

PACKAGE = "Django==5.1.4"
WHEEL = "Django-5.1.4-py3-none-any.whl"
WHEEL_SHA256 = "236e023f021f5ce7dee5779de7b286565fdea5f4ab86bae5338e3f7b69896cf0"
SEED = 18
TEST_Q = 500
MAX_CHARS = 3000


def fetch_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), PACKAGE],
        check=True,
    )
    return dest / WHEEL


def trivial(body: list[ast.stmt]) -> bool:
    for s in body:
        if isinstance(s, ast.Pass):
            continue
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
            continue
        if (
            isinstance(s, ast.Raise)
            and s.exc is not None
            and "NotImplementedError" in ast.dump(s.exc)
        ):
            continue
        return False
    return True


def functions(tree: ast.Module):
    """(qualname, node) for module functions and methods of (nested) classes."""

    def walk(nodes, prefix):
        for n in nodes:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + n.name, n
            elif isinstance(n, ast.ClassDef):
                yield from walk(n.body, prefix + n.name + ".")

    yield from walk(tree.body, "")


def code_without_docstring(lines: list[str], node) -> str:
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    doc = node.body[0]
    keep = lines[start : doc.lineno - 1] + lines[doc.end_lineno : node.end_lineno]
    # a docstring on the def line itself (def f(): "doc") would take the def with it
    code = textwrap.dedent("\n".join(keep)).strip("\n")
    return code[:MAX_CHARS]


def build(wheel: Path, out: Path) -> dict:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if WHEEL_SHA256:
        assert digest == WHEEL_SHA256, f"wheel sha256 {digest} != {WHEEL_SHA256}"
    print(f"wheel {wheel.name} sha256 {digest}")
    z = zipfile.ZipFile(wheel)
    items = []  # (file, qualname, summary, code)
    for name in sorted(z.namelist()):
        if (
            not name.endswith(".py")
            or "/migrations/" in name
            or "/tests/" in name
            or "/locale/" in name
            or "/conf/app_template/" in name
            or "/conf/project_template/" in name
        ):
            continue
        src = z.read(name).decode("utf-8")
        tree = ast.parse(src)
        lines = src.splitlines()
        module = name[:-3].replace("/", ".").removesuffix(".__init__")
        for qual, node in functions(tree):
            doc = ast.get_docstring(node)
            if not doc or node.name.startswith("test") or trivial(node.body[1:]):
                continue
            if node.body[0].lineno == node.lineno:
                continue
            summary = re.sub(r"\s+", " ", doc.strip().split("\n\n")[0]).strip()
            if len(summary.split()) < 3:
                continue
            items.append((name, f"{module}.{qual}", summary, code_without_docstring(lines, node)))
    corpus, seen_code, kept = [], {}, []
    for f, path, summary, code in items:
        if code in seen_code:
            did = seen_code[code]
        else:
            did = seen_code[code] = f"d{len(corpus)}"
            corpus.append({"_id": did, "title": path, "text": code})
        kept.append((f, path, summary, did))
    norm = lambda t: re.sub(r"\W+", " ", t.lower()).strip()  # noqa: E731
    freq: dict[str, int] = {}
    for _, _, s, _ in kept:
        freq[norm(s)] = freq.get(norm(s), 0) + 1
    by_file: dict[str, list] = {}
    for f, path, s, did in kept:
        if freq[norm(s)] == 1:
            by_file.setdefault(f, []).append((path, s, did))
    order = sorted(by_file)
    random.Random(SEED).shuffle(order)
    queries, qrels, n_test = [], {"train": [], "test": []}, 0
    for f in order:
        split = "test" if n_test < TEST_Q else "train"
        for _path, s, did in by_file[f]:
            qid = f"q{len(queries)}"
            queries.append({"_id": qid, "text": s})
            qrels[split].append((qid, did, 1))
            n_test += split == "test"
    print(
        f"functions kept {len(items)}, unique code docs {len(corpus)}, "
        f"ambiguous summaries dropped {len(kept) - len(queries)}, files with queries {len(by_file)}"
    )
    return write_beir(out, corpus, queries, qrels)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--out", default="/work/shared/data/django_code")
    a = ap.parse_args()
    if a.wheel is None:
        with tempfile.TemporaryDirectory() as d:
            print_stats("django_code", build(fetch_wheel(Path(d)), Path(a.out)))
    else:
        print_stats("django_code", build(a.wheel, Path(a.out)))
