"""Do honed's training defaults hold on other domains? One ``honed run`` per (dataset, variant).

Every run of a dataset trains the same plan (``--epochs 2 --max-train-queries N``, the same seeded
sample and dev split), so the variants differ by one default each:

* ``default``: the defaults (corpus rotation, lr 1e-4, a second mining round);
* ``no-rotate``: ``--no-rotate``;
* ``lr5e-5``: ``--lr 5e-5``.

The default run's own record also answers two more: the second round (its dev score before and
after the round) and the epochs (the dev curve after epoch 1 and 2). Settings are compared on the
**dev** split (carved from train); test is printed to confirm, not to choose.

    python bench/defaults.py --out /tmp/defaults --max-train-queries 320 \\
        ../shared/data/tatqa ../shared/data/django_code ../shared/data/tldr

The base model's encodings are cached once per dataset (the first run's baseline), so the
later runs of a dataset encode only with the model in training. Run it alone (one torch job).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

VARIANTS = {"default": [], "no-rotate": ["--no-rotate"], "lr5e-5": ["--lr", "5e-5"]}


def _honed() -> str:
    return str(Path(sys.executable).with_name("honed"))


def run(data: Path, variant: str, out: Path, queries: int, extra: list[str]) -> Path:
    folder = out / f"{data.name}-{variant}"
    if not (folder / "report.json").is_file():
        command = [
            _honed(), "run", str(data), "--out", str(folder), "--overwrite", "--epochs", "2",
            "--max-train-queries", str(queries), "--cache-dir", str(out / f"cache-{data.name}"),
            *VARIANTS[variant], *extra,
        ]  # fmt: skip
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return folder


def read(folder: Path) -> dict[str, Any]:
    """Dev after each first-round epoch, after the second round, and the final dev/test."""
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    training, verdict = report["training"], report["verdict"]
    curve = {float(p["epoch"]): p["dev_ndcg@10"] for p in training["curve"]}
    round2 = training.get("round2") or {}
    epochs = int(training["config"]["epochs"])  # the curve's epochs after these: the 2nd round
    return {
        "dev_base": verdict["base_dev_ndcg10"],
        "dev_epoch1": curve.get(1.0),
        "dev_epoch2": curve.get(2.0) if epochs >= 2 else None,
        "dev_round2": curve.get(float(epochs + 1)) if round2 else None,
        "round2_kept": round2.get("kept"),
        "dev_final": verdict["tuned_dev_ndcg10"],
        "test_base": verdict["base_test_ndcg10"],
        "test_final": verdict["tuned_test_ndcg10"],
        "dev_queries": verdict["dev_queries"],
        "train_seconds": training.get("seconds"),
    }


def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def table(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    lines = [
        "| dataset | variant | dev queries | dev base | dev ep 1 | dev ep 2 | dev 2nd round "
        "(kept) | dev final | test base | test final |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, variant, r in rows:
        kept = "" if r["round2_kept"] is None else (" (kept)" if r["round2_kept"] else " (not)")
        lines.append(
            f"| {name} | {variant} | {r['dev_queries']} | {_f(r['dev_base'])} | "
            f"{_f(r['dev_epoch1'])} | {_f(r['dev_epoch2'])} | {_f(r['dev_round2'])}{kept} | "
            f"{_f(r['dev_final'])} | {_f(r['test_base'])} | {_f(r['test_final'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-defaults"))
    parser.add_argument("--max-train-queries", type=int, default=320)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for variant in args.variants.split(","):  # every dataset's default first: the reference
        for data in args.data:
            folder = run(data, variant, args.out, args.max_train_queries, extra)
            rows.append((data.name, variant, read(folder)))
            print(table(rows), flush=True)


if __name__ == "__main__":
    main()
