"""``honed serve``: a JSON search API and a search page over one index (Starlette + uvicorn).

Routes:

- ``GET /search?q=...&k=10&mode=dense|hybrid[&compare=true]``: the top ``k`` documents
  (id, score, text) for a RAG application to call; ``compare=true`` adds the base model's top
  ``k`` when the server was started with ``--compare``.
- ``GET /health``: the index, its model, the modes it serves.
- ``GET /``: the search page (``assets/search.html``): type a query, see the tuned model's
  results, base and tuned side by side with ``--compare``.

Every refusal is JSON with a 4xx status, ``{"error": "..."}``: a bad parameter is 400, an
unknown path 404, another method 405. The server binds to 127.0.0.1 unless told otherwise.
Starlette and uvicorn are the optional extra ``honed[serve]``.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from honed.index.service import BadRequest, SearchService

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["create_app", "require_serve_extra", "run_server"]

_INSTALL = "pip install 'honed[serve]'"


def require_serve_extra() -> None:
    """Raise an ImportError naming the install line unless Starlette and uvicorn are installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"honed serve needs Starlette and uvicorn ({err.name} is not installed); "
            f"fix: {_INSTALL}"
        ) from None


def search_page() -> str:
    """The search page's HTML (one file, inline style and script)."""
    return (resources.files("honed.index") / "assets" / "search.html").read_text(encoding="utf-8")


def create_app(service: SearchService) -> Starlette:
    """The Starlette application serving ``service``.

    Raises:
        ImportError: Starlette or uvicorn is missing (the message names ``honed[serve]``).
    """
    require_serve_extra()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    page = search_page()

    def search(request: Request) -> Response:
        # A plain def: Starlette runs it in its thread pool, so the event loop keeps accepting.
        params = request.query_params
        try:
            answer = service.search(
                params.get("q"), params.get("k"), params.get("mode"), params.get("compare")
            )
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(answer)

    def health(request: Request) -> Response:
        return JSONResponse(service.health())

    def home(request: Request) -> Response:
        return HTMLResponse(page)

    async def http_error(request: Request, exc: Any) -> Response:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/search", search, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def run_server(service: SearchService, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``service`` with uvicorn until interrupted (Ctrl-C)."""
    require_serve_extra()
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
