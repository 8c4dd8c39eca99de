"""The local serving runtime's Prometheus: the cluster's Prometheus, played on one machine.

It scrapes the runtime's Triton as the PodMonitor `inference-predictors` scrapes every predictor pod
(manifests/monitoring/pod-monitor-inference.yaml) and evaluates the committed PrometheusRule, so the local
canary analysis reads the same recorded series (`mlops:inference_*`) with the same PromQL as on a cluster
(inference/canary/evidence.py). The one local difference is where `model_version` comes from: a cluster
pod runs one version and the PodMonitor takes it from the pod's annotation; the local Triton serves every
version as `<model>__v<version>`, and `metric_relabel_configs` split that name into the same `model` and
`model_version` labels. Scrape and evaluation run every second (the cluster: 15 s) so a canary decision
follows its demo traffic within seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from core.ports import HOST, free_port, http_ok
from core.prometheus_rules import DEFAULT_SOURCE, extract
from inference.deploy.annotations import NAMESPACE
from inference.router.isvc import VERSION_SEPARATOR

PROMETHEUS_BIN = "/usr/bin/prometheus"
PREDICTOR_JOB = "inference-predictor"  # the PodMonitor's job label
LOCAL_POD = "local-triton"
INTERVAL = "1s"
START_TIMEOUT_S = 60.0
_MODEL_AND_VERSION = f"(.+){VERSION_SEPARATOR}(\\d+)"


class PrometheusError(RuntimeError):
    """The local Prometheus did not start or cannot be read (the message names where)."""


def triton_scrape_job(target: str) -> dict[str, Any]:
    """A scrape job for a local Triton's /metrics (`host:port`) with the labels the cluster's series carry:
    `namespace` and `pod` (the Operator's target labels), `model` and `model_version`."""
    return {
        "job_name": PREDICTOR_JOB,
        "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE, "pod": LOCAL_POD}}],
        "metric_relabel_configs": [
            {
                "source_labels": ["model"],
                "regex": _MODEL_AND_VERSION,
                "target_label": "model_version",
                "replacement": "$2",
            },
            {
                "source_labels": ["model"],
                "regex": _MODEL_AND_VERSION,
                "target_label": "model",
                "replacement": "$1",
            },
        ],
    }


class LocalPrometheus:
    """A Prometheus process over `home` (config, rules, data) evaluating the committed rules."""

    def __init__(self, home: Path, log_path: Path, rules_source: Path = DEFAULT_SOURCE) -> None:
        self.home, self.log_path, self.rules_source = Path(home), Path(log_path), rules_source
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, scrape_jobs: list[dict[str, Any]]) -> str:
        """Write the configuration, start Prometheus on a free port and wait until it is ready."""
        shutil.rmtree(self.home, ignore_errors=True)  # a fresh TSDB: no series of an earlier runtime
        self.home.mkdir(parents=True)
        rule_files = extract(self.rules_source, self.home / "rules")
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": scrape_jobs,
        }
        config_file = self.home / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    PROMETHEUS_BIN,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.home / 'data'}",
                    f"--web.listen-address={HOST}:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not http_ok(f"{self.url}/-/ready"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(
                    f"local prometheus did not start on {HOST}:{self.port} (log {self.log_path})"
                )
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
