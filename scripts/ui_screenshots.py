"""Screenshots of the MLflow UI over this project's store, taken in a real headless browser.

Starts `mlflow ui` on a free port over `mlruns/`, finds the newest pipeline run of an experiment,
its stage runs, logged models and registered model, and has Chromium's headless shell render each
page to a PNG in `docs/img/` (Debian: `apt-get install chromium-headless-shell`):

    .venv/bin/python scripts/ui_screenshots.py [--experiment edgesmith-vision] [--out docs/img]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
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
        found = shutil.which(name) or next((str(p) for p in Path("/usr/lib/chromium").glob(name)), None)
        if found:
            return found
    raise SystemExit("error: no headless Chromium: apt-get install chromium-headless-shell")


def shoot(browser: str, url: str, out: Path, size: str = "1600,1000", wait_ms: int = 20000) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {url}")


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
    teacher = next(r for r in runs if r["name"] == "teacher" and r["tags"].get("mlflow.parentRunId") == parent["run_id"])
    port = _free_port()
    db = uri.removeprefix("sqlite:///")
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri,
                               "--default-artifact-root", str(Path(db).parent / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                time.sleep(1)
        browser, out, e = _browser(), Path(args.out), exp.experiment_id
        out.mkdir(parents=True, exist_ok=True)
        pages = {
            "mlflow-runs.png": f"{base}/#/experiments/{e}/runs",
            "mlflow-pipeline-run.png": f"{base}/#/experiments/{e}/runs/{parent['run_id']}",
            "mlflow-teacher-curves.png": f"{base}/#/experiments/{e}/runs/{teacher['run_id']}/model-metrics",
            "mlflow-models.png": f"{base}/#/experiments/{e}/models",
            "mlflow-registered-model.png": f"{base}/#/models/{args.registered_model}",
        }
        for name, url in pages.items():
            shoot(browser, url, out / name)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
