"""The closed loop on this machine, end to end: drifted traffic -> detection -> alert -> retrain -> canary.

    python -m pipelines.loop_demo.run [--model conversion-xgboost] [--time-scale 30] [--stop-after finished]

1. the world drifts: `$MLOPS_HOME/data` is regenerated with the same parameters plus a covariate shift over
   its newest fifth, and Feast re-materialized, so the retraining run's window (each spec's, up to its
   label table's newest row) holds the drifted rows; with `--keep-data` (any model, on its own tables)
   the data stays as it is and only the traffic shifts (numeric columns, by their own spread);
2. serving: the local serving runtime (Triton + router, inference/local_runtime.py) with the router's
   payload logger pointed at the drift service; the champion deployed into it;
3. monitoring: Prometheus, Alertmanager, the drift service and the retrain trigger (local mode: an alert
   runs `python -m pipelines.local_run --models M --reason ...`, which attaches to this runtime and
   deploys the new challenger into it as a canary);
4. traffic: the champion's newest training rows for one detector window, then the same rows shifted;
5. the timeline, then everything stopped (a retraining run still going included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import paths
from monitoring.local_stack_runner import LocalMonitoringStack, StackError
from pipelines.loop_demo.probes import LoopDemoError, LoopProbes
from pipelines.loop_demo.world import Traffic, drift_demo_data, shifted_rows

STAGES = ("detection", "alert", "run-start", "canary", "finished")
ALERT = "ModelInputDriftDetected"
DRIFT_BATCH, BACKGROUND_BATCH = 25, 5  # requests between checks: before detection, after it
PAUSE_S = 1.0


@dataclass(frozen=True)
class DemoOptions:
    model: str = "conversion-xgboost"
    time_scale: float = 30.0
    drift_features: tuple[str, ...] = ("sessions_7d",)
    drift_magnitude: float = 2.0
    recent_fraction: float = 0.2
    window_size: int | None = None
    stop_after: str = "finished"
    stage_timeout_s: float = 180.0
    run_timeout_s: float = 1200.0
    regenerate_data: bool = True


@dataclass
class Timeline:
    """Events with seconds and requests since the shift started (the shift's own row is zero)."""

    events: list[tuple[str, float, int]] = field(default_factory=list)
    shift_at: float | None = None
    shift_requests: int = 0

    def mark(self, name: str, requests_total: int) -> None:
        now = time.monotonic()
        if self.shift_at is None:
            self.shift_at, self.shift_requests = now, requests_total
        self.events.append((name, now - self.shift_at, requests_total - self.shift_requests))

    def lines(self) -> list[str]:
        rows = [f"{'event':<42}{'seconds after shift':>21}{'requests after shift':>22}"]
        rows += [f"{name:<42}{seconds:>21.1f}{count:>22}" for name, seconds, count in self.events]
        return rows

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {name: {"seconds": s, "requests": n} for name, s, n in self.events}


def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> Timeline:
    """Run the loop up to `options.stop_after`; everything it started is stopped before it returns."""
    from inference.local_runtime import LocalServingRuntime
    from inference.runtime_file import attach
    from pipelines.local_run import prepare_environment

    if options.stop_after not in STAGES:
        raise ValueError(
            f"loop demo: --stop-after {options.stop_after!r}: expected one of {', '.join(STAGES)}"
        )
    if attach() is not None:
        raise LoopDemoError(
            "loop demo: a local serving runtime is already running (make serve?): stop it first"
        )
    shift = _checked_shift(options) if options.regenerate_data else options.drift_features
    prepare_environment()
    if options.regenerate_data:
        drift_start = drift_demo_data(
            options.drift_features, options.drift_magnitude, options.recent_fraction
        )
        say(f"demo data: {', '.join(shift)} shifted from {drift_start:%Y-%m-%d} on; Feast materialized")
    detectors = _fresh_monitoring_state(options.model)
    stack = LocalMonitoringStack(
        detectors, time_scale=options.time_scale, buffer_size=options.window_size, cooldown_s=86400
    )
    runtime = LocalServingRuntime(logger_url=f"{stack.url('drift')}/")
    timeline = Timeline()
    with runtime:
        champion, traffic = _serve_champion(options, runtime, detectors, say)
        with stack:
            say(_time_scale_note(options.time_scale, stack))
            probes = LoopProbes(stack, runtime.info, options.model, champion)
            try:
                _close_the_loop(options, probes, traffic, timeline, say)
            finally:
                _stop_unfinished_run(probes, say)  # before its serving runtime goes away
    say("stopped: router, Triton, Prometheus, Alertmanager, drift service, retrain trigger")
    return timeline


def _close_the_loop(
    options: DemoOptions, probes: LoopProbes, traffic: Traffic, timeline: Timeline, say: Callable[[str], None]
) -> None:
    window = options.window_size or probes.window_size()
    traffic.send(window)  # one full window of normal rows: the detector runs once and stays quiet
    time.sleep(2 * PAUSE_S)  # the router's logger posts in the background: let it deliver
    rejected = probes.rejected_events()
    if rejected or traffic.failed:
        raise LoopDemoError(
            f"loop demo: of {traffic.sent} requests {traffic.failed} failed and the drift service "
            f"rejected {rejected:g} events; see {probes.logs_hint()}/drift-service.log"
        )
    say(f"normal traffic: {traffic.sent} requests, drift detected: {probes.drift_detected()}")
    traffic.kind = "shifted"
    timeline.mark("shift start", traffic.sent)
    say("shifted traffic: on")

    def step(name: str, check: Callable[[], Any], batch: int, timeout_s: float) -> Any:
        value = _wait(name, check, lambda: traffic.send(batch), timeout_s, probes.logs_hint())
        timeline.mark(name, traffic.sent)
        say(f"{name}: {timeline.events[-1][1]:.1f} s, {timeline.events[-1][2]} requests after the shift")
        return value

    step("first detection", probes.drift_detected, DRIFT_BATCH, options.stage_timeout_s)
    if options.stop_after == "detection":
        return
    step(f"alert firing ({ALERT})", probes.alert_firing, BACKGROUND_BATCH, options.stage_timeout_s)
    if options.stop_after == "alert":
        return
    run = step("retraining run started", probes.retrain_run, BACKGROUND_BATCH, options.stage_timeout_s)
    say(f"retraining run: {run.reason!r}, log {run.log_path}")
    if options.stop_after == "run-start":
        return
    canary = step("canary deployed", probes.canary_version, BACKGROUND_BATCH, options.run_timeout_s)
    say(f"canary: v{canary} next to champion v{probes.champion}")
    if options.stop_after == "canary":
        return
    finished = step("retraining run finished", probes.finished_run, 0, options.run_timeout_s)
    say(f"retraining run {finished.status}: {probes.release_summary(finished)}")


def _stop_unfinished_run(probes: LoopProbes, say: Callable[[str], None]) -> None:
    run = probes.retrain_run()
    if run is not None and not run.finished:
        say(f"stopping the retraining run (pid {run.pid}) that is still going")
        run.stop()


def _wait(
    what: str, check: Callable[[], Any], between: Callable[[], None], timeout_s: float, hint: str
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LoopDemoError(f"loop demo: {what}: not seen within {timeout_s:g} s; logs: {hint}")
        between()
        time.sleep(PAUSE_S)


def _checked_shift(options: DemoOptions) -> tuple[str, ...]:
    from feature_repo.demo_data.config import DRIFTABLE_FEATURES

    unknown = [f for f in options.drift_features if f not in DRIFTABLE_FEATURES]
    if not options.drift_features or unknown:
        raise LoopDemoError(
            f"loop demo: --drift-features {','.join(options.drift_features)}: "
            f"expected names from {', '.join(DRIFTABLE_FEATURES)}"
        )
    return options.drift_features


def _fresh_monitoring_state(model: str) -> Path:
    """A clean slate for this demo: Prometheus' and Alertmanager's stores (a restored alert state or a
    notification log would skip steps), the detector checkpoints, and the trigger's run history (its
    cool-down would refuse the run) with the runs' logs (run ids restart at 1, and a log is appended to).
    Returns the drift service's detectors folder (this model only)."""
    home = paths.state_root()
    for name in ("prometheus-data", "alertmanager-data", "drift-checkpoints", "drift-state", "loop-demo"):
        shutil.rmtree(home / name, ignore_errors=True)
    for stale in [
        *(home / "monitoring").glob("retrain-trigger.sqlite*"),  # with its -wal and -shm files
        *(home / "logs").glob("retrain-[0-9]*.log"),
        *(home / "logs").glob("retrain-[0-9]*.exit"),
    ]:
        stale.unlink(missing_ok=True)
    detectors = home / "loop-demo" / "detectors"
    (detectors / model).mkdir(parents=True)
    return detectors


def _serve_champion(
    options: DemoOptions, runtime: Any, detectors: Path, say: Callable[[str], None]
) -> tuple[str, Traffic]:
    from core.registry import resolve_alias
    from core.spec.model import load_specs
    from inference.canary.analyze import bundle_encoder, newest_training_rows
    from inference.canary.deploy import deploy_canary
    from inference.deploy.apply import FileApplier
    from inference.router.isvc import load_isvc_file

    champion = resolve_alias(options.model, "champion")
    if champion is None:
        raise LoopDemoError(
            f"loop demo: {options.model} has no champion: run `make run` (the pipeline) first"
        )
    deploy_canary(options.model, champion.version, "champion", "local", say=say)
    staged = paths.state_root() / "detectors" / options.model / champion.version
    if not staged.is_dir():
        raise LoopDemoError(
            f"loop demo: {options.model} v{champion.version} has no drift detector ({staged})"
        )
    shutil.copytree(staged, detectors / options.model / champion.version)
    (spec,) = load_specs(names=[options.model])
    isvc = FileApplier(Path(runtime.info.isvc_dir)).path_for("InferenceService", spec.name, "mlops")
    rows = newest_training_rows(spec, champion)
    shifted = shifted_rows(rows, options.drift_features, options.drift_magnitude, options.regenerate_data)
    encoder = bundle_encoder(spec.name, champion.version)
    say(f"serving: {options.model} v{champion.version} (champion) at {runtime.info.router_http_url}")
    return champion.version, Traffic(
        runtime.info.router_http_url, load_isvc_file(isvc), encoder, rows, shifted
    )


def _time_scale_note(time_scale: float, stack: LocalMonitoringStack) -> str:
    if time_scale == 1:
        return "alert timers: the committed ones (for: 5m before ModelInputDriftDetected fires)"
    return (
        f"alert timers divided by {time_scale:g} in the local copies under {stack.config_dir} only "
        f"(for: 5m -> {300 / time_scale:.0f} s); the committed rules and Alertmanager config are unchanged"
    )


def main(argv: Sequence[str] | None = None) -> int:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.loop_demo.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=defaults.model, help="a served model with a tabular detector")
    parser.add_argument(
        "--time-scale", type=float, default=defaults.time_scale, help="divide alert timers by this"
    )
    parser.add_argument(
        "--drift-features", default=",".join(defaults.drift_features), help="features to shift"
    )
    parser.add_argument("--drift-magnitude", type=float, default=defaults.drift_magnitude, help="in std devs")
    parser.add_argument("--window-size", type=int, default=None, help="detector window (default: the spec's)")
    parser.add_argument(
        "--stop-after", choices=STAGES, default=defaults.stop_after, help="last stage to wait for"
    )
    parser.add_argument(
        "--run-timeout-s", type=float, default=defaults.run_timeout_s, help="retraining run limit"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="leave the data as it is (any model: only the traffic shifts)",
    )
    args = parser.parse_args(argv)
    options = DemoOptions(
        model=args.model,
        time_scale=args.time_scale,
        drift_features=tuple(f.strip() for f in args.drift_features.split(",") if f.strip()),
        drift_magnitude=args.drift_magnitude,
        window_size=args.window_size,
        stop_after=args.stop_after,
        run_timeout_s=args.run_timeout_s,
        regenerate_data=not args.keep_data,
    )
    try:
        timeline = run_demo(options)
    except (LoopDemoError, StackError, LookupError) as error:
        print(str(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print("\n".join(["", "closed loop timeline", *timeline.lines()]))
    saved = paths.logs_dir() / "loop-demo-timeline.json"
    saved.write_text(json.dumps(timeline.as_dict(), indent=2))
    print(f"\ntimeline as JSON: {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
