"""A temporary MLOPS_HOME holding the demo data and an applied Feast repository, for a test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from feature_repo import store as feature_store
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables


@contextmanager
def demo_home(home: Path, customers: int) -> Iterator[Path]:
    """`home` as MLOPS_HOME (FEATURE_DATA_URI unset) with `customers` customers' demo data and
    `feast apply` done, until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("FEATURE_DATA_URI", raising=False)
        config = GeneratorConfig(customers=customers)
        write_tables(config, generate(config), home / "data")
        assert feature_store.apply() is True
        yield home
