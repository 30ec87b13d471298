"""``honed run``: the stages in order, timed, recorded in ``status.json``, resumable.

Data flows one way: load -> baseline -> mine -> train -> save -> evaluate -> report. The corpus
is encoded once with the base model and that one encoding serves the baseline at every dim, the
dev score of "epoch 0", the leakage check and the miner. The model is saved as soon as it is
trained: it is the run's most expensive artifact. The work of each stage lives in
:mod:`honed.pipeline.stages` (shared with ``honed mine/train/evaluate``), :mod:`.rounds`,
:mod:`.extra_rows` and :mod:`.final`; this module only sequences it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from honed import __version__
from honed.data.beir import load_beir
from honed.data.plan import plan_run
from honed.data.splits import positives_only
from honed.encoding.dims import resolve_dims
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.encoder import (
    EmbeddingCache,
    embedding_dim,
    load_model,
    resolve_device,
    resolve_model_name,
)
from honed.evaluation.runs import bm25_runs, dense_runs, encode_queries, metrics_of
from honed.files import check_unlocked, write_json
from honed.pipeline.config import Notify, RunConfig
from honed.pipeline.estimates import estimate_mining, estimate_training
from honed.pipeline.explorer_data import write_explorer, write_mining_samples
from honed.pipeline.extra_rows import BaseEncoding, add_corpus_pairs, add_generated_queries
from honed.pipeline.final import EvidenceInputs, evidence, hybrid_runs, plan_section
from honed.pipeline.resources import ResourceEstimate, check, peak_memory, reset_peak
from honed.pipeline.results import RunResult
from honed.pipeline.rounds import SecondRound, second_round
from honed.pipeline.run_folder import data_summary, environment, prepare_run_dir, run_lock
from honed.pipeline.stages import (
    check_inputs_unchanged,
    known_positives,
    leakage_split,
    mine_pairs,
    rotate_to_corpus,
    save_model,
    write_mining,
    write_splits,
)
from honed.pipeline.verdict import make_verdict, training_dict
from honed.report.writer import write_report
from honed.training.evaluator import DevEvaluator
from honed.training.trainer import TrainResult, TrainRun, latest_checkpoint, train_model

__all__ = ["STAGES", "resume_pipeline", "run_pipeline"]

STAGES = ("load", "baseline", "mine", "train", "save", "evaluate", "report")


def run_pipeline(config: RunConfig, notify: Notify | None = None) -> RunResult:
    """Run every stage of ``honed run`` and write the run folder; returns the result.

    Example:
        >>> result = run_pipeline(RunConfig(data="data/scifact", out="runs/scifact"))  # doctest: +SKIP
        >>> result.verdict["recommendation"]  # doctest: +SKIP
        'tuned'
    """
    return _Runner(config, notify or (lambda message: None)).execute()


def resume_pipeline(run_dir: str | Path, notify: Notify | None = None) -> RunResult:
    """Continue an interrupted ``honed run`` from its last completed stage or checkpoint.

    Load, baseline and mining are recomputed (deterministic, about a minute); training continues
    from the newest complete epoch checkpoint; a saved model is not trained again.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json`` (not a honed run folder).
        ValueError: an input file changed since the run started (its sha256 differs).
        FolderLockedError: another process is running or resuming ``run_dir``.
    """
    run_dir = Path(run_dir)
    check_unlocked(run_dir, "honed run")  # a run still writing it: say so, not "not a run folder"
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path}: no such file, so {run_dir} is not a honed run folder; "
            "fix: pass the --out folder of an earlier `honed run`"
        )
    values = json.loads(config_path.read_text(encoding="utf-8"))
    config = RunConfig.from_dict({**values, "out": str(run_dir), "overwrite": False})
    return _Runner(config, notify or (lambda message: None), resume=True).execute()


class _Runner:
    """One execution of ``honed run``: the stages' shared state, status.json and estimates."""

    def __init__(self, config: RunConfig, say: Notify, resume: bool = False) -> None:
        self.config, self.say, self.resume = config, say, resume
        self.timings: dict[str, float] = {}
        self.completed: list[str] = []
        self.cache = EmbeddingCache(
            batch_size=config.encode_batch_size,
            precision=config.precision,
            directory=resolve_cache_dir(config.cache_dir),  # base model encodings, across runs
        )
        self.estimates: dict[str, dict[str, Any]] = {}  # stage -> estimate, then the actual
        self._watch: tuple[bool, float] = (False, 0.0)  # (peak window opened, start)

    # --- sequencing ---------------------------------------------------------------------------

    def execute(self) -> RunResult:
        with run_lock(self.config.out):  # held to the end: a second run or resume is refused
            self._open_folder()
            for stage in STAGES:
                start = time.perf_counter()
                getattr(self, f"stage_{stage}")()
                self.timings[stage] = round(time.perf_counter() - start, 2)
                self.completed.append(stage)
                self._write_status()
            result = replace(self.result, timings=self.timings)
            write_json(self.out / "report.json", asdict(result))
        return result

    def _open_folder(self) -> None:
        if self.resume:
            self.out = Path(self.config.out)
            status = self.out / "status.json"
            self.previous = (
                json.loads(status.read_text(encoding="utf-8")) if status.is_file() else {}
            )
            done = ", ".join(self.previous.get("completed", [])) or "nothing"
            self.say(f"resuming {self.out} (completed before: {done})")
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

    # --- stages -------------------------------------------------------------------------------

    def stage_load(self) -> None:
        self.say(f"loading {self.config.data}")
        self.data = load_beir(self.config.data)
        # The rules `honed check` applies, before any model is loaded: the same refusal, at once.
        plan_run(self.data, self.config.split_rule, self.config.allow_leakage)
        if self.resume:
            check_inputs_unchanged(self.out / "data.json", self.data.path)
        self.doc_ids, self.doc_texts = self.data.documents()

    def stage_baseline(self) -> None:
        config, data = self.config, self.data
        self.say(f"baseline: encoding {len(self.doc_ids)} documents with {config.base_model}")
        self.model = load_model(self.base_path, self.device, config.trust_remote_code)
        self.base_fp = self.cache.fingerprint(self.model)
        self.dims = resolve_dims(config.training.dims, embedding_dim(self.model))  # before encoding
        self.base_docs = self.cache.encode(self.model, self.doc_texts, show_progress_bar=True)
        qids = sorted({q for split in data.splits for q in data.split(split)})
        self.q_base = encode_queries(self.cache, self.model, data, qids)
        leak = leakage_split(data, self.q_base, config.split_rule, config.allow_leakage)
        self.train, self.dev, self.test = leak.splits.train, leak.splits.dev, leak.splits.test
        self.leakage = leak.record
        self.summary = data_summary(
            data, {"train": self.train, "dev": self.dev, "test": self.test},
            list(leak.splits.dropped),
        )
        write_json(self.out / "data.json", {**self.summary, "leakage": self.leakage})
        write_splits(self.out, leak.splits)
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

    def stage_mine(self) -> None:
        config = self.config
        self.say(f"mining {config.mining.num_negatives} hard negatives per training pair")
        positives = positives_only(self.train)
        dim = self.base_docs.shape[1]
        self._guard(
            estimate_mining(
                len(positives), len(self.doc_ids), dim, config.mining.depth,
                embeddings_resident=True,
            )
        )
        self.mined = mine_pairs(
            positives, self.data, self.doc_ids, self.doc_texts, self.q_base, self.base_docs,
            config.mining,
        )
        base = BaseEncoding(
            self.model, self.cache, self.data, self.doc_ids, self.doc_texts, self.base_docs,
            config.mining,
        )
        if config.corpus_pairs > 0:
            self.mined = add_corpus_pairs(
                self.mined, base, config.corpus_pairs, config.seed, self.out, self.say
            )
        if config.qgen is not None:
            self.mined = add_generated_queries(self.mined, base, config.qgen, self.out, self.say)
        self._record_actual("mine")
        write_mining(self.mined, self.out / "mined.jsonl", self.out / "mining_report.json")
        write_mining_samples(self.out, self.mined, base, positives, self.q_base)  # report.html

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
            rotate_to_corpus(self.model, self.base_docs)
            self.cache.forget(self.model)
        self.say(
            f"training on {len(self.mined.rows)} rows ({training.loss.value}, "
            f"{training.epochs} epochs)" + (f", resuming from {checkpoint.name}" if checkpoint else "")
        )
        eval_texts = len(self.doc_texts) + len(self.dev)
        self._guard(estimate_training(self.model, self.mined.rows, training, eval_texts=eval_texts))
        guide = None
        if training.loss.value == "gist":
            guide = load_model(self.base_path, self.device, self.config.trust_remote_code)
        evaluator = DevEvaluator(
            self.data.queries, self.dev, self.doc_ids, self.doc_texts, self.dims, self.cache
        )
        positives = known_positives(self.data, self.train, self.mined.rows)
        self.trained = train_model(
            self.model, self.mined.rows, training, self.out / "checkpoints", evaluator, guide,
            positives=positives, run=TrainRun(resume_from=checkpoint, keep_checkpoints=True),
        )
        if training.remine_epochs:
            inputs = SecondRound(
                self.data, self.train, self.doc_ids, self.doc_texts, self.cache,
                self.config.mining, training, self.out, positives,
            )
            self.trained = second_round(self.model, self.trained, inputs, evaluator, self.say)
        self._record_actual("train")
        self.cache.forget(self.model)
        write_json(self.out / "training.json", asdict(self.trained))

    def stage_save(self) -> None:
        final = self.out / "model"
        if not (final.is_dir() and "save" in self.previous.get("completed", [])):
            save_model(self.model, final)
        shutil.rmtree(self.out / "checkpoints", ignore_errors=True)

    def stage_evaluate(self) -> None:
        self.say("evaluating the tuned model on dev and test at every dim")
        # The tuned weights exist only in this run: their encodings stay in memory, off the disk.
        tuned_docs = self.cache.encode(
            self.model, self.doc_texts, show_progress_bar=True, disk=False
        )
        qids = sorted({*self.dev, *self.test})
        q_tuned = encode_queries(self.cache, self.model, self.data, qids, disk=False)
        self.runs["tuned"] = dense_runs(q_tuned, tuned_docs, self.doc_ids, self.splits, self.dims)
        self.metrics["tuned"] = metrics_of(self.runs["tuned"], self.splits)
        write_json(self.out / "metrics" / "tuned.json", self.metrics["tuned"])
        write_explorer(self.out, self.runs, self.test, self.data, max(self.dims))  # report.html
        fusion = None
        if "bm25" in self.runs:
            fusion, self.runs["hybrid"] = hybrid_runs(
                self.runs, self.dev, str(max(self.dims)), self.say
            )
            self.metrics["hybrid"] = metrics_of(self.runs["hybrid"], self.splits)
            write_json(self.out / "metrics" / "hybrid.json", self.metrics["hybrid"])
        self.evidence = evidence(self._evidence_inputs(), self.leakage)
        # Per-query values get a file of their own; report.json keeps the summaries.
        per_query = self.evidence["test"].pop("per_query")
        write_json(self.out / "metrics" / "per_query_test.json", per_query)
        if fusion is not None:
            self.evidence["fusion"] = fusion.to_record()
        write_json(self.out / "metrics" / "evidence.json", self.evidence)
        self.plan = plan_section(
            tuned_docs, self.doc_ids, q_tuned, self.splits, self.dims, self.out, self.say
        )

    def _evidence_inputs(self) -> EvidenceInputs:
        config = self.config
        curve = training_dict(self.trained, self.metrics["base"], self.dims)["curve"]
        return EvidenceInputs(
            runs=self.runs,
            dims=self.dims,
            test=self.test,
            test_queries={q: self.data.queries[q] for q in self.test},
            train_queries={q: self.data.queries[q] for q in self.train},
            curve=curve,
            loss_curve=self.trained.loss_curve,
            q_base=self.q_base,
            n_resamples=config.n_resamples,
            seed=config.seed,
        )

    def stage_report(self) -> None:
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
                dev_queries=len(positives_only(self.dev)),
                shift=bool(self.evidence.get("shift", {}).get("warnings")),
            ),
            environment={**environment(), "base_fingerprint": self.base_fp},
            evidence=self.evidence,
            plan=self.plan,
        )
        write_report(self.result, Path(self.out))
