"""Build the `tldr` dataset: shell-command search (English description -> command line).

Source: the tldr-pages project (https://github.com/tldr-pages/tldr), pages CC BY 4.0.
Each tldr page (`pages/<platform>/<tool>.md`) lists examples as
    - <description written by a contributor>:
    `<command line>`
Corpus = every example command line of the English `common` and `linux` pages
(title = tool name, text = the command with the {{ }} placeholder braces removed;
identical (title, text) pairs are one document). Query = the example's description
(tldr's [m]nemonic brackets and backticks removed, trailing colon dropped); qrel = the
description's own command, score 1. A description whose normalised text occurs more
than once in those pages ("Display help", alias pages' "View documentation for the
original command") is ambiguous and is not used as a query (its command stays in the
corpus). Split by page, so no tool's examples are in both splits: pages shuffled with
random.Random(SEED); pages are taken into test until it holds >= TEST_Q queries, then
into train until it holds >= TRAIN_Q; the remaining pages' queries are not used.

Usage: python build_tldr.py [--git-dir DIR] [--out DIR]
(DIR = a clone or bare mirror of tldr-pages/tldr that has COMMIT.)
"""

from __future__ import annotations

import argparse
import io
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from beir_io import print_stats, write_beir  # noqa: E402

COMMIT = "08e345f42639f67d99282813247ac670dc6e87cb"
PLATFORMS = ("common", "linux")
SEED = 18
TEST_Q = 1000
TRAIN_Q = 10000

MNEMONIC = re.compile(r"\[([A-Za-z0-9]+)\]")


def read_pages(git_dir: str) -> dict[str, str]:
    paths = [f"pages/{p}" for p in PLATFORMS]
    blob = subprocess.run(
        ["git", "--git-dir", git_dir, "archive", "--format=tar", COMMIT, *paths],
        check=True,
        capture_output=True,
    ).stdout
    pages = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith(".md"):
                pages[m.name[len("pages/") : -3]] = tar.extractfile(m).read().decode("utf-8")
    return pages


def parse(page: str) -> tuple[str, list[tuple[str, str]]]:
    lines = [ln.rstrip() for ln in page.splitlines()]
    title = next(ln[2:].strip() for ln in lines if ln.startswith("# "))
    examples, desc = [], None
    for ln in lines:
        if ln.startswith("- "):
            desc = ln[2:].strip()
        elif ln.startswith("`") and ln.endswith("`") and len(ln) > 1 and desc is not None:
            examples.append((desc, ln[1:-1]))
            desc = None
    return title, examples


def clean_desc(d: str) -> str:
    d = MNEMONIC.sub(r"\1", d).replace("`", "")
    d = re.sub(r"\s+", " ", d).strip()
    return d[:-1].rstrip() if d.endswith(":") else d


def clean_cmd(c: str) -> str:
    return re.sub(r"\s+", " ", c.replace("{{", "").replace("}}", "")).strip()


def build(git_dir: str, out: Path) -> dict:
    pages = read_pages(git_dir)
    corpus, doc_key = [], {}
    examples = []  # (page, query text, doc id)
    for page in sorted(pages):
        title, exs = parse(pages[page])
        for i, (desc, cmd) in enumerate(exs):
            key = (title, clean_cmd(cmd))
            if key not in doc_key:
                doc_key[key] = f"{page.replace('/', '.')}.{i}"
                corpus.append({"_id": doc_key[key], "title": title, "text": key[1]})
            examples.append((page, clean_desc(desc), doc_key[key]))
    norm = lambda t: re.sub(r"\W+", " ", t.lower()).strip()  # noqa: E731
    freq: dict[str, int] = {}
    for _, q, _ in examples:
        freq[norm(q)] = freq.get(norm(q), 0) + 1
    kept = [(p, q, d) for p, q, d in examples if q and freq[norm(q)] == 1]
    by_page: dict[str, list] = {}
    for p, q, d in kept:
        by_page.setdefault(p, []).append((q, d))
    order = sorted(by_page)
    random.Random(SEED).shuffle(order)
    queries, qrels = [], {"train": [], "test": []}
    counts = {"train": 0, "test": 0}
    for page in order:
        split = (
            "test" if counts["test"] < TEST_Q else "train" if counts["train"] < TRAIN_Q else None
        )
        if split is None:
            break
        for j, (q, d) in enumerate(by_page[page]):
            qid = f"q.{page.replace('/', '.')}.{j}"
            queries.append({"_id": qid, "text": q})
            qrels[split].append((qid, d, 1))
            counts[split] += 1
    print(
        f"pages {len(pages)}, examples {len(examples)}, ambiguous descriptions dropped "
        f"{len(examples) - len(kept)}, pages with queries {len(by_page)}"
    )
    return write_beir(out, corpus, queries, qrels)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--git-dir", default="/work/.mirror/tldr-pages+tldr/repo")
    ap.add_argument("--out", default="/work/shared/data/tldr")
    a = ap.parse_args()
    print_stats("tldr", build(a.git_dir, Path(a.out)))
