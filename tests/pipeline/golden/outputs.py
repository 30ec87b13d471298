"""The outputs that the restructure (issue #13) must not change, computed through the public API.

``golden_outputs`` runs ``honed mine``, ``honed evaluate`` and a short ``honed run`` on the mini
BEIR dataset with the tiny random BERT, and returns the sha256 of every mined file and every
metric. ``tests/golden/expected.json`` holds what the flat-layout code (commit 1263323) returned;
``python tests/golden/outputs.py OUT.json`` writes the current values (to regenerate, review the diff
first: a change here is a change of behaviour).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

EXPECTED = Path(__file__).with_name("expected.json")


def _rows(path: Path) -> list[list[Any]]:
    """Each mined row as [query id, positive id, negative ids, positive score, negative scores].

    The bytes of a mined file depend on the CPU's float rounding (the last digits of a score):
    the same code gave one sha256 on the machine that recorded the golden file and another on a
    later one. The ids must be equal everywhere; the scores are compared with a tolerance.
    """
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        [r["query_id"], r["positive_id"], r["negative_ids"], r["positive_score"], r["negative_scores"]]
        for r in rows
    ]


def golden_outputs(model: Path, data: Path, work: Path) -> dict[str, Any]:
    """Run the three commands into ``work``; return hashes and metrics as plain JSON values."""
    from honed import MiningConfig, RunConfig, TrainConfig, evaluate_model, mine, run_pipeline

    if not callable(mine):  # pragma: no cover - the flat layout (its README bug: a module)
        from honed.api import mine  # type: ignore[no-redef]

    mining = MiningConfig(num_negatives=2, depth=10)
    # cache_dir=None: fresh encodings, as when the golden file was written (a shared disk cache
    # may hold vectors of other batch compositions, equal to the last bits only).
    mine(data, work / "mined.jsonl", base_model=str(model), config=mining, device="cpu",
         cache_dir=None)
    evaluated = evaluate_model(str(model), data, split="test", bm25=True, device="cpu",
                               cache_dir=None)
    training = TrainConfig(
        epochs=2, batch_size=8, mini_batch_size=4, precision="fp32", logging_steps=1,
        dims=(32, 16, 8),
    )
    config = RunConfig(
        data=str(data), out=str(work / "run"), base_model=str(model), dev_fraction=0.25,
        min_dev_queries=4, precision="fp32", mining=mining, training=training, cache_dir=None,
    )
    run_pipeline(config)
    run = work / "run"
    metrics = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((run / "metrics").glob("*.json"))
        if p.stem in ("base", "bm25", "tuned", "hybrid")
    }
    return {
        "mine": {"mined.jsonl": _rows(work / "mined.jsonl")},
        "evaluate": evaluated,
        "run": {
            "mined.jsonl": _rows(run / "mined.jsonl"),
            "mined_round2.jsonl": _rows(run / "mined_round2.jsonl"),
            "metrics": metrics,
        },
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from conftest import build_tiny_model, write_mini_beir  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "m")
        data = write_mini_beir(root / "d")
        (root / "w").mkdir()
        values = golden_outputs(model, data, root / "w")
    Path(sys.argv[1]).write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
