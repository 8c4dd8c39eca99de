"""The process settings: every variable read through one typed model, bad values named in one line,
the documentation table equal to the model, and no other configuration read of the environment."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.paths import REPO_ROOT, state_root
from core.settings import Settings, SettingsError, settings, variable

DOC = REPO_ROOT / "docs" / "configuration.md"
CODE_FOLDERS = ("core", "components", "feature_repo", "inference", "monitoring", "pipelines", "manifests")
# Environment reads that are not this platform's configuration, each with why it stays.
OTHER_READS = {
    "core/registry.py": "MLflow's own progress-bar switch, saved and restored around our calls",
    "pipelines/local_run.py": "PYTHONPATH, extended for the component subprocesses",
    "core/settings.py": "the settings model itself",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This process's environment without any of the platform's variables (earlier tests may set some)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)
    return monkeypatch


def test_defaults_need_no_environment(environ: pytest.MonkeyPatch) -> None:
    values = settings()
    assert values.home is None and values.spec_dir is None and values.mlflow_tracking_uri is None
    assert values.train_threads == 1 and values.train_device == "auto"
    assert values.prometheus_url.startswith("http://")


def test_each_field_is_read_from_its_variable(environ: pytest.MonkeyPatch) -> None:
    for name, value in {
        "MLOPS_HOME": "/srv/state",
        "MLOPS_TRAIN_THREADS": "4",
        "MLOPS_TRAIN_DEVICE": "CUDA:1",
        "FEATURE_DATA_URI": "s3://bucket/features",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "UNRELATED": "ignored",
    }.items():
        environ.setenv(name, value)
    values = settings()
    assert values.home == Path("/srv/state") and values.train_threads == 4
    assert values.train_device == "cuda:1"  # normalised
    assert values.feature_data_uri == "s3://bucket/features"
    assert values.mlflow_tracking_uri == "http://mlflow:5000"


def test_the_environment_is_read_when_asked(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("MLOPS_HOME", str(tmp_path))
    assert state_root() == tmp_path.resolve()
    environ.setenv("MLOPS_HOME", "")  # empty counts as unset
    assert state_root() == (REPO_ROOT / ".local").resolve()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("MLOPS_TRAIN_THREADS", "0", "greater than or equal to 1"),
        ("MLOPS_TRAIN_THREADS", "many", "valid integer"),
        ("MLOPS_TRAIN_DEVICE", "tpu", "must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    environ: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    environ.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        settings()
    message = str(caught.value)
    assert message.startswith(f"environment variable {name}: ") and fragment in message
    assert repr(value) in message and "\n" not in message


def test_variable_names_each_field() -> None:
    assert variable("home") == "MLOPS_HOME"
    assert {variable(name) for name in Settings.model_fields} == _documented_variables()


def test_documentation_lists_every_variable_with_its_default() -> None:
    rows = _documented_rows()
    for name, field in Settings.model_fields.items():
        default = "(unset)" if field.default is None else f"`{field.default}`"
        assert rows[variable(name)] == default, f"docs/configuration.md: {variable(name)} default"


def test_no_other_module_reads_configuration_from_the_environment() -> None:
    readers = []
    for folder in CODE_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if "node_modules" in relative or relative in OTHER_READS:
                continue
            readers += [f"{relative}:{line}" for line in _environment_reads(path)]
    assert not readers, f"read through core.settings instead: {readers}"


def _environment_reads(path: Path) -> list[int]:
    """Lines that read a value out of os.environ (writes for child processes and whole copies are fine)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func.value)
            if (target == "os.environ" and node.func.attr == "get") or ast.unparse(node.func) == "os.getenv":
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.ctx, ast.Load)
        ):
            lines.append(node.lineno)
    return lines


def _documented_rows() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", DOC.read_text(), flags=re.MULTILINE)
    return dict(rows)


def _documented_variables() -> set[str]:
    return set(_documented_rows())
