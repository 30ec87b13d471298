"""The model card (``model/README.md``) and the rotation note the report shares with it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from honed.evaluation.deployment import verdict_headline
from honed.files import write_text

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["rotation_note", "write_model_card"]


def write_model_card(run: RunResult, model_dir: Path) -> Path:
    """``model/README.md``: base model, data, settings and results, readable without honed."""
    full = max(int(d) for d in run.metrics["tuned"]["test"])
    test = run.metrics["tuned"]["test"]
    card = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, retrieval, matryoshka, honed]",
        "---",
        "",
        f"# Fine-tuned retrieval model for `{Path(run.data['path']).name}`",
        "",
        f"Fine-tuned from `{run.config['base_model']}` with honed {run.environment['honed']}.",
        "",
        f"**{verdict_headline(run.verdict)}** (decided on the dev split; the run's report.md has "
        "the evidence)",
        "",
        "```python\nfrom sentence_transformers import SentenceTransformer\n"
        f'model = SentenceTransformer("path/to/model", truncate_dim={full})  # or 256, 128, 64\n```',
        "",
        "## Data",
        "",
        f"{run.data['documents']} documents; training pairs {run.data['splits']['train']['pairs']}, "
        f"dev queries {run.data['splits']['dev']['queries']}, test queries {run.data['splits']['test']['queries']}.",
        "",
        "## Training",
        "",
        f"Loss {run.training['config']['loss']} in MatryoshkaLoss (dims {', '.join(map(str, run.training['dims']))}), "
        f"{run.mining['num_negatives']} mined hard negatives per pair, batch {run.training['config']['batch_size']}, "
        f"lr {run.training['config']['learning_rate']}, epochs {run.training['config']['epochs']} "
        f"(kept epoch {run.training['best_epoch']:g} by dev nDCG@10), seed {run.config['seed']}."
        + rotation_note(run.training),
        "",
        "## Results (held-out test split)",
        "",
        "| dim | nDCG@10 | Recall@10 | base nDCG@10 |",
        "|---:|---:|---:|---:|",
        *[
            f"| {d} | {test[d]['ndcg@10']:.4f} | {test[d]['recall@10']:.4f} | "
            f"{run.metrics['base']['test'][d]['ndcg@10']:.4f} |"
            for d in sorted(test, key=int, reverse=True)
        ],
    ]
    if "bm25" in run.metrics:
        card += [
            "",
            f"BM25 on the same split: nDCG@10 {run.metrics['bm25']['test']['bm25']['ndcg@10']:.4f}.",
        ]
    path = model_dir / "README.md"
    write_text(path, "\n".join(card) + "\n")
    return path


def rotation_note(training: dict[str, Any]) -> str:
    """What the report says of the corpus rotation and the re-mining round, when they ran."""
    note = ""
    if training.get("config", {}).get("rotate"):
        note += (
            " Training started from the base model rotated by the principal directions of its "
            "corpus embeddings (an orthogonal Dense layer before Normalize: no full-dim score "
            "changed at the start; the first dims began as the best linear truncation)."
        )
    second = training.get("round2")
    if second:
        note += (
            f" A second round mined {second['rows']} rows again with the tuned model and trained "
            f"{second['epochs']} more epoch(s) at lr {second['learning_rate']}: dev nDCG@10 "
            f"{second['best_dev_ndcg10']:.4f} vs {second['first_round_dev_ndcg10']:.4f} after "
            f"the first round, so it was {'kept' if second['kept'] else 'discarded'}."
        )
    return note
