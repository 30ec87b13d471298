"""report.html: the files a run records for it, the page itself, older folders, and a real browser.

One tiny run (the tiny model, the mini dataset) is made for the module. Its learning rate is
high enough that fine-tuning both wins and loses test queries, so the explorer has losses to
filter to.
"""

from __future__ import annotations

import json
import re
import shutil
from html import escape
from pathlib import Path

import pytest

from browser_helpers import browser_page
from honed.cli.main import main
from honed.evaluation.deployment import verdict_headline
from honed.mining.config import MiningConfig
from honed.pipeline.config import RunConfig
from honed.pipeline.results import RunResult
from honed.pipeline.runner import run_pipeline
from honed.report.html import EXPLORER_FILE, MINING_SAMPLES_FILE, render_html, write_html
from honed.training.config import TrainConfig


@pytest.fixture(scope="module")
def html_run(mini_beir: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("html_run") / "r"
    training = TrainConfig(
        epochs=2,
        batch_size=8,
        mini_batch_size=4,
        precision="fp32",
        logging_steps=1,
        dims=(32, 16, 8),
        learning_rate=5e-3,
    )
    config = RunConfig(
        data=str(mini_beir),
        out=str(out),
        base_model=str(tiny_model_path),
        dev_fraction=0.25,
        min_dev_queries=4,
        precision="fp32",
        mining=MiningConfig(num_negatives=2, depth=10),
        training=training,
        n_resamples=200,
    )
    return out, run_pipeline(config)


def _explorer(out: Path) -> dict:
    return json.loads((out / EXPLORER_FILE).read_text(encoding="utf-8"))


@pytest.mark.slow
def test_run_records_what_the_explorer_and_mining_plot_need(html_run) -> None:
    out, result = html_run
    record = _explorer(out)
    assert record["dim"] == 32 and record["k"] == 10 and record["split"] == "test"
    assert set(record["queries"]) == {f"q{i}" for i in range(17, 25)}  # every test query
    for qid, query in record["queries"].items():
        assert len(query["base"]) == len(query["tuned"]) == 10
        assert all(doc in record["docs"] for doc, _ in query["base"] + query["tuned"])
        assert query["base_ndcg"] == pytest.approx(
            json.loads((out / "metrics" / "per_query_test.json").read_text())["base@32"]["ndcg@10"][
                qid
            ],
            abs=1e-5,
        )
    assert (
        record["docs"]["d01"]["title"]
        == "Vitamin D supplementation and hip fractures in older adults"
    )
    assert record["queries"]["q18"]["judged"] == {"d02": 1, "d06": 0}  # judged 0 is kept, marked
    samples = json.loads((out / MINING_SAMPLES_FILE).read_text(encoding="utf-8"))
    assert len(samples["positive"]) == len(
        [r for r in (out / "mined.jsonl").read_text().splitlines() if r]
    )
    assert samples["pairs"] == result.mining["pairs"]
    assert samples["dropped_margin"] and min(samples["dropped_margin"]) > 0
    assert 0 < len(samples["examples"]) <= 6
    assert all(e["negatives"] and e["positive"] for e in samples["examples"])


@pytest.mark.slow
def test_report_html_is_one_self_contained_page_with_the_verdict_of_report_md(html_run) -> None:
    out, result = html_run
    page = (out / "report.html").read_text(encoding="utf-8")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    headline = verdict_headline(result.verdict)
    assert headline in markdown and escape(headline) in page
    for sentence in result.verdict["sentences"]:
        assert sentence in markdown and escape(sentence) in page
    assert page.index(escape(headline)) < page.index('id="explorer"')  # the verdict comes first
    # Nothing is fetched: no external script, style sheet, image or font; a CSP forbids it too.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page
    assert page.count("</script>") == 2  # the data element and the script, nothing else


@pytest.mark.slow
def test_a_query_text_cannot_end_the_data_element_early(html_run, tmp_path: Path) -> None:
    out, result = html_run
    copy = Path(shutil.copytree(out, tmp_path / "r"))
    record = _explorer(copy)
    record["queries"]["q17"]["text"] = "</script><script>alert(1)</script>"
    (copy / EXPLORER_FILE).write_text(json.dumps(record), encoding="utf-8")
    page = render_html(result, copy)
    assert page.count("</script>") == 2
    data = re.search(r'<script type="application/json" id="honed-data">(.*?)</script>', page, re.S)
    assert json.loads(data.group(1))["explorer"]["queries"]["q17"]["text"].startswith("</script>")


@pytest.mark.slow
def test_an_older_run_folder_renders_and_says_what_is_missing(
    html_run, tmp_path: Path, capsys
) -> None:
    out, _ = html_run
    copy = Path(shutil.copytree(out, tmp_path / "old"))
    (copy / EXPLORER_FILE).unlink()
    (copy / MINING_SAMPLES_FILE).unlink()
    (copy / "report.html").unlink()
    report = json.loads((copy / "report.json").read_text())
    del report["plan"]  # a report.json from before the planner
    (copy / "report.json").write_text(json.dumps(report))
    assert main(["report", str(copy), "--html"]) == 0
    assert str(copy / "report.html") in capsys.readouterr().out
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert "explorer_test.json is missing" in page and "mining_samples.json is missing" in page
    assert f"honed run --resume {copy}" in page


def test_honed_report_html_refuses_a_folder_without_report_json(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path), "--html"]) == 1
    assert "report.json: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_write_html_replaces_the_page_atomically(html_run, tmp_path: Path) -> None:
    out, result = html_run
    copy = Path(shutil.copytree(out, tmp_path / "r"))
    path = write_html(RunResult(**json.loads((copy / "report.json").read_text())), copy)
    assert path == copy / "report.html" and not list(copy.glob(".report.html.*"))


@pytest.mark.slow
def test_explorer_in_a_real_browser_filters_losses_and_opens_a_query(html_run) -> None:
    out, _ = html_run
    record = _explorer(out)
    losses = sorted(
        q for q, v in record["queries"].items() if v["tuned_ndcg"] < v["base_ndcg"] - 1e-9
    )
    assert losses, "the fixture's run must lose some test queries"
    with browser_page() as (page, errors):
        page.goto((out / "report.html").as_uri())
        headline = page.locator("#verdict .headline").inner_text()
        assert headline.startswith(("Worth it:", "Not confirmed:", "Not worth it:")), headline
        assert page.locator("#chart-dims circle").count() == 6  # base and tuned at 3 dims
        page.locator("#chart-dims circle").first.hover()
        assert "nDCG@10" in page.locator("#tip").inner_text()
        assert page.locator("#chart-curve circle").count() > 0
        assert page.locator("#chart-plan-bytes_per_doc circle").count() > 0
        assert page.locator("#chart-mining circle").count() > 0
        page.click('button[data-filter="loss"]')
        rows = page.locator("#query-table tbody tr")
        assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.qid)")) == losses
        rows.first.click()
        detail = page.locator("#query-detail")
        assert page.locator("#top-base li").count() == 10
        assert page.locator("#top-tuned li").count() == 10
        assert "First relevant document" in detail.inner_text()
        qid = detail.get_attribute("data-qid")
        assert qid in losses and record["queries"][qid]["text"] in detail.inner_text()
        title = record["docs"][record["queries"][qid]["tuned"][0][0]]["title"]
        assert title in page.locator("#top-tuned li").first.inner_text()
        page.click('button[data-filter="all"]')
        page.fill("#query-search", "q21")
        assert rows.count() == 1
        assert errors == []
