"""Pure bookkeeping of the monitoring benchmark: alarm streams -> false alarms and detection delays, and the
markdown report. No detector or numpy here, so the tests exercise it without alibi-detect.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

PER_REQUESTS = 10_000  # false alarms are reported per this many unshifted requests (issue #5)
THROUGHPUT_TARGET = 5_000.0  # events/s per core
SERVICE_TARGET = 10_000.0  # events/s per core of the drift service end to end (issue #15)
DELAY_TARGET = 500  # requests after the shift starts
FALSE_ALARM_TARGET = 1.0  # per PER_REQUESTS
LOAD_TARGET_S = 2.0  # the drift service loads a detector (thresholds were simulated at fit time)


@dataclass(frozen=True)
class Throughput:
    events: int
    wall_s: float
    cpu_s: float  # CPU time of the process doing the work: events / cpu_s is the per-core rate

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_core_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s > 0 else 0.0


@dataclass
class DetectorReport:
    model: str
    kind: str
    setting: str  # the spec's false-alarm setting, e.g. "p_value 0.01 bonferroni, window 500"
    alone: Throughput | None = None
    service: Throughput | None = None
    clean_requests: int = 0
    false_alarms: int = 0
    delays: list[int | None] = field(default_factory=list)  # per seed; None: not detected within the cap
    fit_s: float | None = None  # wall seconds to fit the detector (the pipeline's fit_detector step)
    load_s: float | None = None  # wall seconds to load it (what the drift service pays at start)
    acknowledged: int = 0  # service run: rows of events answered 2xx (the service's own count)
    dropped: int = 0  # service run: acknowledged rows counted dropped (e.g. the buffer full: scoring lags)
    unscored: int | None = None  # service run: acknowledged rows neither scored nor counted dropped
    store: Throughput | None = None  # the service reading batched payload logs from S3 (request rows)
    store_expected: int = 0  # request rows uploaded to the store
    store_unscored: int | None = None  # uploaded rows not scored nor counted dropped (unread included)
    notes: list[str] = field(default_factory=list)

    @property
    def false_alarms_per_10k(self) -> float:
        return self.false_alarms / self.clean_requests * PER_REQUESTS if self.clean_requests else float("nan")

    def to_json(self) -> dict:
        body = asdict(self)
        body["false_alarms_per_10k"] = self.false_alarms_per_10k
        body["delay_median"], body["delay_max"] = delay_summary(self.delays)
        return body


def batch_alarm_positions(verdicts: Sequence[bool], window: int) -> list[int]:
    """Requests seen when each alarming window completed (window i covers requests i*w+1 .. (i+1)*w)."""
    return [(index + 1) * window for index, drift in enumerate(verdicts) if drift]


def detection_delay(alarm_positions: Sequence[int], shift_start: int) -> int | None:
    """Requests from the first shifted one (number `shift_start + 1`) to the first alarm at or after it."""
    after = [position for position in alarm_positions if position > shift_start]
    return min(after) - shift_start if after else None


def delay_summary(delays: Sequence[int | None]) -> tuple[float | None, int | None]:
    """Median and max over seeds; a missed detection makes both None (it is worse than any number)."""
    if not delays or any(d is None for d in delays):
        return None, None
    found = [d for d in delays if d is not None]
    return float(statistics.median(found)), max(found)


def _rate(value: Throughput | None) -> str:
    if value is None:
        return "-"
    return f"{value.per_core_s:,.0f} ({value.per_s:,.0f} wall)"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(reports: Sequence[DetectorReport]) -> str:
    header = (
        "| model | detector | false-alarm setting | events/s per core, alone | events/s per core, "
        "service over HTTP | rows/s per core, service from payload store | clean requests | "
        "false alarms per 10k | delay median | delay max | fit s | load s |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in reports:
        median, worst = delay_summary(r.delays)
        cells = [
            r.model,
            r.kind,
            r.setting,
            _rate(r.alone),
            _rate(r.service),
            _rate(r.store),
            f"{r.clean_requests:,}",
            f"{r.false_alarms_per_10k:.2f} ({r.false_alarms})",
            "missed" if median is None else f"{median:g}",
            "missed" if worst is None else str(worst),
            _seconds(r.fit_s),
            _seconds(r.load_s),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_lines(reports: Sequence[DetectorReport]) -> list[str]:
    """Issue #5's targets and #15's for the service, per detector, with the numbers behind each."""
    lines = []
    for r in reports:
        rate = r.alone.per_core_s if r.alone else 0.0
        _, worst = delay_summary(r.delays)
        checks = [
            (
                f"alone >= {THROUGHPUT_TARGET:,.0f} events/s per core",
                rate >= THROUGHPUT_TARGET,
                f"{rate:,.0f}",
            ),
            (
                f"detects within {DELAY_TARGET} requests",
                worst is not None and worst <= DELAY_TARGET,
                f"max {worst}",
            ),
            (
                f"<= {FALSE_ALARM_TARGET:g} false alarm per {PER_REQUESTS:,}",
                r.false_alarms_per_10k <= FALSE_ALARM_TARGET,
                f"{r.false_alarms_per_10k:.2f}",
            ),
            (
                f"loads in under {LOAD_TARGET_S:g} s",
                r.load_s is not None and r.load_s < LOAD_TARGET_S,
                _seconds(r.load_s) + " s",
            ),
        ]
        if r.service is not None:
            limit = f"limit: the detector alone, {rate:,.0f}"
            checks.append(
                (
                    f"service end to end >= {SERVICE_TARGET:,.0f} events/s per core",
                    r.service.per_core_s >= SERVICE_TARGET,
                    f"{r.service.per_core_s:,.0f}; {limit}",
                )
            )
            checks.append(
                (
                    "every acknowledged event scored",
                    r.unscored == 0 and r.dropped == 0,
                    f"{r.acknowledged:,} acknowledged, {r.dropped:,} counted dropped, {r.unscored} unscored",
                )
            )
        if r.store is not None:
            checks.append(
                (
                    "every row logged to the payload store scored",
                    r.store_unscored == 0,
                    f"{r.store_expected:,} uploaded, {r.store_unscored} unscored or unread",
                )
            )
        for name, met, evidence in checks:
            lines.append(f"- {r.model} ({r.kind}): {name}: **{'met' if met else 'NOT met'}** ({evidence})")
    return lines
