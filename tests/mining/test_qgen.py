"""Generated queries (honed.mining.qgen) against a local fake OpenAI-compatible server: no network."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from honed.data.beir import Document
from honed.mining import llm_client
from honed.mining.config import MiningConfig
from honed.mining.llm_client import EndpointError
from honed.mining.qgen import (
    GeneratedQuery,
    Generation,
    QueryGenConfig,
    clean_answer,
    generate_queries,
    mine_generated,
    read_generated,
    round_trip_filter,
    write_generated,
)


@dataclass
class FakeServer:
    """What the fake endpoint answers, and every request it got."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)  # returned first, one per request
    always: int | None = None  # this status on every request
    raw: bytes | None = None  # this 200 body instead of a completion
    delay: float = 0.0
    answer: str = 'Query: "{words}"'  # {words}: the document's first five words
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            status = self.statuses.pop(0) if self.statuses else self.always
        time.sleep(self.delay)
        if status is not None:
            return status, b'{"error": {"message": "the fake server says no"}}'
        if self.raw is not None:
            return 200, self.raw
        document = body["messages"][0]["content"].split("\n\n")[1]  # the default prompt's layout
        content = self.answer.format(words=" ".join(document.split()[:5]))
        return 200, json.dumps({"choices": [{"message": {"content": content}}]}).encode()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload = state.respond(self.path, dict(self.headers), body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_client, "_BACKOFF_SECONDS", 0.0)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


CORPUS = {
    f"d{i}": Document(f"d{i}", f"title {i}", f"word{i} alpha beta gamma delta epsilon zeta")
    for i in range(6)
}


def _config(url: str, **kw: Any) -> QueryGenConfig:
    return QueryGenConfig(endpoint=url, model="fake-llm", **{"n_docs": 3, **kw})


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"endpoint": "localhost:8000/v1"}, "endpoint: expected an http\\(s\\) base URL"),
        (
            {"endpoint": "http://h/v1/chat/completions"},
            "endpoint: expected the API base URL.*'http://h/v1'",
        ),
        ({"model": " "}, "model: expected a non-empty string"),
        ({"api_key_env": ""}, "api_key_env: expected a non-empty string"),
        ({"n_docs": 0}, "n_docs: expected an integer >= 1, got 0"),
        ({"queries_per_doc": True}, "queries_per_doc: expected an integer >= 1, got True"),
        ({"max_retries": -1}, "max_retries: expected an integer >= 0"),
        ({"round_trip_k": 0}, "round_trip_k: expected an integer >= 1"),
        ({"concurrency": 0}, "concurrency: expected an integer >= 1"),
        ({"temperature": 2.5}, "temperature: expected a value in \\[0, 2\\], got 2.5"),
        ({"timeout": 0}, "timeout: expected a positive number of seconds"),
        ({"prompt": "write a query"}, "prompt: expected a template containing \\{document\\}"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    values = {"endpoint": "http://localhost:8000/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=match):
        QueryGenConfig(**values)


def test_config_drops_a_trailing_slash() -> None:
    assert QueryGenConfig("http://localhost:8000/v1/", "m").endpoint == "http://localhost:8000/v1"


@pytest.mark.parametrize(
    ("answer", "query"),
    [
        ("vitamin d hip fractures", "vitamin d hip fractures"),
        ('"vitamin d hip fractures"', "vitamin d hip fractures"),
        ("Query: 'statins  and diabetes'\n", "statins and diabetes"),
        ("**Search query:** malaria vaccine", "malaria vaccine"),
        ("Here is a search query:\n\n“sleep deprivation nurses”", "sleep deprivation nurses"),
        ("<think>the user wants a query</think>\ninsulin resistance", "insulin resistance"),
        ("1. vitamin d\n2. something else", "vitamin d"),
        ('"vitamin d" trials', '"vitamin d" trials'),  # quotes inside the query are kept
        ("  \n\n ", ""),
        ('""', ""),
    ],
)
def test_clean_answer(answer: str, query: str) -> None:
    assert clean_answer(answer) == query


# --- generation -----------------------------------------------------------------------------


def test_generates_one_query_per_drawn_document(fake: FakeServer) -> None:
    generation = generate_queries(CORPUS, _config(fake.url), show_progress_bar=False)
    assert generation.requested == 3 and generation.empty == ()
    for q in generation.queries:
        assert q.query_id == f"qgen-{q.doc_id}-0"
        assert q.query == " ".join(CORPUS[q.doc_id].full_text.split()[:5])
    assert [q.query_id for q in generation.queries] == sorted(
        q.query_id for q in generation.queries
    )
    again = generate_queries(CORPUS, _config(fake.url), show_progress_bar=False)
    assert again == generation  # the document draw is seeded
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "fake-llm" and request["body"]["temperature"] == 0.7
    assert "Authorization" not in request["headers"]


def test_several_queries_per_document_and_truncated_prompts(fake: FakeServer) -> None:
    config = _config(fake.url, n_docs=100, queries_per_doc=2, max_doc_words=4)
    generation = generate_queries(CORPUS, config, show_progress_bar=False)
    assert len(generation.queries) == 2 * len(CORPUS)  # n_docs is capped at the corpus size
    assert {q.query_id for q in generation.queries} >= {"qgen-d0-0", "qgen-d0-1"}
    prompt = fake.requests[0]["body"]["messages"][0]["content"]
    assert prompt.split("\n\n")[1] in {f"title {i} word{i} alpha" for i in range(6)}


def test_empty_answers_are_dropped_and_counted(fake: FakeServer) -> None:
    fake.answer = "Query:"
    generation = generate_queries(CORPUS, _config(fake.url), show_progress_bar=False)
    assert generation.queries == () and len(generation.empty) == 3
    assert all(q.query == "" for q in generation.empty)


def test_the_api_key_goes_in_the_authorization_header(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "sk-test")
    generate_queries(CORPUS, _config(fake.url, api_key_env="MY_LLM_KEY", n_docs=1), False)
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("status", [500, 429])
def test_a_failing_request_is_retried(fake: FakeServer, status: int) -> None:
    fake.statuses = [status]
    generation = generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)
    assert len(generation.queries) == 1 and len(fake.requests) == 2


def test_an_endpoint_that_keeps_failing_raises(fake: FakeServer) -> None:
    fake.always = 500
    with pytest.raises(
        EndpointError,
        match=r"/v1/chat/completions: HTTP 500 after 3 attempt\(s\) .*the fake server says no.*fix: the server is overloaded",
    ):
        generate_queries(CORPUS, _config(fake.url, concurrency=1), show_progress_bar=False)
    assert len(fake.requests) == 3  # the first document's 1 + 2 retries, then the run stops


def test_a_rejected_key_is_not_retried(fake: FakeServer) -> None:
    fake.always = 401
    with pytest.raises(EndpointError, match=r"HTTP 401 .*fix: set \$OPENAI_API_KEY .*is not set"):
        generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)
    assert len(fake.requests) == 1


def test_a_wrong_path_names_the_base_url(fake: FakeServer) -> None:
    fake.always = 404
    with pytest.raises(
        EndpointError, match="HTTP 404 .*fix: check that --qgen-endpoint is the API base URL"
    ):
        generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)


def test_an_unknown_model_names_the_model(fake: FakeServer) -> None:
    fake.always = 400
    with pytest.raises(
        EndpointError, match="HTTP 400 .*fix: check that --qgen-model names a model"
    ):
        generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)


@pytest.mark.parametrize("raw", [b"<html>hello</html>", b"\xff\xfe<html>hello</html>"])
def test_a_response_that_is_not_json(fake: FakeServer, raw: bytes) -> None:
    fake.raw = raw
    with pytest.raises(ValueError, match="response is not JSON \\(got '.*<html>hello</html>'\\)"):
        generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)


def test_a_response_without_content(fake: FakeServer) -> None:
    fake.raw = b'{"choices": []}'
    with pytest.raises(ValueError, match=r"response has no choices\[0\]\.message\.content"):
        generate_queries(CORPUS, _config(fake.url, n_docs=1), show_progress_bar=False)


def test_a_slow_endpoint_times_out(fake: FakeServer) -> None:
    fake.delay = 0.5
    config = _config(fake.url, n_docs=1, timeout=0.1, max_retries=1)
    with pytest.raises(EndpointError, match=r"no answer within 0.1 s after 2 attempt\(s\)"):
        generate_queries(CORPUS, config, show_progress_bar=False)


def test_an_unreachable_endpoint_names_the_url() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no server now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(
        EndpointError, match=f"{url}/chat/completions: cannot connect .*fix: start the server"
    ):
        generate_queries(CORPUS, _config(url, n_docs=1), show_progress_bar=False)


# --- round trip, mining, cache -------------------------------------------------------------


def _unit(*rows: list[float]) -> np.ndarray:
    array = np.array(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_round_trip_keeps_queries_whose_document_ranks_in_the_top_k() -> None:
    doc_ids = ["a", "b", "c"]
    docs = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    queries = [
        GeneratedQuery("qgen-a-0", "finds a", "a"),
        GeneratedQuery("qgen-b-0", "finds b second", "b"),
        GeneratedQuery("qgen-c-0", "finds a, not c", "c"),
    ]
    q_emb = _unit([1, 0.1, 0], [1, 0.5, 0], [1, 0, 0.1])  # ranks: a first; b second; c second
    kept, report = round_trip_filter(queries, q_emb, docs, doc_ids, k=1)
    assert [q.query_id for q in kept] == ["qgen-a-0"]
    assert (report.generated, report.kept, report.dropped_round_trip, report.k) == (3, 1, 2, 1)
    kept, report = round_trip_filter(queries, q_emb, docs, doc_ids, k=2)
    assert len(kept) == 3 and report.dropped_round_trip == 0


def test_round_trip_rejects_mismatched_inputs() -> None:
    docs = _unit([1, 0], [0, 1])
    queries = [GeneratedQuery("qgen-x-0", "q", "x")]
    with pytest.raises(ValueError, match="query_emb: expected 1 rows"):
        round_trip_filter(queries, docs, docs, ["a", "b"], 1)
    with pytest.raises(ValueError, match="queries: document 'x' is not in doc_ids"):
        round_trip_filter(queries, docs[:1], docs, ["a", "b"], 1)


def test_mined_rows_have_the_source_document_as_positive() -> None:
    doc_ids, doc_texts = ["a", "b", "c"], ["text a", "text b", "text c"]
    docs = _unit([1, 0, 0], [0.8, 0.6, 0], [0, 0, 1])
    queries = [
        GeneratedQuery("qgen-c-0", "about c", "c"),
        GeneratedQuery("qgen-a-0", "about a", "a"),
    ]
    q_emb = _unit([0, 0.1, 1], [1, 0.1, 0])  # in the order of `queries`, which is not sorted
    result = mine_generated(
        queries, doc_ids, doc_texts, q_emb, docs, MiningConfig(num_negatives=1, depth=2, margin=1.0)
    )
    rows = {r.query_id: r for r in result.rows}
    assert rows["qgen-a-0"].positive == "text a" and rows["qgen-a-0"].negative_ids == ("b",)
    assert rows["qgen-c-0"].positive == "text c" and "c" not in rows["qgen-c-0"].negative_ids
    with pytest.raises(ValueError, match="queries: expected distinct query ids"):
        mine_generated(queries[:1] * 2, doc_ids, doc_texts, q_emb, docs)


def test_the_cache_round_trips_queries_and_empty_answers(tmp_path: Path) -> None:
    generation = Generation(
        queries=(GeneratedQuery("qgen-a-0", "vitamin d «quoted»", "a"),),
        empty=(GeneratedQuery("qgen-b-0", "", "b"),),
    )
    path = tmp_path / "generated_queries.jsonl"
    write_generated(path, generation)
    assert read_generated(path) == generation
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_a_bad_cache_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "generated_queries.jsonl"
    path.write_text('{"query_id": "qgen-a-0", "query": "q", "doc_id": "a"}\n{"query": "x"}\n')
    with pytest.raises(ValueError, match=r"generated_queries.jsonl:2: not a generated query"):
        read_generated(path)
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        read_generated(tmp_path / "nope.jsonl")


# --- run config and CLI --------------------------------------------------------------------


def test_run_config_round_trips_the_qgen_settings() -> None:
    from honed.pipeline.config import RunConfig

    config = RunConfig(data="d", out="o", qgen=QueryGenConfig("http://h:1/v1", "m", n_docs=5))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert RunConfig(data="d", out="o").qgen is None  # off by default


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (
            ["--qgen-endpoint", "http://localhost:8000/v1"],
            "error: --qgen-model: required with --qgen-endpoint",
        ),
        (["--qgen-model", "m"], "error: --qgen-model: only used with --qgen-endpoint"),
        (
            ["--qgen-endpoint", "localhost", "--qgen-model", "m"],
            "error: endpoint: expected an http",
        ),
    ],
)
def test_cli_qgen_flags_are_checked(
    flags: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from honed.cli.main import main

    assert main(["run", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *flags]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(match)


@pytest.mark.slow
def test_run_adds_generated_rows(
    fake: FakeServer, mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    from honed.pipeline.config import RunConfig
    from honed.pipeline.runner import resume_pipeline, run_pipeline
    from honed.training.config import TrainConfig

    out = tmp_path / "run"
    config = RunConfig(
        data=str(mini_beir),
        out=str(out),
        base_model=str(tiny_model_path),
        dev_fraction=0.25,
        min_dev_queries=4,
        precision="fp32",
        bm25=False,
        mining=MiningConfig(num_negatives=2, depth=10),
        training=TrainConfig(epochs=1, batch_size=8, mini_batch_size=4, precision="fp32"),
        qgen=QueryGenConfig(fake.url, "fake-llm", n_docs=20),
    )
    messages: list[str] = []
    run_pipeline(config, notify=messages.append)
    report = json.loads((out / "qgen_report.json").read_text())
    cached = read_generated(out / "generated_queries.jsonl")
    assert report["requested"] == 20 == len(fake.requests) and len(cached.queries) == 20
    assert report["kept"] + report["dropped_round_trip"] == report["generated"] == 20
    rows = [json.loads(line) for line in (out / "mined.jsonl").read_text().splitlines()]
    generated = [r for r in rows if r["query_id"].startswith("qgen-")]
    assert generated and len(generated) == report["rows_added"]
    assert all(r["positive_id"] == r["query_id"][5:].rsplit("-", 1)[0] for r in generated)
    assert json.loads((out / "config.json").read_text())["qgen"]["model"] == "fake-llm"
    assert any("generated queries:" in m for m in messages)
    fake.always = 500  # a resumed run reads generated_queries.jsonl and asks the endpoint nothing
    resume_pipeline(out)
    assert len(fake.requests) == 20
    assert json.loads((out / "qgen_report.json").read_text()) == {**report, "from_cache": True}
