"""Model specs: the demo specs load, and every broken spec fails with a one-line, located message.

The demo specs (`pipelines/models/`) are tested as the demo's own; everything else starts from the fixture
specs (tests/helpers/specs.py), so a demo spec can change without touching these tests."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.errors import SpecError
from core.spec.base import METRIC_DIRECTION, METRIC_NAMES, higher_is_better
from core.spec.model import DEFAULT_SPEC_DIR, ModelSpec, load_spec, load_specs, parse_spec
from tests.helpers.specs import (
    FIXTURE_MODELS,
    FIXTURE_SPEC_DIR,
    fixture_spec,
    fixture_spec_data,
    fixture_spec_path,
)

DEMO = {
    "conversion-mlp": ("pytorch", "onnxruntime"),
    "conversion-sklearn": ("sklearn", "onnxruntime"),
    "conversion-xgboost": ("xgboost", "fil"),
    "intent-transformer": ("transformers", "onnxruntime"),
}


def _valid() -> dict[str, Any]:
    """A valid spec as plain data (the xgboost fixture spec), for tests to mutate."""
    return fixture_spec_data("conversion-xgboost")


def _write(directory: Path, data: dict[str, Any], stem: str | None = None) -> Path:
    path = directory / f"{stem or data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------ demo specs
@pytest.mark.parametrize("name", sorted(DEMO))
def test_demo_spec_loads(name: str) -> None:
    spec = load_spec(DEFAULT_SPEC_DIR / f"{name}.yaml")
    assert spec.name == name
    assert (spec.framework, spec.serving.triton_backend) == DEMO[name]


def test_demo_specs_details() -> None:
    specs = {s.name: s for s in load_specs(DEFAULT_SPEC_DIR)}
    xgb = specs["conversion-xgboost"]
    assert xgb.inputs.feature_service == "conversion_xgboost_v1"
    assert xgb.inputs.entity_keys == ("session_id", "customer_id")
    assert xgb.training.search is not None and xgb.training.search.direction == "maximize"
    assert set(xgb.training.search.space) == {"max_depth", "learning_rate", "min_child_weight"}
    assert xgb.monitoring.correction == "bonferroni" and xgb.monitoring.p_value == 0.01
    assert xgb.serving.gpu is True and xgb.canary.traffic_percent == 20
    assert specs["conversion-sklearn"].monitoring.correction == "bonferroni"  # the default for batch
    mlp = specs["conversion-mlp"]
    assert mlp.monitoring.is_online and mlp.monitoring.expected_run_time == 20000
    assert mlp.monitoring.correction is None
    assert mlp.training.hyperparameters["learning_rate"] == pytest.approx(1e-3)
    intent = specs["intent-transformer"]
    assert intent.inputs.feature_service is None and intent.inputs.declared_columns == ("text",)
    assert intent.label.n_classes == 6 and intent.label.classes[0] == "pricing"
    assert intent.monitoring.detector == "mmd_online"


def test_load_specs_sorted_and_filtered(fixture_specs: Path) -> None:
    assert [s.name for s in load_specs()] == sorted(FIXTURE_MODELS)  # spec_directory(): the fixtures here
    picked = load_specs(FIXTURE_SPEC_DIR, names=["intent-transformer", "conversion-mlp", "conversion-mlp"])
    assert [s.name for s in picked] == ["conversion-mlp", "intent-transformer"]
    assert [s.name for s in load_specs(names="conversion-xgboost")] == ["conversion-xgboost"]


def test_load_specs_unknown_name_lists_available(fixture_specs: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_specs(names=["conversion-xgboost", "churn-lgbm"])
    message = str(info.value)
    assert "'churn-lgbm'" in message and "\n" not in message
    assert "available: conversion-mlp, conversion-sklearn, conversion-xgboost, intent-transformer" in message


def test_load_specs_reads_only_requested_files(tmp_path: Path) -> None:
    _write(tmp_path, _valid())
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert [s.name for s in load_specs(tmp_path, names=["conversion-xgboost"])] == ["conversion-xgboost"]
    with pytest.raises(SpecError, match=r"broken\.yaml: invalid YAML"):
        load_specs(tmp_path)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [({}, "no model specs"), ({"model.yml": "name: model\n"}, "use the .yaml suffix")],
    ids=["empty-directory", "yml-suffix"],
)
def test_load_specs_directory_problems(tmp_path: Path, files: dict[str, str], fragment: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SpecError, match=fragment):
        load_specs(tmp_path)


# ------------------------------------------------------------------------------------- invalid specs
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation: set the dotted `path` to `value` (creating mappings on the way)."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            data = data.setdefault(key, {})
        data[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            data = data[key]
        del data[leaf]

    return mutate


def _all(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


TEXT_INPUTS = {"request_fields": [{"name": "text", "dtype": "string"}]}

# (id, mutation of the valid spec, dotted field expected in the message, fragment expected in the message)
INVALID = [
    (
        "unknown-field",
        _set("serving.replicas", 2),
        "serving.replicas",
        "unknown field (allowed: triton_backend",
    ),
    ("unknown-top-level-field", _set("version", 1), "version", "unknown field"),
    ("missing-section", _drop("canary"), "canary", "required field is missing"),
    ("name-pattern", _set("name", "Conversion_XGB"), "name", "must be a DNS-1035 label"),
    ("name-too-long", _set("name", "m" * 43), "name", "at most 42 characters"),
    ("empty-description", _set("description", ""), "description", "at least 1 character"),
    ("both-inputs", _set("inputs.request_fields", TEXT_INPUTS["request_fields"]), "inputs", "both are set"),
    ("neither-input", _drop("inputs.feature_service"), "inputs", "neither is set"),
    (
        "unversioned-feature-service",
        _set("inputs.feature_service", "conversion"),
        "inputs.feature_service",
        "_v<N>",
    ),
    (
        "entity-keys-without-feature-service",
        _set("inputs", {**TEXT_INPUTS, "entity_keys": ["session_id"]}),
        "inputs.entity_keys",
        "only models with a feature_service",
    ),
    (
        "request-field-dtype",
        _set("inputs", {"request_fields": [{"name": "text", "dtype": "float32"}]}),
        "inputs.request_fields.0.dtype",
        "Input should be 'string', 'int64' or 'float64' (got 'float32')",
    ),
    (
        "duplicate-entity-keys",
        _set("inputs.entity_keys", ["a", "a"]),
        "inputs.entity_keys",
        "duplicate entries: 'a'",
    ),
    ("label-is-an-input", _set("label.column", "session_id"), "label.column", "also an input column"),
    (
        "multiclass-without-classes",
        _set("label.task", "multiclass"),
        "label.classes",
        "required for a multiclass",
    ),
    (
        "multiclass-one-class",
        _all(_set("label.task", "multiclass"), _set("label.classes", ["a"])),
        "label.classes",
        "at least 2 classes",
    ),
    ("binary-with-classes", _set("label.classes", ["no", "yes"]), "label.classes", "only a multiclass task"),
    (
        "duplicate-classes",
        _all(_set("label.task", "multiclass"), _set("label.classes", ["a", "b", "a"])),
        "label.classes",
        "duplicate entries",
    ),
    ("floor-unknown-metric", _set("evaluation.floors.auc", 0.7), "evaluation.floors.auc", "invalid key"),
    (
        "floor-as-percent",
        _set("evaluation.floors.roc_auc", 70),
        "evaluation.floors.roc_auc",
        "lies in [0, 1]",
    ),
    (
        "negative-tolerance",
        _set("evaluation.champion_tolerance.roc_auc", -0.01),
        "evaluation.champion_tolerance.roc_auc",
        "greater than or equal to 0 (got -0.01)",
    ),
    (
        "primary-metric-typo",
        _set("evaluation.primary_metric", "auc"),
        "evaluation.primary_metric",
        "(got 'auc')",
    ),
    (
        "split-fraction-too-big",
        _set("training.split.test_fraction", 0.5),
        "training.split.test_fraction",
        "less than 0.5",
    ),
    (
        "split-sum-too-big",
        _all(_set("training.split.test_fraction", 0.45), _set("training.split.validation_fraction", 0.4)),
        "training.split",
        "< 0.8",
    ),
    (
        "window-end-before-start",
        _set("training.window", {"start": dt.date(2024, 6, 1), "end": dt.date(2024, 1, 1)}),
        "training.window.end",
        "must be after start",
    ),
    (
        "window-start-without-end",
        _set("training.window", {"start": dt.date(2024, 1, 1)}),
        "training.window.end",
        "required together with start",
    ),
    ("window-both-forms", _set("training.window.start", dt.date(2024, 1, 1)), "training.window", "not both"),
    (
        "window-anchor-on-fixed",
        _set(
            "training.window",
            {"start": dt.date(2024, 1, 1), "end": dt.date(2024, 6, 1), "anchor": "newest_row"},
        ),
        "training.window.anchor",
        "rolling {lookback_days} window only",
    ),
    (
        "window-anchor-unknown",
        _set("training.window.anchor", "yesterday"),
        "training.window.anchor",
        "newest_row",
    ),
    (
        "window-lookback-zero",
        _set("training.window.lookback_days", 0),
        "training.window.lookback_days",
        "greater than 0",
    ),
    (
        "search-low-ge-high",
        _set("training.search.space.max_depth.low", 10),
        "training.search.space.max_depth.high",
        "must be greater than low",
    ),
    (
        "search-log-low-not-positive",
        _set("training.search.space.learning_rate.low", 0),
        "training.search.space.learning_rate.low",
        "must be > 0 for a log-scale",
    ),
    (
        "search-int-with-float-bound",
        _set("training.search.space.max_depth.high", 9.5),
        "training.search.space.max_depth.high",
        "must be an integer",
    ),
    (
        "search-categorical-with-bounds",
        _set("training.search.space.tree_method", {"type": "categorical", "low": 1}),
        "training.search.space.tree_method.low",
        "takes choices, not low/high",
    ),
    (
        "search-categorical-without-choices",
        _set("training.search.space.tree_method", {"type": "categorical"}),
        "training.search.space.tree_method.choices",
        "needs a non-empty list",
    ),
    (
        "search-baseline-outside-space",
        _set("training.hyperparameters.max_depth", 20),
        "training.hyperparameters.max_depth",
        "outside search.space.max_depth",
    ),
    (
        "hyperparameter-not-scalar",
        _set("training.hyperparameters.hidden", [64, 32]),
        "training.hyperparameters.hidden",
        "must be a single bool, number or string",
    ),
    (
        "max-epochs-for-xgboost",
        _set("training.max_epochs", 10),
        "training.max_epochs",
        "only pytorch, transformers models",
    ),
    (
        "wrong-backend-for-framework",
        _set("serving.triton_backend", "onnxruntime"),
        "serving.triton_backend",
        "cannot serve xgboost models; use one of fil, python",
    ),
    (
        "unknown-backend",
        _set("serving.triton_backend", "tensorrt"),
        "serving.triton_backend",
        "(got 'tensorrt')",
    ),
    ("gpu-not-bool", _set("serving.gpu", "yes"), "serving.gpu", "valid boolean"),
    (
        "batch-size-as-string",
        _set("serving.max_batch_size", "256"),
        "serving.max_batch_size",
        "valid integer",
    ),
    (
        "batch-size-too-big",
        _set("serving.max_batch_size", 8192),
        "serving.max_batch_size",
        "less than or equal to 4096",
    ),
    (
        "preferred-batch-over-max",
        _set("serving.dynamic_batching.preferred_batch_sizes", [64, 512]),
        "serving.dynamic_batching.preferred_batch_sizes",
        "must be <= max_batch_size 256 (got 512)",
    ),
    (
        "transformers-without-text",
        _all(_set("framework", "transformers"), _set("serving.triton_backend", "python")),
        "inputs.request_fields",
        "list a request field with dtype string",
    ),
    (
        "slice-not-a-request-field",
        _all(
            _set("inputs", TEXT_INPUTS),
            _set("framework", "transformers"),
            _set("serving.triton_backend", "onnxruntime"),
        ),
        "evaluation.slices",
        "plan_tier not among the request fields",
    ),
    (
        "canary-percent-0",
        _set("canary.traffic_percent", 0),
        "canary.traffic_percent",
        "greater than or equal to 1",
    ),
    (
        "canary-percent-100",
        _set("canary.traffic_percent", 100),
        "canary.traffic_percent",
        "less than or equal to 99",
    ),
    (
        "latency-ratio-below-1",
        _set("canary.success.max_p95_latency_ratio", 0.9),
        "canary.success.max_p95_latency_ratio",
        "greater than or equal to 1",
    ),
    (
        "online-detector-with-p-value",
        _set("monitoring.detector", "cvm_online"),
        "monitoring.p_value",
        "online detector 'cvm_online' takes expected_run_time",
    ),
    (
        "online-detector-without-budget",
        _all(
            _set("monitoring.detector", "mmd_online"),
            _drop("monitoring.p_value"),
            _drop("monitoring.correction"),
        ),
        "monitoring.expected_run_time",
        "required for online detector",
    ),
    (
        "online-detector-with-correction",
        _all(
            _set("monitoring.detector", "lsdd_online"),
            _drop("monitoring.p_value"),
            _set("monitoring.expected_run_time", 100),
        ),
        "monitoring.correction",
        "only batch detectors take a correction",
    ),
    (
        "batch-detector-without-p-value",
        _drop("monitoring.p_value"),
        "monitoring.p_value",
        "required for batch detector 'tabular'",
    ),
    (
        "batch-detector-with-run-time",
        _set("monitoring.expected_run_time", 100),
        "monitoring.expected_run_time",
        "batch detector 'tabular' takes p_value",
    ),
    ("p-value-too-big", _set("monitoring.p_value", 0.5), "monitoring.p_value", "less than 0.5"),
    (
        "several-errors",
        _all(
            _set("serving.gpu", "yes"),
            _set("canary.traffic_percent", 0),
            _set("monitoring.alert_severity", "page"),
        ),
        "serving.gpu",
        "(+2 more)",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_spec(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], field: str, fragment: str
) -> None:
    data = _valid()
    mutate(data)
    path = _write(tmp_path, data, stem="conversion-xgboost")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: "), message
    assert fragment in message, message
    assert info.value.field == field


# (id, file content or None for no file, fragment)
UNREADABLE = [
    ("missing-file", None, "file not found"),
    (
        "yaml-syntax-error",
        "name: conversion-xgboost\nserving: {gpu: true\n",
        "invalid YAML: line 3, column 1",
    ),
    ("yaml-bad-indent", "name: a\n  framework: xgboost\n", "invalid YAML: line 2"),
    ("duplicate-key", "name: a\nframework: xgboost\nname: b\n", "duplicate key 'name' (first set on line 1)"),
    (
        "top-level-list",
        "- name: conversion-xgboost\n",
        "the top level must be a mapping of spec fields, got a list",
    ),
    ("empty-file", "# nothing yet\n", "got an empty document"),
]


@pytest.mark.parametrize(("text", "fragment"), [c[1:] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
def test_unreadable_spec(tmp_path: Path, text: str | None, fragment: str) -> None:
    path = tmp_path / "conversion-xgboost.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message


def test_name_must_match_file_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, _valid(), stem="conversion-xgb")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: name: 'conversion-xgboost' does not match the file name 'conversion-xgb.yaml' "
        "(a spec lives in <name>.yaml)"
    )


# ------------------------------------------------------------------------------------------- behaviour
def test_specs_are_immutable() -> None:
    spec = fixture_spec("conversion-xgboost")
    with pytest.raises(ValidationError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        spec.serving.gpu = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.training.hyperparameters["max_depth"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.evaluation.floors["roc_auc"] = 0.0  # type: ignore[index]
    assert isinstance(spec.evaluation.slices, tuple)
    assert hash(spec) == hash(fixture_spec("conversion-xgboost"))


def test_round_trips_through_json_and_pickle() -> None:
    for spec in load_specs(FIXTURE_SPEC_DIR):
        assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec
        assert parse_spec(json.loads(spec.model_dump_json())) == spec
        assert pickle.loads(pickle.dumps(spec)) == spec


def test_spec_error_is_a_value_error_and_pickles() -> None:
    error = SpecError("a.yaml", "bad\nthing", field="serving.gpu")
    assert isinstance(error, ValueError)
    assert str(error) == "a.yaml: serving.gpu: bad thing"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_parse_spec_names_the_source() -> None:
    data = _valid()
    data["serving"]["gpu"] = 1
    with pytest.raises(SpecError, match=r"^run-123/spec.json: serving.gpu: Input should be a valid boolean"):
        parse_spec(data, source="run-123/spec.json")


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    path = tmp_path / "conversion-xgboost.yaml"
    path.write_text(
        fixture_spec_path("conversion-xgboost")
        .read_text()
        .replace("learning_rate: 0.1", "learning_rate: 1e-1")
    )
    assert load_spec(path).training.hyperparameters["learning_rate"] == pytest.approx(0.1)


def test_fixed_window_dates_are_utc_and_rolling_window_resolves(tmp_path: Path) -> None:
    data = _valid()
    data["training"]["window"] = {"start": dt.date(2024, 1, 1), "end": "2024-03-01T12:00:00+02:00"}
    window = load_spec(_write(tmp_path, data)).training.window
    assert window.resolve() == (
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC),
    )
    rolling = fixture_spec("conversion-xgboost").training.window
    now = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    assert rolling.resolve(now) == (now - dt.timedelta(days=90), now)


def test_metric_directions() -> None:
    assert set(METRIC_DIRECTION) == set(METRIC_NAMES)
    assert higher_is_better("roc_auc") and higher_is_better("f1")
    assert not higher_is_better("log_loss") and not higher_is_better("expected_calibration_error")
    with pytest.raises(ValueError, match="unknown metric"):
        higher_is_better("auc")  # type: ignore[arg-type]


def test_floors_and_tolerance_follow_metric_direction() -> None:
    evaluation = fixture_spec("conversion-mlp").evaluation
    assert evaluation.meets_floor("roc_auc", 0.70) and not evaluation.meets_floor("roc_auc", 0.69)
    assert evaluation.meets_floor("log_loss", 0.60) and not evaluation.meets_floor("log_loss", 0.61)
    assert evaluation.meets_floor("accuracy", 0.0)  # no floor set
    assert evaluation.within_tolerance("roc_auc", candidate=0.795, champion=0.80)
    assert not evaluation.within_tolerance("roc_auc", candidate=0.785, champion=0.80)
    assert evaluation.within_tolerance("log_loss", candidate=0.41, champion=0.40)
    assert not evaluation.within_tolerance("log_loss", candidate=0.43, champion=0.40)


def test_valid_variants_load(tmp_path: Path) -> None:
    data = copy.deepcopy(_valid())
    del data["training"]["search"]
    data["monitoring"].pop("correction")
    data["monitoring"]["features"] = ["plan_tier"]
    data["serving"]["triton_backend"] = "python"  # always allowed
    spec = load_spec(_write(tmp_path, data))
    assert spec.training.search is None
    assert spec.monitoring.correction == "bonferroni"
    assert spec.monitoring.features == ("plan_tier",)
