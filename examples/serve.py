"""Serve a tuned model's corpus: embedded index, then a real PostgreSQL + pgvector server.

Run after `make demo` (or any `honed run`): builds a two-stage Matryoshka index with BM25 and the
fusion the run chose on dev, searches it, starts a throwaway PostgreSQL + pgvector server with
the PyPI package `pgserver` (a dev dependency: `pip install pgserver`), uploads the index into it
(what `honed index --store` does), and runs the same hybrid search through SQL. Everything goes through
the `honed` CLI, as a user would type it.

    python examples/serve.py runs/demo examples/scifact-mini "vitamin D and bone fractures"
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def honed(*args: str) -> None:
    print("$ honed " + " ".join(args), flush=True)
    subprocess.run([str(Path(sys.executable).with_name("honed")), *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a honed run folder (model/ and metrics/evidence.json)")
    parser.add_argument("data", help="the BEIR folder the run used")
    parser.add_argument("query")
    args = parser.parse_args()
    index = Path(args.run) / "index"
    if index.exists():
        shutil.rmtree(index)
    honed("index", f"{args.run}/model", args.data, "--out", str(index), "--fusion-from", args.run)
    honed("search", str(index), args.query, "-k", "5", "--hybrid")

    import pgserver  # dev dependency; ships PostgreSQL 16 with pgvector

    with tempfile.TemporaryDirectory(prefix="honed-pg-") as folder:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        try:
            dsn = server.get_uri()
            # The folder is the source of truth; the database is a serving replica of it
            # (`honed index ... --store DSN` builds and uploads in one command).
            from honed.index.postgres.store import PgIndex

            PgIndex.upload(index, dsn)
            print(f"uploaded {index} to PostgreSQL (tables honed_index, _meta, _bm25, _vocab)")
            honed("search", str(index), args.query, "-k", "5", "--hybrid", "--store", dsn)
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
