"""A whole local platform in a temporary folder: demo data, a real Feast store, MLflow on sqlite, and the
demo specs shrunk (fewer trials, epochs and rows) so the pipeline runs in minutes on two cores."""

from __future__ import annotations

import shutil

import pytest

from feature_repo import store
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables
from tests.helpers.demo_features import DEMO_FEATURE_VIEWS
from tests.helpers.fast_specs import fast_specs


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory):
    """MLOPS_HOME with data (100 customers), the applied and materialized Feast store, and fast specs."""
    home = tmp_path_factory.mktemp("platform")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db")
        patch.setenv("MLOPS_SPEC_DIR", str(home / "specs"))
        patch.delenv("FEATURE_DATA_URI", raising=False)
        config = GeneratorConfig(customers=100)
        write_tables(config, generate(config), home / "data")
        store.bootstrap(views=DEMO_FEATURE_VIEWS)
        fast_specs(home / "specs")
        yield home


@pytest.fixture
def restore_data(local_platform):
    """Lets a test corrupt the feature data in place; the originals come back afterwards."""
    backup = local_platform / "data-backup"
    shutil.copytree(local_platform / "data", backup)
    yield local_platform / "data"
    shutil.rmtree(local_platform / "data")
    backup.rename(local_platform / "data")


@pytest.fixture(scope="session")
def first_run(local_platform):
    """The pipeline over all four demo models on fresh stores: every model becomes a first champion,
    served alone by the local serving runtime the run starts (and stops) for its release steps."""
    from core.paths import feature_data_dir
    from feature_repo.demo_data.writer import data_window as demo_data_window
    from pipelines.local_run import run_training
    from pipelines.training import DEFAULT_MODELS

    start, end = demo_data_window(feature_data_dir())
    run = run_training(DEFAULT_MODELS, start, end, reason="test: first run")
    assert run.succeeded, [(o.model, o.stage, o.reasons) for o in run.outcomes]
    return run
