"""Build the `tatqa` dataset: financial-report question -> table or paragraph retrieval.

Source: TAT-QA (Zhu et al., ACL 2021), https://github.com/NExTplusplus/TAT-QA @ COMMIT,
files dataset_raw/tatqa_dataset_dev.json and dataset_raw/tatqa_dataset_test_gold.json
(the train file is over the size the snapshot tool carries and is not used). Data
licence CC BY 4.0 (README), code MIT. Each context is one table from a company's annual
report plus its neighbouring paragraphs; the questions were written by annotators with
finance background.
Corpus = every table (cells of a row joined with " | ", rows with newlines, empty cells
dropped) and every paragraph of both files; identical texts are one document.
Query = the question; qrels (score 1) follow TAT-QA's own evidence: answer_from "table"
-> the table, "text" -> its rel_paragraphs, "table-text" -> the table and its
rel_paragraphs. A question text that occurs more than once is dropped, and so is one
with no evidence left.
Split: train = TAT-QA dev (all questions); test = TAT-QA test_gold, contexts shuffled with
random.Random(SEED) and taken until >= TEST_Q questions; the other test contexts'
questions are not used (their tables and paragraphs stay in the corpus).

Usage: python build_tatqa.py [--git-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from beir_io import print_stats, write_beir  # noqa: E402

COMMIT = "870accc41953dcde885aabeb963d94aabdc0fbc3"
FILES = {
    "train": "dataset_raw/tatqa_dataset_dev.json",
    "test": "dataset_raw/tatqa_dataset_test_gold.json",
}
SEED = 18
TEST_Q = 1000


def load(git_dir: str, path: str) -> list:
    blob = subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{COMMIT}:{path}"], check=True, capture_output=True
    ).stdout
    return json.loads(blob)


def table_text(rows: list[list[str]]) -> str:
    out = []
    for r in rows:
        cells = [re.sub(r"\s+", " ", c).strip() for c in r]
        cells = [c for c in cells if c]
        if cells:
            out.append(" | ".join(cells))
    return "\n".join(out)


def build(git_dir: str, out: Path) -> dict:
    corpus, by_text = [], {}

    def doc(text: str, key: str) -> str:
        if text not in by_text:
            by_text[text] = key
            corpus.append({"_id": key, "title": "", "text": text})
        return by_text[text]

    contexts = {}
    for split, path in FILES.items():
        contexts[split] = []
        for c in load(git_dir, path):
            tid = doc(table_text(c["table"]["table"]), "t-" + c["table"]["uid"])
            para = {
                str(p["order"]): doc(re.sub(r"\s+", " ", p["text"]).strip(), "p-" + p["uid"])
                for p in c["paragraphs"]
                if p["text"].strip()
            }
            qs = []
            for q in c["questions"]:
                rel = [] if q["answer_from"] == "text" else [tid]
                if q["answer_from"] in ("text", "table-text"):
                    rel += [para[o] for o in map(str, q["rel_paragraphs"]) if o in para]
                qs.append(
                    (q["uid"], re.sub(r"\s+", " ", q["question"]).strip(), list(dict.fromkeys(rel)))
                )
            contexts[split].append(qs)
    freq: dict[str, int] = {}
    for split in contexts:
        for qs in contexts[split]:
            for _, t, _ in qs:
                freq[t.lower()] = freq.get(t.lower(), 0) + 1
    dropped = sum(
        1 for s in contexts for qs in contexts[s] for _, t, r in qs if freq[t.lower()] > 1 or not r
    )
    order = list(range(len(contexts["test"])))
    random.Random(SEED).shuffle(order)
    picked, n = [], 0
    for i in order:
        if n >= TEST_Q:
            break
        picked.append(contexts["test"][i])
        n += sum(1 for _, t, r in contexts["test"][i] if freq[t.lower()] == 1 and r)
    queries, qrels = [], {"train": [], "test": []}
    for split, ctxs in (("train", contexts["train"]), ("test", picked)):
        for qs in ctxs:
            for uid, text, rel in qs:
                if freq[text.lower()] > 1 or not rel:
                    continue
                queries.append({"_id": uid, "text": text})
                qrels[split] += [(uid, d, 1) for d in rel]
    print(
        f"contexts dev {len(contexts['train'])}, test_gold {len(contexts['test'])} "
        f"(test contexts used {len(picked)}); questions dropped (duplicate text or no evidence) {dropped}"
    )
    return write_beir(out, corpus, queries, qrels)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--git-dir", default="/work/.mirror/NExTplusplus+TAT-QA/repo")
    ap.add_argument("--out", default="/work/shared/data/tatqa")
    a = ap.parse_args()
    print_stats("tatqa", build(a.git_dir, Path(a.out)))
