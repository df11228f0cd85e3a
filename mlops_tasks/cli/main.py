"""``mlops-tasks <stage>``: run one pipeline stage from a shell, a CI job or another scheduler.

Parameters are the stage's pydantic model as JSON (``--params '{...}'``, ``--params-file
p.json`` or ``--params-file -`` for standard input); the result model is written as JSON to
standard output or ``--output``. Logs go to standard error. No Prefect is imported: blocks are
not read (give MLflow and S3 settings in the parameters or the environment).

The exit code says how it ended (:mod:`mlops_tasks.cli.exit_codes`): 0 ok, 1 error, 2 bad
usage or parameters, 3 validation failed, 4 gate failed, 5 a server did not answer, 10 drift,
11 not enough data, 12 rolled back. With ``--error-output`` a failure also writes
``{"exit_code", "error", "message", "errors"}`` there (``errors`` lists the fields that did
not validate).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from mlops_tasks.cli.exit_codes import ExitCode, exit_code_for_error, exit_code_for_status
from mlops_tasks.cli.stages import STAGES, Stage

__all__ = ["UsageError", "main", "parse_params", "run"]

logger = logging.getLogger("mlops_tasks.cli")

#: Libraries whose INFO logs say nothing about the stage; shown from WARNING on.
_NOISY_LOGGERS = ("great_expectations", "alembic", "botocore", "urllib3")


class UsageError(Exception):
    """Parameters that cannot be used (exit code 2); ``errors`` lists the fields concerned."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops-tasks",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 ok, 1 error, 2 usage/parameters, 3 validation failed, 4 gate failed, "
        "5 server unavailable, 10 drift, 11 not enough data, 12 rolled back.",
    )
    parser.add_argument("--version", action="store_true", help="print the package version and exit")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    for stage in STAGES.values():
        cmd = sub.add_parser(stage.name, help=stage.summary, description=stage.summary)
        given = cmd.add_mutually_exclusive_group()
        given.add_argument("--params", help="parameters as a JSON object")
        given.add_argument("--params-file", help="file holding the JSON parameters ('-': standard input)")
        cmd.add_argument("--output", help="write the result JSON here instead of standard output")
        cmd.add_argument("--error-output", help="on failure, write the error as JSON here")
        cmd.add_argument("--schema", action="store_true", help="print the parameters' JSON schema and exit")
        cmd.add_argument("--check", action="store_true", help="validate the parameters only (no I/O)")
        cmd.add_argument("--log-level", default="INFO", help="log level on standard error (default INFO)")
    return parser


def parse_params(stage: Stage, text: str | None) -> BaseModel:
    """Parse and validate a stage's JSON parameters into its model, before any I/O.

    Unknown top-level fields are refused (a typo would otherwise be ignored silently).

    Args:
        stage: The stage.
        text: The JSON object (``None`` or empty: every default).

    Returns:
        The parameter model.

    Raises:
        UsageError: Not JSON, not an object, an unknown field, or a field that does not validate
            (the message and ``errors`` name each field).

    Example:
        ```python
        from mlops_tasks.cli.stages import STAGES
        params = parse_params(STAGES["rollback"], '{"endpoint_name": "churn"}')
        ```
    """
    model = stage.params_model()
    try:
        data: Any = json.loads(text) if text and text.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"{stage.name}: the parameters are not JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{stage.name}: the parameters must be a JSON object, got {type(data).__name__}.")
    unknown = sorted(set(data) - set(model.model_fields))
    if unknown:
        raise UsageError(
            f"{stage.name}: unknown parameter(s) {', '.join(unknown)}; {model.__name__} has "
            f"{', '.join(model.model_fields)} (see mlops-tasks {stage.name} --schema).",
            [{"field": name, "message": "unknown parameter"} for name in unknown],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(part) for part in err["loc"]) or "(root)", "message": err["msg"]}
            for err in exc.errors()
        ]
        listed = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise UsageError(
            f"{stage.name}: parameters of {model.__name__} do not validate: {listed}", errors
        ) from exc


def _read_params(args: argparse.Namespace) -> str | None:
    if args.params is not None:
        return str(args.params)
    if args.params_file is None:
        return None
    if args.params_file == "-":
        return sys.stdin.read()
    try:
        return Path(args.params_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the parameters file {args.params_file}: {exc}") from exc


def _write(path: str | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(target)


def _fail(args: argparse.Namespace, code: ExitCode, exc: BaseException, errors: list[dict[str, str]]) -> int:
    print(f"mlops-tasks {args.stage}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if args.error_output:
        payload = {"exit_code": int(code), "error": type(exc).__name__, "message": str(exc), "errors": errors}
        _write(args.error_output, json.dumps(payload))
    return int(code)


def _result_of_error(exc: BaseException) -> BaseModel | None:
    """The report a failed check carries (validation, gate, a rolled-back record), if any."""
    for name in ("report", "record"):
        value = getattr(exc, name, None)
        if isinstance(value, BaseModel):
            return value
    return None


def _run(args: argparse.Namespace, stage: Stage) -> int:
    try:
        params = parse_params(stage, _read_params(args))
    except UsageError as exc:
        return _fail(args, ExitCode.USAGE, exc, exc.errors)
    if args.check:
        _write(args.output, params.model_dump_json())
        return int(ExitCode.OK)
    try:
        result = stage.function()(params)
    except Exception as exc:
        code = exit_code_for_error(exc)
        carried = _result_of_error(exc)
        if carried is not None and code != ExitCode.ERROR:
            _write(args.output, carried.model_dump_json())
        if code == ExitCode.ERROR and not _is_expected(exc):
            logger.exception("mlops-tasks %s failed", stage.name)
        return _fail(args, code, exc, [])
    _write(args.output, result.model_dump_json())
    if stage.name == "drift-check":
        return int(exit_code_for_status(getattr(result, "status", None)))
    return int(ExitCode.OK)


def _is_expected(exc: BaseException) -> bool:
    from mlops_tasks.errors import MLOpsError

    return isinstance(exc, MLOpsError)


def main(argv: list[str] | None = None) -> int:
    """Run ``mlops-tasks`` with ``argv`` (default: the process's arguments); return the exit code.

    Example:
        ```python
        from mlops_tasks.cli import main
        code = main(["rollback", "--params", '{"endpoint_name": "churn"}'])
        ```
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.version:
        from importlib.metadata import version

        print(version("mlops-tasks"))
        return int(ExitCode.OK)
    if args.stage is None:
        parser.print_usage(sys.stderr)
        return int(ExitCode.USAGE)
    stage = STAGES[args.stage]
    if args.schema:
        _write(None, json.dumps(stage.params_model().model_json_schema(), indent=2))
        return int(ExitCode.OK)
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        print(
            f"mlops-tasks: --log-level {args.log_level!r} is not a log level (DEBUG, INFO...)",
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in _NOISY_LOGGERS:  # their INFO lines are import-time chatter, not the stage's
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return _run(args, stage)


def run() -> NoReturn:
    """The ``mlops-tasks`` command (and ``python -m mlops_tasks.cli``): :func:`main`, then exit.

    Before the interpreter's teardown, the objects alive then are frozen out of garbage
    collection (:func:`gc.freeze`): otherwise the teardown walks the whole import graph of
    MLflow, scikit-learn, SciPy and matplotlib, ~1 s per stage process after its result is
    written (an Airflow DAG runs one process per task). Nothing is skipped: ``atexit``
    handlers run, files and streams are flushed and closed as usual.

    Example:
        ```python
        # [project.scripts] mlops-tasks = "mlops_tasks.cli:run"
        from mlops_tasks.cli import run
        run()  # reads sys.argv, exits with the stage's exit code
        ```
    """
    code = main()
    gc.freeze()
    raise SystemExit(code)
