"""``honed serve INDEX_DIR``: the JSON search API and the search page (parser and handler)."""

from __future__ import annotations

import argparse
from typing import Any

from honed.cli.defaults import field_default
from honed.index.service import ServeConfig

__all__ = ["add_serve_parser", "cmd_serve"]


def add_serve_parser(sub: Any) -> None:
    """``honed serve``'s options; defaults come from :class:`~honed.index.service.ServeConfig`."""
    p = sub.add_parser(
        "serve",
        help="a JSON search API (GET /search, /health) and a search page over an index "
        "(needs: pip install 'honed[serve]')",
    )
    p.add_argument("index", help="index folder from `honed index ... --out`")
    p.add_argument("--model", help="the model that built the index (default: index.json's)")
    p.add_argument(
        "--compare",
        metavar="BASE_MODEL",
        default=field_default(ServeConfig, "compare"),
        help="also search with this base model and show both side by side on the page",
    )
    p.add_argument(
        "--host",
        default=field_default(ServeConfig, "host"),
        help="address to bind (default %(default)s: this machine only)",
    )
    p.add_argument("--port", type=int, default=field_default(ServeConfig, "port"))
    p.add_argument(
        "--shortlist",
        type=int,
        default=field_default(ServeConfig, "shortlist"),
        help="dense candidates re-ranked at full dim (default %(default)s)",
    )
    p.add_argument(
        "--max-k",
        type=int,
        default=field_default(ServeConfig, "max_k"),
        help="the largest k a request may ask for (default %(default)s)",
    )
    p.add_argument("--device", default=field_default(ServeConfig, "device"))


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the index and its model(s), then serve until Ctrl-C."""
    from honed.index.serve import require_serve_extra, run_server
    from honed.index.service import SearchService  # loads the model: imports torch

    require_serve_extra()  # refuse before the models load
    config = ServeConfig(
        index=args.index,
        model=args.model,
        compare=args.compare,
        device=args.device,
        shortlist=args.shortlist,
        max_k=args.max_k,
        host=args.host,
        port=args.port,
    )
    service = SearchService.load(config)
    url = f"http://{config.host}:{config.port}"
    health = service.health()
    print(
        f"serving {config.index} ({health['documents']:,} documents, model {health['model']}"
        + (f", compared with {config.compare}" if config.compare else "")
        + f") on {url}"
    )
    print(f"search page: {url}/   API: {url}/search?q=...&k=10&mode={'|'.join(health['modes'])}")
    print("stop with Ctrl-C")
    run_server(service, config.host, config.port)
    return 0
