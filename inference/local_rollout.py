"""The local canary rollout by hand: the training pipeline's release steps, for what the registry holds.

    python -m inference.local_rollout [--models a,b] [--requests N] [--bad-canary error|slow]

The pipeline (pipelines.local_run) already deploys, analyses and promotes or rolls back every version it
registers; this command does the same for the registry's current aliases, e.g. after a pipeline run in
cluster mode or to demo a bad canary. Per model with a `champion`: with a `challenger`, the same step
functions the pipeline runs (components/deploy_canary, analyze_canary, promote_or_rollback) canary it,
decide it from demo traffic (tritonclient over HTTP and gRPC through the router) and finish it; without
one, the champion is (re)deployed alone and gets a little demo traffic. It uses the live local serving
runtime (inference/local_runtime.py) when there is one, else starts one for its duration. The decision
is recorded on the challenger version: tags `canary_decision`, `canary_reasons`, `canary_summary`;
artifact `canary/canary_evidence.json` in its run. An *inconclusive* canary is rolled back.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import SpecError
from core.registry import CHALLENGER, CHAMPION, ModelVersionRef, configure_tracking, resolve_alias
from core.spec.model import ModelSpec, load_specs
from inference.canary import release
from inference.canary.analysis import CanaryDecision
from inference.canary.analyze import (
    MIN_REQUESTS,
    EncoderFor,
    RowsFor,
    analyze_locally,
    bundle_encoder,
    newest_training_rows,
    traffic_summary,
)
from inference.canary.bad_canary import MODES
from inference.canary.deploy import deploy_canary
from inference.canary.finish import finish_rollout
from inference.canary.traffic import Endpoints, Traffic, send_traffic
from inference.local_runtime import LocalServingRuntime
from inference.router.isvc import Route
from inference.runtime_file import RuntimeInfo, attach


@dataclass(frozen=True)
class Outcome:
    model: str
    champion: ModelVersionRef
    challenger: ModelVersionRef | None
    traffic: Traffic
    decision: CanaryDecision | None
    """None when there was no challenger to decide on."""

    def line(self) -> str:
        sent = f"{self.traffic.sent} requests, {self.traffic.failed} failed"
        if self.decision is None or self.challenger is None:
            return f"{self.model}: serving v{self.champion.version} alone ({sent})"
        why = "; ".join(self.decision.reasons) or "all criteria met"
        numbers = release.evidence_line(self.decision, {"traffic": traffic_summary(self.traffic)})
        return (
            f"{self.model}: {self.decision.verdict} v{self.challenger.version} "
            f"(champion v{self.champion.version}): {why} [{numbers}]"
        )


def run_local_rollout(
    models: Sequence[str] | None = None,
    requests: int | None = None,
    bad_canary: str | None = None,
    spec_dir: Path | None = None,
    rows_for: RowsFor | None = None,
    encoder_for: EncoderFor | None = None,
    logger_url: str | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """The rollout of every listed model that has a champion; `rows_for`/`encoder_for` replace the
    registry's training set and bundle (tests use them with models that have no bundle)."""
    configure_tracking()
    specs = load_specs(spec_dir, names=models)
    outcomes = []
    with live_runtime(logger_url) as info:
        for spec in specs:
            champion = resolve_alias(spec.name, CHAMPION)
            if champion is None:
                say(f"{spec.name}: no champion in the registry: skipped")
                continue
            steps = _Steps(spec, info, spec_dir, say)
            outcome = steps.roll_out(champion, requests, bad_canary, rows_for, encoder_for, seed)
            say(outcome.line())
            outcomes.append(outcome)
    if not outcomes:
        raise LookupError("local rollout: no model has a 'champion' version; run the training pipeline first")
    return outcomes


@contextmanager
def live_runtime(logger_url: str | None = None) -> Iterator[RuntimeInfo]:
    """The live local serving runtime, else one started until the block exits."""
    info = attach()
    if info is not None:
        yield info
        return
    with LocalServingRuntime(logger_url=logger_url) as runtime:
        assert runtime.info is not None
        yield runtime.info


@dataclass
class _Steps:
    """One model's release, with the pipeline's step functions."""

    spec: ModelSpec
    info: RuntimeInfo
    spec_dir: Path | None
    say: Callable[[str], None]

    def roll_out(
        self,
        champion: ModelVersionRef,
        requests: int | None,
        bad_canary: str | None,
        rows_for: RowsFor | None,
        encoder_for: EncoderFor | None,
        seed: int,
    ) -> Outcome:
        name = self.spec.name
        challenger = resolve_alias(name, CHALLENGER)
        if challenger is None or challenger.version == champion.version:
            deploy_canary(name, champion.version, CHAMPION, "local", self.say, self.spec_dir)
            rows = (rows_for or newest_training_rows)(self.spec, champion)
            encoder = (encoder_for or bundle_encoder)(name, champion.version)
            route = Route(name, champion.version)
            traffic = send_traffic(self._endpoints(), route, encoder, rows, MIN_REQUESTS, seed)
            return Outcome(name, champion, None, traffic, None)
        deploy_canary(name, challenger.version, CHALLENGER, "local", self.say, self.spec_dir, bad_canary)
        decision, traffic = analyze_locally(
            self.spec, self.info, champion, challenger, requests, rows_for, encoder_for, seed
        )
        release.record_decision(name, challenger.version, decision, {"traffic": traffic_summary(traffic)})
        finish_rollout(name, challenger.version, decision.verdict, "local", self.say, self.spec_dir)
        return Outcome(name, champion, challenger, traffic, decision)

    def _endpoints(self) -> Endpoints:
        grpc = self.info.router_grpc_address
        return Endpoints(self.info.router_http_url, grpc or self.info.triton_grpc_address, grpc is not None)


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inference.local_rollout", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", help="comma-separated spec names (default: every spec)")
    parser.add_argument("--requests", type=int, help="requests per model (default: enough for min_requests)")
    parser.add_argument("--bad-canary", choices=MODES, help="make the canary fail or slow on purpose")
    parser.add_argument("--logger-url", help="where the router posts CloudEvents (the drift detector)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    started = time.monotonic()
    try:
        run_local_rollout(models, args.requests, args.bad_canary, logger_url=args.logger_url, seed=args.seed)
    except (LookupError, ValueError, SpecError, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"local rollout done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
