"""The built wheel, installed as a library user installs it (not editable), carries what they need.

The wheel is built from this tree (``pip wheel``, isolated build as a user's pip does it) and
installed with ``--no-deps --no-index`` into a fresh virtualenv without pip, whose only view of
the dependencies is this project's virtualenv's site-packages (a ``.pth`` line: the editable
install's import hook there is not activated). Everything runs from a folder outside the
repository, so nothing can come from the source tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib.metadata as md, importlib.resources as res, importlib.util, json, pkgutil
import mlops_tasks, mlops_tasks.flows.failures, mlops_tasks.flows.parameters
import mlops_tasks.flows as ready_made
try:
    import flows
    top_level_flows = flows.__file__
except ModuleNotFoundError:
    top_level_flows = None
dist = md.distribution("mlops-tasks")
# every ready-made flow module, found (not run: importing them all loads the whole stack)
modules = {m.name: importlib.util.find_spec(f"mlops_tasks.flows.{m.name}").origin
           for m in pkgutil.iter_modules(ready_made.__path__)}
print(json.dumps({
    "package": mlops_tasks.__file__,
    "imported": [mlops_tasks.flows.failures.__file__, mlops_tasks.flows.parameters.__file__],
    "modules": modules,
    "version": mlops_tasks.__version__,
    "scripts": sorted(e.name for e in dist.entry_points if e.group == "console_scripts"),
    "templates": sorted(
        p.name
        for pkg in ("mlops_tasks.containerize", "mlops_tasks.deploy.haproxy")
        for p in res.files(pkg).joinpath("templates").iterdir()
    ),
    "top_level_flows": top_level_flows,
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("mlops_tasks-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # the dependencies: our virtualenv's site-packages, after the new venv's own
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_project_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run(
        [python, "-c", PROBE],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    return env_dir, json.loads(probe.stdout.strip().splitlines()[-1])


def test_wheel_carries_the_flows_templates_and_console_scripts(installed):
    env_dir, found = installed
    site = str(env_dir)
    assert found["package"].startswith(site), found
    assert all(path.startswith(site) for path in found["imported"]), found
    expected = {p.stem for p in (ROOT / "mlops_tasks" / "flows").glob("*.py")} - {"__init__"}
    assert set(found["modules"]) == expected and "training" in expected
    assert all(origin.startswith(site) for origin in found["modules"].values()), found
    assert found["version"] == "0.1.0"
    assert {"mlops-serve", "mlops-tasks"} <= set(found["scripts"])
    assert {"Dockerfile.template", "dockerignore", "mirror.lua"} <= set(found["templates"])
    assert found["top_level_flows"] is None  # the old flows/ path lives in the repository only


def test_installed_console_script_runs(installed):
    env_dir, _ = installed
    done = subprocess.run(
        [env_dir / "bin" / "mlops-tasks", "drift-check", "--schema"],
        cwd=env_dir,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DriftCheckParams" in done.stdout
