"""Reconcile: find what is live from the runner and the router, repair what a crash left.

The state file is only a cache. A crashed router or live slot is brought back, and when a
previous run was killed mid-rollout all traffic goes to the slot that serves the champion.
"""

from __future__ import annotations

from mlops_tasks.deploy import state
from mlops_tasks.deploy.interfaces import DeployTarget
from mlops_tasks.deploy.models import COLORS, Color, DeploymentRecord, SlotStatus, other
from mlops_tasks.deploy.registry_access import RegistryAccess
from mlops_tasks.deploy.run import RolloutRun
from mlops_tasks.settings import MlflowConfig

__all__ = ["pick_live", "reconcile"]


def reconcile(
    target: DeployTarget,
    model_name: str,
    registry: RegistryAccess,
    mlflow_config: MlflowConfig | None,
    run: RolloutRun,
) -> tuple[Color | None, dict[Color, SlotStatus]]:
    """Find the live slot and repair router and slots; ``(live, slots)`` afterwards.

    Example:
        ```python
        live, slots = reconcile(target, "churn-classifier", registry, None, run)
        ```
    """
    runner, traffic, clock = target.runner, target.traffic, target.clock
    slots = runner.slots()
    healthy = [c for c in COLORS if slots[c].healthy and slots[c].version is not None]
    champion = registry.champion(model_name)
    last_ok = state.last_record(target.endpoint.name, "succeeded")

    was_running = traffic.running()
    weights = traffic.weights() if was_running else None
    live = pick_live(healthy, slots, champion, last_ok, weights)
    # Starts the router when it does not run; when it runs with other ports or replica
    # count, the new configuration is checked and applied by a seamless reload.
    traffic.ensure_running(slots, live)
    if not was_running:
        run.event("router-started", f"live slot {live or 'none'}")
        if live is not None:
            traffic.wait_up(live, 10, clock)
    _reattach(target, slots, healthy, run)
    if live is not None:
        if traffic.weights() != {live: 100, other(live): 0}:
            before = traffic.weights()
            traffic.set_weights({live: 100, other(live): 0})
            run.event(
                "reconciled", f"all traffic to {live} (version {slots[live].version}); weights were {before}"
            )
        traffic.set_mirror(None)
    for color in COLORS:  # a slot that is neither live nor healthy is a leftover
        if color != live and slots[color].running and not slots[color].healthy:
            runner.stop_slot(color, grace_s=2)
            traffic.detach(color)
            run.event("leftover-stopped", f"slot {color} was not healthy")
    deployed = state.load_endpoint(target.endpoint.name) is not None
    wanted = champion if champion is not None else (last_ok.version if last_ok else None)
    if live is None and deployed and last_ok is not None and wanted is not None:
        live = _restart_live(target, model_name, wanted, last_ok.live_color or "blue", mlflow_config, run)
    if live is not None:
        runner.set_supervised(live, True)
    return live, runner.slots()


def _reattach(
    target: DeployTarget, slots: dict[Color, SlotStatus], healthy: list[Color], run: RolloutRun
) -> None:
    """Point the router at what really runs where it disagrees (a slot or router restarted)."""
    traffic = target.traffic
    for color in healthy:
        want = slots[color].addresses
        have = [s.address for s in traffic.slot_servers(color)]
        if have != want:
            traffic.attach(color, want)
            run.event("router-reattached", f"slot {color} -> {', '.join(want)}")
            traffic.wait_up(color, 10, target.clock)


def _restart_live(
    target: DeployTarget,
    model_name: str,
    version: int,
    color: Color,
    mlflow_config: MlflowConfig | None,
    run: RolloutRun,
) -> Color:
    """What should be live crashed: bring the champion (what served) back first."""
    runner, traffic = target.runner, target.traffic
    run.event("restart-live", f"no slot serves; restarting version {version} in slot {color}")
    handle = runner.prepare(model_name, version, mlflow_config)
    runner.start_slot(color, model_name, version, handle)
    runner.wait_healthy(color, 120, 2, target.clock)
    traffic.attach(color, runner.slot_status(color).addresses)
    traffic.wait_up(color, 10, target.clock)
    traffic.set_weights({color: 100, other(color): 0})
    return color


def pick_live(
    healthy: list[Color],
    slots: dict[Color, SlotStatus],
    champion: int | None,
    last_ok: DeploymentRecord | None,
    weights: dict[Color, int] | None,
) -> Color | None:
    """The slot that should serve: the only weighted healthy one, else the champion's.

    When both serve (a run was killed mid-rollout) or the router was restarted: the
    champion wins, then the last successful deployment, then the heavier slot.

    Example:
        ```python
        pick_live(["blue"], slots, champion=3, last_ok=None, weights={"blue": 100, "green": 0})
        ```
    """
    if not healthy:
        return None
    weighted = healthy
    if weights is not None:
        weighted = [c for c in healthy if weights.get(c, 0) > 0] or healthy
        if len(weighted) == 1:
            return weighted[0]
    for color in weighted:
        if champion is not None and slots[color].version == champion:
            return color
    for color in weighted:
        if last_ok is not None and slots[color].version == last_ok.version:
            return color
    if weights is not None:
        return max(weighted, key=lambda c: weights.get(c, 0))
    return weighted[0]
