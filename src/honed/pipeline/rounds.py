"""Training rounds of ``honed run``: the first round on the base model's negatives, and the
second round on the tuned model's own, kept only when dev says so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from honed.data.splits import positives_only
from honed.encoding.distributed import agree, on_main_process
from honed.encoding.encoder import model_fingerprint
from honed.mining.config import MiningConfig
from honed.pipeline.stages import mine_pairs, write_mining
from honed.training.config import TrainConfig
from honed.training.evaluator import DevEvaluator
from honed.training.trainer import TrainResult, merge_rounds, train_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sentence_transformers import SentenceTransformer

    from honed.data.beir import BeirData
    from honed.encoding.encoder import EmbeddingCache
    from honed.mining.hard_negatives import MiningResult
    from honed.types import Qrels

__all__ = ["SecondRound", "second_round"]


@dataclass(frozen=True)
class SecondRound:
    """What the second round needs besides the model: the data, its encoder and settings."""

    data: BeirData
    train: Qrels
    doc_ids: Sequence[str]
    doc_texts: Sequence[str]
    cache: EmbeddingCache
    mining: MiningConfig
    training: TrainConfig
    out: Path
    positives: dict[str, set[str]]


def second_round(
    model: SentenceTransformer,
    first: TrainResult,
    inputs: SecondRound,
    evaluator: DevEvaluator,
    say: Callable[[str], None],
) -> TrainResult:
    """Mine again with the tuned model (same filters), train on those rows; keep only on dev.

    The tuned model ranks the corpus differently: the documents it now confuses with the
    positives are the negatives worth a second look. Labelled rows only (no corpus pairs).
    The round is kept only if its best dev nDCG@10 beats the first round's; otherwise the
    first round's weights come back and the round is recorded as discarded.
    """
    training = inputs.training
    say(
        f"second round: mining again with the tuned model, then {training.remine_epochs} "
        f"epoch(s) at lr {training.remine_learning_rate}"
    )
    kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fingerprint = model_fingerprint(model)  # weights of this run only: not on disk
    cache = inputs.cache
    docs = cache.encode(model, inputs.doc_texts, True, fingerprint, disk=False)  # (n_docs, dim)
    positives = positives_only(inputs.train)
    q_emb = dict(
        zip(
            sorted(positives),
            cache.encode(
                model, [inputs.data.queries[q] for q in sorted(positives)], False, fingerprint,
                disk=False,
            ),
        )
    )
    out = inputs.out

    def mine_and_write() -> MiningResult:  # the first process; every process gets the rows
        mined = mine_pairs(
            positives, inputs.data, inputs.doc_ids, inputs.doc_texts, q_emb, docs, inputs.mining
        )
        write_mining(mined, out / "mined_round2.jsonl", out / "mining_round2_report.json")
        return mined

    mined = on_main_process(mine_and_write)
    config = replace(
        training, epochs=training.remine_epochs, learning_rate=training.remine_learning_rate
    )
    second = train_model(
        model,
        mined.rows,
        config,
        out / "checkpoints_round2",
        evaluator,
        positives=inputs.positives,
    )
    better = agree(second.best_dev_ndcg10 > first.best_dev_ndcg10)  # one decision for all
    if not better:
        model.load_state_dict(kept)
    say(
        f"second round dev nDCG@10 {second.best_dev_ndcg10:.4f} vs {first.best_dev_ndcg10:.4f}: "
        + ("kept" if better else "discarded, first round kept")
    )
    return merge_rounds(first, second, better)
