"""Self-supervised corpus pairs: cutting, sampling, mining, and the `honed run` option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from honed.data.beir import Document
from honed.mining.config import MiningConfig
from honed.mining.selfsup import corpus_pairs, mine_corpus_pairs, sentences

LONG = (
    "Vitamin D is made in the skin. It regulates calcium in the blood. "
    "Low levels are common in winter at high latitudes. Supplements raise the level within weeks."
)


def _corpus() -> dict[str, Document]:
    return {
        "a": Document("a", "Vitamin D and bone health in older adults", LONG),
        "b": Document("b", "", LONG.replace("Vitamin D", "Insulin")),  # no title: sentences only
        "c": Document("c", "Short", "Too short."),  # neither: skipped
        "d": Document("d", "Malaria prevention with treated bed nets", "Nets work. They do."),
    }


def test_sentences_split_on_end_punctuation_only_before_a_capital_or_digit() -> None:
    text = "Levels fell (p < 0.05, e.g. in winter). Then 3 groups rose! Why? Because."
    assert sentences(text) == [
        "Levels fell (p < 0.05, e.g. in winter).",
        "Then 3 groups rose!",
        "Why?",
        "Because.",
    ]


def test_pairs_cut_the_query_out_of_its_document() -> None:
    pairs = corpus_pairs(_corpus(), n=10, seed=1)
    by_doc = {p.doc_id: p for p in pairs}
    assert set(by_doc) == {"a", "b", "d"}  # "c" has neither a long title nor 3 sentences
    for p in pairs:
        assert p.query not in p.positive  # never solvable by copying the query
        assert p.query_id == f"selfsup-{p.doc_id}"
    assert by_doc["b"].kind == "sentence"  # no title
    assert by_doc["d"].kind == "title"  # its text has too few sentences for the cloze task
    assert by_doc["d"].positive == "Nets work. They do."
    assert [p.query_id for p in pairs] == sorted(p.query_id for p in pairs)


def test_pairs_are_seeded_and_capped() -> None:
    corpus = _corpus()
    assert corpus_pairs(corpus, 10, seed=3) == corpus_pairs(corpus, 10, seed=3)
    assert len(corpus_pairs(corpus, 2, seed=3)) == 2
    assert corpus_pairs(corpus, 0) == []
    assert {p.doc_id for p in corpus_pairs(corpus, 10, exclude=["a"])} == {"b", "d"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n: expected a non-negative integer"),
        ({"n": 1.5}, "n: expected a non-negative integer"),
        ({"n": 1, "min_query_words": 5, "max_query_words": 4}, "min_query_words/max_query_words"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        corpus_pairs(_corpus(), **kwargs)


def test_mined_pseudo_rows_never_use_their_source_document_as_a_negative() -> None:
    corpus = _corpus()
    pairs = corpus_pairs(corpus, 10, seed=1)
    doc_ids = list(corpus)
    texts = [corpus[d].full_text for d in doc_ids]
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((len(doc_ids), 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    # Each pseudo-query sits next to its source document.
    q = np.stack([docs[doc_ids.index(p.doc_id)] + 0.1 for p in pairs])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    result = mine_corpus_pairs(
        pairs, doc_ids, texts, q, docs, MiningConfig(num_negatives=2, depth=4, margin=1.0)
    )
    assert len(result.rows) == len(pairs)
    for row, pair in zip(result.rows, pairs):
        assert row.query == pair.query and row.positive == pair.positive
        assert pair.doc_id not in row.negative_ids and len(row.negatives) == 2


@pytest.mark.slow
def test_run_option_mixes_corpus_rows_into_training(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    from honed.pipeline.config import RunConfig
    from honed.pipeline.runner import run_pipeline
    from honed.training.config import TrainConfig

    out = tmp_path / "run"
    config = RunConfig(
        data=str(mini_beir),
        out=str(out),
        base_model=str(tiny_model_path),
        dev_fraction=0.25,
        min_dev_queries=4,
        precision="fp32",
        bm25=False,
        corpus_pairs=1.0,
        mining=MiningConfig(num_negatives=2, depth=10),
        training=TrainConfig(epochs=1, batch_size=8, mini_batch_size=4, precision="fp32"),
    )
    messages: list[str] = []
    run_pipeline(config, notify=messages.append)
    rows = [json.loads(line) for line in (out / "mined.jsonl").read_text().splitlines()]
    labelled = [r for r in rows if not r["query_id"].startswith("selfsup-")]
    pseudo = [r for r in rows if r["query_id"].startswith("selfsup-")]
    assert labelled and len(pseudo) == len(labelled)
    assert json.loads((out / "config.json").read_text())["corpus_pairs"] == 1.0
    assert (out / "mining_corpus_report.json").is_file()
    assert any("self-supervised corpus rows" in m for m in messages)


def test_run_config_refuses_a_negative_ratio() -> None:
    from honed.pipeline.config import RunConfig

    with pytest.raises(ValueError, match="corpus_pairs: expected a ratio"):
        RunConfig(data="d", out="o", corpus_pairs=-1.0)
