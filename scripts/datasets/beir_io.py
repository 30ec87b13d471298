"""Shared helpers for the dataset builders: write a BEIR folder and check it.

Layout (as /work/shared/data/SOURCES.md): corpus.jsonl (_id, title, text),
queries.jsonl (_id, text; all splits), qrels/{train,test}.tsv with header
``query-id\tcorpus-id\tscore``. Uncompressed. Plain Python only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def write_beir(
    out: Path, corpus: list[dict], queries: list[dict], qrels: dict[str, list[tuple[str, str, int]]]
) -> dict:
    """Write the folder atomically (tmp dir, then rename) and return its stats."""
    check(corpus, queries, qrels)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "qrels").mkdir(parents=True)
    with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in corpus:
            f.write(
                json.dumps(
                    {"_id": d["_id"], "title": d["title"], "text": d["text"]}, ensure_ascii=False
                )
                + "\n"
            )
    with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps({"_id": q["_id"], "text": q["text"]}, ensure_ascii=False) + "\n")
    for split, rows in qrels.items():
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, did, score in rows:
                f.write(f"{qid}\t{did}\t{score}\n")
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return stats(out, corpus, queries, qrels)


def check(corpus, queries, qrels) -> None:
    doc_ids = [d["_id"] for d in corpus]
    q_ids = [q["_id"] for q in queries]
    assert len(set(doc_ids)) == len(doc_ids), "duplicate corpus ids"
    assert len(set(q_ids)) == len(q_ids), "duplicate query ids"
    bad = [i for i in doc_ids + q_ids if not i or any(c in i for c in "\t\n\r ")]
    assert not bad, f"ids with whitespace: {bad[:5]}"
    assert all(q["text"].strip() for q in queries), "empty query"
    assert all(d["text"].strip() for d in corpus), "empty document"
    docs, qs = set(doc_ids), set(q_ids)
    split_q = {}
    for split, rows in qrels.items():
        assert len(set((a, b) for a, b, _ in rows)) == len(rows), f"duplicate qrels in {split}"
        for qid, did, score in rows:
            assert qid in qs and did in docs, f"unresolved qrel {qid} {did}"
            assert isinstance(score, int) and score > 0
        split_q[split] = {r[0] for r in rows}
    assert not (split_q.get("train", set()) & split_q.get("test", set())), "query in both splits"
    used = set().union(*split_q.values())
    assert used == qs, "queries.jsonl must hold exactly the queries used in qrels"


def stats(out: Path, corpus, queries, qrels) -> dict:
    qtext = {q["_id"]: q["text"] for q in queries}
    s = {
        "corpus docs": len(corpus),
        "mean doc words": round(
            sum(len((d["title"] + " " + d["text"]).split()) for d in corpus) / len(corpus), 1
        ),
        "mean doc words (text only)": round(
            sum(len(d["text"].split()) for d in corpus) / len(corpus), 1
        ),
    }
    for split, rows in qrels.items():
        qids = {r[0] for r in rows}
        s[f"{split} queries"] = len(qids)
        s[f"{split} qrels"] = len(rows)
        s[f"{split} mean query words"] = round(
            sum(len(qtext[q].split()) for q in qids) / len(qids), 1
        )
    s["mean query words"] = round(sum(len(q["text"].split()) for q in queries) / len(queries), 1)
    s["sha256"] = {
        p: hashlib.sha256((out / p).read_bytes()).hexdigest()
        for p in ["corpus.jsonl", "queries.jsonl"] + [f"qrels/{k}.tsv" for k in qrels]
    }
    s["bytes"] = sum((out / p).stat().st_size for p in s["sha256"])
    return s


def print_stats(name: str, s: dict) -> None:
    print(f"== {name}")
    for k, v in s.items():
        if k == "sha256":
            for p, h in v.items():
                print(f"  sha256 {p} {h}")
        else:
            print(f"  {k}: {v}")
