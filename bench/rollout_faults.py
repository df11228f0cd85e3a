"""Rollout-faults benchmark (issue 11): blue-green rollouts with a fault injected at a chosen phase.

Runs on loopback only, in a temporary state folder with its own MLflow store, under the
load of ``bench/bluegreen.py`` (the test suite's load client: 8 keep-alive connections
POSTing one-row ``/invocations``, no retries). For each scenario (fault x phase x
strategy; canary, linear, shadow and all-at-once with bakes of a few seconds) on one
shared endpoint per target:

1. the endpoint serves a good version; the load and an :class:`EndpointMonitor` (admin
   socket polled every 25 ms) run;
2. a rollout to the other good version (or to a slow / 500-answering version) runs with a
   listener that injects the fault at the scenario's phase: candidate killed (SIGKILL) or
   hung (SIGSTOP), old live slot killed, router killed, router config check failing;
3. after it, the live port is probed when the run said ``succeeded``, then a rerun deploys
   the version that should be live and the endpoint must reconcile to exactly one
   weighted slot serving the champion.

Counted over the scenarios:

- ``endpoint_down_ms``: the longest window in which no server of backend ``live`` was UP
  with weight > 0 while some slot was healthy (router-kill scenarios apart: nothing can
  answer until the router is back; their figures are on the ``router_kill`` line);
- ``failed_beyond_inflight``: failed requests (connection errors, resets, timeouts, router
  5xx) beyond one per open connection per process the fault killed or froze, or the
  rollout had to kill (a hung or slow candidate); 5xx answered by a candidate's own
  model (the 500s fault) are counted apart as ``slot_errors``;
- ``wrong_outcomes``: an unhealthy candidate promoted; ``succeeded`` while the live port is
  not served by the new version; the champion alias moved on failure; a failed run that
  raised nothing or no ``EndpointDeployError`` with its record; a rerun that does not
  reconcile.

Then a subset on the docker target when an engine answers (images labelled
``org.mlops-tasks.test=bench-<id>`` and removed at the end, like ``bench/bluegreen.py``).
One line per scenario, then the totals; the last line is::

    rollout_faults: scenarios=<n> endpoint_down_ms=<max> failed_beyond_inflight=<n> wrong_outcomes=<n>

Exit status 1 when wrong_outcomes > 0.

Run: ``.venv/bin/python bench/rollout_faults.py [--targets local,docker] [--only REGEX] [--bake 3]``
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fault_support import Phase  # noqa: E402  (after the path is set)


@dataclass(frozen=True)
class Scenario:
    """One fault at one phase of one strategy."""

    fault: str
    phase: Phase | None
    strategy: str
    #: Also run on the docker target (the representative subset).
    docker: bool = False
    #: Slot replicas the rollout asks for (another count makes it reload the router).
    replicas: int = 1

    @property
    def label(self) -> str:
        """``fault@phase/strategy``."""
        return f"{self.fault}@{self.phase.label if self.phase else 'model'}/{self.strategy}"


BAKE_10 = Phase("shift", 1, "10 %", delay_s=1.0)
FIRST_STEP = Phase("shift", 1, delay_s=1.0)
LAST_SHIFT = Phase("shift", 2, "100 %")
SCENARIOS: list[Scenario] = [
    Scenario("kill-candidate", Phase("green-healthy"), "canary"),
    Scenario("kill-candidate", Phase("smoke-started"), "canary"),
    Scenario("kill-candidate", BAKE_10, "canary", docker=True),  # the issue
    Scenario("kill-candidate", FIRST_STEP, "linear"),
    Scenario("kill-candidate", LAST_SHIFT, "canary", docker=True),
    Scenario("kill-candidate", Phase("shift", 1, "100 %", delay_s=1.0), "all_at_once"),
    Scenario("kill-candidate", Phase("shadow-on", delay_s=1.0), "shadow"),
    Scenario("kill-candidate", Phase("confirmed"), "canary"),
    Scenario("kill-candidate", Phase("retire-started"), "linear"),
    Scenario("hang-candidate", BAKE_10, "canary", docker=True),
    Scenario("hang-candidate", LAST_SHIFT, "linear"),
    Scenario("hang-candidate", Phase("shadow-on", delay_s=1.0), "shadow"),
    Scenario("hang-candidate", Phase("smoke-started"), "all_at_once"),
    Scenario("hang-candidate", Phase("confirmed"), "canary"),
    Scenario("slow-candidate", None, "canary"),
    Scenario("slow-candidate", None, "all_at_once"),
    Scenario("spike-candidate", None, "linear", docker=True),
    Scenario("spike-candidate", None, "canary"),
    Scenario("spike-candidate", None, "shadow"),
    Scenario("kill-live", BAKE_10, "canary", docker=True),
    Scenario("kill-live", Phase("green-healthy"), "linear"),
    Scenario("kill-live", LAST_SHIFT, "linear"),
    Scenario("kill-live", Phase("retire-started"), "canary"),
    Scenario("kill-router", BAKE_10, "canary", docker=True),
    Scenario("kill-router", LAST_SHIFT, "canary"),
    Scenario("kill-router", Phase("confirmed"), "all_at_once"),
    Scenario("fail-reload", Phase("started"), "canary", docker=True, replicas=2),
]


@dataclass
class Result:
    """Figures and verdict of one scenario."""

    kind: str
    scenario: Scenario
    outcome: str = "?"
    error: str = ""
    fired: bool = False
    down_ms: float = 0.0
    router_down_ms: float = 0.0
    nothing_ms: float = 0.0
    failed: int = 0
    allowance: int = 0
    slot_errors: int = 0
    requests: int = 0
    seconds: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def beyond(self) -> int:
        """Failed requests beyond the in-flight allowance."""
        return max(0, self.failed - self.allowance)

    def line(self, index: int) -> str:
        """One line for the scenario."""
        text = (
            f"[{self.kind}] {index:02d} {self.scenario.label}: outcome={self.outcome} "
            f"error={self.error or '-'} fired={'yes' if self.fired else 'no'} "
            f"down_ms={self.down_ms:.0f} router_down_ms={self.router_down_ms:.0f} "
            f"nothing_ms={self.nothing_ms:.0f} failed={self.failed} allowance={self.allowance} "
            f"beyond={self.beyond} slot_errors={self.slot_errors} requests={self.requests} "
            f"s={self.seconds:.1f} wrong={len(self.wrong)}"
        )
        return text + "".join(f"\n    wrong: {w}" for w in self.wrong)


class Bench:
    """One target's endpoint, registered versions and the load the scenarios share."""

    def __init__(self, kind: str, root: Path, rate: float, bake: float) -> None:
        from mlops_tasks.demo import TARGET, make_churn_data
        from mlops_tasks.deploy import EndpointSpec
        from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
        from mlops_tasks.tracking import ensure_experiment
        from tests.conftest import free_port
        from tests.deploy_support import SpikeModel, body_for, features, make_pipeline, register_version
        from tests.fault_support import SlowModel
        from tests.mlflow_support import fluent_mlflow

        self.kind, self.rate, self.bake = kind, rate, bake
        self.config = MlflowConfig(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=(root / "artifacts").as_uri(),
            experiment_name="bench",
        )
        self.name = f"faults-{kind}"
        frame = make_churn_data(2000, seed=5)
        x, y = features(frame), frame[TARGET]
        resolved = resolve_mlflow_config(self.config)
        with fluent_mlflow(resolved) as client:
            exp = ensure_experiment(client, resolved)
            self.v = {
                "v1": register_version(client, exp, self.name, make_pipeline(1.0).fit(x, y), x),
                "v2": register_version(client, exp, self.name, make_pipeline(0.1).fit(x, y), x),
                "spike": register_version(
                    client, exp, self.name, SpikeModel(make_pipeline(1.0).fit(x, y)), x, pickled=True
                ),
                "slow": register_version(
                    client, exp, self.name, SlowModel(make_pipeline(1.0).fit(x, y)), x, pickled=True
                ),
            }
        self.smoke = x.tail(50)
        self.bodies = [body_for(x.iloc[[i]]) for i in range(300)]
        self.endpoint = EndpointSpec(name=self.name, port=free_port(), preview_port=free_port())

    def rollout(self, strategy: str) -> Any:
        """The scenario's rollout: short bakes, a guard that reacts within 0.3 s."""
        from mlops_tasks.deploy import GuardLimits, RolloutSpec

        return RolloutSpec(
            strategy=strategy,
            canary_percent=10,
            linear_step_percent=50,
            bake_seconds=self.bake,
            termination_wait_s=0,
            load_timeout_s=120,
            shadow_min_agreement=0.5,
            guard=GuardLimits(max_error_share=0.05, interval_s=0.3, min_requests=5),
        )

    def deploy(self, version: int, endpoint: Any = None, rollout: Any = None, listener: Any = None) -> Any:
        """Deploy ``version`` (all at once, no bake unless ``rollout``)."""
        from mlops_tasks.deploy import RolloutSpec, deploy_blue_green

        return deploy_blue_green(
            self.name,
            version,
            endpoint=endpoint or self.endpoint,
            target=self.kind,
            rollout=rollout
            or RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0, load_timeout_s=120),
            smoke_rows=self.smoke,
            mlflow_config=self.config,
            listener=listener,
            lock_timeout_s=30,
        )

    def champion(self) -> int | None:
        """Version the ``champion`` alias points at."""
        from mlops_tasks.registry import get_alias_version
        from mlops_tasks.tracking import get_client, resolve_and_check

        mv = get_alias_version(get_client(resolve_and_check(self.config)), self.name, "champion")
        return int(mv.version) if mv is not None else None

    def run(self, sc: Scenario) -> Result:
        """Run one scenario and judge it."""
        from mlops_tasks.deploy import describe_deployment
        from mlops_tasks.deploy.targets import get_target
        from tests.fault_support import (
            FAULTS,
            Expectation,
            FaultContext,
            Outcome,
            injected,
            judge_scenario,
            reconcile_problems,
            run_faulted_rollout,
        )

        started = time.monotonic()
        result = Result(self.kind, sc)
        info = describe_deployment(self.name)
        if info.live_color is None or info.live_version is None:
            raise RuntimeError(f"{self.name} serves nothing before {sc.label}: {info}")
        previous = self.champion() or info.live_version
        bad = {"slow-candidate": "slow", "spike-candidate": "spike"}.get(sc.fault)
        candidate = (
            self.v[bad] if bad else (self.v["v2"] if info.live_version == self.v["v1"] else self.v["v1"])
        )
        endpoint = self.endpoint.model_copy(update={"replicas": sc.replicas})
        with injected(FAULTS[sc.fault](FaultContext(self.kind, self.endpoint, info.live_color))) as fault:
            run = run_faulted_rollout(
                lambda listener: self.deploy(candidate, endpoint, self.rollout(sc.strategy), listener),
                fault=fault,
                phase=sc.phase,
                endpoint=self.endpoint,
                router=get_target(self.kind, self.endpoint).router,
                bodies=self.bodies,
                candidate=candidate,
                rate=self.rate,
            )
            expect = Expectation(
                previous=previous,
                candidate=candidate,
                candidate_bad=bad is not None,
                candidate_faulted=run.candidate_faulted,
            )
            result.wrong = judge_scenario(
                expect, Outcome(run.outcome, run.error, self.champion(), run.live_ok)
            )
            if run.trigger.error is not None:
                result.wrong.append(f"harness: injecting failed: {run.trigger.error!r}")
            # The rerun: deploy what should be live now, while the fault still holds (a hung
            # process stays frozen unless the rollout stopped it).
            expected = candidate if run.outcome == "succeeded" else previous
            try:
                self.deploy(expected)
                result.wrong += [
                    f"rerun: {p}" for p in reconcile_problems(self.name, self.champion(), expected)
                ]
            except Exception as exc:
                result.wrong.append(f"rerun of v{expected} raised {type(exc).__name__}: {exc}")
        # A slow candidate is stopped by the rollout while requests wait on it.
        result.allowance = run.allowance(sc.replicas if sc.fault == "slow-candidate" else 0)
        result.outcome = run.outcome
        result.error = type(run.error).__name__ if run.error else ""
        result.fired = run.trigger.fired if sc.phase is not None else True
        result.down_ms, result.router_down_ms = run.monitor.down.longest_ms, run.monitor.router.longest_ms
        result.nothing_ms = run.monitor.nothing.longest_ms
        result.failed, result.slot_errors = run.load.failed, len(run.load.slot_errors)
        result.requests = run.load.total
        result.seconds = time.monotonic() - started
        return result

    def recover(self) -> None:
        """After a scenario whose rerun failed: make the endpoint serve a good version again."""
        champion = self.champion()
        good = champion if champion in (self.v["v1"], self.v["v2"]) else self.v["v1"]
        try:
            self.deploy(good)
        except Exception:
            from mlops_tasks.deploy import stop_endpoint

            stop_endpoint(self.name)
            self.deploy(self.v["v1"])


def run_target(kind: str, scenarios: list[Scenario], rate: float, bake: float) -> list[Result]:
    """Every scenario on one target, one shared endpoint; prints a line per scenario."""
    from mlops_tasks.deploy import stop_endpoint
    from tests.fault_support import reconcile_problems

    root = Path(tempfile.mkdtemp(prefix=f"bench-faults-{kind}-"))
    os.environ["MLOPS_STATE_DIR"] = str(root / "state")
    bench = Bench(kind, root, rate, bake)
    results: list[Result] = []
    try:
        bench.deploy(bench.v["v1"])
        for i, sc in enumerate(scenarios, 1):
            try:
                result = bench.run(sc)
            except Exception as exc:  # the harness itself: report, recover, go on
                result = Result(
                    kind,
                    sc,
                    outcome="harness-error",
                    error=type(exc).__name__,
                    wrong=[f"harness: {type(exc).__name__}: {exc}"],
                )
            results.append(result)
            print(result.line(i), flush=True)
            # A promoted bad candidate or a failed rerun: serve a good version again, so the
            # next scenario starts from a healthy endpoint (its figures are not inherited).
            if bench.champion() not in (bench.v["v1"], bench.v["v2"]) or any(
                w.startswith(("rerun", "harness")) for w in result.wrong
            ):
                bench.recover()
                left = reconcile_problems(bench.name, bench.champion(), bench.champion() or 0)
                if left:
                    print(f"    recover: {left}", flush=True)
    finally:
        stop_endpoint(bench.name)
        shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print one line each and the totals (last line: the figures)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="local,docker", help="comma-separated: local, docker")
    parser.add_argument("--only", default="", help="regex on scenario labels (fault@phase/strategy)")
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s per connection at most")
    parser.add_argument("--bake", type=float, default=3.0, help="bake seconds after each step")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    warnings.filterwarnings("ignore")  # MLflow's pickle and schema hints, once per version
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # the slow and 500s models
    chosen = [s for s in SCENARIOS if re.search(args.only, s.label)]
    results: list[Result] = []
    for kind in [k.strip() for k in args.targets.split(",") if k.strip()]:
        scenarios = chosen if kind == "local" else [s for s in chosen if s.docker]
        if not scenarios:
            continue
        cleanup = None
        if kind == "docker":
            from bench.bluegreen import _docker_setup  # the same engine check, images and labels

            setup = _docker_setup()
            if isinstance(setup, str):
                print(f"docker: skipped ({setup})", flush=True)
                continue
            cleanup = setup
            os.environ["MLOPS_DOCKER_SLOT_ENV"] = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true"
        try:
            results += run_target(kind, scenarios, args.rate, args.bake)
        finally:
            if cleanup is not None:
                from mlops_tasks.testing.docker import TEST_LABEL, remove_labelled

                remove_labelled(cleanup[0], TEST_LABEL, cleanup[1])
    router = [r for r in results if r.scenario.fault == "kill-router"]
    others = [r for r in results if r.scenario.fault != "kill-router"]
    not_fired = [r for r in results if not r.fired]
    wrong = sum(len(r.wrong) for r in results)
    print(
        f"router_kill: scenarios={len(router)} "
        f"router_down_ms={max((r.router_down_ms for r in router), default=0):.0f} "
        f"down_ms={max((r.down_ms for r in router), default=0):.0f} "
        f"failed={sum(r.failed for r in router)}"
    )
    print(f"not_fired: {len(not_fired)} " + " ".join(f"{r.kind}:{r.scenario.label}" for r in not_fired))
    print(f"slot_errors: {sum(r.slot_errors for r in results)} (5xx answered by a bad candidate's model)")
    print(
        f"rollout_faults: scenarios={len(results)} "
        f"endpoint_down_ms={max((r.down_ms for r in others), default=0):.0f} "
        f"failed_beyond_inflight={sum(r.beyond for r in others)} wrong_outcomes={wrong}"
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
