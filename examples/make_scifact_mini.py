"""Build ``examples/scifact-mini``: a small, deterministic, attributed subset of BEIR SciFact.

The subset is small enough to ship in the repository (about 2 MB) and to run the whole honed
pipeline on a laptop CPU, yet it keeps SciFact's real structure: claims written by experts,
abstracts cited as evidence, and a corpus in which most documents are distractors.

How the subset is made (seed 0, standard library only):

1. Train query ids are the distinct query ids of ``qrels/train.tsv`` in file order (809);
   test query ids likewise from ``qrels/test.tsv`` (300). One ``random.Random(seed)`` draws
   400 train ids with ``sample``, then 100 test ids from the same generator.
2. ``qrels/{train,test}.tsv`` keep every qrels line of the selected queries, verbatim and in
   source order, under the header ``query-id\\tcorpus-id\\tscore``.
3. The corpus is every document judged in those qrels, plus distractors drawn (same generator,
   ``sample`` over the remaining ids in file order) until it holds 1,500 documents. Lines are
   copied byte for byte and the source file order is preserved.
4. ``queries.jsonl`` holds the selected queries only, verbatim, in source order.

Usage::

    python examples/make_scifact_mini.py --source ../shared/data/scifact --out examples/scifact-mini

The source files' sha256 are checked first, so a different SciFact copy fails loudly instead
of silently producing a different subset. The script prints the counts and the sha256 of each
output file (they are listed in ``examples/scifact-mini/README.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO_ROOT / "examples" / "scifact-mini"

# sha256 of the BEIR SciFact files this subset was cut from (see the README's "Source").
SOURCE_SHA256 = {
    "corpus.jsonl": "f4a47c54e01f9dfe7f0cbbcae0e1df17c5a90d6553f3a9d5b1ba32184545b3d8",
    "queries.jsonl": "21a70458954ee3ada1875570da4835dc4bf5619f2e2e38c14a665e97e9059f9d",
    "qrels/train.tsv": "ac0902d9b1cb717df182aaff1306175877fdb8f55bb5c3e8597ad694fc8e539f",
    "qrels/test.tsv": "68c0ac63f1c24b9e8ce497649694f09b2d0850bab7ec2b103cc66996f5f8b3a3",
}
QRELS_HEADER = b"query-id\tcorpus-id\tscore"
OUTPUT_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv")


@dataclass(frozen=True)
class SubsetConfig:
    """How many queries and documents to keep, and the seed that picks them.

    Attributes:
        n_train_queries: Queries sampled from the train split.
        n_test_queries: Queries sampled from the test split.
        n_docs: Corpus size: judged documents plus random distractors.
        seed: Seed of the single ``random.Random`` that makes every draw.
    """

    n_train_queries: int = 400
    n_test_queries: int = 100
    n_docs: int = 1500
    seed: int = 0


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_source(source: Path) -> None:
    """Fail unless ``source`` holds exactly the SciFact files the subset is defined on."""
    for name, expected in SOURCE_SHA256.items():
        path = source / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found; pass --source pointing at a BEIR SciFact folder "
                "(corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv)"
            )
        got = sha256_file(path)
        if got != expected:
            raise ValueError(
                f"{path}: sha256 is {got}, expected {expected}; this script reproduces the "
                "subset only from the BEIR SciFact release described in the README"
            )


def read_qrels_lines(path: Path) -> list[tuple[str, bytes]]:
    """Return ``(query_id, raw_line)`` for each data line of a qrels TSV, in file order."""
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines or lines[0].rstrip(b"\r\n") != QRELS_HEADER:
        raise ValueError(f"{path}:1: expected header {QRELS_HEADER!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip(b"\r\n").split(b"\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 3 tab-separated fields, got {fields!r}")
        rows.append((fields[0].decode(), line))
    return rows


def read_jsonl_lines(path: Path) -> list[tuple[str, bytes]]:
    """Return ``(_id, raw_line)`` for each line of a BEIR JSONL file, in file order."""
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        try:
            rows.append((str(json.loads(line)["_id"]), line))
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: not a JSON object with an '_id' ({exc})") from exc
    return rows


def distinct_in_order(ids: list[str]) -> list[str]:
    """Return ``ids`` without repeats, keeping first occurrences in order."""
    return list(dict.fromkeys(ids))


def build_subset(source: Path, config: SubsetConfig) -> dict[str, bytes]:
    """Select the subset and return the bytes of each output file, keyed by relative path."""
    rng = random.Random(config.seed)
    train = read_qrels_lines(source / "qrels" / "train.tsv")
    test = read_qrels_lines(source / "qrels" / "test.tsv")
    train_qids = set(rng.sample(distinct_in_order([q for q, _ in train]), config.n_train_queries))
    test_qids = set(rng.sample(distinct_in_order([q for q, _ in test]), config.n_test_queries))
    train_keep = [line for qid, line in train if qid in train_qids]
    test_keep = [line for qid, line in test if qid in test_qids]

    judged = {line.split(b"\t")[1].decode() for line in train_keep + test_keep}
    corpus = read_jsonl_lines(source / "corpus.jsonl")
    remaining = [doc_id for doc_id, _ in corpus if doc_id not in judged]
    n_distractors = config.n_docs - len(judged)
    if n_distractors < 0:
        raise ValueError(
            f"n_docs={config.n_docs} is smaller than the {len(judged)} judged documents; "
            "raise n_docs or select fewer queries"
        )
    keep_docs = judged | set(rng.sample(remaining, n_distractors))

    queries = read_jsonl_lines(source / "queries.jsonl")
    keep_qids = train_qids | test_qids
    header = QRELS_HEADER + b"\n"
    return {
        "corpus.jsonl": b"".join(line for doc_id, line in corpus if doc_id in keep_docs),
        "queries.jsonl": b"".join(line for qid, line in queries if qid in keep_qids),
        "qrels/train.tsv": header + b"".join(train_keep),
        "qrels/test.tsv": header + b"".join(test_keep),
    }


def write_subset(files: dict[str, bytes], out: Path) -> None:
    """Write the subset's files under ``out`` (overwriting them)."""
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def summarize(out: Path) -> list[str]:
    """Return printable lines with the subset's counts and each file's sha256."""
    train = read_qrels_lines(out / "qrels" / "train.tsv")
    test = read_qrels_lines(out / "qrels" / "test.tsv")
    n_docs = len(read_jsonl_lines(out / "corpus.jsonl"))
    n_queries = len(read_jsonl_lines(out / "queries.jsonl"))
    n_judged = len({line.split(b"\t")[1] for _, line in train + test})
    lines = [
        f"corpus: {n_docs} documents ({n_judged} judged, {n_docs - n_judged} distractors)",
        f"queries: {n_queries}",
        f"train: {len({q for q, _ in train})} queries, {len(train)} qrels",
        f"test: {len({q for q, _ in test})} queries, {len(test)} qrels",
    ]
    lines += [f"sha256 {sha256_file(out / name)}  {name}" for name in OUTPUT_FILES]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="BEIR SciFact folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    try:
        verify_source(args.source)
        write_subset(build_subset(args.source, SubsetConfig()), args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    for line in summarize(args.out):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
