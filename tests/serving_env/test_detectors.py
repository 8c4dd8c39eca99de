"""Drift detectors on real alibi-detect with small demo data (run with .venv-serving/bin/python -m pytest)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.detectors.base import MANIFEST, DetectorError, DriftResult, parquet_available
from monitoring.detectors.fit import fit_detector, input_columns, main
from monitoring.detectors.kinds import load_detector
from monitoring.detectors.tabular import BatchTabularDetector
from tests.helpers.drifted_demo import DRIFT_START, SHIFTED
from tests.helpers.specs import fixture_spec

pytestmark = pytest.mark.serving


def test_input_columns_skip_keys_timestamp_and_label(sessions):
    columns = input_columns(fixture_spec("conversion-xgboost"), sessions["fit"])
    assert "plan_tier" in columns and SHIFTED in columns
    assert not {"session_id", "customer_id", "event_timestamp", "converted"} & set(columns)


@pytest.mark.parametrize("name", ["conversion-xgboost", "conversion-sklearn"])  # tabular, ks
def test_batch_detector_flags_only_the_shifted_feature(name, sessions, tmp_path):
    folder = fit_detector(fixture_spec(name), sessions["fit"], "1", tmp_path / "det")
    with online_detectors_built() as online:
        detector = load_detector(folder)
    assert online == [], "a batch detector loads without simulating online thresholds"
    assert not detector.online and detector.model == name and detector.version == "1"
    clean = detector.score(sessions["clean"])
    assert isinstance(clean, DriftResult) and clean.rows == 500
    assert not clean.drift, clean.p_values
    drifted = detector.score(sessions["drifted"])
    assert drifted.drift
    flagged = {f for f, p in drifted.p_values.items() if p < drifted.threshold}
    assert SHIFTED in flagged
    assert min(drifted.p_values, key=drifted.p_values.get) == SHIFTED
    assert detector.state() == {}


def test_ks_ignores_categorical_and_tabular_encodes_it(sessions, tmp_path):
    ks = load_detector(
        fit_detector(fixture_spec("conversion-sklearn"), sessions["fit"], "1", tmp_path / "ks")
    )
    assert "plan_tier" not in ks.features
    manifest = json.loads((tmp_path / "ks" / "detector.json").read_text())
    assert manifest["ignored_features"] == ["plan_tier"]
    tab = load_detector(
        fit_detector(fixture_spec("conversion-xgboost"), sessions["fit"], "1", tmp_path / "tab")
    )
    window = sessions["clean"].assign(plan_tier="platinum")  # a category never seen in training
    assert tab.score(window).p_values["plan_tier"] < 1e-6


def test_batch_round_trip_gives_identical_scores(sessions, tmp_path):
    columns = input_columns(fixture_spec("conversion-xgboost"), sessions["fit"])
    fitted = BatchTabularDetector.fit("tabular", "m", "2", sessions["fit"].iloc[:800], columns, 0.01, "fdr")
    before = fitted.score(sessions["drifted"])
    after = load_detector(fitted.save(tmp_path / "det")).score(sessions["drifted"])
    assert after == before


def test_missing_column_is_a_one_line_error(sessions, tmp_path):
    detector = load_detector(
        fit_detector(fixture_spec("conversion-sklearn"), sessions["fit"], "1", tmp_path / "d")
    )
    with pytest.raises(DetectorError, match=f"missing input columns {SHIFTED}$"):
        detector.score(sessions["clean"].drop(columns=[SHIFTED]))


@contextlib.contextmanager
def online_detectors_built() -> Iterator[list[str]]:
    """The alibi-detect online detectors constructed inside the block, by class name: each simulates its
    thresholds when constructed (seconds), which a batch detector's load must not do."""
    from alibi_detect.cd.base_online import BaseMultiDriftOnline, BaseUniDriftOnline

    built: list[str] = []

    def counted(original):
        def init(self, *args, **kwargs):
            built.append(type(self).__name__)
            original(self, *args, **kwargs)

        return init

    with pytest.MonkeyPatch.context() as patch:
        for base in (BaseMultiDriftOnline, BaseUniDriftOnline):
            patch.setattr(base, "__init__", counted(base.__init__))
        yield built


# ------------------------------------------------------------------------------------------- online
@pytest.fixture(scope="module")
def cvm_folder(sessions, tmp_path_factory) -> Path:
    return fit_detector(fixture_spec("conversion-mlp"), sessions["fit"], "1", tmp_path_factory.mktemp("cvm"))


def first_detection(detector, rows: pd.DataFrame) -> int | None:
    for i in range(len(rows)):
        if detector.score(rows.iloc[[i]]).drift:
            return i + 1
    return None


def test_cvm_online_quiet_on_clean_rows_and_fast_on_shift(cvm_folder, sessions):
    started = time.perf_counter()
    detector = load_detector(cvm_folder)
    load_s = time.perf_counter() - started
    print(f"cvm_online load (threshold simulation): {load_s:.1f} s")
    assert detector.online and SHIFTED in detector.features and "plan_tier" not in detector.features
    initial = detector.state()
    clean = detector.score(sessions["clean"].iloc[:60])
    assert not clean.drift and clean.rows == 60 and detector.t == 60
    detector.restore(initial)
    assert detector.t == 0
    found = first_detection(detector, sessions["drifted"].iloc[:150])
    assert found is not None and found <= 100, found
    result = detector.score(sessions["drifted"].iloc[[found]])
    assert max(result.statistics, key=result.statistics.get) == SHIFTED


def test_cvm_online_reports_an_alarm_raised_inside_a_batch(cvm_folder, sessions):
    """The drift service scores a buffer of rows at once: an alarm on any row must survive to the result,
    even when the rows after it (here clean ones) no longer alarm."""
    detector = load_detector(cvm_folder)
    initial = detector.state()
    found = first_detection(detector, sessions["drifted"].iloc[:150])
    assert found is not None
    detector.restore(initial)
    batch = pd.concat([sessions["drifted"].iloc[:found], sessions["clean"].iloc[:80]])
    result = detector.score(batch)
    assert result.drift and result.rows == found + 80


def test_cvm_online_state_survives_a_restart(cvm_folder, sessions):
    first = load_detector(cvm_folder)
    first.score(sessions["clean"].iloc[:70])
    state = json.loads(json.dumps(first.state()))  # checkpoints are JSON
    second = load_detector(cvm_folder)
    second.restore(state)
    assert second.t == 70
    nxt = sessions["drifted"].iloc[:5]
    assert second.score(nxt) == first.score(nxt)
    assert second.t == 75  # the window continued instead of restarting


@contextlib.contextmanager
def streams_simulated() -> Iterator[list[str]]:
    """The online tabular detectors that simulate threshold streams inside the block (the costly step)."""
    from alibi_detect.cd import CVMDriftOnline, FETDriftOnline

    simulated: list[str] = []

    def counted(cls, original):
        def simulate(self, *args, **kwargs):
            simulated.append(cls.__name__)
            return original(self, *args, **kwargs)

        return simulate

    with pytest.MonkeyPatch.context() as patch:
        for cls in (CVMDriftOnline, FETDriftOnline):
            patch.setattr(cls, "_simulate_streams", counted(cls, cls._simulate_streams))
        yield simulated


def test_online_detectors_load_the_thresholds_simulated_at_fit(cvm_folder, sessions, tmp_path):
    manifest = json.loads((cvm_folder / MANIFEST).read_text())
    with streams_simulated() as simulated:
        detector = load_detector(cvm_folder)
    assert simulated == [], "the drift service must not simulate thresholds when it loads a detector"
    np.testing.assert_array_equal(
        detector._alibi.thresholds, np.asarray(manifest["calibration"]["thresholds"])
    )
    older = tmp_path / "older"  # a bundle from before calibrations were stored: simulated on load
    shutil.copytree(cvm_folder, older)
    (older / MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if k != "calibration"}))
    with streams_simulated() as simulated:
        reloaded = load_detector(older)
    assert simulated == ["CVMDriftOnline"]
    drifted = sessions["drifted"].iloc[:120]
    assert [detector.score(drifted.iloc[[i]]).drift for i in range(len(drifted))] == [
        reloaded.score(drifted.iloc[[i]]).drift for i in range(len(drifted))
    ]


def test_fet_online_on_a_binary_feature(sessions, tmp_path):
    threshold = sessions["fit"][SHIFTED].median()
    active = {k: v.assign(active=(v[SHIFTED] > threshold).astype("int64")) for k, v in sessions.items()}
    fet = fixture_spec(
        "conversion-mlp", monitoring={"detector": "fet_online", "features": ["active", "plan_tier"]}
    )
    with pytest.raises(DetectorError, match="not in the training set"):
        fit_detector(fet, sessions["fit"], "1", tmp_path / "bad")
    folder = fit_detector(fet, active["fit"], "1", tmp_path / "fet")
    with streams_simulated() as simulated:
        detector = load_detector(folder)
    assert simulated == [] and detector.features == ["active"]  # plan_tier is not binary
    initial = detector.state()
    assert not detector.score(active["clean"].iloc[:60]).drift
    detector.restore(initial)
    assert first_detection(detector, active["drifted"].iloc[:150]) is not None


# --------------------------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def messages(tables) -> dict[str, pd.DataFrame]:
    frame = tables["messages"]
    before = frame[frame["event_timestamp"] < DRIFT_START]
    return {"fit": before.iloc[:-300], "clean": before.iloc[-300:].reset_index(drop=True), "all": frame}


def test_text_detector_flags_a_new_intent_mix_and_new_vocabulary(messages, tmp_path):
    folder = fit_detector(fixture_spec("intent-transformer"), messages["fit"], "1", tmp_path / "text")
    started = time.perf_counter()
    detector = load_detector(folder)
    print(f"mmd_online load (threshold simulation): {time.perf_counter() - started:.1f} s")
    assert detector.features == ["text"]
    initial = detector.state()
    clean = detector.score(messages["clean"].iloc[:60])
    assert not clean.drift and set(clean.statistics) == {"__all__"}
    detector.restore(initial)
    cancellations = messages["all"][messages["all"]["intent"].isin(["cancellation", "billing"])]
    assert first_detection(detector, cancellations.iloc[:150]) is not None
    detector.restore(initial)
    rng = np.random.default_rng(0)
    words = ["zorglub", "quantenfluss", "xylofon", "brrr", "kappa", "omega", "flux"]
    foreign = pd.DataFrame({"text": [" ".join(rng.choice(words, 6)) for _ in range(150)]})
    found = first_detection(detector, foreign)
    assert found is not None and found <= 80, found


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_writes_a_bundle_and_reports_errors_on_one_line(sessions, tmp_path, capsys, fixture_specs):
    training = tmp_path / ("train.parquet" if parquet_available() else "train.jsonl")
    write = (
        sessions["fit"].to_parquet
        if parquet_available()
        else partial(sessions["fit"].to_json, orient="records", lines=True)
    )
    write(training)
    out = tmp_path / "bundle"
    args = [
        "--model",
        "conversion-xgboost",
        "--training-set",
        str(training),
        "--version",
        "7",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    manifest = json.loads((out / "detector.json").read_text())
    assert manifest["kind"] == "tabular" and manifest["version"] == "7"
    assert (out / manifest["reference_file"]).exists() and (out / "alibi").is_dir()
    assert main([*args[:1], "no-such-model", *args[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "no-such-model" in err and "\n" not in err
