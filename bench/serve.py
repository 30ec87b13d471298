"""A bounded load test of `honed serve`'s JSON API on loopback.

Starts `honed serve INDEX` as its own process (as a user would), waits for /health, then sends
REQUESTS `GET /search` calls from CONCURRENCY client threads, each on its own keep-alive
connection, cycling through the dataset's query texts. Prints requests/s, p50/p95/max latency
per request (client side: from sending the request to the end of the body) and the error count
(non-200 answers and failed connections), one row per mode, as a markdown table.

    python bench/serve.py runs/demo/index examples/scifact-mini --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"honed serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            return json.loads(conn.getresponse().read())
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("honed serve did not answer /health in time")


def load(port: int, queries: list[str], mode: str, requests: int, concurrency: int, k: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            path = "/search?" + urllib.parse.urlencode(
                {"q": queries[i % len(queries)], "k": k, "mode": mode}
            )
            start = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "mode": mode,
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": cuts[49],
        "p95": cuts[94],
        "max": max(latencies),
        "errors": errors[0],
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", help="an index folder (honed index ... --out)")
    parser.add_argument("data", help="a BEIR folder: its queries.jsonl are the requests' queries")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--modes", default="dense,hybrid")
    args = parser.parse_args()
    lines = (Path(args.data) / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines if line.strip()]
    port = free_port()
    honed = str(Path(sys.executable).with_name("honed"))
    proc = subprocess.Popen([honed, "serve", args.index, "--port", str(port), "--device", "cpu"])
    try:
        health = wait_healthy(port, proc)
        print(f"serving {health['documents']} documents, {health['dim']} dims, {health['model']}")
        rows = []
        for mode in args.modes.split(","):
            if mode not in health["modes"]:
                print(f"skipping mode {mode}: the index does not serve it")
                continue
            load(port, queries, mode, min(50, args.requests), args.concurrency, args.k)  # warm-up
            rows.append(load(port, queries, mode, args.requests, args.concurrency, args.k))
        print(
            f"\n{args.requests} requests, {args.concurrency} concurrent clients, k={args.k}\n\n"
            "| mode | requests | requests/s | p50 ms | p95 ms | max ms | errors |\n"
            "|---|---:|---:|---:|---:|---:|---:|"
        )
        for r in rows:
            print(
                f"| {r['mode']} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.1f} | "
                f"{r['p95']:.1f} | {r['max']:.1f} | {r['errors']} |"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
