"""Screenshots of report.html and of `honed serve`'s search page for the README.

Opens RUN_DIR/report.html from disk in headless chromium (the system's, driven by Playwright),
takes the top of the page (verdict, warnings, charts), then filters the query explorer to
losses and opens the first one (base and tuned top 10 side by side). Then starts
`honed serve INDEX --compare BASE` on a free loopback port, types QUERY on the search page and
takes the page with both result columns.

    python scripts/screenshots.py runs/demo runs/demo/index "vitamin D deficiency and bone fractures"
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"honed serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("honed serve did not start")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("index")
    parser.add_argument("query")
    parser.add_argument("--base", default="all-MiniLM-L6-v2")
    parser.add_argument("--out", default=str(REPO / "docs" / "examples"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    port = free_port()
    honed = str(Path(sys.executable).with_name("honed"))
    server = subprocess.Popen(
        [honed, "serve", args.index, "--compare", args.base, "--port", str(port), "--device", "cpu"]
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 860})
            page.goto((Path(args.run) / "report.html").resolve().as_uri())
            page.screenshot(path=str(out / "report_overview.png"))
            page.click('button[data-filter="loss"]')
            page.locator("#query-table tbody tr").first.click()
            page.locator("#explorer").screenshot(path=str(out / "report.png"))
            wait_healthy(port, server)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#q", args.query)
            page.press("#q", "Enter")
            page.wait_for_selector("#results-base li")
            page.screenshot(path=str(out / "search.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name in ("report_overview.png", "report.png", "search.png"):
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
