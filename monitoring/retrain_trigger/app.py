"""The retrain trigger: Alertmanager webhook in, at most one retraining run per model out.

`TriggerService` holds the decisions (de-duplicate, cool down, one run in flight, persist before
submitting, watch runs to completion, recover after a restart); `create_app` puts it behind HTTP:

    POST /v1/alerts   Alertmanager webhook v4, `Authorization: Bearer <token>`; 200 with a summary per alert
    GET  /healthz     the process is alive
    GET  /readyz      recovery is done and the state database answers
    GET  /metrics     Prometheus text format
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from core.http_body import DEFAULT_READ_TIMEOUT_S, BodyRefused, BodyTooLarge, read_capped
from core.json_errors import install_json_errors
from monitoring.retrain_trigger.alerts import Alert, WebhookPayload, parse_webhook
from monitoring.retrain_trigger.errors import (
    PayloadError,
    PayloadTimeout,
    PayloadTooLarge,
    SubmitError,
    TriggerError,
    Unauthorized,
    status_for,
)
from monitoring.retrain_trigger.metrics import TriggerMetrics
from monitoring.retrain_trigger.state import RunRecord, StateStore
from monitoring.retrain_trigger.submitters import RunOutcome, Submitter

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN_S = 6 * 3600.0
DEFAULT_FAILURE_BACKOFF_S = 15 * 60.0  # after a failed run: long enough not to hammer a broken pipeline
DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class AlertResult:
    fingerprint: str
    startsAt: str  # Alertmanager's spelling, echoed back
    model: str
    alertname: str
    outcome: str  # triggered | deduplicated | cooldown | in_flight | ignored
    run_id: int | None = None
    reason: str | None = None  # why an alert was ignored


class TriggerService:
    def __init__(
        self,
        store: StateStore,
        submitter: Submitter,
        models: Collection[str],
        metrics: TriggerMetrics | None = None,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.time,
        resume_retry_s: float = 30.0,
        failure_backoff_s: float = DEFAULT_FAILURE_BACKOFF_S,
    ) -> None:
        self.failure_backoff_s = failure_backoff_s
        self.store = store
        self.resume_retry_s = resume_retry_s
        self.submitter = submitter
        self.models = frozenset(models)
        self.metrics = metrics or TriggerMetrics(self.models)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.ready = False

    # -------------------------------------------------------------------------------------- lifecycle
    def recover(self) -> None:
        """Create the schema, resume watching runs started before a restart, and submit `pending` runs
        (persisted, then the process died before submitting) exactly once."""
        self.store.initialize()
        for run in self.store.runs(("submitted", "running")):
            log.info("run %s (%s): resuming watch of %s", run.id, run.model, run.external_id)
            self._watch(run)
        for run in self.store.runs(("pending",)):
            self._resume_pending(run)
        self._publish_in_flight()
        self.ready = True

    # --------------------------------------------------------------------------------------- webhooks
    def handle(self, payload: WebhookPayload) -> list[AlertResult]:
        """Decide about every alert. Safe to repeat: a resent payload finds its alerts deduplicated."""
        if payload.truncated_alerts:  # Alertmanager's max_alerts dropped some; they are not resent
            log.warning(
                "group %s: %d alerts truncated by Alertmanager", payload.group_key, payload.truncated_alerts
            )
        return [
            self._handle_alert(alert, group_resolved=payload.status == "resolved") for alert in payload.alerts
        ]

    def _handle_alert(self, alert: Alert, group_resolved: bool) -> AlertResult:
        result = AlertResult(alert.fingerprint, alert.starts_at_utc, alert.model, alert.alertname, "ignored")
        if alert.status == "resolved" or group_resolved:
            self.metrics.count_webhook("ignored_resolved")
            return _replace(result, reason="resolved")
        if not alert.wants_retrain:
            self.metrics.count_webhook("ignored_not_retrain")
            return _replace(result, reason="no action=retrain label")
        admission = self.store.admit(
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at_utc,
            model=alert.model,
            alertname=alert.alertname,
            reason=alert.reason(),
            now=self.clock(),
            cooldown_s=self.cooldown_s,
            failure_backoff_s=self.failure_backoff_s,
        )
        if admission.run is not None:
            self._submit(admission.run)
        self.metrics.count_webhook(admission.outcome)
        log.info("alert %s (%s, %s): %s", alert.alertname, alert.model, alert.fingerprint, admission.outcome)
        return _replace(result, outcome=admission.outcome, run_id=admission.run.id if admission.run else None)

    # ------------------------------------------------------------------------------------------- runs
    def _resume_pending(self, run: RunRecord) -> None:
        """A `pending` run after a restart: the trigger died after persisting it, maybe after starting
        it too. A run the submitter finds started is recorded and watched; only one it does not is
        submitted, so a crash at any point starts each run once. While the submitter cannot tell (the
        KFP API is away), the run stays `pending` (its model in flight) and is asked about again."""
        try:
            external_id = self.submitter.started(run)
        except Exception as exc:
            log.error("run %s (%s): cannot tell whether it started (%s); asking again in %.0f s",
                      run.id, run.model, " ".join(str(exc).split()), self.resume_retry_s)  # fmt: skip
            timer = threading.Timer(self.resume_retry_s, self._resume_pending, args=(run,))
            timer.daemon = True
            timer.start()
            return
        if external_id is None:
            log.info("run %s (%s): submitting after a restart", run.id, run.model)
            try:
                self._submit(run)
            except SubmitError as exc:  # its alert was forgotten: Alertmanager's next resend retries
                log.error("run %s (%s): %s", run.id, run.model, exc)
            return
        log.info("run %s (%s): started before the restart as %s; watching it", run.id, run.model, external_id)
        self.store.mark_submitted(run.id, external_id, self.clock())
        self.metrics.count_run(run.model, "submitted")
        self._publish_in_flight()
        self._watch(self.store.run(run.id))

    def _submit(self, run: RunRecord) -> None:
        try:
            external_id = self.submitter.submit(run)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, SubmitError) else f"run {run.id} ({run.model}): {exc}"
            problem = " ".join(problem.split())
            self.store.abandon_submission(run.id, problem, self.clock())
            self.metrics.count_run(run.model, "failed")
            self._publish_in_flight()
            raise SubmitError(problem) from exc
        self.store.mark_submitted(run.id, external_id, self.clock())
        self.metrics.count_run(run.model, "submitted")
        self._publish_in_flight()
        self._watch(self.store.run(run.id))

    def _watch(self, run: RunRecord) -> None:
        thread = threading.Thread(
            target=self._watch_until_done, args=(run,), name=f"run-{run.id}", daemon=True
        )
        thread.start()

    def _watch_until_done(self, run: RunRecord) -> None:
        try:
            outcome = self.submitter.wait(run, on_running=lambda: self.store.mark_running(run.id))
        except Exception as exc:  # free the slot rather than block the model's retraining forever
            outcome = RunOutcome(False, f"lost track of the run: {type(exc).__name__}: {exc}")
        self.store.mark_finished(
            run.id, outcome.succeeded, self.clock(), None if outcome.succeeded else outcome.detail
        )
        if not outcome.succeeded:
            self.metrics.count_run(run.model, "failed")
        log.info(
            "run %s (%s): %s, %s",
            run.id,
            run.model,
            "succeeded" if outcome.succeeded else "failed",
            outcome.detail,
        )
        self._publish_in_flight()

    def _publish_in_flight(self) -> None:
        self.metrics.set_in_flight(self.store.in_flight_counts(), self.models)


def _replace(result: AlertResult, **changes: object) -> AlertResult:
    return AlertResult(**{**asdict(result), **changes})


# ------------------------------------------------------------------------------------------------- HTTP
def load_token(path: str | Path) -> str:
    """The shared bearer token Alertmanager sends (`http_config.authorization.credentials_file`)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"token file {path}: cannot read it: {exc.strerror}") from None
    if not token:
        raise ValueError(f"token file {path}: empty")
    return token


def create_app(
    service: TriggerService,
    token: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.recover)
        yield

    app = FastAPI(title="retrain trigger", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    expected = token.encode()

    install_json_errors(app)

    @app.exception_handler(TriggerError)
    async def trigger_error(_: Request, exc: TriggerError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc), headers=headers)

    @app.post("/v1/alerts")
    async def receive_alerts(request: Request) -> JSONResponse:
        try:
            _authorize(request.headers.get("authorization"), expected)
            try:
                body = await read_capped(request, max_body_bytes, read_timeout_s)
            except BodyRefused as exc:
                refused = PayloadTooLarge if isinstance(exc, BodyTooLarge) else PayloadTimeout
                raise refused(str(exc)) from None
            payload = parse_webhook(body, service.models)
        except Unauthorized:
            service.metrics.count_webhook("unauthorized")
            raise
        except (PayloadError, PayloadTooLarge, PayloadTimeout) as exc:
            service.metrics.count_webhook("rejected")
            log.warning("rejected webhook: %s", exc)
            raise
        results = await run_in_threadpool(service.handle, payload)
        counts = Counter(result.outcome for result in results)
        return JSONResponse({"alerts": [asdict(r) for r in results], "counts": dict(counts)})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"error": "recovering state"}, status_code=503)
        try:
            await run_in_threadpool(service.store.ping)
        except TriggerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def _authorize(header: str | None, expected: bytes) -> None:
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("Authorization: expected 'Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), expected):
        raise Unauthorized("Authorization: wrong bearer token")
