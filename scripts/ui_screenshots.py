"""Screenshots of the MLflow UI over this project's store, taken in a real headless browser.

Starts `mlflow ui` on a free port over `mlruns/`, finds the newest pipeline run of an experiment,
its stage runs, logged models and registered model, and has Chromium's headless shell render each
page to a PNG in `docs/img/` (Debian: `apt-get install chromium-headless-shell`), driven over the
DevTools protocol so that the pipeline run is expanded and the assistant panel closed:

    .venv/bin/python scripts/ui_screenshots.py [--experiment edgesmith-vision] [--out docs/img]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.common import tracking  # noqa: E402

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("error: no headless Chromium: apt-get install chromium-headless-shell")


class Browser:
    """Headless Chromium driven over the DevTools protocol (a minimal WebSocket client, stdlib only):
    pages are navigated, clicked (closing MLflow's assistant panel, expanding the pipeline run)
    and captured as PNG."""

    def __init__(self, size: tuple[int, int] = (1600, 1000)) -> None:
        port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="edgesmith-chromium-")
        self.proc = subprocess.Popen([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      f"--remote-debugging-port={port}", f"--window-size={size[0]},{size[1]}",
                                      f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        ws = _wait(lambda: next(p["webSocketDebuggerUrl"] for p in json.load(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2)) if p["type"] == "page"))  # fmt: skip
        host, path = ws.removeprefix("ws://").split("/", 1)
        self.sock = socket.create_connection((host.split(":")[0], int(host.split(":")[1])))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(4096)
        self.rest, self.n = buf.split(b"\r\n\r\n", 1)[1], 0
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=False)

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
                                if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))  # fmt: skip
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n: int) -> bytes:
        while len(self.rest) < n:
            self.rest += self.sock.recv(1 << 20)
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def _recv(self) -> dict:
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            n = struct.unpack(">H", self._read(2))[0] if n == 126 else struct.unpack(">Q", self._read(8))[0] if n == 127 else n
            msg += self._read(n)
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self._send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = self._recv()
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def page(self, url: str, out: Path, clicks: tuple[str, ...] = (), wait_s: float = 8.0) -> None:
        """Open `url`, close the assistant panel, click each element `clicks` selects (JS
        expressions), then capture the page."""
        self.call("Page.navigate", url=url)
        time.sleep(wait_s)
        self.js(CLOSE_ASSISTANT)
        for click in clicks:
            self.js(f"(() => {{ const e = {click}; if (e) e.click(); }})()")
            time.sleep(2)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        print(f"wrote {out} ({out.stat().st_size:,} bytes) from {url}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.profile, ignore_errors=True)


MODEL_TRAINING = "[...document.querySelectorAll('label,button,span')].find(e => e.textContent.trim() === 'Model training')"
CLOSE_ASSISTANT = "document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')?.click()"


def _expand(run_name: str) -> str:
    """The expand button of the runs table's row named `run_name`."""
    return (f"[...document.querySelectorAll('[role=row]')].find(r => r.textContent.includes({json.dumps(run_name)}))"
            "?.querySelector('button[data-component-id*=runnamecellrenderer]')")


def _wait(probe, seconds: float = 120):
    deadline = time.time() + seconds
    while True:
        try:
            return probe()
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="edgesmith-vision")
    ap.add_argument("--store", default=str(ROOT / "mlruns"))
    ap.add_argument("--registered-model", default="edgesmith-vision")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args()
    from mlflow import MlflowClient

    uri = tracking.store_uris(args.store)[0]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        raise SystemExit(f"error: no experiment {args.experiment!r} in {uri}; run the pipeline first")
    runs = tracking.find_runs(args.experiment, args.store)
    parent = next((r for r in runs if r["tags"].get("edgesmith.pipeline_run") == "true"), None)
    if parent is None:
        raise SystemExit(f"error: no pipeline run in {args.experiment!r}")
    teacher = next((r for r in runs if r["name"] == "teacher" and r["tags"].get("mlflow.parentRunId") == parent["run_id"]),
                   None)  # fmt: skip
    if teacher is None:
        raise SystemExit(f"error: the newest pipeline run of {args.experiment!r} has no teacher run: run the whole pipeline")
    port = _free_port()
    db = uri.removeprefix("sqlite:///")
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri,
                               "--default-artifact-root", str(Path(db).parent / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: urllib.request.urlopen(f"{base}/health", timeout=2).read())
        out, e = Path(args.out), exp.experiment_id
        out.mkdir(parents=True, exist_ok=True)
        since = urllib.parse.quote(f"attributes.start_time >= {parent['start_time']}")
        browser = Browser()
        try:
            browser.page(f"{base}/#/experiments/{e}/runs", out / ".workflow.png", clicks=(MODEL_TRAINING,))
            (out / ".workflow.png").unlink()  # the sidebar's switch, kept by the browser for the pages below
            browser.page(f"{base}/#/experiments/{e}/runs?searchFilter={since}", out / "mlflow-runs.png",
                         clicks=(_expand(parent["name"]),))  # fmt: skip
            browser.page(f"{base}/#/experiments/{e}/runs/{parent['run_id']}", out / "mlflow-pipeline-run.png")
            browser.page(f"{base}/#/experiments/{e}/runs/{teacher['run_id']}", out / "mlflow-teacher-run.png")
            browser.page(f"{base}/#/experiments/{e}/runs/{teacher['run_id']}/model-metrics", out / "mlflow-teacher-curves.png")
            browser.page(f"{base}/#/experiments/{e}/models", out / "mlflow-models.png")
            browser.page(f"{base}/#/models/{args.registered_model}", out / "mlflow-registered-model.png")
        finally:
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
