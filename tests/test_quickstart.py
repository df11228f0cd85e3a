"""docs/quickstart.md "Your own data": every command of the section, run as written.

The section's fenced blocks run in order in a temporary folder holding a small ``houses.csv``
(the reader's own data): Python blocks as the script they are, ``mlops-tasks`` and
``python -m`` lines through the same entry points in-process, ``curl`` as a process. Only
the endpoint's port is swapped for a free one. A command the test does not know fails it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import free_port

DOC = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"
ROWS = 400


def _section_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Your own data\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.S)


def _houses(path: Path) -> None:
    """A reader's CSV: a price driven by size, rooms and region, with noise."""
    rng = np.random.default_rng(5)
    region = rng.choice(["north", "south", "east"], ROWS)
    sqm = rng.uniform(40, 220, ROWS)
    rooms = rng.integers(1, 7, ROWS)
    base = pd.Series(region).map({"north": 3000, "south": 2200, "east": 2600}).to_numpy()
    price = base * sqm + 8000 * rooms + rng.normal(0, 15000, ROWS)
    frame = pd.DataFrame({"sqm": sqm.round(1), "rooms": rooms, "region": region, "price": price.round(0)})
    frame.to_csv(path, index=False)


def _run(line: str, cwd: Path) -> tuple[int, str]:
    argv = shlex.split(line)
    out = io.StringIO()
    if argv[0] == "curl":
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout
    if argv[0] == "mlops-tasks":
        from mlops_tasks.cli import main
    elif argv[:2] == ["python", "-m"]:
        main = importlib.import_module(argv[2]).main
        argv = argv[2:]
    else:
        pytest.fail(f"the quickstart test does not know how to run: {line}")
    with contextlib.redirect_stdout(out):
        code = main(argv[1:])
    return code, out.getvalue()


def _wait_for_log(folder: Path, rows: int, timeout_s: float = 30.0) -> None:
    """The endpoint writes its prediction log every 2 s (as the page says): wait for ``rows``.

    The smoke test's rows may be flushed before the page's request is, so a file alone is
    not enough.
    """
    from mlops_tasks.serving import read_prediction_log

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(folder.rglob("*.parquet")) and len(read_prediction_log(str(folder))) >= rows:
            return
        time.sleep(0.5)


def test_your_own_data_section_runs_as_written(prefect_harness, tmp_path, monkeypatch):
    from mlops_tasks.settings import state_dir

    # the session's state folder (its MLflow store is made once per session); model "houses",
    # endpoint "houses" and suite "houses" are this test's own there
    state = state_dir()
    monkeypatch.chdir(tmp_path)
    _houses(tmp_path / "houses.csv")
    port = str(free_port())
    blocks = _section_blocks()
    assert [kind for kind, _ in blocks] == ["python", "bash", "bash", "bash"]
    outputs: list[tuple[str, int, str]] = []
    try:
        for kind, code in blocks:
            code = code.replace("8010", port)
            if kind == "python":
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, "train_houses.py", "exec"), {"__name__": "__main__"})
                outputs.append(("train_houses.py", 0, printed.getvalue()))
                continue
            for line in code.strip().splitlines():
                if line.startswith("mlops-tasks drift-check"):
                    _wait_for_log(state / "endpoints" / "houses" / "prediction-log", ROWS)
                returncode, printed = _run(line, tmp_path)
                outputs.append((line, returncode, printed))
                assert returncode == 0, (line, printed[-2000:])
    finally:
        from mlops_tasks.deploy import stop_endpoint

        stop_endpoint("houses")

    trained, deployed, scored, drift, stopped = (o[2] for o in outputs)
    assert trained.strip() == "version 1, gate passed: True"
    suite = json.loads((state / "expectations" / "houses.json").read_text())
    assert "region" in json.dumps(suite)
    record = json.loads(deployed)
    assert (record["outcome"], record["version"]) == ("succeeded", 1)
    assert len(json.loads(scored)["predictions"]) == ROWS
    report = json.loads(drift)
    assert (report["status"], report["model_version"]) == ("ok", "1") and report["current_rows"] >= 100
    assert stopped.strip() == "stopped"
