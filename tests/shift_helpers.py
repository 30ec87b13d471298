"""A synthetic BEIR dataset with (or without) a templated-train / free-form-test shift.

Built like the consumer-health case of issue #18: the training questions are templates ("What
are the symptoms of malaria ?", about 7 words) and the test questions are long free-form
messages (about 30 words) about the same documents. With ``shifted=False`` every split draws
from the same mix of both kinds, so no shift check should fire.

Every word is in the tiny test BERT's vocabulary (``tests/data/vocab.txt``) or is a common word
it splits into pieces; nothing is downloaded. Run it to write a folder for a manual try::

    python tests/shift_helpers.py /tmp/shifted          # templated train, free-form test
    python tests/shift_helpers.py /tmp/same --same      # one population
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

DISEASES = (
    "malaria", "dengue", "influenza", "diabetes", "asthma", "anemia", "hypertension",
    "dementia", "depression", "leukemia", "fibrosis", "hepatitis",
)  # fmt: skip
ASPECTS = {
    "symptoms": ("What are the symptoms of {d} ?", "What are the signs of {d} ?"),
    "causes": ("What causes {d} ?", "What are the causes of {d} ?"),
    "treatment": ("How is {d} treated ?", "What are the treatments for {d} ?"),
    "diagnosis": ("How is {d} diagnosed ?", "What tests diagnose {d} ?"),
    "prevention": ("How can {d} be prevented ?", "Who is at risk for {d} ?"),
}
FILLER = (
    "my", "child", "mother", "father", "has", "had", "for", "five", "days", "and", "now", "she",
    "he", "feels", "tired", "every", "morning", "after", "work", "we", "live", "near", "the",
    "city", "hospital", "doctor", "said", "it", "might", "be", "but", "not", "sure", "so", "i",
    "want", "to", "know", "more", "about", "what", "should", "do", "next", "week", "because",
    "there", "is", "also", "pain", "in", "head", "since", "last", "night", "please", "help",
    "me", "understand", "this", "old", "year", "house", "again", "worried", "family", "history",
)  # fmt: skip


def _free_form(rng: random.Random, disease: str, aspect: str) -> str:
    """A long consumer message: filler around the disease and the aspect, about 30 words."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(24, 34))]
    words.insert(rng.randint(4, len(words)), disease)
    words.insert(rng.randint(4, len(words)), aspect)
    return " ".join(words).capitalize() + " ?"


def _templated(rng: random.Random, disease: str, aspect: str) -> str:
    return rng.choice(ASPECTS[aspect]).format(d=disease)


def write_shift_beir(folder: Path, shifted: bool = True, seed: int = 0,
                     train_per_doc: int = 4, test_per_doc: int = 1) -> Path:
    """Write the dataset into ``folder``: one document per (disease, aspect), 60 in all.

    Args:
        folder: created if missing.
        shifted: templated training questions and free-form test messages; False draws every
            query from the same 50/50 mix of both kinds.
        seed: the random choices.
        train_per_doc, test_per_doc: queries per document in each split.
    """
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs, queries, qrels = [], [], {"train": [], "test": []}
    for disease in DISEASES:
        for aspect in ASPECTS:
            doc_id = f"{disease}-{aspect}"
            docs.append({"_id": doc_id, "title": f"{disease} {aspect}",
                         "text": f"The {aspect} of {disease} in adults and children: "
                                 f"what the doctor looks for, common {aspect} and care."})
            for split, n in (("train", train_per_doc), ("test", test_per_doc)):
                for i in range(n):
                    free = (split == "test") if shifted else rng.random() < 0.5
                    text = (_free_form if free else _templated)(rng, disease, aspect)
                    qid = f"{split}-{doc_id}-{i}"
                    queries.append({"_id": qid, "text": text})
                    qrels[split].append((qid, doc_id))
    for name, rows in (("corpus", docs), ("queries", queries)):
        lines = (json.dumps(row) for row in rows)
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for split, pairs in qrels.items():
        tsv = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, d in pairs)]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8")
    return folder


def write_user_queries(path: Path, seed: int = 1, n: int = 40) -> Path:
    """``n`` free-form user messages, one per line (an unlabelled ``--queries FILE``)."""
    rng = random.Random(seed)
    lines = [_free_form(rng, rng.choice(DISEASES), rng.choice(list(ASPECTS))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    out = write_shift_beir(Path(sys.argv[1]), shifted="--same" not in sys.argv)
    print(f"wrote {out}")
