"""``honed check`` and ``honed diagnose``: is this data usable, and is it worth fine-tuning?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from honed.cli.configs import diagnose_config
from honed.data.check import check_dataset
from honed.data.plan import RunPlan
from honed.data.shift import SplitShift
from honed.data.splits import SplitRule, positives_only
from honed.data.user_queries import load_user_queries

__all__ = ["cmd_check", "cmd_diagnose"]


def _n(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _plan_line(plan: RunPlan) -> str:
    """One sentence: what ``honed run`` trains, chooses and reports on, and what it drops.

    Queries are counted when they have a positive judgment: the others yield no training pair
    and are left out of the dev and test metrics.
    """
    train, dev, test = (
        len(positives_only(q)) for q in (plan.splits.train, plan.splits.dev, plan.splits.test)
    )
    line = (
        f"honed run will train on {_n(train, 'query', 'queries')} "
        f"({_n(plan.train_pairs, 'pair', 'pairs')}), choose checkpoints on "
        f"{_n(dev, 'dev query', 'dev queries')} ({plan.dev_source}) and report on "
        f"{_n(test, 'test query', 'test queries')}; "
    )
    reasons = plan.drop_reasons()
    shown = ", ".join(f"{qid}: {why}" for qid, why in list(reasons.items())[:3])
    shown += ", ..." if len(reasons) > 3 else ""
    if plan.allow_leakage:
        kept = len(plan.leakage.leaked_qids - set(reasons))
        return line + (
            f"--allow-leakage: the leakage filter is off ({_n(kept, 'query', 'queries')} "
            f"duplicating a test query's text stay in training"
            + f"; {len(reasons)} with a test query's id are still dropped" * bool(reasons)
            + ")"
        )
    return line + (
        f"the leakage filter drops {_n(len(reasons), 'training query', 'training queries')}"
        + f" ({shown})" * bool(reasons)
        + "; the base model may find more near duplicates when honed run starts"
    )


def shift_lines(shift: SplitShift | None) -> list[str]:
    """Each query set's length and openings, then the one-line shift warning per reference."""
    if shift is None:
        return []
    lines = [
        f"  {p.name:>7} queries: mean {p.mean_words:.1f} words, {p.template_share:.0%} open with "
        f"a repeated first 3 words (most common: \"{p.top_opening}\", {p.top_opening_share:.0%})"
        for p in shift.profiles
    ]
    return lines + [f"warning: {line}" for line in shift.warnings]


def _user_queries(args: argparse.Namespace) -> dict[str, str] | None:
    return load_user_queries(args.queries) if getattr(args, "queries", None) else None


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a BEIR folder; exit 1 when it has problems or honed run would refuse it, else
    say what honed run will do with it."""
    rule = SplitRule(args.dev_fraction, args.min_dev_queries, args.seed)
    report = check_dataset(args.data, rule, args.allow_leakage, _user_queries(args))
    print(f"{report.path}: {report.n_documents} documents, {report.n_queries} queries")
    for s in report.splits:
        print(
            f"  {s.name:>6}: {s.n_queries} queries, {s.n_judgments} judgments, {s.n_positive} positive"
            + (
                f", {s.queries_without_positive} queries without a positive"
                if s.queries_without_positive
                else ""
            )
        )
    for label, st in (("documents", report.document_lengths), ("queries", report.query_lengths)):
        print(
            f"  {label} length (words): mean {st.mean_words:.1f}, median {st.p50_words:.0f}, "
            f"p95 {st.p95_words:.0f}, max {st.max_words}"
        )
    for line in shift_lines(report.shift):
        print(line)
    for w in report.warnings:
        print(f"warning: {w}")
    for problem in report.problems:
        print(f"problem: {problem}")
    if not report.ok:
        print(
            f"error: {len(report.problems)} problem(s) found; fix them and run `honed check {args.data}` again",
            file=sys.stderr,
        )
        return 1
    if report.refusal:  # the line honed run would stop with, before loading a model
        print(f"error: {report.refusal}", file=sys.stderr)
        return 1
    missing = [name for name in ("train", "test") if name not in {sp.name for sp in report.splits}]
    if missing:
        print(
            f"ok, but honed run needs qrels/{' and qrels/'.join(m + '.tsv' for m in missing)} "
            f"(it trains on train and reports on test). next: honed evaluate MODEL {args.data} "
            f"--split {report.splits[0].name if report.splits else 'test'}"
        )
        return 0
    if report.plan is not None:
        print(_plan_line(report.plan))
    print(f"ok. next: honed run {args.data} --out runs/{Path(args.data).name}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Measure the domain (and with --probe, a short fine-tune); print the report and next step."""
    from honed.diagnosis.diagnoser import Verdict, diagnose, render_diagnosis  # imports torch

    result = diagnose(
        diagnose_config(args),
        notify=lambda m: print(f"[honed] {m}", file=sys.stderr, flush=True),
        show_progress_bar=True,
    )
    text = render_diagnosis(result)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    if result.verdict is Verdict.NOT_RECOMMENDED:
        print(
            f"next: use the base model as it is, or compare: honed evaluate {args.base} {args.data} --bm25"
        )
    else:
        print(f"next: honed run {args.data} --out runs/{Path(args.data).name} --base {args.base}")
    return 0
