"""``honed run --time-budget`` on several domains: base vs tuned on dev and test, and the clock.

Each dataset is one ``honed run`` through the CLI, as a user types it, with its own empty
embedding cache (so the baseline really encodes) and the given budget. The script then reads the
run folder and prints two markdown tables: quality (nDCG@10 on dev and test, base / tuned /
BM25, the verdict's kind) and time (the budget plan, wall seconds, and per stage the estimate
printed before the baseline vs the actual seconds).

    python bench/domains.py --budget 10m --out /tmp/domains \\
        ../shared/data/scifact ../shared/data/tldr ../shared/data/django_code ../shared/data/tatqa
    python bench/domains.py --budget 5m,10m,20m --warm --out /tmp/sweep ../shared/data/scifact
    python bench/domains.py --table --out /tmp/domains   # the tables of the runs made so far

``--warm`` first runs the base model's baseline (``honed evaluate``) into one cache per dataset,
as a user does before tuning, so the budgeted runs' baselines encode nothing.

Run it alone (one torch job at a time): the times are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STAGES = ("baseline", "mine", "train", "evaluate")


def _honed() -> str:
    return str(Path(sys.executable).with_name("honed"))


def warm_cache(data: Path, cache: Path) -> float:
    """The base model's baseline (``honed evaluate``, all splits), as a user runs it before
    tuning: its encodings land in ``cache``. Seconds taken."""
    start = time.perf_counter()
    for split in ("train", "test"):
        subprocess.run(
            [_honed(), "evaluate", "all-MiniLM-L6-v2", str(data), "--split", split,
             "--cache-dir", str(cache)],
            check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return time.perf_counter() - start


def run_one(
    data: Path, budget: str, out: Path, extra: list[str], cache: Path | None = None
) -> dict[str, Any]:
    """One budgeted run of ``data``; its record is saved as ``out/bench-<name>-<budget>.json``.

    ``cache``: a shared embedding cache (warm: the baseline encodes nothing); else an empty one.
    """
    name = data.name
    run = out / f"{name}-{budget}"
    command = [
        _honed(), "run", str(data), "--out", str(run), "--overwrite", "--time-budget", budget,
        "--cache-dir", str(cache or out / f"cache-{name}-{budget}"), *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    record = {
        **read_run(run),
        "dataset": name,
        "budget": budget,
        "cache": "warm" if cache else "empty",
        "extra": extra,
        "wall_seconds": round(wall, 1),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    (out / f"bench-{name}-{budget}.json").write_text(json.dumps(record, indent=1), "utf-8")
    return record


def read_run(run: Path) -> dict[str, Any]:
    """What the tables need from a finished run folder."""
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    metrics = {
        system: json.loads((run / "metrics" / f"{system}.json").read_text(encoding="utf-8"))
        for system in ("base", "tuned", "bm25")
        if (run / "metrics" / f"{system}.json").is_file()
    }
    full = str(max(int(d) for d in metrics["base"]["test"]))
    def at_full(by_dim: dict[str, Any]) -> float:  # BM25 has one entry, not one per dim
        return float((by_dim[full] if full in by_dim else next(iter(by_dim.values())))["ndcg@10"])

    ndcg = {
        system: {split: at_full(by_split[split]) for split in ("dev", "test")}
        for system, by_split in metrics.items()
    }
    data = report["data"]["splits"]
    return {
        "ndcg10": ndcg,
        "queries": {split: data[split]["queries"] for split in ("train", "dev", "test")},
        "documents": report["data"]["documents"],
        "verdict": report["verdict"]["kind"],
        "plan": (report.get("budget") or {}).get("sentence", ""),
        "estimates": report.get("estimates") or {},
    }


def quality_table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | budget | docs | train / dev / test queries | dev base | dev tuned | "
        "test base | test tuned | test BM25 | verdict |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        n, q = r["ndcg10"], r["queries"]
        bm25 = f"{n['bm25']['test']:.3f}" if "bm25" in n else ""
        lines.append(
            f"| {r['dataset']} | {r['budget']}{' (warm)' * (r.get('cache') == 'warm')} | "
            f"{r['documents']:,} | "
            f"{q['train']:,} / {q['dev']:,} / {q['test']:,} | {n['base']['dev']:.3f} | "
            f"{n['tuned']['dev']:.3f} | {n['base']['test']:.3f} | {n['tuned']['test']:.3f} | "
            f"{bm25} | {r['verdict']} |"
        )
    return "\n".join(lines)


def time_table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | budget | wall s | wall / budget | "
        + " | ".join(f"{s} est / actual s" for s in STAGES)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(STAGES),
    ]
    for r in records:
        cells = []
        for stage in STAGES:
            e = r["estimates"].get(stage, {})
            est, act = e.get("estimate_seconds"), e.get("actual_seconds")
            ratio = f" ({est / act:.2f})" if est is not None and act else ""
            cells.append(f"{est} / {act}{ratio}")
        budget = _seconds(r["budget"])
        lines.append(
            f"| {r['dataset']} | {r['budget']} | {r['wall_seconds']} | "
            f"{r['wall_seconds'] / budget:.2f} | " + " | ".join(cells) + " |"
        )
    plans = [f"- {r['dataset']} {r['budget']}: {r['plan']}" for r in records]
    return "\n".join(lines + ["", *plans])


def plot(records: list[dict[str, Any]], path: Path, extra: list[tuple[str, float, float, float]]) -> None:
    """dev and test nDCG@10 against wall minutes, one line per dataset; the untuned model dashed.

    ``extra``: (label, minutes, dev, test) points measured elsewhere (e.g. an unlimited run).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in sorted({r["dataset"] for r in records}):
        runs = sorted((r for r in records if r["dataset"] == name), key=lambda r: r["wall_seconds"])
        minutes = [r["wall_seconds"] / 60 for r in runs]
        for split, style in (("dev", "o-"), ("test", "s-")):
            ax.plot(minutes, [r["ndcg10"]["tuned"][split] for r in runs], style,
                    label=f"{name} {split}, tuned")  # fmt: skip
            ax.axhline(runs[0]["ndcg10"]["base"][split], linestyle="--", linewidth=0.8,
                       color=ax.lines[-1].get_color(), label=f"{name} {split}, untuned")  # fmt: skip
        for r, m in zip(runs, minutes):
            ax.annotate(r["budget"], (m, r["ndcg10"]["tuned"]["dev"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)  # fmt: skip
    for label, minutes, dev, test in extra:
        ax.plot([minutes], [dev], "o", color="gray")
        ax.plot([minutes], [test], "s", color="gray")
        ax.annotate(label, (minutes, dev), textcoords="offset points", xytext=(-40, 6), fontsize=8)
    ax.set_xlabel("wall minutes of `honed run --time-budget` (whole run)")
    ax.set_ylabel("nDCG@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def _seconds(budget: str) -> float:
    from honed.pipeline.budget import parse_duration

    return parse_duration(budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="*", type=Path, help="BEIR folders, one run each")
    parser.add_argument("--budget", default="10m",
                        help="--time-budget of every run, or several: 5m,10m,20m (default 10m)")
    parser.add_argument("--warm", action="store_true",
                        help="one cache per dataset, filled first by `honed evaluate` of the base "
                        "model (the baseline a user runs before tuning); default: an empty cache "
                        "per run")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-domains"))
    parser.add_argument("--table", action="store_true", help="only print the saved runs' tables")
    parser.add_argument("--plot", type=Path, help="also draw quality against minutes (SVG/PNG)")
    parser.add_argument("--point", action="append", default=[], metavar="LABEL:MIN:DEV:TEST",
                        help="a point measured elsewhere, drawn in gray (repeatable)")
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for data in args.data:
            cache = None
            if args.warm:
                cache = args.out / f"cache-{data.name}"
                print(f"warm cache {cache}: {warm_cache(data, cache):.0f} s", flush=True)
            for budget in args.budget.split(","):
                run_one(data, budget, args.out, extra, cache)
    saved = [json.loads(p.read_text("utf-8")) for p in sorted(args.out.glob("bench-*.json"))]
    print(quality_table(saved), time_table(saved), sep="\n\n")
    if args.plot:
        points = [(label, float(m), float(d), float(t))
                  for label, m, d, t in (p.rsplit(":", 3) for p in args.point)]  # fmt: skip
        plot(saved, args.plot, points)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
