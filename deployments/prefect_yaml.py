"""Write or check ``prefect.yaml`` from :mod:`deployments.definitions` (the one table).

    python -m deployments.prefect_yaml write     # regenerate prefect.yaml
    python -m deployments.prefect_yaml check     # exit 1 when prefect.yaml is stale

``prefect deploy --all`` then creates the same deployments ``make serve`` serves, on
the process work pool ``mlops-process`` (``--pool`` picks another one). Runs pick the
project folder of whoever ran ``prefect deploy`` as working directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.definitions import DEFAULT_WORK_POOL, DEPLOYMENTS, DeploymentSpec

__all__ = [
    "HEADER",
    "PREFECT_YAML",
    "PROJECT_ROOT",
    "deployment_entry",
    "main",
    "render",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
HEADER = (
    "# Generated from deployments/definitions.py by `python -m deployments.prefect_yaml write`;\n"
    "# edit the table there, not this file (tests/test_orchestration.py checks they agree).\n"
    "# Create the pool once: prefect work-pool create mlops-process --type process\n"
    "# Then, from this folder: prefect deploy --all && prefect worker start --pool mlops-process\n"
)


def deployment_entry(spec: DeploymentSpec, work_pool: str = DEFAULT_WORK_POOL) -> dict[str, Any]:
    """The ``deployments:`` entry of one table row.

    Example:
        ```python
        from deployments.definitions import by_name
        entry = deployment_entry(by_name("drift-check"))
        assert entry["schedules"][0]["cron"] == "0 6 * * *"
        ```
    """
    entry: dict[str, Any] = {
        "name": spec.name,
        "entrypoint": spec.entrypoint,
        "description": spec.description,
        "tags": list(spec.tags),
        "parameters": spec.parameters(),
    }
    if spec.schedule:
        entry["schedules"] = [spec.schedule.to_yaml()]
    entry["work_pool"] = {"name": work_pool, "work_queue_name": None, "job_variables": {}}
    return entry


def render(work_pool: str = DEFAULT_WORK_POOL) -> str:
    """The full text of ``prefect.yaml``."""
    document = {
        "name": "mlops-tasks",
        "build": None,
        "push": None,
        # Resolved by `prefect deploy` from its own environment: the folder it ran in.
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}],
        "deployments": [deployment_entry(spec, work_pool) for spec in DEPLOYMENTS],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``write`` or ``check`` prefect.yaml."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("--path", type=Path, default=PREFECT_YAML)
    parser.add_argument("--work-pool", default=DEFAULT_WORK_POOL, help="work pool of every deployment")
    args = parser.parse_args(argv)
    text = render(args.work_pool)
    if args.command == "write":
        args.path.write_text(text, encoding="utf-8")
        print(f"wrote {args.path}")
        return 0
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
    if current != text:
        print(f"{args.path} is stale: run `python -m deployments.prefect_yaml write`", file=sys.stderr)
        return 1
    print(f"{args.path} matches deployments/definitions.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
