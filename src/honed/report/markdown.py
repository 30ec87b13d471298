"""``report.md`` from a :class:`~honed.pipeline.results.RunResult`; nothing here computes metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honed.evaluation.deployment import verdict_headline, verdict_kind
from honed.evaluation.worth import VerdictKind
from honed.index.plan_report import render_plan
from honed.index.planner import PlanResult
from honed.report.model_card import rotation_note

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["COLUMNS", "HEADERS", "metrics_table", "render_markdown"]

COLUMNS = ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10", "recall@100", "map@100")
HEADERS = ("nDCG@10", "MRR@10", "R@1", "R@5", "R@10", "R@100", "MAP@100")


def _dims(metrics: Mapping[str, Any], split: str) -> list[str]:
    return sorted(metrics["base"][split], key=int, reverse=True)


def metrics_table(metrics: Mapping[str, Any], split: str) -> str:
    """A markdown table of every system at every dim on ``split``; tuned rows show the change vs base."""
    lines = [
        "| system | dim | " + " | ".join(HEADERS) + " |",
        "|---|---:|" + "---:|" * len(HEADERS),
    ]
    if "bm25" in metrics:
        row = metrics["bm25"][split]["bm25"]
        lines.append("| BM25 | - | " + " | ".join(f"{row[c]:.4f}" for c in COLUMNS) + " |")
    for dim in _dims(metrics, split):
        base = metrics["base"][split][dim]
        lines.append(f"| base | {dim} | " + " | ".join(f"{base[c]:.4f}" for c in COLUMNS) + " |")
    if "tuned" in metrics:
        for dim in _dims(metrics, split):
            base, tuned = metrics["base"][split][dim], metrics["tuned"][split][dim]
            cells = [f"**{tuned[c]:.4f}** ({tuned[c] - base[c]:+.3f})" for c in COLUMNS]
            lines.append(f"| tuned | {dim} | " + " | ".join(cells) + " |")
    if "hybrid" in metrics:  # tuned at full dim fused with BM25: see the hybrid section
        row = metrics["hybrid"][split]["hybrid"]
        lines.append("| hybrid | - | " + " | ".join(f"{row[c]:.4f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def _hybrid_section(run: RunResult) -> str:
    """Chosen fusion, the test comparisons with its parts, and which retrieval to deploy."""
    fusion, retrieval = run.evidence["fusion"], run.verdict.get("retrieval")
    full = str(max(int(d) for d in run.metrics["tuned"]["test"]))
    tests = {
        (t["system_a"], t["system_b"]): t
        for t in run.evidence["test"]["tests"]
        if t["metric"] == "ndcg@10"
    }
    methods = ", ".join(dict.fromkeys(g["method"] for g in fusion["grid"]))
    lines = [
        f"The tuned model at {full} dims fused with BM25. Method and dense weight chosen on dev "
        f"nDCG@10 over {len(fusion['grid'])} settings ({methods} x dense weight): "
        f"**{fusion['method']}, dense weight {fusion['weight']:g}** (BM25 "
        f"{1 - fusion['weight']:g}), dev nDCG@10 {fusion['dev_ndcg10']:.4f}.",
        "",
    ]
    for label, key in (("tuned (dense)", f"tuned@{full}"), ("BM25", "bm25")):
        if (key, "hybrid") in tests:
            lines.append(f"- Test, hybrid vs {label}: {tests[(key, 'hybrid')]['sentence']}.")
    if retrieval:
        dev = retrieval["ndcg10"]["dev"]
        lines.append(
            f"\nDeploy: **{retrieval['deploy']}** (dev nDCG@10: dense ({retrieval['dense_model']}) "
            f"{dev['dense']:.4f}, BM25 {dev['bm25']:.4f}, hybrid {dev['hybrid']:.4f}; decided on "
            "dev, test reported only)."
        )
    return "## Hybrid (dense + BM25)\n\n" + "\n".join(lines)


def _plan_section(run: RunResult) -> str:
    """The budget planner: test table, Pareto plot and the configuration chosen on dev."""
    plan = run.plan
    title = "## Deployment: shortlist dim x precision\n\n"
    if "skipped" in plan:
        return title + f"Not measured: {plan['skipped']}."
    test = PlanResult.from_dict(plan["test"])
    dev_ref, dev_rec, rec = plan["dev"]["reference"], plan["dev"]["recommended"], test.recommended
    intro = (
        "The tuned model's corpus and test query embeddings from the evaluation above: a shortlist "
        "on the first d dims at a fast-tier precision, re-ranked at full dim, and exact search at "
        f"each dim. The recommendation is chosen on dev ({plan['dev']['n_queries']} queries; "
        f"there {dev_rec['name']} scored nDCG@10 {dev_rec['ndcg_at_10']:.4f} vs "
        f"{dev_ref['ndcg_at_10']:.4f} for {dev_ref['name']}); the table is test, measured once "
        f"({plan['seconds']:.1f} s for both splits)."
    )
    if rec.exact:
        deploy = f"Deploy: exact {rec.shortlist_dim}-dim search, no shortlist."
    else:
        deploy = (
            f"Deploy: `honed index {run.run_dir}/model {run.data['path']} --out index "
            f"--shortlist-dim {rec.shortlist_dim} --precision {rec.precision.value}`, then search "
            f"with `--shortlist {rec.shortlist}`."
        )
    plot = "![nDCG@10 vs bytes per document and latency](plots/plan.png)"
    return title + "\n\n".join([intro, render_plan(test).rstrip(), plot, deploy])


def _mining_table(mining: Mapping[str, Any]) -> str:
    rows = [
        ("training pairs", mining["pairs"]),
        ("training queries", mining["queries"]),
        ("negatives per pair", mining["num_negatives"]),
        ("candidates seen", mining["candidates_seen"]),
        ("dropped: known positive", mining["dropped_known_positive"]),
        ("dropped: same text as a positive", mining["dropped_duplicate_text"]),
        ("dropped: above the positive-aware margin", mining["dropped_margin"]),
        ("pairs filled from deeper in the ranking", mining["pairs_filled_from_deeper"]),
        ("pairs kept with fewer than N negatives", mining["pairs_short"]),
        ("pairs with no negative at all (not trained on)", mining["pairs_without_negatives"]),
    ]
    out = ["| | count |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rows]]
    pos, neg = mining["positive_score_quantiles"], mining["negative_score_quantiles"]
    if pos and neg:
        out += ["", "| score quantile | " + " | ".join(pos) + " |", "|---|" + "---:|" * len(pos)]
        out.append("| positives | " + " | ".join(f"{v:.3f}" for v in pos.values()) + " |")
        out.append("| kept negatives | " + " | ".join(f"{v:.3f}" for v in neg.values()) + " |")
    return "\n".join(out)


def _curve_table(training: Mapping[str, Any]) -> str:
    curve = training["curve"]
    keys = [k for k in curve[0] if k != "epoch"]
    lines = ["| epoch | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    for point in curve:
        mark = " (kept)" if point["epoch"] == training["best_epoch"] and point["epoch"] > 0 else ""
        lines.append(
            f"| {point['epoch']:g}{mark} | "
            + " | ".join(f"{point.get(k, float('nan')):.4f}" for k in keys)
            + " |"
        )
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _timings_table(run: RunResult) -> str:
    """Seconds per stage next to the estimate printed before the baseline and its correction."""
    estimates = getattr(run, "estimates", None) or {}  # older runs have none
    rows = []
    for stage, seconds in run.timings.items():
        record = estimates.get(stage, {})
        rows.append(
            f"| {stage} | {seconds:.1f} | {_seconds(record.get('estimate_seconds'))} | "
            f"{_seconds(record.get('corrected_seconds'))} |"
        )
    total = sum(run.timings.values())
    estimated = sum(r.get("estimate_seconds") or 0.0 for r in estimates.values())
    table = (
        "| stage | seconds | estimated | corrected |\n|---|---:|---:|---:|\n" + "\n".join(rows)
        + f"\n| **total** | {total:.1f} | {_seconds(estimated) if estimates else ''} | |"
    )
    budget = getattr(run, "budget", None)
    note = (
        "\n\nEstimated: before the baseline, from the texts' token lengths, a timed probe and the "
        "step counts; corrected: from the stage's own first steps."
        if estimates else ""
    )  # fmt: skip
    return table + note + (f"\n\nTime budget: {budget['sentence']}." if budget else "")


def _sessions_note(sessions: int) -> str:
    """Says that the seconds add up every session of a resumed run ('' for one session)."""
    if sessions <= 1:
        return ""
    return (
        f"The run took {sessions} sessions (resumed {sessions - 1} time"
        f"{'s' if sessions > 2 else ''}): each stage's seconds add up what every session spent "
        "in it, the interrupted ones included.\n\n"
    )


def _shift_note(evidence: Mapping[str, Any]) -> str:
    """The train/test shift warning under the verdict's first line (empty when it did not fire)."""
    warnings = (evidence.get("shift") or {}).get("warnings") or []
    if not warnings:
        return ""
    return "\n\nWarning: the training queries look unlike the test queries: " + "; ".join(warnings) + "."


def render_markdown(run: RunResult) -> str:
    """The whole ``report.md``: verdict first, then tables, plots, mining, training, data, timings."""
    data, training = run.data, run.training
    sections = [
        f"# honed run report: `{Path(data['path']).name}`",
        f"## Verdict\n\n**{verdict_headline(run.verdict)}**{_shift_note(run.evidence)}\n\n"
        + "\n".join(f"- {s}" for s in run.verdict["sentences"]),
        "Model: "
        + (
            f"`{run.run_dir}/model` (tuned"
            + ("; chosen on dev, not confirmed on test)" if verdict_kind(run.verdict)
               == VerdictKind.NOT_CONFIRMED.value else ")")
            if run.verdict["recommendation"] == "tuned"
            else f"`{run.config['base_model']}` (base)"
        ),
        "## Test split (held out, used only here)\n\n" + metrics_table(run.metrics, "test"),
        "## Dev split (carved from training data; model selection)\n\n"
        + metrics_table(run.metrics, "dev"),
        "![nDCG@10 vs dimension](plots/ndcg_vs_dim.png)",
        *([_hybrid_section(run)] if "fusion" in run.evidence and "hybrid" in run.metrics else []),
        *([_plan_section(run)] if getattr(run, "plan", None) else []),  # older runs have none
        "## Training\n\n"
        f"{training['rows']} rows, {training['steps']} steps, {training['seconds'] / 60:.1f} min "
        f"({training['rows_per_second']:.2f} rows/s, {training['precision']}), Matryoshka dims "
        f"{', '.join(map(str, training['dims']))}. Epoch 0 is the untuned model; the epoch with the best "
        f"dev nDCG@10 is kept (epoch {training['best_epoch']:g}).{rotation_note(training)}\n\n"
        + _curve_table(training),
        "![training curve](plots/training_curve.png)",
        *([_evidence_section(run.evidence)] if run.evidence else []),
        "## Hard-negative mining\n\n" + _mining_table(run.mining),
        "## Data\n\n" + _data_section(data),
        "## Time per stage\n\n" + _timings_table(run) + "\n\n"
        + _sessions_note(getattr(run, "sessions", 1))
        + f"Texts encoded: {run.encode_stats['encoded']} of {run.encode_stats['requested']} requested "
        "(the rest came from the embedding cache: each text is encoded once per model).",
        "## Environment\n\n" + "\n".join(f"- {k}: {v}" for k, v in run.environment.items()),
    ]
    return "\n\n".join(sections) + "\n"


def _significance_table(tests: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| comparison | metric | mean A | mean B | B - A | 95% CI | p | wins / ties / losses |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for t in tests:
        p = "< 0.001" if t["p_value"] < 0.001 else f"{t['p_value']:.3f}"
        lines.append(
            f"| {t['system_b']} vs {t['system_a']} | {t['metric']} | {t['mean_a']:.4f} | "
            f"{t['mean_b']:.4f} | {t['delta']:+.4f} | [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] | "
            f"{p} | {t['wins']} / {t['ties']} / {t['losses']} |"
        )
    return "\n".join(lines)


def _changes_table(changes: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| query | nDCG@10 base -> tuned | first relevant rank | top document base / tuned |",
        "|---|---|---|---|",
    ]
    for c in changes:
        text = c["query"].replace("|", "/")[:90]
        ranks = f"{c['first_relevant_rank_a'] or '>100'} -> {c['first_relevant_rank_b'] or '>100'}"
        tops = (
            f"{c['top_doc_a']}{' (relevant)' if c['top_doc_a_relevant'] else ''} / "
            f"{c['top_doc_b']}{' (relevant)' if c['top_doc_b_relevant'] else ''}"
        )
        lines.append(
            f"| {c['qid']}: {text} | {c['value_a']:.3f} -> {c['value_b']:.3f} | {ranks} | {tops} |"
        )
    return "\n".join(lines)


def _leakage_section(leak: Mapping[str, Any]) -> str:
    shared = leak["shared_positives"]
    lines = [
        f"Training (train + dev) vs test queries: {len(leak['exact'])} exact duplicates and "
        f"{len(leak['near'])} near duplicates (character 5-gram Jaccard >= {leak['char_threshold']} "
        f"or embedding cosine >= {leak['cosine_threshold']}).",
    ]
    if leak["allowed"]:
        lines.append(
            "**They were kept in training (--allow-leakage): the test metrics are NOT clean.**"
        )
    else:
        lines.append(
            f"{leak['dropped_from_training']} training queries were dropped from train/dev so "
            "the test metrics stay clean."
        )
    lines.append(
        f"\nSeen text: {shared['test_queries_with_a_training_positive']} of "
        f"{shared['test_queries']} test queries have a relevant document that is also a training "
        f"positive ({shared['test_positive_docs_seen_in_training']} of "
        f"{shared['test_positive_docs']} relevant test documents). A shared corpus is normal; "
        "this says how much of the test set is text the model was trained on."
    )
    pairs = list(leak["exact"]) + list(leak["near"])
    if pairs:
        lines += [
            "",
            "| train query | test query | kind | char sim | cosine |",
            "|---|---|---|---:|---:|",
        ]
        for p in pairs[:15]:
            cos = "-" if p["cosine"] is None else f"{p['cosine']:.3f}"
            lines.append(
                f"| {p['qid_a']}: {p['text_a'][:60]} | {p['qid_b']}: {p['text_b'][:60]} | "
                f"{p['kind']} | {p['char_similarity']:.2f} | {cos} |"
            )
        if len(pairs) > 15:
            lines.append(f"\n({len(pairs) - 15} more in metrics/evidence.json)")
    return "\n".join(lines)


def _evidence_section(evidence: Mapping[str, Any]) -> str:
    test = evidence["test"]
    parts = [
        "## Significance (test split)\n\n"
        f"Paired bootstrap 95% confidence intervals and paired randomization (sign-flip) tests, "
        f"{test['n_resamples']} resamples, seed {test['seed']}.\n\n"
        + _significance_table(test["tests"]),
        "![per-query nDCG@10 change](plots/per_query_delta.png) "
        "![rank of the first relevant document](plots/first_rank.png)",
        "## Most improved test queries (tuned vs base, full dim)\n\n"
        + _changes_table(test["improved"]),
        "## Most regressed test queries\n\n" + _changes_table(test["regressed"]),
        "## Leakage and overfitting checks\n\n" + _leakage_section(evidence["leakage"]),
        f"Training curve: {evidence['overfitting_warning'] or 'no sign of overfitting (dev nDCG@10 did not fall while the training loss kept dropping).'}",
        _train_test_line(evidence),
    ]
    if evidence.get("splits"):
        parts.append(_splits_table(evidence["splits"]))
    return "\n\n".join(parts)


def _train_test_line(evidence: Mapping[str, Any]) -> str:
    """Train vs test in one line; its warning only where no every-split table follows (that
    table states it, with dev's: the same finding is not written twice)."""
    shift = evidence["shift"]
    line = (
        f"Train vs test queries: mean length {shift['train_mean_words']:.1f} vs "
        f"{shift['test_mean_words']:.1f} words, {shift['vocabulary_overlap']:.0%} of test query "
        "words occur in training queries"
        + (f", query-centroid cosine {shift['centroid_cosine']:.3f}"
           if shift["centroid_cosine"] is not None else "")
        + ". "
    )  # fmt: skip
    if evidence.get("splits"):
        return line + "Every split against test, with its warnings: below."
    return line + (" ".join(shift["warnings"]) or "They look like one population.")


def _splits_table(splits: Mapping[str, Any]) -> str:
    """Each split's queries (as ``honed check`` prints them) and the shift warnings against test."""
    lines = [
        "Every split against test (base-model embeddings for the centroid distance):\n",
        "| split | queries | mean words | open with a repeated first 3 words | most common |",
        "|---|---:|---:|---:|---|",
    ]
    for p in splits["profiles"]:
        lines.append(
            f"| {p['name']} | {p['n_queries']} | {p['mean_words']:.1f} | "
            f"{p['template_share']:.0%} | \"{p['top_opening']}\" ({p['top_opening_share']:.0%}) |"
        )
    warnings = splits.get("warnings") or []
    return "\n".join(lines) + "\n\n" + (" ".join(warnings) or "No split differs from test.")


def _data_section(data: Mapping[str, Any]) -> str:
    lines = [
        f"{data['documents']} documents, {data['queries']} queries.",
        "",
        "| split | queries | positive pairs | queries without positive |",
        "|---|---:|---:|---:|",
    ]
    for name, s in data["splits"].items():
        lines.append(
            f"| {name} | {s['queries']} | {s['pairs']} | {s['queries_without_positive']} |"
        )
    if data["train_queries_dropped_as_leaked"]:
        lines.append(
            f"\n{len(data['train_queries_dropped_as_leaked'])} training queries were also test queries "
            "and were dropped from training."
        )
    sample = data.get("train_sample")
    if sample:
        lines.append(
            f"\nTrained on {sample['kept']:,} of {sample['available']:,} training queries with a "
            f"positive (--max-train-queries {sample['max_train_queries']:,}, seed "
            f"{sample['seed']}); dev and test are whole."
        )
    lines += [f"- warning: {w}" for w in data["warnings"]]
    return "\n".join(lines)
