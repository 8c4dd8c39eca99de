"""Online features for a batch of entity rows: one feature service read from Feast's online store.

The FeatureStore is opened once per process: its registry is cached (`cache_ttl_seconds` in the
feature_store.yaml) and refreshed by Feast itself, and the online store is read on every request, so a
materialization is visible at once without reopening anything.

An entity row is *missing* when, for one of its keys, every feature of every view joined on that key is
null: no row in the online store (never materialized, or expired by the store's key TTL). Serving such a
row would silently score the training medians, so it is refused with the ids that were not found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core import paths
from core.raw_features import raw_inputs
from core.settings import variable


class MissingEntities(LookupError):
    """Some entity rows have no online features; `str()` names the keys and ids."""


@dataclass(frozen=True)
class ServiceLayout:
    """What a feature service reads: its feature names per entity key, and request-time fields."""

    features_by_key: Mapping[str, tuple[str, ...]]
    """For each join key, the features of the (non on-demand) views joined on it alone."""
    request_fields: tuple[str, ...]
    """Fields its on-demand views take from the request (none for this repository's services)."""
    feature_names: tuple[str, ...]
    """Every feature the service returns, on-demand ones included."""
    inputs: tuple[dict[str, Any], ...] = ()
    """The served model's raw-feature inputs, one per feature (core/raw_features.py), typed by the
    feature views' schema: the same for every version of a model trained on this service."""


class OnlineFeatures:
    """Reads one feature service from the online store; open once, call `read` per request."""

    def __init__(self, store: Any, service_name: str, entity_keys: Sequence[str]) -> None:
        self.store = store
        self.service = store.get_feature_service(service_name)
        self.entity_keys = tuple(entity_keys)
        self.layout = _service_layout(store, self.service)
        unknown = set(self.layout.features_by_key) - set(self.entity_keys)
        if unknown:
            raise ValueError(
                f"feature service {service_name!r} joins on {', '.join(sorted(unknown))}, "
                f"which the model spec's inputs.entity_keys ({', '.join(self.entity_keys)}) lack"
            )

    @classmethod
    def open(
        cls, repo_path: Path, service_name: str, entity_keys: Sequence[str], config_file: Path | None = None
    ) -> OnlineFeatures:
        from feast import FeatureStore

        # The local feature_store.yaml names paths under ${MLOPS_HOME}; Feast expands it from the environment.
        os.environ.setdefault(variable("home"), str(paths.state_root()))
        config_file = config_file or Path(repo_path) / "feature_store.yaml"
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"transformer: feature store config {config_file} not found")
        store = FeatureStore(repo_path=str(repo_path), fs_yaml_file=Path(config_file))
        return cls(store, service_name, entity_keys)

    def read(self, entity_rows: list[dict[str, Any]]) -> pd.DataFrame:
        """One row of features per entity row, in order; raises MissingEntities for unknown ids."""
        online = self.store.get_online_features(features=self.service, entity_rows=entity_rows).to_dict()
        frame = pd.DataFrame(online)
        missing = _missing_entities(frame, self.layout.features_by_key)
        if missing:
            raise MissingEntities(
                "no online features for " + "; ".join(f"{key} {ids}" for key, ids in missing.items())
            )
        return frame


def _service_layout(store: Any, service: Any) -> ServiceLayout:
    features_by_key: dict[str, list[str]] = {}
    request_fields: list[str] = []
    fields = [f for projection in service.feature_view_projections for f in projection.features]
    names = [f.name for f in fields]
    on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
    for projection in service.feature_view_projections:
        if projection.name in on_demand:
            schema = on_demand[projection.name].get_request_data_schema()
            request_fields.extend(name for name in schema if name not in request_fields)
            continue
        view = store.get_feature_view(projection.name)
        keys = list(view.join_keys)
        if len(keys) == 1:  # a view on a composite key cannot tell which of its keys was unknown
            features_by_key.setdefault(keys[0], []).extend(f.name for f in projection.features)
    return ServiceLayout(
        features_by_key={key: tuple(names) for key, names in features_by_key.items()},
        request_fields=tuple(request_fields),
        feature_names=tuple(names),
        inputs=tuple(raw_inputs_of(service.name, fields)),
    )


# Feast value types (feast.types.PrimitiveFeastType names) -> numeric or categorical. The training set
# carries them as pandas dtypes, and `FeatureEncoder.fit` splits by dtype with the same rule
# (`is_numeric_column`): integers and floats are numeric; strings and booleans are categories.
NUMERIC_FEAST_TYPES = frozenset({"INT32", "INT64", "FLOAT32", "FLOAT64"})
CATEGORICAL_FEAST_TYPES = frozenset({"STRING", "BOOL"})


def raw_inputs_of(service: str, fields: Sequence[Any]) -> list[dict[str, Any]]:
    """The model inputs for a feature service's fields, in the encoder's order (numeric, categorical)."""
    numeric, categorical = [], []
    for field in fields:
        kind = getattr(field.dtype, "name", str(field.dtype))
        if kind in NUMERIC_FEAST_TYPES:
            numeric.append(field.name)
        elif kind in CATEGORICAL_FEAST_TYPES:
            categorical.append(field.name)
        else:
            raise ValueError(
                f"feature service {service!r}: feature {field.name!r} has type {field.dtype}; a model "
                f"takes {', '.join(sorted(NUMERIC_FEAST_TYPES | CATEGORICAL_FEAST_TYPES))} features"
            )
    return raw_inputs(numeric, categorical)


def _missing_entities(frame: pd.DataFrame, features_by_key: Mapping[str, Sequence[str]]) -> dict[str, list]:
    missing: dict[str, list] = {}
    for key, names in features_by_key.items():
        absent = frame[list(names)].isna().all(axis=1)
        if absent.any():
            ids = pd.unique(frame.loc[absent, key]).tolist()
            missing[key] = ids
    return missing
