"""Check the alerting side end to end with the real tools: `python -m monitoring.rules.check`.

1. extract the PrometheusRule groups (`core.prometheus_rules`) into a temporary folder,
2. `promtool check rules` on them,
3. `promtool test rules` on every file in `monitoring/rules/tests/` (copied beside the extracted rules,
   which their `rule_files` name),
4. `amtool check-config` on the committed Alertmanager configuration and on a local rendering of it,
5. `amtool config routes test`: retrain alerts reach the `retrain` receiver, the others do not.

Prints one line per step (and the tool's output for a failing one); exits 1 if any step fails, 2 if
promtool or amtool is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.paths import REPO_ROOT
from core.prometheus_rules import DEFAULT_SOURCE, ExtractError, extract
from monitoring.rules.alertmanager_config import DEFAULT_CONFIG, AlertmanagerConfigError, render

DEFAULT_TESTS = REPO_ROOT / "monitoring" / "rules" / "tests"
TOOL_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}
TOOL_TIMEOUT_S = 120
# (labels of an alert, the receiver Alertmanager must pick for it)
# (the rules keep the scraped `namespace`; the route matches only the loop's own namespace, as the
# Operator's default matcher strategy makes the cluster's AlertmanagerConfig do)
ROUTE_EXPECTATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("alertname=ModelInputDriftDetected", "action=retrain", "namespace=mlops", "model=m"), "retrain"),
    # its severity is the spec's monitoring.alert_severity: any of them still reaches the trigger
    (
        ("alertname=ModelInputDriftDetected", "action=retrain", "namespace=mlops", "severity=critical"),
        "retrain",
    ),
    (("alertname=ModelQualityBelowFloor", "action=retrain", "namespace=mlops", "model=m"), "retrain"),
    # another namespace's alert with the same labels is not the loop's to retrain
    (("alertname=ModelInputDriftDetected", "action=retrain", "namespace=team-b", "model=m"), "null"),
    (("alertname=InferenceCanaryErrorRateHigh", "namespace=mlops", "model=m", "role=canary"), "null"),
    (("alertname=DriftDetectorDown", "namespace=mlops", "severity=warning"), "null"),
)


class ToolMissingError(RuntimeError):
    """promtool or amtool is not on PATH."""


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    output: str = ""


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(
            f"{name} not found on PATH (Debian package {TOOL_PACKAGES[name]}): run `make install`"
        )
    return path


def _run(name: str, command: Sequence[str], cwd: Path | None = None) -> StepResult:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return StepResult(name, False, f"timed out after {TOOL_TIMEOUT_S} s")
    return StepResult(name, done.returncode == 0, (done.stdout + done.stderr).strip())


def check_rules(promtool: str, source: Path, tests_dir: Path, work_dir: Path) -> list[StepResult]:
    """Extract, `promtool check rules`, then `promtool test rules` (only if the rules load)."""
    try:
        rule_files = extract(source, work_dir)
    except ExtractError as error:
        return [StepResult("extract PrometheusRule groups", False, str(error))]
    checked = _run("promtool check rules", [promtool, "check", "rules", *map(str, rule_files)])
    # The extracted files vanish with the temporary folder: name the manifest they came from instead.
    checked = replace(checked, output=checked.output.replace(f"{work_dir}/", f"{source} -> "))
    if not checked.ok:
        return [checked]
    tests = sorted(tests_dir.glob("*.yaml"))
    if not tests:
        return [checked, StepResult("promtool test rules", False, f"{tests_dir}: no *.yaml test files")]
    for test in tests:
        shutil.copy2(test, work_dir / test.name)
    names = [test.name for test in tests]
    return [
        checked,
        _run(f"promtool test rules ({len(names)} files)", [promtool, "test", "rules", *names], work_dir),
    ]


def check_alertmanager(amtool: str, config: Path, work_dir: Path) -> list[StepResult]:
    """`amtool check-config` on the file and on a local rendering; the routing expectations."""
    results = [_run(f"amtool check-config {config.name}", [amtool, "check-config", str(config)])]
    try:
        local_text = render("http://127.0.0.1:9/v1/alerts", work_dir / "retrain-token", source=config)
    except AlertmanagerConfigError as error:
        return [*results, StepResult("render local Alertmanager config", False, str(error))]
    local = work_dir / "alertmanager.local.yaml"
    local.write_text(local_text)
    results.append(_run("amtool check-config (local rendering)", [amtool, "check-config", str(local)]))
    for labels, receiver in ROUTE_EXPECTATIONS:
        command = [amtool, "config", "routes", "test", f"--config.file={config}"]
        command += [f"--verify.receivers={receiver}", *labels]
        results.append(_run(f"route {labels[0]} -> {receiver}", command))
    return results


def run_checks(
    source: Path = DEFAULT_SOURCE, tests_dir: Path = DEFAULT_TESTS, alertmanager_config: Path = DEFAULT_CONFIG
) -> list[StepResult]:
    """Every step's result; raises `ToolMissingError` before running anything if a tool is missing."""
    promtool, amtool = find_tool("promtool"), find_tool("amtool")
    with tempfile.TemporaryDirectory(prefix="mlops-rules-") as tmp:
        work_dir = Path(tmp)
        rules = check_rules(promtool, source, tests_dir, work_dir / "rules")
        alertmanager = check_alertmanager(amtool, alertmanager_config, work_dir)
    return rules + alertmanager


def report(results: Sequence[StepResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"{'ok  ' if result.ok else 'FAIL'} {result.name}")
        if not result.ok and result.output:
            lines.extend(f"     {line}" for line in result.output.splitlines())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.rules.check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="PrometheusRule file or folder")
    parser.add_argument("--tests", type=Path, default=DEFAULT_TESTS, help="folder of promtool test files")
    parser.add_argument("--alertmanager-config", type=Path, default=DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    try:
        results = run_checks(args.source, args.tests, args.alertmanager_config)
    except ToolMissingError as error:
        print(f"rules check: {error}", file=sys.stderr)
        return 2
    print(report(results))
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"rules check failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
