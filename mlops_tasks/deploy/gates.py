"""The checks a rollout passes before every step: candidate fit to serve, bake, confirmation.

Missing evidence is never a pass. Before each traffic shift, before the ``champion`` alias
moves and before the old slot is retired, :func:`gate_candidate` requires every server of
the candidate slot to answer ``/health`` and ``/metrics`` and to be UP in the router's own
view. :func:`bake` watches the candidate for a bake period with the guard
(:mod:`mlops_tasks.deploy.guard`), sending its own probe requests through the preview port
so a quiet endpoint still yields evidence; too few answers extend the bake, then fail it.
After the last shift :func:`confirm_serving` sends real requests through the live port and
requires every answer to come from the candidate's instances with the new version.

Each check raises :class:`~mlops_tasks.errors.CandidateUnhealthyError` (a
:class:`~mlops_tasks.errors.GuardBreachError`) or ``GuardBreachError``; the strategy then
sends all traffic back to the old slot, which it kept running for exactly this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from mlops_tasks.deploy.guard import GuardVerdict, growth, judge_evidence, read_counts, read_evidence
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import Color, GuardLimits
from mlops_tasks.errors import CandidateUnhealthyError, GuardBreachError

__all__ = ["PROBE_ID", "bake", "confirm_serving", "gate_candidate", "instance_names"]

logger = logging.getLogger(__name__)

#: Request id prefix of the guard's probe requests (they reach the prediction log too).
PROBE_ID = "mlops-guard-probe"


def instance_names(target: DeployTarget, color: Color) -> set[str]:
    """``X-Served-By`` values of the slot's servers (``<endpoint>-<color>-<i>``).

    Example:
        ```python
        assert instance_names(target, "green") == {"churn-green-1"}
        ```
    """
    return {f"{target.endpoint.name}-{color}-{i}" for i in range(1, target.endpoint.replicas + 1)}


def gate_candidate(target: DeployTarget, color: Color, addresses: list[str], before: str) -> None:
    """Require every server of the candidate to answer and to be UP in the router.

    Args:
        target: The endpoint's target.
        color: The candidate slot.
        addresses: The candidate's server addresses, as they were when it became healthy
            (a server that vanished since still counts).
        before: What the check guards, for the message (``"the shift to 100 %"``).

    Raises:
        CandidateUnhealthyError: A server does not answer, is not UP, or is missing.

    Example:
        ```python
        gate_candidate(target, "green", ["127.0.0.1:9001"], "the shift to 100 %")
        ```
    """
    replicas = target.endpoint.replicas
    ev = read_evidence(target.runner, target.traffic, color, addresses)
    problems = ev.problems()
    if len(addresses) < replicas:
        problems.insert(0, f"only {len(addresses)} of {replicas} servers have an address")
    if problems:
        raise CandidateUnhealthyError(
            f"Before {before}: candidate slot {color} of endpoint {target.endpoint.name!r} is not "
            f"fit to serve ({'; '.join(problems)}); all traffic stays on / goes back to the old slot."
        )


def _probe(target: DeployTarget, doc: dict[str, Any] | None, n: int) -> int:
    """POST one probe row to the candidate through the preview port; the HTTP status (0: none)."""
    if doc is None:
        return 200
    reply = target.traffic.send(
        "preview",
        "POST",
        "/invocations",
        json.dumps(doc).encode(),
        {"Content-Type": "application/json", "X-Request-Id": f"{PROBE_ID}-{n}"},
        timeout_s=3.0,
    )
    return reply.status


def bake(
    target: DeployTarget,
    color: Color,
    addresses: list[str],
    limits: GuardLimits,
    seconds: float,
    *,
    share: float | None,
    step: str,
    probe_doc: dict[str, Any] | None = None,
    on_reading: Callable[[GuardVerdict], None] | None = None,
    on_extend: Callable[[str], None] | None = None,
    live_addresses: list[str] | None = None,
) -> GuardVerdict | None:
    """Watch the candidate for ``seconds``; raise on a breach or on too little evidence.

    Args:
        target: The endpoint's target.
        color: The candidate slot.
        addresses: The candidate's server addresses when it became healthy.
        limits: Guard limits (error share, p95, minimum answers, interval, probes, extension).
        seconds: The bake period; 0 skips the bake (the step gates still run).
        share: The candidate's live traffic share (0..1); None for shadow (mirrored only).
        step: What is baking, for messages (``"the 10 % step"``).
        probe_doc: The request body probes send (one smoke row); None sends none.
        on_reading: Called with every guard verdict (the record keeps the last one).
        on_extend: Called with a message when the bake is extended for lack of evidence.
        live_addresses: Servers of the live slot when it gets the same traffic (split or
            mirrored): the candidate's 4xx share is compared with theirs.

    Returns:
        The last verdict (None when there was no bake).

    Raises:
        CandidateUnhealthyError: The candidate stopped answering, restarted, was marked
            DOWN, or got far fewer requests than its share.
        GuardBreachError: 5xx share or p95 latency over the limits, a 4xx share clearly
            over the live slot's, or too few answers to judge even after the extension.

    Example:
        ```python
        bake(target, "green", addrs, GuardLimits(), 60, share=0.1, step="the 10 % step")
        ```
    """
    if seconds <= 0:
        return None
    clock = target.clock
    start = read_evidence(target.runner, target.traffic, color, addresses)
    live_start = read_counts(target.runner, live_addresses) if live_addresses else None
    deadline = clock.monotonic() + seconds
    extended = False
    n = 0
    while True:
        clock.sleep(max(0.0, min(limits.interval_s, deadline - clock.monotonic())))
        n += 1
        now = read_evidence(target.runner, target.traffic, color, addresses)
        live = None
        if live_addresses and live_start is not None:
            live = growth(live_start, read_counts(target.runner, live_addresses))
        verdict = judge_evidence(start, now, limits, share, live)
        probe_status = _probe(target, probe_doc, n) if limits.probe and not verdict.breach else 200
        if probe_status != 200:
            verdict.unhealthy = True
            note = f"a probe through the preview port was answered {probe_status or 'with nothing'}"
            verdict.breach = f"{verdict.breach}; {note}" if verdict.breach else note
        if on_reading is not None:
            on_reading(verdict)
        if verdict.breach:
            error = CandidateUnhealthyError if verdict.unhealthy else GuardBreachError
            raise error(
                f"Bake guard on candidate slot {color} during {step}: {verdict.breach} "
                f"(guard saw {verdict.requests} answers, 5xx share {verdict.error_share:.1%}, "
                f"p95 {verdict.p95_ms:g} ms)."
            )
        if clock.monotonic() < deadline:
            continue
        if verdict.sufficient:
            return verdict
        if not extended and limits.extend_s > 0:
            extended = True
            deadline = clock.monotonic() + limits.extend_s
            message = (
                f"{verdict.requests} candidate answers in {seconds:g} s, fewer than "
                f"{limits.min_requests}: bake extended by {limits.extend_s:g} s"
            )
            logger.info("%s", message)
            if on_extend is not None:
                on_extend(message)
            continue
        raise GuardBreachError(
            f"Bake guard on candidate slot {color} during {step}: only {verdict.requests} answers "
            f"(need {limits.min_requests}) — too little evidence to judge, so the candidate is not "
            "promoted. Send traffic during the bake, keep guard.probe on, or lower guard.min_requests."
        )


def confirm_serving(target: DeployTarget, color: Color, version: int, timeout_s: float = 10.0) -> int:
    """Require real requests through the live entry point to be answered by the candidate.

    Sends ``GET /version`` through the router's live entry point (``2 x replicas``
    requests, at least 3) and checks each answer's ``X-Served-By`` and ``X-Model-Version``.

    Returns:
        The number of answers checked.

    Raises:
        CandidateUnhealthyError: An answer came from another instance or version, was not
            200, or did not come at all.

    Example:
        ```python
        confirm_serving(target, "green", 4)
        ```
    """
    wanted = instance_names(target, color)
    need = max(3, 2 * target.endpoint.replicas)
    for _ in range(need):
        reply = target.traffic.send(
            "live", "GET", "/version", headers={"X-Request-Id": f"{PROBE_ID}-confirm"}, timeout_s=timeout_s
        )
        if reply.status == 0:
            raise CandidateUnhealthyError(
                f"Confirmation: the live entry point did not answer ({reply.error}); the candidate "
                f"slot {color} is not serving it."
            )
        served_by = reply.header("X-Served-By")
        got = reply.header("X-Model-Version")
        if reply.status != 200 or served_by not in wanted or got != str(version):
            detail = reply.body[:200].decode(errors="replace") if reply.status != 200 else ""
            raise CandidateUnhealthyError(
                f"Confirmation: a request through the live entry point was answered HTTP "
                f"{reply.status} by {served_by or 'the router itself'} (version {got or '?'}), not by "
                f"candidate slot {color} (version {version}). {detail}".rstrip()
            )
    return need
