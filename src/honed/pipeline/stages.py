"""The stages of ``honed run``, one method each, sharing one working state.

``Run.execute`` calls them in order, times each, and records it in ``status.json`` when done.
Data flows one way: load -> baseline -> mine -> train -> save -> evaluate -> report. The model
is saved as soon as it is trained: it is the run's most expensive artifact.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from honed.data.beir import load_beir
from honed.data.leakage import shared_positives
from honed.data.splits import positives_only, require_splits, split_data
from honed.encoding.dims import matryoshka_dims
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.encoder import (
    EmbeddingCache,
    embedding_dim,
    load_model,
    model_fingerprint,
    resolve_device,
    resolve_model_name,
)
from honed.encoding.rotation import add_rotation, pca_rotation
from honed.evaluation.evidence import check_leakage, significance, training_evidence
from honed.evaluation.runs import bm25_runs, dense_runs, metrics_of
from honed.files import write_json
from honed.mining.hard_negatives import mine_hard_negatives, write_mined
from honed.mining.qgen import QueryGenConfig
from honed.pipeline.config import RunConfig
from honed.pipeline.resources import (
    ResourceEstimate,
    check,
    estimate_mining,
    estimate_training,
    peak_memory,
    reset_peak,
)
from honed.pipeline.results import RunResult
from honed.pipeline.run_folder import data_summary, environment, prepare_run_dir
from honed.pipeline.verdict import make_verdict, training_dict
from honed.retrieval.fusion import FusionChoice, choose_fusion, fuse
from honed.training.trainer import (
    DevEvaluator,
    TrainResult,
    latest_checkpoint,
    merge_rounds,
    train_model,
)

STAGES = ("load", "baseline", "mine", "train", "save", "evaluate", "report")


def _check_inputs_unchanged(data_json: Path, root: Path) -> None:
    """Refuse to resume when an input file's sha256 differs from the one recorded at the start."""
    if not data_json.is_file():
        return  # interrupted before data.json was written: nothing recorded to compare
    from honed.files import sha256_file

    recorded = json.loads(data_json.read_text(encoding="utf-8")).get("files", {})
    for name, info in recorded.items():
        path = Path(root) / name
        if not path.is_file() or sha256_file(path) != info["sha256"]:
            raise ValueError(
                f"{path}: changed since this run started (sha256 differs from data.json); "
                "fix: start a new run with `honed run DATA --out NEW_DIR`"
            )


class Run:
    """One execution of ``honed run`` (internal: use :func:`honed.pipeline.config.run_pipeline`)."""

    fusion: FusionChoice  # set by the evaluate stage when BM25 is on
    result: RunResult  # set by the report stage

    def __init__(
        self, config: RunConfig, notify: Callable[[str], None], resume: bool = False
    ) -> None:
        self.config, self.say, self.resume = config, notify, resume
        self.timings: dict[str, float] = {}
        self.completed: list[str] = []
        self.cache = EmbeddingCache(
            batch_size=config.encode_batch_size,
            precision=config.precision,
            directory=resolve_cache_dir(config.cache_dir),  # base model encodings, across runs
        )
        self.state: dict[str, Any] = {}
        self.estimates: dict[str, dict[str, Any]] = {}  # stage -> estimate, then the actual
        self._watch: tuple[bool, float] = (False, 0.0)  # (peak window opened, start)

    def execute(self) -> RunResult:
        from honed import __version__

        if self.resume:
            self.out = Path(self.config.out)
            status = self.out / "status.json"
            self.previous = (
                json.loads(status.read_text(encoding="utf-8")) if status.is_file() else {}
            )
            self.say(
                f"resuming {self.out} (completed before: {', '.join(self.previous.get('completed', [])) or 'nothing'})"
            )
        else:
            self.out = prepare_run_dir(self.config.out, self.config.overwrite)
            self.previous = {}
        self.device = resolve_device(self.config.device)
        self.base_path = resolve_model_name(self.config.base_model)
        self.resolved = {
            **self.config.to_dict(),
            "honed_version": __version__,
            "device": self.device,
            "base_model_path": self.base_path,
            "embedding_cache_dir": str(self.cache.directory) if self.cache.directory else None,
        }
        if not self.resume:
            write_json(self.out / "config.json", self.resolved)
        for stage in STAGES:
            start = time.perf_counter()
            getattr(self, f"stage_{stage}")()
            self.timings[stage] = round(time.perf_counter() - start, 2)
            self.completed.append(stage)
            self._write_status()
        result = replace(self.result, timings=self.timings)
        write_json(self.out / "report.json", asdict(result))
        return result

    def _write_status(self) -> None:
        write_json(
            self.out / "status.json",
            {"completed": self.completed, "timings": self.timings, "estimates": self.estimates},
        )

    def _guard(self, estimate: ResourceEstimate) -> None:
        """Print and record the estimate, refuse what cannot fit, and open the peak window."""
        self.say(estimate.sentence())
        self.estimates[estimate.stage] = estimate.to_dict()
        self._write_status()  # recorded before the work: a killed stage still leaves it
        check(estimate)
        self._watch = (reset_peak(estimate.device), time.perf_counter())

    def _record_actual(self, stage: str) -> None:
        """Add the stage's measured time and peak memory next to its estimate."""
        entry, (window, start) = self.estimates[stage], self._watch
        entry["actual_seconds"] = round(time.perf_counter() - start, 2)
        entry["actual_peak_bytes"] = peak_memory(entry["device"]) if window else None

    def stage_load(self) -> None:
        self.say(f"loading {self.config.data}")
        self.data = load_beir(self.config.data)
        require_splits(self.data)
        if self.resume:
            _check_inputs_unchanged(self.out / "data.json", self.data.path)
        self.doc_ids = list(self.data.corpus)
        self.doc_texts = [self.data.corpus[d].full_text for d in self.doc_ids]

    def _query_emb(self, model: Any, qids: list[str], disk: bool = True) -> dict[str, np.ndarray]:
        emb = self.cache.encode(model, [self.data.queries[q] for q in qids], disk=disk)
        return dict(zip(qids, emb))

    def stage_baseline(self) -> None:
        config, data = self.config, self.data
        self.say(f"baseline: encoding {len(self.doc_ids)} documents with {config.base_model}")
        self.model = load_model(self.base_path, self.device, config.trust_remote_code)
        self.base_fp = self.cache.fingerprint(self.model)
        self.dims = config.training.dims or matryoshka_dims(embedding_dim(self.model))
        self.base_docs = self.cache.encode(self.model, self.doc_texts, show_progress_bar=True)
        qids = sorted({q for split in data.splits for q in data.split(split)})
        self.q_base = self._query_emb(self.model, qids)
        self._leakage()
        self.splits = {"dev": self.dev, "test": self.test}
        self.runs = {
            "base": dense_runs(self.q_base, self.base_docs, self.doc_ids, self.splits, self.dims)
        }
        if config.bm25:
            self.say("baseline: BM25 (bm25s)")
            self.runs["bm25"] = bm25_runs(data, self.doc_ids, self.doc_texts, self.splits)
        self.metrics = {name: metrics_of(r, self.splits) for name, r in self.runs.items()}
        (self.out / "metrics").mkdir(exist_ok=True)
        for system, values in self.metrics.items():
            write_json(self.out / "metrics" / f"{system}.json", values)

    def _leakage(self) -> None:
        """Find training queries that duplicate test queries; drop them unless allowed."""
        data = self.data
        train_all = {q: data.queries[q] for q in data.split("train")}
        if "dev" in data.splits:
            train_all.update({q: data.queries[q] for q in data.split("dev")})
        test_q = {q: data.queries[q] for q in data.split("test")}
        report = check_leakage(
            train_all,
            test_q,
            np.stack([self.q_base[q] for q in sorted(train_all)]),
            np.stack([self.q_base[q] for q in sorted(test_q)]),
        )
        drop = frozenset() if self.config.allow_leakage else report.leaked_qids
        parts = split_data(data, self.config.split_rule, drop)
        self.train, self.dev, self.test = parts.train, parts.dev, parts.test
        dropped = list(parts.dropped)
        self.leakage = {
            "exact": [asdict(p) for p in report.exact],
            "near": [asdict(p) for p in report.near],
            "char_threshold": report.char_threshold,
            "cosine_threshold": report.cosine_threshold,
            "dropped_from_training": len(dropped),
            "allowed": self.config.allow_leakage,
            "shared_positives": shared_positives(self.train, self.test),
        }
        self.summary = data_summary(
            data, {"train": self.train, "dev": self.dev, "test": self.test}, dropped
        )
        write_json(self.out / "data.json", {**self.summary, "leakage": self.leakage})

    def stage_mine(self) -> None:
        self.say(f"mining {self.config.mining.num_negatives} hard negatives per training pair")
        positives = positives_only(self.train)
        qids = sorted(positives)
        dim = self.base_docs.shape[1]
        depth = self.config.mining.depth
        self._guard(
            estimate_mining(len(qids), len(self.doc_ids), dim, depth, embeddings_resident=True)
        )
        self.mined = mine_hard_negatives(
            positives,
            self.data.queries,
            self.doc_ids,
            self.doc_texts,
            np.stack([self.q_base[q] for q in qids]),
            self.base_docs,
            self.config.mining,
        )
        if self.config.corpus_pairs > 0:
            self._add_corpus_pairs()
        if self.config.qgen is not None:
            self._add_generated_queries(self.config.qgen)
        self._record_actual("mine")
        write_mined(self.mined.rows, self.out / "mined.jsonl")
        write_json(self.out / "mining_report.json", asdict(self.mined.report))

    def _add_corpus_pairs(self) -> None:
        """Mix self-supervised corpus rows (honed.mining.selfsup) into the labelled rows."""
        from honed.mining.selfsup import corpus_pairs, mine_corpus_pairs

        wanted = int(round(self.config.corpus_pairs * len(self.mined.rows)))
        pairs = corpus_pairs(self.data.corpus, wanted, seed=self.config.seed)
        q_emb = self.cache.encode(self.model, [p.query for p in pairs])
        extra = mine_corpus_pairs(
            pairs, self.doc_ids, self.doc_texts, q_emb, self.base_docs, self.config.mining
        )
        kinds = {k: sum(p.kind == k for p in pairs) for k in ("title", "sentence")}
        self.say(
            f"self-supervised corpus rows: {len(extra.rows)} ({kinds['title']} title -> body, "
            f"{kinds['sentence']} sentence -> rest) added to {len(self.mined.rows)} labelled rows"
        )
        self.mined = replace(self.mined, rows=self.mined.rows + extra.rows)
        write_json(self.out / "mining_corpus_report.json", asdict(extra.report))

    def _add_generated_queries(self, qgen: QueryGenConfig) -> None:
        """Mix rows of LLM-written queries (honed.mining.qgen) that pass the round trip into the rows.

        The answers are cached in generated_queries.jsonl: a resumed run does not ask again.
        """
        from honed.mining.qgen import (
            generate_queries,
            mine_generated,
            read_generated,
            round_trip_filter,
            write_generated,
        )

        path = self.out / "generated_queries.jsonl"
        cached = path.is_file()
        if cached:
            generation = read_generated(path)
        else:
            self.say(f"generating queries with {qgen.model} at {qgen.endpoint}")
            generation = generate_queries(self.data.corpus, qgen)
            write_generated(path, generation)
        texts = [q.query for q in generation.queries]
        q_emb = self.cache.encode(self.model, texts) if texts else np.empty((0, 1), np.float32)
        kept, trip = round_trip_filter(
            generation.queries, q_emb, self.base_docs, self.doc_ids, qgen.round_trip_k
        )
        report: dict[str, Any] = {"requested": generation.requested, "empty": len(generation.empty)}
        report.update({**asdict(trip), "from_cache": cached, "rows_added": 0, "mining": None})
        if kept:
            keep = {q.query_id for q in kept}
            rows = [i for i, q in enumerate(generation.queries) if q.query_id in keep]
            extra = mine_generated(
                kept,
                self.doc_ids,
                self.doc_texts,
                q_emb[rows],  # (n_kept, dim): the kept queries' rows, in kept's order
                self.base_docs,
                self.config.mining,
            )
            report.update(rows_added=len(extra.rows), mining=asdict(extra.report))
            self.mined = replace(self.mined, rows=self.mined.rows + extra.rows)
        self.say(
            f"generated queries: {trip.kept} of {generation.requested} kept ({len(generation.empty)} "
            f"empty, {trip.dropped_round_trip} dropped by the round trip at k={trip.k}); "
            f"{report['rows_added']} rows added"
        )
        write_json(self.out / "qgen_report.json", report)

    def _known_positives(self) -> dict[str, set[str]]:
        """Query text -> all its positive texts, for label-aware batches (honed.training.sampler).

        From the training qrels (a query's other positives must not be its in-batch negatives);
        self-supervised and generated rows have no qrels, only their own positive.
        """
        corpus, queries = self.data.corpus, self.data.queries
        positives: dict[str, set[str]] = {}
        for qid, docs in positives_only(self.train).items():
            known = positives.setdefault(queries[qid], set())  # same text, two ids: one set
            known.update(corpus[d].full_text for d in docs)
        for row in self.mined.rows:
            if row.query_id.startswith(("selfsup-", "qgen-")):
                positives.setdefault(row.query, set()).add(row.positive)
        return positives

    def stage_train(self) -> None:
        training = self.config.training
        if "save" in self.previous.get("completed", []):
            self.say("training finished before the interruption: loading the saved model")
            self.model = load_model(str(self.out / "model"), self.device)
            saved = json.loads((self.out / "training.json").read_text(encoding="utf-8"))
            self.trained = TrainResult(
                **{
                    **saved,
                    "curve": tuple(saved["curve"]),
                    "loss_curve": tuple(saved["loss_curve"]),
                    "dims": tuple(saved["dims"]),
                }
            )
            return
        checkpoint = latest_checkpoint(self.out / "checkpoints") if self.resume else None
        if training.rotate:  # before resuming too: the checkpoint holds the rotation layer
            self.say("rotating the base model by the corpus's principal directions")
            add_rotation(self.model, pca_rotation(self.base_docs))
            self.cache.forget(self.model)
        self.say(
            f"training on {len(self.mined.rows)} rows ({training.loss.value}, {training.epochs} epochs)"
            + (f", resuming from {checkpoint.name}" if checkpoint else "")
        )
        eval_texts = len(self.doc_texts) + len(self.dev)
        self._guard(estimate_training(self.model, self.mined.rows, training, eval_texts=eval_texts))
        guide = None
        if training.loss.value == "gist":
            guide = load_model(self.base_path, self.device, self.config.trust_remote_code)
        evaluator = DevEvaluator(
            self.data.queries, self.dev, self.doc_ids, self.doc_texts, self.dims, self.cache
        )
        self.trained = train_model(
            self.model,
            self.mined.rows,
            training,
            self.out / "checkpoints",
            evaluator,
            guide,
            resume_from=checkpoint,
            keep_checkpoints=True,
            positives=self._known_positives(),
        )
        if training.remine_epochs:
            self._remine_round(evaluator)
        self._record_actual("train")
        self.cache.forget(self.model)
        write_json(self.out / "training.json", asdict(self.trained))

    def _remine_round(self, evaluator: DevEvaluator) -> None:
        """Mine again with the tuned model (same filters), train on those rows; keep only on dev.

        The tuned model ranks the corpus differently: the documents it now confuses with the
        positives are the negatives worth a second look. Labelled rows only (no corpus pairs).
        The round is kept only if its best dev nDCG@10 beats the first round's; otherwise the
        first round's weights come back and the round is recorded as discarded.
        """
        training, first = self.config.training, self.trained
        self.say(
            f"second round: mining again with the tuned model, then {training.remine_epochs} "
            f"epoch(s) at lr {training.remine_learning_rate}"
        )
        kept = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        fingerprint = model_fingerprint(self.model)  # weights of this run only: not on disk
        docs = self.cache.encode(self.model, self.doc_texts, True, fingerprint, disk=False)
        positives = positives_only(self.train)
        qids = sorted(positives)
        q_emb = self.cache.encode(
            self.model, [self.data.queries[q] for q in qids], False, fingerprint, disk=False
        )
        mined = mine_hard_negatives(
            positives,
            self.data.queries,
            self.doc_ids,
            self.doc_texts,
            q_emb,
            docs,
            self.config.mining,
        )
        write_mined(mined.rows, self.out / "mined_round2.jsonl")
        write_json(self.out / "mining_round2_report.json", asdict(mined.report))
        config = replace(
            training, epochs=training.remine_epochs, learning_rate=training.remine_learning_rate
        )
        second = train_model(
            self.model,
            mined.rows,
            config,
            self.out / "checkpoints_round2",
            evaluator,
            positives=self._known_positives(),
        )
        better = second.best_dev_ndcg10 > first.best_dev_ndcg10
        if not better:
            self.model.load_state_dict(kept)
        self.say(
            f"second round dev nDCG@10 {second.best_dev_ndcg10:.4f} vs {first.best_dev_ndcg10:.4f}: "
            + ("kept" if better else "discarded, first round kept")
        )
        self.trained = merge_rounds(first, second, better)

    def stage_evaluate(self) -> None:
        self.say("evaluating the tuned model on dev and test at every dim")
        # The tuned weights exist only in this run: their encodings stay in memory, off the disk.
        tuned_docs = self.cache.encode(
            self.model, self.doc_texts, show_progress_bar=True, disk=False
        )
        q_tuned = self._query_emb(self.model, sorted({*self.dev, *self.test}), disk=False)
        self.runs["tuned"] = dense_runs(q_tuned, tuned_docs, self.doc_ids, self.splits, self.dims)
        self.metrics["tuned"] = metrics_of(self.runs["tuned"], self.splits)
        write_json(self.out / "metrics" / "tuned.json", self.metrics["tuned"])
        if "bm25" in self.runs:
            self._hybrid()
        evidence = self._evidence()
        # Per-query values get a file of their own; report.json keeps the summaries.
        write_json(self.out / "metrics" / "per_query_test.json", evidence["test"].pop("per_query"))
        if "hybrid" in self.runs:
            evidence["fusion"] = asdict(self.fusion)
        self.evidence = evidence
        write_json(self.out / "metrics" / "evidence.json", self.evidence)
        self.plan = self._plan(tuned_docs, q_tuned)

    def _plan(self, docs: np.ndarray, q_tuned: dict[str, np.ndarray]) -> dict[str, Any]:
        """The budget planner on the tuned embeddings: recommendation chosen on dev, test reported."""
        from honed.index.planner import PlanResult, choose_on, plan_embeddings, write_plan

        width = docs.shape[1]
        dims = [d for d in sorted(self.dims, reverse=True) if d < width]
        if not dims:
            reason = f"the model was trained at no Matryoshka dim below its full width {width}"
            self.say(f"planner: skipped, {reason}")
            return {"skipped": reason}
        start = time.perf_counter()
        results: dict[str, PlanResult] = {}
        model = str(self.out / "model")
        for split, qrels in self.splits.items():
            qids = sorted(qrels)
            query_emb = np.stack([q_tuned[q] for q in qids])  # (n_queries, width)
            results[split] = plan_embeddings(
                docs, self.doc_ids, query_emb, qids, qrels, dims, split=split, model_name=model
            )
        test = choose_on(results["dev"], results["test"])
        write_plan(test, self.out / "metrics", plot_dir=self.out / "plots", markdown=False)
        write_json(self.out / "metrics" / "plan_dev.json", results["dev"].to_dict())
        seconds = round(time.perf_counter() - start, 2)
        self.say(
            f"planner: {len(test.rows)} configurations on dev and test ({seconds:.1f} s), "
            f"recommended on dev: {test.recommended.name}"
        )
        return {"test": test.to_dict(), "dev": results["dev"].to_dict(), "seconds": seconds}

    def _hybrid(self) -> None:
        """Fuse the tuned model (full dim) with BM25; method and weight are chosen on dev only."""
        full = str(max(self.dims))
        dense, bm25 = self.runs["tuned"], self.runs["bm25"]
        self.fusion = choose_fusion(self.dev, dense["dev"][full], bm25["dev"]["bm25"])
        weights = [self.fusion.weight, 1.0 - self.fusion.weight]
        self.say(
            f"hybrid: {self.fusion.method}, dense weight {self.fusion.weight:g} "
            f"(dev nDCG@10 {self.fusion.dev_ndcg10:.4f}, chosen over {len(self.fusion.grid)} settings)"
        )
        self.runs["hybrid"] = {
            split: {
                "hybrid": fuse(
                    [dense[split][full], bm25[split]["bm25"]], self.fusion.method, weights
                )
            }
            for split in self.splits
        }
        self.metrics["hybrid"] = metrics_of(self.runs["hybrid"], self.splits)
        write_json(self.out / "metrics" / "hybrid.json", self.metrics["hybrid"])

    def _evidence(self) -> dict[str, Any]:
        dims = [str(d) for d in sorted(self.dims, reverse=True)]
        systems = {f"{s}@{d}": self.runs[s]["test"][d] for s in ("base", "tuned") for d in dims}
        for name in ("bm25", "hybrid"):
            if name in self.runs:
                systems[name] = self.runs[name]["test"][name]
        test_queries = {q: self.data.queries[q] for q in self.test}
        train_queries = {q: self.data.queries[q] for q in self.train}
        curve = training_dict(self.trained, self.metrics["base"], self.dims)["curve"]
        return {
            "test": significance(
                self.test, systems, dims, test_queries, self.config.n_resamples, self.config.seed
            ),
            "leakage": self.leakage,
            **training_evidence(
                curve,
                self.trained.loss_curve,
                train_queries,
                test_queries,
                np.stack([self.q_base[q] for q in sorted(train_queries)]),
                np.stack([self.q_base[q] for q in sorted(test_queries)]),
            ),
        }

    def stage_save(self) -> None:
        """Save to a temporary folder and rename: a half-written model/ never looks finished."""
        final, tmp = self.out / "model", self.out / "model.tmp"
        if not (final.is_dir() and "save" in self.previous.get("completed", [])):
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save(str(tmp))
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        shutil.rmtree(self.out / "checkpoints", ignore_errors=True)

    def stage_report(self) -> None:
        from honed.report.markdown import write_report

        self.result = RunResult(
            run_dir=str(self.out),
            config=self.resolved,
            data=self.summary,
            metrics=self.metrics,
            mining=asdict(self.mined.report),
            training=training_dict(self.trained, self.metrics["base"], self.dims),
            timings=self.timings,
            encode_stats=asdict(self.cache.stats),
            verdict=make_verdict(
                self.metrics,
                self.dims,
                self.trained,
                self.evidence["test"]["tests"],
                self.evidence.get("fusion"),
            ),
            environment={**environment(), "base_fingerprint": self.base_fp},
            evidence=self.evidence,
            plan=self.plan,
        )
        write_report(self.result, Path(self.out))
