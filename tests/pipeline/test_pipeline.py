"""End-to-end `honed run` with the tiny model, and the run folder it leaves."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from honed.mining.config import MiningConfig
from honed.pipeline.config import RunConfig
from honed.pipeline.run_folder import prepare_run_dir
from honed.pipeline.runner import run_pipeline
from honed.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _tiny_config(
    data: Path, out: Path, model: Path, dims: tuple[int, ...] | None = None, **kw: object
) -> RunConfig:
    training = TrainConfig(
        epochs=2, batch_size=8, mini_batch_size=4, precision="fp32", logging_steps=1, dims=dims
    )
    return RunConfig(
        data=str(data),
        out=str(out),
        base_model=str(model),
        dev_fraction=0.25,
        min_dev_queries=4,
        precision="fp32",
        mining=MiningConfig(num_negatives=2, depth=10),
        training=training,
        **kw,
    )


@pytest.fixture(scope="module")
def tiny_run(mini_beir: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run") / "r"
    messages: list[str] = []
    # Matryoshka dims below the tiny model's 32: the budget planner needs a shortlist dim.
    config = _tiny_config(mini_beir, out, tiny_model_path, dims=(32, 16, 8))
    result = run_pipeline(config, notify=messages.append)
    return out, result, messages


@pytest.mark.slow
def test_run_folder_has_every_artifact(tiny_run) -> None:
    out, _, _ = tiny_run
    for name in (
        "config.json",
        "data.json",
        "mined.jsonl",
        "mining_report.json",
        "report.md",
        "report.json",
        "status.json",
        "metrics/base.json",
        "metrics/bm25.json",
        "metrics/tuned.json",
        "metrics/hybrid.json",
        "plots/ndcg_vs_dim.png",
        "plots/training_curve.png",
        "model/README.md",
        "metrics/evidence.json",
        "metrics/per_query_test.json",
        "plots/per_query_delta.png",
        "plots/first_rank.png",
        "training.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    status = json.loads((out / "status.json").read_text())
    assert status["completed"] == [
        "load",
        "baseline",
        "mine",
        "train",
        "save",
        "evaluate",
        "report",
    ]
    report = (out / "report.md").read_text()
    for section in ("## Verdict", "## Test split", "## Significance (test split)", "## Most improved",
                    "## Most regressed", "## Leakage and overfitting checks", "## Hard-negative mining",
                    "## Time per stage", "## Hybrid (dense + BM25)"):
        assert section in report, section
    assert report.index("## Verdict") < report.index("## Test split")  # the verdict comes first
    config = json.loads((out / "config.json").read_text())
    assert (
        config["seed"] == 42
        and config["mining"]["num_negatives"] == 2
        and "honed_version" in config
    )


@pytest.mark.slow
def test_model_loads_without_honed(tiny_run) -> None:
    out, _, _ = tiny_run
    code = (
        "import sys; sys.modules['honed'] = None\n"  # honed must not be needed to load the model
        "from sentence_transformers import SentenceTransformer\n"
        f"m = SentenceTransformer({str(out / 'model')!r}, device='cpu')\n"
        "print(m.encode(['vitamin d']).shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(1, 32)" in done.stdout
    # The default corpus rotation lives in the model as a plain Dense layer (honed.encoding.rotation).
    modules = json.loads((out / "model" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules][-1] == "Dense"
    assert "rotated by the principal directions" in (out / "model" / "README.md").read_text()


@pytest.mark.slow
def test_metrics_cover_every_system_split_and_dim(tiny_run) -> None:
    _, result, messages = tiny_run
    assert set(result.metrics) == {"base", "bm25", "tuned", "hybrid"}
    for split in ("dev", "test"):
        assert set(result.metrics["hybrid"][split]) == {"hybrid"}
        assert all(0.0 <= v <= 1.0 for v in result.metrics["hybrid"][split]["hybrid"].values())
    for system in ("base", "tuned"):
        for split in ("dev", "test"):
            # the tiny model is 32 wide; the fixture trains Matryoshka prefixes 16 and 8 too
            assert set(result.metrics[system][split]) == {"32", "16", "8"}
            values = result.metrics[system][split]["32"]
            assert set(values) >= {"ndcg@10", "mrr@10", "recall@100", "map@100"}
            assert all(0.0 <= v <= 1.0 for v in values.values())
    assert result.verdict["recommendation"] in {"base", "tuned"}
    assert any("baseline" in m for m in messages)


@pytest.mark.slow
def test_each_text_encoded_once_per_model(tiny_run, mini_beir: Path) -> None:
    _, result, _ = tiny_run
    n_docs = result.data["documents"]
    n_queries = result.data["queries"]  # every query of the mini set is in some split
    # base: corpus + all queries once; each epoch's dev evaluation: corpus + dev queries; tuned test
    # evaluation: only the test queries (its corpus encoding is the kept epoch's, from the cache).
    n_dev = result.data["splits"]["dev"]["queries"]
    n_test = result.data["splits"]["test"]["queries"]
    n_train = result.data["splits"]["train"]["queries"]
    epochs = result.training["config"]["epochs"]
    remine = result.training["config"]["remine_epochs"]
    # The second round re-mines with the kept epoch's corpus encoding (from the cache) and
    # encodes only the training queries, then each of its epochs is evaluated on dev.
    expected = n_docs + n_queries + (epochs + remine) * (n_docs + n_dev) + n_train + n_test
    # The base encodings may come from the session's disk cache (an earlier test's run).
    assert result.encode_stats["encoded"] + result.encode_stats["hits_disk"] == expected


@pytest.mark.slow
def test_verdict_recommends_base_when_tuning_hurts_dev(tiny_run) -> None:
    from honed.pipeline.verdict import make_verdict

    _, result, _ = tiny_run
    metrics = json.loads(json.dumps(result.metrics))
    metrics["tuned"]["dev"]["32"]["ndcg@10"] = metrics["base"]["dev"]["32"]["ndcg@10"] - 0.1
    verdict = make_verdict(metrics, [32], _FakeTrain())
    assert verdict["recommendation"] == "base"
    assert verdict["sentences"][0].startswith("Fine-tuning did NOT help on dev")


@pytest.mark.slow
def test_hybrid_is_chosen_on_dev_and_tested_on_test(tiny_run) -> None:
    out, result, messages = tiny_run
    fusion = result.evidence["fusion"]
    assert fusion["method"] in {"rrf", "minmax", "zscore"} and 0.0 < fusion["weight"] < 1.0
    assert len(fusion["grid"]) == 27
    assert fusion["dev_ndcg10"] == pytest.approx(
        result.metrics["hybrid"]["dev"]["hybrid"]["ndcg@10"]
    )  # the dev score of the choice is the dev score of the hybrid run built with it
    pairs = {(t["system_a"], t["system_b"]) for t in result.evidence["test"]["tests"]}
    assert {("tuned@32", "hybrid"), ("bm25", "hybrid")} <= pairs
    retrieval = result.verdict["retrieval"]
    dev = retrieval["ndcg10"]["dev"]
    assert dev[retrieval["deploy"]] == max(dev.values())
    assert result.verdict["sentences"][-1].startswith(f"Deploy {retrieval['deploy']} retrieval")
    report = (out / "report.md").read_text()
    assert "| hybrid | - |" in report and "- Test, hybrid vs BM25:" in report
    assert any(m.startswith("hybrid: ") for m in messages)
    evidence = json.loads((out / "metrics" / "evidence.json").read_text())
    assert evidence["fusion"]["method"] == fusion["method"]


@pytest.mark.slow
def test_verdict_deploys_hybrid_only_when_it_wins_on_dev(tiny_run) -> None:
    from honed.pipeline.verdict import make_verdict

    _, result, _ = tiny_run
    metrics = json.loads(json.dumps(result.metrics))
    fusion = result.evidence["fusion"]
    for system, dim, value in (("base", "32", 0.2), ("tuned", "32", 0.3), ("bm25", "bm25", 0.3)):
        metrics[system]["dev"][dim]["ndcg@10"] = value
    metrics["hybrid"]["dev"]["hybrid"]["ndcg@10"] = 0.4
    metrics["hybrid"]["test"]["hybrid"]["ndcg@10"] = 0.0  # test must not change the decision
    verdict = make_verdict(metrics, [32], _FakeTrain(), result.evidence["test"]["tests"], fusion)
    assert verdict["retrieval"]["deploy"] == "hybrid"
    assert f"({fusion['method']}, dense weight {fusion['weight']:g})" in verdict["sentences"][-1]
    assert "vs tuned " in verdict["sentences"][-1] and "vs BM25 " in verdict["sentences"][-1]
    metrics["hybrid"]["dev"]["hybrid"]["ndcg@10"] = 0.3  # a tie goes to the simpler system
    assert make_verdict(metrics, [32], _FakeTrain())["retrieval"]["deploy"] == "dense"
    del metrics["hybrid"]
    assert make_verdict(metrics, [32], _FakeTrain())["retrieval"] is None


class _FakeTrain:
    best_epoch = 1.0


@pytest.mark.slow
def test_planner_is_chosen_on_dev_and_reported_on_test(tiny_run) -> None:
    out, result, messages = tiny_run
    saved = json.loads((out / "metrics" / "plan.json").read_text())
    dev = json.loads((out / "metrics" / "plan_dev.json").read_text())
    names = [r["name"] for r in saved["rows"]]
    assert names[:3] == ["exact 32", "exact 16", "exact 8"]
    assert len(names) == 3 + 2 * 3 * 3  # + dims 16, 8 x float32/int8/binary x top-50/100/200
    assert [r["name"] for r in dev["rows"]] == names
    assert (saved["split"], saved["chosen_on"], dev["split"]) == ("test", "dev", "dev")
    assert saved["n_queries"] == result.data["splits"]["test"]["queries"]
    assert dev["n_queries"] == result.data["splits"]["dev"]["queries"]
    # the configuration is dev's choice; its figures are its test row's
    rec = dev["recommended"]["name"]
    assert saved["recommended"] == next(r for r in saved["rows"] if r["name"] == rec)
    # no re-encoding: exact full-dim search is the tuned model's test figure
    tuned = result.metrics["tuned"]["test"]["32"]
    assert saved["reference"]["ndcg_at_10"] == pytest.approx(tuned["ndcg@10"], abs=1e-6)
    assert (out / "plots" / "plan.png").is_file() and not (out / "metrics" / "plan.md").exists()
    assert result.plan["test"] == saved and result.plan["seconds"] > 0
    report = (out / "report.md").read_text()
    section = report[report.index("## Deployment: shortlist dim x precision") :]
    assert "| exact 16 |" in section and "(plots/plan.png)" in section
    assert (
        "Recommended (chosen on dev, where it is the cheapest configuration not shown worse than "
        f"exact 32 by more than 1%): **{rec}**; on test:" in section
    )
    # The choice passes the noise rule on dev: its per-query interval's lower end is within 1%.
    assert dev["recommended"]["ci_low"] >= -0.01 * dev["reference"]["ndcg_at_10"]
    assert f"on {dev['n_queries']} dev queries (2000 resamples)" in section
    assert f"Warning: this choice rests on only {dev['n_queries']} dev queries" in section
    assert any(m.startswith("planner: 21 configurations on dev and test") for m in messages)


@pytest.mark.slow
def test_report_renders_runs_without_a_plan(tiny_run, tmp_path: Path) -> None:
    from honed.pipeline.commands import rerender_report

    out, _, _ = tiny_run
    saved = json.loads((out / "report.json").read_text())
    older = {k: v for k, v in saved.items() if k != "plan"}
    for i, (plan, expected) in enumerate(
        (
            (None, None),  # a run folder from before the planner: no plan in report.json
            ({"skipped": "no dim below 32"}, "Not measured: no dim below 32."),
        )
    ):
        folder = tmp_path / str(i)
        folder.mkdir()
        written = older if plan is None else {**older, "plan": plan}
        (folder / "report.json").write_text(json.dumps(written))
        report = rerender_report(folder).read_text()
        assert "## Verdict" in report and "## Time per stage" in report
        if expected is None:
            assert "## Deployment" not in report
        else:
            assert "## Deployment: shortlist dim x precision\n\n" + expected in report


def test_existing_run_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        prepare_run_dir(out, overwrite=False)
    with pytest.raises(FileExistsError, match="not a honed run folder"):
        prepare_run_dir(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # nothing the user made is lost


def test_overwrite_replaces_a_honed_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"honed_version": "0.1.0"}))
    (out / "old.txt").write_text("x")
    prepare_run_dir(out, overwrite=True)
    assert out.is_dir() and not any(out.iterdir())


def test_run_needs_train_and_test_splits(
    mini_beir_copy: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    (mini_beir_copy / "qrels" / "test.tsv").unlink()
    with pytest.raises(ValueError, match="no test.tsv"):
        run_pipeline(_tiny_config(mini_beir_copy, tmp_path / "r", tiny_model_path))


def test_leaked_training_queries_are_dropped(mini_beir_copy: Path) -> None:
    from honed.data.beir import load_beir
    from honed.data.splits import split_data

    test_line = (mini_beir_copy / "qrels" / "test.tsv").read_text().splitlines()[1]
    with (mini_beir_copy / "qrels" / "train.tsv").open("a") as handle:
        handle.write(test_line + "\n")
    data = load_beir(mini_beir_copy)
    config = RunConfig(data=str(mini_beir_copy), out="unused", dev_fraction=0.25, min_dev_queries=2)
    parts = split_data(data, config.split_rule)
    train, dev, test, leaked = parts.train, parts.dev, parts.test, list(parts.dropped)
    leaked_qid = test_line.split("\t")[0]
    assert leaked == [leaked_qid]
    assert leaked_qid not in train and leaked_qid not in dev and leaked_qid in test


def test_run_config_validation() -> None:
    with pytest.raises(ValueError, match="dev_fraction"):
        RunConfig(data="d", out="o", dev_fraction=1.5)
    with pytest.raises(ValueError, match="min_dev_queries"):
        RunConfig(data="d", out="o", min_dev_queries=0)
    with pytest.raises(ValueError, match="encode_batch_size"):
        RunConfig(data="d", out="o", encode_batch_size=0)


@pytest.mark.integration
@pytest.mark.slow
def test_real_minilm_on_a_tiny_slice(tmp_path: Path) -> None:
    """`honed run` with the real all-MiniLM-L6-v2 on a slice of the bundled SciFact demo."""
    src = REPO / "examples" / "scifact-mini"
    data = _slice(src, tmp_path / "slice", n_train=40, n_test=12, n_docs=150)
    training = TrainConfig(epochs=1, batch_size=16, mini_batch_size=16, max_seq_length=128)
    config = RunConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        dev_fraction=0.25,
        min_dev_queries=8,
        mining=MiningConfig(num_negatives=1),
        training=training,
    )
    result = run_pipeline(config)
    full = result.metrics["base"]["test"]["384"]["ndcg@10"]
    assert set(result.metrics["tuned"]["test"]) == {"384", "256", "128", "64"}
    assert 0.3 < full <= 1.0  # the real model retrieves SciFact abstracts far above chance
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def _slice(src: Path, dst: Path, n_train: int, n_test: int, n_docs: int) -> Path:
    rng = random.Random(0)
    (dst / "qrels").mkdir(parents=True)
    qrels = {}
    keep_docs: set[str] = set()
    for split, n in (("train", n_train), ("test", n_test)):
        lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        qids = sorted({line.split("\t")[0] for line in lines})
        chosen = set(rng.sample(qids, n))
        rows = [line for line in lines if line.split("\t")[0] in chosen]
        keep_docs |= {r.split("\t")[1] for r in rows}
        qrels[split] = rows
        (dst / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n"
        )
    docs = [json.loads(line) for line in (src / "corpus.jsonl").read_text().splitlines()]
    extra = [d for d in docs if d["_id"] not in keep_docs][: max(0, n_docs - len(keep_docs))]
    kept = [d for d in docs if d["_id"] in keep_docs] + extra
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept))
    qids_all = {r.split("\t")[0] for rows in qrels.values() for r in rows}
    queries = [
        line
        for line in (src / "queries.jsonl").read_text().splitlines()
        if json.loads(line)["_id"] in qids_all
    ]
    (dst / "queries.jsonl").write_text("\n".join(queries) + "\n")
    return dst


@pytest.mark.slow
def test_same_seed_gives_identical_runs(mini_beir: Path, tiny_model_path: Path, tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        run_pipeline(_tiny_config(mini_beir, out, tiny_model_path))
    a, b = outs
    assert (a / "mined.jsonl").read_bytes() == (b / "mined.jsonl").read_bytes()
    for name in ("base.json", "bm25.json", "tuned.json", "hybrid.json"):
        assert json.loads((a / "metrics" / name).read_text()) == json.loads((b / "metrics" / name).read_text())


@pytest.mark.slow
def test_second_mining_round_is_kept_only_when_dev_improves(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    base = _tiny_config(mini_beir, tmp_path / "r", tiny_model_path, n_resamples=200)
    config = replace(base, training=replace(base.training, remine_epochs=1))
    result = run_pipeline(config)
    out = tmp_path / "r"
    assert (out / "mined_round2.jsonl").is_file() and (out / "mining_round2_report.json").is_file()
    assert not (out / "checkpoints_round2").exists()
    training = json.loads((out / "training.json").read_text())
    second = training["round2"]
    assert second["rows"] > 0 and second["epochs"] == 1
    assert second["kept"] == (second["best_dev_ndcg10"] > second["first_round_dev_ndcg10"])
    # The curve continues the first round's epochs; the kept epoch's dev score is the record's.
    assert [c["epoch"] for c in training["curve"]] == [1.0, 2.0, 3.0]
    assert training["best_dev_ndcg10"] == max(
        second["best_dev_ndcg10"], second["first_round_dev_ndcg10"]
    )
    assert result.training["round2"] == second
    assert "A second round mined" in (out / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_hybrid_from_run_dir_decides_on_the_runs_own_dev(tiny_run, mini_beir: Path) -> None:
    from honed.evaluation.hybrid import evaluate_hybrid
    from honed.retrieval.fusion import fusion_from_run

    out, result, _ = tiny_run
    recorded = json.loads((out / "splits.json").read_text())
    assert len(recorded["dev"]) == result.data["splits"]["dev"]["queries"]
    assert not set(recorded["dev"]) & set(recorded["train"])  # dev never holds training queries
    evaluation = evaluate_hybrid(
        str(out / "model"), mini_beir, fusion=fusion_from_run(out), run_dir=out,
        n_resamples=200, device="cpu", precision="fp32",
    )
    assert evaluation.dev == f"the dev split of {out} ({len(recorded['dev'])} queries)"
    # The same dev queries as the run: the same dev scores for the tuned model and the hybrid.
    assert evaluation.dev_ndcg10["dense"] == pytest.approx(result.metrics["tuned"]["dev"]["32"]["ndcg@10"])
    assert evaluation.dev_ndcg10["hybrid"] == pytest.approx(
        result.metrics["hybrid"]["dev"]["hybrid"]["ndcg@10"]
    )


def test_run_dev_split_needs_splits_json(tmp_path: Path, mini_beir: Path) -> None:
    from honed.data.beir import load_beir
    from honed.evaluation.hybrid import run_dev_split

    with pytest.raises(FileNotFoundError, match=r"splits.json: missing, so the run's own dev split is unknown"):
        run_dev_split(tmp_path, load_beir(mini_beir))
    (tmp_path / "splits.json").write_text(json.dumps({"dev": ["q99"], "train": [], "test": []}))
    with pytest.raises(ValueError, match=r"dev query 'q99' is not in .*train.tsv"):
        run_dev_split(tmp_path, load_beir(mini_beir))


@pytest.mark.slow
def test_one_verdict_in_report_summary_and_model_card(tiny_run, capsys: pytest.CaptureFixture[str]) -> None:
    """report.md's verdict, its first line, the printed summary and the model card agree."""
    import argparse

    from honed.cli.run import _print_run

    out, result, _ = tiny_run
    verdict = result.verdict
    line = verdict["headline"]
    assert verdict["kind"] in {"worth it", "not confirmed", "not worth it"}
    assert line.lower().startswith(verdict["kind"])
    assert verdict["dev_queries"] == result.data["splits"]["dev"]["queries"]
    deploy = verdict["retrieval"]["deploy"] if verdict["retrieval"] else "dense"
    expected = {"hybrid": "Deploy hybrid retrieval", "bm25": "Deploy BM25"}.get(
        deploy, "Deploy the tuned model" if verdict["kind"] == "worth it" else ""
    )
    assert expected in line  # the line says what the deploy decision says
    if verdict["retrieval"]:
        assert verdict["sentences"][-1].startswith(f"Deploy {deploy} retrieval")
    report = (out / "report.md").read_text()
    assert report.split("## Verdict\n\n", 1)[1].startswith(f"**{line}**")  # the first line
    assert "Recommendation: **" not in report  # no second, independent recommendation
    card = (out / "model" / "README.md").read_text()
    assert line in card
    _print_run(argparse.Namespace(out=str(out)), result)
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[0] == line and verdict["sentences"][-1] in printed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tuned_gain", "kind"),
    [(0.5, "worth it"), (0.05, "not confirmed"), (-0.05, "not worth it")],
)
def test_each_verdict_kind_reads_the_same_everywhere(
    tiny_run, tmp_path: Path, capsys: pytest.CaptureFixture[str], tuned_gain: float, kind: str
) -> None:
    """Each kind, built from the run's own figures, leads report.md, the summary and the card."""
    import argparse

    from honed.cli.run import _print_run
    from honed.evaluation.significance import paired_test
    from honed.pipeline.verdict import make_verdict
    from honed.report.markdown import render_markdown
    from honed.report.model_card import write_model_card

    _, result, _ = tiny_run
    metrics = json.loads(json.dumps(result.metrics))
    base_dev = metrics["base"]["dev"]["32"]["ndcg@10"]
    metrics["tuned"]["dev"]["32"]["ndcg@10"] = base_dev + tuned_gain
    qids = [f"q{i}" for i in range(60)]
    # Confirmed: the tuned model better on every test query; otherwise as many wins as losses.
    steps = [0.2] * 60 if kind == "worth it" else [0.1, -0.1] * 30
    test = paired_test(dict.fromkeys(qids, 0.5), {q: 0.5 + d for q, d in zip(qids, steps)},
                       "ndcg@10", "base@32", "tuned@32", n_resamples=1000, seed=0)
    tests = [{**test.__dict__, "sentence": test.sentence()}]
    verdict = make_verdict(metrics, [32], _FakeTrain(), tests, result.evidence.get("fusion"),
                           dev_queries=39)
    assert verdict["kind"] == kind
    run = replace(result, verdict=verdict, metrics=metrics)
    line = verdict["headline"]
    assert line.lower().startswith(kind)
    assert ("The dev split has only 39 queries" in line) == (kind != "worth it")
    report = render_markdown(run)
    assert report.split("## Verdict\n\n", 1)[1].startswith(f"**{line}**")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert line in write_model_card(run, model_dir).read_text()
    _print_run(argparse.Namespace(out=str(tmp_path)), run)
    assert capsys.readouterr().out.strip().splitlines()[0] == line
