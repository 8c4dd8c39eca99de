"""How a retrain run is started and watched: on this machine (`LocalSubmitter`) or on KFP (`KfpSubmitter`).

A submitter has two calls. `submit(run)` starts the run and returns its external id (stored with the
run); it raises `SubmitError` when nothing was started. `wait(run, on_running)` blocks until the run
ends and says how; it must also work for a run started by an earlier process (after a restart), knowing
only the stored `run.external_id`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core import paths
from core.settings import settings, variable
from monitoring.retrain_trigger.deployed import EQUALS, DeployedPipeline, run_deployed
from monitoring.retrain_trigger.errors import SubmitError
from monitoring.retrain_trigger.state import RunRecord

log = logging.getLogger(__name__)

DEFAULT_LOCAL_COMMAND = (sys.executable, "-m", "pipelines.local_run")
DEFAULT_PIPELINE_PACKAGE = paths.REPO_ROOT / "pipelines" / "compiled" / "training-pipeline.yaml"
KFP_TERMINAL_STATES = {"SUCCEEDED": True, "FAILED": False, "CANCELED": False, "SKIPPED": False}

# The shell records the exit code in a file ($0) so that a restarted trigger, which is no longer the
# run's parent and cannot wait() for it, still learns how the run ended. mv makes the write atomic.
# argv: exit-code file, pid file, command. The shell records its pid (the run's) before anything else, so a
# trigger that dies between starting the run and recording it finds the run again on restart.
_RECORD_EXIT_CODE = (
    'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; shift; '
    '"$@"; code=$?; echo "$code" > "$0.tmp" && mv "$0.tmp" "$0"; exit "$code"'
)


@dataclass(frozen=True)
class RunOutcome:
    succeeded: bool
    detail: str


class Submitter(Protocol):
    def submit(self, run: RunRecord) -> str: ...

    def started(self, run: RunRecord) -> str | None:
        """The external id of `run` if a submission already started it (the trigger died between
        starting it and recording that), else None; raises if that cannot be known."""
        ...

    def wait(self, run: RunRecord, on_running: Callable[[], None]) -> RunOutcome: ...


class LocalSubmitter:
    """Runs `<command> --models <model> --reason <reason>` as a child process in its own session (so a
    trigger restart does not kill a training run), logging to `<logs_dir>/retrain-<run id>.log`."""

    def __init__(
        self,
        command: Sequence[str] = DEFAULT_LOCAL_COMMAND,
        logs_dir: Path | None = None,
        poll_s: float = 1.0,
        claim_grace_s: float = 10.0,
    ) -> None:
        if not command or shutil.which(command[0]) is None:
            raise ValueError(f"local command: executable {command[0] if command else ''!r} not found")
        self.command = list(command)
        self.logs_dir = logs_dir if logs_dir is not None else paths.logs_dir()
        self.poll_s = poll_s
        self.claim_grace_s = claim_grace_s
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def command_for(self, run: RunRecord) -> list[str]:
        return [*self.command, "--models", run.model, "--reason", run.reason]

    def log_path(self, run: RunRecord) -> Path:
        return self.logs_dir / f"retrain-{run.id}.log"

    def exit_code_path(self, run: RunRecord) -> Path:
        return self.logs_dir / f"retrain-{run.id}.exit"

    def pid_path(self, run: RunRecord) -> Path:
        return self.logs_dir / f"retrain-{run.id}.pid"

    def claim_path(self, run: RunRecord) -> Path:
        return self.logs_dir / f"retrain-{run.id}.claim"

    def started(self, run: RunRecord) -> str | None:
        """The run's process records its pid before it runs anything: a pid file means it was started.
        A claim without a pid file means a submission was under way when the trigger died: its process
        may still be starting, so the pid file is waited for (`claim_grace_s`) before saying no."""
        deadline = time.monotonic() + (self.claim_grace_s if self.claim_path(run).exists() else 0.0)
        while True:
            try:
                text = self.pid_path(run).read_text().strip()
            except FileNotFoundError:
                text = ""
            if text.isdigit():
                return f"pid:{text}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(self.poll_s, 0.05))

    def submit(self, run: RunRecord) -> str:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.exit_code_path(run).unlink(missing_ok=True)
        self.pid_path(run).unlink(missing_ok=True)
        self.claim_path(run).touch()  # before the process exists: a restart knows to look for its pid
        argv = [
            "/bin/sh", "-c", _RECORD_EXIT_CODE, str(self.exit_code_path(run)), str(self.pid_path(run)),
            *self.command_for(run),
        ]  # fmt: skip
        try:
            with self.log_path(run).open("ab") as log_file:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=paths.REPO_ROOT,
                    env=_child_environment(),
                    start_new_session=True,
                )
        except OSError as exc:
            raise SubmitError(f"run {run.id}: cannot start {' '.join(self.command)}: {exc}") from exc
        with self._lock:
            self._children[child.pid] = child
        log.info("run %s (%s): started pid %s, log %s", run.id, run.model, child.pid, self.log_path(run))
        return f"pid:{child.pid}"

    def wait(self, run: RunRecord, on_running: Callable[[], None]) -> RunOutcome:
        pid = _pid_of(run)
        if pid is None:
            return RunOutcome(False, f"no process id recorded for run {run.id} ({run.external_id!r})")
        on_running()
        with self._lock:
            child = self._children.pop(pid, None)
        if child is not None:
            child.wait()
        else:  # started before a restart: not our child, so poll
            while not self.exit_code_path(run).exists() and _process_alive(pid):
                time.sleep(self.poll_s)
        code = _read_exit_code(self.exit_code_path(run))
        if code is None and child is not None:
            code = child.returncode  # negative: killed by a signal before the shell could record it
        if code is None:
            return RunOutcome(
                False, f"pid {pid} ended without recording an exit code; see {self.log_path(run)}"
            )
        return RunOutcome(code == 0, f"exit code {code}; log {self.log_path(run)}")


class KfpSubmitter:
    """Creates a run of the deployed training pipeline version on a KFP API server (monitoring/
    retrain_trigger/deployed.py; with `upload_package`, of the package file instead) and polls it until it
    ends."""

    def __init__(
        self,
        host: str,
        package: Path = DEFAULT_PIPELINE_PACKAGE,
        poll_s: float = 30.0,
        experiment: str = "retraining",
        client_factory: Callable[[str], Any] | None = None,
        upload_package: bool = False,
    ) -> None:
        if not Path(package).is_file():
            raise ValueError(f"pipeline package: {package} not found (run `make compile`)")
        self.host = host
        self.package = Path(package)
        self.deployed = DeployedPipeline.of_package(self.package)
        self.upload_package = upload_package
        self.poll_s = poll_s
        self.experiment = experiment
        self._client_factory = client_factory or kfp_client
        self._client: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def run_name(run: RunRecord) -> str:
        return f"retrain-{run.model}-{run.id}"

    @staticmethod
    def run_arguments(run: RunRecord) -> dict[str, Any]:
        return {"models": [run.model], "reason": run.reason}

    def submit(self, run: RunRecord) -> str:
        name, arguments = self.run_name(run), self.run_arguments(run)
        try:
            if not self.upload_package:
                return run_deployed(self.client(), self.deployed, name, arguments, self.experiment)
            result = self.client().create_run_from_pipeline_package(
                str(self.package), arguments=arguments, run_name=name, experiment_name=self.experiment
            )
        except Exception as exc:  # any failure means no run: the caller answers 5xx so the alert is resent
            raise SubmitError(f"KFP at {self.host}: cannot create run {name}: {one_line(exc)}") from exc
        return str(result.run_id)

    def started(self, run: RunRecord) -> str | None:
        """A KFP run of this record exists when the retrain experiment holds one of its (unique) name."""
        client = self.client()
        experiment_id = client.create_experiment(self.experiment).experiment_id  # get or create
        predicate = {"operation": EQUALS, "key": "display_name", "stringValue": self.run_name(run)}
        listed = client.list_runs(experiment_id=experiment_id, filter=json.dumps({"predicates": [predicate]}))
        runs = listed.runs or []
        return str(runs[0].run_id) if runs else None

    def wait(self, run: RunRecord, on_running: Callable[[], None]) -> RunOutcome:
        reported_running = False
        while True:
            state = self._poll_state(str(run.external_id))
            if state in KFP_TERMINAL_STATES:
                return RunOutcome(KFP_TERMINAL_STATES[state], f"KFP run {run.external_id} ended {state}")
            if state == "RUNNING" and not reported_running:
                on_running()
                reported_running = True
            time.sleep(self.poll_s)

    def client(self) -> Any:
        # Created on first use: kfp.Client() calls the API server, which need not be up when we start.
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self.host)
            return self._client

    def _poll_state(self, run_id: str) -> str | None:
        try:
            return str(self.client().get_run(run_id).state)
        except Exception as exc:  # the API server may be briefly away; the run goes on without us
            log.warning("KFP at %s: cannot read run %s: %s", self.host, run_id, one_line(exc))
            return None


def kfp_client(host: str) -> Any:
    import kfp
    from kfp.client import ServiceAccountTokenVolumeCredentials

    # In a multi-user cluster the pod authenticates with a projected service-account token, if mounted.
    token_path = settings().kfp_token_path
    credentials = ServiceAccountTokenVolumeCredentials(token_path) if Path(token_path).is_file() else None
    return kfp.Client(host=host, credentials=credentials)


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), env.get("PYTHONPATH")]))
    env[variable("home")] = str(paths.state_root())
    return env


def _pid_of(run: RunRecord) -> int | None:
    text = (run.external_id or "").removeprefix("pid:")
    return int(text) if text.isdigit() and int(text) > 0 else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_exit_code(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
