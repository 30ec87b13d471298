"""``honed serve``: the search service, its JSON API over real HTTP, and the search page in a browser."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from browser_helpers import browser_page, running_server
from honed.cli.main import main
from honed.cli.parser import build_parser
from honed.data.corpus import read_corpus
from honed.encoding.encoder import encode_texts
from honed.index.index import Index
from honed.index.serve import create_app, require_serve_extra
from honed.index.service import BadRequest, SearchService, ServeConfig
from honed.retrieval.fusion import FusionConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@pytest.fixture(scope="module")
def indexes(
    tiny_model: SentenceTransformer, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two indexes of the mini corpus: one with BM25 and a fusion record, one dense only."""
    ids, texts = read_corpus(mini_beir)
    root = tmp_path_factory.mktemp("serve")
    fusion = FusionConfig("rrf", 0.5)
    Index.build(tiny_model, ids, texts, root / "hybrid", shortlist_dim=16, bm25=True, fusion=fusion)
    Index.build(tiny_model, ids, texts, root / "dense", shortlist_dim=16)
    return {"hybrid": root / "hybrid", "dense": root / "dense"}


@pytest.fixture(scope="module")
def service(indexes: dict[str, Path], tiny_model_path: Path) -> SearchService:
    """The hybrid index served with the tiny model, compared with itself as the 'base' model."""
    config = ServeConfig(
        indexes["hybrid"], model=str(tiny_model_path), compare=str(tiny_model_path), device="cpu"
    )
    return SearchService.load(config)


@pytest.fixture(scope="module")
def dense_service(indexes: dict[str, Path], tiny_model_path: Path) -> SearchService:
    return SearchService.load(
        ServeConfig(indexes["dense"], model=str(tiny_model_path), device="cpu")
    )


def test_search_returns_the_index_s_hits_with_their_texts(
    service: SearchService, tiny_model
) -> None:
    answer = service.search("malaria in  Africa ", k="5")
    assert answer["query"] == "malaria in Africa" and answer["mode"] == "dense" and answer["k"] == 5
    expected = service.index.search(encode_texts(tiny_model, ["malaria in Africa"]), k=5)[0]
    assert [(r["id"], r["score"]) for r in answer["results"]] == [
        (d, round(s, 6)) for d, s in expected
    ]
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4, 5]
    texts = service.index.texts(d for d, _ in expected)
    assert [r["text"] for r in answer["results"]] == [texts[d] for d, _ in expected]
    assert "compare" not in answer


def test_hybrid_and_compare(service: SearchService) -> None:
    hybrid = service.search("statins and diabetes", k="10", mode="hybrid", compare="true")
    assert hybrid["mode"] == "hybrid" and len(hybrid["results"]) == 10
    # The 'base' model here is the tuned one itself: its exact dense top 10 is the index's.
    dense = service.search("statins and diabetes", k="10")
    base = hybrid["compare"]["results"]
    assert [r["id"] for r in base] == [r["id"] for r in dense["results"]]
    assert service.health()["modes"] == ["dense", "hybrid"]
    assert service.health()["compare"] == service.base.name


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "q: expected a non-empty query"),
        ({"q": "   "}, "q: expected a non-empty query"),
        ({"q": "x" * 2001}, "at most 2000 characters"),
        ({"q": "sleep", "k": "0"}, r"k: expected an integer from 1 to 100, got 0"),
        ({"q": "sleep", "k": "101"}, r"k: expected an integer from 1 to 100, got 101"),
        ({"q": "sleep", "k": "ten"}, r"k: expected an integer from 1 to 100, got 'ten'"),
        ({"q": "sleep", "mode": "sparse"}, "mode: expected one of dense, hybrid, got 'sparse'"),
        ({"q": "sleep", "compare": "maybe"}, "compare: expected true or false"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    service: SearchService, params: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        service.search(params.get("q"), params.get("k"), params.get("mode"), params.get("compare"))


def test_an_index_without_bm25_refuses_hybrid_and_compare(dense_service: SearchService) -> None:
    with pytest.raises(BadRequest, match="mode=hybrid: this index cannot serve it"):
        dense_service.search("sleep", mode="hybrid")
    with pytest.raises(BadRequest, match="compare: this server has no base model"):
        dense_service.search("sleep", compare="1")
    assert dense_service.health()["modes"] == ["dense"]


def test_serve_config_validation() -> None:
    with pytest.raises(ValueError, match="max_k: expected a positive integer, got 0"):
        ServeConfig("ix", max_k=0)
    with pytest.raises(ValueError, match=r"shortlist: expected at least max_k \(100\), got 50"):
        ServeConfig("ix", shortlist=50)
    with pytest.raises(ValueError, match="port: expected 0-65535, got 70000"):
        ServeConfig("ix", port=70000)


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'honed\[serve\]'"):
        require_serve_extra()


def test_serve_binds_loopback_by_default_and_refuses_a_missing_index(
    tmp_path: Path, capsys
) -> None:
    args = build_parser().parse_args(["serve", "ix"])
    assert (args.host, args.port, args.compare) == ("127.0.0.1", 8000, None)
    assert main(["serve", str(tmp_path / "nope")]) == 1
    assert "error:" in capsys.readouterr().err


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_json_api_over_http_answers_errors_with_4xx_json(service: SearchService) -> None:
    with running_server(create_app(service)) as url:
        status, _, body = _get(f"{url}/health")
        assert status == 200 and json.loads(body)["documents"] == 40
        status, _, body = _get(f"{url}/search?q=insulin+pumps&k=3&mode=hybrid")
        assert status == 200 and len(json.loads(body)["results"]) == 3
        for query in ("q=", "q=sleep&k=1000", "q=sleep&k=-1", "q=sleep&mode=bm25", "k=5"):
            status, headers, body = _get(f"{url}/search?{query}")
            assert status == 400, query
            assert headers["content-type"] == "application/json" and json.loads(body)["error"]
        status, _, body = _get(f"{url}/nowhere")
        assert status == 404 and json.loads(body) == {"error": "Not Found"}
        status, _, body = _get(f"{url}/search?q=sleep", method="POST")
        assert status == 405 and json.loads(body)["error"]
        status, headers, body = _get(f"{url}/")
        assert status == 200 and headers["content-type"].startswith("text/html")


def test_search_page_in_a_real_browser(service: SearchService) -> None:
    with running_server(create_app(service)) as url, browser_page() as (page, errors):
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        assert "40 documents" in page.locator("#info").inner_text()
        page.fill("#q", "malaria in young children")
        page.press("#q", "Enter")
        page.wait_for_selector("#results-tuned li")
        assert page.locator("#results-tuned li").count() == 10
        assert page.locator("#results-base li").count() == 10  # --compare: side by side
        first = service.search("malaria in young children")["results"][0]["id"]
        assert page.locator("#results-tuned li").first.get_attribute("data-doc") == first
        page.select_option("#mode", "hybrid")
        page.wait_for_function("document.getElementById('status').textContent.includes('(hybrid)')")
        page.uncheck("#compare")
        page.wait_for_function("!document.getElementById('results-base')")
        assert errors == []


def test_load_refuses_a_model_that_is_not_here_and_compare_without_texts(
    indexes: dict[str, Path], tiny_model_path: Path, tmp_path: Path
) -> None:
    import shutil

    copy = Path(shutil.copytree(indexes["dense"], tmp_path / "ix"))
    info = json.loads((copy / "index.json").read_text())
    (copy / "index.json").write_text(json.dumps({**info, "model_name": "nowhere/model"}))
    with pytest.raises(
        ValueError, match="records the model 'nowhere/model', which is not a folder"
    ):
        SearchService.load(ServeConfig(copy, device="cpu"))
    (copy / "texts.jsonl").unlink()
    config = ServeConfig(
        copy, model=str(tiny_model_path), compare=str(tiny_model_path), device="cpu"
    )
    with pytest.raises(FileNotFoundError, match="texts.jsonl: missing, and --compare must encode"):
        SearchService.load(config)
