"""``honed diagnose --probe``: a few real training steps on a slice, scored on dev.

One epoch on ``probe_rows`` mined rows, then dev nDCG@10 before and after, re-ranking the base
model's top 100 (the pool holds every base top 10, so the base score on it equals its
full-corpus score). Too small to decide with; it shows the direction and the speed.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from honed.encoding.encoder import EmbeddingCache, load_model
from honed.evaluation.metrics import evaluate
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import mine_hard_negatives
from honed.retrieval.dense import search, top_k
from honed.training.config import LossName, TrainConfig
from honed.training.trainer import TrainRun, train_model
from honed.types import Qrels

if TYPE_CHECKING:
    from honed.data.beir import BeirData
    from honed.diagnosis.config import DiagnoseConfig

__all__ = ["Probe", "run_probe"]


PROBE_POOL_DEPTH = 100



@dataclass(frozen=True)
class Probe:
    """A one-epoch fine-tune on a slice of the training pairs, scored on dev by re-ranking."""

    rows: int
    train_seconds: float
    pool_documents: int
    dev_ndcg10_before: float
    dev_ndcg10_after: float

    @property
    def gain(self) -> float:
        return self.dev_ndcg10_after - self.dev_ndcg10_before

    @property
    def gain_per_minute(self) -> float:
        return self.gain / max(self.train_seconds / 60.0, 1e-9)



def run_probe(
    model_path: str, config: DiagnoseConfig, data: BeirData, train: Qrels, dev: Qrels,
    corpus: tuple[list[str], list[str], np.ndarray], cache: EmbeddingCache, device: str,
) -> Probe:
    """Mine and train on ``probe_rows`` pairs; score dev by re-ranking the base top 100."""

    doc_ids, doc_texts, doc_emb = corpus
    base = load_model(model_path, device, config.trust_remote_code)
    qids = sorted(train)
    random.Random(config.seed).shuffle(qids)
    chosen: Qrels = {}
    for qid in qids:
        if sum(map(len, chosen.values())) >= config.probe_rows:
            break
        chosen[qid] = train[qid]
    q_emb = cache.encode(base, [data.queries[q] for q in sorted(chosen)])  # (n_chosen, dim)
    mined = mine_hard_negatives(chosen, data.queries, doc_ids, doc_texts, q_emb, doc_emb,
                                MiningConfig(seed=config.seed))
    rows = mined.rows[: config.probe_rows]
    dev_qids = sorted(dev)
    dev_emb = cache.encode(base, [data.queries[q] for q in dev_qids])  # (n_dev, dim)
    # The pool holds every base top-10, so the base score on it equals its full-corpus score.
    pool = np.unique(top_k(dev_emb, doc_emb, PROBE_POOL_DEPTH)[0])  # (n_pool,)
    pool_ids = [doc_ids[i] for i in pool]

    def ndcg(q: np.ndarray, d: np.ndarray) -> float:
        return evaluate(dev, search(q, d, dev_qids, pool_ids, k=10), ["ndcg@10"])["ndcg@10"]

    before = ndcg(dev_emb, doc_emb[pool])
    # One epoch of 16-row batches without warmup: a handful of real steps on a small slice.
    train_config = TrainConfig(loss=LossName.MNRL, epochs=1, batch_size=16, warmup_ratio=0.0,
                               precision=config.precision, seed=config.seed)
    with tempfile.TemporaryDirectory(prefix="honed-probe-") as tmp:
        result = train_model(base, rows, train_config, tmp, run=TrainRun(show_progress_bar=False))
    cache.forget(base)  # its remembered fingerprint is the untrained weights'
    # disk=False: the probe's weights exist only here; no later run could reuse their vectors.
    tuned_q = cache.encode(base, [data.queries[q] for q in dev_qids], disk=False)
    after = ndcg(tuned_q, cache.encode(base, [doc_texts[i] for i in pool], disk=False))
    return Probe(len(rows), result.seconds, len(pool_ids), before, after)
