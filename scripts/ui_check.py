"""``make ui-check``: the Prefect UI in a real browser, with screenshots a developer looks at.

Kept out of ``make test``. It starts, all on loopback and on free ports, with its own state
folder (``.ui-check/state``):

1. ``mlflow server --serve-artifacts`` (SQLite store), so the evaluation plots have a web home;
2. ``prefect server start`` with its UI;
3. ``python -m deployments.serve --automations`` (what ``make serve`` runs) against them;

then runs the training deployment once (as the UI's Run button does) and drives headless
Chromium (Debian's ``chromium`` package, driven by Playwright for Python through
``executable_path``; no browser download) through the deployments list, the training form,
the finished run, its artifacts, a plot image artifact and the drift automation. Screenshots
go to ``.ui-check/screenshots/`` (or ``--out``); everything started is stopped by PID at the end.

    make ui-check                      # or: .venv/bin/python scripts/ui_check.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
sys.path.insert(0, str(PROJECT))  # flows/ and deployments/ are project folders, not installed packages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"ui-check: timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A background process in its own process group, stopped (group, by PID) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_training(api_url: str) -> tuple[str, str]:
    """One run of training-pipeline/train with small demo data; (deployment id, flow run id)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.definitions import by_name

    spec = by_name("training-pipeline")
    params = spec.parameters()["params"]
    params.update(demo={"rows": 2000, "seed": 3, "drift": 0.0}, promote_on_pass=True)
    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(spec.full_name)
            run = client.create_flow_run_from_deployment(deployment.id, parameters={"params": params})

            def final() -> Any:
                state = client.read_flow_run(run.id).state
                return state if state is not None and state.is_final() else None

            state = wait_for(final, 600, "the training run to finish", 2.0)
            print(f"ui-check: training run {run.id}: {state.name} {state.message or ''}")
            return str(deployment.id), str(run.id)


def first_artifact_id(api_url: str, flow_run_id: str, key_prefix: str) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
    found = [a for a in artifacts if (a.key or "").startswith(key_prefix)]
    return str(found[0].id) if found else None


def screenshots(ui: str, api_url: str, deployment_id: str, flow_run_id: str, out: Path) -> list[Path]:
    """Drive headless Chromium through the pages and save one screenshot per page."""
    from playwright.sync_api import sync_playwright

    pages = [
        ("01-deployments", f"{ui}/deployments", "training-pipeline"),
        ("02-training-form", f"{ui}/deployments/deployment/{deployment_id}/run", "Model Name"),
        ("03-training-run", f"{ui}/runs/flow-run/{flow_run_id}", "training"),
        ("04-run-artifacts", f"{ui}/runs/flow-run/{flow_run_id}", "tab:Artifacts"),
    ]
    for name, prefix in (("05-plot-artifact", "plot-roc"), ("06-validation-artifact", "validation")):
        artifact = first_artifact_id(api_url, flow_run_id, prefix)
        if artifact:
            pages.append((name, f"{ui}/artifacts/artifact/{artifact}", ""))
    pages.append(("07-automations", f"{ui}/automations", "retrain"))
    docs = sorted((PROJECT / ".ui-check" / "state" / "validation").rglob("data-docs.html"))
    if docs:  # GX's Data Docs page linked from the validation artifact (its CDN styles may not load)
        pages.append(("08-data-docs", docs[-1].as_uri(), ""))
    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        for name, url, text in pages:
            page.goto(url, wait_until="networkidle", timeout=120_000)
            if text.startswith("tab:"):  # open a tab of the page, as a user clicks it
                try:
                    page.get_by_text(text.removeprefix("tab:"), exact=True).first.click(timeout=30_000)
                except Exception as exc:  # the screenshot shows the page as it is
                    print(f"ui-check: {name}: tab {text!r} not clickable: {type(exc).__name__}")
                text = "evaluation"
            if text:
                try:
                    page.get_by_text(text, exact=False).first.wait_for(timeout=30_000)
                except Exception as exc:  # the screenshot shows what the page had instead
                    print(f"ui-check: {name}: {text!r} not seen on {url}: {type(exc).__name__}")
            page.wait_for_timeout(1500)  # charts and images finish drawing
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)
            print(f"ui-check: {path}  <- {url}")
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PROJECT / ".ui-check" / "screenshots"))
    parser.add_argument("--keep-state", action="store_true", help="keep .ui-check/state from the last run")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(
            f"ui-check: {CHROMIUM} is missing: apt-get install chromium (Debian's package)", file=sys.stderr
        )
        return 2
    root = PROJECT / ".ui-check"
    state = root / "state"
    if state.exists() and not args.keep_state:
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from deployments.local_server import start_server

    mlflow_port = free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "MLFLOW_"))}
    env.update({"MLOPS_STATE_DIR": str(state), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})
    mlflow_cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(mlflow_port),
        "--backend-store-uri", f"sqlite:///{state / 'mlflow-server.db'}",
        "--serve-artifacts", "--artifacts-destination", str(state / "mlflow-artifacts"), "--workers", "1",
    ]  # fmt: skip
    with process(mlflow_cmd, env, state / "mlflow-server.log"):
        wait_for(lambda: healthy(f"{mlflow_url}/health"), 180, "mlflow server")
        api = start_server(state / "prefect", "127.0.0.1", free_port(), ui=True)
        try:
            serve_env = {**env, "PREFECT_API_URL": api.url, "MLFLOW_TRACKING_URI": mlflow_url}
            with process(
                [sys.executable, "-m", "deployments.serve", "--automations"], serve_env, state / "serve.log"
            ):
                wait_for(
                    lambda: "mlops-retrain-on-drift" in (state / "serve.log").read_text(errors="replace"),
                    300,
                    "deployments served and automations applied",
                )
                deployment_id, flow_run_id = run_training(api.url)
                saved = screenshots(api.ui_url, api.url, deployment_id, flow_run_id, out)
        finally:
            api.stop()
    print(f"ui-check: {len(saved)} screenshots in {out}; look at each of them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
