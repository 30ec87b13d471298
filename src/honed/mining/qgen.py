"""Synthetic training queries from an LLM behind an OpenAI-compatible endpoint (optional).

For users who already run one (vLLM, llama.cpp's ``llama-server``, Ollama, a hosted API): for
``n_docs`` documents drawn uniformly at random (seeded), the endpoint writes the short search query
a user would type to find the document. A generated query is kept only if the base model ranks
its source document in its top ``round_trip_k`` over the whole corpus (the round-trip filter of
Promptagator, Dai et al. 2022): a query the base model cannot connect to its document is more often
a bad query than a hard one. Kept queries are mined like labelled ones, with the full source
document as the positive.

Only the corpus is shown to the model, never a query or a label of any split, so every document
is eligible with the same probability whether or not a test query cites it (as in
:mod:`honed.mining.selfsup`). HTTP goes through :mod:`honed.mining.llm_client`, on the
standard library: no new dependency.

Example:
    >>> config = QueryGenConfig("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
    >>> generation = generate_queries(corpus, config)  # doctest: +SKIP
    >>> kept, report = round_trip_filter(generation.queries, q_emb, d_emb, doc_ids, 10)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from honed.data.beir import Document
from honed.files import write_jsonl
from honed.mining.hard_negatives import MiningResult, mine_pseudo_queries
from honed.mining.llm_client import ChatClient
from honed.retrieval.dense import top_k

if TYPE_CHECKING:
    from honed.mining.config import MiningConfig

__all__ = [
    "GeneratedQuery",
    "Generation",
    "QueryGenConfig",
    "RoundTripReport",
    "clean_answer",
    "generate_queries",
    "mine_generated",
    "read_generated",
    "round_trip_filter",
    "write_generated",
]

DEFAULT_PROMPT = (
    "Here is a document from a search collection.\n\n{document}\n\n"
    "Write one short search query that a user would type into a search engine to find this "
    "document. Answer with the query only."
)


@dataclass(frozen=True)
class QueryGenConfig:
    """Settings of the query generator.

    Attributes:
        endpoint: API base URL; requests go to ``{endpoint}/chat/completions``.
        model: the model name the server serves.
        api_key_env: environment variable holding the API key; unset = no Authorization header
            (local servers rarely need one). The key itself is never written anywhere.
        n_docs: documents to write queries for (fewer when the corpus is smaller).
        queries_per_doc: queries per document, one request each.
        temperature: sampling temperature of the endpoint.
        timeout: seconds to wait for one answer.
        max_retries: retries of a request after HTTP 429, a 5xx status or a timeout.
        round_trip_k: keep a query when the base model ranks its document in this top k.
        seed: drives the document draw, and is sent with every request.
        prompt: the user message; ``{document}`` is replaced by the (truncated) document.
        max_doc_words: documents are cut to this many words in the prompt.
        max_tokens: cap on each answer's length (a query is short).
        concurrency: requests in flight at once (servers such as vLLM batch them).
    """

    endpoint: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    n_docs: int = 1000
    queries_per_doc: int = 1
    temperature: float = 0.7
    timeout: float = 60.0
    max_retries: int = 2
    round_trip_k: int = 10
    seed: int = 42
    prompt: str = DEFAULT_PROMPT
    max_doc_words: int = 300
    max_tokens: int = 64
    concurrency: int = 4

    def __post_init__(self) -> None:
        parts = urlsplit(str(self.endpoint))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"endpoint: expected an http(s) base URL such as http://localhost:8000/v1, got "
                f"{self.endpoint!r}; fix: pass the server's API base URL"
            )
        endpoint = self.endpoint.rstrip("/")
        if endpoint.endswith("/chat/completions"):
            raise ValueError(
                f"endpoint: expected the API base URL, got the full route {self.endpoint!r}; "
                f"fix: pass {endpoint[: -len('/chat/completions')]!r}"
            )
        object.__setattr__(self, "endpoint", endpoint)
        for name in ("model", "api_key_env"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(
                    f"{name}: expected a non-empty string, got {getattr(self, name)!r}"
                )
        for name, low in (("n_docs", 1), ("queries_per_doc", 1), ("max_retries", 0),
                          ("round_trip_k", 1), ("max_doc_words", 1), ("max_tokens", 1),
                          ("concurrency", 1), ("seed", 0)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature: expected a value in [0, 2], got {self.temperature}")
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {self.timeout}")
        if "{document}" not in self.prompt:
            raise ValueError(
                f"prompt: expected a template containing {{document}}, got {self.prompt[:60]!r}; "
                "fix: put {document} where the document text goes"
            )


@dataclass(frozen=True)
class GeneratedQuery:
    """A query the endpoint wrote for document ``doc_id``."""

    query_id: str  # "qgen-<doc id>-<j>", j = 0 .. queries_per_doc - 1
    query: str
    doc_id: str


@dataclass(frozen=True)
class Generation:
    """The endpoint's answers: the usable queries, and those empty once cleaned."""

    queries: tuple[GeneratedQuery, ...]
    empty: tuple[GeneratedQuery, ...]  # query "" each: dropped, kept here to be counted and cached

    @property
    def requested(self) -> int:
        return len(self.queries) + len(self.empty)


@dataclass(frozen=True)
class RoundTripReport:
    """How many generated queries the round-trip filter kept."""

    generated: int
    kept: int
    dropped_round_trip: int
    k: int


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_PREFIX = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)?(?:(?:search\s+)?query\s*\d*\s*:\s*)?", re.I)
_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "«": "»"}


def clean_answer(text: str) -> str:
    """The query in a model's answer: first non-empty line without quotes or a "Query:" label.

    Example:
        >>> clean_answer('Query: "vitamin d and hip fractures"')
        'vitamin d and hip fractures'
    """
    # Reasoning models served by vLLM or llama.cpp may put their thoughts before the answer.
    text = _THINK.sub("", text)
    for line in text.splitlines():
        line = _PREFIX.sub("", line.replace("**", "").strip(), count=1).strip()
        while len(line) >= 2 and _QUOTES.get(line[0]) == line[-1]:
            line = line[1:-1].strip()
        # "Here is a search query:" introduces the answer on the next line; it is not the answer.
        if line and not line.endswith(":"):
            return " ".join(line.split())
    return ""


def _prompt(doc: Document, config: QueryGenConfig) -> str:
    words = doc.full_text.split()[: config.max_doc_words]
    # replace, not str.format: a document or prompt may contain other braces.
    return config.prompt.replace("{document}", " ".join(words))


def _queries_for(
    doc_id: str,
    doc: Document,
    config: QueryGenConfig,
    client: ChatClient,
    failed: threading.Event,
) -> list[tuple[str, str]]:
    """(query id, cleaned answer) for each of the document's queries."""
    out: list[tuple[str, str]] = []
    for j in range(config.queries_per_doc):
        if failed.is_set():  # another document's request failed: the run stops, send no more
            return out
        body = {
            "model": config.model,
            "messages": [{"role": "user", "content": _prompt(doc, config)}],
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "seed": config.seed + j,  # honoured by vLLM, llama.cpp and OpenAI; ignored elsewhere
        }
        try:
            answer = client.complete(body)
        except Exception:
            failed.set()
            raise
        out.append((f"qgen-{doc_id}-{j}", clean_answer(answer)))
    return out


def generate_queries(
    corpus: Mapping[str, Document], config: QueryGenConfig, show_progress_bar: bool = True
) -> Generation:
    """Ask the endpoint for ``queries_per_doc`` queries for each of ``n_docs`` random documents.

    Args:
        corpus: doc id -> Document.
        config: endpoint, model and sampling settings.
        show_progress_bar: a tqdm bar over documents.

    Returns:
        The cleaned queries sorted by query id, and apart from them the answers that were empty
        once cleaned.

    Raises:
        honed.mining.llm_client.EndpointError: the endpoint is unreachable, or still failing after ``max_retries``.
        ValueError: a response is not a chat completion.

    Example:
        >>> generate_queries(corpus, QueryGenConfig("http://localhost:8000/v1", "m")).queries[0]  # doctest: +SKIP
        GeneratedQuery(query_id='qgen-d01-0', query='vitamin d hip fracture trial', doc_id='d01')
    """
    from tqdm.auto import tqdm

    rng = random.Random(config.seed)
    chosen = sorted(rng.sample(sorted(corpus), min(config.n_docs, len(corpus))))
    answers: list[GeneratedQuery] = []
    client = ChatClient(config.endpoint, config.api_key_env, config.timeout, config.max_retries)
    failed = threading.Event()
    pool = ThreadPoolExecutor(max_workers=config.concurrency)
    try:
        results = pool.map(lambda d: _queries_for(d, corpus[d], config, client, failed), chosen)
        bar = tqdm(
            results, total=len(chosen), unit="doc", desc="qgen", disable=not show_progress_bar
        )
        for doc_id, pairs in zip(chosen, bar):
            answers.extend(GeneratedQuery(qid, query, doc_id) for qid, query in pairs)
    finally:
        # A failing endpoint stops the run at once: no request is sent after the failure.
        pool.shutdown(wait=True, cancel_futures=True)
    answers.sort(key=lambda q: q.query_id)
    return Generation(
        queries=tuple(q for q in answers if q.query), empty=tuple(q for q in answers if not q.query)
    )


def round_trip_filter(
    queries: Sequence[GeneratedQuery],
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    k: int,
) -> tuple[list[GeneratedQuery], RoundTripReport]:
    """Keep the queries whose source document is in the base model's top ``k`` over the corpus.

    Args:
        queries: generated queries.
        query_emb: ``(len(queries), dim)`` L2-normalised embeddings, same order.
        doc_emb: ``(n_docs, dim)`` L2-normalised embeddings of the whole corpus.
        doc_ids: the corpus ids, in the row order of ``doc_emb``.
        k: rank cut-off.

    Returns:
        The kept queries (input order) and the counts.

    Raises:
        ValueError: row counts that do not match, or a query's document not in ``doc_ids``.

    Example:
        >>> emb = np.eye(2, dtype=np.float32)
        >>> qs = [GeneratedQuery("qgen-a-0", "x", "a"), GeneratedQuery("qgen-b-0", "y", "a")]
        >>> [q.query_id for q in round_trip_filter(qs, emb, emb, ["a", "b"], 1)[0]]
        ['qgen-a-0']
    """
    if query_emb.shape[0] != len(queries):
        raise ValueError(
            f"query_emb: expected {len(queries)} rows (one per query), got {query_emb.shape[0]}"
        )
    row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    missing = [q.doc_id for q in queries if q.doc_id not in row]
    if missing:
        raise ValueError(
            f"queries: document {missing[0]!r} is not in doc_ids ({len(missing)} such queries); "
            "fix: filter against the corpus the queries were generated from"
        )
    if not queries:
        return [], RoundTripReport(0, 0, 0, k)
    top, _ = top_k(query_emb, doc_emb, k)  # (n_queries, min(k, n_docs)) row indices
    kept = [q for q, hits in zip(queries, top) if row[q.doc_id] in hits]
    return kept, RoundTripReport(len(queries), len(kept), len(queries) - len(kept), k)


def mine_generated(
    queries: Sequence[GeneratedQuery],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    config: MiningConfig | None = None,
) -> MiningResult:
    """Hard negatives for generated queries, exactly as for labelled ones (positive: the source).

    ``query_emb`` is ``(len(queries), dim)`` in the order of ``queries``; any order is accepted.
    """
    sources = [(q.query_id, q.query, q.doc_id) for q in queries]
    return mine_pseudo_queries(sources, doc_ids, doc_texts, query_emb, doc_emb, config)


def write_generated(path: str | Path, generation: Generation) -> None:
    """Write every answer as JSON lines (empty ones with ``"query": ""``), atomically."""
    answers = sorted(generation.queries + generation.empty, key=lambda q: q.query_id)
    write_jsonl(path, (asdict(query) for query in answers))


def read_generated(path: str | Path) -> Generation:
    """Read a file written by :func:`write_generated`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a generated query (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; fix: generate the queries first")
    queries: list[GeneratedQuery] = []
    empty: list[GeneratedQuery] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                query = GeneratedQuery(str(obj["query_id"]), str(obj["query"]), str(obj["doc_id"]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{line_no}: not a generated query (expected JSON with query_id, "
                    f"query, doc_id; got {type(err).__name__}: {err}); fix: delete the file to "
                    "generate the queries again"
                ) from None
            (queries if query.query else empty).append(query)
    return Generation(tuple(queries), tuple(empty))
