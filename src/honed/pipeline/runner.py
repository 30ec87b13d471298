"""``honed run``: the stages in order, timed, recorded in ``status.json``, resumable.

Data flows one way: load -> baseline -> mine -> train -> save -> evaluate -> report. The corpus
is encoded once with the base model and that one encoding serves the baseline at every dim, the
dev score of "epoch 0", the leakage check and the miner. The model is saved as soon as it is
trained: it is the run's most expensive artifact. The work of each stage lives in
:mod:`honed.pipeline.stages` (shared with ``honed mine/train/evaluate``), :mod:`.rounds`,
:mod:`.extra_rows` and :mod:`.final`; this module only calls it, and :mod:`.run_state` sequences
the stages and records them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from honed.data.beir import load_beir
from honed.data.plan import plan_run
from honed.data.splits import positives_only, sample_train
from honed.encoding.dims import resolve_dims
from honed.encoding.distributed import (
    agree,
    is_main_process,
    on_main_process,
    process_device,
    process_group,
)
from honed.encoding.encoder import embedding_dim, load_model, resolve_device
from honed.evaluation.runs import bm25_runs, dense_runs, encode_queries, metrics_of
from honed.files import check_unlocked, write_json
from honed.pipeline.config import Notify, RunConfig
from honed.pipeline.estimates import estimate_mining, estimate_training
from honed.pipeline.explorer_data import write_explorer, write_mining_samples
from honed.pipeline.extra_rows import BaseEncoding, add_corpus_pairs, add_generated_queries
from honed.pipeline.final import EvidenceInputs, evidence, hybrid_runs, plan_section
from honed.pipeline.results import RunResult
from honed.pipeline.resume_changes import apply_changes, plan_resume
from honed.pipeline.rounds import SecondRound, second_round
from honed.pipeline.run_estimates import RunEstimates
from honed.pipeline.run_folder import data_summary, environment, read_run_values, train_sample
from honed.pipeline.run_state import STAGES, RunState
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


def run_pipeline(config: RunConfig, notify: Notify | None = None) -> RunResult:
    """Run every stage of ``honed run`` and write the run folder; returns the result.

    Example:
        >>> result = run_pipeline(RunConfig(data="data/scifact", out="runs/scifact"))  # doctest: +SKIP
        >>> result.verdict["recommendation"]  # doctest: +SKIP
        'tuned'
    """
    device = process_device(resolve_device(config.device))  # cuda:LOCAL_RANK under torchrun
    with process_group(device):
        return _Runner(config, notify or (lambda message: None), device).execute()


def resume_pipeline(
    run_dir: str | Path, notify: Notify | None = None, changes: Mapping[str, Any] | None = None
) -> RunResult:
    """Continue an interrupted ``honed run`` from its last completed stage or checkpoint.

    Load, baseline and mining are recomputed (deterministic, the baseline read back from the
    embedding cache); training continues from the newest complete epoch checkpoint; a saved
    model is not trained again. ``changes`` (dotted setting -> value, e.g.
    ``{"training.epochs": 1}``) are applied when safe (:mod:`honed.pipeline.resume_changes`),
    said through ``notify`` and recorded in ``config.json``; otherwise the resume is refused.
    Under ``torchrun`` every process resumes from the same folder (a disk they all see).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json`` (not a honed run folder).
        ValueError: an input file changed since the run started (its sha256 differs); a change
            that cannot be applied on resume (names it and the fix).
        FolderLockedError: another process is running or resuming ``run_dir``.
    """
    run_dir = Path(run_dir)
    values = read_run_values(run_dir)
    plan = plan_resume(run_dir, values, changes or {})  # refuses before anything is written
    values = apply_changes(values, plan.applied)
    config = RunConfig.from_dict({**values, "out": str(run_dir), "overwrite": False})
    device = process_device(resolve_device(config.device))
    with process_group(device):
        # Checked by the first process alone: under torchrun it takes the lock right after.
        on_main_process(lambda: check_unlocked(run_dir, "honed run"))
        runner = _Runner(config, notify or (lambda message: None), device, resume=True)
        runner.changes = plan.applied
        return runner.execute()


class _Runner(RunState):
    """The stages of ``honed run``, in order; :class:`RunState` holds what they share."""

    # --- stages -------------------------------------------------------------------------------

    def stage_load(self) -> None:
        self.say(f"loading {self.config.data}")
        self.data = load_beir(self.config.data)
        # The rules `honed check` applies, before any model is loaded: the same refusal, at once.
        self.run_plan = plan_run(self.data, self.config.split_rule, self.config.allow_leakage)
        if self.resume:
            self._main(lambda: check_inputs_unchanged(self.out / "data.json", self.data.path))
        self.doc_ids, self.doc_texts = self.data.documents()

    def _estimate(self) -> None:
        """Before the first expensive step: estimate every stage, plan a --time-budget, warn."""
        self.costs = RunEstimates.measure(
            self.model, self.data, self.config, self.cache, self.doc_texts, self.run_plan.splits
        )
        if self.config.time_budget is not None and not self.resume:
            # Each process timed its own probe: the first one's plan is everyone's.
            plan, self.config = agree(self.costs.plan(self.config.time_budget))
            self.costs.config = self.config
            self.budget = plan.to_dict()
            self.say(plan.sentence())
            self.resolved = {**self.resolved, **self.config.to_dict(), "budget_plan": self.budget}
            self._main(lambda: write_json(self.out / "config.json", self.resolved))
        self.costs.record()
        self.say(self.costs.sentence())
        warning = self.costs.long_run_warning() if self.config.time_budget is None else None
        if warning is not None:
            self.say(warning)
        self._write_status()

    def stage_baseline(self) -> None:
        data, started = self.data, time.perf_counter()
        self.model = load_model(self.base_path, self.device, self.config.trust_remote_code)
        self.base_fp = self.cache.fingerprint(self.model)
        self._estimate()
        config = self.config
        self.say(f"baseline: encoding {len(self.doc_ids)} documents with {config.base_model}")
        self.dims = resolve_dims(config.training.dims, embedding_dim(self.model))  # before encoding
        assert self.costs is not None  # set by _estimate
        qids = sorted({q for split in data.splits for q in data.split(split)})
        with self._logged("baseline"):
            self.base_docs = self.costs.encode_baseline(
                self.cache, self.model, self.doc_texts, time.perf_counter() - started, self.say
            )
            self.q_base = encode_queries(self.cache, self.model, data, qids)
        # One split for every process: the first one's (the near-duplicate check is float-based).
        leak = self._main(
            lambda: leakage_split(data, self.q_base, config.split_rule, config.allow_leakage)
        )
        splits = sample_train(leak.splits, config.max_train_queries, config.seed)  # dev intact
        self.train, self.dev, self.test = splits.train, splits.dev, splits.test
        self.leakage = leak.record
        self.summary = data_summary(
            data, {"train": self.train, "dev": self.dev, "test": self.test},
            list(leak.splits.dropped),
        )
        if config.max_train_queries is not None:
            self.summary["train_sample"] = train_sample(leak.splits, splits, config)
        self.splits = {"dev": self.dev, "test": self.test}
        self.metrics = self._main(lambda: self._score_baseline(splits))

    def _score_baseline(self, splits: Any) -> dict[str, Any]:
        """The first process: write the splits, search with the base model and BM25, score."""
        write_json(self.out / "data.json", {**self.summary, "leakage": self.leakage})
        write_splits(self.out, splits)
        self.runs = {
            "base": dense_runs(self.q_base, self.base_docs, self.doc_ids, self.splits, self.dims)
        }
        if self.config.bm25:
            self.say("baseline: BM25 (bm25s)")
            self.runs["bm25"] = bm25_runs(self.data, self.doc_ids, self.doc_texts, self.splits)
        metrics = {name: metrics_of(r, self.splits) for name, r in self.runs.items()}
        (self.out / "metrics").mkdir(exist_ok=True)
        for system, values in metrics.items():
            write_json(self.out / "metrics" / f"{system}.json", values)
        return metrics

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
        # The first process searches and mines; every process trains on its rows.
        self.mined = self._main(
            lambda: mine_pairs(
                positives, self.data, self.doc_ids, self.doc_texts, self.q_base, self.base_docs,
                config.mining,
            )
        )
        base = BaseEncoding(
            self.model, self.cache, self.data, self.doc_ids, self.doc_texts, self.base_docs,
            config.mining,
        )
        if config.corpus_pairs > 0:  # one process only (refuse_unsplit_options)
            self.mined = add_corpus_pairs(
                self.mined, base, config.corpus_pairs, config.seed, self.out, self.say
            )
        if config.qgen is not None:
            self.mined = add_generated_queries(self.mined, base, config.qgen, self.out, self.say)
        self._record_actual("mine")

        def write() -> None:
            write_mining(self.mined, self.out / "mined.jsonl", self.out / "mining_report.json")
            write_mining_samples(self.out, self.mined, base, positives, self.q_base)  # report.html

        self._main(write)

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
        checkpoint = (
            self._main(lambda: latest_checkpoint(self.out / "checkpoints")) if self.resume else None
        )
        if training.rotate:  # before resuming too: the checkpoint holds the rotation layer
            self.say("rotating the base model by the corpus's principal directions")
            rotate_to_corpus(self.model, self.base_docs)
            self.cache.forget(self.model)
        self.say(
            f"training on {len(self.mined.rows)} rows ({training.loss.value}, "
            f"{training.epochs} epochs)" + (f", resuming from {checkpoint.name}" if checkpoint else "")
        )
        self._guard(estimate_training(self.model, self.mined.rows, training))
        guide = None
        if training.loss.value == "gist":
            guide = load_model(self.base_path, self.device, self.config.trust_remote_code)
        evaluator = DevEvaluator(
            self.data.queries, self.dev, self.doc_ids, self.doc_texts, self.dims, self.cache
        )
        positives = known_positives(self.data, self.train, self.mined.rows)
        self.trained = train_model(
            self.model, self.mined.rows, training, self.out / "checkpoints", evaluator, guide,
            positives=positives,
            # Training time of the interrupted sessions counts in its seconds and rows/s.
            run=TrainRun(
                resume_from=checkpoint, keep_checkpoints=True, callbacks=self._clock(),
                earlier_seconds=self.clock.earlier_of("train"),
            ),
        )
        if training.remine_epochs:
            inputs = SecondRound(
                self.data, self.train, self.doc_ids, self.doc_texts, self.cache,
                self.config.mining, training, self.out, positives,
            )
            self.trained = second_round(self.model, self.trained, inputs, evaluator, self.say)
        self.trained = agree(self.trained)  # the kept epoch and round: the first process's
        self._record_actual("train")
        self.cache.forget(self.model)
        self._main(lambda: write_json(self.out / "training.json", asdict(self.trained)))

    def _clock(self) -> tuple[Any, ...]:
        if self.costs is None:
            return ()
        return (self.costs.step_clock(self.config, len(self.mined.rows), self.say),)

    def stage_save(self) -> None:
        final = self.out / "model"

        def save() -> None:  # DDP kept the weights identical in every process
            if not (final.is_dir() and "save" in self.previous.get("completed", [])):
                save_model(self.model, final)
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)

        self._main(save)

    def stage_evaluate(self) -> None:
        self.say("evaluating the tuned model on dev and test at every dim")
        # Dev evaluations stayed off the disk (weights of one epoch); the kept model is saved.
        qids = sorted({*self.dev, *self.test})
        with self._logged("evaluate"):
            tuned_docs = self._tuned_corpus()
            # model/ outlives the run: `honed index RUN/model` then finds its corpus encoding.
            self.cache.persist(self.model, self.doc_texts)
            q_tuned = encode_queries(self.cache, self.model, self.data, qids, disk=False)
        self._main(lambda: self._score_tuned(tuned_docs, q_tuned))

    def _tuned_corpus(self) -> Any:
        """The kept model's corpus encoding: from the kept epoch's dev evaluation when it is held.

        Under ``torchrun`` that evaluation ran in the first process (the others served its
        encode calls), so only the first process holds it; it alone scores, so only it needs it
        (None in the others).
        """
        if agree(self.cache.in_memory(self.model, self.doc_texts)):  # the first process's answer
            if not is_main_process():
                return None
            return self.cache.encode(self.model, self.doc_texts, disk=False, split=False)
        return self.cache.encode(self.model, self.doc_texts, show_progress_bar=True, disk=False)

    def _score_tuned(self, tuned_docs: Any, q_tuned: Any) -> None:
        """The first process: search and score the tuned model, fuse, test, plan; write it all."""
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
            dev_queries={q: self.data.queries[q] for q in self.dev},
            curve=curve,
            loss_curve=self.trained.loss_curve,
            q_base=self.q_base,
            n_resamples=config.n_resamples,
            seed=config.seed,
        )

    def stage_report(self) -> None:
        self.result = self._main(self._result)

    def _result(self) -> RunResult:
        result = RunResult(
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
            estimates=self.costs.records if self.costs is not None else {},
            budget=self.budget,
            sessions=self.clock.sessions,
        )
        write_report(result, Path(self.out))
        return result

