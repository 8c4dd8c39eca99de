"""Behavioural tests of the demo-data generator on a small, real data set (150 customers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.paths import REPO_ROOT
from feature_repo.demo_data.__main__ import main
from feature_repo.demo_data.config import INTENTS, OFFER_CATEGORIES, TABLES, DriftSpec, GeneratorConfig
from feature_repo.demo_data.drift import apply_covariate_drift
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables

CUSTOMERS = 150
DRIFT_AT = datetime(2026, 9, 17, tzinfo=UTC)
FEATURES = [
    "sessions_7d",
    "messages_7d",
    "pricing_page_views_7d",
    "support_tickets_30d",
    "avg_response_time_s",
    "message_count",
    "duration_s",
    "sentiment_score",
    "pricing_messages",
]
FEATURE_TABLES = ("customer_profile", "customer_activity", "session_stats", "messages")
DTYPES = {"i": "int64", "f": "float64", "s": "object", "t": "datetime64[ns, UTC]"}
# The contract other code relies on: column:dtype, in order.
SCHEMA = {
    "customer_profile": "customer_id:i plan_tier:s region:s company_size:i tenure_days:i "
    "lifetime_value:f event_timestamp:t created:t",
    "customer_activity": "customer_id:i sessions_7d:i messages_7d:i pricing_page_views_7d:i "
    "support_tickets_30d:i avg_response_time_s:f event_timestamp:t created:t",
    "session_stats": "session_id:i customer_id:i message_count:i duration_s:f sentiment_score:f "
    "pricing_messages:i event_timestamp:t created:t",
    "conversions": "session_id:i customer_id:i event_timestamp:t converted:i label_timestamp:t",
    "messages": "message_id:i session_id:i customer_id:i event_timestamp:t text:s intent:s",
    "offers": "offer_id:i offer_category:s offer_tier:s offer_price_usd:f event_timestamp:t created:t",
    "offer_impressions": "impression_id:i session_id:i customer_id:i offer_id:i position:i clicked:i "
    "relevance:i event_timestamp:t",
    "customer_offer_activity": "customer_id:i "
    + " ".join(f"{kind}_30d_{c}:i" for c in OFFER_CATEGORIES for kind in ("impressions", "clicks"))
    + " event_timestamp:t created:t",
}


def small(**kwargs) -> GeneratorConfig:
    return GeneratorConfig(customers=CUSTOMERS, **kwargs)


@pytest.fixture(scope="module")
def base() -> dict[str, pd.DataFrame]:
    return generate(small())


def drifted(kind: str, features: tuple[str, ...] = (), magnitude: float = 1.0) -> dict[str, pd.DataFrame]:
    return generate(small(drift=(DriftSpec(kind, DRIFT_AT, features, magnitude),)))


def training_set(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Point-in-time join, independent of the generator's: latest snapshots at or before the session end."""
    stats = tables["session_stats"].drop(columns=["customer_id", "event_timestamp", "created"])
    frame = tables["conversions"].merge(stats, on="session_id").sort_values("event_timestamp", kind="stable")
    for name in ("customer_activity", "customer_profile"):
        right = tables[name].drop(columns="created").sort_values("event_timestamp", kind="stable")
        frame = pd.merge_asof(frame, right, on="event_timestamp", by="customer_id", direction="backward")
    return frame.reset_index(drop=True)


def design(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.get_dummies(frame[[*FEATURES, "plan_tier"]], columns=["plan_tier"], dtype=float)


def fit(frame: pd.DataFrame):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(design(frame), frame["converted"])


def auc(model, frame: pd.DataFrame) -> float:
    scores = model.predict_proba(design(frame).reindex(columns=model.feature_names_in_, fill_value=0.0))
    return roc_auc_score(frame["converted"], scores[:, 1])


def before_after(frame: pd.DataFrame, column: str | None = None):
    after = frame["event_timestamp"] >= pd.Timestamp(DRIFT_AT)
    if column is None:
        return frame[~after], frame[after]
    return frame.loc[~after, column], frame.loc[after, column]


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_files(base, tmp_path):
    again = generate(small())
    for name in TABLES:
        assert_frame_equal(base[name], again[name])
    first = json.loads(write_tables(small(), base, tmp_path / "a").read_text())
    second = json.loads(write_tables(small(), again, tmp_path / "b").read_text())
    assert first == second
    assert sorted(first["tables"]) == sorted(TABLES)
    for name in TABLES:  # what readers get back is exactly what was generated, dtypes and tz included
        assert_frame_equal(pd.read_parquet(tmp_path / "a" / f"{name}.parquet"), base[name])


def test_different_seed_gives_different_data(base):
    other = generate(small(seed=8))
    for name in ("customer_activity", "session_stats", "conversions", "messages"):
        assert not base[name].equals(other[name]), name


def test_defaults_are_fixed_dates_not_now():
    config = GeneratorConfig()
    assert (config.seed, config.customers, config.drift) == (7, 1000, ())
    assert config.start == datetime(2026, 8, 3, tzinfo=UTC)
    assert config.end == datetime(2026, 11, 1, tzinfo=UTC)


# --- schema and integrity ---------------------------------------------------------------------


@pytest.mark.parametrize("name", TABLES)
def test_schema_dtypes_and_utc(base, name):
    frame = base[name]
    expected = [tuple(pair.split(":")) for pair in SCHEMA[name].split()]
    assert [(column, str(dtype)) for column, dtype in frame.dtypes.items()] == [
        (column, DTYPES[code]) for column, code in expected
    ]
    assert len(frame) > 0
    if "created" in frame:
        lag = frame["created"] - frame["event_timestamp"]
        assert lag.min() >= pd.Timedelta(0) and lag.max() <= pd.Timedelta(minutes=15)


def test_value_domains(base):
    profile, stats, conversions = base["customer_profile"], base["session_stats"], base["conversions"]
    assert set(profile["plan_tier"]) == {"free", "starter", "pro", "enterprise"}
    assert set(profile["region"]) == {"emea", "amer", "apac"}
    assert set(base["messages"]["intent"]) == set(INTENTS)
    assert stats["sentiment_score"].between(-1, 1).all()
    assert set(conversions["converted"]) == {0, 1}
    wait = conversions["label_timestamp"] - conversions["event_timestamp"]
    assert wait.min() > pd.Timedelta(0) and wait.max() <= pd.Timedelta(days=7)
    for frame in (profile, base["customer_activity"], stats):
        assert frame["event_timestamp"].min() >= pd.Timestamp(GeneratorConfig().start)
        assert frame["event_timestamp"].max() < pd.Timestamp(GeneratorConfig().end)


def test_ids_unique_and_consistent(base):
    stats, messages, conversions = base["session_stats"], base["messages"], base["conversions"]
    assert stats["session_id"].is_unique and messages["message_id"].is_unique
    for name in ("customer_profile", "customer_activity"):
        assert not base[name].duplicated(["customer_id", "event_timestamp"]).any()
    assert base["customer_profile"]["customer_id"].nunique() == CUSTOMERS
    assert conversions[["session_id", "customer_id", "event_timestamp"]].equals(
        stats[["session_id", "customer_id", "event_timestamp"]]
    )
    owner = stats.set_index("session_id")["customer_id"]
    assert (messages["customer_id"].to_numpy() == owner.loc[messages["session_id"]].to_numpy()).all()


def test_session_stats_agree_with_messages(base):
    messages = base["messages"]
    per_session = messages.groupby("session_id").agg(
        count=("message_id", "size"), pricing=("intent", lambda s: (s == "pricing").sum())
    )
    stats = base["session_stats"].set_index("session_id")
    assert (per_session["count"] == stats["message_count"]).all()
    assert (per_session["pricing"] == stats["pricing_messages"]).all()


# --- labels -----------------------------------------------------------------------------------


def test_label_base_rate_and_learnable_from_point_in_time_features(base):
    frame = training_set(base)
    assert frame[FEATURES].notna().all().all()
    assert 0.15 <= frame["converted"].mean() <= 0.30
    split = int(len(frame) * 0.6)
    score = auc(fit(frame.iloc[:split]), frame.iloc[split:])
    assert 0.7 < score < 0.9, score


def test_buying_talk_raises_and_cancellation_lowers_conversion(base):
    frame = training_set(base)
    cancels = base["messages"].groupby("session_id")["intent"].apply(lambda s: (s == "cancellation").any())
    frame["cancelled"] = frame["session_id"].map(cancels)
    rate = frame.groupby(frame["pricing_messages"] > 0)["converted"].mean()
    assert rate[True] > rate[False] + 0.1
    assert (
        frame.loc[frame["cancelled"], "converted"].mean() < frame.loc[~frame["cancelled"], "converted"].mean()
    )


def test_intent_classifier_is_good_but_not_perfect(base):
    messages = base["messages"]
    assert messages["text"].str.len().min() > 0
    assert (messages["text"] == messages["text"].str.lower()).mean() > 0.1  # lowercase noise
    split = int(len(messages) * 0.7)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=2000))
    model.fit(messages["text"].iloc[:split], messages["intent"].iloc[:split])
    accuracy = (model.predict(messages["text"].iloc[split:]) == messages["intent"].iloc[split:]).mean()
    assert 0.85 < accuracy < 0.99, accuracy


# --- drift ------------------------------------------------------------------------------------


def test_covariate_drift_moves_named_features_only(base):
    data = drifted("covariate", ("pricing_page_views_7d", "duration_s"))
    for table, column in (("customer_activity", "pricing_page_views_7d"), ("session_stats", "duration_s")):
        assert ks_2samp(*before_after(data[table], column)).pvalue < 0.01, column
        pre, _ = before_after(data[table])
        assert_frame_equal(pre, before_after(base[table])[0])
    for table, column in (("customer_activity", "avg_response_time_s"), ("session_stats", "sentiment_score")):
        assert ks_2samp(*before_after(data[table], column)).pvalue > 0.01, column
    assert_frame_equal(data["customer_profile"], base["customer_profile"])
    assert_frame_equal(data["messages"], base["messages"])


def test_covariate_drift_keeps_the_label_relation(base):
    pre, post = before_after(training_set(drifted("covariate", ("pricing_page_views_7d",))))
    assert post["converted"].mean() > pre["converted"].mean()  # more views -> more conversions
    assert auc(fit(pre), post) > 0.7


def test_label_drift_changes_the_rate_not_the_features(base):
    data = drifted("label", magnitude=1.0)
    for name in FEATURE_TABLES:
        assert_frame_equal(data[name], base[name])
    pre, post = before_after(data["conversions"], "converted")
    table = [[pre.sum(), len(pre) - pre.sum()], [post.sum(), len(post) - post.sum()]]
    assert chi2_contingency(table).pvalue < 0.01
    assert post.mean() > pre.mean() + 0.05
    assert before_after(data["conversions"])[0].equals(before_after(base["conversions"])[0])


def test_concept_drift_changes_the_relation_not_the_features(base):
    data = drifted("concept", magnitude=1.0)
    for name in FEATURE_TABLES:
        assert_frame_equal(data[name], base[name])
    pre, post = before_after(training_set(data))

    def pricing_weight(frame: pd.DataFrame) -> float:
        model = fit(frame)
        return model[-1].coef_[0][list(model.feature_names_in_).index("pricing_messages")]

    assert pricing_weight(pre) > 0.3 and pricing_weight(post) < -0.3
    model = fit(pre)
    _, baseline_post = before_after(training_set(base))
    assert auc(model, post) < auc(model, baseline_post) - 0.05


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"kind": "seasonal", "features": ()}, "seasonal"),
        ({"kind": "covariate", "features": ("bogus_feature",)}, "bogus_feature"),
        ({"kind": "concept", "features": ("tenure_days",)}, "tenure_days"),
        ({"kind": "covariate", "features": ()}, "sessions_7d"),
        ({"kind": "label", "features": ("duration_s",)}, "duration_s"),
    ],
)
def test_bad_drift_spec_is_a_one_line_value_error(kwargs, named):
    with pytest.raises(ValueError, match=named) as caught:
        DriftSpec(start=DRIFT_AT, **kwargs)
    assert "\n" not in str(caught.value)


def test_bad_config_is_a_value_error():
    with pytest.raises(ValueError, match="customers"):
        GeneratorConfig(customers=0)
    with pytest.raises(ValueError, match="end"):
        GeneratorConfig(start="2026-09-01", end="2026-08-01")


# --- command line -----------------------------------------------------------------------------


def test_cli_writes_files_and_a_second_run_is_a_no_op(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    out = tmp_path / "data"
    args = ["--out", str(out), "--customers", "40", "--label-drift", "0.5", "--drift-start", "2026-10-01"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run(
        [sys.executable, "-m", "feature_repo.demo_data", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    for name in TABLES:
        assert (out / f"{name}.parquet").is_file()
        assert name in first.stdout and manifest["tables"][name]["rows"] > 0
    assert "manifest" in first.stdout
    assert manifest["seed"] == 7 and manifest["drift"][0]["kind"] == "label"
    written = pd.read_parquet(out / "session_stats.parquet")
    assert str(written["event_timestamp"].dt.tz) == "UTC"
    stamps = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}

    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert stamps == {path.name: path.stat().st_mtime_ns for path in out.iterdir()}

    assert main([*args, "--force"]) == 0
    assert "manifest" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not (tmp_path / "home").exists()


def test_cli_regenerates_when_a_file_changed_or_parameters_differ(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--customers", "30"]
    assert main(args) == 0
    (tmp_path / "messages.parquet").write_bytes(b"tampered")
    capsys.readouterr()
    assert main(args) == 0
    assert "up to date" not in capsys.readouterr().out
    assert main([*args, "--seed", "9"]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 9


def test_cli_rejects_unknown_feature_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path), "--covariate-drift", "sessions_7d,nope"])
    assert caught.value.code == 2
    assert "'nope'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_covariate_drift_does_not_mutate_its_input(base):
    before = base["customer_activity"].copy()
    spec = DriftSpec("covariate", DRIFT_AT, ("pricing_page_views_7d",), 2.0)
    moved = apply_covariate_drift(dict(base), [spec])
    assert_frame_equal(base["customer_activity"], before)
    assert not moved["customer_activity"].equals(before)
