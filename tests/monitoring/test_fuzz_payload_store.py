"""Fuzzing the drift service's payload-store door (#15): hostile batch objects, as a bucket anyone with
write access could fill, through the decoder and the ingestion. An object is either read (its bad records
counted as rejected) or rejected whole with one line naming it; nothing else may escape, and the service
still scores a good object afterwards."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE
from monitoring.bench.agent_log import json_object, log_request
from monitoring.drift_service.object_ingest import ingest_object
from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.payloads.batch_log import RECORD_COLUMNS, decode_batch
from monitoring.payloads.errors import EventError
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import columns_body, quality_service
from tests.helpers.fuzz import FUZZ_CASES, encoded, fuzz_settings, json_values, oip_bodies, texts
from tests.helpers.payload_logs import csv_object, parquet_object

pytestmark = [pytest.mark.fuzz]
COLUMNS = ["plan_tier", "company_size", "lifetime_value", "sessions_7d"]

bodies = st.one_of(
    oip_bodies(COLUMNS).map(lambda doc: base64.b64encode(json.dumps(doc, allow_nan=True).encode()).decode()),
    texts,
    json_values,
)
records = st.fixed_dictionaries(
    {},
    optional={
        "bytes": bodies,
        "reqType": st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE]) | texts | json_values,
        "id": texts | json_values,
        "inferenceService": st.sampled_from([MODEL, "other"]) | json_values,
        "sourceUri": json_values,
        "metadata": json_values,
        "annotations": json_values,
        "contentType": texts | json_values,
    },
)
objects = st.one_of(
    st.tuples(st.just("json"), encoded(st.lists(records, max_size=4) | records | json_values)),
    st.tuples(
        st.just("csv"),
        st.lists(st.lists(texts, min_size=14, max_size=14), max_size=3).map(
            lambda rows: "\n".join(
                ",".join(json.dumps(c) for c in row) for row in [list(RECORD_COLUMNS), *rows]
            ).encode()
        ),
    ),
    st.tuples(st.sampled_from(["csv", "parquet"]), st.binary(max_size=200)),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("store")
    return quality_service(home / "state"), ObjectLedger(home / "ledger")


@fuzz_settings(FUZZ_CASES)
@given(case=objects)
def test_hostile_objects(store, case) -> None:
    service, ledger = store
    fmt, data = case
    try:
        events = decode_batch(data, fmt, "s3://logs/fuzzed")
    except EventError as exc:
        assert "s3://logs/fuzzed" in str(exc) and "\n" not in str(exc)
        return
    report = ingest_object(service, ledger, f"fuzzed-{hash(data)}", events)
    assert report.events == len(events) and report.rejected <= len(events)


@pytest.mark.parametrize("encode", [json_object, csv_object, parquet_object])
def test_the_service_scores_a_good_object_after_the_fuzzing(store, encode) -> None:
    service, ledger = store
    good = [log_request("request", f"good-{encode.__name__}", columns_body([1, 2]), MODEL)]
    fmt = encode.__name__.split("_")[0]
    report = ingest_object(service, ledger, f"good.{fmt}", decode_batch(encode(good), fmt, "good"))
    assert (report.rows, report.rejected) == (2, 0)
