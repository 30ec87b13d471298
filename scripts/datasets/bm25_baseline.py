"""Plain-Python BM25 on a BEIR folder's test split: a difficulty marker for a new dataset.

Usage: python bm25_baseline.py /work/shared/data/tldr [more folders]
Prints nDCG@10, recall@10 and MRR@10 (k1 0.9, b 0.4, lowercased \\w+ tokens, title + text).
"""

import collections
import json
import math
import re
import sys


def tok(s):
    return re.findall(r"\w+", s.lower())


def run(folder, k1=0.9, b=0.4):
    docs = [json.loads(line) for line in open(f"{folder}/corpus.jsonl", encoding="utf-8")]
    qs = {
        x["_id"]: x["text"]
        for x in map(json.loads, open(f"{folder}/queries.jsonl", encoding="utf-8"))
    }
    rel = collections.defaultdict(set)
    for line in open(f"{folder}/qrels/test.tsv", encoding="utf-8").read().split("\n")[1:]:
        if line:
            q, d, _ = line.split("\t")
            rel[q].add(d)
    inv, lens = collections.defaultdict(list), []
    for i, x in enumerate(docs):
        c = collections.Counter(tok(x["title"] + " " + x["text"]))
        lens.append(sum(c.values()))
        for t, f in c.items():
            inv[t].append((i, f))
    n, avg = len(docs), sum(lens) / len(docs)
    nd = r10 = mrr = 0.0
    for q, rels in rel.items():
        sc = collections.defaultdict(float)
        for t in set(tok(qs[q])):
            post = inv.get(t, [])
            idf = math.log(1 + (n - len(post) + 0.5) / (len(post) + 0.5))
            for i, f in post:
                sc[i] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lens[i] / avg))
        top = [docs[i]["_id"] for i, _ in sorted(sc.items(), key=lambda x: -x[1])[:10]]
        r10 += len(set(top) & rels) / len(rels)
        dcg = sum(1 / math.log2(k + 2) for k, d in enumerate(top) if d in rels)
        nd += dcg / sum(1 / math.log2(k + 2) for k in range(min(10, len(rels))))
        mrr += next((1 / (k + 1) for k, d in enumerate(top) if d in rels), 0.0)
    m = len(rel)
    print(
        f"{folder}: BM25 test nDCG@10 {nd / m:.3f} recall@10 {r10 / m:.3f} MRR@10 {mrr / m:.3f} (n={m})"
    )


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        run(folder)
