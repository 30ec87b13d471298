"""``honed run --resume RUN_DIR [options]``: which settings a resume may change, and why.

A resume redoes load, baseline and mining from the same inputs (the embedding cache makes the
baseline cheap) and continues training from the newest epoch checkpoint. A setting may change
on resume only when the work already done stays valid under the new value; every other change
is refused, naming the options and the fix (a new run with ``--out``). Nothing is ignored
silently: an applied change is said in one line and recorded in ``config.json``
(``resume_changes``).

Safe, with the reason (:data:`RULES`):

* ``epochs``: the checkpoints are per epoch; training continues to the new count and the
  learning-rate schedule is spread over it from the checkpoint on. Fewer epochs than a
  checkpoint already holds are refused (that training cannot be undone).
* ``remine_epochs``, ``remine_learning_rate``: the second round starts after the first and
  keeps no checkpoint, so it runs with the new values (0: no second round).
* ``mini_batch_size``: memory only; the cached loss computes the same gradients for any size.
* ``logging_steps``: how often the loss is logged (the report's curve), not what is learned.
* ``bm25``, ``n_resamples``: the BM25 baseline and the paired tests are recomputed on resume.
* ``cache_dir``, ``trust_remote_code``: where vectors are kept, whether a model's own code may
  run; neither changes a result.

Refused: everything that shaped the rows already mined or the weights already trained: the
data, base model, splits (``dev_fraction``, ``min_dev_queries``, ``seed``, ``allow_leakage``,
``max_train_queries``), device and precision (the baseline encoding, hence the mined rows),
``encode_batch_size`` (batch composition changes the vectors' last bits, hence possibly a
mined row), every mining option, extra rows (``corpus_pairs``, ``qgen``) and every other
training option (loss, batch size, learning rate and weight decay are restored from the
checkpoint's optimizer and scheduler, so a new value would not even take effect).

Training options change nothing once training finished (the saved model is reused), so then
they are refused as well.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honed.training.trainer import checkpoint_epoch, latest_checkpoint

__all__ = [
    "RULES",
    "Change",
    "ResumeChanges",
    "apply_changes",
    "change_record",
    "plan_changes",
    "plan_resume",
]


@dataclass(frozen=True)
class Rule:
    """How a resume treats one setting: its option name, and whether it may change."""

    option: str
    safe: bool
    training: bool = False  # takes effect only while training is not finished


RULES: dict[str, Rule] = {
    "training.epochs": Rule("--epochs", True, training=True),
    "training.remine_epochs": Rule("--remine-epochs", True, training=True),
    "training.remine_learning_rate": Rule("remine_learning_rate", True, training=True),
    "training.mini_batch_size": Rule("--mini-batch-size", True, training=True),
    "training.logging_steps": Rule("logging_steps", True, training=True),
    "bm25": Rule("--no-bm25", True),
    "n_resamples": Rule("n_resamples", True),
    "cache_dir": Rule("--cache-dir/--no-cache", True),
    "trust_remote_code": Rule("--trust-remote-code", True),
    "data": Rule("DATA", False),
    "base_model": Rule("--base", False),
    "dev_fraction": Rule("--dev-fraction", False),
    "min_dev_queries": Rule("--min-dev-queries", False),
    "seed": Rule("--seed", False),
    "allow_leakage": Rule("--allow-leakage", False),
    "max_train_queries": Rule("--max-train-queries", False),
    # The budget was planned into the run's settings when it started (config.json budget_plan).
    "time_budget": Rule("--time-budget", False),
    "device": Rule("--device", False),
    "precision": Rule("--precision", False),
    "encode_batch_size": Rule("--encode-batch-size", False),
    "corpus_pairs": Rule("--corpus-pairs", False),
    "qgen": Rule("--qgen-*", False),
    "overwrite": Rule("--overwrite", False),
    "out": Rule("--out", False),
    "mining.num_negatives": Rule("--negatives", False),
    "mining.depth": Rule("--depth", False),
    "mining.margin": Rule("--margin", False),
    "mining.strategy": Rule("--sampling", False),
    "training.loss": Rule("--loss", False),
    "training.batch_size": Rule("--batch-size", False),
    "training.learning_rate": Rule("--lr", False),
    "training.dims": Rule("--dims", False),
    "training.matryoshka": Rule("--no-matryoshka", False),
    "training.max_seq_length": Rule("--max-seq-length", False),
    "training.label_aware_batches": Rule("--label-aware-batches", False),
    "training.label_aware_loss": Rule("--label-aware-loss", False),
    "training.rotate": Rule("--no-rotate", False),
}
"""Setting (a dotted path into ``RunConfig.to_dict()``) -> its rule; a setting not listed is refused."""


@dataclass(frozen=True)
class Change:
    """One setting asked to change: its dotted path, option name, value before and after."""

    field: str
    option: str
    old: Any
    new: Any

    def describe(self) -> str:
        """``--epochs 1 (was 5)``."""
        return f"{self.option} {_show(self.new)} (was {_show(self.old)})"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class ResumeChanges:
    """The changes a resume applies, and those it refuses (with why)."""

    applied: tuple[Change, ...]
    refused: tuple[Change, ...]
    reason: str = ""  # why the refused ones cannot change

    def refusal(self, run_dir: str) -> str:
        """One line: what cannot change, why, and the fix."""
        listed = ", ".join(c.describe() for c in self.refused)
        return (
            f"{run_dir}: cannot resume with {listed}: {self.reason}; fix: start a new run with "
            f"--out NEW_DIR (and these options), or resume without them"
        )


def _get(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def plan_changes(
    old: Mapping[str, Any],
    requested: Mapping[str, Any],
    trained: bool,
    checkpoint_epoch: float = 0.0,
) -> ResumeChanges:
    """Sort the ``requested`` values (dotted path -> value) into applied and refused changes.

    Args:
        old: the run's ``config.json`` (``RunConfig.to_dict()`` form).
        requested: settings given with ``--resume``; values equal to the old ones are no change.
        trained: the first session finished training (its model is saved).
        checkpoint_epoch: epochs the newest checkpoint holds (0.0: none).

    Example:
        >>> plan = plan_changes({"training": {"epochs": 5}}, {"training.epochs": 1}, trained=False)
        >>> plan.applied[0].describe(), plan.refused
        ('--epochs 1 (was 5)', ())
    """
    changes = [
        Change(path, RULES[path].option if path in RULES else path, _get(old, path), value)
        for path, value in requested.items()
        if _plain(value) != _plain(_get(old, path))
    ]
    unsafe = [c for c in changes if c.field not in RULES or not RULES[c.field].safe]
    if unsafe:
        return ResumeChanges((), tuple(unsafe), "they shape the mined rows or the trained "
                             "weights already computed")
    late = [c for c in changes if trained and RULES[c.field].training]
    if late:
        return ResumeChanges((), tuple(late), "training finished before the interruption (the "
                             "saved model is reused), so they would change nothing")
    epochs = next((c for c in changes if c.field == "training.epochs"), None)
    if epochs is not None and int(epochs.new) < checkpoint_epoch:
        return ResumeChanges((), (epochs,), (
            f"the newest checkpoint already holds {checkpoint_epoch:g} epochs (training cannot "
            "be undone)"
        ))
    return ResumeChanges(tuple(changes), ())


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (config.json holds lists)."""
    return list(value) if isinstance(value, tuple) else value


def apply_changes(values: Mapping[str, Any], changes: tuple[Change, ...]) -> dict[str, Any]:
    """A copy of ``values`` (``config.json`` form) with ``changes`` applied."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items()}
    for change in changes:
        *parents, leaf = change.field.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _plain(change.new)
    return out


def plan_resume(
    run_dir: Path, values: Mapping[str, Any], requested: Mapping[str, Any]
) -> ResumeChanges:
    """:func:`plan_changes` for the run folder ``run_dir`` as it was left (status, checkpoints).

    Raises:
        ValueError: a requested change cannot be applied (one line: which, why, the fix).
    """
    status_path = run_dir / "status.json"
    status = json.loads(status_path.read_text(encoding="utf-8")) if status_path.is_file() else {}
    trained = "save" in status.get("completed", [])
    epoch = checkpoint_epoch(latest_checkpoint(run_dir / "checkpoints"))
    plan = plan_changes(values, requested, trained, epoch)
    if plan.refused:
        raise ValueError(plan.refusal(str(run_dir)))
    return plan


def change_record(changes: tuple[Change, ...]) -> dict[str, Any]:
    """What ``config.json``'s ``resume_changes`` list gets for one resume: when, and each change."""
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changes": [
            {"field": c.field, "option": c.option, "old": _plain(c.old), "new": _plain(c.new)}
            for c in changes
        ],
    }
