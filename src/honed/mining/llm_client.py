"""A small client for an OpenAI-compatible chat-completions endpoint, on the standard library.

One request at a time per call (callers run several in threads); HTTP 429, 5xx, timeouts and
dropped connections are retried with a doubling wait, everything else fails at once with a
one-line :class:`EndpointError` or ``ValueError`` that says how to fix it. The API key is read
from an environment variable on every request and never stored.

Example:
    >>> client = ChatClient("http://localhost:8000/v1")  # doctest: +SKIP
    >>> client.complete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # doctest: +SKIP
    'Hello!'
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatClient", "EndpointError"]

# Waits before retry 1, 2, ...: 1 s then 2 s, enough for a server's queue to drain or a restart
# behind a load balancer; tests set it to 0.
_BACKOFF_SECONDS = 1.0


class EndpointError(ConnectionError):
    """The query-generation endpoint could not be reached or kept failing (one-line message)."""


@dataclass(frozen=True)
class ChatClient:
    """An OpenAI-compatible API: requests go to ``{endpoint}/chat/completions``.

    Attributes:
        endpoint: the API base URL, without a trailing slash.
        api_key_env: environment variable holding the API key; unset = no Authorization header.
        timeout: seconds to wait for one answer.
        max_retries: retries of a request after HTTP 429, a 5xx status or a timeout.
    """

    endpoint: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 2

    @property
    def url(self) -> str:
        """The chat-completions route."""
        return f"{self.endpoint}/chat/completions"

    def complete(self, body: dict[str, Any]) -> str:
        """``choices[0].message.content`` of the answer to one chat request ``body``.

        Raises:
            EndpointError: no connection, a refused request, or still failing after
                ``max_retries`` retries.
            ValueError: the answer is not a chat completion.
        """
        url = self.url
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        data, attempt = json.dumps(body).encode("utf-8"), 0
        while True:
            attempt += 1
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _content(url, response.read())
            except urllib.error.HTTPError as err:
                error = _status_error(
                    url, err.code, _snippet(err.read()), attempt, self.api_key_env
                )
                if not (err.code == 429 or err.code >= 500):
                    raise error from None
            except urllib.error.URLError as err:  # no connection: retrying would not help
                if not isinstance(err.reason, TimeoutError):
                    raise EndpointError(
                        f"{url}: cannot connect ({err.reason}); fix: start the server, or pass its "
                        "API base URL with --qgen-endpoint (e.g. http://localhost:8000/v1)"
                    ) from None
                error = _timeout_error(url, self.timeout, attempt)
            except TimeoutError:
                error = _timeout_error(url, self.timeout, attempt)
            except (ConnectionResetError, http.client.HTTPException) as err:
                error = EndpointError(
                    f"{url}: connection dropped after {attempt} attempt(s) ({err!r}); fix: check the "
                    "server's log, then run again"
                )
            if attempt > self.max_retries:
                raise error
            time.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _snippet(raw: bytes, limit: int = 200) -> str:
    return " ".join(raw.decode("utf-8", errors="replace").split())[:limit]


def _content(url: str, raw: bytes) -> str:
    """``choices[0].message.content`` of a chat-completion response."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except ValueError:  # not JSON, or not UTF-8
        raise ValueError(
            f"{url}: response is not JSON (got {_snippet(raw)!r}); fix: point --qgen-endpoint at "
            "an OpenAI-compatible API base URL (usually ending in /v1)"
        ) from None
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise ValueError(
            f"{url}: response has no choices[0].message.content (got {_snippet(raw)!r}); fix: use "
            "a server with the OpenAI chat-completions API and a chat model"
        )
    return content


def _status_error(url: str, status: int, body: str, attempts: int, key_env: str) -> EndpointError:
    if status in (401, 403):
        key = "is set" if os.environ.get(key_env) else "is not set"
        fix = f"set ${key_env} to a key the server accepts (it {key})"
    elif status == 404:
        fix = "check that --qgen-endpoint is the API base URL (usually ending in /v1)"
    elif status == 429 or status >= 500:
        fix = "the server is overloaded or failing: check its log, then run again"
    else:
        fix = "check that --qgen-model names a model the server serves (GET /models lists them)"
    return EndpointError(f"{url}: HTTP {status} after {attempts} attempt(s) ({body!r}); fix: {fix}")


def _timeout_error(url: str, timeout: float, attempts: int) -> EndpointError:
    return EndpointError(
        f"{url}: no answer within {timeout:g} s after {attempts} attempt(s); fix: check the "
        "server is not stuck, or give it more time (QueryGenConfig.timeout)"
    )
