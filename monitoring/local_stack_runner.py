"""`LocalMonitoringStack`, the library behind `python -m monitoring.local_stack` (see that module's
docstring for the files it writes and `time_scale`): it writes the Prometheus and Alertmanager
configuration and the retrain token, starts Prometheus, Alertmanager, the drift service and the retrain
trigger on free loopback ports, waits until each is ready (else `StackError` naming the process and its
log) and stops them all. Split out of `monitoring.local_stack`, which re-exports these names.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import yaml

from core import paths
from core.ports import free_port, http_ok
from core.prometheus_rules import DEFAULT_SOURCE, extract
from core.settings import variable
from inference.local_prometheus import PROMETHEUS_BIN
from monitoring.local_stack_config import (
    RESEND_DELAY_S,
    SCRAPE_INTERVAL_S,
    prometheus_config,
    scaled,
    time_scaled_alertmanager,
    time_scaled_rules,
)
from monitoring.local_stack_processes import Process, signal_group, spawn
from monitoring.rules.alertmanager_config import render

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
PLATFORM_PYTHON = paths.REPO_ROOT / ".venv" / "bin" / "python"
SERVING_PYTHON = paths.REPO_ROOT / ".venv-serving" / "bin" / "python"


class StackError(RuntimeError):
    """A process of the local stack did not start or become ready; the message names it and its log."""


class LocalMonitoringStack:
    """Starts the four processes on enter (ready or `StackError`), stops them all on exit.

    `local_command` is the retrain trigger's command for local runs (its default: the local pipeline).
    """

    def __init__(
        self,
        detectors_dir: str | Path,
        home: str | Path | None = None,
        time_scale: float = 1.0,
        predictor_target: str | None = None,
        cooldown_s: float | None = None,
        local_command: Sequence[str] | None = None,
        buffer_size: int | None = None,
        max_age_s: float | None = None,
        ready_timeout_s: float = 90.0,
        rules_source: Path = DEFAULT_SOURCE,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale: {time_scale} must be > 0")
        self.detectors_dir = Path(detectors_dir).resolve()
        self.home = Path(home).resolve() if home else paths.state_root()
        self.config_dir, self.logs_dir = self.home / "monitoring", self.home / "logs"
        self.time_scale, self.predictor_target = time_scale, predictor_target
        self.cooldown_s, self.local_command = cooldown_s, local_command
        self.buffer_size, self.max_age_s = buffer_size, max_age_s
        self.ready_timeout_s, self.rules_source = ready_timeout_s, rules_source
        self.ports = {name: free_port() for name in ("prometheus", "alertmanager", "drift", "trigger")}
        self._processes: list[Process] = []

    def url(self, name: str) -> str:
        """`http://127.0.0.1:<port>` of `prometheus`, `alertmanager`, `drift` or `trigger`."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def _target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    # ---------------------------------------------------------------------------------------- files
    @property
    def token_file(self) -> Path:
        return self.config_dir / "secrets" / "retrain-token"

    def _ensure_token(self) -> None:
        if self.token_file.exists():
            return
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(secrets.token_urlsafe(32))

    def write_configs(self) -> tuple[Path, Path]:
        """Write the rules, `prometheus.yml` and `alertmanager.yml`; return the last two."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_token()
        rule_files = extract(self.rules_source, self.config_dir / "rules")
        interval = f"{SCRAPE_INTERVAL_S:g}s"
        alertmanager_text = render(f"{self.url('trigger')}/v1/alerts", self.token_file)
        if self.time_scale != 1:
            for path in rule_files:
                path.write_text(time_scaled_rules(path.read_text(), self.time_scale))
            interval = scaled(interval, self.time_scale)
            alertmanager_text = time_scaled_alertmanager(alertmanager_text, self.time_scale)
        targets = [self._target(name) for name in ("drift", "trigger", "alertmanager")]
        config = prometheus_config(*targets, rule_files, interval, self.predictor_target)
        prometheus_yml = self.config_dir / "prometheus.yml"
        prometheus_yml.write_text(yaml.safe_dump(config, sort_keys=False))
        alertmanager_yml = self.config_dir / "alertmanager.yml"
        alertmanager_yml.write_text(alertmanager_text)
        return prometheus_yml, alertmanager_yml

    # ------------------------------------------------------------------------------------ processes
    def _drift_argv(self) -> list[str]:
        argv = [str(SERVING_PYTHON), "-m", "monitoring.drift_service", "--port", str(self.ports["drift"])]
        argv += [
            "--detectors",
            str(self.detectors_dir),
            "--checkpoint-dir",
            str(self.home / "drift-checkpoints"),
            # acknowledged rows not yet scored, replayed if the process dies (as on the cluster's PVC)
            "--journal-dir",
            str(self.home / "drift-journal"),
            # logged predictions awaiting outcomes; `python -m monitoring.reports --source` reads it
            "--state-dir",
            str(self.home / "drift-state"),
        ]
        argv += ["--buffer-size", str(self.buffer_size)] if self.buffer_size is not None else []
        return argv + (["--max-age-s", str(self.max_age_s)] if self.max_age_s is not None else [])

    def _trigger_argv(self) -> list[str]:
        argv = [str(PLATFORM_PYTHON), "-m", "monitoring.retrain_trigger", "--mode", "local"]
        argv += ["--port", str(self.ports["trigger"]), "--token-file", str(self.token_file)]
        argv += ["--state-db", str(self.config_dir / "retrain-trigger.sqlite")]
        argv += ["--cooldown-s", str(self.cooldown_s)] if self.cooldown_s is not None else []
        command = self.local_command
        return argv + (["--local-command", shlex.join(command)] if command is not None else [])

    def _prometheus_argv(self, config_file: Path) -> list[str]:
        resend = scaled(f"{RESEND_DELAY_S:g}s", self.time_scale)
        return [
            PROMETHEUS_BIN,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.home / 'prometheus-data'}",
            f"--web.listen-address={self._target('prometheus')}",
            f"--rules.alert.resend-delay={resend}",
        ]

    def _alertmanager_argv(self, config_file: Path) -> list[str]:
        return [
            ALERTMANAGER_BIN,
            f"--config.file={config_file}",
            f"--storage.path={self.home / 'alertmanager-data'}",
            f"--web.listen-address={self._target('alertmanager')}",
            "--cluster.listen-address=",  # a single instance: no HA gossip port
        ]

    def _plan(self, prometheus_yml: Path, alertmanager_yml: Path) -> list[Process]:
        # Python services first: their imports take longest, so they start while the binaries come up.
        plan = (
            ("drift-service", self._drift_argv(), f"{self.url('drift')}/readyz"),
            ("retrain-trigger", self._trigger_argv(), f"{self.url('trigger')}/readyz"),
            (
                "alertmanager",
                self._alertmanager_argv(alertmanager_yml),
                f"{self.url('alertmanager')}/-/ready",
            ),
            ("prometheus", self._prometheus_argv(prometheus_yml), f"{self.url('prometheus')}/-/ready"),
        )
        return [Process(name, argv, self.logs_dir / f"{name}.log", ready) for name, argv, ready in plan]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env[variable("home")] = str(self.home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def start(self) -> None:
        """Write the configuration, start every process and wait until all are ready."""
        files = self.write_configs()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        env = self._environment()
        for process in self._plan(*files):
            self._processes.append(process)
            try:
                process.popen = spawn(process, env)
            except OSError as error:
                raise StackError(
                    f"{process.name}: cannot start {process.argv[0]}: {error.strerror}"
                ) from error
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = list(self._processes)
        while waiting:
            for process in self.exited():
                raise StackError(f"{process.name} exited during start-up: see {process.log_path}")
            waiting = [p for p in waiting if not http_ok(p.ready_url)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"{p.name} ({p.log_path})" for p in waiting)
                raise StackError(f"not ready after {self.ready_timeout_s:g} s: {names}")
            if waiting:
                time.sleep(0.5)

    def exited(self) -> list[Process]:
        return [p for p in self._processes if p.popen is not None and p.popen.poll() is not None]

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every process group (last started first), then SIGKILL what is still alive."""
        running = [p.popen for p in reversed(self._processes) if p.popen and p.popen.poll() is None]
        for popen in running:
            signal_group(popen, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for popen in running:
            try:
                popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(popen, signal.SIGKILL)
                popen.wait(5)
        self._processes.clear()

    def __enter__(self) -> LocalMonitoringStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
