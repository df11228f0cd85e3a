"""Serve every deployment of this project from one local process.

    make serve                      # or: .venv/bin/python -m deployments.serve

Without ``PREFECT_API_URL`` a Prefect server is started on http://127.0.0.1:4200
(SQLite under ``<state dir>/prefect``) and stopped again on Ctrl-C; open that address
for the UI. With ``PREFECT_API_URL`` set, that server must answer. Each flow of
``flows/`` gets the deployment :mod:`deployments.definitions` describes (description,
tags, typed default parameters, schedule); "Run" in the UI opens their parameter form.

Options: ``--only NAME`` serves a subset, ``--interval NAME=SECONDS`` replaces a
deployment's schedule with an active interval (demos and tests),
``--automations`` also applies :mod:`deployments.automations` once the deployments exist.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping

from prefect.deployments.runner import RunnerDeployment

from deployments.definitions import DEPLOYMENTS, DeploymentSpec, ScheduleSpec, by_name
from mlops_tasks.errors import MLOpsError

__all__ = ["build_deployments", "main", "to_runner_deployment"]


def to_runner_deployment(spec: DeploymentSpec, schedule: ScheduleSpec | None = None) -> RunnerDeployment:
    """The served deployment of one table entry (``schedule`` replaces the table's).

    Example:
        ```python
        from deployments.definitions import by_name
        deployment = to_runner_deployment(by_name("drift-check"))
        ```
    """
    schedule = schedule or spec.schedule
    return spec.load_flow().to_deployment(
        name=spec.name,
        description=spec.description,
        tags=list(spec.tags),
        parameters=spec.parameters(),
        schedules=[schedule.to_prefect()] if schedule else None,
    )


def build_deployments(
    only: Iterable[str] | None = None, intervals: Mapping[str, float] | None = None
) -> list[RunnerDeployment]:
    """The deployments this project serves (one per flow).

    Args:
        only: Names (deployment, flow or ``flow/deployment``) to serve; default all.
        intervals: Seconds by name: replace that deployment's schedule with an active interval.

    Raises:
        KeyError: A name is not in :data:`deployments.definitions.DEPLOYMENTS`.

    Example:
        ```python
        deployments = build_deployments(only=["training-pipeline"])
        ```
    """
    specs = [by_name(name) for name in only] if only else list(DEPLOYMENTS)
    overrides = {by_name(name).full_name: seconds for name, seconds in (intervals or {}).items()}
    return [
        to_runner_deployment(
            spec,
            ScheduleSpec(interval_s=overrides[spec.full_name]) if spec.full_name in overrides else None,
        )
        for spec in specs
    ]


def _parse_interval(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    if not name or not seconds:
        raise argparse.ArgumentTypeError(f"expected NAME=SECONDS, got {text!r}")
    return name, float(seconds)


def main(argv: list[str] | None = None) -> int:
    """Serve all deployments until interrupted (starts a local Prefect server if none is set)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="serve only this deployment (repeatable)")
    parser.add_argument(
        "--interval",
        action="append",
        type=_parse_interval,
        default=[],
        metavar="NAME=SECONDS",
        help="replace a schedule with an active interval",
    )
    parser.add_argument(
        "--automations", action="store_true", help="apply deployments.automations once the deployments exist"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="at most this many flow runs at once, each a process (default: Prefect's runner "
        "process limit, PREFECT_RUNNER_PROCESS_LIMIT, 5)",
    )
    parser.add_argument(
        "--server-port",
        type=int,
        default=4200,
        help="port of the local Prefect server started when PREFECT_API_URL is unset",
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1 (got {args.limit}); leave it out for Prefect's default")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_server import ensure_prefect_api

    try:
        deployments = build_deployments(args.only, dict(args.interval))
        api = ensure_prefect_api(port=args.server_port)
    except (MLOpsError, KeyError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    try:
        with temporary_settings({PREFECT_API_URL: api.url}):
            print(
                f"Prefect UI: {api.ui_url}  (deployments: "
                f"{', '.join(f'{d.flow_name}/{d.name}' for d in deployments)})",
                flush=True,
            )
            if args.automations:
                from deployments import automations

                for deployment in deployments:
                    deployment.apply()
                for line in automations.apply():
                    print(line, flush=True)
            from prefect import serve

            # `limit=None` would mean no limit at all: a backlog of scheduled runs would start
            # every one of them at once (a process each); unset, the runner uses Prefect's setting
            serve(*deployments, **({} if args.limit is None else {"limit": args.limit}))
    except MLOpsError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
